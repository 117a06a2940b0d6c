//! Training in candle, CLI only (`ontovec train hiprbert|notecontrast`; never imported by the
//! HTTP layer). Three folders, each importing only downward:
//! * [`common`] — the machinery both trainers share: the differentiable BERT ([`common::bert`],
//!   tensor names identical to the HF checkpoint), its ops ([`common::ops`]: LayerNorm/softmax
//!   with backward, seeded dropout; candle's fused kernels have none), AdamW and schedules
//!   ([`common::optim`]), atomic resumable checkpoints ([`common::checkpoint`]) and batched
//!   inference ([`common::embed`]);
//! * [`hiprbert`] — hierarchy-aware term encoder training (its `mod.rs` holds the config);
//! * [`notecontrast`] — notes aligned with ICD code sequences (likewise).
//!
//! Speed (all-MiniLM-L6-v2, 96 strings of 11 tokens on average per step: forward, both losses,
//! backward, clipping and AdamW, tokenisation excluded; `tests/train_bench.rs` against
//! `scripts/bench_train_reference.py` on the same workload, side by side on the shared 2-core
//! machine): candle 41 strings/s (459 tokens/s) vs PyTorch 2.15 132 strings/s with 2 threads
//! (ratio 0.31); with 1 thread while another build used the other core, candle 40 vs PyTorch 81
//! (0.49). The backward pass is ~2.6× the forward; on a busy machine candle's 2-thread barriers
//! spin (30–40% of cycles in `BarrierGuard::drop` under perf), so `RAYON_NUM_THREADS=1` was
//! faster there (33 vs 19 strings/s).
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
