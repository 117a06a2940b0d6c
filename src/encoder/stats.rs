//! What the engines measure: [`EngineStats`] counters (benchmarks read them) and the Prometheus
//! histograms the model threads record as they work (exported on `/metrics`, as
//! text-embeddings-inference exports its queue, batch and inference histograms).
//!
//! | metric | kind | what |
//! |---|---|---|
//! | `ontovec_encoder_queue_wait_seconds{model}` | histogram | a request's wait from queueing until the model thread takes its first text |
//! | `ontovec_encoder_batch_size{model}` | histogram | texts in one forward pass |
//! | `ontovec_encoder_batch_tokens{model}` | histogram | real (unpadded) tokens in one forward pass |
//! | `ontovec_encoder_inference_seconds{model}` | histogram | one forward pass with pooling |
//! | `ontovec_encoder_queue_depth{model}` | gauge | texts waiting (set when `/metrics` is read) |
//! | `ontovec_encoder_admitted_texts` | gauge | texts of interactive requests admitted (idem) |
//! | `ontovec_embed_rejected_total` | counter | requests refused by admission (429) |

use std::time::Duration;

/// Histogram of queue waits.
pub const QUEUE_WAIT: &str = "ontovec_encoder_queue_wait_seconds";
/// Histogram of texts per forward pass.
pub const BATCH_SIZE: &str = "ontovec_encoder_batch_size";
/// Histogram of real tokens per forward pass.
pub const BATCH_TOKENS: &str = "ontovec_encoder_batch_tokens";
/// Histogram of forward-pass times.
pub const INFERENCE: &str = "ontovec_encoder_inference_seconds";

/// Buckets of the histograms that do not count seconds (the exporter's default buckets are
/// latencies): texts per batch up to the largest window, tokens per batch up to twice the
/// default token budget.
pub const COUNT_BUCKETS: &[(&str, &[f64])] = &[
    (
        BATCH_SIZE,
        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
    ),
    (
        BATCH_TOKENS,
        &[
            16.0, 64.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
        ],
    ),
];

/// Counters of an engine's work since start (for metrics and benchmarks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Forward passes run.
    pub batches: u64,
    /// Texts embedded.
    pub texts: u64,
    /// Real tokens processed.
    pub tokens: u64,
    /// `texts × longest` summed over batches: what a padded forward would compute. The packed
    /// forward computes only `tokens`; `tokens / padded_tokens` shows how well bucketing would
    /// have done.
    pub padded_tokens: u64,
    /// Time spent in forward passes and pooling, in nanoseconds.
    pub busy_ns: u64,
}

/// Record one forward pass of `model`.
pub(crate) fn record_batch(model: &str, texts: usize, tokens: u64, elapsed: Duration) {
    let labels = [("model", model.to_string())];
    metrics::histogram!(BATCH_SIZE, &labels).record(texts as f64);
    metrics::histogram!(BATCH_TOKENS, &labels).record(tokens as f64);
    metrics::histogram!(INFERENCE, &labels).record(elapsed.as_secs_f64());
}

/// Record how long a request of `model` waited in the queue.
pub(crate) fn record_queue_wait(model: &str, wait: Duration) {
    metrics::histogram!(QUEUE_WAIT, "model" => model.to_string()).record(wait.as_secs_f64());
}
