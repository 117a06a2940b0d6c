//! The non-matmul parts of the BERT forward on flat row-major buffers: LayerNorm, GELU,
//! attention over packed (unpadded) sequences.
//!
//! Each loop is plain Rust written so the compiler vectorises it (branch-free maths, a
//! polynomial `exp`, lane-wise accumulators for dot products), compiled twice: once for the
//! baseline target and once inside an AVX-512 `#[target_feature]` wrapper chosen at runtime.
//! Transcendentals are approximations accurate to a few 1e-7 (see [`exp`], [`erf`]), far below
//! what the parity tests allow.

use rayon::prelude::*;

/// Whether the AVX-512 variants can run on this CPU.
fn simd() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        static S: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *S.get_or_init(|| std::arch::is_x86_feature_detected!("avx512f"))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Defines `pub fn $name(args)` that runs `$body` compiled for AVX-512 when the CPU has it and
/// for the baseline target otherwise.
macro_rules! multiversion {
    ($(#[$doc:meta])* $name:ident, $fast:ident, ($($arg:ident : $ty:ty),*) $body:block) => {
        $(#[$doc])*
        pub fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if simd() {
                // SAFETY: AVX-512F support was detected at runtime.
                unsafe { return $fast($($arg),*) }
            }
            $body
        }
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f,avx2,fma")]
        unsafe fn $fast($($arg: $ty),*) $body
    };
}

/// `e^x` for `x` in about [-87, 88] (clamped outside), relative error < 2e-7, branch-free so
/// loops over it vectorise: `x = n·ln2 + r` with `|r| ≤ ln2/2`, a degree-7 Taylor polynomial
/// for `e^r`, and `2^n` built from its exponent bits.
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    // ln 2 split in two so that n·LN2_HI is exact for |n| < 2^9.
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Adding then subtracting 1.5·2^23 rounds to the nearest integer.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * std::f32::consts::LOG2_E + ROUND) - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r / 5040.0))))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// The error function, Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7).
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152) * t + 1.421_413_7) * t - 0.284_496_74) * t
        + 0.254_829_6)
        * t;
    (1.0 - poly * exp(-a * a)).copysign(x)
}

/// Exact GELU, `x·Φ(x)`, in place (inlined into the caller's target features).
#[inline(always)]
pub fn gelu_erf_inline(v: &mut [f32]) {
    for x in v.iter_mut() {
        *x = 0.5 * *x * (1.0 + erf(*x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// Tanh-approximated GELU in place (inlined into the caller's target features).
#[inline(always)]
pub fn gelu_tanh_inline(v: &mut [f32]) {
    const C: f32 = 0.797_884_6; // sqrt(2/pi)
    for x in v.iter_mut() {
        let u = C * (*x + 0.044_715 * *x * *x * *x);
        // tanh(u) = 1 - 2 / (e^{2u} + 1)
        let th = 1.0 - 2.0 / (exp(2.0 * u) + 1.0);
        *x = 0.5 * *x * (1.0 + th);
    }
}

multiversion!(
    /// Exact GELU in place.
    gelu_erf, gelu_erf_avx512, (v: &mut [f32]) { gelu_erf_inline(v) }
);
multiversion!(
    /// Tanh-approximated GELU in place.
    gelu_tanh, gelu_tanh_avx512, (v: &mut [f32]) { gelu_tanh_inline(v) }
);

/// Sum of a slice with 16 lanes.
#[inline(always)]
fn sum(a: &[f32]) -> f32 {
    let mut acc = [0f32; 16];
    let mut c = a.chunks_exact(16);
    for x in &mut c {
        for l in 0..16 {
            acc[l] += x[l];
        }
    }
    c.remainder().iter().sum::<f32>() + acc.iter().sum::<f32>()
}

#[inline(always)]
fn layer_norm_rows_inline(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let h = w.len();
    for row in x.chunks_exact_mut(h) {
        let mean = sum(row) / h as f32;
        let mut acc = [0f32; 16];
        let mut c = row.chunks_exact(16);
        for x in &mut c {
            for l in 0..16 {
                let d = x[l] - mean;
                acc[l] += d * d;
            }
        }
        let var = (c
            .remainder()
            .iter()
            .map(|v| (v - mean) * (v - mean))
            .sum::<f32>()
            + acc.iter().sum::<f32>())
            / h as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), bb) in row.iter_mut().zip(w).zip(b) {
            *v = (*v - mean) * inv * g + bb;
        }
    }
}

multiversion!(
    /// LayerNorm of whole rows of width `w.len()`, in place.
    layer_norm_rows, layer_norm_rows_avx512, (x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
        layer_norm_rows_inline(x, w, b, eps)
    }
);

/// LayerNorm over the rows of a `[m, w.len()]` buffer, in place, rows split across threads when
/// there are many.
pub fn layer_norm(x: &mut [f32], w: &[f32], b: &[f32], eps: f32) {
    let h = w.len();
    let rows = x.len() / h;
    if rows >= 64 {
        let per = rows.div_ceil(rayon::current_num_threads() * 4);
        x.par_chunks_mut(per * h)
            .for_each(|c| layer_norm_rows(c, w, b, eps));
    } else {
        layer_norm_rows(x, w, b, eps);
    }
}

/// Geometry of one attention call over packed sequences.
#[derive(Debug, Clone, Copy)]
pub struct AttnShape {
    /// Model width (`heads × head_dim`).
    pub hidden: usize,
    /// Attention heads.
    pub heads: usize,
}

/// Scratch buffers of one attention worker.
#[derive(Default)]
struct AttnScratch {
    kt: Vec<f32>,
    p: Vec<f32>,
}

impl AttnScratch {
    /// Lay out one head of one sequence: its keys (the `d` columns from `key_col` of rows
    /// `start..start + len`, row stride `ld`) transposed into `kt` as `[d, lp]`, and `p` as
    /// `lp` zeroed scores, where `lp` = `len` rounded up to 16 (zero-padded) so the scores of
    /// one query against all keys are whole-vector loops even for short texts. Returns `lp`.
    #[inline(always)]
    fn prepare(
        &mut self,
        qkv: &[f32],
        start: usize,
        len: usize,
        ld: usize,
        key_col: usize,
        d: usize,
    ) -> usize {
        let lp = len.div_ceil(16) * 16;
        self.kt.clear();
        self.kt.resize(d * lp, 0.0);
        for j in 0..len {
            let k = &qkv[(start + j) * ld + key_col..][..d];
            for (c, &v) in k.iter().enumerate() {
                self.kt[c * lp + j] = v;
            }
        }
        self.p.clear();
        self.p.resize(lp, 0.0);
        lp
    }
}

#[inline(always)]
fn attend_inline(
    qkv: &[f32],
    start: usize,
    len: usize,
    head: usize,
    s: AttnShape,
    scratch: &mut AttnScratch,
    out: *mut f32,
) {
    let h = s.hidden;
    let d = h / s.heads;
    let ld = 3 * h;
    let scale = 1.0 / (d as f32).sqrt();
    let col = head * d;
    let lp = scratch.prepare(qkv, start, len, ld, h + col, d);
    let (kt, p) = (&scratch.kt, &mut scratch.p);
    for i in 0..len {
        let q = &qkv[(start + i) * ld + col..][..d];
        p.iter_mut().for_each(|v| *v = 0.0);
        for (c, &qc) in q.iter().enumerate() {
            let qc = qc * scale;
            for (pc, kc) in p
                .chunks_exact_mut(16)
                .zip(kt[c * lp..(c + 1) * lp].chunks_exact(16))
            {
                for l in 0..16 {
                    pc[l] += qc * kc[l];
                }
            }
        }
        let max = p[..len].iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        // Whole vectors (the padding lanes are computed and ignored).
        for pc in p.chunks_exact_mut(16) {
            for v in pc.iter_mut() {
                *v = exp(*v - max);
            }
        }
        let p = &p[..len];
        let inv = 1.0 / sum(p);
        // SAFETY: the caller owns this row's `d` columns (see `attention`).
        let o = unsafe { std::slice::from_raw_parts_mut(out.add(i * h), d) };
        o.iter_mut().for_each(|v| *v = 0.0);
        for (j, &pj) in p.iter().enumerate() {
            let w = pj * inv;
            let v = &qkv[(start + j) * ld + 2 * h + col..][..d];
            for (ov, vv) in o.iter_mut().zip(v) {
                *ov += w * vv;
            }
        }
    }
}

/// Runs one attention job; `out` points at the sequence's first row and this head's column
/// of the `[tokens, hidden]` context (row stride `hidden`). `fast` selects the AVX-512 kernel
/// (ignored unless the CPU has it).
///
/// # Safety
/// `out` must be valid for writes of `d` floats at each of the `len` rows, and nobody else may
/// access those elements during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn attend(
    qkv: &[f32],
    start: usize,
    len: usize,
    head: usize,
    s: AttnShape,
    scratch: &mut AttnScratch,
    out: *mut f32,
    fast: bool,
) {
    #[cfg(target_arch = "x86_64")]
    if fast && simd() {
        // SAFETY: AVX-512F support was detected at runtime.
        unsafe { return attend_avx512(qkv, start, len, head, s, scratch, out) }
    }
    let _ = fast;
    attend_inline(qkv, start, len, head, s, scratch, out)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn attend_avx512(
    qkv: &[f32],
    start: usize,
    len: usize,
    head: usize,
    s: AttnShape,
    scratch: &mut AttnScratch,
    out: *mut f32,
) {
    use std::arch::x86_64::*;
    let h = s.hidden;
    let d = h / s.heads;
    if !d.is_multiple_of(16) {
        return attend_inline(qkv, start, len, head, s, scratch, out);
    }
    let ld = 3 * h;
    let scale = 1.0 / (d as f32).sqrt();
    let col = head * d;
    let lp = scratch.prepare(qkv, start, len, ld, h + col, d);
    let (kt, pp) = (scratch.kt.as_ptr(), scratch.p.as_mut_ptr());
    let blocks = lp / 16;
    // Lanes of the last block that hold real keys.
    let tail: __mmask16 = if len.is_multiple_of(16) {
        0xffff
    } else {
        ((1u32 << (len % 16)) - 1) as u16
    };
    let base = qkv.as_ptr();
    for i in 0..len {
        let q = base.add((start + i) * ld + col);
        let mut max = _mm512_set1_ps(f32::NEG_INFINITY);
        for b in 0..blocks {
            let mut acc = _mm512_setzero_ps();
            for c in 0..d {
                let kv = _mm512_loadu_ps(kt.add(c * lp + b * 16));
                acc = _mm512_fmadd_ps(_mm512_set1_ps(*q.add(c)), kv, acc);
            }
            acc = _mm512_mul_ps(acc, _mm512_set1_ps(scale));
            _mm512_storeu_ps(pp.add(b * 16), acc);
            let m = if b + 1 == blocks { tail } else { 0xffff };
            max = _mm512_mask_max_ps(max, m, max, acc);
        }
        let max = _mm512_set1_ps(_mm512_reduce_max_ps(max));
        let mut total = _mm512_setzero_ps();
        for b in 0..blocks {
            let m = if b + 1 == blocks { tail } else { 0xffff };
            let e = _mm512_maskz_mov_ps(
                m,
                exp512(_mm512_sub_ps(_mm512_loadu_ps(pp.add(b * 16)), max)),
            );
            _mm512_storeu_ps(pp.add(b * 16), e);
            total = _mm512_add_ps(total, e);
        }
        let inv = 1.0 / _mm512_reduce_add_ps(total);
        for cb in (0..d).step_by(16) {
            let mut acc = _mm512_setzero_ps();
            for j in 0..len {
                let v = _mm512_loadu_ps(base.add((start + j) * ld + 2 * h + col + cb));
                acc = _mm512_fmadd_ps(_mm512_set1_ps(*pp.add(j)), v, acc);
            }
            _mm512_storeu_ps(out.add(i * h + cb), _mm512_mul_ps(acc, _mm512_set1_ps(inv)));
        }
    }
}

/// Exact GELU ([`gelu_erf_inline`]'s maths) on 16 lanes, for the GEMM epilogue.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
pub(crate) fn gelu_erf512(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let z = _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::FRAC_1_SQRT_2));
    let a = _mm512_abs_ps(z);
    let t = _mm512_div_ps(
        _mm512_set1_ps(1.0),
        _mm512_fmadd_ps(_mm512_set1_ps(0.327_591_1), a, _mm512_set1_ps(1.0)),
    );
    let mut p = _mm512_set1_ps(1.061_405_4);
    for c in [-1.453_152, 1.421_413_7, -0.284_496_74, 0.254_829_6] {
        p = _mm512_fmadd_ps(p, t, _mm512_set1_ps(c));
    }
    p = _mm512_mul_ps(p, t);
    // SAFETY: exp512 needs the features this function is compiled with.
    let e = unsafe { exp512(_mm512_sub_ps(_mm512_setzero_ps(), _mm512_mul_ps(a, a))) };
    let erf_abs = _mm512_fnmadd_ps(p, e, _mm512_set1_ps(1.0));
    // copy the sign of z onto |erf|
    let sign = _mm512_and_si512(_mm512_castps_si512(z), _mm512_set1_epi32(i32::MIN));
    let erf = _mm512_castsi512_ps(_mm512_or_si512(_mm512_castps_si512(erf_abs), sign));
    _mm512_mul_ps(
        _mm512_mul_ps(_mm512_set1_ps(0.5), x),
        _mm512_add_ps(_mm512_set1_ps(1.0), erf),
    )
}

/// Tanh-approximated GELU ([`gelu_tanh_inline`]'s maths) on 16 lanes, for the GEMM epilogue.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
pub(crate) fn gelu_tanh512(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let x3 = _mm512_mul_ps(_mm512_mul_ps(x, x), x);
    let u = _mm512_mul_ps(
        _mm512_set1_ps(0.797_884_6),
        _mm512_fmadd_ps(_mm512_set1_ps(0.044_715), x3, x),
    );
    // SAFETY: exp512 needs the features this function is compiled with.
    let e = unsafe { exp512(_mm512_add_ps(u, u)) };
    let th = _mm512_sub_ps(
        _mm512_set1_ps(1.0),
        _mm512_div_ps(_mm512_set1_ps(2.0), _mm512_add_ps(e, _mm512_set1_ps(1.0))),
    );
    _mm512_mul_ps(
        _mm512_mul_ps(_mm512_set1_ps(0.5), x),
        _mm512_add_ps(_mm512_set1_ps(1.0), th),
    )
}

/// [`exp`] on 16 lanes (same reduction and polynomial; `2^n` applied with `vscalefps`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn exp512(x: std::arch::x86_64::__m512) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let x = _mm512_max_ps(
        _mm512_min_ps(x, _mm512_set1_ps(88.0)),
        _mm512_set1_ps(-87.0),
    );
    let n = _mm512_roundscale_ps::<{ _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC }>(
        _mm512_mul_ps(x, _mm512_set1_ps(std::f32::consts::LOG2_E)),
    );
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693_359_4), x);
    let r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.121_944_4e-4), r);
    let mut p = _mm512_set1_ps(1.0 / 5040.0);
    for c in [
        1.0 / 720.0,
        1.0 / 120.0,
        1.0 / 24.0,
        1.0 / 6.0,
        0.5,
        1.0,
        1.0,
    ] {
        p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
    }
    _mm512_scalef_ps(p, n)
}

/// The context buffer shared by attention workers, each writing its own rows × head columns.
#[derive(Clone, Copy)]
struct CtxPtr(*mut f32, usize);
// SAFETY: jobs write disjoint (sequence rows × head columns) regions; see `attention`.
unsafe impl Send for CtxPtr {}
unsafe impl Sync for CtxPtr {}

/// Multi-head self-attention over packed sequences: `qkv` is `[tokens, 3·hidden]` (Q, K, V side
/// by side, as the fused projection makes it), sequence `i` owns rows
/// `offsets[i]..offsets[i+1]` and attends only to itself (so there is no padding and no mask).
/// Writes the context `[tokens, hidden]` into `ctx`.
pub fn attention(qkv: &[f32], offsets: &[usize], s: AttnShape, ctx: &mut [f32]) {
    attention_with(qkv, offsets, s, ctx, true)
}

/// [`attention`], with the AVX-512 kernel allowed (`fast`, where the CPU has it) or not (the
/// portable loop on any CPU; tests compare the two).
fn attention_with(qkv: &[f32], offsets: &[usize], s: AttnShape, ctx: &mut [f32], fast: bool) {
    let h = s.hidden;
    let d = h / s.heads;
    let tokens = offsets.last().copied().unwrap_or(0);
    assert!(qkv.len() >= tokens * 3 * h && ctx.len() >= tokens * h);
    let seqs = offsets.len().saturating_sub(1);
    let jobs: Vec<(usize, usize)> = (0..seqs)
        .flat_map(|i| (0..s.heads).map(move |hd| (i, hd)))
        .collect();
    let work: usize = offsets
        .windows(2)
        .map(|w| (w[1] - w[0]).pow(2))
        .sum::<usize>()
        * h;
    let ptr = CtxPtr(ctx.as_mut_ptr(), ctx.len());
    let run = |&(i, hd): &(usize, usize), scratch: &mut AttnScratch| {
        let (start, len) = (offsets[i], offsets[i + 1] - offsets[i]);
        let base = start * h + hd * d;
        // Capture the whole Send wrapper, not just its raw-pointer field (edition-2021
        // closures capture disjoint fields, and a bare `*mut f32` is not Send).
        #[allow(clippy::redundant_locals)]
        let ptr = ptr;
        assert!(base + (len - 1) * h + d <= ptr.1);
        // SAFETY: rows start..start+len, columns hd·d..hd·d+d of `ctx` (in bounds, checked
        // above) belong to this job alone.
        unsafe { attend(qkv, start, len, hd, s, scratch, ptr.0.add(base), fast) };
    };
    if work < (1 << 15) || rayon::current_num_threads() == 1 {
        let mut scratch = AttnScratch::default();
        jobs.iter().for_each(|j| run(j, &mut scratch));
    } else {
        jobs.par_iter()
            .with_min_len(4)
            .for_each_init(AttnScratch::default, |scratch, j| run(j, scratch));
    }
}

#[cfg(test)]
#[path = "ops_tests.rs"]
mod tests;
