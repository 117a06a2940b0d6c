//! The INT8 AVX-512 micro-kernel (`vpdpbusd`, INT32 accumulation), dynamic quantization.
//!
//! Same tiling as the F32 and BF16 kernels (a `rows × 32` output tile, bias as the start,
//! residual / activation fused at the end); what differs is the number format:
//! * **weights** are quantized once at load, symmetric **per output channel**: column `j` keeps
//!   a scale `s_w[j] = max|W[j, ·]| / 127` and the integers `round(W[j, p] / s_w[j])` in
//!   `[-127, 127]`. They are packed as *quads* of inputs: row `q` of a panel holds, for each of
//!   its 32 outputs, one 32-bit word of the four signed bytes for inputs `4q..4q+4` (zero bytes
//!   pad the last quad), block by block of [`KC4`] inputs;
//! * **inputs** are quantized per call, **asymmetric per row** (per token), to the unsigned
//!   bytes `vpdpbusd` wants: row `i`'s range `[lo, hi]` (widened to include 0) is cut into 255
//!   steps of `s_a[i] = (hi − lo) / 255`, and `x ≈ s_a[i] · (u − z[i])` with `u` in `[0, 255]`
//!   and the zero point `z[i] = round(−lo / s_a[i])`. Asymmetric because half the inputs are
//!   skewed: the FFN's second layer reads GELU outputs (≥ −0.17), which a symmetric scale would
//!   spend half its 256 levels on; on all-MiniLM-L6-v2's parity strings asymmetric rows raised
//!   the gate's mean cosine to F32 from 0.99703 (symmetric, `[-127, 127]` offset by 128) to the
//!   value README reports. The zero point adds `z[i] · Σ_p W_q[p, j]` to every sum; that column
//!   sum is computed at load ([`Int8Weights::colsum`], per block) and subtracted in INT32, so the
//!   integer product is exact.
//!
//! A block's contribution is `s_a[i] · s_w[j] · (acc − z[i] · colsum[j])` converted to F32 and
//! added to the output (the bias for the first block). One `vpdpbusd` does 64 multiply-adds per instruction,
//! twice `vdpbf16ps` and four times an F32 FMA; measured on this project's 2-core AVX-512 CPU
//! (a register-only loop of the two instructions, both cores busy elsewhere): 153 vs 87 GMAC/s.
//! Everything outside the products (LayerNorm, softmax, attention, GELU, the residual stream)
//! stays F32, and the parity gate ([`crate::encoder::precision::gate`]) decides whether a model
//! may be served this way.

use super::avx512::{finish, masks, start};
use super::{walk_tiles, Epilogue, PackedLinear, SendPtr, MR, NR};
use rayon::prelude::*;
use std::arch::x86_64::*;

/// Inputs per block (256 quads): a `KC4 × NR` INT8 panel slice is 32 KiB, like the F32 one.
pub const KC4: usize = 1024;

/// Weights of one layer quantized for the kernel.
#[derive(Default)]
pub struct Int8Weights {
    /// Quad panels, block-major (see the module docs).
    pub(super) quads: Vec<u32>,
    /// Per output column (zero-padded to whole panels): the dequantization scale.
    pub(super) scale: Vec<f32>,
    /// Per block and output column: the sum of the column's quantized weights in that block.
    pub(super) colsum: Vec<i32>,
}

/// The first quad of the block that quad `q` lies in, and that block's quad count.
fn block_of(q: usize, kq: usize) -> (usize, usize) {
    let qb = (q / (KC4 / 4)) * (KC4 / 4);
    (qb, (KC4 / 4).min(kq - qb))
}

/// `v / scale` rounded to the nearest integer (ties to even) and clamped to `[-127, 127]`.
#[inline]
pub fn quantize(v: f32, inv_scale: f32) -> i8 {
    (v * inv_scale).round_ties_even().clamp(-127.0, 127.0) as i8
}

/// The scale that maps `max_abs` to 127 (1 for an all-zero vector, whose integers are zero).
#[inline]
pub fn scale_for(max_abs: f32) -> f32 {
    if max_abs > 0.0 && max_abs.is_finite() {
        max_abs / 127.0
    } else {
        1.0
    }
}

/// Quantizes and packs a PyTorch-layout weight `[n, k]` (see the module docs).
pub fn pack_weights(weight: &[f32], n: usize, k: usize) -> Int8Weights {
    let panels = n.div_ceil(NR);
    let kq = k.div_ceil(4);
    let blocks = k.div_ceil(KC4).max(1);
    let mut w = Int8Weights {
        quads: vec![0u32; panels * kq * NR],
        scale: vec![0f32; panels * NR],
        colsum: vec![0i32; blocks * panels * NR],
    };
    for j in 0..n {
        let (panel, col) = (j / NR, j % NR);
        let row = &weight[j * k..(j + 1) * k];
        let s = scale_for(row.iter().fold(0f32, |m, v| m.max(v.abs())));
        w.scale[j] = s;
        for q in 0..kq {
            let mut word = 0u32;
            let mut sum = 0i32;
            for i in 0..4 {
                if let Some(&v) = row.get(4 * q + i) {
                    let b = quantize(v, 1.0 / s);
                    sum += b as i32;
                    word |= (b as u8 as u32) << (8 * i);
                }
            }
            let (qb, qc) = block_of(q, kq);
            w.quads[qb * panels * NR + panel * qc * NR + (q - qb) * NR + col] = word;
            w.colsum[(qb / (KC4 / 4)) * panels * NR + j] += sum;
        }
    }
    w
}

/// A row's quantization: `x ≈ scale · (u − zero)`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RowQuant {
    /// Step between two levels.
    pub scale: f32,
    /// The level that stands for 0.
    pub zero: i32,
}

impl RowQuant {
    /// The quantization of a row whose values lie in `[min, max]`.
    pub fn for_range(min: f32, max: f32) -> Self {
        let (lo, hi) = (min.min(0.0), max.max(0.0));
        let range = hi - lo;
        if !(range > 0.0 && range.is_finite()) {
            return RowQuant {
                scale: 1.0,
                zero: 0,
            };
        }
        let scale = range / 255.0;
        RowQuant {
            scale,
            zero: (-lo / scale).round_ties_even().clamp(0.0, 255.0) as i32,
        }
    }

    /// The level of `v`: `round(v / scale) + zero`, clamped to `[0, 255]` (dividing by
    /// multiplying with `1 / scale`, as the vector code does).
    pub fn level(&self, v: f32) -> u8 {
        ((v * (1.0 / self.scale)).round_ties_even() + self.zero as f32).clamp(0.0, 255.0) as u8
    }
}

/// Quantizes `x` (`[m, k]` F32) per row and packs it: tile by tile of [`MR`] rows, each tile
/// quad by quad (`MR` words per quad; rows past `m` and the pad inputs hold zeros, whose
/// weights are zero). `rows` gets each row's [`RowQuant`] (tiles × `MR`).
pub fn pack_a(x: &[f32], m: usize, k: usize, packed: &mut Vec<u32>, rows: &mut Vec<RowQuant>) {
    let tiles = m.div_ceil(MR);
    let kq = k.div_ceil(4);
    packed.clear();
    packed.resize(tiles * MR * kq, 0);
    rows.clear();
    rows.resize(tiles * MR, RowQuant::default());
    let pack_tile = |t: usize, block: &mut [u32], rq: &mut [RowQuant]| {
        let mut bytes = vec![0u8; kq * 4];
        for (r, q) in rq.iter_mut().enumerate().take(MR.min(m - t * MR)) {
            let src = &x[(t * MR + r) * k..(t * MR + r + 1) * k];
            // SAFETY: `Backend::Avx512Int8` is only chosen where AVX-512F/BW and VNNI exist.
            *q = unsafe { quantize_row(src, &mut bytes) };
            for (qi, quad) in bytes.chunks_exact(4).enumerate() {
                block[qi * MR + r] = u32::from_le_bytes([quad[0], quad[1], quad[2], quad[3]]);
            }
        }
    };
    if m * k >= 1 << 16 {
        packed
            .par_chunks_mut(MR * kq)
            .zip(rows.par_chunks_mut(MR))
            .enumerate()
            .for_each(|(t, (block, rq))| pack_tile(t, block, rq));
    } else {
        for (t, (block, rq)) in packed
            .chunks_mut(MR * kq)
            .zip(rows.chunks_mut(MR))
            .enumerate()
        {
            pack_tile(t, block, rq);
        }
    }
}

/// The mask of the first `n` (≤ 16) lanes.
#[inline]
fn lanes(n: usize) -> __mmask16 {
    if n >= 16 {
        0xffff
    } else {
        ((1u32 << n) - 1) as u16
    }
}

/// Quantizes one row into `out` (levels; `out.len() ≥ src.len()`, the rest untouched) and
/// returns its [`RowQuant`]. Sixteen values per step: `vcvtps2dq` rounds to nearest even (the
/// default MXCSR mode), `vpmovusdb` saturates to bytes. Same levels as [`RowQuant::level`].
///
/// # Safety
/// The CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn quantize_row(src: &[f32], out: &mut [u8]) -> RowQuant {
    let k = src.len();
    let mut vmax = _mm512_setzero_ps();
    let mut vmin = _mm512_setzero_ps();
    for p in (0..k).step_by(16) {
        let v = _mm512_maskz_loadu_ps(lanes(k - p), src.as_ptr().add(p));
        vmax = _mm512_max_ps(vmax, v);
        vmin = _mm512_min_ps(vmin, v);
    }
    let q = RowQuant::for_range(_mm512_reduce_min_ps(vmin), _mm512_reduce_max_ps(vmax));
    let inv = _mm512_set1_ps(1.0 / q.scale);
    let zero = _mm512_set1_epi32(q.zero);
    let (lo, hi) = (_mm512_setzero_si512(), _mm512_set1_epi32(255));
    for p in (0..k).step_by(16) {
        let mask = lanes(k - p);
        let v = _mm512_maskz_loadu_ps(mask, src.as_ptr().add(p));
        let i = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(v, inv)), zero);
        let i = _mm512_min_epi32(_mm512_max_epi32(i, lo), hi);
        _mm512_mask_cvtusepi32_storeu_epi8(out.as_mut_ptr().add(p) as *mut i8, mask, i);
    }
    q
}

/// Computes output column panels `p0..p1` for all `m` rows with the INT8 weights of `lin`.
///
/// # Safety
/// The CPU must support AVX-512F and AVX512_VNNI; `lin` was packed for INT8; `out` points to
/// `m × lin.n` floats; `packed_a`/`rows` are `x` packed by [`pack_a`]; no other thread
/// writes panels `p0..p1`.
#[target_feature(enable = "avx512f,avx512vnni,avx2,fma")]
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn panels(
    lin: &PackedLinear,
    packed_a: &[u32],
    rows: &[RowQuant],
    m: usize,
    epi: Epilogue<'_>,
    out: SendPtr,
    p0: usize,
    p1: usize,
) {
    let (n, kq) = (lin.n, lin.k.div_ceil(4));
    let panels_n = n.div_ceil(NR);
    let w = &lin.w8;
    walk_tiles(kq, KC4 / 4, (m, n), (p0, p1), epi, |at| {
        let block = at.kb / (KC4 / 4);
        let t = Tile {
            a: packed_a.as_ptr().add(at.a),
            rows: rows.as_ptr().add(at.ti * MR),
            b: w.quads.as_ptr().add(at.b),
            w_scale: w.scale.as_ptr().add(at.col0),
            colsum: w.colsum.as_ptr().add(block * panels_n * NR + at.col0),
            kc: at.kc,
            c: out.0.add(at.c),
            ldc: n,
            cols: at.cols,
            bias: at.bias(&lin.bias),
        };
        dispatch(at.rows, &t, at.epi);
    });
}

#[derive(Clone, Copy)]
struct Tile {
    /// Packed input quads: `MR` words per quad.
    a: *const u32,
    /// The rows' quantizations.
    rows: *const RowQuant,
    /// Panel slice: `NR` words per quad.
    b: *const u32,
    /// The panel's 32 column scales.
    w_scale: *const f32,
    /// The panel's 32 column sums for this block.
    colsum: *const i32,
    /// Quads in this block.
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    /// Start from the bias (first block) or, when null, from what `c` holds.
    bias: *const f32,
}

#[target_feature(enable = "avx512f,avx512vnni,avx2,fma")]
unsafe fn dispatch(rows: usize, t: &Tile, epi: Epilogue<'_>) {
    super::dispatch_rows!(rows, tile; t, epi)
}

/// Words ahead of the current panel row that the kernel prefetches (4 KiB, as F32).
const PF_AHEAD: usize = 1024;

/// One `R × 32` output tile over one block of input quads.
#[target_feature(enable = "avx512f,avx512vnni,avx2,fma")]
unsafe fn tile<const R: usize>(t: &Tile, epi: Epilogue<'_>) {
    let mut acc0 = [_mm512_setzero_si512(); R];
    let mut acc1 = [_mm512_setzero_si512(); R];
    let mut b = t.b;
    let mut a = t.a;
    for _ in 0..t.kc {
        _mm_prefetch::<_MM_HINT_T0>(b.add(PF_AHEAD) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(b.add(PF_AHEAD + 16) as *const i8);
        let w0 = _mm512_loadu_si512(b as *const _);
        let w1 = _mm512_loadu_si512(b.add(16) as *const _);
        for r in 0..R {
            let v = _mm512_set1_epi32(*a.add(r) as i32);
            acc0[r] = _mm512_dpbusd_epi32(acc0[r], v, w0);
            acc1[r] = _mm512_dpbusd_epi32(acc1[r], v, w1);
        }
        b = b.add(NR);
        a = a.add(MR);
    }
    let mk = masks(t.cols);
    let (mut out0, mut out1) = start::<R>(t.c, t.ldc, t.bias, mk);
    let (s0, s1) = (
        _mm512_loadu_ps(t.w_scale),
        _mm512_loadu_ps(t.w_scale.add(16)),
    );
    let c0 = _mm512_loadu_si512(t.colsum as *const _);
    let c1 = _mm512_loadu_si512(t.colsum.add(16) as *const _);
    for r in 0..R {
        let q = *t.rows.add(r);
        let (sa, z) = (_mm512_set1_ps(q.scale), _mm512_set1_epi32(q.zero));
        let v0 = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc0[r], _mm512_mullo_epi32(z, c0)));
        let v1 = _mm512_cvtepi32_ps(_mm512_sub_epi32(acc1[r], _mm512_mullo_epi32(z, c1)));
        out0[r] = _mm512_fmadd_ps(v0, _mm512_mul_ps(s0, sa), out0[r]);
        out1[r] = _mm512_fmadd_ps(v1, _mm512_mul_ps(s1, sa), out1[r]);
    }
    finish::<R>(t.c, t.ldc, mk, out0, out1, epi);
}
