//! Training in candle, CLI only (`ontovec train hiprbert|notecontrast`; never imported by the
//! HTTP layer). Three folders, each importing only downward:
//! * [`common`] — the machinery both trainers share: the differentiable BERT ([`common::bert`],
//!   tensor names identical to the HF checkpoint), its ops ([`common::ops`]: LayerNorm/softmax
//!   with backward, seeded dropout; candle's fused kernels have none; [`common::fused`]: our own
//!   one-pass F32 kernels with backward), data parallelism ([`common::parallel`]), AdamW and schedules
//!   ([`common::optim`]), atomic resumable checkpoints ([`common::checkpoint`]) and batched
//!   inference ([`common::embed`]);
//! * [`hiprbert`] — hierarchy-aware term encoder training (its `mod.rs` holds the config);
//! * [`notecontrast`] — notes aligned with ICD code sequences (likewise).
//!
//! Speed: `ontovec bench train` (src/bench/train.rs) times the trainer's own step against
//! `scripts/bench_train_reference.py` (PyTorch) on the same workload in one run; README,
//! Performance, has the table. Where the time went and what changed (2026-12-06, 2 cores):
//! candle's intra-op threads spun at barriers (31% of cycles) → data-parallel chunks with
//! single-threaded kernels ([`common::parallel`]); composed LayerNorm/softmax/GELU (~30 ops per
//! norm with backward) → one-pass fused kernels ([`common::fused`]); two dense 47 MB
//! word-embedding gradients per chunk → gradient rows; AdamW copying every weight out and back →
//! in place; freed activations re-faulted as zeroed huge pages → mimalloc keeps freed memory in
//! training processes. What remains is mostly GEMM (~50% of step cycles under perf).
//!
//! Reproducibility: all sampling, dropout and test initialisation draw from ChaCha8 streams
//! seeded by the configuration (candle's CPU RNG cannot be seeded), and the stream position is
//! checkpointed, so a run killed and resumed follows the same trajectory as one that was not.

pub mod common;
pub mod hiprbert;
pub mod notecontrast;

pub use hiprbert::{
    run_hiprbert, train, HiprbertArgs, Preset, RunOptions, TrainConfig, TrainReport,
};
