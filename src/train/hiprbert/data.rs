//! Training and evaluation data built from the store: the [`Corpus`] of every loaded hierarchy
//! (each a [`Hierarchy`]: distance categories and the held-out split, see
//! [`super::hierarchy`]), tree and synonym batches, and the held-out evaluation sets
//! ([`build_eval`]).

use super::hierarchy::{ConceptInput, Hierarchy};
use crate::domain::model::TermKind;
use crate::store::Store;
use crate::util::hash::fnv1a64;
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{HashMap, HashSet};

/// Every hierarchy loaded from the store, with the held-out strings removed from training names.
#[derive(Debug, Clone)]
pub struct Corpus {
    /// One entry per system with structure.
    pub hierarchies: Vec<Hierarchy>,
    /// Per hierarchy: training concept indices with at least one name.
    pub train_concepts: Vec<Vec<u32>>,
    /// Per hierarchy: training concepts with ≥ 2 names (category 0 anchors).
    pub train_multi: Vec<Vec<u32>>,
    /// (hierarchy, concept) of training concepts with ≥ 2 true synonyms.
    pub synonym_concepts: Vec<(u32, u32)>,
    /// Training names per hierarchy and concept after removing held-out strings.
    pub train_names: Vec<Vec<Vec<String>>>,
    /// Leading true synonyms among `train_names`.
    pub train_n_syn: Vec<Vec<usize>>,
    /// Per entry of `synonym_concepts`: its nearest other synonym concepts (positions in that
    /// list), from [`super::mining`]; empty = no hard-neighbour batches.
    pub hard_neighbors: Vec<Vec<u32>>,
}

impl Corpus {
    /// Split `hierarchies` into training material (see the module docs for the rules).
    pub fn new(hierarchies: Vec<Hierarchy>) -> Self {
        let mut held: HashSet<String> = HashSet::new();
        for h in &hierarchies {
            for (i, names) in h.names.iter().enumerate() {
                if h.heldout[i] {
                    held.extend(names.iter().map(|s| s.to_lowercase()));
                    held.extend(h.all_synonyms[i].iter().map(|s| s.to_lowercase()));
                }
            }
        }
        let mut c = Corpus {
            train_concepts: Vec::new(),
            train_multi: Vec::new(),
            synonym_concepts: Vec::new(),
            train_names: Vec::new(),
            train_n_syn: Vec::new(),
            hierarchies: Vec::new(),
            hard_neighbors: Vec::new(),
        };
        for (hi, h) in hierarchies.iter().enumerate() {
            let mut names_h = Vec::with_capacity(h.len());
            let mut nsyn_h = Vec::with_capacity(h.len());
            let (mut tc, mut tm) = (Vec::new(), Vec::new());
            for i in 0..h.len() {
                let (mut kept, mut nsyn) = (Vec::new(), 0);
                if !h.heldout[i] {
                    for (k, s) in h.names[i].iter().enumerate() {
                        if !held.contains(&s.to_lowercase()) {
                            kept.push(s.clone());
                            if k < h.n_synonyms[i] {
                                nsyn += 1;
                            }
                        }
                    }
                }
                if !kept.is_empty() {
                    tc.push(i as u32);
                }
                if kept.len() >= 2 {
                    tm.push(i as u32);
                }
                if nsyn >= 2 {
                    c.synonym_concepts.push((hi as u32, i as u32));
                }
                names_h.push(kept);
                nsyn_h.push(nsyn);
            }
            c.train_concepts.push(tc);
            c.train_multi.push(tm);
            c.train_names.push(names_h);
            c.train_n_syn.push(nsyn_h);
        }
        c.hierarchies = hierarchies;
        c
    }

    /// Hierarchies the tree loss can use (structure and training concepts).
    pub fn trainable(&self) -> Vec<usize> {
        (0..self.hierarchies.len())
            .filter(|&i| self.hierarchies[i].edges() > 0 && self.train_concepts[i].len() >= 8)
            .collect()
    }

    /// A batch of `n` categorised pairs from hierarchy `hi`, categories balanced 0,1,2,3,...
    /// Returns (text a, text b, category).
    pub fn tree_batch(
        &self,
        hi: usize,
        n: usize,
        rng: &mut ChaCha8Rng,
    ) -> Vec<(String, String, u8)> {
        let h = &self.hierarchies[hi];
        let names = &self.train_names[hi];
        let usable = |b: u32| !names[b as usize].is_empty();
        let mut out = Vec::with_capacity(n);
        let mut slot = 0usize;
        let mut failures = 0;
        while out.len() < n && failures < 50 * n.max(1) {
            let cat = (slot % 4) as u8;
            slot += 1;
            let pair = if cat == 0 {
                self.train_multi[hi].choose(rng).and_then(|&a| {
                    let two: Vec<&String> = names[a as usize].choose_multiple(rng, 2).collect();
                    (two.len() == 2).then(|| (two[0].clone(), two[1].clone()))
                })
            } else {
                self.train_concepts[hi].choose(rng).and_then(|&a| {
                    h.sample_partner(a, cat, rng, &usable).map(|b| {
                        (
                            names[a as usize].choose(rng).cloned().unwrap_or_default(),
                            names[b as usize].choose(rng).cloned().unwrap_or_default(),
                        )
                    })
                })
            };
            match pair {
                Some((x, y)) => out.push((x, y, cat)),
                None => {
                    failures += 1;
                }
            }
        }
        out
    }

    /// A batch of `k` distinct concepts with two different true synonyms each: (text, label).
    /// With [`Self::hard_neighbors`] mined, about `hard_share` of the concepts come as pairs
    /// of a random anchor and one of its nearest neighbours (so the batch holds confusable
    /// concepts for the in-batch mining); the rest are drawn at random.
    pub fn synonym_batch(
        &self,
        k: usize,
        hard_share: f64,
        rng: &mut ChaCha8Rng,
    ) -> Vec<(String, u32)> {
        let pool = self.synonym_concepts.len();
        let mut picked: Vec<usize> = Vec::with_capacity(k);
        let mut seen: HashSet<usize> = HashSet::with_capacity(k);
        if self.hard_neighbors.len() == pool && pool > 0 {
            let pairs = ((k as f64 * hard_share) / 2.0).floor() as usize;
            let mut tries = 0;
            while picked.len() < 2 * pairs && tries < 20 * k {
                tries += 1;
                let a = rng.gen_range(0..pool);
                let Some(&b) = self.hard_neighbors[a].choose(rng) else {
                    continue;
                };
                let b = b as usize;
                if !seen.contains(&a) && !seen.contains(&b) {
                    seen.extend([a, b]);
                    picked.extend([a, b]);
                }
            }
        }
        if picked.is_empty() {
            // no neighbours: k distinct concepts at random (as `choose_multiple` draws them)
            picked = rand::seq::index::sample(rng, pool, k.min(pool)).into_vec();
        } else {
            let mut tries = 0;
            while picked.len() < k.min(pool) && tries < 50 * k {
                tries += 1;
                let p = rng.gen_range(0..pool);
                if seen.insert(p) {
                    picked.push(p);
                }
            }
        }
        let mut out = Vec::with_capacity(2 * picked.len());
        for (label, &p) in picked.iter().enumerate() {
            let (hi, ci) = self.synonym_concepts[p];
            let syn = &self.train_names[hi as usize][ci as usize]
                [..self.train_n_syn[hi as usize][ci as usize]];
            for s in syn.choose_multiple(rng, 2) {
                out.push((s.clone(), label as u32));
            }
        }
        out
    }

    /// Pick the hierarchy of the next tree batch, with probability ∝ (training concepts)^`power`:
    /// 0.5 (square root) keeps ICD-10-CM from drowning the small trees, 0 gives every tree the
    /// same share.
    pub fn pick_hierarchy(&self, power: f64, rng: &mut ChaCha8Rng) -> Option<usize> {
        let t = self.trainable();
        let w: Vec<f64> = t
            .iter()
            .map(|&i| (self.train_concepts[i].len() as f64).powf(power))
            .collect();
        let total: f64 = w.iter().sum();
        if t.is_empty() || total <= 0.0 {
            return None;
        }
        let mut x = rng.gen_range(0.0..total);
        for (i, wi) in t.iter().zip(w) {
            if x < wi {
                return Some(*i);
            }
            x -= wi;
        }
        t.last().copied()
    }
}

/// Evaluation material of one system, all anchored on held-out concepts.
#[derive(Debug, Clone, Default)]
pub struct SystemEval {
    /// System name.
    pub system: String,
    /// (text a, text b, category) pairs.
    pub pairs: Vec<(String, String, u8)>,
    /// Normalisation queries: (held-out synonym, index of its concept in `candidates`).
    pub queries: Vec<(String, usize)>,
    /// Candidate preferred names.
    pub candidates: Vec<String>,
}

/// Sizes of the evaluation sets.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct EvalSizes {
    /// Pairs per category per system.
    pub pairs_per_category: usize,
    /// Normalisation queries per system.
    pub max_queries: usize,
    /// Candidate concepts per system (held-out targets always included); 0 = all.
    pub max_candidates: usize,
}

/// Deterministic held-out evaluation sets (fixed seed, independent of the training seed).
pub fn build_eval(corpus: &Corpus, sizes: &EvalSizes) -> Vec<SystemEval> {
    use rand::SeedableRng;
    let mut out = Vec::new();
    for h in &corpus.hierarchies {
        let mut rng = ChaCha8Rng::seed_from_u64(fnv1a64(h.system.as_bytes()) ^ 0x0e7a1);
        let held: Vec<u32> = (0..h.len() as u32)
            .filter(|&i| h.heldout[i as usize])
            .collect();
        if held.is_empty() {
            continue;
        }
        let any = |_: u32| true;
        let mut se = SystemEval {
            system: h.system.clone(),
            ..Default::default()
        };
        if h.edges() > 0 {
            let multi: Vec<u32> = held
                .iter()
                .copied()
                .filter(|&i| h.names[i as usize].len() >= 2)
                .collect();
            for cat in 0..4u8 {
                let mut got = 0;
                let mut tries = 0;
                while got < sizes.pairs_per_category && tries < sizes.pairs_per_category * 20 {
                    tries += 1;
                    let pair = if cat == 0 {
                        multi.choose(&mut rng).map(|&a| {
                            let two: Vec<&String> =
                                h.names[a as usize].choose_multiple(&mut rng, 2).collect();
                            (two[0].clone(), two[1].clone())
                        })
                    } else {
                        let a = *held.choose(&mut rng).unwrap_or(&0);
                        h.sample_partner(a, cat, &mut rng, &any).map(|b| {
                            (
                                h.names[a as usize]
                                    .choose(&mut rng)
                                    .cloned()
                                    .unwrap_or_default(),
                                h.names[b as usize]
                                    .choose(&mut rng)
                                    .cloned()
                                    .unwrap_or_default(),
                            )
                        })
                    };
                    if let Some((x, y)) = pair {
                        if !x.is_empty() && !y.is_empty() {
                            se.pairs.push((x, y, cat));
                            got += 1;
                        }
                    }
                }
            }
        }
        // normalisation: held-out non-preferred synonyms → their concept's preferred name
        let mut queries: Vec<(String, u32)> = Vec::new();
        for &i in &held {
            for s in h.all_synonyms[i as usize].iter().skip(1) {
                if s.to_lowercase() != h.preferred[i as usize].to_lowercase() {
                    queries.push((s.clone(), i));
                }
            }
        }
        queries.shuffle(&mut rng);
        queries.truncate(sizes.max_queries);
        if !queries.is_empty() {
            let mut cand: Vec<u32> = if sizes.max_candidates == 0 || h.len() <= sizes.max_candidates
            {
                (0..h.len() as u32).collect()
            } else {
                let mut c: Vec<u32> = queries.iter().map(|q| q.1).collect();
                let targets: HashSet<u32> = c.iter().copied().collect();
                let mut rest: Vec<u32> = (0..h.len() as u32)
                    .filter(|i| !targets.contains(i))
                    .collect();
                rest.shuffle(&mut rng);
                let room = sizes.max_candidates.saturating_sub(targets.len());
                c.extend(rest.into_iter().take(room));
                c
            };
            cand.sort_unstable();
            cand.dedup();
            let pos: HashMap<u32, usize> = cand.iter().enumerate().map(|(p, &c)| (c, p)).collect();
            se.candidates = cand
                .iter()
                .map(|&c| h.preferred[c as usize].clone())
                .collect();
            se.queries = queries.into_iter().map(|(s, c)| (s, pos[&c])).collect();
        }
        if !se.pairs.is_empty() || !se.queries.is_empty() {
            out.push(se);
        }
    }
    out
}

/// Term kinds treated as synonyms: the store's equivalent kinds plus ICD inclusion terms.
pub fn is_synonym_kind(kind: TermKind) -> bool {
    kind.is_equivalent() || kind == TermKind::Inclusion
}

/// Read every active release of the store into [`Hierarchy`]s. `max_concepts` caps very large
/// systems (0 = no cap) by keeping the concepts with the smallest code hash, so the cap is a
/// uniform, reproducible sample.
pub fn load_hierarchies(
    store: &Store,
    heldout_permille: u32,
    max_concepts: usize,
) -> anyhow::Result<Vec<Hierarchy>> {
    let mut out = Vec::new();
    for rel in store.sources()? {
        let system = rel.system.clone();
        let mut concepts: Vec<ConceptInput> = Vec::new();
        for row in store.terms_of_release(rel.rid) {
            let (_, t) = row?;
            if concepts.last().map(|c| c.code != t.code).unwrap_or(true) {
                concepts.push(ConceptInput {
                    code: t.code.clone(),
                    ..Default::default()
                });
            }
            let c = concepts.last_mut().expect("pushed above");
            if t.kind == TermKind::Preferred && c.preferred.is_empty() {
                c.preferred = t.text;
            } else if is_synonym_kind(t.kind) {
                c.synonyms.push(t.text);
            }
        }
        if max_concepts > 0 && concepts.len() > max_concepts {
            let mut keyed: Vec<(u64, ConceptInput)> = concepts
                .into_iter()
                .map(|c| (fnv1a64(format!("{system}\0{}", c.code).as_bytes()), c))
                .collect();
            keyed.sort_by_key(|(k, _)| *k);
            keyed.truncate(max_concepts);
            concepts = keyed.into_iter().map(|(_, c)| c).collect();
        }
        let mut any_parent = false;
        for c in concepts.iter_mut() {
            c.parents = store.parents(&system, &c.code)?;
            any_parent |= !c.parents.is_empty();
        }
        if !any_parent {
            for c in concepts.iter_mut() {
                c.links = store
                    .relations(&system, &c.code)?
                    .into_iter()
                    .map(|r| r.code)
                    .collect();
            }
        }
        if system.starts_with("PHECODE") {
            // the ICD descriptions mapped to a phecode denote it (category 0)
            let mut cache: HashMap<(String, String), Option<String>> = HashMap::new();
            for c in concepts.iter_mut() {
                for m in store.mappings(&system, &c.code, None)? {
                    if m.target.system == system {
                        continue;
                    }
                    let key = (m.target.system.clone(), m.target.code.clone());
                    let text = match cache.get(&key) {
                        Some(t) => t.clone(),
                        None => {
                            let t = store
                                .concept(&key.0, &key.1)?
                                .map(|r| r.concept.preferred_term);
                            cache.insert(key, t.clone());
                            t
                        }
                    };
                    if let Some(t) = text {
                        c.members.push(t);
                    }
                }
            }
        }
        let h = Hierarchy::build(&system, concepts, heldout_permille);
        tracing::info!(system = %system, concepts = h.len(), edges = h.edges(), "hierarchy loaded");
        out.push(h);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::hiprbert::hierarchy::is_heldout;

    #[test]
    fn training_never_sees_heldout_strings() {
        let c = |code: &str, syn: &[&str]| ConceptInput {
            code: code.into(),
            preferred: code.into(),
            synonyms: syn.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        // find a held-out code and a training code at 50%
        let held = (0..100)
            .map(|i| format!("H{i}"))
            .find(|c| is_heldout("S", c, 500))
            .unwrap();
        let kept = (0..100)
            .map(|i| format!("K{i}"))
            .find(|c| !is_heldout("S", c, 500))
            .unwrap();
        let h = Hierarchy::build(
            "S",
            vec![
                c(&held, &["shared name"]),
                c(&kept, &["Shared Name", "own"]),
            ],
            500,
        );
        let corpus = Corpus::new(vec![h]);
        let ki = corpus.hierarchies[0]
            .codes
            .iter()
            .position(|x| *x == kept)
            .unwrap();
        let hi = 1 - ki;
        assert!(corpus.train_names[0][hi].is_empty());
        assert_eq!(
            corpus.train_names[0][ki],
            vec![kept.clone(), "own".to_string()]
        );
        let sets = build_eval(
            &corpus,
            &EvalSizes {
                pairs_per_category: 10,
                max_queries: 10,
                max_candidates: 0,
            },
        );
        assert_eq!(sets.len(), 1);
        assert!(sets[0].queries.iter().all(|(q, _)| q == "shared name"));
    }

    #[test]
    fn hard_neighbour_batches_pair_each_anchor_with_a_neighbour() {
        use rand::SeedableRng;
        // 40 concepts "cI" with two synonyms each, none held out (permille 0)
        let concepts: Vec<ConceptInput> = (0..40)
            .map(|i| ConceptInput {
                code: format!("C{i}"),
                preferred: format!("c{i} one"),
                synonyms: vec![format!("c{i} two")],
                ..Default::default()
            })
            .collect();
        let mut corpus = Corpus::new(vec![Hierarchy::build("S", concepts, 0)]);
        let pool = corpus.synonym_concepts.len();
        assert_eq!(pool, 40);
        let concept_of = |text: &str| -> usize {
            let code = text.split(' ').next().unwrap().trim_start_matches('c');
            let code = format!("C{code}");
            let ci = corpus.hierarchies[0]
                .codes
                .iter()
                .position(|c| *c == code)
                .unwrap();
            corpus
                .synonym_concepts
                .iter()
                .position(|&(_, c)| c as usize == ci)
                .unwrap()
        };
        // each concept's only neighbour: the next one in the pool
        corpus.hard_neighbors = (0..pool).map(|p| vec![((p + 1) % pool) as u32]).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..20 {
            let batch = corpus.synonym_batch(8, 1.0, &mut rng);
            assert_eq!(batch.len(), 16, "8 concepts, two names each");
            let mut by_label: HashMap<u32, Vec<usize>> = HashMap::new();
            for (text, label) in &batch {
                by_label.entry(*label).or_default().push(concept_of(text));
            }
            assert_eq!(by_label.len(), 8);
            for names in by_label.values() {
                assert_eq!(names.len(), 2);
                assert_eq!(names[0], names[1], "one concept per label");
            }
            // labels 2j and 2j+1 are an anchor and its neighbour
            for j in 0..4u32 {
                let (a, b) = (by_label[&(2 * j)][0], by_label[&(2 * j + 1)][0]);
                assert_eq!(b, (a + 1) % pool, "pair {j}: {a} then {b}");
            }
        }
        // share 0.5 of 8: two pairs, the other four at random; no neighbours: random only
        let batch = corpus.synonym_batch(8, 0.5, &mut rng);
        assert_eq!(batch.len(), 16);
        corpus.hard_neighbors.clear();
        assert_eq!(corpus.synonym_batch(8, 1.0, &mut rng).len(), 16);
    }
}
