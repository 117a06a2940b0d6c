//! The state the background threads share with the rest of the app: whether a catch-up was
//! asked for, whether shutdown began, how many background threads are alive — behind one mutex
//! and condition variable. How the threads use it is [`super::background`].

use parking_lot::{Condvar, Mutex};

/// Wake-ups and liveness of the background threads.
#[derive(Default)]
pub struct Background {
    pub(crate) state: Mutex<BgState>,
    pub(crate) cv: Condvar,
}

#[derive(Default)]
pub(crate) struct BgState {
    /// A catch-up was asked for since the indexer last started one.
    pub(crate) wanted: bool,
    /// Shutdown began: no new work.
    pub(crate) stopping: bool,
    /// Background threads (indexer, ingest jobs) alive.
    pub(crate) workers: usize,
}
