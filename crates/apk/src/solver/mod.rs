//! Choosing what to install, and in which order: apk-tools' solver (`src/solver.c`), written
//! anew for ramboot, so that an install gives the answer `apk add` gives.
//!
//! - `graph`: names and packages as indices, with apk's reverse edges;
//! - `engine`: the propagating solve (constraints, disqualification, provider choice);
//! - `changeset`: the install order (apk's `generate_changeset` walk) and the installed
//!   packages a solution would remove;
//! - `explain`: apk's account of a failure ("unable to select packages").
//!
//! Like apk: installed packages are kept while they satisfy world unless an upgrade is asked
//! for ([`Options::upgrade`]); packages of tagged repositories ([`Options::repo_tags`]) are
//! masked unless a world atom pins them (`name@tag`) or a pinned package needs them, and the
//! tag each chosen package is pinned to is reported ([`Solution::tags`], the db's `s:`); with
//! [`Options::force_broken_world`] (the diskless boot) world atoms that fail are dropped and
//! the rest is solved again (`APK_FORCE_BROKEN_WORLD`).
//! Removing packages is not supported: a solution that drops an installed package is reported
//! in [`Solution::removals`] for the caller to refuse.

mod changeset;
mod engine;
mod explain;
mod graph;

use super::dep::{name_cmp, Dep};
use super::pkg::PkgInfo;
use super::ApkError;
use engine::{Engine, DEFAULT_PINNING, FLAG_LATEST, FLAG_UPGRADE};
use graph::Graph;
use std::borrow::Cow;

/// A package the solver may pick.
#[derive(Clone, Debug)]
pub struct Candidate<'a> {
    /// The package's record: borrowed from the index it was read from (a boot has tens of
    /// thousands; copying each record would cost more than the solve).
    pub info: Cow<'a, PkgInfo>,
    /// Repository bits (bit 0: the cache); lower is preferred.
    pub repos: u64,
    /// Installable from an available repository, the cache, or already installed.
    pub available: bool,
    /// Already installed in the root.
    pub installed: bool,
    /// For an installed package: the tag it is pinned to (`s:`), as an index into
    /// [`Options::repo_tags`]; 0 (untagged) otherwise.
    pub tag: usize,
}

/// A repository tag (`@name` in `etc/apk/repositories`) and the repositories it covers.
#[derive(Clone, Debug, Default)]
pub struct RepoTag {
    /// The tag, without `@`; empty for the untagged repositories.
    pub name: String,
    /// Repository bits, as in [`Candidate::repos`].
    pub repos: u64,
}

/// How to solve.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Skip world atoms that cannot be satisfied (diskless boot) instead of failing.
    pub force_broken_world: bool,
    /// `apk add -u`: the named packages and their dependencies move to the newest versions
    /// instead of keeping installed ones.
    pub upgrade: bool,
    /// `apk add -l`: the named packages and their dependencies take the newest version even
    /// where that breaks another choice.
    pub latest: bool,
    /// Names given on the command line: apk resolves them first (and upgrades them with
    /// [`Options::upgrade`]).
    pub command_line: Vec<String>,
    /// Repository tags in apk's numbering (`apk_db_get_tag_id`); index 0 is the untagged
    /// repositories. A world atom `name@tag` may take packages from its tag's repositories,
    /// and so may what that package depends on; other tagged packages are masked. Empty: no
    /// tags, every repository is untagged.
    pub repo_tags: Vec<RepoTag>,
}

/// The result of a solve.
#[derive(Debug, Default)]
pub struct Solution {
    /// Indices into the candidates, in install order (installed ones that stay included).
    pub order: Vec<usize>,
    /// For each package of [`Solution::order`]: the tag it is pinned to (`s:`), None when
    /// untagged.
    pub tags: Vec<Option<String>>,
    /// Installed packages the solution drops (apk would purge them).
    pub removals: Vec<usize>,
    /// World atoms dropped because they could not be satisfied, with the reason.
    pub broken_world: Vec<(Dep, String)>,
    /// The world as written to `etc/apk/world`: sorted, including broken atoms.
    pub world: Vec<Dep>,
}

/// Solves `world` over `pkgs`. Without [`Options::force_broken_world`] any problem is an
/// error; with it, unsatisfiable world atoms are reported in [`Solution::broken_world`] and
/// skipped.
pub fn solve(pkgs: &[Candidate<'_>], world: &[Dep], opts: &Options) -> Result<Solution, ApkError> {
    let mut world_sorted = world.to_vec();
    ramboot_sys::sort::sort_by(&mut world_sorted, |a, b| {
        name_cmp(&a.name, &b.name).then_with(|| a.to_string().cmp(&b.to_string()))
    });
    world_sorted.dedup();
    let roots = world_sorted.iter().map(|d| d.name.as_str());
    let g = Graph::build(
        pkgs,
        roots.chain(opts.command_line.iter().map(String::as_str)),
    );
    let tag_repos: Vec<u64> = opts.repo_tags.iter().map(|t| t.repos).collect();
    let mut broken = vec![false; world_sorted.len()];
    let mut broken_world = Vec::new();
    loop {
        let mut e = Engine::new(&g, &tag_repos);
        let flags =
            if opts.upgrade { FLAG_UPGRADE } else { 0 } | if opts.latest { FLAG_LATEST } else { 0 };
        for n in opts.command_line.iter().filter_map(|c| g.name(c)) {
            e.mark_named(n, flags);
        }
        let active: Vec<_> = world_sorted
            .iter()
            .enumerate()
            .filter(|(i, _)| !broken[*i])
            .filter_map(|(_, d)| Some((g.name(&d.name)?, d, pin_mask(opts, d))))
            .collect();
        e.run(&active, 0);
        let cs = changeset::generate(&mut e, &world_sorted);
        if e.errors == 0 {
            return Ok(Solution {
                tags: cs
                    .order
                    .iter()
                    .map(|&p| e.pinned_tag(p, &opts.repo_tags))
                    .collect(),
                order: cs.order.iter().map(|&p| g.pkgs[p].cand).collect(),
                removals: cs.removals.iter().map(|&p| g.pkgs[p].cand).collect(),
                broken_world,
                world: world_sorted,
            });
        }
        let problems = explain::problems(&e, &world_sorted, &cs.order, &opts.repo_tags);
        let mut progressed = false;
        if opts.force_broken_world {
            for (i, d) in world_sorted.iter().enumerate() {
                if broken[i] {
                    continue;
                }
                let failed = g.name(&d.name).map_or(true, |n| {
                    !e.ns[n].chosen.is_some_and(|c| !e.ps[c.pkg].error)
                });
                if failed {
                    broken[i] = true;
                    progressed = true;
                    broken_world.push((d.clone(), reason_for(d, &problems)));
                }
            }
        }
        if !progressed {
            return Err(ApkError::Unsatisfiable {
                problems,
                unused_repositories: Vec::new(),
            });
        }
    }
}

/// The pinning bit of a world atom: its tag's, or the untagged repositories'.
fn pin_mask(opts: &Options, d: &Dep) -> u32 {
    let tag = d.tag.as_deref().and_then(|t| {
        opts.repo_tags
            .iter()
            .position(|r| r.name == t)
            .filter(|&i| i < 32)
    });
    tag.map_or(DEFAULT_PINNING, |i| 1 << i)
}

/// One line saying why a world atom was skipped: the problems that mention it, or all.
fn reason_for(d: &Dep, problems: &[String]) -> String {
    let mine: Vec<&String> = problems
        .iter()
        .filter(|p| p.starts_with(&format!("{} ", d.name)) || p.contains(&format!("world[{d}]")))
        .collect();
    let chosen: Vec<&String> = if mine.is_empty() {
        problems.iter().collect()
    } else {
        mine
    };
    chosen
        .iter()
        .map(|p| p.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests;
