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
//! batches by itself. Capacity is counted in texts. [`EngineHandle::try_submit`] refuses at once
//! when full (HTTP 429, with a back-off estimated from the measured time per token), while
//! [`EngineHandle::embed_blocking`] (CLI, ingest) waits for room instead.

use super::bert::Encoder;
use super::manifest::ModelManifest;
pub use super::stats::EngineStats;
use super::tokenize::TextTokenizer;
use super::EncoderError;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

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
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            queue_capacity: 4096,
            max_batch_tokens: 8192,
            max_batch_seqs: 64,
            window_seqs: 256,
            inline_tokenize_bytes: 4096,
        }
    }
}

type EmbedResult = Result<Vec<Vec<f32>>, EncoderError>;

/// Receives the vectors of a submitted request.
pub type EmbedReceiver = oneshot::Receiver<EmbedResult>;

enum ReplyTx {
    Async(oneshot::Sender<EmbedResult>),
    Blocking(std::sync::mpsc::SyncSender<EmbedResult>),
}

struct ReplyState {
    out: Vec<Vec<f32>>,
    remaining: usize,
    tx: Option<ReplyTx>,
}

/// Where one request's vectors are gathered; shared by its queued texts.
struct Reply(Mutex<ReplyState>);

impl Reply {
    fn cancelled(&self) -> bool {
        match &self.0.lock().tx {
            None => true,
            Some(ReplyTx::Async(tx)) => tx.is_closed(),
            Some(ReplyTx::Blocking(_)) => false,
        }
    }

    fn deliver(&self, idx: usize, v: Vec<f32>) {
        let mut st = self.0.lock();
        if st.tx.is_none() {
            return;
        }
        st.out[idx] = v;
        st.remaining -= 1;
        if st.remaining == 0 {
            let out = std::mem::take(&mut st.out);
            if let Some(tx) = st.tx.take() {
                send(tx, Ok(out));
            }
        }
    }

    fn deliver_empty(&self) {
        if let Some(tx) = self.0.lock().tx.take() {
            send(tx, Ok(Vec::new()));
        }
    }

    fn fail(&self, message: &str) {
        if let Some(tx) = self.0.lock().tx.take() {
            send(tx, Err(EncoderError::Inference(message.to_string())));
        }
    }
}

fn send(tx: ReplyTx, r: EmbedResult) {
    // The caller may have gone away; nothing to do then.
    match tx {
        ReplyTx::Async(tx) => drop(tx.send(r)),
        ReplyTx::Blocking(tx) => drop(tx.send(r)),
    }
}

/// A queued request: its texts (sorted by length) not yet taken by the model thread.
struct Pending {
    items: VecDeque<(usize, Vec<u32>)>,
    reply: Arc<Reply>,
    /// When it was queued; taken when the model thread first takes texts of it.
    queued_at: Option<Instant>,
}

/// One text on its way through the model thread.
struct Work {
    ids: Vec<u32>,
    idx: usize,
    reply: Arc<Reply>,
    /// On the first text taken of a request: how long the request waited in the queue.
    waited: Option<std::time::Duration>,
}

struct QueueState {
    requests: VecDeque<Pending>,
    texts: usize,
    tokens: usize,
    shutdown: bool,
}

struct Shared {
    state: Mutex<QueueState>,
    work_ready: Condvar,
    space_ready: Condvar,
    config: EngineConfig,
    queued_texts: AtomicUsize,
    ns_per_token: AtomicU64,
    stats: [AtomicU64; 5],
}

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
        let shared = Arc::new(Shared {
            state: Mutex::new(QueueState {
                requests: VecDeque::new(),
                texts: 0,
                tokens: 0,
                shutdown: false,
            }),
            work_ready: Condvar::new(),
            space_ready: Condvar::new(),
            config,
            queued_texts: AtomicUsize::new(0),
            ns_per_token: AtomicU64::new(0),
            stats: Default::default(),
        });
        let manifest = encoder.manifest().clone();
        let tokenizer = Arc::new(encoder.tokenizer().clone());
        let thread_shared = Arc::clone(&shared);
        std::thread::Builder::new()
            .name(format!("encoder-{}", manifest.name))
            .spawn(move || {
                if let Some(gate) = gate {
                    let _ = gate.recv();
                }
                model_loop(encoder, thread_shared)
            })
            .map_err(|e| EncoderError::Inference(format!("cannot start model thread: {e}")))?;
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
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let ids = self.inner.tokenizer.encode_many(texts)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.enqueue(ids, ReplyTx::Blocking(tx), true)?;
        rx.recv().map_err(|_| stopped())?
    }

    /// Embeds already-tokenized texts from synchronous code, waiting for queue room (like
    /// [`Self::embed_blocking`]); for callers that build their own token sequences (note windows).
    pub fn embed_ids_blocking(
        &self,
        token_ids: Vec<Vec<u32>>,
    ) -> Result<Vec<Vec<f32>>, EncoderError> {
        if token_ids.is_empty() {
            return Ok(Vec::new());
        }
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.enqueue(token_ids, ReplyTx::Blocking(tx), true)?;
        rx.recv().map_err(|_| stopped())?
    }

    fn check_room(&self, n: usize) -> Result<(), EncoderError> {
        let sh = &self.inner.shared;
        let queued = sh.queued_texts.load(Ordering::Relaxed);
        if queued > 0 && queued + n > sh.config.queue_capacity {
            let tokens = sh.state.lock().tokens;
            return Err(overloaded(sh, tokens));
        }
        Ok(())
    }

    fn enqueue(
        &self,
        token_ids: Vec<Vec<u32>>,
        tx: ReplyTx,
        wait_for_room: bool,
    ) -> Result<(), EncoderError> {
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
            return Ok(());
        }
        let sh = &self.inner.shared;
        let mut st = sh.state.lock();
        loop {
            if st.shutdown {
                return Err(stopped());
            }
            if st.texts == 0 || st.texts + n <= sh.config.queue_capacity {
                break;
            }
            if !wait_for_room {
                return Err(overloaded(sh, st.tokens));
            }
            sh.space_ready.wait(&mut st);
        }
        st.requests.push_back(Pending {
            items: items.into(),
            reply,
            queued_at: Some(Instant::now()),
        });
        st.texts += n;
        st.tokens += tokens;
        sh.queued_texts.store(st.texts, Ordering::Relaxed);
        drop(st);
        sh.work_ready.notify_one();
        Ok(())
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

/// Takes the next window of work, blocking until there is some; `None` on shutdown.
fn next_window(sh: &Shared) -> Option<Vec<Work>> {
    let cfg = &sh.config;
    let mut st = sh.state.lock();
    while st.requests.is_empty() {
        if st.shutdown {
            return None;
        }
        sh.work_ready.wait(&mut st);
    }
    let quantum = cfg.max_batch_seqs.max(1);
    let limit = cfg.window_seqs.max(1);
    let mut window = Vec::new();
    let mut taken_tokens = 0;
    // Round-robin: a huge ingest request cannot starve a query queued behind it.
    while window.len() < limit && !st.requests.is_empty() {
        let rounds = st.requests.len();
        for _ in 0..rounds {
            let Some(mut req) = st.requests.pop_front() else {
                break;
            };
            let take = quantum.min(limit - window.len()).min(req.items.len());
            let mut waited = req.queued_at.take().map(|t| t.elapsed());
            for (idx, ids) in req.items.drain(..take) {
                taken_tokens += ids.len();
                window.push(Work {
                    ids,
                    idx,
                    reply: Arc::clone(&req.reply),
                    waited: waited.take(),
                });
            }
            if !req.items.is_empty() {
                st.requests.push_back(req);
            }
            if window.len() >= limit {
                break;
            }
        }
    }
    st.texts -= window.len();
    st.tokens -= taken_tokens;
    sh.queued_texts.store(st.texts, Ordering::Relaxed);
    drop(st);
    sh.space_ready.notify_all();
    Some(window)
}

/// Splits a length-sorted window into batches under the padded-token and size budgets.
fn cut_batches(window: &[Work], max_tokens: usize, max_seqs: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, w) in window.iter().enumerate() {
        let n = i - start + 1;
        // Sorted ascending, so item i is the longest so far.
        if i > start && (n > max_seqs || n * w.ids.len() > max_tokens) {
            out.push(start..i);
            start = i;
        }
    }
    if start < window.len() {
        out.push(start..window.len());
    }
    out
}

fn model_loop(encoder: Encoder, sh: Arc<Shared>) {
    while let Some(mut window) = next_window(&sh) {
        window.retain(|w| !w.reply.cancelled());
        window.sort_by_key(|w| w.ids.len());
        let cfg = &sh.config;
        for range in cut_batches(&window, cfg.max_batch_tokens, cfg.max_batch_seqs) {
            let batch = &window[range];
            let ids: Vec<&[u32]> = batch.iter().map(|w| w.ids.as_slice()).collect();
            let started = Instant::now();
            let result = catch_unwind(AssertUnwindSafe(|| encoder.embed_ids(&ids)))
                .unwrap_or_else(|_| Err(EncoderError::Inference("model thread panicked".into())));
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
            for d in batch.iter().filter_map(|w| w.waited) {
                super::stats::record_queue_wait(model, d);
            }
            if let Some(now) = elapsed.checked_div(padded) {
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn work(len: usize) -> Work {
        let reply = Arc::new(Reply(Mutex::new(ReplyState {
            out: vec![],
            remaining: 1,
            tx: None,
        })));
        Work {
            ids: vec![1; len],
            idx: 0,
            reply,
            waited: None,
        }
    }

    #[test]
    fn batches_respect_token_and_size_budgets() {
        let lens = [2, 2, 3, 3, 3, 10, 10, 40];
        let window: Vec<Work> = lens.iter().map(|&l| work(l)).collect();
        // budget 20 padded tokens, at most 4 texts
        let b = cut_batches(&window, 20, 4);
        assert_eq!(b, vec![0..4, 4..6, 6..7, 7..8]);
        for r in &b {
            let longest = window[r.end - 1].ids.len();
            assert!(r.len() == 1 || r.len() * longest <= 20);
            assert!(r.len() <= 4);
        }
        assert!(cut_batches(&[], 20, 4).is_empty());
    }
}
