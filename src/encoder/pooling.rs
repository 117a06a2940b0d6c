//! Pooling of token vectors into one vector per text, and L2 normalisation.
//!
//! The model returns the token rows of a batch packed without padding (`[Σ len, hidden]`, text
//! `i` owning rows `offsets[i]..offsets[i+1]`), so a text's mask is simply its own rows.

use super::Pooling;

/// Pools a packed row-major `[Σ len, hidden]` buffer; text `i` owns rows
/// `offsets[i]..offsets[i+1]` (each range non-empty).
pub fn pool(
    hidden_states: &[f32],
    offsets: &[usize],
    hidden: usize,
    pooling: Pooling,
) -> Vec<Vec<f32>> {
    debug_assert_eq!(
        hidden_states.len(),
        offsets.last().copied().unwrap_or(0) * hidden
    );
    offsets
        .windows(2)
        .map(|w| {
            let len = (w[1] - w[0]).max(1);
            let rows = &hidden_states[w[0] * hidden..(w[0] + len) * hidden];
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
    fn pooling_uses_each_texts_own_rows() {
        // two packed texts, hidden 2; text 0 has 2 tokens, text 1 has 3.
        let h = [1., 2., 3., 4., 1., 1., 2., 2., 6., 0.];
        let off = [0, 2, 5];
        assert_eq!(
            pool(&h, &off, 2, Pooling::Mean),
            vec![vec![2., 3.], vec![3., 1.]]
        );
        assert_eq!(
            pool(&h, &off, 2, Pooling::Max),
            vec![vec![3., 4.], vec![6., 2.]]
        );
        assert_eq!(
            pool(&h, &off, 2, Pooling::Cls),
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
