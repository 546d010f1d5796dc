//! The solve itself, following apk's algorithm (`apk_solver_solve` in `src/solver.c`): names
//! reachable from world are discovered; constraints are applied to every provider of a name and
//! disqualify those that do not fit; a name whose providers all share a dependency passes it
//! down; a package whose dependency can no longer be met is disqualified in turn. That
//! propagation is what "backs off" to an older package when the newest one's dependencies
//! clash. When nothing is left to propagate, the next unresolved name gets its best provider
//! (see [`Engine::compare_providers`]), which is locked, and propagation resumes.
//!
//! There is no search: like apk, a wrong early choice is an error, not a retry. The
//! error is explained afterwards by `explain`.

use super::graph::{provided, Graph, Provider};
use crate::version;
use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};

/// Solver flag: prefer the newest version over the installed one (`apk add -u`).
pub(super) const FLAG_UPGRADE: u8 = 1;
/// Solver flag: the newest version, whatever is installed and whatever else it drags in
/// (`apk add -l`).
pub(super) const FLAG_LATEST: u8 = 8;

/// Pinning mask bit of the untagged repositories (apk's `APK_DEFAULT_PINNING_MASK`).
pub(super) const DEFAULT_PINNING: u32 = 1;

#[derive(Clone, Default)]
pub(super) struct NameState<'a> {
    pub seen: bool,
    pub locked: bool,
    /// The provider chosen once locked (None: nothing, apk's `provider_none`).
    pub chosen: Option<Provider<'a>>,
    pub requirers: u32,
    has_iif: bool,
    no_iif: bool,
    reevaluate_deps: bool,
    reevaluate_iif: bool,
    has_options: bool,
    has_auto_selectable: bool,
    reverse_deps_done: bool,
    order_id: u32,
    merge_depends: u32,
    merge_provides: u32,
    has_virtual_provides: bool,
    in_dirty: bool,
    in_unresolved: bool,
    /// When the name was last queued unresolved: apk's list holds the latest first.
    unresolved_seq: u32,
    /// What [`Engine::offer`] last pushed for the name: ready, and the dequeue key.
    offered: Option<(bool, u64, u32)>,
    /// Named on the command line (apk's `solver_flags_set`): resolved before the others.
    pub flags_set: bool,
}

#[derive(Clone, Default)]
pub(super) struct PkgState {
    seen: bool,
    pub selectable: bool,
    conflicts: u32,
    iif_triggered: bool,
    iif_failed: bool,
    dependencies_merged: bool,
    dependencies_used: bool,
    pub error: bool,
    pub tag_ok: bool,
    tag_preferred: bool,
    pub pinning_allowed: u32,
    solver_flags: u8,
    solver_flags_inheritable: u8,
}

pub(super) struct Engine<'g, 'a> {
    pub g: &'g Graph<'a>,
    pub ns: Vec<NameState<'a>>,
    pub ps: Vec<PkgState>,
    dirty: VecDeque<usize>,
    /// Unresolved names ready to be chosen now (apk's early exit in its dequeue), as
    /// (0, queue time, name): the latest queued is taken first. Entries go stale when the name
    /// changes and are skipped then; a change pushes a fresh entry.
    ready: BinaryHeap<(u64, u32, u32)>,
    /// Every unresolved name as (dequeue key, queue time, name), best first, stale entries
    /// skipped as in `ready`.
    by_key: BinaryHeap<(u64, u32, u32)>,
    queued: u32,
    pub errors: u32,
    order_id: u32,
    flags_inherit: u8,
    pinning_inherit: u32,
    /// Repositories allowed by each pinning bit (bit 0: untagged). See [`Engine::tag_repos`].
    repo_tags: &'g [u64],
}

impl<'g, 'a> Engine<'g, 'a> {
    pub fn new(g: &'g Graph<'a>, repo_tags: &'g [u64]) -> Self {
        Engine {
            g,
            ns: vec![NameState::default(); g.names.len()],
            ps: vec![PkgState::default(); g.pkgs.len()],
            dirty: VecDeque::new(),
            ready: BinaryHeap::new(),
            by_key: BinaryHeap::new(),
            queued: 0,
            errors: 0,
            order_id: 0,
            flags_inherit: 0,
            pinning_inherit: 0,
            repo_tags,
        }
    }

    /// Repositories a pinning mask allows (apk's `apk_db_get_pinning_mask_repos`). With no
    /// tags configured every repository is untagged. Pinned repositories extend this.
    fn tag_repos(&self, mask: u32) -> u64 {
        if self.repo_tags.is_empty() {
            return if mask & DEFAULT_PINNING != 0 { !0 } else { 0 };
        }
        self.repo_tags
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .fold(0, |acc, (_, r)| acc | r)
    }

    /// A package's repositories, counting an installed package as in the repositories of the
    /// tag it is pinned to (apk's `get_pkg_repos`).
    pub fn pkg_repos(&self, p: usize) -> u64 {
        let c = self.g.cand(p);
        let tag = u32::try_from(c.tag).ok().and_then(|t| 1u32.checked_shl(t));
        c.repos
            | match (c.installed, tag) {
                (true, Some(bit)) => self.tag_repos(bit),
                _ => 0,
            }
    }

    /// The tag a chosen package is recorded with (apk's `get_tag`): the first tag its pins
    /// allow that lists it; None for the untagged repositories.
    pub fn pinned_tag(&self, p: usize, tags: &[super::RepoTag]) -> Option<String> {
        let repos = self.pkg_repos(p);
        let allowed = self.ps[p].pinning_allowed;
        tags.iter()
            .enumerate()
            .take(32)
            .find(|(i, t)| allowed & (1 << i) != 0 && t.repos & repos != 0)
            .filter(|(i, _)| *i != 0)
            .map(|(_, t)| t.name.clone())
    }

    /// Repositories of the untagged and the given pinning bits (for the error report).
    pub fn repos_of_pins(&self, mask: u32) -> u64 {
        self.tag_repos(mask)
    }

    /// The whole solve, given world (atoms not marked broken) and the solver flags of world.
    pub fn run(&mut self, world: &[(usize, &'a crate::dep::Dep, u32)], flags: u8) {
        self.flags_inherit = flags;
        for &(n, _, _) in world {
            self.discover(n);
        }
        for &(n, d, pin) in world {
            self.pinning_inherit = pin;
            self.apply_constraint(None, n, d);
        }
        self.flags_inherit = 0;
        self.pinning_inherit = 0;
        loop {
            while let Some(n) = self.dirty.pop_front() {
                self.ns[n].in_dirty = false;
                self.reconsider(n);
            }
            let Some(n) = self.next_unresolved() else {
                break;
            };
            self.select(n);
        }
    }

    /// apk's dequeue (`solver_solve`'s walk of its unresolved list, latest queued first):
    /// the first name ready to be chosen, else the best by [`Engine::dequeue_key`], the
    /// latest queued among equals.
    fn next_unresolved(&mut self) -> Option<usize> {
        let found = self.next_ready().or_else(|| self.next_by_key());
        debug_assert_eq!(found, self.next_unresolved_by_scan());
        found
    }

    fn next_ready(&mut self) -> Option<usize> {
        while let Some(&(_, seq, n)) = self.ready.peek() {
            let n = n as usize;
            if self.ns[n].in_unresolved && self.ns[n].unresolved_seq == seq && self.is_ready(n) {
                return Some(n);
            }
            self.ready.pop();
        }
        None
    }

    fn next_by_key(&mut self) -> Option<usize> {
        while let Some(&(key, seq, n)) = self.by_key.peek() {
            let n = n as usize;
            let s = &self.ns[n];
            if s.in_unresolved && s.unresolved_seq == seq && self.dequeue_key(n) == key {
                return Some(n);
            }
            self.by_key.pop();
        }
        None
    }

    /// The list walk itself, over all names: checks the heaps in debug builds.
    #[cfg(debug_assertions)]
    fn next_unresolved_by_scan(&self) -> Option<usize> {
        let mut queued: Vec<usize> = (0..self.ns.len())
            .filter(|&n| self.ns[n].in_unresolved)
            .collect();
        queued.sort_by_key(|&n| std::cmp::Reverse(self.ns[n].unresolved_seq));
        let mut best: Option<usize> = None;
        for n in queued {
            if self.is_ready(n) {
                return Some(n);
            }
            if !best.is_some_and(|b| self.dequeue_key(n) <= self.dequeue_key(b)) {
                best = Some(n);
            }
        }
        best
    }

    #[cfg(not(debug_assertions))]
    fn next_unresolved_by_scan(&self) -> Option<usize> {
        None
    }

    /// Chosen at once when met in the unresolved list: nothing left to wait for.
    fn is_ready(&self, n: usize) -> bool {
        let s = &self.ns[n];
        s.reverse_deps_done && s.requirers > 0 && s.has_auto_selectable && !s.has_options
    }

    /// apk's `compare_name_dequeue` as a number, higher first: auto-selectable names, then
    /// names from the command line, then the most recently discovered.
    fn dequeue_key(&self, n: usize) -> u64 {
        let s = &self.ns[n];
        (u64::from(s.has_auto_selectable) << 33)
            | (u64::from(s.flags_set) << 32)
            | u64::from(s.order_id)
    }

    /// Pushes the name's current standing in the unresolved list onto the heaps, when it
    /// changed since the last push.
    fn offer(&mut self, n: usize) {
        if !self.ns[n].in_unresolved {
            return;
        }
        let now = (
            self.is_ready(n),
            self.dequeue_key(n),
            self.ns[n].unresolved_seq,
        );
        let before = self.ns[n].offered.replace(now);
        let (ready, key, seq) = now;
        if ready && !matches!(before, Some(b) if b.0 && b.2 == seq) {
            self.ready.push((0, seq, n as u32));
        }
        if !matches!(before, Some(b) if b.1 == key && b.2 == seq) {
            self.by_key.push((key, seq, n as u32));
        }
    }

    fn mark_error(&mut self, p: Option<usize>) {
        if let Some(p) = p {
            if !self.ps[p].error {
                self.ps[p].error = true;
                self.errors += 1;
            }
        }
    }

    fn queue_dirty(&mut self, n: usize) {
        let s = &self.ns[n];
        if s.in_dirty || s.locked || (s.requirers == 0 && !s.reevaluate_iif) {
            return;
        }
        self.ns[n].in_dirty = true;
        self.dirty.push_back(n);
    }

    fn queue_unresolved(&mut self, n: usize) {
        let s = &self.ns[n];
        if s.locked {
            return;
        }
        let want = s.requirers > 0 || s.has_iif;
        if want && !s.in_unresolved {
            self.queued += 1;
            self.ns[n].in_unresolved = true;
            self.ns[n].unresolved_seq = self.queued;
            self.offer(n);
        } else if !want && s.in_unresolved {
            self.drop_unresolved(n);
        }
    }

    fn drop_unresolved(&mut self, n: usize) {
        self.ns[n].in_unresolved = false;
        self.ns[n].offered = None;
    }

    fn reevaluate_reverse_deps(&mut self, n: usize) {
        for &n0 in self.g.rdepends(n) {
            if self.ns[n0].seen {
                self.ns[n0].reevaluate_deps = true;
                self.queue_dirty(n0);
            }
        }
    }

    fn reevaluate_reverse_installif(&mut self, n: usize) {
        for &n0 in self.g.rinstall_if(n) {
            if self.ns[n0].seen && !self.ns[n0].no_iif {
                self.ns[n0].reevaluate_iif = true;
                self.queue_dirty(n0);
            }
        }
    }

    fn reevaluate_reverse_installif_pkg(&mut self, p: usize) {
        self.reevaluate_reverse_installif(self.g.pkgs[p].name);
        for &(n, _, _) in self.g.provides(p) {
            self.reevaluate_reverse_installif(n);
        }
    }

    fn disqualify(&mut self, p: usize) {
        self.ps[p].selectable = false;
        self.reevaluate_reverse_deps(self.g.pkgs[p].name);
        for &(n, _, _) in self.g.provides(p) {
            self.reevaluate_reverse_deps(n);
        }
        self.reevaluate_reverse_installif_pkg(p);
    }

    fn dependency_satisfiable(&self, n: usize, dep: &crate::dep::Dep) -> bool {
        let s = &self.ns[n];
        if s.locked {
            return provided(self.g, dep, s.chosen);
        }
        if s.requirers == 0 && provided(self.g, dep, None) {
            return true;
        }
        self.g
            .providers(n)
            .iter()
            .any(|&p| self.ps[p.pkg].selectable && provided(self.g, dep, Some(p)))
    }

    /// First sight of a package: whether it can be installed at all, and its pinning.
    fn discover_pkg(&mut self, p: usize) {
        let c = self.g.cand(p);
        let repos = self.pkg_repos(p);
        let default_repos = self.tag_repos(DEFAULT_PINNING);
        let st = &mut self.ps[p];
        st.seen = true;
        st.pinning_allowed = DEFAULT_PINNING;
        st.selectable = (c.available || c.installed) && !c.info.uninstallable;
        st.iif_failed = c.info.install_if.is_empty();
        st.tag_preferred = c.info.installed_size == 0 || repos & default_repos != 0;
        // A package only the cache has (apk's `cached_non_repository`) is in no tag.
        let cache_only = c.repos == 1;
        st.tag_ok = st.tag_preferred || cache_only || c.installed;
    }

    fn discover(&mut self, n: usize) {
        if self.ns[n].seen {
            return;
        }
        self.ns[n].seen = true;
        self.ns[n].no_iif = true;
        let g = self.g;
        for p in g.providers(n) {
            if !self.ps[p.pkg].seen {
                self.discover_pkg(p.pkg);
                for &(d, _) in g.depends(p.pkg) {
                    self.discover(d);
                }
            }
            self.ns[n].no_iif &= self.ps[p.pkg].iif_failed;
        }
        for p in g.providers(n) {
            for &n0 in g.rinstall_if(g.pkgs[p.pkg].name) {
                self.discover(n0);
            }
            for &(d, _, _) in g.provides(p.pkg) {
                if self.ns[d].seen {
                    continue;
                }
                self.discover(d);
                for &n0 in g.rinstall_if(d) {
                    self.discover(n0);
                }
            }
        }
        self.order_id += 1;
        self.ns[n].order_id = self.order_id;
    }

    fn name_requirers_changed(&mut self, n: usize) {
        self.queue_unresolved(n);
        self.reevaluate_reverse_installif(n);
        self.queue_dirty(n);
    }

    fn inherit_pinning_and_flags(&mut self, p: usize, parent: Option<usize>) {
        let repos = self.pkg_repos(p);
        match parent {
            Some(pp) => {
                let (inh, allowed) = (
                    self.ps[pp].solver_flags_inheritable,
                    self.ps[pp].pinning_allowed,
                );
                let st = &mut self.ps[p];
                st.solver_flags |= inh;
                st.solver_flags_inheritable |= inh;
                st.pinning_allowed |= allowed;
            }
            None => {
                let preferred = repos & self.tag_repos(self.pinning_inherit) != 0;
                let st = &mut self.ps[p];
                st.solver_flags |= self.flags_inherit;
                st.solver_flags_inheritable |= self.flags_inherit;
                st.pinning_allowed |= self.pinning_inherit;
                st.tag_preferred = preferred;
            }
        }
        let ok = repos & self.tag_repos(self.ps[p].pinning_allowed) != 0;
        self.ps[p].tag_ok |= ok;
    }

    fn apply_constraint(&mut self, parent: Option<usize>, n: usize, dep: &crate::dep::Dep) {
        if !dep.conflict {
            self.ns[n].requirers += 1;
            if self.ns[n].requirers == 1 {
                self.name_requirers_changed(n);
            }
        }
        let g = self.g;
        for &p in g.providers(n) {
            let ok = provided(g, dep, Some(p));
            if !ok {
                self.ps[p.pkg].conflicts += 1;
            }
            if self.ps[p.pkg].selectable && self.ps[p.pkg].conflicts > 0 {
                self.disqualify(p.pkg);
            }
            if ok {
                self.inherit_pinning_and_flags(p.pkg, parent);
            }
        }
    }

    /// Every selectable provider of `n` must also provide `must`: the others go (apk's
    /// provides transitivity).
    fn exclude_non_providers(&mut self, n: usize, must: usize, skip_virtuals: bool) {
        if n == must {
            return;
        }
        let g = self.g;
        for p in g.providers(n) {
            let node = &g.pkgs[p.pkg];
            if node.name == must
                || !self.ps[p.pkg].selectable
                || (skip_virtuals && p.version.is_none())
            {
                continue;
            }
            if g.provides(p.pkg)
                .iter()
                .any(|&(d, v, _)| d == must || (skip_virtuals && v.is_none()))
            {
                continue;
            }
            self.disqualify(p.pkg);
        }
    }

    fn is_auto_selectable(&self, p: Provider) -> bool {
        p.version.is_some()
            || self.g.cand(p.pkg).info.provider_priority > 0
            || self.ns[self.g.pkgs[p.pkg].name].requirers > 0
    }

    /// Re-examines a name whose constraints or reverse dependencies changed (apk's
    /// `reconsider_name`): disqualifies providers whose dependencies broke, evaluates
    /// `install_if`, and passes down what all remaining providers have in common.
    fn reconsider(&mut self, n: usize) {
        let g = self.g;
        let reevaluate_deps = std::mem::take(&mut self.ns[n].reevaluate_deps);
        let reevaluate_iif = std::mem::take(&mut self.ns[n].reevaluate_iif);
        self.ns[n].has_auto_selectable = false;
        let (mut num_options, mut num_tag_not_ok) = (0u32, 0u32);
        let (mut has_iif, mut no_iif) = (false, true);
        let mut first: Option<usize> = None;
        for &p in g.providers(n) {
            let pkg = p.pkg;
            self.ps[pkg].dependencies_merged = false;
            if reevaluate_deps {
                if !self.ps[pkg].selectable {
                    continue;
                }
                if g.depends(pkg)
                    .iter()
                    .any(|&(dn, d)| !self.dependency_satisfiable(dn, d))
                {
                    self.disqualify(pkg);
                }
            }
            if !self.ps[pkg].selectable {
                continue;
            }
            if reevaluate_iif && !self.ps[pkg].iif_triggered && !self.ps[pkg].iif_failed {
                self.evaluate_iif(pkg);
            }
            if reevaluate_iif && self.ps[pkg].iif_triggered {
                for &(dn, _) in g.install_if(pkg) {
                    let parent = self.ns[dn].chosen.map(|c| c.pkg);
                    self.inherit_pinning_and_flags(pkg, parent);
                }
            }
            has_iif |= self.ps[pkg].iif_triggered;
            no_iif &= self.ps[pkg].iif_failed;
            self.ns[n].has_auto_selectable |= self.ps[pkg].iif_triggered;
            if self.ns[n].requirers == 0 {
                continue;
            }
            self.ps[pkg].dependencies_merged = true;
            first.get_or_insert(pkg);
            for &(dn, d) in g.depends(pkg) {
                if !d.conflict {
                    merge_index(&mut self.ns[dn].merge_depends, num_options);
                }
            }
            let own = g.pkgs[pkg].name;
            if merge_index(&mut self.ns[own].merge_provides, num_options) {
                self.ns[own].has_virtual_provides |= p.version.is_none();
            }
            for &(dn, v, _) in g.provides(pkg) {
                if merge_index(&mut self.ns[dn].merge_provides, num_options) {
                    self.ns[dn].has_virtual_provides |= v.is_none();
                }
            }
            num_tag_not_ok += u32::from(!self.ps[pkg].tag_ok);
            num_options += 1;
            if !self.ns[n].has_auto_selectable && self.is_auto_selectable(p) {
                self.ns[n].has_auto_selectable = true;
            }
        }
        self.ns[n].has_options = num_options > 1 || num_tag_not_ok > 0;
        self.ns[n].has_iif = has_iif;
        self.ns[n].no_iif = no_iif;
        self.queue_unresolved(n);
        if let Some(pkg) = first {
            for p in g.providers(n) {
                self.ps[p.pkg].dependencies_used = self.ps[p.pkg].dependencies_merged;
            }
            self.pass_down_common(pkg, n, num_options);
        }
        self.ns[n].reverse_deps_done = g
            .rdepends(n)
            .iter()
            .all(|&n0| !self.ns[n0].seen || self.ns[n0].locked);
        self.offer(n);
    }

    /// `install_if` of a package: triggered once every trigger name is locked to a provider
    /// that fits, failed as soon as one does not.
    fn evaluate_iif(&mut self, pkg: usize) {
        let g = self.g;
        let (mut triggered, mut failed) = (true, false);
        for &(dn, d) in g.install_if(pkg) {
            if !self.ns[dn].locked {
                triggered = false;
                break;
            }
            if !provided(g, d, self.ns[dn].chosen) {
                triggered = false;
                failed = true;
                break;
            }
        }
        self.ps[pkg].iif_triggered = triggered;
        self.ps[pkg].iif_failed = failed;
    }

    /// The dependencies (and provided names) shared by all `num_options` providers merged in
    /// [`Engine::reconsider`], `first` being one of them.
    fn pass_down_common(&mut self, first: usize, n: usize, num_options: u32) {
        let g = self.g;
        let node = &g.pkgs[first];
        if num_options == 1 {
            for &(dn, d) in g.depends(first) {
                if merge_index_complete(&mut self.ns[dn].merge_depends, num_options) {
                    self.apply_constraint(Some(first), dn, d);
                }
            }
        } else {
            for &(dn, _) in g.depends(first) {
                if merge_index_complete(&mut self.ns[dn].merge_depends, num_options)
                    && self.ns[dn].requirers == 0
                {
                    self.ns[dn].requirers += 1;
                    self.name_requirers_changed(dn);
                    for p in g.providers(dn) {
                        self.inherit_pinning_and_flags(p.pkg, Some(first));
                    }
                }
            }
        }
        if merge_index_complete(&mut self.ns[node.name].merge_provides, num_options) {
            let skip = self.ns[node.name].has_virtual_provides;
            self.exclude_non_providers(node.name, n, skip);
        }
        for &(dn, _, _) in g.provides(first) {
            if merge_index_complete(&mut self.ns[dn].merge_provides, num_options) {
                let skip = self.ns[dn].has_virtual_provides;
                self.exclude_non_providers(dn, n, skip);
            }
        }
        self.ns[node.name].has_virtual_provides = false;
        for &(dn, _, _) in g.provides(first) {
            self.ns[dn].has_virtual_provides = false;
        }
    }

    /// apk's `compare_providers` for `add` (no `--available`, no removal hints):
    /// Greater means `a` is the better choice. `b` None is "no provider yet".
    fn compare_providers(&self, a: Provider, b: Option<Provider>) -> Ordering {
        let Some(b) = b else {
            return Ordering::Greater;
        };
        let (sa, sb) = (&self.ps[a.pkg], &self.ps[b.pkg]);
        let (ca, cb) = (self.g.cand(a.pkg), self.g.cand(b.pkg));
        let flags = sa.solver_flags | sb.solver_flags;
        let upgrade = flags & FLAG_UPGRADE != 0;
        let latest = flags & FLAG_LATEST != 0
            && sa.pinning_allowed == DEFAULT_PINNING
            && sb.pinning_allowed == DEFAULT_PINNING;
        let prefer_installed = |ord: Ordering| {
            if upgrade || latest {
                ord
            } else {
                ord.then_with(|| ca.installed.cmp(&cb.installed))
            }
        };
        let first = if latest {
            // Only pinning matters before the version.
            sa.tag_ok.cmp(&sb.tag_ok)
        } else {
            sa.selectable
                .cmp(&sb.selectable)
                .then_with(|| sa.dependencies_used.cmp(&sb.dependencies_used))
                .then_with(|| sb.conflicts.cmp(&sa.conflicts))
                .then_with(|| sa.tag_ok.cmp(&sb.tag_ok))
                .then_with(|| sa.tag_preferred.cmp(&sb.tag_preferred))
        };
        prefer_installed(first)
            .then_with(|| version_order(a.version, b.version))
            .then_with(|| {
                if self.g.pkgs[a.pkg].name == self.g.pkgs[b.pkg].name {
                    version::compare(&ca.info.version, &cb.info.version)
                } else {
                    Ordering::Equal
                }
            })
            .then_with(|| ca.installed.cmp(&cb.installed))
            .then_with(|| ca.info.provider_priority.cmp(&cb.info.provider_priority))
            .then_with(|| sa.selectable.cmp(&sb.selectable))
            .then_with(|| ffs(cb.repos).cmp(&ffs(ca.repos)))
    }

    fn assign_name(&mut self, n: usize, p: Option<Provider<'a>>) {
        if self.ns[n].locked {
            let both_virtual = p.is_some_and(|p| p.version.is_none())
                && self.ns[n].chosen.is_some_and(|c| c.version.is_none());
            if !both_virtual {
                // Two packages (or one, twice) provide the same name.
                self.mark_error(p.map(|p| p.pkg));
                self.mark_error(self.ns[n].chosen.map(|c| c.pkg));
            }
            return;
        }
        self.ns[n].locked = true;
        self.ns[n].chosen = p;
        self.drop_unresolved(n);
        if self.ns[n].in_dirty {
            self.ns[n].in_dirty = false;
            self.dirty.retain(|&x| x != n);
        }
        let g = self.g;
        for p0 in g.providers(n) {
            if Some(p0.pkg) == p.map(|p| p.pkg) {
                continue;
            }
            if p.is_some_and(|p| p.version.is_none()) && p0.version.is_none() {
                continue;
            }
            self.disqualify(p0.pkg);
        }
        self.reevaluate_reverse_deps(n);
        match p {
            Some(p) => self.reevaluate_reverse_installif_pkg(p.pkg),
            None => self.reevaluate_reverse_installif(n),
        }
    }

    fn select(&mut self, n: usize) {
        let g = self.g;
        let mut chosen: Option<Provider<'a>> = None;
        let s = &self.ns[n];
        if s.requirers > 0 || s.has_iif {
            for &p in g.providers(n) {
                let ps = &self.ps[p.pkg];
                if self.ns[n].requirers == 0 && (!ps.iif_triggered || !ps.tag_ok || !ps.selectable)
                {
                    continue;
                }
                if !self.is_auto_selectable(p) {
                    continue;
                }
                if self.compare_providers(p, chosen) == Ordering::Greater {
                    chosen = Some(p);
                }
            }
        }
        let Some(c) = chosen else {
            self.assign_name(n, None);
            if self.ns[n].requirers > 0 {
                self.errors += 1;
            }
            return;
        };
        let pkg = c.pkg;
        if !self.ps[pkg].selectable || !self.ps[pkg].tag_ok {
            self.mark_error(Some(pkg));
        }
        let node = &g.pkgs[pkg];
        self.assign_name(
            node.name,
            Some(Provider {
                pkg,
                version: Some(&g.cand(pkg).info.version),
            }),
        );
        for &(dn, v, _) in g.provides(pkg) {
            self.assign_name(dn, Some(Provider { pkg, version: v }));
        }
        for &(dn, d) in g.depends(pkg) {
            self.apply_constraint(Some(pkg), dn, d);
        }
    }
}

fn merge_index(index: &mut u32, num_options: u32) -> bool {
    if *index != num_options {
        return false;
    }
    *index = num_options + 1;
    true
}

fn merge_index_complete(index: &mut u32, num_options: u32) -> bool {
    let all = *index == num_options;
    *index = 0;
    all
}

/// Provided versions compared as apk does: a virtual provide has no version, and comparing
/// with it decides nothing.
fn version_order(a: Option<&str>, b: Option<&str>) -> Ordering {
    match (a, b) {
        (Some(x), Some(y)) => version::compare(x, y),
        _ => Ordering::Equal,
    }
}

/// The 1-based position of the lowest set bit, 0 for none (C's `ffs`).
fn ffs(x: u64) -> u32 {
    if x == 0 {
        0
    } else {
        x.trailing_zeros() + 1
    }
}

impl Engine<'_, '_> {
    /// A name from the command line: dequeued early, and its providers carry `flags` (apk's
    /// `apk_solver_set_name_flags`).
    pub fn mark_named(&mut self, n: usize, flags: u8) {
        self.ns[n].flags_set = true;
        for p in self.g.providers(n) {
            self.ps[p.pkg].solver_flags |= flags;
            self.ps[p.pkg].solver_flags_inheritable |= flags;
        }
    }
}
