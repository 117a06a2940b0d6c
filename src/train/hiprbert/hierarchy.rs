//! One system's concepts as a graph for HiPrBERT: names, hierarchy (or relation) edges, the
//! distance category of any two concepts, partner sampling by category, and the held-out split.
//!
//! ## Distance categories (HiPrBERT, arXiv 2307.00266)
//! For two concepts `a`, `b` of one system, let `r(a, b)` be the smallest `max(d(a,c), d(b,c))`
//! over common ancestors `c` (a concept is its own ancestor at distance 0), looking at most two
//! hierarchy steps up:
//! * **0** — same concept: two names of one concept (for PheCODE also the descriptions of the
//!   ICD codes that map to the phecode, the paper's "two ICD descriptions mapping to the same
//!   phecode");
//! * **1** — `r = 1`: parent/child or siblings;
//! * **2** — `r = 2`: they meet only at the parent's level (grandparent/grandchild, uncle,
//!   cousins — e.g. phecodes 250.1 and 250.2 under 250);
//! * **3** — anything else in the same system ("random in the same tree").
//!
//! Systems without hierarchy edges but with typed relations (RxNorm's `has_ingredient`,
//! `tradename_of`, ...) use those relations, undirected: direct neighbours are category 1 and
//! two-hop neighbours category 2.
//!
//! ## Held-out split
//! A concept is held out when `fnv1a64(system ‖ 0 ‖ code) mod 1000 < heldout_permille` — stable
//! across runs, machines and releases. Training never samples a held-out concept, and never a
//! *string* that is a name of any held-out concept in any system (PheCODE reuses ICD
//! descriptions, so without that a held-out string could reach the trainer through another
//! system). Every evaluation uses pairs anchored on held-out concepts ([`super::data::build_eval`]).

use crate::util::hash::fnv1a64;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, HashSet};

/// One concept as the data builder needs it.
#[derive(Debug, Clone, Default)]
pub struct ConceptInput {
    /// Code in its system.
    pub code: String,
    /// Preferred name.
    pub preferred: String,
    /// Names with the same meaning (synonyms, abbreviations, ICD inclusion terms, ...).
    pub synonyms: Vec<String>,
    /// Further strings that denote the concept for the tree loss but are not synonyms
    /// (for PheCODE: descriptions of the ICD codes mapped to it).
    pub members: Vec<String>,
    /// Codes of hierarchy parents.
    pub parents: Vec<String>,
    /// Codes of concepts linked by typed (non-hierarchical) relations.
    pub links: Vec<String>,
}

/// A system's concepts with names and structure, indexed densely.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    /// System name (`ICD10CM`, `HPO`, `PHECODE`, ...).
    pub system: String,
    /// Codes.
    pub codes: Vec<String>,
    /// Preferred names (never filtered: evaluation candidates).
    pub preferred: Vec<String>,
    /// Names usable in training pairs: synonyms first, then member strings.
    pub names: Vec<Vec<String>>,
    /// How many leading entries of `names[i]` are true synonyms.
    pub n_synonyms: Vec<usize>,
    /// True synonyms (preferred first) before any held-out filtering: evaluation queries.
    pub all_synonyms: Vec<Vec<String>>,
    /// Hierarchy parents.
    pub parents: Vec<Vec<u32>>,
    /// Hierarchy children.
    pub children: Vec<Vec<u32>>,
    /// Typed-relation neighbours (only when the system has no hierarchy edges).
    pub links: Vec<Vec<u32>>,
    /// Held-out flag per concept.
    pub heldout: Vec<bool>,
}

/// Whether (system, code) is in the held-out split at `permille` / 1000.
pub fn is_heldout(system: &str, code: &str, permille: u32) -> bool {
    let mut key = Vec::with_capacity(system.len() + code.len() + 1);
    key.extend_from_slice(system.as_bytes());
    key.push(0);
    key.extend_from_slice(code.as_bytes());
    fnv1a64(&key) % 1000 < permille as u64
}

fn push_unique(out: &mut Vec<String>, seen: &mut HashSet<String>, s: &str) {
    let s = s.trim();
    if !s.is_empty() && seen.insert(s.to_lowercase()) {
        out.push(s.to_string());
    }
}

impl Hierarchy {
    /// Index `concepts` of `system`; relations to unknown codes are dropped.
    pub fn build(system: &str, concepts: Vec<ConceptInput>, heldout_permille: u32) -> Self {
        let index: HashMap<String, u32> = concepts
            .iter()
            .enumerate()
            .map(|(i, c)| (c.code.clone(), i as u32))
            .collect();
        let n = concepts.len();
        let mut h = Hierarchy {
            system: system.to_string(),
            codes: Vec::with_capacity(n),
            preferred: Vec::with_capacity(n),
            names: Vec::with_capacity(n),
            n_synonyms: Vec::with_capacity(n),
            all_synonyms: Vec::with_capacity(n),
            parents: vec![Vec::new(); n],
            children: vec![Vec::new(); n],
            links: vec![Vec::new(); n],
            heldout: Vec::with_capacity(n),
        };
        let mut any_hier = false;
        for (i, c) in concepts.iter().enumerate() {
            let mut names = Vec::new();
            let mut seen = HashSet::new();
            push_unique(&mut names, &mut seen, &c.preferred);
            for s in &c.synonyms {
                push_unique(&mut names, &mut seen, s);
            }
            let n_syn = names.len();
            h.all_synonyms.push(names.clone());
            for s in &c.members {
                push_unique(&mut names, &mut seen, s);
            }
            h.codes.push(c.code.clone());
            h.preferred.push(if c.preferred.is_empty() {
                names.first().cloned().unwrap_or_default()
            } else {
                c.preferred.clone()
            });
            h.names.push(names);
            h.n_synonyms.push(n_syn);
            h.heldout
                .push(is_heldout(system, &c.code, heldout_permille));
            for p in &c.parents {
                if let Some(&j) = index.get(p) {
                    if j as usize != i && !h.parents[i].contains(&j) {
                        h.parents[i].push(j);
                        h.children[j as usize].push(i as u32);
                        any_hier = true;
                    }
                }
            }
        }
        if !any_hier {
            for (i, c) in concepts.iter().enumerate() {
                for l in &c.links {
                    if let Some(&j) = index.get(l) {
                        if j as usize != i && !h.links[i].contains(&j) {
                            h.links[i].push(j);
                            h.links[j as usize].push(i as u32);
                        }
                    }
                }
            }
        }
        h
    }

    /// Number of concepts.
    pub fn len(&self) -> usize {
        self.codes.len()
    }

    /// True when the system has no concepts.
    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    /// Hierarchy or link edges in total (each counted once).
    pub fn edges(&self) -> usize {
        self.parents.iter().map(|p| p.len()).sum::<usize>()
            + self.links.iter().map(|l| l.len()).sum::<usize>() / 2
    }

    fn ancestors2(&self, a: u32) -> Vec<(u32, u8)> {
        let mut out = vec![(a, 0u8)];
        for &p in &self.parents[a as usize] {
            out.push((p, 1));
            for &g in &self.parents[p as usize] {
                out.push((g, 2));
            }
        }
        out
    }

    /// Distance category of two concepts (see the module docs): 0..=3.
    pub fn category(&self, a: u32, b: u32) -> u8 {
        if a == b {
            return 0;
        }
        let aa = self.ancestors2(a);
        let ab = self.ancestors2(b);
        let mut best = 3u8;
        for &(x, da) in &aa {
            for &(y, db) in &ab {
                if x == y {
                    best = best.min(da.max(db));
                }
            }
        }
        if best < 3 {
            return best;
        }
        let la = &self.links[a as usize];
        if la.contains(&b) {
            return 1;
        }
        if la.iter().any(|&m| self.links[m as usize].contains(&b)) {
            return 2;
        }
        3
    }

    fn walk(&self, a: u32, ups: usize, downs: usize, rng: &mut ChaCha8Rng) -> Option<u32> {
        let mut x = a;
        for _ in 0..ups {
            x = *self.parents[x as usize].choose(rng)?;
        }
        for _ in 0..downs {
            x = *self.children[x as usize].choose(rng)?;
        }
        Some(x)
    }

    /// A partner of `a` in category `cat` ∈ 1..=3 accepted by `ok`, or `None` after a few
    /// tries.
    pub fn sample_partner(
        &self,
        a: u32,
        cat: u8,
        rng: &mut ChaCha8Rng,
        ok: &dyn Fn(u32) -> bool,
    ) -> Option<u32> {
        const PATTERNS_1: [(usize, usize); 3] = [(1, 0), (0, 1), (1, 1)];
        const PATTERNS_2: [(usize, usize); 5] = [(2, 0), (0, 2), (2, 1), (1, 2), (2, 2)];
        for _ in 0..12 {
            let b = match cat {
                1 | 2 if !self.links[a as usize].is_empty() => {
                    let m = *self.links[a as usize].choose(rng)?;
                    if cat == 1 {
                        Some(m)
                    } else {
                        self.links[m as usize].choose(rng).copied()
                    }
                }
                1 => {
                    let (u, d) = *PATTERNS_1.choose(rng)?;
                    self.walk(a, u, d, rng)
                }
                2 => {
                    let (u, d) = *PATTERNS_2.choose(rng)?;
                    self.walk(a, u, d, rng)
                }
                _ => Some(rng.gen_range(0..self.len() as u32)),
            };
            if let Some(b) = b {
                if b != a && ok(b) && self.category(a, b) == cat {
                    return Some(b);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    /// R → A, B; A → A1, A2; B → B1; A1 → A1x
    pub(crate) fn tree() -> Hierarchy {
        let c = |code: &str, parents: &[&str], syn: &[&str]| ConceptInput {
            code: code.into(),
            preferred: format!("name {code}"),
            synonyms: syn.iter().map(|s| s.to_string()).collect(),
            parents: parents.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        Hierarchy::build(
            "T",
            vec![
                c("R", &[], &[]),
                c("A", &["R"], &["alpha"]),
                c("B", &["R"], &[]),
                c("A1", &["A"], &["a one", "A ONE"]),
                c("A2", &["A"], &[]),
                c("B1", &["B"], &[]),
                c("A1x", &["A1"], &[]),
            ],
            0,
        )
    }

    #[test]
    fn categories_follow_the_tree() {
        let h = tree();
        let i = |c: &str| h.codes.iter().position(|x| x == c).unwrap() as u32;
        assert_eq!(h.category(i("A1"), i("A1")), 0);
        assert_eq!(h.category(i("A1"), i("A")), 1); // parent
        assert_eq!(h.category(i("A"), i("A1")), 1); // child
        assert_eq!(h.category(i("A1"), i("A2")), 1); // sibling
        assert_eq!(h.category(i("A1"), i("R")), 2); // grandparent
        assert_eq!(h.category(i("A1"), i("B")), 2); // uncle
        assert_eq!(h.category(i("A1"), i("B1")), 2); // cousin
        assert_eq!(h.category(i("A1x"), i("B1")), 3); // meet three steps up
        assert_eq!(h.category(i("A1x"), i("A2")), 2); // A2 is the grandparent's child
                                                      // names are de-duplicated case-insensitively
        assert_eq!(h.names[i("A1") as usize], vec!["name A1", "a one"]);
    }

    #[test]
    fn sampled_partners_have_the_asked_category() {
        let h = tree();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for a in 0..h.len() as u32 {
            for cat in 1..=3u8 {
                if let Some(b) = h.sample_partner(a, cat, &mut rng, &|_| true) {
                    assert_eq!(h.category(a, b), cat);
                }
            }
        }
    }

    #[test]
    fn heldout_split_is_stable_and_near_its_rate() {
        assert_eq!(fnv1a64(b"a"), 0xaf63dc4c8601ec8c); // the published FNV-1a test vector
        let n = (0..10_000)
            .filter(|i| is_heldout("ICD10CM", &format!("X{i}"), 100))
            .count();
        assert!((900..1100).contains(&n), "{n}");
        assert!(!is_heldout("X", "Y", 0));
        assert!(is_heldout("X", "Y", 1000));
    }
}
