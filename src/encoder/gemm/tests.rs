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

/// What a reduced-precision layer must reproduce on `x`: `want` (the product rounded or
/// quantized exactly as the kernel defines it) within `tol`, with every epilogue, and the exact
/// F32 product `exact` within `loose` on rows from `loose_from` on.
#[cfg(target_arch = "x86_64")]
struct Expect<'a> {
    label: &'a str,
    want: &'a [f32],
    exact: &'a [f32],
    tol: f32,
    loose: f32,
    loose_from: usize,
}

#[cfg(target_arch = "x86_64")]
fn check_layer(lin: &PackedLinear, x: &[f32], m: usize, res: &[f32], e: &Expect<'_>) -> Vec<f32> {
    let (n, label, tol) = (lin.n(), e.label, e.tol);
    let mut got = vec![f32::NAN; m * n];
    lin.forward(x, m, Epilogue::None, &mut got);
    let plain = got.clone();
    for (i, ((g, w), x)) in got.iter().zip(e.want).zip(e.exact).enumerate() {
        assert!((g - w).abs() < tol, "{label}: {g} vs {w}");
        if i >= e.loose_from * n {
            assert!((g - x).abs() < e.loose, "{label} vs f32: {g} vs {x}");
        }
    }
    lin.forward(x, m, Epilogue::Residual(res), &mut got);
    for ((g, w), r) in got.iter().zip(e.want).zip(res) {
        assert!((g - w - r).abs() < tol, "{label} residual");
    }
    lin.forward(x, m, Epilogue::GeluErf, &mut got);
    for (g, w) in got.iter().zip(e.want) {
        let x = *w as f64;
        let gelu = 0.5 * x * (1.0 + libm::erf(x / std::f64::consts::SQRT_2));
        assert!(
            (*g as f64 - gelu).abs() < tol as f64,
            "{label} gelu {g} vs {gelu}"
        );
    }
    lin.forward(x, m, Epilogue::GeluTanh, &mut got);
    for (g, w) in got.iter().zip(e.want) {
        let x = *w as f64;
        let gelu = 0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh());
        assert!(
            (*g as f64 - gelu).abs() < tol as f64,
            "{label} tanh gelu {g} vs {gelu}"
        );
    }
    plain
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
    // BF16 rounds each operand by up to 2^-9 relative; products of values in [-1, 1] summed
    // over k inputs drift by about sqrt(k) · 2^-8 at most (random signs).
    let e = Expect {
        label: &format!("bf16 {m}x{n}x{k}"),
        want: &want,
        exact: &exact,
        tol: 1e-4 * (k as f32).sqrt(),
        loose: 0.01 * (k as f32).sqrt(),
        loose_from: 0,
    };
    check_layer(&lin, &x, m, &res, &e);
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

/// `x · W + bias` computed the way the INT8 kernel defines it, in f64: each output column of `W`
/// quantized symmetrically to [-127, 127] with its own scale, each row of `x` asymmetrically to
/// levels [0, 255] with its own scale and zero point, the integer products summed exactly, then
/// scaled back. What the kernel must reproduce up to F32 rounding.
#[cfg(target_arch = "x86_64")]
fn naive_int8(x: &[f32], w: &[f32], bias: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let rows: Vec<_> = (0..m)
        .map(|i| {
            let row = &x[i * k..(i + 1) * k];
            let (lo, hi) = row
                .iter()
                .fold((0f32, 0f32), |(a, b), &v| (a.min(v), b.max(v)));
            let q = int8::RowQuant::for_range(lo, hi);
            let levels: Vec<i32> = row.iter().map(|&v| q.level(v) as i32 - q.zero).collect();
            (q.scale, levels)
        })
        .collect();
    let cols: Vec<_> = (0..n)
        .map(|j| {
            let col = &w[j * k..(j + 1) * k];
            let s = int8::scale_for(col.iter().fold(0f32, |a, b| a.max(b.abs())));
            let q: Vec<i32> = col
                .iter()
                .map(|&v| int8::quantize(v, 1.0 / s) as i32)
                .collect();
            (s, q)
        })
        .collect();
    let mut out = vec![0f32; m * n];
    for (i, (sa, a)) in rows.iter().enumerate() {
        for (j, (sw, b)) in cols.iter().enumerate() {
            let dot: i64 = a.iter().zip(b).map(|(p, q)| (p * q) as i64).sum();
            out[i * n + j] = (bias[j] as f64 + *sa as f64 * *sw as f64 * dot as f64) as f32;
        }
    }
    out
}

/// Checks an INT8 layer against the quantized naive product (tight) and against the exact F32
/// product (loose: 8-bit integers, about 2 significant digits per operand).
#[cfg(target_arch = "x86_64")]
fn check_int8(m: usize, n: usize, k: usize) {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64((m * 7907 + n * 37 + k) as u64);
    let mut r = |len: usize| -> Vec<f32> { (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect() };
    let (mut x, w, bias, res) = (r(m * k), r(n * k), r(n), r(m * n));
    // an all-zero row, a row with one outlier (its other values lose precision, not sign) and
    // a skewed row (all values ≥ -0.2, like GELU outputs: the asymmetric levels' case)
    x[..k].iter_mut().for_each(|v| *v = 0.0);
    if m > 1 {
        x[k] = 40.0;
    }
    if m > 2 {
        x[2 * k..3 * k]
            .iter_mut()
            .for_each(|v| *v = v.abs() * 3.0 - 0.2);
    }
    let lin = PackedLinear::with_precision(&w, &bias, n, k, Precision::Int8);
    assert_eq!(lin.precision(), Precision::Int8);
    let want = naive_int8(&x, &w, &bias, m, n, k);
    let exact = naive(&x, &w, &bias, m, n, k);
    // ordinary rows (from the fourth on): each operand off by up to half a step of 1/127
    let e = Expect {
        label: &format!("int8 {m}x{n}x{k}"),
        want: &want,
        exact: &exact,
        tol: 1e-4 * (k as f32).sqrt(),
        loose: 0.02 * (k as f32).sqrt(),
        loose_from: 3,
    };
    let got = check_layer(&lin, &x, m, &res, &e);
    // the zero row is exactly the bias
    assert_eq!(&got[..n], &bias[..n]);
}

#[cfg(target_arch = "x86_64")]
#[test]
fn int8_matches_the_quantized_product_on_awkward_shapes() {
    if !int8_supported() {
        let lin = PackedLinear::with_precision(&[1.0, 2.0], &[0.5], 1, 2, Precision::Int8);
        assert_eq!(lin.precision(), Precision::F32);
        eprintln!("this CPU has no AVX512_VNNI: only the fallback was checked");
        return;
    }
    // k not a multiple of 4 (pad bytes), k across KC4 blocks (1024) with a ragged tail, row
    // tails 1..12, column tails, and products big enough to split across threads
    for &(m, n, k) in &[
        (1, 1, 1),
        (1, 32, 5),
        (2, 33, 2),
        (13, 96, 31),
        (12, 17, 300),
        (25, 40, 1025),
        (7, 100, 2051),
        (130, 384, 384),
        (37, 384, 1536),
    ] {
        check_int8(m, n, k);
    }
}

#[test]
fn forced_portable_never_runs_int8() {
    let b = PackedLinear::with_backend(&[1.0, 2.0], &[0.5], 1, 2, Backend::Avx512Int8);
    let want = if int8_supported() {
        Precision::Int8
    } else {
        Precision::F32
    };
    assert_eq!(b.precision(), want);
    let mut out = [0f32];
    b.forward(&[1.0, 1.0], 1, Epilogue::None, &mut out);
    // INT8 stores the weight 1 as 64 steps of 2/127 (1.008): within a step of 3.5
    assert!((out[0] - 3.5).abs() < 0.02, "{out:?}");
}
