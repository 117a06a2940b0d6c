//! The BF16 AVX-512 micro-kernel (`vdpbf16ps`, F32 accumulation).
//!
//! Same tiling as the F32 kernel ([`super::avx512`]): a `rows × 32` output tile in 24
//! registers, bias as the accumulators' start, residual / activation fused at the end. What
//! differs is the unit of work: `vdpbf16ps` multiplies *pairs* of BF16 values and adds both
//! products to one F32 lane, so
//! * the weights are packed as pairs of inputs: row `q` of a panel holds, for each of its 32
//!   outputs, one 32-bit word `bf16(W[2q, j]) | bf16(W[2q+1, j]) << 16` (a zero weight pads an
//!   odd input count), block by block of [`KC2`] inputs;
//! * the input rows are converted to BF16 (round to nearest even) and packed per call the same
//!   way, one 32-bit pair per row and input pair, and broadcast to all lanes.
//!
//! One instruction thus does twice the multiply-adds of an F32 FMA, and the weight stream a
//! short query waits on is half as long. Only the two matrix operands are rounded: sums, bias,
//! residual and everything outside the product stay F32.

use super::avx512::{finish, masks, start};
use super::{walk_tiles, Epilogue, PackedLinear, SendPtr, MR, NR};
use rayon::prelude::*;
use std::arch::x86_64::*;

/// Inputs per block (256 pairs): a `KC2 × NR` BF16 panel slice is 32 KiB, like the F32 one.
pub const KC2: usize = 512;

/// `x` rounded to BF16 (nearest, ties to even), as the high half of its F32 bits.
#[inline(always)]
pub fn to_bf16(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) as u16) | 0x40;
    }
    ((b + 0x7fff + ((b >> 16) & 1)) >> 16) as u16
}

/// The F32 value of a BF16 number.
#[inline(always)]
pub fn from_bf16(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// Packs a PyTorch-layout weight `[n, k]` into BF16 pair panels (see the module docs).
pub fn pack_weights(weight: &[f32], n: usize, k: usize) -> Vec<u32> {
    let panels = n.div_ceil(NR);
    let kp = k.div_ceil(2);
    let mut w = vec![0u32; panels * kp * NR];
    for j in 0..n {
        let (panel, col) = (j / NR, j % NR);
        let row = &weight[j * k..(j + 1) * k];
        for q in 0..kp {
            let lo = to_bf16(row[2 * q]) as u32;
            let hi = if 2 * q + 1 < k {
                to_bf16(row[2 * q + 1]) as u32
            } else {
                0
            };
            let (qb, qc) = block_of(q, kp);
            w[qb * panels * NR + panel * qc * NR + (q - qb) * NR + col] = lo | (hi << 16);
        }
    }
    w
}

/// The first pair of the block that pair `q` lies in, and that block's pair count.
fn block_of(q: usize, kp: usize) -> (usize, usize) {
    let qb = (q / (KC2 / 2)) * (KC2 / 2);
    (qb, (KC2 / 2).min(kp - qb))
}

/// Packs `x` (`[m, k]` F32) as BF16 pairs: tile by tile of [`MR`] rows, each tile input pair by
/// input pair (`MR` words per pair, rows past `m` and the pad input zero).
pub fn pack_a(x: &[f32], m: usize, k: usize, packed: &mut Vec<u32>) {
    let tiles = m.div_ceil(MR);
    let kp = k.div_ceil(2);
    packed.clear();
    packed.resize(tiles * MR * kp, 0);
    let pack_tile = |t: usize, block: &mut [u32]| {
        let rows = MR.min(m - t * MR);
        for r in 0..rows {
            let src = &x[(t * MR + r) * k..(t * MR + r + 1) * k];
            let mut pairs = src.chunks_exact(2);
            for (q, p) in (&mut pairs).enumerate() {
                block[q * MR + r] = to_bf16(p[0]) as u32 | ((to_bf16(p[1]) as u32) << 16);
            }
            if let [last] = pairs.remainder() {
                block[(kp - 1) * MR + r] = to_bf16(*last) as u32;
            }
        }
    };
    if m * k >= 1 << 16 {
        packed
            .par_chunks_mut(MR * kp)
            .enumerate()
            .for_each(|(t, block)| pack_tile(t, block));
    } else {
        for (t, block) in packed.chunks_mut(MR * kp).enumerate() {
            pack_tile(t, block);
        }
    }
}

/// Computes output column panels `p0..p1` for all `m` rows with the BF16 weights of `lin`.
///
/// # Safety
/// The CPU must support AVX-512F and AVX512_BF16; `lin` was packed for BF16; `out` points to
/// `m × lin.n` floats; `packed_a` is `x` packed by [`pack_a`]; no other thread writes panels
/// `p0..p1`.
#[target_feature(enable = "avx512f,avx512bf16,avx2,fma")]
pub(super) unsafe fn panels(
    lin: &PackedLinear,
    packed_a: &[u32],
    m: usize,
    epi: Epilogue<'_>,
    out: SendPtr,
    p0: usize,
    p1: usize,
) {
    let (n, kp) = (lin.n, lin.k.div_ceil(2));
    walk_tiles(kp, KC2 / 2, (m, n), (p0, p1), epi, |at| {
        let t = Tile {
            a: packed_a.as_ptr().add(at.a),
            b: lin.wb.as_ptr().add(at.b),
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
    /// Packed input pairs: `MR` words per pair.
    a: *const u32,
    /// Panel slice: `NR` words per pair.
    b: *const u32,
    /// Pairs in this block.
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    /// Start from the bias (first block) or, when null, from what `c` holds.
    bias: *const f32,
}

#[target_feature(enable = "avx512f,avx512bf16,avx2,fma")]
unsafe fn dispatch(rows: usize, t: &Tile, epi: Epilogue<'_>) {
    super::dispatch_rows!(rows, tile; t, epi)
}

/// Words ahead of the current panel row that the kernel prefetches (the same 4 KiB as F32).
const PF_AHEAD: usize = 1024;

/// One `R × 32` output tile over one block of input pairs.
#[target_feature(enable = "avx512f,avx512bf16,avx2,fma")]
unsafe fn tile<const R: usize>(t: &Tile, epi: Epilogue<'_>) {
    let mk = masks(t.cols);
    let (mut acc0, mut acc1) = start::<R>(t.c, t.ldc, t.bias, mk);
    let mut b = t.b;
    let mut a = t.a;
    for _ in 0..t.kc {
        _mm_prefetch::<_MM_HINT_T0>(b.add(PF_AHEAD) as *const i8);
        _mm_prefetch::<_MM_HINT_T0>(b.add(PF_AHEAD + 16) as *const i8);
        let w0: __m512bh = std::mem::transmute(_mm512_loadu_si512(b as *const _));
        let w1: __m512bh = std::mem::transmute(_mm512_loadu_si512(b.add(16) as *const _));
        for r in 0..R {
            let v: __m512bh = std::mem::transmute(_mm512_set1_epi32(*a.add(r) as i32));
            acc0[r] = _mm512_dpbf16_ps(acc0[r], v, w0);
            acc1[r] = _mm512_dpbf16_ps(acc1[r], v, w1);
        }
        b = b.add(NR);
        a = a.add(MR);
    }
    finish::<R>(t.c, t.ldc, mk, acc0, acc1, epi);
}
