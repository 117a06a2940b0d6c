//! The queue between callers and the model threads: per-request reply slots, the two lanes
//! (interactive, bulk) and how a model thread takes its next window of work from its lane and
//! cuts it into batches. [`super::engine`] owns the threads and the callers' side.

use super::admission::SMALL_REQUEST_TEXTS;
use super::config::EngineConfig;
use super::EncoderError;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How recent a query must be for interactive batches to stay small (see
/// [`Shared::queries_recent`]). Small batches cost batch work throughput: measured with
/// `scripts/bench-embed.sh --precisions int8 --no-reference` (2026-12-07), batch rounds
/// starting within 2 s of a run of single queries ran at 1,503–1,547 (as sent) and
/// 1,714–1,802 (sorted) strings/s against 1,853 / 1,986 for the clean first round; so the
/// window is short: a stream of 4 or more queries a second keeps batches small, a burst of
/// queries does not slow the batches after it.
pub const QUERY_RECENT: Duration = Duration::from_millis(250);

pub(super) type EmbedResult = Result<Vec<Vec<f32>>, EncoderError>;

pub(super) enum ReplyTx {
    Async(oneshot::Sender<EmbedResult>),
    Blocking(std::sync::mpsc::SyncSender<EmbedResult>),
}

pub(super) struct ReplyState {
    pub(super) out: Vec<Vec<f32>>,
    pub(super) remaining: usize,
    pub(super) tx: Option<ReplyTx>,
}

/// Where one request's vectors are gathered; shared by its queued texts.
pub(super) struct Reply(pub(super) Mutex<ReplyState>);

impl Reply {
    pub(super) fn cancelled(&self) -> bool {
        match &self.0.lock().tx {
            None => true,
            Some(ReplyTx::Async(tx)) => tx.is_closed(),
            Some(ReplyTx::Blocking(_)) => false,
        }
    }

    pub(super) fn deliver(&self, idx: usize, v: Vec<f32>) {
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

    /// The caller gave up (cancelled): texts not yet taken are dropped by the model thread.
    pub(super) fn abandon(&self) {
        self.0.lock().tx = None;
    }

    pub(super) fn deliver_empty(&self) {
        if let Some(tx) = self.0.lock().tx.take() {
            send(tx, Ok(Vec::new()));
        }
    }

    pub(super) fn fail(&self, message: &str) {
        if let Some(tx) = self.0.lock().tx.take() {
            send(tx, Err(EncoderError::Inference(message.to_string())));
        }
    }
}

pub(super) fn send(tx: ReplyTx, r: EmbedResult) {
    // The caller may have gone away; nothing to do then.
    match tx {
        ReplyTx::Async(tx) => drop(tx.send(r)),
        ReplyTx::Blocking(tx) => drop(tx.send(r)),
    }
}

/// A queued request: its texts (sorted by length) not yet taken by the model thread.
pub(super) struct Pending {
    pub(super) items: VecDeque<(usize, Vec<u32>)>,
    pub(super) reply: Arc<Reply>,
    /// When it was queued; taken when the model thread first takes texts of it.
    pub(super) queued_at: Option<Instant>,
}

impl Pending {
    /// A query rather than a batch: at most [`SMALL_REQUEST_TEXTS`] texts left.
    pub(super) fn is_small(&self) -> bool {
        self.items.len() <= SMALL_REQUEST_TEXTS
    }
}

/// One priority class's queue and its counts. In the interactive lane small requests (queries)
/// are queued before batches ([`super::Engine`]'s enqueue) and a window that starts with one
/// holds only queries, so a query waits for at most the window already running, never for a
/// batch queued before it.
#[derive(Default)]
pub(super) struct Lane {
    pub(super) requests: VecDeque<Pending>,
    pub(super) texts: usize,
    pub(super) tokens: usize,
}

/// One text on its way through the model thread.
pub(super) struct Work {
    pub(super) ids: Vec<u32>,
    pub(super) idx: usize,
    pub(super) reply: Arc<Reply>,
    /// On the first text taken of a request: how long the request waited in the queue.
    pub(super) waited: Option<std::time::Duration>,
}

pub(super) struct QueueState {
    /// Queries and other requests someone is waiting on.
    pub(super) interactive: Lane,
    /// Catch-up, ingest and other background embedding.
    pub(super) bulk: Lane,
    /// The interactive thread is running a window (set when it takes one, cleared when done).
    pub(super) interactive_active: bool,
    pub(super) shutdown: bool,
}

impl QueueState {
    pub(super) fn lane(&mut self, bulk: bool) -> &mut Lane {
        if bulk {
            &mut self.bulk
        } else {
            &mut self.interactive
        }
    }

    pub(super) fn texts(&self) -> usize {
        self.interactive.texts + self.bulk.texts
    }
}

pub(super) struct Shared {
    pub(super) state: Mutex<QueueState>,
    pub(super) work_ready: Condvar,
    pub(super) space_ready: Condvar,
    /// Notified when the interactive thread has nothing queued or running.
    pub(super) interactive_idle: Condvar,
    pub(super) config: EngineConfig,
    pub(super) queued_texts: AtomicUsize,
    pub(super) ns_per_token: AtomicU64,
    pub(super) stats: [AtomicU64; 5],
    /// When this engine was made: the origin of [`Self::last_query_ns`].
    epoch: Instant,
    /// When the last query (small interactive request) was queued, in ns since `epoch`
    /// (0: never).
    last_query_ns: AtomicU64,
}

impl Shared {
    pub(super) fn new(config: EngineConfig) -> Self {
        Shared {
            state: Mutex::new(QueueState {
                interactive: Lane::default(),
                bulk: Lane::default(),
                interactive_active: false,
                shutdown: false,
            }),
            work_ready: Condvar::new(),
            space_ready: Condvar::new(),
            interactive_idle: Condvar::new(),
            config,
            queued_texts: AtomicUsize::new(0),
            ns_per_token: AtomicU64::new(0),
            stats: Default::default(),
            epoch: Instant::now(),
            last_query_ns: AtomicU64::new(0),
        }
    }

    /// A query was queued (see [`QUERY_RECENT`]).
    pub(super) fn note_query(&self) {
        let now = self.epoch.elapsed().as_nanos().max(1) as u64;
        self.last_query_ns.store(now, Ordering::Relaxed);
    }

    /// Whether a query was queued within [`QUERY_RECENT`]: then interactive batches are cut to
    /// [`EngineConfig::query_batch_tokens`] so the next query does not wait for a large one.
    pub(super) fn queries_recent(&self) -> bool {
        let last = self.last_query_ns.load(Ordering::Relaxed);
        last != 0 && self.epoch.elapsed().as_nanos() as u64 <= last + QUERY_RECENT.as_nanos() as u64
    }

    /// A model thread finished its window; the interactive one may now be idle.
    pub(super) fn window_done(&self, bulk: bool) {
        if bulk {
            return;
        }
        let mut st = self.state.lock();
        st.interactive_active = false;
        if st.interactive.requests.is_empty() {
            self.interactive_idle.notify_all();
        }
    }

    /// Bulk work gives way: wait while interactive texts are queued or running, at most
    /// `longest` (so a steady stream of queries slows a catch-up but never stops it).
    pub(super) fn yield_to_interactive(&self, longest: Duration) {
        let deadline = Instant::now() + longest;
        let mut st = self.state.lock();
        while (st.interactive_active || !st.interactive.requests.is_empty()) && !st.shutdown {
            if self
                .interactive_idle
                .wait_until(&mut st, deadline)
                .timed_out()
            {
                break;
            }
        }
    }
}

/// Takes the next window of one lane's work, blocking until there is some; `None` on shutdown.
/// A bulk round stays under the bulk token budget.
pub(super) fn next_window(sh: &Shared, bulk: bool) -> Option<Vec<Work>> {
    let mut st = sh.state.lock();
    while st.lane(bulk).requests.is_empty() {
        if st.shutdown {
            return None;
        }
        sh.work_ready.wait(&mut st);
    }
    let queries_only = !bulk
        && st
            .interactive
            .requests
            .front()
            .is_some_and(Pending::is_small);
    let window = take_window(sh, &mut st, bulk, queries_only);
    if !bulk {
        st.interactive_active = true;
    }
    drop(st);
    sh.space_ready.notify_all();
    Some(window)
}

/// The queries (small interactive requests) queued right now, as a window of their own; `None`
/// when there are none. The interactive thread calls this between the batches of a window, so
/// a query waits for at most one batch, not for the rest of the window.
pub(super) fn take_queries(sh: &Shared) -> Option<Vec<Work>> {
    let mut st = sh.state.lock();
    if !st
        .interactive
        .requests
        .front()
        .is_some_and(Pending::is_small)
    {
        return None;
    }
    let window = take_window(sh, &mut st, false, true);
    drop(st);
    sh.space_ready.notify_all();
    Some(window)
}

/// Takes one window from a lane (the state is locked by the caller): round-robin over its
/// requests, at most `window_seqs` texts, bulk rounds under the bulk token budget, and with
/// `queries_only` only the small requests at the front.
fn take_window(sh: &Shared, st: &mut QueueState, bulk: bool, queries_only: bool) -> Vec<Work> {
    let cfg = &sh.config;
    let quantum = cfg.max_batch_seqs.max(1);
    let limit = cfg.window_seqs.max(1);
    let token_limit = if bulk {
        cfg.bulk_window_tokens.max(1)
    } else {
        usize::MAX
    };
    let lane = st.lane(bulk);
    let mut window = Vec::new();
    let mut taken_tokens = 0;
    // Round-robin: a huge request cannot starve another one queued behind it.
    'fill: while window.len() < limit && !lane.requests.is_empty() {
        let rounds = lane.requests.len();
        for _ in 0..rounds {
            if queries_only && !lane.requests.front().is_some_and(Pending::is_small) {
                break 'fill;
            }
            let Some(mut req) = lane.requests.pop_front() else {
                break;
            };
            let take = quantum.min(limit - window.len()).min(req.items.len());
            let mut full = false;
            for _ in 0..take {
                let next_len = req.items.front().map_or(0, |(_, ids)| ids.len());
                if !window.is_empty() && taken_tokens + next_len > token_limit {
                    full = true;
                    break;
                }
                let Some((idx, ids)) = req.items.pop_front() else {
                    break;
                };
                taken_tokens += ids.len();
                window.push(Work {
                    ids,
                    idx,
                    reply: Arc::clone(&req.reply),
                    waited: req.queued_at.take().map(|t| t.elapsed()),
                });
            }
            if !req.items.is_empty() {
                if full {
                    // keep its turn: it is first again next round
                    lane.requests.push_front(req);
                    break 'fill;
                }
                lane.requests.push_back(req);
            }
            if window.len() >= limit {
                break;
            }
        }
    }
    lane.texts -= window.len();
    lane.tokens -= taken_tokens;
    sh.queued_texts.store(st.texts(), Ordering::Relaxed);
    window
}

/// Splits a length-sorted window into batches under the padded-token and size budgets.
pub(super) fn cut_batches(
    window: &[Work],
    max_tokens: usize,
    max_seqs: usize,
) -> Vec<std::ops::Range<usize>> {
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

    fn pending(n: usize, len: usize) -> Pending {
        let reply = Arc::new(Reply(Mutex::new(ReplyState {
            out: vec![Vec::new(); n],
            remaining: n,
            tx: None,
        })));
        Pending {
            items: (0..n).map(|i| (i, vec![1; len])).collect(),
            reply,
            queued_at: None,
        }
    }

    fn shared(config: EngineConfig) -> Shared {
        Shared::new(config)
    }

    fn push(sh: &Shared, bulk: bool, p: Pending) {
        let mut st = sh.state.lock();
        let lane = st.lane(bulk);
        lane.texts += p.items.len();
        lane.tokens += p.items.iter().map(|(_, ids)| ids.len()).sum::<usize>();
        lane.requests.push_back(p);
    }

    #[test]
    fn lanes_are_taken_apart_and_bulk_rounds_are_bounded() {
        let sh = shared(EngineConfig {
            bulk_window_tokens: 1000,
            ..EngineConfig::default()
        });
        // a catch-up's 500 texts of 100 tokens queued first, then one query
        push(&sh, true, pending(500, 100));
        push(&sh, false, pending(1, 7));
        let w = next_window(&sh, false).unwrap();
        assert_eq!(w.len(), 1, "the query's window holds only the query");
        assert_eq!(w[0].ids.len(), 7);
        // bulk rounds stay under the token budget
        let w = next_window(&sh, true).unwrap();
        assert_eq!(w.len(), 10);
        push(&sh, false, pending(2, 5));
        let w = next_window(&sh, false).unwrap();
        assert_eq!(w.len(), 2);
        assert!(w.iter().all(|x| x.ids.len() == 5));
        assert_eq!(sh.state.lock().bulk.texts, 490);
        // one text longer than the budget still goes, alone
        let sh = shared(EngineConfig {
            bulk_window_tokens: 10,
            ..EngineConfig::default()
        });
        push(&sh, true, pending(3, 50));
        assert_eq!(next_window(&sh, true).unwrap().len(), 1);
        assert_eq!(sh.state.lock().bulk.texts, 2);
        assert_eq!(sh.queued_texts.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn queries_get_a_window_of_their_own_before_batches() {
        let sh = shared(EngineConfig::default());
        push(&sh, false, pending(32, 10));
        push(&sh, false, pending(32, 10));
        // what enqueue does with a query: before the batches, after earlier queries
        for n in [1, 2] {
            let mut st = sh.state.lock();
            let at = st
                .interactive
                .requests
                .iter()
                .take_while(|p| p.is_small())
                .count();
            let p = pending(n, 5);
            st.interactive.texts += n;
            st.interactive.tokens += 5 * n;
            st.interactive.requests.insert(at, p);
        }
        let w = next_window(&sh, false).unwrap();
        assert_eq!(w.len(), 3, "both queries, no batch text");
        assert!(w.iter().all(|x| x.ids.len() == 5));
        sh.window_done(false);
        let w = next_window(&sh, false).unwrap();
        assert_eq!(w.len(), 64, "then the batches together");
    }

    #[test]
    fn queries_queued_during_a_window_are_taken_between_its_batches() {
        let sh = shared(EngineConfig::default());
        assert!(!sh.queries_recent(), "no query yet: batches stay large");
        push(&sh, false, pending(32, 10));
        push(&sh, false, pending(32, 10));
        let w = next_window(&sh, false).unwrap();
        assert_eq!(w.len(), 64);
        assert!(take_queries(&sh).is_none(), "nothing queued");
        // a query arrives while the window runs (enqueue puts it first and notes it)
        sh.note_query();
        {
            let mut st = sh.state.lock();
            st.interactive.texts += 1;
            st.interactive.tokens += 4;
            st.interactive.requests.push_front(pending(1, 4));
        }
        push(&sh, false, pending(32, 10));
        assert!(sh.queries_recent());
        let q = take_queries(&sh).unwrap();
        assert_eq!(q.len(), 1, "only the query, not the batch behind it");
        assert_eq!(q[0].ids.len(), 4);
        assert!(take_queries(&sh).is_none());
        assert_eq!(sh.state.lock().interactive.texts, 32);
        assert_eq!(sh.queued_texts.load(Ordering::Relaxed), 32);
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
