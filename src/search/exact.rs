//! Exact nearest neighbours by a full scan, and the synthetic vectors the vector benchmarks and
//! tests measure recall on: the reference an approximate index (usearch HNSW, or any other
//! vector store) is held to.

use rand::Rng;

/// The ids of the `k` vectors of `data` with the largest dot product with `q` among those
/// `filter` keeps (unit vectors: cosine), best first; ties go to the smaller id.
pub fn exact_top_k(
    data: &[(u64, Vec<f32>)],
    q: &[f32],
    k: usize,
    filter: impl Fn(u64) -> bool,
) -> Vec<u64> {
    let mut scored: Vec<(f32, u64)> = data
        .iter()
        .filter(|(id, _)| filter(*id))
        .map(|(id, v)| (v.iter().zip(q).map(|(a, b)| a * b).sum(), *id))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    scored.into_iter().take(k).map(|(_, id)| id).collect()
}

/// Share of `exact` that `found` holds (recall@k when both hold k ids; 1 for an empty `exact`).
pub fn recall(found: &[u64], exact: &[u64]) -> f64 {
    if exact.is_empty() {
        return 1.0;
    }
    let hit = exact.iter().filter(|id| found.contains(id)).count();
    hit as f64 / exact.len() as f64
}

/// A random unit vector of `dim` values (uniform in the cube, then normalised).
pub fn random_unit(rng: &mut impl Rng, dim: usize) -> Vec<f32> {
    let v: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0f32..1.0)).collect();
    normalized(v)
}

/// `n` unit vectors around `clusters` random centres (`normalise(c + 0.8·g)`: intra-cluster
/// cosine ≈ 0.6), shaped more like text embeddings than uniform noise is.
pub fn clustered(rng: &mut impl Rng, n: usize, dim: usize, clusters: usize) -> Vec<Vec<f32>> {
    let centres: Vec<Vec<f32>> = (0..clusters).map(|_| random_unit(rng, dim)).collect();
    (0..n)
        .map(|_| {
            let c = &centres[rng.gen_range(0..clusters)];
            let g = random_unit(rng, dim);
            normalized(c.iter().zip(&g).map(|(a, b)| a + 0.8 * b).collect())
        })
        .collect()
}

fn normalized(v: Vec<f32>) -> Vec<f32> {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    v.into_iter().map(|x| x / n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_order_filter_and_recall() {
        let data = vec![
            (1, vec![1.0, 0.0]),
            (2, vec![0.0, 1.0]),
            (3, vec![0.6, 0.8]),
        ];
        assert_eq!(exact_top_k(&data, &[1.0, 0.0], 2, |_| true), vec![1, 3]);
        assert_eq!(exact_top_k(&data, &[1.0, 0.0], 2, |id| id != 1), vec![3, 2]);
        assert_eq!(recall(&[3, 9], &[1, 3]), 0.5);
        assert_eq!(recall(&[], &[]), 1.0);
    }
}
