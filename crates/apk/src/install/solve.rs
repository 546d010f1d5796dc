//! Phase 2: world, candidates and the solver's choice, turned into the changeset: the
//! packages to install, in install order.

use super::prepare::Target;
use super::stage::Job;
use super::{InstallReport, InstallRequest};
use crate::checksum::Checksum;
use crate::db::Db;
use crate::dep::Dep;
use crate::repo::RepoSet;
use crate::solver::{self, Candidate, RepoTag};
use crate::ApkError;
use std::borrow::Cow;

/// The tag (`s:`) each chosen package is recorded with: (identity, name, tag).
pub(super) type PinTags = Vec<(Option<Checksum>, String, Option<String>)>;

/// Solves world (plus `req.world_add`) and returns the chosen packages not installed yet,
/// and the tag each chosen package is pinned to. Sets the db's world to what was solved.
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
    let repos = &target.repos;
    if !req.diskless_boot {
        missing_tags(&world, repos)?;
    }
    let repo_tags = repo_tags(db, repos, &added);
    let (cands, repo_of) = candidates(repos, db, &repo_tags);
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
        repo_tags,
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
    let tags: PinTags = solution
        .order
        .iter()
        .zip(&solution.tags)
        .map(|(&c, t)| {
            (
                cands[c].info.identity,
                cands[c].info.name.clone(),
                t.clone(),
            )
        })
        .collect();
    for &c in &solution.order {
        if cands[c].installed {
            continue;
        }
        let path = repo_of[c].and_then(|r| repos.package_path(&repos.packages[r]));
        jobs.push(Job {
            index: jobs.len(),
            info: cands[c].info.as_ref().clone(),
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

/// Records each chosen package's tag in the db (`s:`), installed now or before (apk's
/// "Updating pinning").
pub(super) fn record_tags(db: &mut Db, tags: &PinTags) {
    for p in &mut db.packages {
        let chosen = tags
            .iter()
            .find(|(id, name, _)| *id == p.info.identity && *name == p.info.name);
        if let Some((.., t)) = chosen {
            p.tag = t.clone();
        }
    }
}

/// Repository tags in apk's numbering (`apk_db_get_tag_id`): untagged first, then tags in
/// order of first mention: world, the installed db, the repositories, the atoms being added.
/// A tag no repository has covers no repository: what is pinned to it is masked.
fn repo_tags(db: &Db, repos: &RepoSet, added: &[Dep]) -> Vec<RepoTag> {
    let mut tags = vec![RepoTag::default()];
    let mut id = |name: &str| match tags.iter().position(|t| t.name == name) {
        Some(i) => i,
        None => {
            tags.push(RepoTag {
                name: name.to_string(),
                repos: 0,
            });
            tags.len() - 1
        }
    };
    let names = db
        .world
        .iter()
        .filter_map(|d| d.tag.as_deref())
        .chain(db.packages.iter().filter_map(|p| p.tag.as_deref()));
    for n in names {
        id(n);
    }
    let mut bits: Vec<(usize, u64)> = Vec::new();
    for r in &repos.repos {
        let t = r.tag.as_deref().map_or(0, &mut id);
        bits.push((t, 1u64.checked_shl(r.index as u32).unwrap_or(0)));
    }
    for d in added {
        if let Some(t) = d.tag.as_deref() {
            id(t);
        }
    }
    for (t, bit) in bits {
        tags[t].repos |= bit;
    }
    tags
}

/// The solver's candidates: repository packages, then installed ones no repository has; and
/// for each, its index in the repository set. Records are borrowed, not copied: a boot's
/// repositories have tens of thousands.
fn candidates<'a>(
    repos: &'a RepoSet,
    db: &'a Db,
    tags: &[RepoTag],
) -> (Vec<Candidate<'a>>, Vec<Option<usize>>) {
    let tag_of = |t: &Option<String>| {
        t.as_deref()
            .and_then(|t| tags.iter().position(|x| x.name == t))
            .unwrap_or(0)
    };
    let mut cands: Vec<Candidate> = repos
        .packages
        .iter()
        .map(|a| Candidate {
            info: Cow::Borrowed(&a.info),
            repos: a.repos,
            available: repos.available(a),
            installed: false,
            tag: 0,
        })
        .collect();
    let mut repo_of: Vec<Option<usize>> = (0..cands.len()).map(Some).collect();
    // The first repository package with each installed identity: one walk of the
    // candidates, not one per installed package.
    let mut first: Vec<(Checksum, Option<usize>)> = db
        .packages
        .iter()
        .filter_map(|ip| Some((ip.info.identity?, None)))
        .collect();
    ramboot_sys::sort::sort_by(&mut first, |a, b| a.0.cmp(&b.0));
    let at = |first: &[(Checksum, Option<usize>)], id: &Checksum| {
        first.binary_search_by(|e| e.0.cmp(id)).ok()
    };
    if !first.is_empty() {
        for (i, c) in cands.iter().enumerate() {
            if let Some(k) = c.info.identity.and_then(|id| at(&first, &id)) {
                first[k].1.get_or_insert(i);
            }
        }
    }
    for ip in &db.packages {
        match ip.info.identity.and_then(|id| first[at(&first, &id)?].1) {
            Some(i) => {
                cands[i].installed = true;
                cands[i].tag = tag_of(&ip.tag);
            }
            None => {
                cands.push(Candidate {
                    info: Cow::Borrowed(&ip.info),
                    repos: 0,
                    available: true,
                    installed: true,
                    tag: tag_of(&ip.tag),
                });
                repo_of.push(None);
            }
        }
    }
    (cands, repo_of)
}
