//! The application core that both the CLI and the HTTP layer drive: the store, the job registry
//! and the operations on them. Handlers stay thin; everything that does work lives here or in the
//! subsystems it calls.

use crate::encoder::{EngineConfig, Registry};
use crate::search::engine::SearchEngine;
use crate::service::ingest::{self, IngestError, IngestRequest, IngestResult};
use crate::service::jobs::{JobError, JobManager};
use crate::store::notes::{InsertError, Note, StoredNote};
use crate::store::{Store, StoreResult};
use crate::util::progress::Progress;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Settings of a running instance.
#[derive(Debug, Clone)]
pub struct AppConfig {
    /// Root of all state: `store/`, `indexes/`, `uploads/`.
    pub data_dir: PathBuf,
    /// Folder of model folders.
    pub models_dir: PathBuf,
    /// Largest accepted upload per ingest request, in bytes.
    pub max_upload_bytes: u64,
    /// Largest total of uploads staged on disk at once (all in-flight ingests together).
    pub max_staged_bytes: u64,
    /// Bearer token required for writes, when set.
    pub auth_token: Option<String>,
    /// Deadline of one HTTP request (upload streaming excepted); past it the answer is 503.
    pub request_timeout: std::time::Duration,
    /// Origins allowed to call the API from browsers (CORS); `*` for any, empty for none.
    pub cors_origins: Vec<String>,
    /// Texts that interactive requests may have waiting in the encoder at once; past it they
    /// get 429 at once instead of queueing (the latency bound under overload).
    pub max_inflight_texts: usize,
    /// Padded-token size of interactive batches while queries arrive (0: no cut); see
    /// [`crate::encoder::EngineConfig::query_batch_tokens`].
    pub query_batch_tokens: usize,
    /// Where term vectors live (embedded usearch or Postgres) and whether this node is a
    /// read-only replica.
    pub vector: crate::search::vector_store::VectorConfig,
    /// A read-only node's pointer to the writer, named in its 403 answers.
    pub writer_url: Option<String>,
    /// How models pick their precision (F32 unless asked; the CLI's default is `auto`).
    pub precision: crate::encoder::PrecisionPolicy,
}

impl AppConfig {
    /// Defaults for a data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            models_dir: PathBuf::from("models"),
            max_upload_bytes: 16 << 30,
            max_staged_bytes: 32 << 30,
            auth_token: None,
            request_timeout: std::time::Duration::from_secs(30),
            cors_origins: Vec::new(),
            max_inflight_texts: crate::encoder::admission::DEFAULT_MAX_INFLIGHT_TEXTS,
            query_batch_tokens: crate::encoder::DEFAULT_QUERY_BATCH_TOKENS,
            vector: Default::default(),
            writer_url: None,
            precision: Default::default(),
        }
    }

    /// Where the sled store lives.
    pub fn store_dir(&self) -> PathBuf {
        self.data_dir.join("store")
    }

    /// Where the derived search indexes live (rebuildable from the store).
    pub fn indexes_dir(&self) -> PathBuf {
        self.data_dir.join("indexes")
    }

    /// Where uploads are staged.
    pub fn uploads_dir(&self) -> PathBuf {
        self.data_dir.join("uploads")
    }
}

/// The opened application.
pub struct App {
    /// Settings.
    pub config: AppConfig,
    /// Source of truth.
    pub store: Store,
    /// Background jobs.
    pub jobs: JobManager,
    /// Search engine (indexes + encoders).
    pub search: Option<Arc<SearchEngine>>,
    /// Notes: store, indexes, coding (NoteContrast).
    pub notes: Arc<crate::notes::Notes>,
    /// One ingest at a time; held by ingest job threads and the CLI, never by a request.
    ingest_lock: parking_lot::Mutex<()>,
    /// Indexer wake-ups, background thread count, shutdown ([`crate::service::wakeup`]).
    pub(crate) background: crate::service::wakeup::Background,
}

/// Failure to open the application.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// A model could not be loaded.
    #[error(transparent)]
    Encoder(#[from] crate::encoder::EncoderError),
    /// The indexes could not be opened.
    #[error(transparent)]
    Search(#[from] crate::search::engine::EngineError),
    /// The notes subsystem could not be opened.
    #[error(transparent)]
    Notes(#[from] crate::notes::NotesError),
    /// The store lost acknowledged commits (see [`crate::service::integrity`]).
    #[error(transparent)]
    Integrity(#[from] crate::service::integrity::IntegrityError),
}

impl App {
    /// Open the store (refusing a newer or un-migrated schema), the job registry, the models
    /// under `models_dir` and the search indexes. Indexes are not caught up here: call
    /// [`App::sync_indexes`] (the server does it in the background, the CLI in the foreground).
    pub fn open(config: AppConfig) -> Result<Arc<Self>, OpenError> {
        let store = Store::open(&config.store_dir())?;
        crate::service::integrity::check(&config.data_dir, &store)?;
        let jobs = JobManager::open(&store)?;
        // Uploads of jobs that died with the previous process are useless now.
        let _ = std::fs::remove_dir_all(config.uploads_dir());
        let registry = Arc::new(
            Registry::load_dir(
                &config.models_dir,
                EngineConfig {
                    precision: config.precision,
                    query_batch_tokens: config.query_batch_tokens,
                    ..EngineConfig::default()
                },
            )?
            .with_admission(config.max_inflight_texts),
        );
        let notes = crate::notes::Notes::open(
            &store,
            registry.clone(),
            &config.models_dir,
            &config.data_dir,
        )?;
        let search =
            SearchEngine::open_with(store.clone(), registry, &config.data_dir, &config.vector)?;
        Ok(Arc::new(Self {
            config,
            store,
            jobs,
            search: Some(Arc::new(search)),
            notes: Arc::new(notes),
            ingest_lock: parking_lot::Mutex::new(()),
            background: Default::default(),
        }))
    }

    /// Hold the ingest lock (no ingest commits meanwhile); for snapshots.
    pub fn ingest_guard(&self) -> parking_lot::MutexGuard<'_, ()> {
        self.ingest_lock.lock()
    }

    /// Bring the lexical and vector indexes up to the store (embedding new terms).
    pub fn sync_indexes(&self, progress: Option<&Progress>) -> Result<(), IngestError> {
        if let Some(s) = &self.search {
            s.sync(progress)
                .map_err(|e| IngestError::Invalid(format!("indexing failed: {e}")))?;
        }
        self.notes
            .sync(progress)
            .map_err(|e| IngestError::Invalid(format!("indexing notes failed: {e}")))?;
        Ok(())
    }

    /// Load notes (`notes-jsonl`, `mimic-notes-csv`, `codiesp`) all-or-nothing, then index them.
    pub fn ingest_notes(
        &self,
        req: &IngestRequest,
        progress: Arc<Progress>,
    ) -> Result<crate::notes::ingest::NotesLoadResult, IngestError> {
        self.ingest_notes_for(req, progress, None)
    }

    /// [`Self::ingest_notes`] run by background job `job` (recorded with the batch's commit).
    fn ingest_notes_for(
        &self,
        req: &IngestRequest,
        progress: Arc<Progress>,
        job: Option<&str>,
    ) -> Result<crate::notes::ingest::NotesLoadResult, IngestError> {
        let started = std::time::Instant::now();
        let mut r = self.load_notes_for(req, &progress, job)?;
        // the background catch-up may get to the new notes first (this sync then waits for it)
        progress.phase("indexing notes", r.notes);
        self.notes
            .sync(Some(&progress))
            .map_err(|e| IngestError::Invalid(format!("indexing notes failed: {e}")))?;
        r.seconds = started.elapsed().as_secs_f64();
        Ok(r)
    }

    /// Load notes all-or-nothing without indexing them (`ingest --skip-index`: the server
    /// indexes them at start, with whichever notes model it serves then).
    pub fn load_notes(
        &self,
        req: &IngestRequest,
        progress: &Arc<Progress>,
    ) -> Result<crate::notes::ingest::NotesLoadResult, IngestError> {
        self.load_notes_for(req, progress, None)
    }

    fn load_notes_for(
        &self,
        req: &IngestRequest,
        progress: &Arc<Progress>,
        job: Option<&str>,
    ) -> Result<crate::notes::ingest::NotesLoadResult, IngestError> {
        let started = std::time::Instant::now();
        let mut batch = self.notes.store.begin()?;
        if let Some(job) = job {
            batch.set_job(job);
        }
        let store = &self.store;
        let known = |c: &crate::domain::model::ConceptRef| {
            matches!(store.concept(&c.system, &c.code), Ok(Some(_)))
        };
        let check: crate::notes::codiesp::CodeCheck<'_> =
            self.store.has_system("ICD10CM").then_some(&known);
        let mut r =
            crate::notes::ingest::load(req.format, &req.files, &mut batch, progress, check)?;
        progress.phase("committing notes", batch.len());
        let n = batch.commit()?;
        tracing::info!(notes = n, codes = r.codes, "notes committed");
        r.seconds = started.elapsed().as_secs_f64();
        Ok(r)
    }

    /// One ingest job's work. Once the release is committed the job records its result (a crash
    /// during the index catch-up then leaves a succeeded job; see [`JobManager::open`]) and the
    /// commit is recorded for the integrity check.
    fn run_ingest(
        &self,
        req: &IngestRequest,
        progress: Arc<Progress>,
        job: Option<&str>,
    ) -> Result<serde_json::Value, IngestError> {
        if req.format.is_notes() {
            let r = self.ingest_notes_for(req, progress, job)?;
            self.record_commit()?;
            return Ok(serde_json::to_value(&r).unwrap_or_default());
        }
        let r = ingest::ingest_release_for(&self.store, req, progress.clone(), job)?;
        let value = serde_json::to_value(&r).unwrap_or_default();
        if let Some(job) = job {
            let _ = self.jobs.committed(job, value.clone());
        }
        self.record_commit()?;
        self.sync_indexes(Some(&progress))?;
        Ok(value)
    }

    /// Run an ingest to completion on this thread (CLI path). Ingests run one at a time.
    pub fn ingest(
        &self,
        req: &IngestRequest,
        progress: Arc<Progress>,
    ) -> Result<IngestResult, IngestError> {
        let _g = self.ingest_lock.lock();
        let r = ingest::ingest_release(&self.store, req, progress.clone())?;
        self.record_commit()?;
        self.sync_indexes(Some(&progress))?;
        Ok(r)
    }

    /// Queue an ingest as a background job and return its id at once (HTTP path). `cleanup` is
    /// a directory (the staged upload) removed when the job ends, whatever its outcome.
    pub fn submit_ingest(
        self: &Arc<Self>,
        req: IngestRequest,
        cleanup: Option<PathBuf>,
    ) -> StoreResult<String> {
        self.submit_ingest_guarded(req, cleanup.map(RemoveOnDrop))
    }

    /// [`Self::submit_ingest`] with any guard value, dropped when the job ends whatever its
    /// outcome (the HTTP layer passes its staged upload, which frees disk and upload budget).
    pub fn submit_ingest_guarded<G: Send + 'static>(
        self: &Arc<Self>,
        req: IngestRequest,
        guard: G,
    ) -> StoreResult<String> {
        let (id, progress) = self.jobs.create("ingest")?;
        let app = self.clone();
        let job = id.clone();
        let worker = self.worker();
        std::thread::Builder::new()
            .name(format!("ingest-{}", &id[..8]))
            .spawn(move || {
                let _alive = worker;
                let _g = app.ingest_lock.lock();
                if app.is_stopping() {
                    // left queued: the next start reports it interrupted
                    drop(guard);
                    return;
                }
                let _ = app.jobs.start(&job);
                let outcome = app.run_ingest(&req, progress.clone(), Some(&job));
                let _ = match outcome {
                    // stopped by shutdown: left running, so the next start reports it (succeeded
                    // if its data was committed, the indexes then catch up; else interrupted)
                    _ if progress.is_cancelled() => Ok(()),
                    Ok(r) => app.jobs.succeed(&job, r),
                    Err(e) => app.jobs.fail(&job, job_error(&e)),
                };
                drop(guard);
            })
            .map_err(|e| crate::store::StoreError::Aborted(format!("cannot start job: {e}")))?;
        Ok(id)
    }

    /// Store one note, durable when this returns, and wake the indexer (which adds it to note
    /// search in the background: this never waits for indexing). Returns whether note search
    /// finds it already (false when that cannot be read).
    pub fn add_note(&self, note: Note) -> Result<bool, InsertError> {
        let stored = self.notes.store.insert(note)?;
        self.request_catch_up();
        Ok(self.note_indexed(stored.nid))
    }

    /// A stored note by id, and whether note search finds it yet.
    pub fn note(&self, id: &str) -> StoreResult<Option<(StoredNote, bool)>> {
        Ok(self.notes.store.get(id)?.map(|s| {
            let indexed = self.note_indexed(s.nid);
            (s, indexed)
        }))
    }

    fn note_indexed(&self, nid: u64) -> bool {
        self.notes.indexed_next().is_ok_and(|next| nid < next)
    }

    /// Record the store's sequence as acknowledged (after a commit; see [`crate::service::integrity`]).
    pub fn record_commit(&self) -> Result<(), IngestError> {
        let seq = self.store.seq()?;
        crate::service::integrity::record(&self.config.data_dir, seq)
            .map_err(|e| IngestError::Invalid(format!("release stored, but {e}")))
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.config.data_dir
    }
}

/// Removes a directory tree when dropped.
#[derive(Debug)]
pub struct RemoveOnDrop(pub PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Describe an ingest failure for the job API.
pub fn job_error(e: &IngestError) -> JobError {
    match e {
        IngestError::Load(crate::ontology::LoadError::StorageFull {
            message,
            store_stopped,
        }) => JobError {
            file: None,
            line: None,
            message: crate::store::disk::advice(message, *store_stopped, "job"),
        },
        IngestError::Load(le) => {
            let (file, line) = match le.location() {
                Some((f, l)) => (Some(f.to_string()), Some(l)),
                None => (None, None),
            };
            let message = match le {
                crate::ontology::LoadError::Malformed { message, .. } => message.clone(),
                other => other.to_string(),
            };
            JobError {
                file,
                line,
                message,
            }
        }
        IngestError::Store(s) if s.is_storage_full() => JobError {
            file: None,
            line: None,
            message: s.storage_full_advice("job").unwrap_or_default(),
        },
        other => JobError {
            file: None,
            line: None,
            message: other.to_string(),
        },
    }
}
