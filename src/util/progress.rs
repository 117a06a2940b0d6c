//! Progress of long work (ingest, embedding, training), shared between the worker and whoever
//! shows it: the job API, CLI progress bars and log lines with rates.

use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Progress counters of one piece of work. Cheap to update from a hot loop.
#[derive(Debug)]
pub struct Progress {
    phase: Mutex<String>,
    done: AtomicU64,
    total: AtomicU64,
    cancelled: AtomicBool,
    phase_started: Mutex<Instant>,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            phase: Mutex::new("queued".into()),
            done: AtomicU64::new(0),
            total: AtomicU64::new(0),
            cancelled: AtomicBool::new(false),
            phase_started: Mutex::new(Instant::now()),
        }
    }
}

impl Progress {
    /// A new shared progress handle.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Enter a new phase with a known total (0 when unknown); resets `done`.
    pub fn phase(&self, name: &str, total: u64) {
        let prev = std::mem::replace(&mut *self.phase.lock(), name.to_string());
        let elapsed = self.phase_started.lock().elapsed();
        let done = self.done.load(Ordering::Relaxed);
        if prev != "queued" && done > 0 {
            let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
            tracing::info!(phase = %prev, done, secs = format!("{:.1}", elapsed.as_secs_f64()), rate = format!("{rate:.0}/s"), "phase finished");
        }
        *self.phase_started.lock() = Instant::now();
        self.total.store(total, Ordering::Relaxed);
        self.done.store(0, Ordering::Relaxed);
    }

    /// Set the amount done in the current phase.
    pub fn set_done(&self, done: u64) {
        self.done.store(done, Ordering::Relaxed);
    }

    /// Add to the amount done in the current phase.
    pub fn add_done(&self, n: u64) {
        self.done.fetch_add(n, Ordering::Relaxed);
    }

    /// Current (phase, done, total).
    pub fn snapshot(&self) -> (String, u64, u64) {
        (
            self.phase.lock().clone(),
            self.done.load(Ordering::Relaxed),
            self.total.load(Ordering::Relaxed),
        )
    }

    /// Ask the work to stop at its next check.
    pub fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// Whether cancellation was asked for.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
    }
}

/// Run `f` with a fresh [`Progress`] drawn as a bar on stderr, removing the bar when `f`
/// returns; for CLI commands.
pub fn with_bar<T>(f: impl FnOnce(Arc<Progress>) -> T) -> T {
    let progress = Progress::new();
    let stop = Arc::new(AtomicBool::new(false));
    let bar = spawn_bar(progress.clone(), stop.clone());
    let out = f(progress);
    stop.store(true, Ordering::Relaxed);
    let _ = bar.join();
    out
}

/// Draw an indicatif progress bar for `progress` on stderr until `stop` is set; for CLI commands.
pub fn spawn_bar(progress: Arc<Progress>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let bar = indicatif::ProgressBar::new(0);
        let style = indicatif::ProgressStyle::with_template(
            "{msg:>18} [{bar:40}] {pos}/{len} ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
        bar.set_style(style);
        let mut last_phase = String::new();
        while !stop.load(Ordering::Relaxed) {
            let (phase, done, total) = progress.snapshot();
            if phase != last_phase {
                bar.reset();
                bar.set_message(phase.clone());
                last_phase = phase;
            }
            bar.set_length(total.max(done));
            bar.set_position(done);
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
        bar.finish_and_clear();
    })
}
