//! The inference engine: a bounded queue in front of one dedicated model thread.
//!
//! ```text
//!  caller (tokio task / ingest thread)          model thread (one per model)
//!  ─────────────────────────────────            ─────────────────────────────────────────
//!  tokenize (inline if small, else the           wait for work
//!  blocking pool) → sort the request's           take a window: round-robin over queued
//!  texts by length → try_submit:                 requests, ≤ max_batch_seqs texts from each
//!    queue full? → Overloaded (429)              per turn, ≤ window_seqs texts in all
//!    else push, notify ───────────────────────►  drop texts whose caller went away
//!  await the oneshot ◄─────────────────────────  sort the window by token length, cut into
//!                                                batches under max_batch_tokens padded tokens
//!                                                and max_batch_seqs texts, run candle, pool,
//!                                                scatter vectors into each request's slots;
//!                                                a request's last vector sends its reply
//! ```
//!
//! There is no batching delay: whatever queued while the model was busy forms the next window,
//! so a lone query runs at once (the lean path) and load turns into larger, length-bucketed
//! batches by itself.
//!
//! Two priorities, two model threads sharing the weights: interactive requests (the async
//! [`EngineHandle::try_submit`] family: queries, `/v1/embed`, note coding) go to the model
//! thread; bulk work (the blocking calls: index catch-up, ingest, eval) goes to a separate bulk
//! thread with its own rayon pool (so a query's parallel work never queues behind a catch-up's
//! in a shared pool). Before each batch the bulk thread gives way while interactive texts are
//! queued or running (at most [`BULK_YIELD`] at a time, so a stream of queries slows a
//! catch-up but never stops it), and while foreground requests come in it runs on a core fewer
//! (`BulkPools`). It is not niced: what nice does depends on the kernel's autogroup/cgroup
//! setup, and without autogroups other processes could starve a catch-up. Queue capacity (the 429
//! bound) counts interactive texts only; bulk callers wait for room among themselves. Bulk
//! rounds take at most [`EngineConfig::bulk_window_tokens`] tokens, and a bulk caller waiting
//! with [`EngineHandle::embed_blocking_until`] gives up within [`CANCEL_POLL`] of cancellation.

use super::admission::SMALL_REQUEST_TEXTS;
use super::bert::Encoder;
pub use super::config::EngineConfig;
use super::manifest::ModelManifest;
use super::queue::{
    cut_batches, next_window, take_queries, EmbedResult, Pending, Reply, ReplyState, ReplyTx,
    Shared, Work,
};
pub use super::stats::EngineStats;
use super::tokenize::TextTokenizer;
use super::EncoderError;
use crate::util::progress::Progress;
use parking_lot::Mutex;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How often a cancellable blocking caller checks its cancellation while it waits.
pub const CANCEL_POLL: Duration = Duration::from_millis(25);

/// Longest a bulk batch waits for the interactive thread to go idle before it runs anyway.
pub const BULK_YIELD: Duration = Duration::from_millis(100);

/// Receives the vectors of a submitted request.
pub type EmbedReceiver = oneshot::Receiver<EmbedResult>;

struct Inner {
    shared: Arc<Shared>,
    tokenizer: Arc<TextTokenizer>,
    manifest: ModelManifest,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.shared.state.lock().shutdown = true;
        self.shared.work_ready.notify_all();
        self.shared.space_ready.notify_all();
        self.shared.interactive_idle.notify_all();
    }
}

/// A cheap, cloneable handle to a running engine; the model thread stops when the last handle
/// is dropped.
#[derive(Clone)]
pub struct EngineHandle {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle")
            .field("model", &self.inner.manifest.name)
            .field("queue_depth", &self.queue_depth())
            .finish()
    }
}

impl EngineHandle {
    /// Starts the model thread for `encoder`.
    pub fn spawn(encoder: Encoder, config: EngineConfig) -> Result<Self, EncoderError> {
        Self::spawn_gated(encoder, config, None)
    }

    /// Like [`Self::spawn`], but the model thread waits for `gate` to receive (or close) before
    /// taking any work, so tests can fill the queue deterministically.
    pub(crate) fn spawn_gated(
        encoder: Encoder,
        config: EngineConfig,
        gate: Option<std::sync::mpsc::Receiver<()>>,
    ) -> Result<Self, EncoderError> {
        let shared = Arc::new(Shared::new(config));
        let manifest = encoder.manifest().clone();
        let tokenizer = Arc::new(encoder.tokenizer().clone());
        let encoder = Arc::new(encoder);
        let thread_shared = Arc::clone(&shared);
        let interactive = Arc::clone(&encoder);
        std::thread::Builder::new()
            .name(format!("encoder-{}", manifest.name))
            .spawn(move || {
                if let Some(gate) = gate {
                    let _ = gate.recv();
                }
                model_loop(&interactive, &thread_shared, None)
            })
            .map_err(|e| EncoderError::Inference(format!("cannot start model thread: {e}")))?;
        let bulk_shared = Arc::clone(&shared);
        let threads = shared.config.bulk_threads;
        std::thread::Builder::new()
            .name(format!("encoder-bulk-{}", manifest.name))
            .spawn(move || {
                let pools = BulkPools::new(threads);
                model_loop(&encoder, &bulk_shared, Some(&pools))
            })
            .map_err(|e| EncoderError::Inference(format!("cannot start bulk thread: {e}")))?;
        Ok(EngineHandle {
            inner: Arc::new(Inner {
                shared,
                tokenizer,
                manifest,
            }),
        })
    }

    /// The model's manifest.
    pub fn manifest(&self) -> &ModelManifest {
        &self.inner.manifest
    }

    /// Embedding dimension.
    pub fn dim(&self) -> usize {
        self.inner.manifest.dim
    }

    /// The model's tokenizer (for callers that tokenize themselves before `try_submit`).
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.inner.tokenizer
    }

    /// Texts waiting in the queue (not yet taken by the model thread).
    pub fn queue_depth(&self) -> usize {
        self.inner.shared.queued_texts.load(Ordering::Relaxed)
    }

    /// Work counters since start.
    pub fn stats(&self) -> EngineStats {
        let s = &self.inner.shared.stats;
        let g = |i: usize| s[i].load(Ordering::Relaxed);
        EngineStats {
            batches: g(0),
            texts: g(1),
            tokens: g(2),
            padded_tokens: g(3),
            busy_ns: g(4),
        }
    }

    /// Embeds `texts`, returning one vector per text in request order. Small requests are
    /// tokenized on the calling task, larger ones on the blocking pool; fails at once with
    /// [`EncoderError::Overloaded`] when the queue is full.
    pub async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, EncoderError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        self.check_room(texts.len())?;
        let bytes: usize = texts.iter().map(String::len).sum();
        let ids = if bytes <= self.inner.shared.config.inline_tokenize_bytes {
            self.inner.tokenizer.encode_many(&texts)?
        } else {
            let tok = Arc::clone(&self.inner.tokenizer);
            tokio::task::spawn_blocking(move || tok.encode_many(&texts))
                .await
                .map_err(|e| EncoderError::Inference(format!("tokenizer task failed: {e}")))??
        };
        let rx = self.try_submit(ids)?;
        rx.await.map_err(|_| stopped())?
    }

    /// Embeds one text (the lean query path: inline tokenization, one queue entry).
    pub async fn embed_one(&self, text: &str) -> Result<Vec<f32>, EncoderError> {
        self.check_room(1)?;
        let ids = self.inner.tokenizer.encode(text)?;
        let rx = self.try_submit(vec![ids])?;
        let mut v = rx.await.map_err(|_| stopped())??;
        v.pop().ok_or_else(stopped)
    }

    /// Queues already-tokenized texts (as [`TextTokenizer::encode`] makes them) and returns the
    /// receiver of their vectors, or [`EncoderError::Overloaded`] when the queue is full.
    pub fn try_submit(&self, token_ids: Vec<Vec<u32>>) -> Result<EmbedReceiver, EncoderError> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(token_ids, ReplyTx::Async(tx), false)?;
        Ok(rx)
    }

    /// Embeds `texts` from synchronous code (CLI, ingest), waiting for queue room instead of
    /// failing. Tokenizes on the calling thread (in parallel for large inputs); the texts are
    /// length-sorted before queueing, so large batches are bucketed as a whole. Must not be
    /// called from inside an async task (use [`Self::embed`] or `spawn_blocking`).
    pub fn embed_blocking<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
    ) -> Result<Vec<Vec<f32>>, EncoderError> {
        self.embed_blocking_until(texts, None)
    }

    /// [`Self::embed_blocking`] that gives up with [`EncoderError::Cancelled`] within
    /// [`CANCEL_POLL`] of `progress` being cancelled; the model thread then drops the texts it
    /// has not taken yet. Background catch-ups use it, so a shutdown never waits for a whole
    /// submission (at most for the forward pass running on the bulk thread, which the caller
    /// does not wait for either).
    pub fn embed_blocking_until<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        progress: Option<&Progress>,
    ) -> Result<Vec<Vec<f32>>, EncoderError> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let ids = self.inner.tokenizer.encode_many(texts)?;
        self.embed_ids_blocking_until(ids, progress)
    }

    /// Embeds already-tokenized texts from synchronous code, waiting for queue room (like
    /// [`Self::embed_blocking`]); for callers that build their own token sequences (note windows).
    pub fn embed_ids_blocking(
        &self,
        token_ids: Vec<Vec<u32>>,
    ) -> Result<Vec<Vec<f32>>, EncoderError> {
        self.embed_ids_blocking_until(token_ids, None)
    }

    /// [`Self::embed_ids_blocking`], cancellable like [`Self::embed_blocking_until`].
    pub fn embed_ids_blocking_until(
        &self,
        token_ids: Vec<Vec<u32>>,
        progress: Option<&Progress>,
    ) -> Result<Vec<Vec<f32>>, EncoderError> {
        if token_ids.is_empty() {
            return Ok(Vec::new());
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let reply = self.enqueue(token_ids, ReplyTx::Blocking(tx), true)?;
        let Some(progress) = progress else {
            return rx.recv().map_err(|_| stopped())?;
        };
        loop {
            if progress.is_cancelled() {
                reply.abandon();
                return Err(EncoderError::Cancelled);
            }
            match rx.recv_timeout(CANCEL_POLL) {
                Ok(r) => return r,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return Err(stopped()),
            }
        }
    }

    fn check_room(&self, n: usize) -> Result<(), EncoderError> {
        let sh = &self.inner.shared;
        let st = sh.state.lock();
        let queued = st.interactive.texts;
        if queued > 0 && queued + n > sh.config.queue_capacity {
            return Err(overloaded(sh, st.interactive.tokens));
        }
        Ok(())
    }

    fn enqueue(
        &self,
        token_ids: Vec<Vec<u32>>,
        tx: ReplyTx,
        wait_for_room: bool,
    ) -> Result<Arc<Reply>, EncoderError> {
        let n = token_ids.len();
        if token_ids.iter().any(|t| t.is_empty()) {
            return Err(EncoderError::InvalidInput("empty token sequence".into()));
        }
        let tokens: usize = token_ids.iter().map(Vec::len).sum();
        let mut items: Vec<(usize, Vec<u32>)> = token_ids.into_iter().enumerate().collect();
        items.sort_by_key(|(_, ids)| ids.len());
        let reply = Arc::new(Reply(Mutex::new(ReplyState {
            out: vec![Vec::new(); n],
            remaining: n,
            tx: Some(tx),
        })));
        if n == 0 {
            reply.deliver_empty();
            return Ok(reply);
        }
        let sh = &self.inner.shared;
        let mut st = sh.state.lock();
        // blocking callers are the bulk lane (see module docs)
        let bulk = wait_for_room;
        loop {
            if st.shutdown {
                return Err(stopped());
            }
            let lane = st.lane(bulk);
            if lane.texts == 0 || lane.texts + n <= sh.config.queue_capacity {
                break;
            }
            if !wait_for_room {
                return Err(overloaded(sh, lane.tokens));
            }
            sh.space_ready.wait(&mut st);
        }
        let lane = st.lane(bulk);
        let pending = Pending {
            items: items.into(),
            reply: Arc::clone(&reply),
            queued_at: Some(Instant::now()),
        };
        if bulk || n > SMALL_REQUEST_TEXTS {
            lane.requests.push_back(pending);
        } else {
            // a query goes before the batches, after the queries already waiting
            sh.note_query();
            let at = lane.requests.iter().take_while(|p| p.is_small()).count();
            lane.requests.insert(at, pending);
        }
        lane.texts += n;
        lane.tokens += tokens;
        sh.queued_texts.store(st.texts(), Ordering::Relaxed);
        drop(st);
        // both model threads wait on this condvar; only the lane's own one takes the work
        sh.work_ready.notify_all();
        Ok(reply)
    }
}

fn stopped() -> EncoderError {
    EncoderError::Inference("the encoder engine has stopped".into())
}

/// `Overloaded` with a back-off of about the time the queued tokens take to process.
fn overloaded(sh: &Shared, queued_tokens: usize) -> EncoderError {
    let ns = sh.ns_per_token.load(Ordering::Relaxed);
    let ms = if ns == 0 {
        100
    } else {
        (queued_tokens as u64).saturating_mul(ns) / 1_000_000
    };
    EncoderError::Overloaded {
        retry_after_ms: ms.clamp(10, 30_000),
    }
}

/// The bulk thread's rayon pools: one with all its threads, used while no foreground request
/// came in for [`FOREGROUND_WINDOW`], and one with a thread fewer, used while they do — so a
/// request always finds a core the catch-up does not use, without lowering the catch-up's OS
/// priority (which other processes could then starve it with).
struct BulkPools {
    full: Option<rayon::ThreadPool>,
    shared: Option<rayon::ThreadPool>,
}

/// How recent a foreground request must be for bulk work to leave a core free.
pub const FOREGROUND_WINDOW: Duration = Duration::from_secs(2);

impl BulkPools {
    fn new(threads: usize) -> Self {
        let full = if threads == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            threads
        };
        let pool = |n: usize, name: &'static str| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .thread_name(move |i| format!("encoder-bulk-{name}-{i}"))
                .build()
                .map_err(|e| tracing::warn!(error = %e, "no bulk thread pool; bulk work uses the global one"))
                .ok()
        };
        BulkPools {
            full: pool(full, "all"),
            shared: pool(full.saturating_sub(1).max(1), "shared"),
        }
    }

    /// Run `f` on the pool that fits the current foreground activity.
    fn run<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let pool = if crate::util::activity::foreground_within(FOREGROUND_WINDOW) {
            &self.shared
        } else {
            &self.full
        };
        match pool {
            Some(p) => p.install(f),
            None => f(),
        }
    }
}

/// A model thread's loop: the interactive one (`pools` None: the global rayon pool) or the
/// bulk one.
///
/// While queries are arriving the interactive thread cuts its windows into batches of at most
/// [`EngineConfig::query_batch_tokens`] and, before each batch, runs the queries queued
/// meanwhile ([`take_queries`]): a query waits for one small batch, not for a window of
/// someone's `/v1/embed` batches. Without recent queries batches stay as large as the budgets
/// allow (throughput).
fn model_loop(encoder: &Encoder, sh: &Shared, pools: Option<&BulkPools>) {
    let bulk = pools.is_some();
    let cfg = &sh.config;
    while let Some(window) = next_window(sh, bulk) {
        let max_tokens = if !bulk && cfg.query_batch_tokens > 0 && sh.queries_recent() {
            cfg.query_batch_tokens.min(cfg.max_batch_tokens)
        } else {
            cfg.max_batch_tokens
        };
        let window = live_sorted(window);
        for range in cut_batches(&window, max_tokens, cfg.max_batch_seqs) {
            if bulk {
                sh.yield_to_interactive(BULK_YIELD);
                if window[range.clone()].iter().all(|w| w.reply.cancelled()) {
                    continue;
                }
            } else {
                while let Some(queries) = take_queries(sh) {
                    let queries = live_sorted(queries);
                    for r in cut_batches(&queries, cfg.max_batch_tokens, cfg.max_batch_seqs) {
                        run_batch(encoder, sh, &queries[r], None);
                    }
                }
            }
            run_batch(encoder, sh, &window[range], pools);
        }
        sh.window_done(bulk);
    }
}

/// A window without the texts whose callers went away, sorted by token length.
fn live_sorted(mut window: Vec<Work>) -> Vec<Work> {
    window.retain(|w| !w.reply.cancelled());
    window.sort_by_key(|w| w.ids.len());
    window
}

/// One forward pass over a batch: counters, stats, and each vector to its request's reply.
fn run_batch(encoder: &Encoder, sh: &Shared, batch: &[Work], pools: Option<&BulkPools>) {
    let bulk = pools.is_some();
    let ids: Vec<&[u32]> = batch.iter().map(|w| w.ids.as_slice()).collect();
    let started = Instant::now();
    let forward = || {
        catch_unwind(AssertUnwindSafe(|| encoder.embed_ids(&ids)))
            .unwrap_or_else(|_| Err(EncoderError::Inference("model thread panicked".into())))
    };
    let result = match pools {
        Some(p) => p.run(forward),
        None => forward(),
    };
    let elapsed = started.elapsed().as_nanos() as u64;
    let longest = ids.last().map_or(0, |s| s.len());
    let padded = (longest * ids.len()) as u64;
    let real: u64 = ids.iter().map(|s| s.len() as u64).sum();
    // Counters first, so whoever sees a reply also sees its batch counted.
    let s = &sh.stats;
    s[0].fetch_add(1, Ordering::Relaxed);
    s[1].fetch_add(ids.len() as u64, Ordering::Relaxed);
    s[2].fetch_add(real, Ordering::Relaxed);
    s[3].fetch_add(padded, Ordering::Relaxed);
    s[4].fetch_add(elapsed, Ordering::Relaxed);
    let model = &encoder.manifest().name;
    super::stats::record_batch(model, ids.len(), real, Duration::from_nanos(elapsed));
    // queue waits and the back-off estimate are about interactive requests only
    if !bulk {
        for d in batch.iter().filter_map(|w| w.waited) {
            super::stats::record_queue_wait(model, d);
        }
    }
    if let Some(now) = elapsed.checked_div(padded).filter(|_| !bulk) {
        let old = sh.ns_per_token.load(Ordering::Relaxed);
        let ewma = if old == 0 { now } else { (old * 4 + now) / 5 };
        sh.ns_per_token.store(ewma, Ordering::Relaxed);
    }
    match result {
        Ok(vectors) => {
            for (w, v) in batch.iter().zip(vectors) {
                w.reply.deliver(w.idx, v);
            }
        }
        Err(e) => {
            tracing::error!(model = %encoder.manifest().name, error = %e, "batch failed");
            let msg = e.to_string();
            batch.iter().for_each(|w| w.reply.fail(&msg));
        }
    }
}
