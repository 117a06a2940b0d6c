//! The F32 AVX-512 micro-kernel (see the module docs of [`super`]).
use super::{ops, walk_tiles, Epilogue, PackedLinear, SendPtr, KC, MR, NR};
use std::arch::x86_64::*;

/// Computes output column panels `p0..p1` for all `m` rows.
///
/// # Safety
/// The CPU must support AVX-512F; `out` must point to `m × lin.n` floats, `packed_a` holds
/// the input packed by `pack_a`, and no other thread may write panels `p0..p1`.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn panels(
    lin: &PackedLinear,
    packed_a: &[f32],
    m: usize,
    epi: Epilogue<'_>,
    out: SendPtr,
    p0: usize,
    p1: usize,
) {
    let (k, n) = (lin.k, lin.n);
    walk_tiles(k, KC, (m, n), (p0, p1), epi, |at| {
        let t = Tile {
            a: packed_a.as_ptr().add(at.a),
            b: lin.w.as_ptr().add(at.b),
            kc: at.kc,
            c: out.0.add(at.c),
            ldc: n,
            cols: at.cols,
            bias: at.bias(&lin.bias),
        };
        if at.leads {
            dispatch::<true>(at.rows, &t, at.epi);
        } else {
            dispatch::<false>(at.rows, &t, at.epi);
        }
    });
}

#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn dispatch<const PF: bool>(rows: usize, t: &Tile, epi: Epilogue<'_>) {
    super::dispatch_rows!(rows, tile, PF; t, epi)
}

struct Tile {
    /// Packed rows: `MR` values per input.
    a: *const f32,
    b: *const f32,
    kc: usize,
    c: *mut f32,
    ldc: usize,
    cols: usize,
    /// Start from the bias (first input block) or, when null, from what `c` holds.
    bias: *const f32,
}

/// Floats ahead of the current panel row that the first row tile prefetches.
const PF_AHEAD: usize = 1024;

/// Store masks of the two 16-column halves of a tile with `cols` valid columns.
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) fn masks(cols: usize) -> (__mmask16, __mmask16) {
    let m0: __mmask16 = if cols >= 16 {
        0xffff
    } else {
        ((1u32 << cols) - 1) as u16
    };
    let m1: __mmask16 = if cols >= 32 {
        0xffff
    } else if cols <= 16 {
        0
    } else {
        ((1u32 << (cols - 16)) - 1) as u16
    };
    (m0, m1)
}

/// The accumulators' starting values: the bias (first input block), else what `c` holds.
///
/// # Safety
/// AVX-512F; `bias` (when not null) holds 32 floats; `c` holds `R` rows of `ldc` floats
/// (only the masked columns are read).
#[target_feature(enable = "avx512f")]
#[inline]
pub(super) unsafe fn start<const R: usize>(
    c: *const f32,
    ldc: usize,
    bias: *const f32,
    (m0, m1): (__mmask16, __mmask16),
) -> ([__m512; R], [__m512; R]) {
    let mut acc0 = [_mm512_setzero_ps(); R];
    let mut acc1 = [_mm512_setzero_ps(); R];
    if !bias.is_null() {
        let b0 = _mm512_loadu_ps(bias);
        let b1 = _mm512_loadu_ps(bias.add(16));
        for r in 0..R {
            acc0[r] = b0;
            acc1[r] = b1;
        }
    } else {
        for r in 0..R {
            let c = c.add(r * ldc);
            acc0[r] = _mm512_maskz_loadu_ps(m0, c);
            acc1[r] = _mm512_maskz_loadu_ps(m1, c.add(16));
        }
    }
    (acc0, acc1)
}

/// Adds the residual or applies the activation (whichever the epilogue has) to the
/// accumulators, then stores the tile.
///
/// # Safety
/// AVX-512F; `c` (and the residual) hold `R` rows of `ldc` floats (the masked columns).
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
pub(super) unsafe fn finish<const R: usize>(
    c: *mut f32,
    ldc: usize,
    (m0, m1): (__mmask16, __mmask16),
    mut acc0: [__m512; R],
    mut acc1: [__m512; R],
    epi: Epilogue<'_>,
) {
    // The activation runs on the accumulators before the store (lanes past the valid columns
    // are computed and masked off), so the tile is written once.
    match epi {
        Epilogue::Residual(res) => {
            for r in 0..R {
                let s = res.as_ptr().add(r * ldc);
                acc0[r] = _mm512_add_ps(acc0[r], _mm512_maskz_loadu_ps(m0, s));
                acc1[r] = _mm512_add_ps(acc1[r], _mm512_maskz_loadu_ps(m1, s.add(16)));
            }
        }
        Epilogue::GeluErf => {
            for r in 0..R {
                acc0[r] = ops::gelu_erf512(acc0[r]);
                acc1[r] = ops::gelu_erf512(acc1[r]);
            }
        }
        Epilogue::GeluTanh => {
            for r in 0..R {
                acc0[r] = ops::gelu_tanh512(acc0[r]);
                acc1[r] = ops::gelu_tanh512(acc1[r]);
            }
        }
        Epilogue::Relu => {
            for r in 0..R {
                acc0[r] = _mm512_max_ps(acc0[r], _mm512_setzero_ps());
                acc1[r] = _mm512_max_ps(acc1[r], _mm512_setzero_ps());
            }
        }
        Epilogue::None => {}
    }
    for r in 0..R {
        let c = c.add(r * ldc);
        _mm512_mask_storeu_ps(c, m0, acc0[r]);
        _mm512_mask_storeu_ps(c.add(16), m1, acc1[r]);
    }
}

/// One `R × 32` output tile over one block of inputs; `PREFETCH` for the first tile of a
/// panel slice (the one that brings it from memory).
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn tile<const R: usize, const PREFETCH: bool>(t: &Tile, epi: Epilogue<'_>) {
    let mk = masks(t.cols);
    let (mut acc0, mut acc1) = start::<R>(t.c, t.ldc, t.bias, mk);
    let mut b = t.b;
    let mut a = t.a;
    for _ in 0..t.kc {
        if PREFETCH {
            // The weights stream block by block; fetch well ahead of use so a short query
            // (one tile, few FLOPs per weight) is not waiting on memory latency.
            _mm_prefetch::<_MM_HINT_T0>(b.add(PF_AHEAD) as *const i8);
            _mm_prefetch::<_MM_HINT_T0>(b.add(PF_AHEAD + 16) as *const i8);
        }
        let w0 = _mm512_loadu_ps(b);
        let w1 = _mm512_loadu_ps(b.add(16));
        for r in 0..R {
            let v = _mm512_set1_ps(*a.add(r));
            acc0[r] = _mm512_fmadd_ps(v, w0, acc0[r]);
            acc1[r] = _mm512_fmadd_ps(v, w1, acc1[r]);
        }
        b = b.add(NR);
        a = a.add(MR);
    }
    finish::<R>(t.c, t.ldc, mk, acc0, acc1, epi);
}
