//! The names and packages the solver works on, as indices, with apk's reverse edges
//! (`rdepends`, `rinstall_if`).
//!
//! Only what a solve can reach is built. A diskless boot reads the indexes of whole
//! repositories (tens of thousands of packages) to install a few hundred, so a candidate
//! nothing reaches costs one hash per name it owns, provides or triggers on (the index of
//! [`Graph::build`]'s first pass) and nothing else. The reached part is what apk's
//! `discover_name` can walk from world, the installed packages and the command line: the
//! providers of a reached name and the packages with an `install_if` on it; the own name,
//! provided names and dependencies of a reached package. A name a reached package only
//! triggers on gets an index but no edges: the solver reads its state, never its providers.
//! Packages are numbered in candidate order and edges are filtered, not reordered, so every
//! list is the one a graph of all candidates would hold, restricted to what can be seen.

use super::Candidate;
use crate::dep::Dep;

/// A package providing a name: the package's own name (version: its version), or one of its
/// `provides` (version: the provided version, None for a virtual provide).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Provider<'a> {
    pub pkg: usize,
    pub version: Option<&'a str>,
}

pub(super) struct NameNode<'a> {
    pub text: &'a str,
    providers: Span,
    rdepends: Span,
    rinstall_if: Span,
}

pub(super) struct PkgNode {
    /// The package's index in the candidates.
    pub cand: usize,
    pub name: usize,
    depends: Span,
    provides: Span,
    install_if: Span,
}

/// A node's part of one of the graph's flat lists (one allocation per list, not per node).
#[derive(Clone, Copy, Default)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn of<T>(self, list: &[T]) -> &[T] {
        &list[self.start as usize..self.end as usize]
    }
}

pub(super) struct Graph<'a> {
    cands: &'a [Candidate<'a>],
    pub names: Vec<NameNode<'a>>,
    /// Reached packages, in candidate order.
    pub pkgs: Vec<PkgNode>,
    index: Index<'a>,
    /// Per name, duplicates kept: a package providing its own name appears twice, as apk
    /// has it.
    providers: Vec<Provider<'a>>,
    /// Per name: names provided by packages that depend on it, in apk's hash order.
    rdepends: Vec<usize>,
    /// Per name: names provided by packages with an `install_if` on it.
    rinstall_if: Vec<usize>,
    depends: Vec<(usize, &'a Dep)>,
    /// (name, provided version, the atom as written).
    provides: Vec<(usize, Option<&'a str>, &'a Dep)>,
    install_if: Vec<(usize, &'a Dep)>,
}

/// No index (end of a chain, or a slot without a name yet).
const NONE: u32 = u32::MAX;

/// The first pass over every candidate: each name text once (a slot), with chains of the
/// candidates that own or provide it and of those that trigger on it (latest candidate
/// first: a link's index grows with the candidate's); one candidate's links are contiguous.
struct Index<'a> {
    /// Open addressing with linear probing, at most half full; an entry is the name's hash
    /// (high half) and its slot index plus one (low half; 0: empty). A lookup is a hash of
    /// the text's words and, nearly always, one text comparison or none.
    table: Vec<u64>,
    slots: Vec<Slot<'a>>,
    /// Per candidate: its own name, then its provides, in order.
    provided: Vec<Link>,
    /// Per candidate: its `install_if` names.
    triggers: Vec<Link>,
    /// Start of each candidate's links in `provided` and `triggers` (one more: the end).
    first_provided: Vec<u32>,
    first_trigger: Vec<u32>,
    /// Per candidate: NONE until reached, then the start of its dependencies' slots in
    /// `dep_slots`.
    first_dep: Vec<u32>,
    dep_slots: Vec<u32>,
    /// The slots the reach expanded, in the order it did.
    expanded: Vec<u32>,
}

struct Slot<'a> {
    text: &'a str,
    /// Heads of the chains (NONE: empty).
    provided: u32,
    triggers: u32,
    /// The name's index in the graph, once it has one.
    id: u32,
    expanded: bool,
}

struct Link {
    cand: u32,
    slot: u32,
    next: u32,
}

impl<'a> Index<'a> {
    fn new(cands: &'a [Candidate<'a>]) -> Self {
        let mut ix = Index {
            table: vec![0; (cands.len() * 4).next_power_of_two().max(64)],
            slots: Vec::with_capacity(cands.len() * 2),
            provided: Vec::with_capacity(cands.len() * 2),
            triggers: Vec::new(),
            first_provided: Vec::with_capacity(cands.len() + 1),
            first_trigger: Vec::with_capacity(cands.len() + 1),
            first_dep: vec![NONE; cands.len()],
            dep_slots: Vec::new(),
            expanded: Vec::new(),
        };
        for (i, c) in cands.iter().enumerate() {
            let i = i as u32;
            ix.first_provided.push(ix.provided.len() as u32);
            ix.first_trigger.push(ix.triggers.len() as u32);
            ix.link(i, &c.info.name, false);
            for d in &c.info.provides {
                ix.link(i, &d.name, false);
            }
            for d in &c.info.install_if {
                ix.link(i, &d.name, true);
            }
        }
        ix.first_provided.push(ix.provided.len() as u32);
        ix.first_trigger.push(ix.triggers.len() as u32);
        ix
    }

    fn link(&mut self, cand: u32, text: &'a str, trigger: bool) {
        let s = self.slot(text);
        let (links, head) = if trigger {
            (&mut self.triggers, &mut self.slots[s as usize].triggers)
        } else {
            (&mut self.provided, &mut self.slots[s as usize].provided)
        };
        let at = links.len() as u32;
        links.push(Link {
            cand,
            slot: s,
            next: *head,
        });
        *head = at;
    }

    /// The slot of a name, added if new.
    fn slot(&mut self, text: &'a str) -> u32 {
        let hash = name_hash(text.as_bytes());
        let at = match self.probe(text, hash) {
            Ok(s) => return s,
            Err(at) => at,
        };
        let s = self.slots.len() as u32;
        self.slots.push(Slot {
            text,
            provided: NONE,
            triggers: NONE,
            id: NONE,
            expanded: false,
        });
        self.table[at] = (u64::from(hash) << 32) | u64::from(s + 1);
        if self.slots.len() * 2 > self.table.len() {
            self.grow();
        }
        s
    }

    /// The slot of `text` (Ok), or the empty table entry where it would go (Err).
    fn probe(&self, text: &str, hash: u32) -> Result<u32, usize> {
        let mask = self.table.len() - 1;
        let mut at = hash as usize & mask;
        loop {
            let e = self.table[at];
            if e == 0 {
                return Err(at);
            }
            if (e >> 32) as u32 == hash {
                let s = e as u32 - 1;
                if self.slots[s as usize].text == text {
                    return Ok(s);
                }
            }
            at = (at + 1) & mask;
        }
    }

    fn grow(&mut self) {
        let mut table = vec![0u64; self.table.len() * 2];
        let mask = table.len() - 1;
        for &e in self.table.iter().filter(|&&e| e != 0) {
            let mut at = (e >> 32) as usize & mask;
            while table[at] != 0 {
                at = (at + 1) & mask;
            }
            table[at] = e;
        }
        self.table = table;
    }

    fn find(&self, text: &str) -> Option<u32> {
        self.probe(text, name_hash(text.as_bytes())).ok()
    }

    /// The links of one candidate: its own name's first, then its provides'.
    fn provided_by(&self, cand: usize) -> &[Link] {
        let (a, b) = (self.first_provided[cand], self.first_provided[cand + 1]);
        &self.provided[a as usize..b as usize]
    }
}

/// FxHash (rustc's) over the text's 8-byte words (the last one overlapping the one before),
/// mixed once more, high half: names come from signed indexes, so speed matters more than resistance to
/// chosen collisions.
fn name_hash(text: &[u8]) -> u32 {
    const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
    let word = |at: usize| u64::from_le_bytes(text[at..at + 8].try_into().expect("8 bytes"));
    let mut h = text.len() as u64;
    if text.len() < 8 {
        let short = text.iter().fold(0u64, |t, &b| (t << 8) | u64::from(b));
        h = (h.rotate_left(5) ^ short).wrapping_mul(K);
    } else {
        let mut at = 0;
        while at + 8 < text.len() {
            h = (h.rotate_left(5) ^ word(at)).wrapping_mul(K);
            at += 8;
        }
        h = (h.rotate_left(5) ^ word(text.len() - 8)).wrapping_mul(K);
    }
    // A product's high bits miss the factors' highest ones (the last word's last bytes):
    // fold them in before taking the high half.
    ((h ^ (h >> 32)).wrapping_mul(K) >> 32) as u32
}

/// apk builds the reverse edges walking its name hash table, so they come in the order of the
/// names' buckets; the solver's queues, and the error report's lists, follow it.
fn in_apk_hash_order(names: &[NameNode], list: &mut [usize], span: fn(&NameNode) -> Span) {
    let mut bucket = vec![NONE; names.len()];
    for node in names {
        let sp = span(node);
        if sp.end - sp.start < 2 {
            continue;
        }
        let part = &mut list[sp.start as usize..sp.end as usize];
        for &x in part.iter() {
            if bucket[x] == NONE {
                bucket[x] = apk_name_bucket(names[x].text);
            }
        }
        ramboot_sys::sort::sort_by_key(part, |&x| bucket[x]);
    }
}

/// Keeps the first occurrence of each name in `list[start..end]`, moved to the front of that
/// range; returns the new end. `last_in[x]` is the list `x` was last seen in (`id`).
fn keep_first(list: &mut [usize], start: u32, end: u32, last_in: &mut [u32], id: u32) -> u32 {
    let mut kept = start as usize;
    for i in start as usize..end as usize {
        let x = list[i];
        if std::mem::replace(&mut last_in[x], id) != id {
            list[kept] = x;
            kept += 1;
        }
    }
    kept as u32
}

/// The links of a chain (their indices), latest candidate first.
fn chain(links: &[Link], head: u32) -> impl Iterator<Item = usize> + '_ {
    let mut at = head;
    std::iter::from_fn(move || {
        let here = at as usize;
        at = links.get(here)?.next;
        Some(here)
    })
}

impl<'a> Graph<'a> {
    /// The graph of what `roots` (world and command-line names) and the installed packages
    /// reach among `cands`.
    pub fn build(cands: &'a [Candidate<'a>], roots: impl Iterator<Item = &'a str>) -> Graph<'a> {
        let mut index = Index::new(cands);
        let reached = reach(&mut index, cands, roots);
        let mut g = Graph {
            cands,
            names: Vec::new(),
            pkgs: Vec::with_capacity(reached.len()),
            index,
            providers: Vec::new(),
            rdepends: Vec::new(),
            rinstall_if: Vec::new(),
            depends: Vec::new(),
            provides: Vec::new(),
            install_if: Vec::new(),
        };
        let mut pkg_of = vec![NONE; cands.len()];
        for (p, &c) in reached.iter().enumerate() {
            pkg_of[c] = p as u32;
            g.add_pkg(c);
        }
        g.add_providers(&pkg_of);
        g.add_rdepends();
        g.add_rinstall_if(&pkg_of);
        g
    }

    fn add_pkg(&mut self, c: usize) {
        let info = &self.cands[c].info;
        let first = self.index.first_provided[c] as usize;
        let name = self.id(self.index.provided[first].slot);
        let provides = self.provides.len() as u32;
        for (k, d) in info.provides.iter().enumerate() {
            let n = self.id(self.index.provided[first + 1 + k].slot);
            self.provides.push((n, d.provided_version(), d));
        }
        let depends = self.depends.len() as u32;
        let first_dep = self.index.first_dep[c] as usize;
        for (k, d) in info.depends.iter().enumerate() {
            let n = self.id(self.index.dep_slots[first_dep + k]);
            self.depends.push((n, d));
        }
        let install_if = self.install_if.len() as u32;
        let first_trigger = self.index.first_trigger[c] as usize;
        for (k, d) in info.install_if.iter().enumerate() {
            let n = self.id(self.index.triggers[first_trigger + k].slot);
            self.install_if.push((n, d));
        }
        self.pkgs.push(PkgNode {
            cand: c,
            name,
            depends: Span {
                start: depends,
                end: self.depends.len() as u32,
            },
            provides: Span {
                start: provides,
                end: self.provides.len() as u32,
            },
            install_if: Span {
                start: install_if,
                end: self.install_if.len() as u32,
            },
        });
    }

    /// The providers of every expanded name, in candidate order.
    fn add_providers(&mut self, pkg_of: &[u32]) {
        let mut links = Vec::new();
        for k in 0..self.index.expanded.len() {
            let s = self.index.expanded[k] as usize;
            links.clear();
            links.extend(chain(&self.index.provided, self.index.slots[s].provided));
            let start = self.providers.len() as u32;
            for &at in links.iter().rev() {
                let c = self.index.provided[at].cand as usize;
                let info = &self.cands[c].info;
                let version = match at - self.index.first_provided[c] as usize {
                    0 => Some(info.version.as_str()),
                    k => info.provides[k - 1].provided_version(),
                };
                self.providers.push(Provider {
                    pkg: pkg_of[c] as usize,
                    version,
                });
            }
            let n = self.id(s as u32);
            self.names[n].providers = Span {
                start,
                end: self.providers.len() as u32,
            };
        }
    }

    /// A name's reverse edges list every name that a depending package provides, each once,
    /// in the order first met (packages in candidate order), then in apk's hash order.
    fn add_rdepends(&mut self) {
        let mut count = vec![0u32; self.names.len()];
        for node in &self.pkgs {
            let provided = 1 + node.provides.end - node.provides.start;
            for &(n, _) in node.depends.of(&self.depends) {
                count[n] += provided;
            }
        }
        let mut next = Vec::with_capacity(count.len());
        let mut total = 0u32;
        for &c in &count {
            next.push(total);
            total += c;
        }
        self.rdepends = vec![0; total as usize];
        for node in &self.pkgs {
            for &(n, _) in node.depends.of(&self.depends) {
                let at = next[n] as usize;
                self.rdepends[at] = node.name;
                for (k, &(own, _, _)) in node.provides.of(&self.provides).iter().enumerate() {
                    self.rdepends[at + 1 + k] = own;
                }
                next[n] += 1 + node.provides.end - node.provides.start;
            }
        }
        let mut last_in = vec![NONE; self.names.len()];
        let mut start = 0u32;
        for (n, c) in count.into_iter().enumerate() {
            let end = start + c;
            let kept = keep_first(&mut self.rdepends, start, end, &mut last_in, n as u32);
            self.names[n].rdepends = Span { start, end: kept };
            start = end;
        }
        in_apk_hash_order(&self.names, &mut self.rdepends, |node| node.rdepends);
    }

    /// A name's `install_if` reverse edges: every name a package triggering on it provides,
    /// each once, in candidate order, then in apk's hash order.
    fn add_rinstall_if(&mut self, pkg_of: &[u32]) {
        let mut last_in = vec![NONE; self.names.len()];
        let mut links = Vec::new();
        for &s in &self.index.expanded {
            let slot = &self.index.slots[s as usize];
            if slot.triggers == NONE {
                continue;
            }
            let n = slot.id;
            links.clear();
            links.extend(chain(&self.index.triggers, slot.triggers));
            let start = self.rinstall_if.len() as u32;
            for &at in links.iter().rev() {
                let node = &self.pkgs[pkg_of[self.index.triggers[at].cand as usize] as usize];
                self.rinstall_if.push(node.name);
                let provided = node.provides.of(&self.provides).iter().map(|x| x.0);
                self.rinstall_if.extend(provided);
            }
            let end = self.rinstall_if.len() as u32;
            let kept = keep_first(&mut self.rinstall_if, start, end, &mut last_in, n);
            self.rinstall_if.truncate(kept as usize);
            self.names[n as usize].rinstall_if = Span { start, end: kept };
        }
        in_apk_hash_order(&self.names, &mut self.rinstall_if, |node| node.rinstall_if);
    }

    pub fn providers(&self, n: usize) -> &[Provider<'a>] {
        self.names[n].providers.of(&self.providers)
    }

    /// Names provided by packages that depend on `n`, in apk's hash order.
    pub fn rdepends(&self, n: usize) -> &[usize] {
        self.names[n].rdepends.of(&self.rdepends)
    }

    /// Names provided by packages with an `install_if` on `n`.
    pub fn rinstall_if(&self, n: usize) -> &[usize] {
        self.names[n].rinstall_if.of(&self.rinstall_if)
    }

    pub fn depends(&self, p: usize) -> &[(usize, &'a Dep)] {
        self.pkgs[p].depends.of(&self.depends)
    }

    /// (name, provided version, the atom as written).
    pub fn provides(&self, p: usize) -> &[(usize, Option<&'a str>, &'a Dep)] {
        self.pkgs[p].provides.of(&self.provides)
    }

    pub fn install_if(&self, p: usize) -> &[(usize, &'a Dep)] {
        self.pkgs[p].install_if.of(&self.install_if)
    }

    /// The graph index of a slot's name, given on first use.
    fn id(&mut self, s: u32) -> usize {
        let slot = &mut self.index.slots[s as usize];
        if slot.id == NONE {
            slot.id = self.names.len() as u32;
            self.names.push(NameNode {
                text: slot.text,
                providers: Span::default(),
                rdepends: Span::default(),
                rinstall_if: Span::default(),
            });
        }
        slot.id as usize
    }

    /// The index of a name known to the graph.
    pub fn name(&self, text: &str) -> Option<usize> {
        let s = self.index.find(text)?;
        let id = self.index.slots[s as usize].id;
        (id != NONE).then_some(id as usize)
    }

    /// The candidate a package of the graph is.
    pub fn cand(&self, pkg: usize) -> &'a Candidate<'a> {
        &self.cands[self.pkgs[pkg].cand]
    }

    /// `name-version`, as apk prints a package.
    pub fn nv(&self, pkg: usize) -> String {
        self.cand(pkg).info.nv()
    }
}

/// The candidates reachable from `roots` and the installed ones, in candidate order: a name
/// brings its providers and the packages triggering on it; a package its own name, provided
/// names and dependencies. Marks the reached names' slots expanded.
fn reach<'a>(
    ix: &mut Index<'a>,
    cands: &'a [Candidate<'a>],
    roots: impl Iterator<Item = &'a str>,
) -> Vec<usize> {
    let mut reached = Vec::new();
    let mut names: Vec<u32> = roots.map(|t| ix.slot(t)).collect();
    let mut pkgs: Vec<usize> = (0..cands.len()).filter(|&c| cands[c].installed).collect();
    loop {
        if let Some(c) = pkgs.pop() {
            if ix.first_dep[c] != NONE {
                continue;
            }
            reached.push(c);
            ix.first_dep[c] = ix.dep_slots.len() as u32;
            for d in &cands[c].info.depends {
                let s = ix.slot(&d.name);
                ix.dep_slots.push(s);
            }
            let first = ix.dep_slots.len() - cands[c].info.depends.len();
            names.extend_from_slice(&ix.dep_slots[first..]);
            names.extend(ix.provided_by(c).iter().map(|l| l.slot));
        } else if let Some(s) = names.pop() {
            let slot = &mut ix.slots[s as usize];
            if std::mem::replace(&mut slot.expanded, true) {
                continue;
            }
            ix.expanded.push(s);
            let (p, t) = (slot.provided, slot.triggers);
            pkgs.extend(chain(&ix.provided, p).map(|at| ix.provided[at].cand as usize));
            pkgs.extend(chain(&ix.triggers, t).map(|at| ix.triggers[at].cand as usize));
        } else {
            break;
        }
    }
    ramboot_sys::sort::sort(&mut reached);
    reached
}

/// The bucket of apk's name hash table (20,000 buckets, MurmurHash3 x86_32 seeded 5381) a
/// name falls in.
fn apk_name_bucket(name: &str) -> u32 {
    murmur3_32(name.as_bytes(), 5381) % 20_000
}

/// MurmurHash3, x86 32-bit variant.
fn murmur3_32(data: &[u8], seed: u32) -> u32 {
    const C1: u32 = 0xcc9e_2d51;
    const C2: u32 = 0x1b87_3593;
    let mix = |k: u32| k.wrapping_mul(C1).rotate_left(15).wrapping_mul(C2);
    let mut h = seed;
    let mut blocks = data.chunks_exact(4);
    for b in &mut blocks {
        h ^= mix(u32::from_le_bytes(b.try_into().expect("4 bytes")));
        h = h.rotate_left(13).wrapping_mul(5).wrapping_add(0xe654_6b64);
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let k = tail
            .iter()
            .rev()
            .fold(0u32, |k, &b| (k << 8) | u32::from(b));
        h ^= mix(k);
    }
    h ^= data.len() as u32;
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// apk's `apk_dep_is_provided`: does provider `p` (None: nothing provides the name) satisfy
/// `dep`?
pub(super) fn provided(g: &Graph, dep: &Dep, p: Option<Provider>) -> bool {
    match p {
        None => dep.conflict,
        Some(p) => dep.matches_provider(p.version, g.cand(p.pkg).info.identity.as_ref()),
    }
}

/// apk's `apk_dep_analyze`: how `dep` relates to package `pkg`.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum DepMatch {
    Irrelevant,
    Satisfies,
    Conflicts,
}

pub(super) fn analyze(g: &Graph, dep: &Dep, pkg: usize) -> DepMatch {
    let node = &g.pkgs[pkg];
    let info = &g.cand(pkg).info;
    let version = if g.names[node.name].text == dep.name {
        Some(info.version.as_str())
    } else {
        match g
            .provides(pkg)
            .iter()
            .find(|(n, _, _)| g.names[*n].text == dep.name)
        {
            Some((_, v, _)) => *v,
            None => return DepMatch::Irrelevant,
        }
    };
    if dep.matches_provider(version, info.identity.as_ref()) {
        DepMatch::Satisfies
    } else {
        DepMatch::Conflicts
    }
}

#[cfg(test)]
mod tests {
    use super::murmur3_32;

    #[test]
    fn murmur3_known_values() {
        // Reference values of MurmurHash3_x86_32.
        assert_eq!(murmur3_32(b"", 0), 0);
        assert_eq!(murmur3_32(b"", 1), 0x514e_28b7);
        assert_eq!(murmur3_32(b"test", 0), 0xba6b_d213);
        assert_eq!(murmur3_32(b"Hello, world!", 1234), 0xfaf6_cdb3);
        assert_eq!(
            murmur3_32(b"The quick brown fox jumps over the lazy dog", 0x9747_b28c),
            0x2fa8_26cd
        );
    }
}
