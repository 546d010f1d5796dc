//! From the chosen providers to the changeset (apk's `generate_changeset`): a walk from world
//! through dependencies that lists each package after what it depends on (breaking cycles
//! where it meets them) and each `install_if` package once its triggers are in. The walk also
//! finds the last errors: a dependency the chosen provider does not meet, or one on a package
//! in error.

use super::engine::Engine;
use super::graph::provided;
use crate::dep::Dep;

pub(super) struct Changeset {
    /// New packages of the changeset (kept installed ones included), in install order.
    pub order: Vec<usize>,
    /// Installed packages no longer chosen.
    pub removals: Vec<usize>,
}

struct Walk<'e, 'g, 'a> {
    e: &'e mut Engine<'g, 'a>,
    name_done: Vec<bool>,
    pkg_done: Vec<bool>,
    order: Vec<usize>,
}

pub(super) fn generate(e: &mut Engine, world: &[Dep]) -> Changeset {
    let g = e.g;
    let mut w = Walk {
        name_done: vec![false; g.names.len()],
        pkg_done: vec![false; g.pkgs.len()],
        order: Vec::new(),
        e,
    };
    for d in world {
        if let Some(n) = g.name(&d.name) {
            w.dep(None, n, d);
        }
    }
    for p in 0..g.pkgs.len() {
        if g.cand(p).installed {
            w.name_change(g.pkgs[p].name);
        }
    }
    // An installed package stays only as its name's choice (the same or another version).
    let removals = (0..g.pkgs.len())
        .filter(|&p| g.cand(p).installed)
        .filter(|&p| {
            let n = g.pkgs[p].name;
            !w.e.ns[n].chosen.is_some_and(|c| g.pkgs[c.pkg].name == n)
        })
        .collect();
    Changeset {
        order: w.order,
        removals,
    }
}

impl Walk<'_, '_, '_> {
    fn error(&mut self, p: Option<usize>) {
        if let Some(p) = p {
            if !self.e.ps[p].error {
                self.e.ps[p].error = true;
                self.e.errors += 1;
            }
        }
    }

    fn dep(&mut self, parent: Option<usize>, n: usize, d: &Dep) {
        let chosen = self.e.ns[n].chosen;
        if !provided(self.e.g, d, chosen) {
            self.error(parent);
        }
        self.name_change(n);
        if chosen.is_some_and(|c| self.e.ps[c.pkg].error) {
            self.error(parent);
        }
    }

    fn name_change(&mut self, n: usize) {
        if self.name_done[n] {
            return;
        }
        self.name_done[n] = true;
        let g = self.e.g;
        let Some(c) = self.e.ns[n].chosen else {
            return;
        };
        let p = c.pkg;
        if self.pkg_done[p] {
            return;
        }
        self.pkg_done[p] = true;
        let node = &g.pkgs[p];
        self.name_done[node.name] = true;
        for &(dn, _, _) in g.provides(p) {
            self.name_done[dn] = true;
        }
        for &(dn, d) in g.depends(p) {
            self.dep(Some(p), dn, d);
        }
        self.order.push(p);
        let triggers = std::iter::once(node.name).chain(g.provides(p).iter().map(|&(n, _, _)| n));
        for t in triggers {
            for &n0 in g.rinstall_if(t) {
                self.install_by_iif(n0);
            }
        }
    }

    /// An `install_if` package joins once all its triggers are in the changeset and met.
    fn install_by_iif(&mut self, n: usize) {
        let Some(c) = self.e.ns[n].chosen else {
            return;
        };
        if !self.e.ns[n].seen || self.name_done[n] {
            return;
        }
        let g = self.e.g;
        let ready = g
            .install_if(c.pkg)
            .iter()
            .all(|&(dn, d)| self.name_done[dn] && provided(g, d, self.e.ns[dn].chosen));
        if ready {
            self.name_change(n);
        }
    }
}
