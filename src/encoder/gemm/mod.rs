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
//!
//! A layer can also be packed for [`Precision::Bf16`] ([`bf16`]: `vdpbf16ps`, both operands
//! rounded to BF16, F32 accumulation, same epilogue). That is a request too: where the CPU
//! lacks AVX512_BF16 (or the portable path is forced) the layer is packed F32, so a safe call
//! never runs an instruction the CPU does not have; [`PackedLinear::precision`] tells which.
//! Likewise [`Precision::Int8`] ([`int8`]: `vpdpbusd`, weights per output channel and inputs
//! per row quantized to 8 bits, INT32 accumulation) where the CPU has AVX512_VNNI.

use super::ops;
use super::precision::Precision;
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
    /// Own AVX-512 BF16 micro-kernel (`vdpbf16ps`) over BF16 pair panels.
    Avx512Bf16,
    /// Own AVX-512 VNNI micro-kernel (`vpdpbusd`) over INT8 quad panels.
    Avx512Int8,
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

/// Whether this CPU runs the BF16 kernel (AVX-512F and AVX512_BF16) and the AVX-512 path is
/// not forced off with `ONTOVEC_GEMM=portable`.
pub fn bf16_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        backend() == Backend::Avx512 && std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Whether this CPU runs the INT8 kernel (AVX-512F/BW and AVX512_VNNI) and the AVX-512 path is
/// not forced off with `ONTOVEC_GEMM=portable`.
pub fn int8_supported() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        backend() == Backend::Avx512
            && std::arch::is_x86_feature_detected!("avx512vnni")
            && std::arch::is_x86_feature_detected!("avx512bw")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

impl Precision {
    /// Whether this CPU (and process configuration) can run it.
    pub fn supported(self) -> bool {
        match self {
            Precision::F32 => true,
            Precision::Bf16 => bf16_supported(),
            Precision::Int8 => int8_supported(),
        }
    }
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
    /// Avx512: panels (`ceil(n/NR)` × `k` × `NR`); Portable: row-major `[k, n]`; Avx512Bf16:
    /// empty.
    w: Vec<f32>,
    /// Avx512Bf16: BF16 pair panels (`ceil(n/NR)` × `ceil(k/2)` × `NR`); otherwise empty.
    wb: Vec<u32>,
    /// Avx512Int8: the quantized weights; otherwise empty.
    #[cfg(target_arch = "x86_64")]
    w8: int8::Int8Weights,
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

    /// As [`PackedLinear::from_torch`], in `precision` where this CPU can run it (see the
    /// module docs): BF16 falls back to the F32 backend of [`backend`] otherwise.
    pub fn with_precision(
        weight: &[f32],
        bias: &[f32],
        n: usize,
        k: usize,
        precision: Precision,
    ) -> Self {
        match precision {
            Precision::Bf16 if bf16_supported() => {
                Self::with_backend(weight, bias, n, k, Backend::Avx512Bf16)
            }
            Precision::Int8 if int8_supported() => {
                Self::with_backend(weight, bias, n, k, Backend::Avx512Int8)
            }
            _ => Self::from_torch(weight, bias, n, k),
        }
    }

    /// As [`PackedLinear::from_torch`], for an explicit backend. [`Backend::Avx512`] is a
    /// request: on a CPU without AVX-512F the layer is packed for [`Backend::Portable`] instead
    /// (so no AVX-512 instruction can ever run there); [`PackedLinear::backend`] tells which.
    pub fn with_backend(weight: &[f32], bias: &[f32], n: usize, k: usize, b: Backend) -> Self {
        let b = match b {
            Backend::Avx512 if !has_avx512() => Backend::Portable,
            Backend::Avx512Bf16 if !bf16_supported() => backend(),
            Backend::Avx512Int8 if !int8_supported() => backend(),
            b => b,
        };
        assert_eq!(weight.len(), n * k, "weight must be [n, k]");
        assert_eq!(bias.len(), n, "bias must be [n]");
        let panels = n.div_ceil(NR);
        let mut bias_p = vec![0f32; panels * NR];
        bias_p[..n].copy_from_slice(bias);
        let mut wb = Vec::new();
        #[cfg(target_arch = "x86_64")]
        let mut w8 = int8::Int8Weights::default();
        let w = match b {
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512Bf16 => {
                wb = bf16::pack_weights(weight, n, k);
                Vec::new()
            }
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512Int8 => {
                w8 = int8::pack_weights(weight, n, k);
                Vec::new()
            }
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
            _ => {
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
            wb,
            #[cfg(target_arch = "x86_64")]
            w8,
            bias: bias_p,
        }
    }

    /// The backend this layer runs on (AVX-512 only where the CPU has it).
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The number format the layer's products run in.
    pub fn precision(&self) -> Precision {
        match self.backend {
            Backend::Avx512Bf16 => Precision::Bf16,
            Backend::Avx512Int8 => Precision::Int8,
            Backend::Avx512 | Backend::Portable => Precision::F32,
        }
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
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512Bf16 => self.forward_bf16(x, m, epi, out),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512Int8 => self.forward_int8(x, m, epi, out),
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

    /// Runs `run(p0, p1)` over every output column panel: on this thread for small products,
    /// else split evenly across the rayon pool (each range writes only its own columns).
    #[cfg(target_arch = "x86_64")]
    fn split_panels(&self, m: usize, run: impl Fn(usize, usize) + Sync) {
        let panels = self.n.div_ceil(NR);
        let threads = rayon::current_num_threads().min(panels);
        if threads <= 1 || m * self.k * self.n < PARALLEL_MIN_MACS {
            run(0, panels);
        } else {
            (0..threads).into_par_iter().for_each(|t| {
                run(panels * t / threads, panels * (t + 1) / threads);
            });
        }
    }

    #[cfg(target_arch = "x86_64")]
    fn forward_avx512(&self, x: &[f32], m: usize, epi: Epilogue<'_>, out: &mut [f32]) {
        thread_local! {
            static PACKED_A: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        PACKED_A.with_borrow_mut(|packed| {
            pack_a(x, m, self.k, packed);
            let out_ptr = SendPtr(out.as_mut_ptr());
            let packed = &packed[..];
            let run = |p0: usize, p1: usize| {
                // SAFETY: `with_backend` keeps Avx512 only where AVX-512F was detected; panels p0..p1
                // write only their own columns of `out`, so concurrent ranges never overlap.
                unsafe { avx512::panels(self, packed, m, epi, out_ptr, p0, p1) }
            };
            self.split_panels(m, run);
        });
    }

    #[cfg(target_arch = "x86_64")]
    fn forward_bf16(&self, x: &[f32], m: usize, epi: Epilogue<'_>, out: &mut [f32]) {
        thread_local! {
            static PACKED_A: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        PACKED_A.with_borrow_mut(|packed| {
            bf16::pack_a(x, m, self.k, packed);
            let out_ptr = SendPtr(out.as_mut_ptr());
            let packed = &packed[..];
            let run = |p0: usize, p1: usize| {
                // SAFETY: `with_backend` keeps Avx512Bf16 only where AVX-512F and AVX512_BF16
                // were detected; panels p0..p1 write only their own columns of `out`.
                unsafe { bf16::panels(self, packed, m, epi, out_ptr, p0, p1) }
            };
            self.split_panels(m, run);
        });
    }

    #[cfg(target_arch = "x86_64")]
    fn forward_int8(&self, x: &[f32], m: usize, epi: Epilogue<'_>, out: &mut [f32]) {
        type Packed = (Vec<u32>, Vec<int8::RowQuant>);
        thread_local! {
            static PACKED_A: std::cell::RefCell<Packed> = const { std::cell::RefCell::new((Vec::new(), Vec::new())) };
        }
        PACKED_A.with_borrow_mut(|(packed, rows)| {
            int8::pack_a(x, m, self.k, packed, rows);
            let out_ptr = SendPtr(out.as_mut_ptr());
            let (packed, rows) = (&packed[..], &rows[..]);
            let run = |p0: usize, p1: usize| {
                // SAFETY: `with_backend` keeps Avx512Int8 only where AVX-512F/BW and
                // AVX512_VNNI were detected; panels p0..p1 write only their own columns.
                unsafe { int8::panels(self, packed, rows, m, epi, out_ptr, p0, p1) }
            };
            self.split_panels(m, run);
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

/// One output tile's place in the walk every AVX-512 kernel makes (see [`walk_tiles`]).
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct TileAt<'a> {
    /// First input unit (value, BF16 pair or INT8 quad) of the block, and units in the block.
    kb: usize,
    kc: usize,
    /// The block is the first one: the tile starts from the bias, else from what `c` holds.
    first: bool,
    /// Row tile.
    ti: usize,
    /// Valid rows and columns of the tile.
    rows: usize,
    cols: usize,
    /// The first row tile of its group for this panel slice (the one that brings it in).
    leads: bool,
    /// The tile's epilogue: none before the last block, the residual from the tile's corner.
    epi: Epilogue<'a>,
    /// Where the tile's data starts, in elements of each buffer: the packed input rows of this
    /// block (`MR` per unit), the weight panel slice (`NR` per unit), the output corner, and
    /// its first column (the bias offset).
    a: usize,
    b: usize,
    c: usize,
    col0: usize,
}

#[cfg(target_arch = "x86_64")]
impl TileAt<'_> {
    /// The bias from the tile's first column on the first block, else null (the tile then
    /// starts from what the output holds).
    fn bias(&self, bias: &[f32]) -> *const f32 {
        if self.first {
            bias[self.col0..].as_ptr()
        } else {
            std::ptr::null()
        }
    }
}

/// Walks the output tiles of column panels `p0..p1` for `m` rows in the order every kernel
/// uses: input block by input block (`block` of the `units` input units each), row tiles in
/// groups of [`MC_TILES`] (a group's packed rows for the block stay in L2 while every panel
/// passes over them), panel by panel, row tile by row tile.
#[cfg(target_arch = "x86_64")]
fn walk_tiles<'a>(
    units: usize,
    block: usize,
    (m, n): (usize, usize),
    (p0, p1): (usize, usize),
    epi: Epilogue<'a>,
    mut tile: impl FnMut(TileAt<'a>),
) {
    let tiles = m.div_ceil(MR);
    let panels_n = n.div_ceil(NR);
    let mut kb = 0;
    loop {
        let kc = block.min(units - kb);
        let last = kb + kc == units;
        for g in (0..tiles).step_by(MC_TILES) {
            for p in p0..p1 {
                let col0 = p * NR;
                for ti in g..tiles.min(g + MC_TILES) {
                    let r0 = ti * MR;
                    let epi = match epi {
                        _ if !last => Epilogue::None,
                        Epilogue::Residual(r) => Epilogue::Residual(&r[r0 * n + col0..]),
                        e => e,
                    };
                    tile(TileAt {
                        kb,
                        kc,
                        first: kb == 0,
                        ti,
                        rows: MR.min(m - r0),
                        cols: NR.min(n - col0),
                        leads: ti == g,
                        epi,
                        a: ti * units * MR + kb * MR,
                        b: kb * panels_n * NR + p * kc * NR,
                        c: r0 * n + col0,
                        col0,
                    });
                }
            }
        }
        kb += kc;
        if last {
            break;
        }
    }
}

/// Calls `$tile::<R, ..>($t, $epi)` with the const row count `R` = `$rows` (1..=12).
macro_rules! dispatch_rows {
    ($rows:expr, $tile:ident $(, $extra:ident)? ; $t:expr, $epi:expr) => {
        match $rows {
            12 => $tile::<12 $(, $extra)?>($t, $epi),
            11 => $tile::<11 $(, $extra)?>($t, $epi),
            10 => $tile::<10 $(, $extra)?>($t, $epi),
            9 => $tile::<9 $(, $extra)?>($t, $epi),
            8 => $tile::<8 $(, $extra)?>($t, $epi),
            7 => $tile::<7 $(, $extra)?>($t, $epi),
            6 => $tile::<6 $(, $extra)?>($t, $epi),
            5 => $tile::<5 $(, $extra)?>($t, $epi),
            4 => $tile::<4 $(, $extra)?>($t, $epi),
            3 => $tile::<3 $(, $extra)?>($t, $epi),
            2 => $tile::<2 $(, $extra)?>($t, $epi),
            _ => $tile::<1 $(, $extra)?>($t, $epi),
        }
    };
}
use dispatch_rows;

#[cfg(target_arch = "x86_64")]
mod avx512;
#[cfg(target_arch = "x86_64")]
pub mod bf16;
#[cfg(target_arch = "x86_64")]
pub mod int8;

#[cfg(test)]
mod tests;
