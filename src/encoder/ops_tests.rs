//! Tests of `ops`.

use super::*;

#[test]
fn exp_and_erf_are_accurate() {
    let mut worst_exp = 0f64;
    let mut worst_erf = 0f64;
    for i in -8000..8000 {
        let x = i as f32 * 0.01;
        let e = (x as f64).exp();
        worst_exp = worst_exp.max(((exp(x) as f64) - e).abs() / e);
        worst_erf = worst_erf.max((erf(x) as f64 - libm::erf(x as f64)).abs());
    }
    assert!(worst_exp < 3e-7, "exp relative error {worst_exp}");
    assert!(worst_erf < 3e-7, "erf absolute error {worst_erf}");
    assert_eq!(exp(-1000.0), exp(-87.0));
    assert!(exp(1000.0).is_finite());
}

fn seeded(n: usize, seed: u64) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.gen_range(-2.0f32..2.0)).collect()
}

fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "{what}[{i}]: {x} vs {y}");
    }
}

/// Softmax attention of one packed batch in f64, straight from the definition.
fn naive_attention(qkv: &[f32], offsets: &[usize], s: AttnShape) -> Vec<f32> {
    let (h, d) = (s.hidden, s.hidden / s.heads);
    let mut out = vec![0f32; offsets.last().unwrap() * h];
    for w in offsets.windows(2) {
        for hd in 0..s.heads {
            for i in w[0]..w[1] {
                let q = &qkv[i * 3 * h + hd * d..][..d];
                let scores: Vec<f64> = (w[0]..w[1])
                    .map(|j| {
                        let k = &qkv[j * 3 * h + h + hd * d..][..d];
                        q.iter().zip(k).map(|(a, b)| (a * b) as f64).sum::<f64>()
                            / (d as f64).sqrt()
                    })
                    .collect();
                let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let e: Vec<f64> = scores.iter().map(|x| (x - max).exp()).collect();
                let total: f64 = e.iter().sum();
                for c in 0..d {
                    out[i * h + hd * d + c] = (w[0]..w[1])
                        .zip(&e)
                        .map(|(j, p)| p / total * qkv[j * 3 * h + 2 * h + hd * d + c] as f64)
                        .sum::<f64>() as f32;
                }
            }
        }
    }
    out
}

/// The portable loops run on every CPU and agree with the dispatched (AVX-512 where the CPU
/// has it) versions and with the definitions. Head size 16 is the one the AVX-512
/// attention kernel takes (8 falls back to the portable loop inside it), 8 the fallback.
#[test]
fn portable_and_dispatched_paths_agree() {
    // GELU (both forms) and LayerNorm, widths that leave vector tails
    for n in [1usize, 15, 16, 17, 100] {
        let x = seeded(n, n as u64);
        let (mut a, mut b) = (x.clone(), x.clone());
        gelu_erf_inline(&mut a);
        gelu_erf(&mut b);
        assert_close(&a, &b, 1e-6, "gelu_erf");
        for (g, v) in a.iter().zip(&x) {
            let want = 0.5 * *v as f64 * (1.0 + libm::erf(*v as f64 / std::f64::consts::SQRT_2));
            assert!(
                (*g as f64 - want).abs() < 1e-5,
                "gelu_erf({v}) = {g}, want {want}"
            );
        }
        let (mut a, mut b) = (x.clone(), x.clone());
        gelu_tanh_inline(&mut a);
        gelu_tanh(&mut b);
        assert_close(&a, &b, 1e-6, "gelu_tanh");
        let (w, bias) = (seeded(n, 100 + n as u64), seeded(n, 200 + n as u64));
        let rows = seeded(3 * n, 300 + n as u64);
        let (mut a, mut b) = (rows.clone(), rows.clone());
        layer_norm_rows_inline(&mut a, &w, &bias, 1e-12);
        layer_norm(&mut b, &w, &bias, 1e-12);
        assert_close(&a, &b, 1e-5, "layer_norm");
    }
    // attention: head sizes 16 (AVX-512 kernel) and 8, sequence lengths across 16
    for (hidden, heads) in [(32usize, 2usize), (32, 4), (64, 4)] {
        let s = AttnShape { hidden, heads };
        let offsets = [0usize, 1, 18, 33, 40];
        let tokens = *offsets.last().unwrap();
        let qkv = seeded(tokens * 3 * hidden, hidden as u64 * 10 + heads as u64);
        let want = naive_attention(&qkv, &offsets, s);
        let mut portable = vec![f32::NAN; tokens * hidden];
        attention_with(&qkv, &offsets, s, &mut portable, false);
        let mut dispatched = vec![f32::NAN; tokens * hidden];
        attention(&qkv, &offsets, s, &mut dispatched);
        assert_close(&portable, &want, 1e-5, "portable attention");
        assert_close(&dispatched, &want, 1e-5, "dispatched attention");
        assert_close(&portable, &dispatched, 1e-5, "portable vs dispatched");
    }
}

#[test]
fn layer_norm_matches_the_definition() {
    let w = [
        1.0, 2.0, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 3.0,
    ];
    let b = [0.1; 17];
    let mut x: Vec<f32> = (0..34).map(|i| (i as f32 * 0.37).sin() * 3.0).collect();
    let orig = x.clone();
    layer_norm(&mut x, &w, &b, 1e-12);
    for r in 0..2 {
        let row = &orig[r * 17..(r + 1) * 17];
        let mean = row.iter().sum::<f32>() / 17.0;
        let var = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 17.0;
        for j in 0..17 {
            let want = (row[j] - mean) / var.sqrt() * w[j] + b[j];
            assert!((x[r * 17 + j] - want).abs() < 1e-5);
        }
    }
}
