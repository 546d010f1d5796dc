//! Choosing what to install, and in which order.
//!
//! A propagating solver in the spirit of apk's (`src/solver.c`), simplified for what boot needs:
//! a fresh or growing root. Repository pinning comes decided per candidate (masked, preferred:
//! see `install::pin`). Names in world are resolved in apk's sorted order; each
//! name gets the best provider by apk's preference (version of the asked name, own version,
//! `provider_priority`, lowest repository); constraints found later restart the solve with
//! that knowledge instead of backtracking. `install_if` packages join once their triggers are
//! in. With `force_broken_world` (diskless boot), world entries that cannot be satisfied are
//! dropped and the rest is solved again, as apk's `APK_FORCE_BROKEN_WORLD` does. The install
//! order is apk's post-order walk (`generate_changeset`), which also breaks cycles.

use super::dep::{name_cmp, Dep};
use super::pkg::PkgInfo;
use super::version;
use super::ApkError;
use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

/// A package the solver may pick.
#[derive(Clone, Debug)]
pub struct Candidate {
    /// The package's record.
    pub info: PkgInfo,
    /// Repository bits (bit 0: the cache); lower is preferred.
    pub repos: u64,
    /// Installable from an available repository, the cache, or already installed.
    pub available: bool,
    /// Already installed in the root (preferred when equal otherwise).
    pub installed: bool,
    /// Masked by repository pinning: where it is (`@testing`), for the message.
    pub masked: Option<String>,
    /// From a repository its pin prefers: ranked above the version (apk's `tag_preferred`).
    pub pin_preferred: bool,
}

/// Who asked for something.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Root {
    World(usize),
    InstallIf(usize),
}

/// The result of a solve.
#[derive(Debug, Default)]
pub struct Solution {
    /// Indices into the candidates, in install order.
    pub order: Vec<usize>,
    /// World atoms dropped because they could not be satisfied, with the reason.
    pub broken_world: Vec<(Dep, String)>,
    /// The world as written to `etc/apk/world`: sorted, including broken atoms.
    pub world: Vec<Dep>,
}

struct Problem {
    roots: Vec<Root>,
    text: String,
}

struct Run<'a> {
    pkgs: &'a [Candidate],
    providers: &'a HashMap<&'a str, Vec<usize>>,
    world: &'a [Dep],
    excluded: &'a HashSet<usize>,
    /// Constraints known for a name: (atom, who asked).
    learned: &'a mut HashMap<String, Vec<(Dep, Root)>>,
    selected: Vec<bool>,
    root_of: Vec<Option<Root>>,
    problems: Vec<Problem>,
    restart: bool,
    /// World atoms left out (broken world).
    broken: &'a HashSet<usize>,
    /// Requirements of a virtual name that no provider could be chosen for yet: apk decides
    /// those last, once it knows which provider names are required by name.
    deferred: Vec<(Dep, Option<usize>, Root)>,
    /// Deferred requirements are final: report them instead of deferring again.
    finishing: bool,
}

fn pkg_text(p: &PkgInfo) -> String {
    p.nv()
}

impl Run<'_> {
    fn requirer_text(&self, by: Option<usize>, dep: &Dep, root: Root) -> String {
        match (by, root) {
            (Some(p), _) => format!("{}[{dep}]", pkg_text(&self.pkgs[p].info)),
            (None, Root::World(_)) => format!("world[{dep}]"),
            (None, Root::InstallIf(p)) => format!("{}[install_if]", pkg_text(&self.pkgs[p].info)),
        }
    }

    /// Selected packages providing `name`.
    fn selected_providers(&self, name: &str) -> Vec<usize> {
        self.providers
            .get(name)
            .map(|v| v.iter().copied().filter(|&p| self.selected[p]).collect())
            .unwrap_or_default()
    }

    fn satisfies(&self, p: usize, dep: &Dep) -> bool {
        let info = &self.pkgs[p].info;
        match info.provides_name(&dep.name) {
            Some(ver) => dep.matches_provider(ver, info.identity.as_ref()),
            None => dep.conflict,
        }
    }

    /// Can candidate `c` be added next to what is selected, and does it meet what is known?
    fn admissible(&self, c: usize) -> Result<(), String> {
        let info = &self.pkgs[c].info;
        let mut names: Vec<(&str, bool)> = vec![(info.name.as_str(), true)];
        names.extend(
            info.provides
                .iter()
                .map(|p| (p.name.as_str(), p.provided_version().is_some())),
        );
        for (n, versioned) in names {
            for s in self.selected_providers(n) {
                if s == c {
                    continue;
                }
                let s_versioned = self.pkgs[s].info.provides_name(n).flatten().is_some();
                if versioned || s_versioned {
                    return Err(format!(
                        "conflicts with {} over {n}",
                        pkg_text(&self.pkgs[s].info)
                    ));
                }
            }
            if let Some(cons) = self.learned.get(n) {
                for (d, _) in cons {
                    if !self.satisfies(c, d) {
                        return Err(if d.conflict {
                            format!("conflicts: {d}")
                        } else {
                            format!("breaks {d}")
                        });
                    }
                }
            }
        }
        // Its own conflicts must not hit anything selected.
        for d in info.depends.iter().filter(|d| d.conflict) {
            for s in self.selected_providers(&d.name) {
                if s != c && !self.satisfies(s, d) {
                    return Err(format!("conflicts with {}", pkg_text(&self.pkgs[s].info)));
                }
            }
        }
        Ok(())
    }

    fn better(&self, name: &str, a: usize, b: usize) -> Ordering {
        let (pa, pb) = (&self.pkgs[a], &self.pkgs[b]);
        let va = pa.info.provides_name(name).flatten();
        let vb = pb.info.provides_name(name).flatten();
        let by_version = match (va, vb) {
            (Some(x), Some(y)) => version::compare(x, y),
            (Some(_), None) => Ordering::Greater,
            (None, Some(_)) => Ordering::Less,
            (None, None) => Ordering::Equal,
        };
        pa.pin_preferred
            .cmp(&pb.pin_preferred)
            .then(by_version)
            .then_with(|| {
                if pa.info.name == pb.info.name {
                    version::compare(&pa.info.version, &pb.info.version)
                } else {
                    Ordering::Equal
                }
            })
            .then_with(|| pa.installed.cmp(&pb.installed))
            .then_with(|| pa.info.provider_priority.cmp(&pb.info.provider_priority))
            .then_with(|| pb.repos.trailing_zeros().cmp(&pa.repos.trailing_zeros()))
            .then_with(|| name_cmp(&pb.info.name, &pa.info.name))
    }

    fn learn(&mut self, dep: &Dep, root: Root) -> bool {
        let list = self.learned.entry(dep.name.clone()).or_default();
        if list.iter().any(|(d, _)| d == dep) {
            return false;
        }
        list.push((dep.clone(), root));
        true
    }

    fn problem(&mut self, mut roots: Vec<Root>, text: String) {
        roots.dedup();
        self.problems.push(Problem { roots, text });
    }

    fn require(&mut self, dep: &Dep, by: Option<usize>, root: Root) {
        let versioned_or_conflict = dep.conflict || dep.version.is_some();
        let newly = versioned_or_conflict && self.learn(dep, root);
        let have = self.selected_providers(&dep.name);
        if dep.conflict {
            for s in have {
                if !self.satisfies(s, dep) {
                    let mut roots = vec![root];
                    roots.extend(self.root_of[s]);
                    let t = format!(
                        "{}: conflicts: {}",
                        pkg_text(&self.pkgs[s].info),
                        self.requirer_text(by, dep, root)
                    );
                    self.problem(roots, t);
                }
            }
            return;
        }
        if !have.is_empty() {
            if have.iter().any(|&s| self.satisfies(s, dep)) {
                return;
            }
            if newly {
                // Chosen before this constraint was known: solve again knowing it.
                self.restart = true;
                return;
            }
            let s = have[0];
            let mut roots = vec![root];
            roots.extend(self.root_of[s]);
            let t = format!(
                "{}: breaks: {}",
                pkg_text(&self.pkgs[s].info),
                self.requirer_text(by, dep, root)
            );
            self.problem(roots, t);
            return;
        }
        let all: Vec<usize> = self
            .providers
            .get(dep.name.as_str())
            .cloned()
            .unwrap_or_default();
        if all.is_empty() {
            let t = format!(
                "{} (no such package):\n    required by: {}",
                dep.name,
                self.requirer_text(by, dep, root)
            );
            self.problem(vec![root], t);
            return;
        }
        let mut reasons = Vec::new();
        let mut ok: Vec<usize> = Vec::new();
        for &c in &all {
            let p = &self.pkgs[c];
            if self.excluded.contains(&c) {
                reasons.push(format!(
                    "{}: excluded after an earlier failure",
                    pkg_text(&p.info)
                ));
            } else if let Some(tags) = &p.masked {
                reasons.push(format!("{}: masked in: {tags}", pkg_text(&p.info)));
            } else if !p.available {
                reasons.push(format!(
                    "{}: not in any available repository",
                    pkg_text(&p.info)
                ));
            } else if p.info.uninstallable {
                reasons.push(format!(
                    "{}: needs a newer apk (unknown index field)",
                    pkg_text(&p.info)
                ));
            } else if !self.satisfies(c, dep) {
                reasons.push(format!("{}: does not match {dep}", pkg_text(&p.info)));
            } else if let Err(r) = self.admissible(c) {
                reasons.push(format!("{}: {r}", pkg_text(&p.info)));
            } else {
                ok.push(c);
            }
        }
        // A name with only virtual providers is picked automatically only with a priority, or
        // when the provider's own name is required (apk's `is_provider_auto_selectable`).
        let only_virtual = ok.iter().all(|&c| {
            self.pkgs[c]
                .info
                .provides_name(&dep.name)
                .flatten()
                .is_none()
        });
        if only_virtual && !ok.is_empty() {
            let names: Vec<String> = ok.iter().map(|&c| self.pkgs[c].info.name.clone()).collect();
            ok.retain(|&c| {
                self.pkgs[c].info.provider_priority > 0
                    || self.name_required(&self.pkgs[c].info.name)
            });
            if ok.is_empty() && !self.finishing {
                self.deferred.push((dep.clone(), by, root));
                return;
            }
            if ok.is_empty() {
                let t = format!(
                    "{} (virtual):\n    note: please select one of the 'provided by' packages explicitly\n    provided by: {}\n    required by: {}",
                    dep.name,
                    names.join(" "),
                    self.requirer_text(by, dep, root)
                );
                self.problem(vec![root], t);
                return;
            }
        }
        let Some(best) = ok
            .iter()
            .copied()
            .max_by(|&a, &b| self.better(&dep.name, a, b))
        else {
            let mut roots = vec![root];
            if let Some(cons) = self.learned.get(&dep.name) {
                roots.extend(cons.iter().map(|(_, r)| *r));
            }
            for &c in &all {
                for &s in &self.selected_providers(&self.pkgs[c].info.name) {
                    roots.extend(self.root_of[s]);
                }
            }
            let t = format!(
                "{}: no candidate fits:\n    {}\n    required by: {}",
                dep.name,
                reasons.join("\n    "),
                self.requirer_text(by, dep, root)
            );
            self.problem(roots, t);
            return;
        };
        self.select(best, root);
    }

    /// Is `name` asked for by name, by world or by a selected package?
    fn name_required(&self, name: &str) -> bool {
        let world = self
            .world
            .iter()
            .enumerate()
            .any(|(i, d)| !self.broken.contains(&i) && !d.conflict && d.name == name);
        world
            || self.pkgs.iter().enumerate().any(|(p, c)| {
                self.selected[p] && c.info.depends.iter().any(|d| !d.conflict && d.name == name)
            })
    }

    fn select(&mut self, p: usize, root: Root) {
        self.selected[p] = true;
        self.root_of[p] = Some(root);
        let deps = self.pkgs[p].info.depends.clone();
        for d in &deps {
            self.require(d, Some(p), root);
            if self.restart {
                return;
            }
        }
    }

    fn install_if_ready(&self, c: usize) -> bool {
        let info = &self.pkgs[c].info;
        !info.install_if.is_empty()
            && info.install_if.iter().all(|d| {
                let sel = self.selected_providers(&d.name);
                if d.conflict {
                    sel.iter().all(|&s| self.satisfies(s, d))
                } else {
                    sel.iter().any(|&s| self.satisfies(s, d))
                }
            })
    }

    fn solve(&mut self) {
        let mut order: Vec<usize> = (0..self.world.len()).collect();
        ramboot_sys::sort::sort_by(&mut order, |&a, &b| {
            name_cmp(&self.world[a].name, &self.world[b].name)
        });
        for wi in order {
            if self.broken.contains(&wi) {
                continue;
            }
            let dep = self.world[wi].clone();
            self.require(&dep, None, Root::World(wi));
            if self.restart {
                return;
            }
        }
        loop {
            self.add_install_if();
            if self.restart {
                return;
            }
            // Virtual names decided last: a provider may have been required by name since.
            let pending = std::mem::take(&mut self.deferred);
            if pending.is_empty() {
                return;
            }
            let before = self.selected.iter().filter(|&&s| s).count();
            for (dep, by, root) in &pending {
                self.require(dep, *by, *root);
                if self.restart {
                    return;
                }
            }
            let after = self.selected.iter().filter(|&&s| s).count();
            if after == before && self.deferred.len() == pending.len() {
                // Nothing moved: what is still pending is a problem.
                self.finishing = true;
                for (dep, by, root) in std::mem::take(&mut self.deferred) {
                    self.require(&dep, by, root);
                }
                return;
            }
        }
    }

    /// install_if: adds packages whose triggers are all in, until nothing changes.
    fn add_install_if(&mut self) {
        loop {
            let mut added = false;
            let mut cands: Vec<usize> = (0..self.pkgs.len())
                .filter(|&c| {
                    !self.selected[c]
                        && !self.excluded.contains(&c)
                        && self.pkgs[c].available
                        && self.pkgs[c].masked.is_none()
                        && self.install_if_ready(c)
                })
                .collect();
            // Highest version of each name first.
            ramboot_sys::sort::sort_by(&mut cands, |&a, &b| {
                name_cmp(&self.pkgs[a].info.name, &self.pkgs[b].info.name).then_with(|| {
                    version::compare(&self.pkgs[b].info.version, &self.pkgs[a].info.version)
                })
            });
            for c in cands {
                if !self.selected_providers(&self.pkgs[c].info.name).is_empty()
                    || self.admissible(c).is_err()
                {
                    continue;
                }
                self.select(c, Root::InstallIf(c));
                if self.restart {
                    return;
                }
                added = true;
            }
            if !added {
                break;
            }
        }
    }
}

/// Solves `world` over `pkgs`. Without `force_broken_world` any problem is an error; with it,
/// unsatisfiable world atoms are reported in [`Solution::broken_world`] and skipped.
pub fn solve(
    pkgs: &[Candidate],
    world: &[Dep],
    force_broken_world: bool,
) -> Result<Solution, ApkError> {
    let mut providers: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in pkgs.iter().enumerate() {
        providers.entry(c.info.name.as_str()).or_default().push(i);
        for p in &c.info.provides {
            let v = providers.entry(p.name.as_str()).or_default();
            if !v.contains(&i) {
                v.push(i);
            }
        }
    }
    let mut learned: HashMap<String, Vec<(Dep, Root)>> = HashMap::new();
    let mut broken: HashSet<usize> = HashSet::new();
    let mut broken_reasons: Vec<(usize, String)> = Vec::new();
    let mut excluded: HashSet<usize> = HashSet::new();
    let mut attempts = 0;
    let selected = loop {
        attempts += 1;
        if attempts > 10_000 {
            return Err(ApkError::Unsatisfiable {
                problems: vec!["solver did not converge".into()],
                unused_repositories: Vec::new(),
            });
        }
        let mut run = Run {
            pkgs,
            providers: &providers,
            world,
            excluded: &excluded,
            learned: &mut learned,
            selected: vec![false; pkgs.len()],
            root_of: vec![None; pkgs.len()],
            problems: Vec::new(),
            restart: false,
            broken: &broken,
            deferred: Vec::new(),
            finishing: false,
        };
        run.solve();
        if run.restart {
            continue;
        }
        if run.problems.is_empty() {
            break run.selected;
        }
        let problems = std::mem::take(&mut run.problems);
        let mut progressed = false;
        for p in &problems {
            for r in &p.roots {
                match *r {
                    Root::InstallIf(c) => {
                        log::warn!(
                            "apk: not installing {} (install_if): {}",
                            pkgs[c].info.nv(),
                            p.text
                        );
                        progressed |= excluded.insert(c);
                    }
                    Root::World(w) if force_broken_world => {
                        if broken.insert(w) {
                            broken_reasons.push((w, p.text.clone()));
                            progressed = true;
                        }
                    }
                    Root::World(_) => {}
                }
            }
        }
        let only_install_if = problems
            .iter()
            .all(|p| p.roots.iter().all(|r| matches!(r, Root::InstallIf(_))));
        if !progressed || (!force_broken_world && !only_install_if) {
            return Err(ApkError::Unsatisfiable {
                problems: problems.into_iter().map(|p| p.text).collect(),
                unused_repositories: Vec::new(),
            });
        }
        // Constraints learned from dropped roots must not linger.
        learned.values_mut().for_each(|v| {
            v.retain(|(_, r)| match r {
                Root::World(w) => !broken.contains(w),
                Root::InstallIf(c) => !excluded.contains(c),
            })
        });
    };
    let mut world_sorted = world.to_vec();
    ramboot_sys::sort::sort_by(&mut world_sorted, |a, b| {
        name_cmp(&a.name, &b.name).then_with(|| a.to_string().cmp(&b.to_string()))
    });
    world_sorted.dedup();
    let order = install_order(pkgs, world, &selected, &providers);
    ramboot_sys::sort::sort_by_key(&mut broken_reasons, |(w, _)| *w);
    Ok(Solution {
        order,
        broken_world: broken_reasons
            .into_iter()
            .map(|(w, t)| (world[w].clone(), t))
            .collect(),
        world: world_sorted,
    })
}

/// apk's post-order walk over the chosen packages (`generate_changeset`).
fn install_order(
    pkgs: &[Candidate],
    world: &[Dep],
    selected: &[bool],
    providers: &HashMap<&str, Vec<usize>>,
) -> Vec<usize> {
    let chosen = |name: &str| -> Option<usize> {
        let list = providers.get(name)?;
        let sel: Vec<usize> = list.iter().copied().filter(|&p| selected[p]).collect();
        sel.iter()
            .copied()
            .find(|&p| pkgs[p].info.name == name)
            .or_else(|| {
                sel.iter()
                    .copied()
                    .find(|&p| pkgs[p].info.provides_name(name).flatten().is_some())
            })
            .or_else(|| sel.first().copied())
    };
    let mut rinstall_if: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, c) in pkgs.iter().enumerate() {
        if selected[i] {
            for d in &c.info.install_if {
                rinstall_if.entry(d.name.as_str()).or_default().push(i);
            }
        }
    }
    struct Walk<'a> {
        pkgs: &'a [Candidate],
        name_seen: HashSet<String>,
        pkg_seen: Vec<bool>,
        order: Vec<usize>,
    }
    fn visit<'a>(
        w: &mut Walk<'a>,
        name: &str,
        chosen: &dyn Fn(&str) -> Option<usize>,
        rii: &HashMap<&str, Vec<usize>>,
    ) {
        if !w.name_seen.insert(name.to_string()) {
            return;
        }
        let Some(p) = chosen(name) else { return };
        if w.pkg_seen[p] {
            return;
        }
        w.pkg_seen[p] = true;
        let info = &w.pkgs[p].info;
        w.name_seen.insert(info.name.clone());
        for pr in &info.provides {
            w.name_seen.insert(pr.name.clone());
        }
        for d in &info.depends {
            visit(w, &d.name, chosen, rii);
        }
        w.order.push(p);
        let mut trig_names = vec![info.name.as_str()];
        trig_names.extend(info.provides.iter().map(|p| p.name.as_str()));
        for t in trig_names {
            for &q in rii.get(t).map(|v| v.as_slice()).unwrap_or(&[]) {
                let qi = &w.pkgs[q].info;
                if w.name_seen.contains(&qi.name) {
                    continue;
                }
                if qi.install_if.iter().all(|d| w.name_seen.contains(&d.name)) {
                    let n = qi.name.clone();
                    visit(w, &n, chosen, rii);
                }
            }
        }
    }
    let mut w = Walk {
        pkgs,
        name_seen: HashSet::new(),
        pkg_seen: vec![false; pkgs.len()],
        order: Vec::new(),
    };
    let mut sorted: Vec<&Dep> = world.iter().collect();
    ramboot_sys::sort::sort_by(&mut sorted, |a, b| name_cmp(&a.name, &b.name));
    for d in sorted {
        visit(&mut w, &d.name, &chosen, &rinstall_if);
    }
    // Anything selected but not reached (install_if with unusual triggers): append in name order.
    let mut rest: Vec<usize> = (0..pkgs.len())
        .filter(|&p| selected[p] && !w.pkg_seen[p])
        .collect();
    ramboot_sys::sort::sort_by(&mut rest, |&a, &b| {
        name_cmp(&pkgs[a].info.name, &pkgs[b].info.name)
    });
    for p in rest {
        w.name_seen.remove(&pkgs[p].info.name);
        let n = pkgs[p].info.name.clone();
        visit(
            &mut w,
            &n,
            &|name| if name == n { Some(p) } else { chosen(name) },
            &rinstall_if,
        );
    }
    w.order
}
