//! HiPrBERT training in candle: `ontovec train hiprbert`.
//!
//! HiPrBERT (Hierarchical Pretrained BERT, arXiv 2307.00266) fine-tunes a BERT encoder so that
//! term embeddings respect ontology hierarchies: pairs of terms carry ordered distance
//! categories (0 same concept, 1 parent/child/sibling, 2 two steps apart, 3 unrelated in the same
//! tree) and a tree multi-similarity loss makes closer categories score higher; a synonym
//! multi-similarity loss with online hard-pair mining (as in SapBERT) keeps synonyms together.
//! The paper trains PubMedBERT with AdamW (lr 2e-5, weight decay 0.01), batch 256, one epoch.
//! No biomedical BERT weights are reachable here, so we start from all-MiniLM-L6-v2 (384-d,
//! mean pooling) and train on whatever hierarchies the store holds.
//!
//! Layout (this module is never imported by the HTTP layer):
//! * [`ops`] — differentiable LayerNorm/softmax and seeded dropout (candle's fused kernels have
//!   no backward);
//! * [`bert`] — the trainable encoder, tensor names identical to the HF checkpoint;
//! * [`loss`] — tree and synonym multi-similarity losses;
//! * [`data`] — categorised pairs, synonym groups and the held-out split from the store;
//! * [`optim`] — AdamW, warm-up + linear decay, clipping, accumulation;
//! * [`checkpoint`] — atomic, resumable checkpoints (weights, moments, step, RNG);
//! * [`embed`] — tokenisation and batched inference;
//! * [`eval`] — ROC AUCs per category pair and normalisation accuracy (pure functions);
//! * [`hiprbert`] — the run: presets, loop, progress; [`output`] — the model folder.
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

pub mod bert;
pub mod checkpoint;
pub mod codeseq;
pub mod coding_eval;
pub mod data;
pub mod embed;
pub mod eval;
pub mod hiprbert;
pub mod loss;
pub mod notecontrast;
pub mod notecontrast_data;
mod notecontrast_model;
pub mod notecontrast_output;
pub mod ops;
pub mod optim;
pub mod output;

pub use eval::{category_aucs, roc_auc};
pub use hiprbert::{
    run_hiprbert, train, HiprbertArgs, Preset, RunOptions, TrainConfig, TrainReport,
};
