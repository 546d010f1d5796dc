//! Phase 2: world, candidates and the solver's choice, turned into the changeset: the
//! packages to install, in install order.

use super::pin;
use super::prepare::Target;
use super::stage::Job;
use super::{InstallReport, InstallRequest};
use crate::checksum::Checksum;
use crate::db::Db;
use crate::dep::Dep;
use crate::repo::RepoSet;
use crate::solver::{self, Candidate};
use crate::ApkError;

/// The repository tag (`s:`) each chosen package records, by identity.
pub(super) type PinTags = Vec<(Option<Checksum>, String, Option<String>)>;

/// Solves world (plus `req.world_add`) and returns the chosen packages not installed yet, and
/// the tag each chosen package records. Sets the db's world to what was solved.
pub(super) fn changeset(
    req: &InstallRequest,
    target: &Target,
    db: &mut Db,
    report: &mut InstallReport,
) -> Result<(Vec<Job>, PinTags), ApkError> {
    let mut world = db.world.clone();
    let mut added = Vec::new();
    for a in &req.world_add {
        let d = Dep::parse(a)?;
        world.retain(|w| w.name != d.name);
        world.push(d.clone());
        added.push(d);
    }
    if !req.diskless_boot {
        missing_tags(&world, &target.repos)?;
    }
    let (mut cands, repo_of) = candidates(&target.repos, db);
    let pins = pin::decide(&cands, &target.repos, db, &world, &added);
    for (c, (masked, preferred)) in cands
        .iter_mut()
        .zip(pins.masked.into_iter().zip(pins.preferred))
    {
        c.masked = masked;
        c.pin_preferred = preferred;
    }
    let repos = &target.repos;
    let solution = solver::solve(&cands, &world, req.diskless_boot).map_err(|e| match e {
        ApkError::Unsatisfiable { problems, .. } => ApkError::Unsatisfiable {
            problems,
            unused_repositories: repos.warnings.clone(),
        },
        other => other,
    })?;
    let left_broken = left_broken(&cands, &solution.order);
    if !left_broken.is_empty() {
        return Err(ApkError::Unsatisfiable {
            problems: left_broken,
            unused_repositories: Vec::new(),
        });
    }
    for (d, why) in &solution.broken_world {
        log::debug!("apk: world entry {d} skipped: {why}");
        report.skipped_world.push((d.to_string(), why.clone()));
    }
    let mut jobs: Vec<Job> = Vec::new();
    let mut tags = PinTags::new();
    for &c in &solution.order {
        tags.push((
            cands[c].info.identity,
            cands[c].info.name.clone(),
            pins.tag[c].clone(),
        ));
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
    Ok((jobs, tags))
}

/// apk refuses a world atom pinned to a tag no repository has (`apk_db_check_world`), unless
/// the world may be broken (diskless boot): the pin would silently mean nothing.
fn missing_tags(world: &[Dep], repos: &RepoSet) -> Result<(), ApkError> {
    let problems: Vec<String> = world
        .iter()
        .filter_map(|d| {
            let t = d.tag.as_deref()?;
            (!repos.repos.iter().any(|r| r.tag.as_deref() == Some(t))).then(|| {
                format!(
                    "the repository tag for world dependency '{}@{t}' does not exist \
                     (no @{t} repository is configured): not committing changes",
                    d.name
                )
            })
        })
        .collect();
    if problems.is_empty() {
        return Ok(());
    }
    Err(ApkError::Unsatisfiable {
        problems,
        unused_repositories: repos.warnings.clone(),
    })
}

/// Installed packages the solution leaves behind (not chosen, no new version of their name)
/// whose dependencies it breaks: apk would purge them, and `ramboot install` removes nothing,
/// so such a change is refused with the reason.
fn left_broken(cands: &[Candidate], chosen: &[usize]) -> Vec<String> {
    let chosen_names: Vec<&str> = chosen
        .iter()
        .map(|&c| cands[c].info.name.as_str())
        .collect();
    let before: Vec<usize> = (0..cands.len()).filter(|&c| cands[c].installed).collect();
    let kept: Vec<usize> = before
        .iter()
        .copied()
        .filter(|&c| !chosen.contains(&c) && !chosen_names.contains(&cands[c].info.name.as_str()))
        .collect();
    let after: Vec<usize> = chosen.iter().chain(&kept).copied().collect();
    let met = |set: &[usize], d: &Dep| {
        let hit = |&p: &usize| {
            let i = &cands[p].info;
            i.provides_name(&d.name)
                .is_some_and(|v| d.matches_provider(v, i.identity.as_ref()))
        };
        if d.conflict {
            !set.iter().any(|p| {
                let i = &cands[*p].info;
                i.provides_name(&d.name).is_some() && !hit(p)
            })
        } else {
            set.iter().any(hit)
        }
    };
    let mut out = Vec::new();
    for &k in &kept {
        for d in &cands[k].info.depends {
            if met(&before, d) && !met(&after, d) {
                out.push(format!(
                    "{}: would have to be removed (its dependency {d} is no longer met); \
                     ramboot install does not remove packages: remove it first",
                    cands[k].info.nv()
                ));
            }
        }
    }
    out
}

/// Records each chosen package's tag in the db (`s:`), installed now or before (apk's
/// "Updating pinning").
pub(super) fn record_tags(db: &mut Db, tags: &PinTags) {
    for p in &mut db.packages {
        if let Some((.., t)) = tags
            .iter()
            .find(|(id, name, _)| *id == p.info.identity && *name == p.info.name)
        {
            p.tag = t.clone();
        }
    }
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
            masked: None,
            pin_preferred: false,
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
                    masked: None,
                    pin_preferred: false,
                });
                repo_of.push(None);
            }
        }
    }
    (cands, repo_of)
}
