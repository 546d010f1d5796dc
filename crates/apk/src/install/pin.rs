//! Pinned repositories: `@tag url` lines in `etc/apk/repositories`, `name@tag` atoms in world.
//!
//! A tagged repository's packages are masked unless world pins a package to the tag, or a
//! pinned package needs them; untagged ones stay preferred even then, so a pinned package's
//! dependencies come from the untagged repositories when they fit. This is apk's model
//! (`src/solver.c`: `pinning_allowed`, `tag_ok`, `tag_preferred`, `get_tag`), computed before
//! the solve: the tags a package may come from are inherited from every package that may be
//! chosen and depends on it (apk inherits only from the chosen one; the two differ only when a
//! package's other versions need other names). The solver sees the result as two facts per
//! candidate, masked and preferred; the tag recorded in the db (`s:`) is the first tag, in
//! apk's order, both allowed for the package and listing it.

use crate::db::Db;
use crate::dep::Dep;
use crate::repo::RepoSet;
use crate::solver::Candidate;
use std::collections::HashMap;

/// Tag 0: the untagged repositories.
const UNTAGGED: usize = 0;

/// What pinning decides for each candidate.
pub(super) struct Pins {
    /// Not allowed by any pin: where the package is (`@testing`, `cache`), for the message.
    pub masked: Vec<Option<String>>,
    /// From a repository this package's pin prefers (ranked above the version).
    pub preferred: Vec<bool>,
    /// The tag to record (`s:`) when the package is chosen.
    pub tag: Vec<Option<String>>,
}

/// Tag names in apk's numbering: untagged, then in order of first mention (world file,
/// installed db, repositories, then the atoms being added).
struct Tags(Vec<String>);

impl Tags {
    fn id(&mut self, name: Option<&str>) -> usize {
        let Some(name) = name else { return UNTAGGED };
        match self.0.iter().position(|t| t == name) {
            Some(i) => i,
            None => {
                self.0.push(name.to_string());
                self.0.len() - 1
            }
        }
    }
}

fn bit(t: usize) -> u64 {
    1u64.checked_shl(t as u32).unwrap_or(0)
}

fn provides(c: &Candidate, dep: &Dep) -> bool {
    c.info
        .provides_name(&dep.name)
        .is_some_and(|v| dep.matches_provider(v, c.info.identity.as_ref()))
}

/// Decides masking, preference and tags for `cands` (the first `repos.packages.len()` are the
/// repository packages, in order; the rest are installed packages no repository has) under
/// `world` (the db's world with the new atoms already in, `added` the new atoms).
pub(super) fn decide(
    cands: &[Candidate],
    repos: &RepoSet,
    db: &Db,
    world: &[Dep],
    added: &[Dep],
) -> Pins {
    let mut tags = Tags(vec![String::new()]);
    for d in &db.world {
        tags.id(d.tag.as_deref());
    }
    for p in &db.packages {
        tags.id(p.tag.as_deref());
    }
    // Repository bits of each tag (bit 0, the cache, belongs to no tag).
    let mut tag_repos: Vec<u64> = vec![0; 1];
    for r in &repos.repos {
        let t = tags.id(r.tag.as_deref());
        tag_repos.resize(tags.0.len(), 0);
        tag_repos[t] |= bit(r.index);
    }
    for d in added {
        tags.id(d.tag.as_deref());
    }
    tag_repos.resize(tags.0.len(), 0);
    let installed_tag: HashMap<_, _> = db
        .packages
        .iter()
        .filter_map(|p| Some((p.info.identity?, tags.id(p.tag.as_deref()))))
        .collect();

    // The tags listing each candidate; an installed package also counts as in its own tag.
    let in_tags: Vec<u64> = cands
        .iter()
        .map(|c| {
            let mut m = 0;
            for (t, r) in tag_repos.iter().enumerate() {
                if c.repos & r != 0 {
                    m |= bit(t);
                }
            }
            if c.installed {
                let t = c.info.identity.and_then(|k| installed_tag.get(&k).copied());
                m |= bit(t.unwrap_or(UNTAGGED));
            }
            m
        })
        .collect();
    let cached_non_repository: Vec<bool> = (0..cands.len())
        .map(|i| {
            repos
                .packages
                .get(i)
                .is_some_and(|a| a.cached_non_repository)
        })
        .collect();
    let default_ok =
        |i: usize| in_tags[i] & bit(UNTAGGED) != 0 || cands[i].info.installed_size == 0;
    let always_ok = |i: usize| default_ok(i) || cands[i].installed || cached_non_repository[i];

    let mut providers: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut rinstall_if: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in cands.iter().enumerate() {
        providers.entry(&c.info.name).or_default().push(i);
        for p in &c.info.provides {
            providers.entry(&p.name).or_default().push(i);
        }
        for d in &c.info.install_if {
            rinstall_if.entry(&d.name).or_default().push(i);
        }
    }

    // World pins: allowed tags, and the preferred tag of what world names.
    let mut allowed: Vec<u64> = vec![bit(UNTAGGED); cands.len()];
    let mut world_pref: Vec<Option<u64>> = vec![None; cands.len()];
    let mut work: Vec<usize> = Vec::new();
    for d in world.iter().filter(|d| !d.conflict) {
        let t = bit(tags.id(d.tag.as_deref()));
        for &i in providers.get(d.name.as_str()).into_iter().flatten() {
            if provides(&cands[i], d) {
                allowed[i] |= t;
                *world_pref[i].get_or_insert(0) |= t;
                work.push(i);
            }
        }
    }
    let ok = |allowed: &[u64], i: usize| always_ok(i) || in_tags[i] & allowed[i] != 0;
    // Inheritance: a package that may be chosen passes its pins to what it depends on and to
    // the install_if packages it triggers.
    while let Some(p) = work.pop() {
        if allowed[p] == bit(UNTAGGED) || !ok(&allowed, p) {
            continue;
        }
        let info = &cands[p].info;
        let mut next: Vec<usize> = Vec::new();
        for d in info.depends.iter().filter(|d| !d.conflict) {
            for &q in providers.get(d.name.as_str()).into_iter().flatten() {
                if provides(&cands[q], d) {
                    next.push(q);
                }
            }
        }
        for n in std::iter::once(&info.name).chain(info.provides.iter().map(|d| &d.name)) {
            next.extend(rinstall_if.get(n.as_str()).into_iter().flatten());
        }
        for q in next {
            if allowed[q] | allowed[p] != allowed[q] {
                allowed[q] |= allowed[p];
                work.push(q);
            }
        }
    }

    let mut pins = Pins {
        masked: Vec::with_capacity(cands.len()),
        preferred: Vec::with_capacity(cands.len()),
        tag: Vec::with_capacity(cands.len()),
    };
    for i in 0..cands.len() {
        pins.masked
            .push((!ok(&allowed, i)).then(|| masked_in(&tags, in_tags[i])));
        pins.preferred.push(match world_pref[i] {
            Some(t) => in_tags[i] & t != 0,
            None => default_ok(i),
        });
        let first = (in_tags[i] & allowed[i]).trailing_zeros() as usize;
        pins.tag
            .push((first != UNTAGGED && first < tags.0.len()).then(|| tags.0[first].clone()));
    }
    pins
}

/// apk's "masked in:" list: the tags whose repositories have the package, or the cache.
fn masked_in(tags: &Tags, in_tags: u64) -> String {
    let named: Vec<String> = (1..tags.0.len())
        .filter(|&t| in_tags & bit(t) != 0)
        .map(|t| format!("@{}", tags.0[t]))
        .collect();
    if named.is_empty() {
        "cache".into()
    } else {
        named.join(" ")
    }
}
