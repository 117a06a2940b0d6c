//! Text encoders: BERT-family models loaded with candle, served by a batching engine.
//!
//! # Layers
//! * [`manifest`] — what a model folder *is*: our `ontovec.json` manifest (kind, pooling, eval
//!   numbers, default flag), or one synthesised from the sentence-transformers files
//!   (`modules.json`, `1_Pooling/config.json`, `sentence_bert_config.json`) of a raw base model.
//! * [`tokenize`] — the tokenizer from `tokenizer.json`, or a WordPiece BERT tokenizer built
//!   from `vocab.txt`. Padding is always switched off (the engine pads per batch) and truncation
//!   is set to the model's maximum length.
//! * [`bert`] — [`Encoder`]: config + weights → [`model::Bert`] (CPU, F32; the same maths as
//!   candle_transformers' `BertModel`, laid out for CPU speed: texts packed without padding,
//!   [`gemm`] products on pre-packed weights, [`ops`] for attention/LayerNorm/GELU), one
//!   forward pass per batch, pooling and L2 normalisation in [`pooling`].
//! * [`precision`] — F32 or BF16 products per model ([`Precision`]), what was asked
//!   ([`PrecisionChoice`]: flag, manifest, default) and the parity gate a BF16 model passes
//!   against F32 before it is served; the precision is part of a model's vector identity.
//! * [`engine`] — [`EngineHandle`]: a bounded queue in front of a dedicated model thread.
//!   Callers tokenize on their own thread (or the tokio blocking pool for large requests), the
//!   model thread drains a window of queued sequences, sorts it by token length (length
//!   bucketing: padding is what costs most on CPU, see GUIDE.md), cuts it into batches under a
//!   padded-token budget, runs them and answers each request through a oneshot channel, in the
//!   request's own order. A full queue is refused at once with [`EncoderError::Overloaded`]
//!   (HTTP 429) rather than queueing without bound.
//!   Two lanes: interactive requests on that thread, bulk work (catch-up, ingest) on a second
//!   thread sharing the weights, which gives way to requests; the queue, its lanes and the window/batch cutting are in
//!   `queue.rs`.
//! * [`admission`] — [`Admission`]: the gate interactive callers (HTTP and CLI alike) pass
//!   before embedding; it refuses at once (429) when admitted texts would make them wait too long.
//! * [`stats`] — what the engines measure: counters, and the queue-wait, batch-size and
//!   inference-time histograms exported on `/metrics`.
//! * [`registry`] — every model folder under `models/`, one engine each, a default per kind,
//!   and the one [`Admission`] gate they share.
//! * [`testing`] — a tiny random BERT written to a directory, so the whole load → embed path is
//!   testable without downloaded weights.
//!
//! The design follows the shape of huggingface/text-embeddings-inference (token-budget batches,
//! a model thread, immediate 429 on saturation, tokenization off the model thread), adapted to a
//! CPU where sorting by length inside the batching window roughly doubles throughput.

pub mod admission;
pub mod bench;
pub mod bert;
pub mod config;
pub mod engine;
pub mod gemm;
pub mod manifest;
pub mod model;
pub mod ops;
pub mod pooling;
pub mod precision;
mod queue;
pub mod registry;
pub mod stats;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod tokenize;

#[cfg(test)]
mod precision_tests;
#[cfg(test)]
mod tests;

pub use admission::{Admission, Admitted};
pub use bert::Encoder;
pub use config::DEFAULT_QUERY_BATCH_TOKENS;
pub use engine::{EngineConfig, EngineHandle};
pub use manifest::{ModelInfo, ModelKind, ModelManifest, Pooling};
pub use precision::{GateReport, Precision, PrecisionChoice, PrecisionPolicy};
pub use registry::Registry;

use std::path::PathBuf;

/// Everything that can go wrong while loading a model or embedding text.
///
/// The HTTP layer maps these to statuses: `UnknownModel` → 404/400, `Overloaded` → 429 with
/// `Retry-After`, `InvalidInput` → 400, `Load`/`Inference` → 500/503.
#[derive(Debug, thiserror::Error)]
pub enum EncoderError {
    /// No model of that name (or no model at all for the requested kind).
    #[error("unknown model: {0}")]
    UnknownModel(String),
    /// The request queue is full; retry after roughly `retry_after_ms` milliseconds.
    #[error("encoder overloaded, retry after {retry_after_ms} ms")]
    Overloaded {
        /// Suggested client back-off, estimated from the queue depth and recent throughput.
        retry_after_ms: u64,
    },
    /// The input cannot be embedded (e.g. the tokenizer rejected it).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A model folder could not be loaded.
    #[error("cannot load model at {path}: {message}")]
    Load {
        /// The file or folder that failed.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The forward pass failed, or the engine has shut down.
    #[error("inference failed: {0}")]
    Inference(String),
    /// The caller's work was cancelled (shutdown) while it waited for its vectors.
    #[error("embedding cancelled")]
    Cancelled,
}

impl EncoderError {
    /// Shorthand for a [`EncoderError::Load`] error.
    pub(crate) fn load(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        EncoderError::Load {
            path: path.into(),
            message: message.to_string(),
        }
    }
}

impl From<candle_core::Error> for EncoderError {
    fn from(e: candle_core::Error) -> Self {
        EncoderError::Inference(e.to_string())
    }
}
