//! Hard negatives from the whole synonym pool, not only the batch.
//!
//! SapBERT's online mining picks the hardest pairs *within* a batch, but a batch of 16 random
//! concepts out of tens of thousands almost never holds two that a model confuses ("Seizure"
//! next to "Generalized seizure", "Motor neuropathy" next to "Motor axonal neuropathy"), so the
//! mining has little to mine and the model never learns the distinctions normalisation needs.
//! Here every synonym concept gets its nearest other concepts of the same system — by the
//! cosine of their first training names under the base model, exact (one blocked matrix
//! product per system) — and [`super::data::Corpus::synonym_batch`] builds part of each batch
//! as anchor + neighbour pairs, so the in-batch mining then finds confusable pairs in every
//! batch. The neighbours are mined once, before the first step, and kept in the checkpoint
//! folder, so a resumed run samples the same batches (refreshing them with the model being
//! trained, as ANN-mined hard negatives are in later work, is not done).

use super::data::Corpus;
use crate::eval::embedding::EmbedFn;
use candle_core::{Device, Tensor};

/// Rows of the similarity matrix computed at once (a 512 × n block of f32: 80 MB at 40k).
const BLOCK: usize = 512;

/// For every entry of `corpus.synonym_concepts`, the indices (into that same list) of its
/// `per_concept` most similar other concepts of the same hierarchy, most similar first.
pub fn mine_neighbors(
    corpus: &Corpus,
    embed: &mut EmbedFn<'_>,
    per_concept: usize,
) -> anyhow::Result<Vec<Vec<u32>>> {
    let n = corpus.synonym_concepts.len();
    let mut out = vec![Vec::new(); n];
    if per_concept == 0 || n == 0 {
        return Ok(out);
    }
    // group the pool by hierarchy: positions into `synonym_concepts`
    let mut groups: std::collections::BTreeMap<u32, Vec<u32>> = Default::default();
    for (p, &(hi, _)) in corpus.synonym_concepts.iter().enumerate() {
        groups.entry(hi).or_default().push(p as u32);
    }
    for (hi, members) in groups {
        let texts: Vec<String> = members
            .iter()
            .map(|&p| {
                let (_, ci) = corpus.synonym_concepts[p as usize];
                corpus.train_names[hi as usize][ci as usize][0].clone()
            })
            .collect();
        let started = std::time::Instant::now();
        let vecs = embed(&texts)?;
        let near = nearest(&vecs, per_concept)?;
        for (i, list) in near.into_iter().enumerate() {
            out[members[i] as usize] = list.into_iter().map(|j| members[j as usize]).collect();
        }
        tracing::info!(
            system = %corpus.hierarchies[hi as usize].system,
            concepts = members.len(),
            secs = format!("{:.1}", started.elapsed().as_secs_f64()),
            "hard neighbours mined"
        );
    }
    Ok(out)
}

/// Exact `k` nearest neighbours by cosine of each row of `vecs` among the others (self left
/// out), most similar first; ties broken by index.
pub fn nearest(vecs: &[Vec<f32>], k: usize) -> anyhow::Result<Vec<Vec<u32>>> {
    let n = vecs.len();
    if n == 0 {
        return Ok(Vec::new());
    }
    let dim = vecs[0].len();
    let mut flat = Vec::with_capacity(n * dim);
    for v in vecs {
        anyhow::ensure!(v.len() == dim, "vectors of one dimension");
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        flat.extend(v.iter().map(|x| x / norm));
    }
    let all = Tensor::from_vec(flat, (n, dim), &Device::Cpu)?;
    let all_t = all.t()?.contiguous()?;
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(BLOCK) {
        let rows = BLOCK.min(n - start);
        let sims: Vec<Vec<f32>> = all.narrow(0, start, rows)?.matmul(&all_t)?.to_vec2()?;
        for (r, row) in sims.into_iter().enumerate() {
            let me = start + r;
            let mut idx: Vec<u32> = (0..n as u32).filter(|&j| j as usize != me).collect();
            let take = k.min(idx.len());
            let by_sim =
                |a: &u32, b: &u32| row[*b as usize].total_cmp(&row[*a as usize]).then(a.cmp(b));
            if take < idx.len() {
                idx.select_nth_unstable_by(take, by_sim);
                idx.truncate(take);
            }
            idx.sort_by(by_sim);
            out.push(idx);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_is_exact_and_leaves_self_out() {
        let v = vec![
            vec![1.0, 0.0],
            vec![0.9, 0.1],
            vec![0.0, 1.0],
            vec![0.2, 1.0],
            vec![-1.0, 0.0],
        ];
        let nn = nearest(&v, 2).unwrap();
        assert_eq!(nn[0], vec![1, 3]);
        assert_eq!(nn[2], vec![3, 1]);
        assert_eq!(nn[4], vec![2, 3]);
        for (i, l) in nn.iter().enumerate() {
            assert!(!l.contains(&(i as u32)));
        }
        // k larger than the pool: everyone else, most similar first
        assert_eq!(nearest(&v, 10).unwrap()[1], vec![0, 3, 2, 4]);
    }

    #[test]
    fn nearest_agrees_with_brute_force_across_blocks() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let n = BLOCK + 37;
        let v: Vec<Vec<f32>> = (0..n)
            .map(|_| (0..8).map(|_| rng.gen_range(-1.0f32..1.0)).collect())
            .collect();
        let nn = nearest(&v, 3).unwrap();
        let unit = |x: &Vec<f32>| {
            let s = x.iter().map(|a| a * a).sum::<f32>().sqrt();
            x.iter().map(|a| a / s).collect::<Vec<f32>>()
        };
        for i in [0, 1, BLOCK - 1, BLOCK, n - 1] {
            let a = unit(&v[i]);
            let mut best: Vec<(f32, usize)> = (0..n)
                .filter(|&j| j != i)
                .map(|j| (a.iter().zip(unit(&v[j])).map(|(x, y)| x * y).sum(), j))
                .collect();
            best.sort_by(|x, y| y.0.total_cmp(&x.0));
            let want: Vec<u32> = best[..3].iter().map(|b| b.1 as u32).collect();
            assert_eq!(nn[i], want, "row {i}");
        }
    }
}
