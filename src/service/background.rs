//! Background index work and how it stops: the indexer thread that catches the derived indexes
//! up with the store (at start-up and whenever a write asks for it), the index status that
//! `/ready` reports, and shutdown.
//!
//! ## Who waits for what
//! Requests never run a catch-up. `POST /v1/notes` stores the note (durable), calls
//! [`App::request_catch_up`] (sets a flag, wakes the indexer) and answers 201. The indexer runs
//! one catch-up at a time as an in-memory `catch-up` job (listed by `GET /v1/jobs`) and loops
//! while writes keep asking. The catch-up locks inside [`crate::search::engine::SearchEngine`]
//! and [`crate::notes::Notes`] are taken by background threads only (the indexer, ingest jobs,
//! the CLI); searches read committed index state and take per-batch locks at most.
//!
//! ## Shutdown
//! [`App::shutdown`] marks the app stopping, cancels every running job's [`Progress`] (catch-ups
//! and ingests check it at each batch boundary, save what they did and return) and waits a
//! bounded time for the background threads to finish.

use crate::service::app::App;
use crate::util::progress::Progress;
use serde::Serialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use utoipa::ToSchema;

/// Wait before retrying a failed catch-up.
const RETRY_FAILED_CATCH_UP: Duration = Duration::from_secs(5);

/// Counts a background thread alive until dropped.
pub struct WorkerGuard(Arc<App>);

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        let bg = &self.0.background;
        bg.state.lock().workers -= 1;
        bg.cv.notify_all();
    }
}

/// An index that does not reflect the store yet.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct IndexLag {
    /// `lexical`, `vectors/<model>` (terms) or `notes` (note indexes).
    pub index: String,
    /// Items still to index, when known (notes).
    pub behind: Option<u64>,
}

impl App {
    /// Register a background thread; `None` once shutdown began (then do not start work).
    pub fn worker(self: &Arc<Self>) -> Option<WorkerGuard> {
        let mut st = self.background.state.lock();
        if st.stopping {
            return None;
        }
        st.workers += 1;
        Some(WorkerGuard(self.clone()))
    }

    /// Whether shutdown began.
    pub fn is_stopping(&self) -> bool {
        self.background.state.lock().stopping
    }

    /// Ask the indexer for a catch-up (cheap; returns at once).
    pub fn request_catch_up(&self) {
        self.background.state.lock().wanted = true;
        self.background.cv.notify_all();
    }

    /// Start the indexer thread; it runs a catch-up at once, then one per request.
    pub fn start_indexer(self: &Arc<Self>) {
        let Some(guard) = self.worker() else {
            return;
        };
        self.request_catch_up();
        let spawned = std::thread::Builder::new()
            .name("indexer".into())
            .spawn(move || {
                let app = guard.0.clone();
                let mut first = true;
                let mut failed = false;
                while app.wait_for_catch_up_request(failed.then_some(RETRY_FAILED_CATCH_UP)) {
                    failed = !app.catch_up_once(first);
                    first = false;
                }
                drop(guard);
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot start the indexer thread");
        }
    }

    /// Block until a catch-up is wanted (true) or shutdown began (false); with `retry`, a
    /// catch-up is wanted anyway once that much time has passed (the last one failed, e.g. an
    /// unreachable Postgres vector store: it resumes by itself once the server is back).
    fn wait_for_catch_up_request(&self, retry: Option<Duration>) -> bool {
        let deadline = retry.map(|d| Instant::now() + d);
        let mut st = self.background.state.lock();
        loop {
            if st.stopping {
                return false;
            }
            if st.wanted {
                st.wanted = false;
                return true;
            }
            match deadline {
                Some(d) => {
                    if self.background.cv.wait_until(&mut st, d).timed_out() && !st.stopping {
                        return true;
                    }
                }
                None => self.background.cv.wait(&mut st),
            }
        }
    }

    /// One catch-up as a `catch-up` job, when any index is behind. The `first` (at start-up)
    /// says so in the log even when there is nothing to do. False when it failed.
    fn catch_up_once(&self, first: bool) -> bool {
        if self.index_lag().is_empty() {
            if first {
                tracing::info!(secs = 0.0, "indexes caught up with the store");
            }
            return true;
        }
        let (id, progress) = self.jobs.start_transient("catch-up");
        if self.is_stopping() {
            progress.cancel();
        }
        let t = Instant::now();
        let outcome = self.sync_indexes(Some(&progress));
        let secs = t.elapsed().as_secs_f64();
        let outcome = match outcome {
            _ if progress.is_cancelled() => {
                tracing::info!(secs, "index catch-up interrupted; progress saved");
                Err("interrupted by shutdown; the next start resumes it".to_string())
            }
            Ok(()) => {
                tracing::info!(secs, "indexes caught up with the store");
                Ok(serde_json::json!({ "seconds": secs }))
            }
            Err(e) => {
                tracing::error!(error = %e, "index catch-up failed");
                Err(e.to_string())
            }
        };
        let ok = outcome.is_ok() || progress.is_cancelled();
        self.jobs.finish_transient(&id, outcome);
        ok
    }

    /// Indexes behind the store (empty when all are caught up). An index whose state cannot
    /// be read counts as behind.
    pub fn index_lag(&self) -> Vec<IndexLag> {
        let mut out = Vec::new();
        let lag = |index: &str, behind| IndexLag {
            index: index.into(),
            behind,
        };
        if let Some(s) = &self.search {
            match s.behind() {
                Ok(names) => out.extend(names.iter().map(|n| lag(n, None))),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read the search indexes' state");
                    out.push(lag("search", None));
                }
            }
        }
        match self.notes.behind() {
            Ok(0) => {}
            Ok(n) => out.push(lag("notes", Some(n))),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the note indexes' state");
                out.push(lag("notes", None));
            }
        }
        out
    }

    /// Begin shutdown without waiting: no new background work, the indexer stops after its
    /// current catch-up (which its cancelled progress ends at the next batch).
    pub fn request_stop(&self) {
        self.background.state.lock().stopping = true;
        self.background.cv.notify_all();
    }

    /// Stop background work: no new jobs, running ones cancelled at their next batch boundary
    /// (they save their progress), then wait up to `grace` for their threads. Returns whether
    /// they all finished in time.
    pub fn shutdown(&self, grace: Duration) -> bool {
        let deadline = Instant::now() + grace;
        {
            let mut st = self.background.state.lock();
            st.stopping = true;
        }
        self.background.cv.notify_all();
        self.jobs.cancel_all();
        let mut st = self.background.state.lock();
        while st.workers > 0 {
            if self.background.cv.wait_until(&mut st, deadline).timed_out() {
                tracing::warn!(
                    workers = st.workers,
                    "background work did not stop in time; exiting anyway"
                );
                return false;
            }
        }
        true
    }
}

/// Cancel `progress` on SIGTERM or Ctrl-C (CLI commands that run long work in the foreground),
/// and exit the process if the work has not returned `grace` later (work that cannot check
/// for cancellation, such as parsing, must not keep the process alive).
pub fn cancel_on_signal(progress: Arc<Progress>, grace: Duration) {
    let spawned = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(crate::util::signal::shutdown_signal());
            progress.cancel();
            std::thread::sleep(grace);
            eprintln!("error: interrupted work did not stop within {grace:?}; exiting");
            std::process::exit(130);
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot watch for signals");
    }
}
