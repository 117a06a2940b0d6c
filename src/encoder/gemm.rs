//! Linear layers for inference: `out = x · W + bias`, optionally followed by a residual add or
//! a GELU, with `W` packed once at load time.
//!
//! The weight of every linear layer is fixed, so it is laid out once for the kernel: column
//! panels of [`NR`] = 32 outputs (row `p` of a panel holds the 32 weights that input `p`
//! contributes to those outputs, zero-padded past the last column), stored block by block of
//! [`KC`] inputs — all panels' rows `0..KC`, then all panels' rows `KC..2·KC`, ... — which is
//! the order the kernel walks them, so the weights stream from memory sequentially. That stream
//! is what bounds a short single query, whose few rows use each weight only a handful of times.
//!
//! The AVX-512 micro-kernel keeps a `rows × 32` output tile in 24 registers (up to [`MR`] = 12
//! rows × 2 vectors), reads two vectors of the panel and broadcasts one input value per row per
//! step; the input rows are packed per call into `MR`-row tiles (one contiguous stream). The
//! bias is the accumulators' initial value, and the residual add / GELU run on the tile while
//! it is still in L1. Every row tile of a call reuses a `KC × NR` panel slice (32 KiB) from L1
//! before the next is loaded. Work is split across the rayon pool by column panels (each
//! thread reads its share of the weights); small products stay on the calling thread.
//!
//! On CPUs without AVX-512F (checked at runtime) the same layer runs through the `gemm` crate
//! (the kernels candle uses) on a row-major copy of the weight, then the epilogue. Setting
//! `ONTOVEC_GEMM=portable` forces that path (tests compare the two).

use super::ops;
use rayon::prelude::*;
use std::sync::OnceLock;

/// Output columns per packed panel (two AVX-512 vectors).
pub const NR: usize = 32;
/// Maximum output rows per micro-kernel tile.
pub const MR: usize = 12;
/// Inputs per block: a `KC × NR` panel slice (32 KiB) stays in L1 while every row tile uses it.
pub const KC: usize = 256;
/// Row tiles processed together against each panel slice (192 rows).
const MC_TILES: usize = 16;
/// Products smaller than this many multiply-adds run on the calling thread only.
const PARALLEL_MIN_MACS: usize = 1 << 17;

/// What happens to the output after `x · W + bias`.
#[derive(Debug, Clone, Copy)]
pub enum Epilogue<'a> {
    /// Nothing.
    None,
    /// Adds a `[m, n]` row-major residual.
    Residual(&'a [f32]),
    /// Exact (erf) GELU.
    GeluErf,
    /// Tanh-approximated GELU.
    GeluTanh,
    /// ReLU.
    Relu,
}

/// Which kernel family runs the products.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Own AVX-512 micro-kernel over pre-packed panels.
    Avx512,
    /// The `gemm` crate on a row-major weight (any CPU).
    Portable,
}

/// The backend chosen for this process: AVX-512 when the CPU has it, unless
/// `ONTOVEC_GEMM=portable`.
pub fn backend() -> Backend {
    static B: OnceLock<Backend> = OnceLock::new();
    *B.get_or_init(|| {
        let forced = std::env::var("ONTOVEC_GEMM").is_ok_and(|v| v == "portable");
        if !forced && has_avx512() {
            Backend::Avx512
        } else {
            Backend::Portable
        }
    })
}

fn has_avx512() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512f")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A linear layer's weight and bias, laid out for [`Backend`].
pub struct PackedLinear {
    k: usize,
    n: usize,
    backend: Backend,
    /// Avx512: panels (`ceil(n/NR)` × `k` × `NR`); Portable: row-major `[k, n]`.
    w: Vec<f32>,
    /// Bias, zero-padded to a whole number of panels.
    bias: Vec<f32>,
}

impl std::fmt::Debug for PackedLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PackedLinear")
            .field("k", &self.k)
            .field("n", &self.n)
            .field("backend", &self.backend)
            .finish()
    }
}

impl PackedLinear {
    /// Packs a PyTorch-layout weight `[n, k]` (`out × in`, row-major) and its bias `[n]`.
    pub fn from_torch(weight: &[f32], bias: &[f32], n: usize, k: usize) -> Self {
        Self::with_backend(weight, bias, n, k, backend())
    }

    /// As [`PackedLinear::from_torch`], for an explicit backend. [`Backend::Avx512`] is a
    /// request: on a CPU without AVX-512F the layer is packed for [`Backend::Portable`] instead
    /// (so no AVX-512 instruction can ever run there); [`PackedLinear::backend`] tells which.
    pub fn with_backend(weight: &[f32], bias: &[f32], n: usize, k: usize, b: Backend) -> Self {
        let b = if b == Backend::Avx512 && !has_avx512() {
            Backend::Portable
        } else {
            b
        };
        assert_eq!(weight.len(), n * k, "weight must be [n, k]");
        assert_eq!(bias.len(), n, "bias must be [n]");
        let panels = n.div_ceil(NR);
        let mut bias_p = vec![0f32; panels * NR];
        bias_p[..n].copy_from_slice(bias);
        let w = match b {
            Backend::Avx512 => {
                // Block-major: for each block of KC inputs, every panel's slice of it, so a
                // pass over one input block reads one contiguous stream.
                let mut w = vec![0f32; panels * k * NR];
                for j in 0..n {
                    let (panel, col) = (j / NR, j % NR);
                    for p in 0..k {
                        let (kb, kc) = ((p / KC) * KC, KC.min(k - (p / KC) * KC));
                        w[kb * panels * NR + panel * kc * NR + (p - kb) * NR + col] =
                            weight[j * k + p];
                    }
                }
                w
            }
            Backend::Portable => {
                let mut w = vec![0f32; k * n];
                for j in 0..n {
                    for p in 0..k {
                        w[p * n + j] = weight[j * k + p];
                    }
                }
                w
            }
        };
        PackedLinear {
            k,
            n,
            backend: b,
            w,
            bias: bias_p,
        }
    }

    /// The backend this layer runs on (AVX-512 only where the CPU has it).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Input width.
    pub fn k(&self) -> usize {
        self.k
    }

    /// Output width.
    pub fn n(&self) -> usize {
        self.n
    }

    /// `out[m, n] = epilogue(x[m, k] · W + bias)`, all row-major.
    pub fn forward(&self, x: &[f32], m: usize, epi: Epilogue<'_>, out: &mut [f32]) {
        let (k, n) = (self.k, self.n);
        assert!(x.len() >= m * k && out.len() >= m * n, "buffer too small");
        if let Epilogue::Residual(r) = epi {
            assert!(r.len() >= m * n, "residual too small");
        }
        if m == 0 {
            return;
        }
        match self.backend {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => self.forward_avx512(x, m, epi, out),
            _ => self.forward_portable(x, m, epi, out),
        }
    }

    fn forward_portable(&self, x: &[f32], m: usize, epi: Epilogue<'_>, out: &mut [f32]) {
        let (k, n) = (self.k, self.n);
        let out = &mut out[..m * n];
        for (r, row) in out.chunks_exact_mut(n).enumerate() {
            row.copy_from_slice(&self.bias[..n]);
            if let Epilogue::Residual(res) = epi {
                for (o, v) in row.iter_mut().zip(&res[r * n..(r + 1) * n]) {
                    *o += v;
                }
            }
        }
        let threads = if m * k * n >= PARALLEL_MIN_MACS {
            rayon::current_num_threads()
        } else {
            1
        };
        let par = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        // SAFETY: the pointers cover m×k, k×n and m×n row-major buffers (checked above).
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out.as_mut_ptr(),
                1,
                n as isize,
                true,
                x.as_ptr(),
                1,
                k as isize,
                self.w.as_ptr(),
                1,
                n as isize,
                1.0f32,
                1.0f32,
                false,
                false,
                false,
                par,
            );
        }
        match epi {
            Epilogue::GeluErf => ops::gelu_erf(out),
            Epilogue::GeluTanh => ops::gelu_tanh(out),
            Epilogue::Relu => out.iter_mut().for_each(|v| *v = v.max(0.0)),
            Epilogue::None | Epilogue::Residual(_) => {}
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn forward_avx512(&self, x: &[f32], m: usize, epi: Epilogue<'_>, out: &mut [f32]) {
        thread_local! {
            static PACKED_A: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        PACKED_A.with_borrow_mut(|packed| {
            pack_a(x, m, self.k, packed);
            let panels = self.n.div_ceil(NR);
            let threads = rayon::current_num_threads().min(panels);
            let out_ptr = SendPtr(out.as_mut_ptr());
            let packed = &packed[..];
            let run = |p0: usize, p1: usize| {
                // SAFETY: `with_backend` keeps Avx512 only where AVX-512F was detected; panels p0..p1
                // write only their own columns of `out`, so concurrent ranges never overlap.
                unsafe { avx512::panels(self, packed, m, epi, out_ptr, p0, p1) }
            };
            if threads <= 1 || m * self.k * self.n < PARALLEL_MIN_MACS {
                run(0, panels);
            } else {
                (0..threads).into_par_iter().for_each(|t| {
                    run(panels * t / threads, panels * (t + 1) / threads);
                });
            }
        });
    }
}

/// Packs `x` (`[m, k]` row-major) for the micro-kernel: tile by tile of [`MR`] rows, each tile's
/// values input by input (`MR` per input, rows past `m` zero), so the kernel reads one
/// contiguous stream instead of `MR` strided ones. Large inputs are packed in parallel.
fn pack_a(x: &[f32], m: usize, k: usize, packed: &mut Vec<f32>) {
    let tiles = m.div_ceil(MR);
    packed.clear();
    packed.resize(tiles * MR * k, 0.0);
    let pack_tile = |t: usize, block: &mut [f32]| {
        let rows = MR.min(m - t * MR);
        for r in 0..rows {
            let src = &x[(t * MR + r) * k..(t * MR + r + 1) * k];
            for (p, &v) in src.iter().enumerate() {
                block[p * MR + r] = v;
            }
        }
    };
    if m * k >= 1 << 16 {
        packed
            .par_chunks_mut(MR * k)
            .enumerate()
            .for_each(|(t, block)| pack_tile(t, block));
    } else {
        for (t, block) in packed.chunks_mut(MR * k).enumerate() {
            pack_tile(t, block);
        }
    }
}

/// A raw output pointer handed to worker threads that write disjoint parts of it.
#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used only for disjoint writes, see `forward_avx512` and the attention kernel.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{ops, Epilogue, PackedLinear, SendPtr, KC, MC_TILES, MR, NR};
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
        let tiles = m.div_ceil(MR);
        let panels_n = n.div_ceil(NR);
        let mut kb = 0;
        loop {
            let kc = KC.min(k - kb);
            let first = kb == 0;
            let last = kb + kc == k;
            // Row tiles in groups of MC_TILES: a group's packed rows for this input block
            // (≤ 192 KiB) stay in L2 while every panel passes over them.
            for g in (0..tiles).step_by(MC_TILES) {
                for p in p0..p1 {
                    let col0 = p * NR;
                    let cols = NR.min(n - col0);
                    let panel = lin.w.as_ptr().add(kb * panels_n * NR + p * kc * NR);
                    let bias = lin.bias.as_ptr().add(col0);
                    for ti in g..tiles.min(g + MC_TILES) {
                        let r0 = ti * MR;
                        let rows = MR.min(m - r0);
                        let t = Tile {
                            a: packed_a.as_ptr().add(ti * k * MR + kb * MR),
                            b: panel,
                            kc,
                            c: out.0.add(r0 * n + col0),
                            ldc: n,
                            cols,
                            bias: if first { bias } else { std::ptr::null() },
                        };
                        let epi = if last {
                            match epi {
                                Epilogue::Residual(r) => Epilogue::Residual(&r[r0 * n + col0..]),
                                e => e,
                            }
                        } else {
                            Epilogue::None
                        };
                        if ti == g {
                            dispatch::<true>(rows, &t, epi);
                        } else {
                            dispatch::<false>(rows, &t, epi);
                        }
                    }
                }
            }
            kb += kc;
            if last {
                break;
            }
        }
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn dispatch<const PF: bool>(rows: usize, t: &Tile, epi: Epilogue<'_>) {
        match rows {
            12 => tile::<12, PF>(t, epi),
            11 => tile::<11, PF>(t, epi),
            10 => tile::<10, PF>(t, epi),
            9 => tile::<9, PF>(t, epi),
            8 => tile::<8, PF>(t, epi),
            7 => tile::<7, PF>(t, epi),
            6 => tile::<6, PF>(t, epi),
            5 => tile::<5, PF>(t, epi),
            4 => tile::<4, PF>(t, epi),
            3 => tile::<3, PF>(t, epi),
            2 => tile::<2, PF>(t, epi),
            _ => tile::<1, PF>(t, epi),
        }
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

    /// One `R × 32` output tile over one block of inputs; `PREFETCH` for the first tile of a
    /// panel slice (the one that brings it from memory).
    #[target_feature(enable = "avx512f,avx2,fma")]
    unsafe fn tile<const R: usize, const PREFETCH: bool>(t: &Tile, epi: Epilogue<'_>) {
        let m0: __mmask16 = if t.cols >= 16 {
            0xffff
        } else {
            ((1u32 << t.cols) - 1) as u16
        };
        let m1: __mmask16 = if t.cols >= 32 {
            0xffff
        } else if t.cols <= 16 {
            0
        } else {
            ((1u32 << (t.cols - 16)) - 1) as u16
        };
        let mut acc0 = [_mm512_setzero_ps(); R];
        let mut acc1 = [_mm512_setzero_ps(); R];
        if !t.bias.is_null() {
            let b0 = _mm512_loadu_ps(t.bias);
            let b1 = _mm512_loadu_ps(t.bias.add(16));
            for r in 0..R {
                acc0[r] = b0;
                acc1[r] = b1;
            }
        } else {
            for r in 0..R {
                let c = t.c.add(r * t.ldc);
                acc0[r] = _mm512_maskz_loadu_ps(m0, c);
                acc1[r] = _mm512_maskz_loadu_ps(m1, c.add(16));
            }
        }
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
        if let Epilogue::Residual(res) = epi {
            for r in 0..R {
                let s = res.as_ptr().add(r * t.ldc);
                acc0[r] = _mm512_add_ps(acc0[r], _mm512_maskz_loadu_ps(m0, s));
                acc1[r] = _mm512_add_ps(acc1[r], _mm512_maskz_loadu_ps(m1, s.add(16)));
            }
        }
        for r in 0..R {
            let c = t.c.add(r * t.ldc);
            _mm512_mask_storeu_ps(c, m0, acc0[r]);
            _mm512_mask_storeu_ps(c.add(16), m1, acc1[r]);
        }
        match epi {
            Epilogue::GeluErf | Epilogue::GeluTanh | Epilogue::Relu => {
                for r in 0..R {
                    let row = std::slice::from_raw_parts_mut(t.c.add(r * t.ldc), t.cols);
                    match epi {
                        Epilogue::GeluErf => ops::gelu_erf_inline(row),
                        Epilogue::GeluTanh => ops::gelu_tanh_inline(row),
                        _ => row.iter_mut().for_each(|v| *v = v.max(0.0)),
                    }
                }
            }
            Epilogue::None | Epilogue::Residual(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
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
        let mut r =
            |len: usize| -> Vec<f32> { (0..len).map(|_| rng.gen_range(-1.0..1.0)).collect() };
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
}
