//! The hierarchy of a release as compact integer edges, for the cycle check of
//! [`super::writer::ReleaseWriter::commit`] (cycles are tolerated and reported as a warning).

use std::collections::HashMap;

/// Split a relation key `from 0 rel 0 to`.
pub(super) fn split_rel(k: &[u8]) -> Option<(&[u8], &str, &[u8])> {
    let a = k.iter().position(|&b| b == 0)?;
    let rest = &k[a + 1..];
    let b = rest.iter().position(|&b| b == 0)?;
    let rel = std::str::from_utf8(&rest[..b]).ok()?;
    Some((&k[..a], rel, &rest[b + 1..]))
}

/// The hierarchy as compact integer edges (child → parent), for the cycle check. Codes are
/// kept as 64-bit hashes, not strings, so memory is ~24 bytes per concept plus 8 per edge
/// (a collision could only hide or invent a cycle warning, never change stored data).
#[derive(Default)]
pub(super) struct Graph {
    /// Child → parent edges by concept number.
    pub edges: Vec<(u32, u32)>,
    ids: HashMap<u64, u32>,
}

/// The 64-bit hash a code is kept as.
pub(super) fn code_hash(code: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    code.hash(&mut h);
    h.finish()
}

impl Graph {
    fn id(&mut self, code: &[u8]) -> u32 {
        let next = self.ids.len() as u32;
        *self.ids.entry(code_hash(code)).or_insert(next)
    }

    /// Add the hierarchy edge `child → parent`.
    pub(super) fn edge(&mut self, child: &[u8], parent: &[u8]) {
        let (c, p) = (self.id(child), self.id(parent));
        self.edges.push((c, p));
    }

    /// Back edges found by a DFS over child → parent edges, and up to five of them as hashes.
    pub(super) fn cycles(&mut self) -> (u64, Vec<(u64, u64)>) {
        let n = self.ids.len();
        self.edges.sort_unstable();
        let mut start = vec![0usize; n + 1];
        for &(c, _) in &self.edges {
            start[c as usize + 1] += 1;
        }
        for i in 0..n {
            start[i + 1] += start[i];
        }
        // state: 0 = new, 1 = on stack, 2 = finished
        let mut state = vec![0u8; n];
        let mut cycles = 0u64;
        let mut examples: Vec<(u32, u32)> = Vec::new();
        let mut stack: Vec<(u32, usize)> = Vec::new();
        for root in 0..n as u32 {
            if state[root as usize] != 0 {
                continue;
            }
            state[root as usize] = 1;
            stack.push((root, start[root as usize]));
            while let Some(&mut (node, ref mut next)) = stack.last_mut() {
                if *next < start[node as usize + 1] {
                    let parent = self.edges[*next].1;
                    *next += 1;
                    match state[parent as usize] {
                        0 => {
                            state[parent as usize] = 1;
                            stack.push((parent, start[parent as usize]));
                        }
                        1 => {
                            cycles += 1;
                            if examples.len() < 5 {
                                examples.push((node, parent));
                            }
                        }
                        _ => {}
                    }
                } else {
                    state[node as usize] = 2;
                    stack.pop();
                }
            }
        }
        if examples.is_empty() {
            return (cycles, Vec::new());
        }
        let mut hash_of = HashMap::new();
        for (&h, &i) in &self.ids {
            if examples.iter().any(|&(a, b)| a == i || b == i) {
                hash_of.insert(i, h);
            }
        }
        let examples = examples
            .into_iter()
            .map(|(a, b)| (hash_of[&a], hash_of[&b]))
            .collect();
        (cycles, examples)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relation_keys_split_in_three() {
        assert_eq!(
            split_rel(b"C1\0is_a\0C2"),
            Some((&b"C1"[..], "is_a", &b"C2"[..]))
        );
        assert_eq!(split_rel(b"C1\0is_a"), None);
    }

    #[test]
    fn back_edges_are_counted_and_named() {
        let mut g = Graph::default();
        g.edge(b"A", b"B");
        g.edge(b"B", b"C");
        assert_eq!(g.cycles().0, 0, "a chain has no cycle");
        g.edge(b"C", b"A");
        g.edge(b"D", b"D");
        let (n, examples) = g.cycles();
        assert_eq!(n, 2);
        assert!(examples.contains(&(code_hash(b"D"), code_hash(b"D"))));
        assert_eq!(examples.len(), 2);
    }
}
