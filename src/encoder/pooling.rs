//! Pooling of token vectors into one vector per text, and L2 normalisation.
//!
//! Batches are right-padded, so a text's mask is simply its first `len` positions; pooling works
//! on the flat `[batch, seq, hidden]` output copied once out of candle, which avoids building
//! mask tensors for a handful of reductions.

use super::Pooling;

/// Pools a flat `[lens.len(), seq, hidden]` row-major buffer; `lens[i]` is text `i`'s number of
/// real (non-padding) tokens, `1 ≤ lens[i] ≤ seq`.
pub fn pool(
    hidden_states: &[f32],
    seq: usize,
    hidden: usize,
    lens: &[usize],
    pooling: Pooling,
) -> Vec<Vec<f32>> {
    debug_assert_eq!(hidden_states.len(), lens.len() * seq * hidden);
    lens.iter()
        .enumerate()
        .map(|(i, &len)| {
            let len = len.clamp(1, seq);
            let base = i * seq * hidden;
            let rows = &hidden_states[base..base + len * hidden];
            match pooling {
                Pooling::Cls => rows[..hidden].to_vec(),
                Pooling::Mean => {
                    let mut acc = vec![0f32; hidden];
                    for row in rows.chunks_exact(hidden) {
                        for (a, x) in acc.iter_mut().zip(row) {
                            *a += x;
                        }
                    }
                    let inv = 1.0 / len as f32;
                    acc.iter_mut().for_each(|a| *a *= inv);
                    acc
                }
                Pooling::Max => {
                    let mut acc = vec![f32::NEG_INFINITY; hidden];
                    for row in rows.chunks_exact(hidden) {
                        for (a, x) in acc.iter_mut().zip(row) {
                            *a = a.max(*x);
                        }
                    }
                    acc
                }
            }
        })
        .collect()
}

/// Scales `v` to unit L2 norm in place (a zero vector stays zero).
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        let inv = 1.0 / norm;
        v.iter_mut().for_each(|x| *x *= inv);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pooling_respects_the_mask() {
        // two texts, seq 3, hidden 2; text 0 has 2 tokens, text 1 has 3.
        let h = [1., 2., 3., 4., 100., 100., 1., 1., 2., 2., 6., 0.];
        assert_eq!(
            pool(&h, 3, 2, &[2, 3], Pooling::Mean),
            vec![vec![2., 3.], vec![3., 1.]]
        );
        assert_eq!(
            pool(&h, 3, 2, &[2, 3], Pooling::Max),
            vec![vec![3., 4.], vec![6., 2.]]
        );
        assert_eq!(
            pool(&h, 3, 2, &[2, 3], Pooling::Cls),
            vec![vec![1., 2.], vec![1., 1.]]
        );
    }

    #[test]
    fn normalize_gives_unit_norm() {
        let mut v = vec![3., 4.];
        l2_normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-6 && (v[1] - 0.8).abs() < 1e-6);
        let mut z = vec![0., 0.];
        l2_normalize(&mut z);
        assert_eq!(z, vec![0., 0.]);
    }
}
