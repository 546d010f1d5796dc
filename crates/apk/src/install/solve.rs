//! Phase 2: world, candidates and the solver's choice, turned into the changeset: the
//! packages to install, in install order.

use super::prepare::Target;
use super::stage::Job;
use super::{InstallReport, InstallRequest};
use crate::db::Db;
use crate::dep::Dep;
use crate::repo::RepoSet;
use crate::solver::{self, Candidate};
use crate::ApkError;

/// Solves world (plus `req.world_add`) and returns the chosen packages not installed yet.
/// Sets the db's world to what was solved.
pub(super) fn changeset(
    req: &InstallRequest,
    target: &Target,
    db: &mut Db,
    report: &mut InstallReport,
) -> Result<Vec<Job>, ApkError> {
    let mut world = db.world.clone();
    for a in &req.world_add {
        let d = Dep::parse(a)?;
        world.retain(|w| w.name != d.name);
        world.push(d);
    }
    let (cands, repo_of) = candidates(&target.repos, db);
    let repos = &target.repos;
    let opts = solver::Options {
        force_broken_world: req.diskless_boot,
        upgrade: req.upgrade,
        latest: req.latest,
        command_line: req
            .world_add
            .iter()
            .filter_map(|a| Dep::parse(a).ok())
            .map(|d| d.name)
            .collect(),
        repo_tags: Vec::new(),
    };
    let solution = solver::solve(&cands, &world, &opts).map_err(|e| match e {
        ApkError::Unsatisfiable { problems, .. } => ApkError::Unsatisfiable {
            problems,
            unused_repositories: repos.warnings.clone(),
        },
        other => other,
    })?;
    for (d, why) in &solution.broken_world {
        log::debug!("apk: world entry {d} skipped: {why}");
        report.skipped_world.push((d.to_string(), why.clone()));
    }
    if !solution.removals.is_empty() {
        return Err(ApkError::NeedsRemoval {
            packages: solution
                .removals
                .iter()
                .map(|&c| cands[c].info.nv())
                .collect(),
        });
    }
    let mut jobs: Vec<Job> = Vec::new();
    for &c in &solution.order {
        if cands[c].installed {
            continue;
        }
        let path = repo_of[c].and_then(|r| repos.package_path(&repos.packages[r]));
        jobs.push(Job {
            index: jobs.len(),
            info: cands[c].info.clone(),
            path,
        });
    }
    db.world = solution.world;
    Ok(jobs)
}

/// The solver's candidates: repository packages, then installed ones no repository has; and
/// for each, its index in the repository set.
fn candidates(repos: &RepoSet, db: &Db) -> (Vec<Candidate>, Vec<Option<usize>>) {
    let mut cands: Vec<Candidate> = repos
        .packages
        .iter()
        .map(|a| Candidate {
            info: a.info.clone(),
            repos: a.repos,
            available: repos.available(a),
            installed: false,
        })
        .collect();
    let mut repo_of: Vec<Option<usize>> = (0..cands.len()).map(Some).collect();
    for ip in &db.packages {
        match cands
            .iter()
            .position(|c| c.info.identity.is_some() && c.info.identity == ip.info.identity)
        {
            Some(i) => cands[i].installed = true,
            None => {
                cands.push(Candidate {
                    info: ip.info.clone(),
                    repos: 0,
                    available: true,
                    installed: true,
                });
                repo_of.push(None);
            }
        }
    }
    (cands, repo_of)
}
