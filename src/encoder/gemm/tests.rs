use super::*;
use rand::{Rng, SeedableRng};

fn naive(x: &[f32], w: &[f32], bias: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            let mut s = bias[j] as f64;
            for p in 0..k {
                s += x[i * k + p] as f64 * w[j * k + p] as f64;
            }
            out[i * n + j] = s as f32;
        }
    }
    out
}

fn check(m: usize, n: usize, k: usize, b: Backend) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64((m * 1000 + n * 10 + k) as u64);
    let mut r = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect() };
    let (x, w, bias, res) = (r(m * k), r(n * k), r(n), r(m * n));
    let lin = PackedLinear::with_backend(&w, &bias, n, k, b);
    let want = naive(&x, &w, &bias, m, n, k);
    let tol = 1e-4 * (k as f32).sqrt();
    let mut got = vec![f32::NAN; m * n];
    lin.forward(&x, m, Epilogue::None, &mut got);
    for (g, e) in got.iter().zip(&want) {
        assert!((g - e).abs() < tol, "{b:?} {m}x{n}x{k}: {g} vs {e}");
    }
    lin.forward(&x, m, Epilogue::Residual(&res), &mut got);
    for ((g, e), r) in got.iter().zip(&want).zip(&res) {
        assert!((g - e - r).abs() < tol, "{b:?} residual {m}x{n}x{k}");
    }
    lin.forward(&x, m, Epilogue::GeluErf, &mut got);
    for (g, e) in got.iter().zip(&want) {
        let x = *e as f64;
        let gelu = 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
        assert!(
            (*g as f64 - gelu).abs() < tol as f64,
            "{b:?} gelu {g} vs {gelu}"
        );
    }
}

#[test]
fn avx512_is_only_ever_a_request() {
    let lin = PackedLinear::with_backend(&[1.0, 2.0], &[0.5], 1, 2, Backend::Avx512);
    let want = if has_avx512() {
        Backend::Avx512
    } else {
        Backend::Portable
    };
    assert_eq!(lin.backend(), want);
    let mut out = [0f32];
    lin.forward(&[1.0, 1.0], 1, Epilogue::None, &mut out);
    assert_eq!(out, [3.5]);
    let p = PackedLinear::with_backend(&[1.0, 2.0], &[0.5], 1, 2, Backend::Portable);
    assert_eq!(p.backend(), Backend::Portable);
}

#[test]
fn both_backends_match_a_naive_product_on_awkward_shapes() {
    let mut backends = vec![Backend::Portable];
    if has_avx512() {
        backends.push(Backend::Avx512);
    }
    for b in backends {
        // Row tails (1..12), column tails (n not a multiple of 16/32), k across KC blocks,
        // and a product big enough to be split across threads.
        for &(m, n, k) in &[
            (1, 1, 1),
            (1, 32, 5),
            (13, 96, 32),
            (12, 17, 300),
            (25, 40, 257),
            (7, 100, 513),
            (130, 384, 384),
        ] {
            check(m, n, k, b);
        }
    }
}

/// `x · W + bias` with both operands rounded to BF16 as the kernel rounds them, summed in f64:
/// what the BF16 kernel must reproduce up to F32 summation order.
#[cfg(target_arch = "x86_64")]
fn naive_bf16(x: &[f32], w: &[f32], bias: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let r = |v: &[f32]| -> Vec<f32> {
        v.iter()
            .map(|&a| bf16::from_bf16(bf16::to_bf16(a)))
            .collect()
    };
    naive(&r(x), &r(w), bias, m, n, k)
}

#[cfg(target_arch = "x86_64")]
#[test]
fn bf16_rounding_is_nearest_even() {
    use bf16::{from_bf16, to_bf16};
    assert_eq!(from_bf16(to_bf16(1.0)), 1.0);
    assert_eq!(from_bf16(to_bf16(-2.5)), -2.5);
    // 1 + 2^-8 is halfway between 1 and 1 + 2^-7: ties go to the even mantissa (1.0)
    assert_eq!(from_bf16(to_bf16(1.0 + 1.0 / 256.0)), 1.0);
    assert_eq!(from_bf16(to_bf16(1.0 + 3.0 / 256.0)), 1.0 + 4.0 / 256.0);
    assert!(from_bf16(to_bf16(f32::NAN)).is_nan());
    assert_eq!(from_bf16(to_bf16(f32::INFINITY)), f32::INFINITY);
    for &v in &[0.1f32, 3.7, -1234.5, 1e-20, 6.0e30] {
        let e = (from_bf16(to_bf16(v)) - v).abs() / v.abs();
        assert!(e <= 1.0 / 256.0, "{v}: relative error {e}");
    }
}

/// Checks a BF16 layer against the BF16-rounded naive product (tight: only summation order
/// differs) and against the exact F32 product (loose: BF16's 8-bit mantissa).
#[cfg(target_arch = "x86_64")]
fn check_bf16(m: usize, n: usize, k: usize) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64((m * 7919 + n * 31 + k) as u64);
    let mut r = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect() };
    let (x, w, bias, res) = (r(m * k), r(n * k), r(n), r(m * n));
    let lin = PackedLinear::with_precision(&w, &bias, n, k, Precision::Bf16);
    assert_eq!(lin.precision(), Precision::Bf16);
    let want = naive_bf16(&x, &w, &bias, m, n, k);
    let exact = naive(&x, &w, &bias, m, n, k);
    let tol = 1e-4 * (k as f32).sqrt();
    // BF16 rounds each operand by up to 2^-9 relative; products of values in [-1, 1] summed
    // over k inputs drift by about sqrt(k) · 2^-8 at most (random signs).
    let loose = 0.01 * (k as f32).sqrt();
    let mut got = vec![f32::NAN; m * n];
    lin.forward(&x, m, Epilogue::None, &mut got);
    for ((g, e), x) in got.iter().zip(&want).zip(&exact) {
        assert!((g - e).abs() < tol, "bf16 {m}x{n}x{k}: {g} vs {e}");
        assert!((g - x).abs() < loose, "bf16 vs f32 {m}x{n}x{k}: {g} vs {x}");
    }
    lin.forward(&x, m, Epilogue::Residual(&res), &mut got);
    for ((g, e), r) in got.iter().zip(&want).zip(&res) {
        assert!((g - e - r).abs() < tol, "bf16 residual {m}x{n}x{k}");
    }
    lin.forward(&x, m, Epilogue::GeluTanh, &mut got);
    for (g, e) in got.iter().zip(&want) {
        let x = *e as f64;
        let gelu = 0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh());
        assert!(
            (*g as f64 - gelu).abs() < tol as f64,
            "bf16 gelu {g} vs {gelu}"
        );
    }
}

#[cfg(target_arch = "x86_64")]
#[test]
fn bf16_matches_the_rounded_product_on_awkward_shapes() {
    if !bf16_supported() {
        // the request must fall back to F32 on such a CPU, and still compute the product
        let lin = PackedLinear::with_precision(&[1.0, 2.0], &[0.5], 1, 2, Precision::Bf16);
        assert_eq!(lin.precision(), Precision::F32);
        eprintln!("this CPU has no AVX512_BF16: only the fallback was checked");
        return;
    }
    // odd k (the pad input), k across KC2 blocks (512) with an odd tail, row tails 1..12,
    // column tails, and products big enough to split across threads
    for &(m, n, k) in &[
        (1, 1, 1),
        (1, 32, 5),
        (2, 33, 2),
        (13, 96, 31),
        (12, 17, 300),
        (25, 40, 513),
        (7, 100, 1027),
        (130, 384, 384),
        (37, 1536, 384),
    ] {
        check_bf16(m, n, k);
    }
}

#[test]
fn forced_portable_never_runs_bf16() {
    // `Backend::Portable` asked for explicitly keeps F32 whatever the CPU
    let p = PackedLinear::with_backend(&[1.0, 2.0], &[0.5], 1, 2, Backend::Portable);
    assert_eq!(
        (p.backend(), p.precision()),
        (Backend::Portable, Precision::F32)
    );
    // a BF16 backend request on a CPU (or process) without it falls back to F32
    let b = PackedLinear::with_backend(&[1.0, 2.0], &[0.5], 1, 2, Backend::Avx512Bf16);
    if bf16_supported() {
        assert_eq!(b.precision(), Precision::Bf16);
    } else {
        assert_eq!(b.precision(), Precision::F32);
    }
    let mut out = [0f32];
    b.forward(&[1.0, 1.0], 1, Epilogue::None, &mut out);
    assert_eq!(out, [3.5]);
}
