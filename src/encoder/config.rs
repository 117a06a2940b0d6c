//! The tuning knobs of an engine: how much its queue holds and how the model threads cut the
//! queued texts into batches. Read by [`super::queue`] (batching) and [`super::engine`]
//! (threads).

/// Default of [`EngineConfig::query_batch_tokens`].
pub const DEFAULT_QUERY_BATCH_TOKENS: usize = 64;

/// Tuning knobs of an engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Maximum texts waiting in the queue; beyond it `try_submit` answers `Overloaded`.
    /// A single request larger than this is still admitted when the queue is empty.
    pub queue_capacity: usize,
    /// Maximum padded tokens (`texts × longest`) in one forward pass.
    pub max_batch_tokens: usize,
    /// Maximum texts in one forward pass.
    pub max_batch_seqs: usize,
    /// How many queued texts one scheduling round sorts together (the bucketing window).
    pub window_seqs: usize,
    /// Requests whose texts total at most this many bytes are tokenized on the caller's thread;
    /// larger ones go to the tokio blocking pool.
    pub inline_tokenize_bytes: usize,
    /// Most tokens of bulk work (index catch-up, ingest) taken in one round of the bulk thread
    /// (at least one text is always taken).
    pub bulk_window_tokens: usize,
    /// Threads of the bulk thread's own rayon pool (0: the machine's cores); one fewer while
    /// foreground requests come in (see `BulkPools`).
    pub bulk_threads: usize,
    /// Most padded tokens in one interactive batch while queries are arriving (a query came in
    /// within [`super::queue::QUERY_RECENT`]): the interactive thread looks for queued queries
    /// between batches, so a query waits for at most one batch of this size. Without recent
    /// queries batches take [`Self::max_batch_tokens`].
    pub query_batch_tokens: usize,
    /// How models loaded with this configuration pick their precision (F32 by default).
    pub precision: super::precision::PrecisionPolicy,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            queue_capacity: 4096,
            max_batch_tokens: 8192,
            max_batch_seqs: 64,
            window_seqs: 256,
            inline_tokenize_bytes: 4096,
            bulk_window_tokens: 2048,
            bulk_threads: 0,
            query_batch_tokens: DEFAULT_QUERY_BATCH_TOKENS,
            precision: Default::default(),
        }
    }
}
