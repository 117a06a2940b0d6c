//! A sorted, duplicate-free set of u64 keys in one vector: O(log n) membership, range removal,
//! cheap appends when keys arrive in ascending order (a release's term ids do), and O(1)
//! random access for sampling (used to estimate how selective a search filter is).

use std::collections::HashSet;
use std::ops::Range;

/// Sorted unique keys.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct KeySet(Vec<u64>);

impl KeySet {
    /// Build from any keys (sorted and deduplicated here).
    pub fn from_unsorted(mut keys: Vec<u64>) -> Self {
        keys.sort_unstable();
        keys.dedup();
        Self(keys)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `key` is present.
    pub fn contains(&self, key: u64) -> bool {
        self.0.binary_search(&key).is_ok()
    }

    /// Keys in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.0.iter().copied()
    }

    /// Add keys (any order, duplicates and present keys allowed).
    pub fn insert_many(&mut self, mut new: Vec<u64>) {
        if new.is_empty() {
            return;
        }
        new.sort_unstable();
        new.dedup();
        if self.0.last().is_none_or(|last| *last < new[0]) {
            self.0.extend(new);
            return;
        }
        let mut out = Vec::with_capacity(self.0.len() + new.len());
        let (mut i, mut j) = (0, 0);
        while i < self.0.len() && j < new.len() {
            let (a, b) = (self.0[i], new[j]);
            if a <= b {
                out.push(a);
                i += 1;
                if a == b {
                    j += 1;
                }
            } else {
                out.push(b);
                j += 1;
            }
        }
        out.extend_from_slice(&self.0[i..]);
        out.extend_from_slice(&new[j..]);
        self.0 = out;
    }

    /// Remove the given keys (absent ones are ignored).
    pub fn remove_many(&mut self, keys: &[u64]) {
        if keys.is_empty() {
            return;
        }
        let doomed: HashSet<u64> = keys.iter().copied().collect();
        self.0.retain(|k| !doomed.contains(k));
    }

    /// Remove and return the keys in `range`.
    pub fn drain_range(&mut self, range: Range<u64>) -> Vec<u64> {
        self.drain_range_max(range, usize::MAX)
    }

    /// Remove and return the smallest `n` keys (at most) in `range`.
    pub fn drain_range_max(&mut self, range: Range<u64>, n: usize) -> Vec<u64> {
        let lo = self.0.partition_point(|k| *k < range.start);
        let hi = self.0.partition_point(|k| *k < range.end).max(lo);
        self.0.drain(lo..hi.min(lo.saturating_add(n))).collect()
    }

    /// Up to `n` keys spread evenly over the set (all keys when `n ≥ len`).
    pub fn sample(&self, n: usize) -> impl Iterator<Item = u64> + '_ {
        let len = self.0.len();
        let n = n.min(len);
        (0..n).map(move |i| self.0[i * len / n])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_drain_sample() {
        let mut s = KeySet::from_unsorted(vec![5, 1, 3, 3]);
        assert_eq!(s.iter().collect::<Vec<_>>(), [1, 3, 5]);
        s.insert_many(vec![7, 6, 6]); // append fast path
        s.insert_many(vec![4, 2, 3, 9]); // merge
        assert_eq!(s.iter().collect::<Vec<_>>(), [1, 2, 3, 4, 5, 6, 7, 9]);
        assert!(s.contains(4) && !s.contains(8));
        s.remove_many(&[2, 8]);
        assert_eq!(s.drain_range(4..7), [4, 5, 6]);
        assert_eq!(s.iter().collect::<Vec<_>>(), [1, 3, 7, 9]);
        assert_eq!(s.sample(2).collect::<Vec<_>>(), [1, 7]);
        assert_eq!(s.sample(10).count(), 4);
        assert!(s
            .drain_range(std::ops::Range { start: 10, end: 5 })
            .is_empty());
        // in chunks: the smallest first, the rest stays
        assert_eq!(s.drain_range_max(0..10, 2), [1, 3]);
        assert_eq!(s.drain_range_max(0..10, 2), [7, 9]);
        assert!(s.drain_range_max(0..10, 2).is_empty());
    }
}
