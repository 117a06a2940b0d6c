//! Background jobs (ingest, embedding): status persisted in the store's `jobs` tree so it
//! survives restarts, live progress from a shared [`Progress`]. Index catch-ups (`catch-up`
//! jobs: at start, after note writes) are kept in memory only — they redo themselves from the
//! indexes' saved progress after a restart — and listed with the others by
//! [`JobManager::list`]. A job that was queued or running when the process died is settled at
//! start-up by what its data commit recorded (in the same transaction as the commit itself):
//! succeeded if its release or notes were committed (the indexes then catch up), else failed
//! with a clear message — its data was never made visible, so nothing partial remains. A job
//! whose outcome the store cannot take (the disk filled up) keeps it in memory, beside the
//! catch-ups, until that start.

use crate::service::ingest::IngestResult;
use crate::store::notes::NoteStore;
use crate::store::{Store, StoreError, StoreResult};
use crate::util::progress::Progress;
use crate::util::time::now_rfc3339;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use utoipa::ToSchema;

/// Lifecycle of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for its turn.
    Queued,
    /// Working.
    Running,
    /// Finished; `result` is set.
    Succeeded,
    /// Failed; `error` is set; nothing of it is visible.
    Failed,
}

/// Where a job failed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobError {
    /// Input file, when the failure is in one.
    pub file: Option<String>,
    /// 1-based line in that file (0 when the file as a whole is at fault).
    pub line: Option<u64>,
    /// What went wrong.
    pub message: String,
}

/// Status of a job as reported by `GET /v1/jobs/{job_id}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct JobStatus {
    /// Job id.
    pub job_id: String,
    /// What the job does (`ingest`, `embed`).
    pub kind: String,
    /// Lifecycle state.
    pub state: JobState,
    /// Current phase (`parsing`, `indexing terms`, `embedding`, ...).
    pub phase: String,
    /// Work done in the current phase (bytes while parsing, items after).
    pub done: u64,
    /// Total work of the current phase (0 when unknown).
    pub total: u64,
    /// Failure, when failed.
    pub error: Option<JobError>,
    /// Outcome (counts), when succeeded.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// Creation time (RFC 3339).
    pub created_at: String,
    /// Completion time (RFC 3339).
    pub finished_at: Option<String>,
}

/// Registry of jobs.
#[derive(Clone)]
pub struct JobManager {
    tree: sled::Tree,
    db: sled::Db,
    /// New jobs are refused while the store's file system is down to its reserve.
    disk: crate::store::disk::DiskGuard,
    live: Arc<Mutex<HashMap<String, Arc<Progress>>>>,
    /// In-memory jobs (catch-ups; outcomes the store could not take): status by id, newest
    /// last in `order`.
    transient: Arc<Mutex<Transient>>,
}

#[derive(Default)]
struct Transient {
    jobs: HashMap<String, JobStatus>,
    order: std::collections::VecDeque<String>,
}

/// What job `id` committed, as its result, when its data commit happened (a release, or a
/// batch of notes) — recorded in the commit itself ([`Store::committed_job`],
/// [`NoteStore::committed_job`]).
fn committed_result(store: &Store, id: &str) -> StoreResult<Option<serde_json::Value>> {
    if let Some((rid, release)) = store.committed_job(id)? {
        return Ok(match release {
            Some(r) => serde_json::to_value(IngestResult::from_release(&r, 0.0)).ok(),
            // committed, then superseded and purged by a later release
            None => Some(serde_json::json!({ "rid": rid, "warnings": [] })),
        });
    }
    Ok(NoteStore::committed_job(store, id)?
        .map(|n| serde_json::json!({ "notes": n, "warnings": [] })))
}

/// Finished in-memory jobs kept for listing.
const KEEP_TRANSIENT: usize = 32;

impl JobManager {
    /// Open the registry and fail jobs a previous process left unfinished.
    pub fn open(store: &Store) -> StoreResult<Self> {
        let tree = store.db().open_tree("jobs")?;
        let jm = Self {
            tree,
            db: store.db().clone(),
            disk: store.disk().clone(),
            live: Default::default(),
            transient: Default::default(),
        };
        for kv in jm.tree.iter() {
            let (k, v) = kv?;
            let Ok(mut st) = serde_json::from_slice::<JobStatus>(&v) else {
                continue;
            };
            if matches!(st.state, JobState::Queued | JobState::Running) && st.result.is_none() {
                // The registry is written after the data's commit: a crash in between left
                // it without a result although the data is kept. The commit's own record says.
                st.result = committed_result(store, &st.job_id)?;
            }
            if matches!(st.state, JobState::Queued | JobState::Running) && st.result.is_some() {
                // Its release was committed before the stop; only the index catch-up was cut
                // short, and the start-up catch-up finishes it.
                st.state = JobState::Succeeded;
                st.phase = "done".into();
                if let Some(w) = st
                    .result
                    .as_mut()
                    .and_then(|r| r.get_mut("warnings"))
                    .and_then(|w| w.as_array_mut())
                {
                    w.push(serde_json::Value::String(
                        "the server stopped after this job's data was committed; the indexes were caught up when it started again".into(),
                    ));
                }
                st.finished_at = Some(now_rfc3339());
                jm.tree
                    .insert(k, serde_json::to_vec(&st).unwrap_or_default())?;
            } else if matches!(st.state, JobState::Queued | JobState::Running) {
                st.state = JobState::Failed;
                st.error = Some(JobError {
                    file: None,
                    line: None,
                    message: "interrupted: the server stopped while this job ran; nothing of it was kept — submit it again".into(),
                });
                st.finished_at = Some(now_rfc3339());
                jm.tree
                    .insert(k, serde_json::to_vec(&st).unwrap_or_default())?;
            }
        }
        jm.db.flush()?;
        Ok(jm)
    }

    /// Create a queued job and return its id and progress handle.
    pub fn create(&self, kind: &str) -> StoreResult<(String, Arc<Progress>)> {
        self.disk.ensure(0)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let st = JobStatus {
            job_id: id.clone(),
            kind: kind.into(),
            state: JobState::Queued,
            phase: "queued".into(),
            done: 0,
            total: 0,
            error: None,
            result: None,
            created_at: now_rfc3339(),
            finished_at: None,
        };
        self.put(&st)?;
        // Acknowledged jobs survive a crash (as failed-interrupted at worst).
        self.db.flush()?;
        let p = Progress::new();
        self.live.lock().insert(id.clone(), p.clone());
        Ok((id, p))
    }

    fn put(&self, st: &JobStatus) -> StoreResult<()> {
        self.tree.insert(
            st.job_id.as_bytes(),
            serde_json::to_vec(st).map_err(|e| StoreError::Aborted(e.to_string()))?,
        )?;
        Ok(())
    }

    fn update(&self, id: &str, f: impl FnOnce(&mut JobStatus)) -> StoreResult<()> {
        if let Some(mut st) = self.stored(id)? {
            f(&mut st);
            self.put(&st)?;
            self.db.flush()?;
        }
        Ok(())
    }

    fn stored(&self, id: &str) -> StoreResult<Option<JobStatus>> {
        Ok(self
            .tree
            .get(id.as_bytes())?
            .and_then(|v| serde_json::from_slice(&v).ok()))
    }

    /// Mark a job running.
    pub fn start(&self, id: &str) -> StoreResult<()> {
        self.update(id, |s| s.state = JobState::Running)
    }

    /// Record that a job's data is committed (its result known) while it still has work to do
    /// (index catch-up): a crash from here on leaves a succeeded job, not a failed one.
    pub fn committed(&self, id: &str, result: serde_json::Value) -> StoreResult<()> {
        self.update(id, |s| s.result = Some(result))
    }

    /// Mark a job succeeded with its result.
    pub fn succeed(&self, id: &str, result: serde_json::Value) -> StoreResult<()> {
        let finished = now_rfc3339();
        self.finish(id, |s| {
            s.state = JobState::Succeeded;
            s.phase = "done".into();
            s.result = Some(result.clone());
            s.finished_at = Some(finished.clone());
        })
    }

    /// Mark a job failed, keeping the phase and progress it had reached (where it failed).
    pub fn fail(&self, id: &str, error: JobError) -> StoreResult<()> {
        let finished = now_rfc3339();
        let reached = self.live.lock().get(id).map(|p| p.snapshot());
        self.finish(id, |s| {
            if let Some((phase, done, total)) = &reached {
                (s.phase, s.done, s.total) = (phase.clone(), *done, *total);
            }
            s.state = JobState::Failed;
            s.error = Some(error.clone());
            s.finished_at = Some(finished.clone());
        })
    }

    /// Record a job's outcome. When the store cannot write it (the disk filled up, which is
    /// often why the job failed), the outcome is kept in memory instead, so the job does not
    /// look running until the next start, which settles it from the store (module docs).
    fn finish(&self, id: &str, f: impl Fn(&mut JobStatus)) -> StoreResult<()> {
        let r = self.update(id, &f);
        if let Err(e) = &r {
            tracing::error!(job = id, error = %e, "job outcome not persisted; kept in memory");
            if let Ok(Some(mut st)) = self.stored(id) {
                f(&mut st);
                self.keep_in_memory(st);
            }
        }
        self.live.lock().remove(id);
        r
    }

    /// Hold a status in the in-memory registry (newest [`KEEP_TRANSIENT`] kept).
    fn keep_in_memory(&self, st: JobStatus) {
        let mut t = self.transient.lock();
        let id = st.job_id.clone();
        if t.jobs.insert(id.clone(), st).is_none() {
            t.order.push_back(id);
        }
        while t.order.len() > KEEP_TRANSIENT {
            if let Some(old) = t.order.pop_front() {
                t.jobs.remove(&old);
            }
        }
    }

    /// Start an in-memory job (`catch-up`), running at once; not persisted (see module docs).
    pub fn start_transient(&self, kind: &str) -> (String, Arc<Progress>) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let st = JobStatus {
            job_id: id.clone(),
            kind: kind.into(),
            state: JobState::Running,
            phase: "starting".into(),
            done: 0,
            total: 0,
            error: None,
            result: None,
            created_at: now_rfc3339(),
            finished_at: None,
        };
        let p = Progress::new();
        self.live.lock().insert(id.clone(), p.clone());
        self.keep_in_memory(st);
        (id, p)
    }

    /// End an in-memory job: succeeded with `result`, or failed with `error`.
    pub fn finish_transient(&self, id: &str, outcome: Result<serde_json::Value, String>) {
        let p = self.live.lock().remove(id);
        if let Some(st) = self.transient.lock().jobs.get_mut(id) {
            if let Some(p) = p {
                let (phase, done, total) = p.snapshot();
                (st.phase, st.done, st.total) = (phase, done, total);
            }
            match outcome {
                Ok(r) => {
                    st.state = JobState::Succeeded;
                    st.result = Some(r);
                }
                Err(message) => {
                    st.state = JobState::Failed;
                    st.error = Some(JobError {
                        file: None,
                        line: None,
                        message,
                    });
                }
            }
            st.finished_at = Some(now_rfc3339());
        }
    }

    /// Ask every running job to stop at its next batch boundary (shutdown).
    pub fn cancel_all(&self) {
        for p in self.live.lock().values() {
            p.cancel();
        }
    }

    /// The newest `limit` jobs (persisted and in-memory), newest first, with live progress.
    pub fn list(&self, limit: usize) -> StoreResult<Vec<JobStatus>> {
        let mut all: Vec<JobStatus> = self.transient.lock().jobs.values().cloned().collect();
        let in_memory: HashSet<String> = all.iter().map(|s| s.job_id.clone()).collect();
        for kv in self.tree.iter() {
            let (_, v) = kv?;
            if let Ok(st) = serde_json::from_slice::<JobStatus>(&v) {
                // an outcome the store could not take is newer than the stored status
                if !in_memory.contains(&st.job_id) {
                    all.push(st);
                }
            }
        }
        all.sort_by(|a, b| b.created_at.cmp(&a.created_at));
        all.truncate(limit);
        for st in &mut all {
            self.merge_live(st);
        }
        Ok(all)
    }

    fn merge_live(&self, st: &mut JobStatus) {
        if st.state != JobState::Running {
            return;
        }
        if let Some(p) = self.live.lock().get(&st.job_id) {
            let (phase, done, total) = p.snapshot();
            st.phase = phase;
            st.done = done;
            st.total = total;
        }
    }

    /// Current status (live progress merged in for running jobs).
    pub fn get(&self, id: &str) -> StoreResult<Option<JobStatus>> {
        if let Some(mut st) = self.transient.lock().jobs.get(id).cloned() {
            self.merge_live(&mut st);
            return Ok(Some(st));
        }
        let Some(mut st) = self.stored(id)? else {
            return Ok(None);
        };
        if let Some(p) = self.live.lock().get(id) {
            let (phase, done, total) = p.snapshot();
            if st.state == JobState::Running {
                st.phase = phase;
                st.done = done;
                st.total = total;
            }
        }
        Ok(Some(st))
    }

    /// Number of jobs queued or running (for metrics).
    pub fn active_count(&self) -> usize {
        self.live.lock().len()
    }

    /// Progress of all live jobs (for metrics).
    pub fn live_progress(&self) -> Vec<(String, String, u64, u64)> {
        self.live
            .lock()
            .iter()
            .map(|(id, p)| {
                let (ph, d, t) = p.snapshot();
                (id.clone(), ph, d, t)
            })
            .collect()
    }
}
