//! Held-out evaluation as pure functions over an embedding function and pairs, so the search
//! layer's `ontovec eval` can reuse the same math.
//!
//! * **Pair-distance ROC AUC** for every pair of categories `i < j` (0v1, 0v2, 0v3, 1v2, 1v3,
//!   2v3): the probability that a random category-`i` pair is more similar than a random
//!   category-`j` pair (ties count ½; Mann–Whitney U / (n·m)), and their mean.
//! * **Synonym normalisation acc@1 / acc@5**: each held-out synonym is embedded and matched by
//!   cosine, brute force, against candidate preferred names of its system; a hit is the target
//!   concept's preferred name (or an identical string) among the top k.

use std::collections::BTreeMap;

/// An embedding function: texts in, one vector per text out (any norm; cosine is taken here).
pub type EmbedFn<'a> = dyn FnMut(&[String]) -> anyhow::Result<Vec<Vec<f32>>> + 'a;

/// Serde for metrics that may be NaN ("not measurable"): written as `null`, read back as NaN.
pub mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Write NaN/∞ as `null`.
    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_f64(*x)
        } else {
            s.serialize_none()
        }
    }

    /// Read `null` as NaN.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// The category pairs reported, closer category first.
pub const CATEGORY_PAIRS: [(u8, u8); 6] = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)];

/// ROC AUC that a random positive scores above a random negative (ties count half; NaN when a
/// side is empty). One implementation serves training and `ontovec eval`.
pub use crate::search::eval::roc_auc;

/// AUCs for every category pair present, keyed `"0v1"` etc., and their mean.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CategoryAucs {
    /// AUC per category pair (only pairs with both categories present).
    pub aucs: BTreeMap<String, f64>,
    /// Mean of `aucs` (NaN when empty).
    #[serde(with = "nan_as_null")]
    pub mean: f64,
}

/// Category-pair AUCs from pair similarities `sims` and their categories `cats`.
pub fn category_aucs(sims: &[f32], cats: &[u8]) -> CategoryAucs {
    let by = |c: u8| -> Vec<f32> {
        sims.iter()
            .zip(cats)
            .filter(|(_, &k)| k == c)
            .map(|(s, _)| *s)
            .collect()
    };
    let mut aucs = BTreeMap::new();
    for (i, j) in CATEGORY_PAIRS {
        let a = roc_auc(&by(i), &by(j));
        if a.is_finite() {
            aucs.insert(format!("{i}v{j}"), a);
        }
    }
    let mean = if aucs.is_empty() {
        f64::NAN
    } else {
        aucs.values().sum::<f64>() / aucs.len() as f64
    };
    CategoryAucs { aucs, mean }
}

fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut d, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        d += x * y;
        na += x * x;
        nb += y * y;
    }
    d / (na.sqrt() * nb.sqrt()).max(1e-12)
}

/// Embed the distinct texts of `texts` once and return one vector per input.
fn embed_unique(embed: &mut EmbedFn<'_>, texts: &[&String]) -> anyhow::Result<Vec<Vec<f32>>> {
    let mut uniq: Vec<String> = Vec::new();
    let mut pos: BTreeMap<&str, usize> = BTreeMap::new();
    for t in texts {
        if !pos.contains_key(t.as_str()) {
            pos.insert(t.as_str(), uniq.len());
            uniq.push((*t).clone());
        }
    }
    let vecs = embed(&uniq)?;
    anyhow::ensure!(
        vecs.len() == uniq.len(),
        "embedding function returned {} vectors for {} texts",
        vecs.len(),
        uniq.len()
    );
    Ok(texts
        .iter()
        .map(|t| vecs[pos[t.as_str()]].clone())
        .collect())
}

/// Cosine similarity of each (a, b, category) pair.
pub fn pair_similarities(
    embed: &mut EmbedFn<'_>,
    pairs: &[(String, String, u8)],
) -> anyhow::Result<Vec<f32>> {
    let texts: Vec<&String> = pairs.iter().flat_map(|(a, b, _)| [a, b]).collect();
    let v = embed_unique(embed, &texts)?;
    Ok((0..pairs.len())
        .map(|i| cosine(&v[2 * i], &v[2 * i + 1]))
        .collect())
}

/// Normalisation accuracy at 1 and at 5 of `queries` (text, index of the right candidate)
/// against `candidates`.
pub fn normalization_accuracy(
    embed: &mut EmbedFn<'_>,
    queries: &[(String, usize)],
    candidates: &[String],
) -> anyhow::Result<(f64, f64)> {
    if queries.is_empty() || candidates.is_empty() {
        return Ok((f64::NAN, f64::NAN));
    }
    let cref: Vec<&String> = candidates.iter().collect();
    let cv = embed_unique(embed, &cref)?;
    let qref: Vec<&String> = queries.iter().map(|(q, _)| q).collect();
    let qv = embed_unique(embed, &qref)?;
    let (mut at1, mut at5) = (0usize, 0usize);
    for (qi, (_, target)) in queries.iter().enumerate() {
        let mut scored: Vec<(f32, usize)> = cv
            .iter()
            .enumerate()
            .map(|(ci, c)| (cosine(&qv[qi], c), ci))
            .collect();
        let k = 5.min(scored.len());
        scored.select_nth_unstable_by(k - 1, |a, b| b.0.total_cmp(&a.0));
        scored[..k].sort_by(|a, b| b.0.total_cmp(&a.0));
        let target_text = candidates[*target].to_lowercase();
        let hit = |ci: usize| ci == *target || candidates[ci].to_lowercase() == target_text;
        if hit(scored[0].1) {
            at1 += 1;
        }
        if scored[..k].iter().any(|&(_, ci)| hit(ci)) {
            at5 += 1;
        }
    }
    let n = queries.len() as f64;
    Ok((at1 as f64 / n, at5 as f64 / n))
}

/// Evaluation results of one model on one system.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SystemReport {
    /// System.
    pub system: String,
    /// Pairs evaluated per category (index = category).
    pub pairs_per_category: [usize; 4],
    /// Category-pair AUCs (None when the system has no structure).
    pub aucs: Option<CategoryAucs>,
    /// Normalisation queries.
    pub queries: usize,
    /// Normalisation candidates.
    pub candidates: usize,
    /// Normalisation accuracy at 1 (NaN without queries).
    #[serde(with = "nan_as_null")]
    pub acc1: f64,
    /// Normalisation accuracy at 5.
    #[serde(with = "nan_as_null")]
    pub acc5: f64,
}

/// Evaluate one embedding function on prepared per-system sets (see
/// [`crate::train::hiprbert::data::build_eval`]).
pub fn evaluate(
    embed: &mut EmbedFn<'_>,
    sets: &[crate::train::hiprbert::data::SystemEval],
) -> anyhow::Result<Vec<SystemReport>> {
    let mut out = Vec::new();
    for s in sets {
        let mut r = SystemReport {
            system: s.system.clone(),
            queries: s.queries.len(),
            candidates: s.candidates.len(),
            acc1: f64::NAN,
            acc5: f64::NAN,
            ..Default::default()
        };
        for (_, _, c) in &s.pairs {
            r.pairs_per_category[*c as usize] += 1;
        }
        if !s.pairs.is_empty() {
            let sims = pair_similarities(embed, &s.pairs)?;
            let cats: Vec<u8> = s.pairs.iter().map(|p| p.2).collect();
            r.aucs = Some(category_aucs(&sims, &cats));
        }
        let (a1, a5) = normalization_accuracy(embed, &s.queries, &s.candidates)?;
        r.acc1 = a1;
        r.acc5 = a5;
        out.push(r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auc_basics() {
        assert_eq!(roc_auc(&[0.9, 0.8], &[0.1, 0.2]), 1.0);
        assert_eq!(roc_auc(&[0.1], &[0.9]), 0.0);
        assert_eq!(roc_auc(&[0.5], &[0.5]), 0.5);
        // 3 of 4 orderings right
        assert!((roc_auc(&[0.3, 0.9], &[0.1, 0.5]) - 0.75).abs() < 1e-12);
        assert!(roc_auc(&[], &[0.1]).is_nan());
    }

    #[test]
    fn auc_matches_brute_force_with_ties() {
        let pos = [0.1f32, 0.4, 0.4, 0.7, 0.9, 0.3];
        let neg = [0.4f32, 0.2, 0.3, 0.05, 0.8];
        let mut s = 0.0;
        for p in pos {
            for n in neg {
                s += if p > n {
                    1.0
                } else if p == n {
                    0.5
                } else {
                    0.0
                };
            }
        }
        let brute = s / (pos.len() * neg.len()) as f64;
        assert!((roc_auc(&pos, &neg) - brute).abs() < 1e-12);
    }

    #[test]
    fn category_aucs_cover_present_pairs() {
        let sims = [0.9, 0.8, 0.5, 0.6, 0.1, 0.2];
        let cats = [0u8, 0, 1, 1, 3, 3];
        let r = category_aucs(&sims, &cats);
        assert_eq!(
            r.aucs.keys().cloned().collect::<Vec<_>>(),
            vec!["0v1", "0v3", "1v3"]
        );
        assert_eq!(r.mean, 1.0);
    }

    #[test]
    fn normalization_with_a_toy_embedding() {
        // 2-d "embedding": first letter decides direction
        let mut embed = |t: &[String]| -> anyhow::Result<Vec<Vec<f32>>> {
            Ok(t.iter()
                .map(|s| {
                    if s.starts_with('a') {
                        vec![1.0, 0.1]
                    } else {
                        vec![0.1, 1.0]
                    }
                })
                .collect())
        };
        let cands = vec!["apple".to_string(), "banana".to_string()];
        let q = vec![
            ("apfel".to_string(), 0),
            ("bnn".to_string(), 1),
            ("avocado".to_string(), 1),
        ];
        let (a1, a5) = normalization_accuracy(&mut embed, &q, &cands).unwrap();
        assert!((a1 - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(a5, 1.0);
    }
}
