//! The names and packages the solver works on, as indices: every name (package names, provided
//! names, names only world or a dependency mentions) once, with its providers in candidate
//! order, and the reverse edges apk keeps (`rdepends`, `rinstall_if`).

use super::Candidate;
use crate::dep::Dep;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// FxHash (rustc's): names come from signed indexes, and a boot repository has thousands of
/// them, so a fast hash beats SipHash's flood resistance here.
#[derive(Default)]
struct Fx(u64);

impl Hasher for Fx {
    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.write_u64(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        let rest = words.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.write_u64(u64::from_le_bytes(tail));
    }
    fn write_u64(&mut self, x: u64) {
        self.0 = (self.0.rotate_left(5) ^ x).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type FxBuild = BuildHasherDefault<Fx>;

/// A package providing a name: the package's own name (version: its version), or one of its
/// `provides` (version: the provided version, None for a virtual provide).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Provider<'a> {
    pub pkg: usize,
    pub version: Option<&'a str>,
}

pub(super) struct NameNode<'a> {
    pub text: &'a str,
    /// Duplicates kept: a package providing its own name appears twice, as apk has it.
    pub providers: Vec<Provider<'a>>,
    /// Names provided by packages that depend on this name, in apk's hash order.
    pub rdepends: Vec<usize>,
    /// Names provided by packages with an `install_if` on this name.
    pub rinstall_if: Vec<usize>,
}

pub(super) struct PkgNode<'a> {
    pub name: usize,
    pub depends: Vec<(usize, &'a Dep)>,
    /// (name, provided version, the atom as written).
    pub provides: Vec<(usize, Option<&'a str>, &'a Dep)>,
    pub install_if: Vec<(usize, &'a Dep)>,
}

pub(super) struct Graph<'a> {
    pub cands: &'a [Candidate],
    pub names: Vec<NameNode<'a>>,
    pub pkgs: Vec<PkgNode<'a>>,
    index: HashMap<&'a str, usize, FxBuild>,
}

impl<'a> Graph<'a> {
    pub fn build(cands: &'a [Candidate], world: &'a [Dep]) -> Graph<'a> {
        let mut g = Graph {
            cands,
            names: Vec::new(),
            pkgs: Vec::with_capacity(cands.len()),
            index: HashMap::default(),
        };
        for (i, c) in cands.iter().enumerate() {
            let info = &c.info;
            let name = g.intern(&info.name);
            g.names[name].providers.push(Provider {
                pkg: i,
                version: Some(&info.version),
            });
            let provides = info
                .provides
                .iter()
                .map(|d| {
                    let n = g.intern(&d.name);
                    let version = d.provided_version();
                    g.names[n].providers.push(Provider { pkg: i, version });
                    (n, version, d)
                })
                .collect();
            let depends = info
                .depends
                .iter()
                .map(|d| (g.intern(&d.name), d))
                .collect();
            let install_if = info
                .install_if
                .iter()
                .map(|d| (g.intern(&d.name), d))
                .collect();
            g.pkgs.push(PkgNode {
                name,
                depends,
                provides,
                install_if,
            });
        }
        // A name's reverse edges list every name that a depending package provides, each
        // once, in the order first met.
        let mut edges: HashSet<(usize, usize), FxBuild> = HashSet::default();
        for p in 0..g.pkgs.len() {
            let node = &g.pkgs[p];
            let provided: Vec<usize> = std::iter::once(node.name)
                .chain(node.provides.iter().map(|&(n, _, _)| n))
                .collect();
            let deps: Vec<usize> = node.depends.iter().map(|&(n, _)| n).collect();
            let iifs: Vec<usize> = node.install_if.iter().map(|&(n, _)| n).collect();
            for n in deps {
                for &own in &provided {
                    if edges.insert((n, own)) {
                        g.names[n].rdepends.push(own);
                    }
                }
            }
            for n in iifs {
                for &own in &provided {
                    // Kept apart from rdepends: marked by the complement of the name.
                    if edges.insert((!n, own)) {
                        g.names[n].rinstall_if.push(own);
                    }
                }
            }
        }
        for d in world {
            g.intern(&d.name);
        }
        g.in_apk_hash_order();
        g
    }

    /// apk builds the reverse edges walking its name hash table, so they come in the order of
    /// the names' buckets; the solver's queues, and the error report's lists, follow it.
    fn in_apk_hash_order(&mut self) {
        let bucket: Vec<u32> = self.names.iter().map(|n| apk_name_bucket(n.text)).collect();
        for n in &mut self.names {
            ramboot_sys::sort::sort_by_key(&mut n.rdepends, |&x| bucket[x]);
            ramboot_sys::sort::sort_by_key(&mut n.rinstall_if, |&x| bucket[x]);
        }
    }

    fn intern(&mut self, text: &'a str) -> usize {
        if let Some(&i) = self.index.get(text) {
            return i;
        }
        self.names.push(NameNode {
            text,
            providers: Vec::new(),
            rdepends: Vec::new(),
            rinstall_if: Vec::new(),
        });
        self.index.insert(text, self.names.len() - 1);
        self.names.len() - 1
    }

    /// The index of a name known to the graph.
    pub fn name(&self, text: &str) -> Option<usize> {
        self.index.get(text).copied()
    }

    /// `name-version`, as apk prints a package.
    pub fn nv(&self, pkg: usize) -> String {
        self.cands[pkg].info.nv()
    }
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
        Some(p) => dep.matches_provider(p.version, g.cands[p.pkg].info.identity.as_ref()),
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
    let info = &g.cands[pkg].info;
    let version = if g.names[node.name].text == dep.name {
        Some(info.version.as_str())
    } else {
        match node
            .provides
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
