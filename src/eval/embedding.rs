//! Embedding-based evaluation as pure functions over an embedding function (any model: the
//! trainer's differentiable BERT, the serving encoder, a toy in tests):
//!
//! * [`pair_similarities`] — the cosine of each text pair (for [`super::metrics::category_aucs`]);
//! * [`normalization_accuracy`] — acc@1 / acc@5 of synonym normalisation: each query is
//!   embedded and matched by cosine, brute force, against candidate names; a hit is the target
//!   candidate (or one with the same text, case-insensitively) among the top k;
//! * [`unit_embeddings`] + [`nearest_owners`] — for each query, the owner (a concept) of the
//!   term nearest to it by cosine over every term given, brute force: what the server's vector
//!   side ranks first, without the HNSW approximation.

use crate::encoder::pooling::l2_normalize;
use crate::util::vector::{cosine, dot};
use std::collections::BTreeMap;

/// An embedding function: texts in, one vector per text out (any norm; cosine is taken here).
pub type EmbedFn<'a> = dyn FnMut(&[String]) -> anyhow::Result<Vec<Vec<f32>>> + 'a;

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

/// Unit-length embeddings of `texts` (each distinct text embedded once), for repeated
/// dot-product ranking with [`nearest_owners`].
pub fn unit_embeddings(embed: &mut EmbedFn<'_>, texts: &[String]) -> anyhow::Result<Vec<Vec<f32>>> {
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    let refs: Vec<&String> = texts.iter().collect();
    Ok(embed_unique(embed, &refs)?
        .into_iter()
        .map(|mut v| {
            l2_normalize(&mut v);
            v
        })
        .collect())
}

/// For each query vector, the owner of the nearest term vector by cosine (all unit length, see
/// [`unit_embeddings`]; brute force; `owners[i]` owns `terms[i]`), or `None` when there are no
/// terms. Queries are ranked in parallel.
pub fn nearest_owners(
    queries: &[Vec<f32>],
    terms: &[Vec<f32>],
    owners: &[u32],
) -> Vec<Option<u32>> {
    use rayon::prelude::*;
    assert_eq!(terms.len(), owners.len(), "one owner per term");
    queries
        .par_iter()
        .map(|q| {
            terms
                .iter()
                .enumerate()
                .map(|(i, t)| (dot(q, t), i))
                .max_by(|a, b| a.0.total_cmp(&b.0).then(b.1.cmp(&a.1)))
                .map(|(_, i)| owners[i])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn nearest_owner_is_the_owner_of_the_closest_term() {
        let mut embed = |t: &[String]| -> anyhow::Result<Vec<Vec<f32>>> {
            Ok(t.iter()
                .map(|s| match s.as_str() {
                    "heart attack" => vec![1.0, 0.0],
                    "myocardial infarction" => vec![0.9, 0.1],
                    "angina" => vec![0.5, 0.5],
                    _ => vec![0.0, 1.0],
                })
                .collect())
        };
        let terms: Vec<String> = ["angina", "myocardial infarction", "fracture"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let q = vec!["heart attack".to_string(), "broken bone".to_string()];
        let tv = unit_embeddings(&mut embed, &terms).unwrap();
        let qv = unit_embeddings(&mut embed, &q).unwrap();
        assert!(tv
            .iter()
            .all(|v| (v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-6));
        assert_eq!(nearest_owners(&qv, &tv, &[7, 3, 9]), vec![Some(3), Some(9)]);
        assert_eq!(nearest_owners(&qv, &[], &[]), vec![None, None]);
    }
}
