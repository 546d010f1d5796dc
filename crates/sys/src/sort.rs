//! Stable sorting through one shared copy of the standard library's sort.
//!
//! Every `slice::sort_by` call site with its own closure or element type compiles its own copy of
//! the sort (about 2.5 KB of aarch64 code at opt-level "z", plus unwind tables); the init had
//! twenty-six of them, about 65 KB of its size budget (tests/static_build.rs). These functions
//! sort a permutation of indices with a `dyn` comparator instead (one copy for the whole
//! program) and then move the elements into place: the same stable order as `slice::sort_by`,
//! at the price of one indirect call per comparison and a `Vec<usize>`, which no sort in
//! ramboot is large enough to notice.

use std::cmp::Ordering;

/// `v.sort_by(cmp)`: stable, equal elements keep their order.
pub fn sort_by<T>(v: &mut [T], mut cmp: impl FnMut(&T, &T) -> Ordering) {
    if v.len() < 2 {
        return;
    }
    let mut order: Vec<usize> = (0..v.len()).collect();
    sort_indices(&mut order, &mut |a, b| cmp(&v[a], &v[b]));
    permute(v, &mut order);
}

/// `v.sort()`: stable.
pub fn sort<T: Ord>(v: &mut [T]) {
    sort_by(v, T::cmp);
}

/// `v.sort_by_key(key)`: stable; `key` runs twice per comparison, as with the standard one.
pub fn sort_by_key<T, K: Ord>(v: &mut [T], mut key: impl FnMut(&T) -> K) {
    sort_by(v, |a, b| key(a).cmp(&key(b)));
}

/// The one instance of the standard stable sort.
#[inline(never)]
fn sort_indices(order: &mut [usize], cmp: &mut dyn FnMut(usize, usize) -> Ordering) {
    order.sort_by(|&a, &b| cmp(a, b));
}

/// Puts `v[order[i]]` at position `i` for every `i`, following each cycle of the permutation
/// with swaps; a visited position is marked by `order[p] == p`.
fn permute<T>(v: &mut [T], order: &mut [usize]) {
    for start in 0..v.len() {
        let mut at = start;
        loop {
            let from = order[at];
            order[at] = at;
            if from == start {
                break;
            }
            v.swap(at, from);
            at = from;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// xorshift64*: deterministic inputs without a dependency.
    fn numbers(seed: u64, len: usize, range: u64) -> Vec<u64> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x >> 12;
                x ^= x << 25;
                x ^= x >> 27;
                x.wrapping_mul(0x2545F4914F6CDD1D) % range
            })
            .collect()
    }

    #[test]
    fn orders_like_the_standard_stable_sort_including_ties() {
        for (seed, len) in [(1, 0), (2, 1), (3, 2), (4, 7), (5, 20), (6, 100), (7, 1000)] {
            // (key, original position): ties on the key show whether the order is stable.
            let items: Vec<(u64, usize)> = numbers(seed, len, 10)
                .into_iter()
                .enumerate()
                .map(|(i, k)| (k, i))
                .collect();
            let mut ours = items.clone();
            sort_by(&mut ours, |a, b| a.0.cmp(&b.0));
            let mut std_sorted = items.clone();
            std_sorted.sort_by_key(|a| a.0);
            assert_eq!(ours, std_sorted, "seed {seed}, {len} items");
        }
    }

    #[test]
    fn sort_and_sort_by_key_match_the_standard_ones() {
        let words: Vec<String> = numbers(9, 300, 50)
            .into_iter()
            .map(|n| format!("w{n}"))
            .collect();
        let (mut ours, mut theirs) = (words.clone(), words.clone());
        sort(&mut ours);
        theirs.sort();
        assert_eq!(ours, theirs);
        let (mut ours, mut theirs) = (words.clone(), words);
        sort_by_key(&mut ours, |w| std::cmp::Reverse(w.len()));
        theirs.sort_by_key(|w| std::cmp::Reverse(w.len()));
        assert_eq!(ours, theirs);
    }

    #[test]
    fn moves_owned_elements_without_loss() {
        let mut v: Vec<Box<u32>> = [5, 3, 9, 1, 3, 7].into_iter().map(Box::new).collect();
        sort(&mut v);
        let plain: Vec<u32> = v.into_iter().map(|b| *b).collect();
        assert_eq!(plain, [1, 3, 3, 5, 7, 9]);
    }
}
