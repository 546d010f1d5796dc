//! Why a solve failed, in apk's words (`apk_solver_print_errors` in `src/commit.c`): for each
//! package of the failed changeset, what it conflicts with, what it breaks and what wanted it;
//! for each name nothing could be chosen for, who required it and, for a virtual name, which
//! packages provide it.
//!
//! Each problem is one block: a label line (`libfoo-1:`) and indented lines
//! (`    conflicts: libfoo-2`). Lists are written on one line where apk wraps them.

use super::engine::{self, Engine};
use super::graph::{analyze, DepMatch, Graph};
use crate::dep::Dep;

/// Name states of apk's error walk.
const PRESENT: u8 = 1;
const MISSING: u8 = 2;
const VIRTUAL_ONLY: u8 = 4;
const INSTALL_IF: u8 = 8;

struct Report<'g, 'a> {
    g: &'g Graph<'a>,
    tags: &'g [super::RepoTag],
    world: &'g [Dep],
    marked: Vec<bool>,
    name_state: Vec<u8>,
    pkg_state: Vec<u8>,
    blocks: Vec<String>,
}

/// The problems of a failed solve. `changes` are the new packages of the changeset.
pub(super) fn problems(
    e: &Engine,
    world: &[Dep],
    changes: &[usize],
    tags: &[super::RepoTag],
) -> Vec<String> {
    let g = e.g;
    let mut r = Report {
        g,
        tags,
        world,
        marked: vec![false; g.pkgs.len()],
        name_state: vec![0; g.names.len()],
        pkg_state: vec![0; g.pkgs.len()],
        blocks: Vec::new(),
    };
    for &p in changes {
        r.marked[p] = true;
    }
    r.discover_deps(world.iter().filter_map(|d| g.name(&d.name).map(|n| (n, d))));
    r.missing_in(world.iter().filter_map(|d| g.name(&d.name).map(|n| (n, d))));
    for &p in changes {
        r.package(e, p);
        r.missing_in(g.depends(p).iter().map(|&(n, d)| (n, d)));
    }
    if r.blocks.is_empty() {
        r.blocks
            .push("the error reporter did not find the broken constraints".into());
    }
    r.blocks
}

impl Report<'_, '_> {
    fn discover_deps<'d>(&mut self, deps: impl Iterator<Item = (usize, &'d Dep)>) {
        let deps: Vec<_> = deps.filter(|(_, d)| !d.conflict).map(|(n, _)| n).collect();
        for n in deps {
            self.discover_name(n, PRESENT);
        }
    }

    /// Is `n` the package's own name or a versioned provide of it?
    fn concrete(&self, p: usize, n: usize) -> bool {
        self.g.pkgs[p].name == n
            || self
                .g
                .provides(p)
                .iter()
                .any(|&(d, v, _)| d == n && v.is_some())
    }

    fn discover_name(&mut self, n: usize, state: u8) {
        let g = self.g;
        for prov in g.providers(n) {
            let p = prov.pkg;
            if !self.marked[p] {
                continue;
            }
            let mut st = state;
            if g.cand(p).info.provider_priority == 0 && !self.concrete(p, n) {
                st = VIRTUAL_ONLY;
            }
            if self.pkg_state[p] & st != 0 {
                continue;
            }
            self.pkg_state[p] |= st;
            self.name_state[g.pkgs[p].name] |= st;
            for &(d, v, _) in g.provides(p) {
                self.name_state[d] |= if st == INSTALL_IF && v.is_none() {
                    VIRTUAL_ONLY
                } else {
                    st
                };
            }
            self.discover_deps(g.depends(p).iter().map(|&(n, d)| (n, d)));
            if st == PRESENT || st == INSTALL_IF {
                self.discover_reverse_iif(g.pkgs[p].name);
                for &(d, _, _) in g.provides(p) {
                    self.discover_reverse_iif(d);
                }
            }
        }
    }

    fn discover_reverse_iif(&mut self, n: usize) {
        let g = self.g;
        for &n0 in g.rinstall_if(n) {
            for prov in g.providers(n0) {
                let p = prov.pkg;
                if !self.marked[p] || g.install_if(p).is_empty() {
                    continue;
                }
                let fires = g.install_if(p).iter().all(|&(dn, d)| {
                    d.conflict != (self.name_state[dn] & (PRESENT | INSTALL_IF) != 0)
                });
                if fires {
                    self.discover_name(g.pkgs[p].name, INSTALL_IF);
                    for &(d, _, _) in g.provides(p) {
                        self.discover_name(d, INSTALL_IF);
                    }
                }
            }
        }
    }

    /// Names required by `deps` that nothing present provides.
    fn missing_in<'d>(&mut self, deps: impl Iterator<Item = (usize, &'d Dep)>) {
        let deps: Vec<_> = deps.filter(|(_, d)| !d.conflict).map(|(n, _)| n).collect();
        for n in deps {
            if self.name_state[n] & (INSTALL_IF | PRESENT | MISSING) != 0 {
                continue;
            }
            self.name_state[n] |= MISSING;
            self.missing_name(n);
        }
    }

    fn missing_name(&mut self, n: usize) {
        let g = self.g;
        let node = &g.names[n];
        let mut lines = Vec::new();
        let label = if g.providers(n).is_empty() {
            format!("{} (no such package):", node.text)
        } else {
            lines.push("note: please select one of the 'provided by' packages explicitly".into());
            lines.push(format!("provided by: {}", self.provided_by(n)));
            format!("{} (virtual):", node.text)
        };
        let mut required = Vec::new();
        for d in self
            .world
            .iter()
            .filter(|d| d.name == node.text && !d.conflict)
        {
            required.push(format!("world[{d}]"));
        }
        let mut seen = vec![false; g.pkgs.len()];
        for &n0 in g.rdepends(n) {
            for prov in g.providers(n0) {
                let p = prov.pkg;
                if !self.marked[p] || seen[p] {
                    continue;
                }
                seen[p] = true;
                let dep = g.depends(p).iter().find(|&&(dn, d)| dn == n && !d.conflict);
                if let Some((_, d)) = dep {
                    required.push(format!("{}[{d}]", g.nv(p)));
                    break;
                }
            }
        }
        if !required.is_empty() {
            lines.push(format!("required by: {}", required.join(" ")));
        }
        self.block(label, lines);
    }

    /// The providers of a virtual name: a package name when all its versions provide it,
    /// otherwise the single packages.
    fn provided_by(&self, n: usize) -> String {
        let g = self.g;
        let mut refs = vec![0usize; g.names.len()];
        for prov in g.providers(n) {
            refs[g.pkgs[prov.pkg].name] += 1;
        }
        let mut out = Vec::new();
        for prov in g.providers(n) {
            let n0 = g.pkgs[prov.pkg].name;
            if refs[n0] == g.providers(n0).len() {
                out.push(g.names[n0].text.to_string());
                refs[n0] = 0;
            } else if refs[n0] > 0 {
                out.push(g.nv(prov.pkg));
                refs[n0] -= 1;
            }
        }
        out.join(" ")
    }

    /// What is wrong with a package of the failed changeset, if anything.
    fn package(&mut self, e: &Engine, p: usize) {
        let mut lines = Vec::new();
        if let Some(m) = self.masked(e, p) {
            lines.push(format!("masked in: {m}"));
        }
        let conflicts = self.conflicts(p);
        if !conflicts.is_empty() {
            lines.push(format!("conflicts: {}", conflicts.join(" ")));
        }
        let breaks = self.matching_deps(p, DepMatch::Conflicts);
        if !breaks.is_empty() {
            lines.push(format!("breaks: {}", breaks.join(" ")));
        }
        if lines.is_empty() {
            return;
        }
        let satisfies = self.matching_deps(p, DepMatch::Satisfies);
        if !satisfies.is_empty() {
            lines.push(format!("satisfies: {}", satisfies.join(" ")));
        }
        self.block(format!("{}:", self.g.nv(p)), lines);
    }

    /// Where a package that cannot be installed from here lives (apk's pinning errors): no
    /// repository, or only tagged repositories nothing pins it to.
    fn masked(&self, e: &Engine, p: usize) -> Option<String> {
        let c = self.g.cand(p);
        if c.installed {
            return None;
        }
        if !c.available {
            return Some("--no-network".into());
        }
        let tag = e.pinned_tag(p, self.tags);
        let bit = tag
            .and_then(|t| self.tags.iter().position(|x| x.name == t))
            .map_or(0, |i| 1u32 << i);
        if c.repos & e.repos_of_pins(engine::DEFAULT_PINNING | bit) != 0 {
            return None;
        }
        let listed: Vec<String> = self
            .tags
            .iter()
            .filter(|t| t.repos & c.repos != 0)
            .map(|t| format!("@{}", t.name))
            .collect();
        (!listed.is_empty()).then(|| listed.join(" "))
    }

    fn conflicts(&self, p: usize) -> Vec<String> {
        let g = self.g;
        let node = &g.pkgs[p];
        let mut out = Vec::new();
        for prov in g.providers(node.name) {
            if prov.pkg != p && self.marked[prov.pkg] {
                out.push(g.nv(prov.pkg));
            }
        }
        for &(dn, dv, d) in g.provides(p) {
            let mut once = true;
            for prov in g.providers(dn) {
                if !self.marked[prov.pkg] || (dv.is_none() && prov.version.is_none()) {
                    continue;
                }
                if once && prov.pkg == p && prov.version == dv {
                    once = false;
                    continue;
                }
                out.push(format!("{}[{d}]", g.nv(prov.pkg)));
            }
        }
        out
    }

    /// World atoms and dependencies of marked packages that `p` satisfies or breaks.
    fn matching_deps(&self, p: usize, want: DepMatch) -> Vec<String> {
        let g = self.g;
        let mut out: Vec<String> = self
            .world
            .iter()
            .filter(|d| analyze(g, d, p) == want)
            .map(|d| format!("world[{d}]"))
            .collect();
        let mut seen = vec![false; g.pkgs.len()];
        let node = &g.pkgs[p];
        let names = std::iter::once(node.name).chain(g.provides(p).iter().map(|&(n, _, _)| n));
        for n in names {
            for &n0 in g.rdepends(n) {
                for prov in g.providers(n0) {
                    let q = prov.pkg;
                    if !self.marked[q] || seen[q] {
                        continue;
                    }
                    seen[q] = true;
                    for (_, d) in g.depends(q) {
                        if analyze(g, d, p) == want {
                            out.push(format!("{}[{d}]", g.nv(q)));
                        }
                    }
                }
            }
        }
        out
    }

    fn block(&mut self, label: String, lines: Vec<String>) {
        let mut b = label;
        for l in lines {
            b.push_str("\n    ");
            b.push_str(&l);
        }
        self.blocks.push(b);
    }
}
