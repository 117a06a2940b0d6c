//! The one ingest code path, shared by `ontovec ingest` and `POST /v1/ingest`: resolve the
//! system, stream the files through the format's loader into a [`ReleaseWriter`], commit
//! atomically (or leave no trace), then let derived indexes catch up.

use crate::domain::model::ReleaseInfo;
use crate::ontology::{self, Format, InputFile, LoadError, LoadOptions};
use crate::store::writer::ReleaseWriter;
use crate::store::{Store, StoreError};
use crate::util::progress::Progress;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What to ingest.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    /// Input format.
    pub format: Format,
    /// Release label (e.g. `2026AA`).
    pub release: String,
    /// System name override (upper-cased); else the format's default or the file's own.
    pub system: Option<String>,
    /// Input files of the release.
    pub files: Vec<InputFile>,
    /// Replace an existing release with the same label instead of answering a conflict.
    pub replace: bool,
    /// Evaluation only: hold out this fraction of non-preferred terms and write them as gold
    /// (mention, system, code) rows to the given file (see [`ontology::holdout`]).
    pub hold_out: Option<(f64, std::path::PathBuf)>,
}

/// Why an ingest failed.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// An input file is malformed or missing.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The store refused (conflict, I/O).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The request itself is invalid (bad release label, unknown system).
    #[error("{0}")]
    Invalid(String),
}

/// What an ingest produced (the job's `result`).
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IngestResult {
    /// System loaded.
    pub system: String,
    /// Release label.
    pub release: String,
    /// Concepts stored.
    pub concepts: u64,
    /// Terms stored.
    pub terms: u64,
    /// Relations stored.
    pub relations: u64,
    /// Mappings stored.
    pub mappings: u64,
    /// Non-fatal findings (cycles, ignored files, skipped rows).
    pub warnings: Vec<String>,
    /// Seconds spent.
    pub seconds: f64,
}

impl IngestResult {
    /// The result a committed release stands for (`seconds` as measured by the caller).
    pub fn from_release(r: &ReleaseInfo, seconds: f64) -> Self {
        Self {
            system: r.system.clone(),
            release: r.release.clone(),
            concepts: r.counts.concepts,
            terms: r.counts.terms,
            relations: r.counts.relations,
            mappings: r.counts.mappings,
            warnings: r.warnings.clone(),
            seconds,
        }
    }
}

/// Validate a release label: 1–64 characters of `[A-Za-z0-9._-]`.
pub fn valid_release(release: &str) -> bool {
    !release.is_empty()
        && release.len() <= 64
        && release
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Normalise a user-given system name (see [`crate::domain::normalize_system`]).
pub fn normalize_system(system: &str) -> Result<String, IngestError> {
    crate::domain::normalize_system(system).map_err(|e| IngestError::Invalid(e.to_string()))
}

/// Resolve the system a request loads into.
pub fn resolve_system(req: &IngestRequest) -> Result<String, IngestError> {
    if let Some(s) = &req.system {
        return normalize_system(s);
    }
    match ontology::sniff_system(req.format, &req.files)? {
        Some(s) => normalize_system(&s),
        None => Err(IngestError::Invalid(format!(
            "format {} needs a `system` (the file declares none)",
            req.format
        ))),
    }
}

/// Run a terminology ingest to completion (blocking). On any error the partial release is
/// purged before returning.
pub fn ingest_release(
    store: &Store,
    req: &IngestRequest,
    progress: Arc<Progress>,
) -> Result<IngestResult, IngestError> {
    ingest_release_for(store, req, progress, None)
}

/// [`ingest_release`] run by background job `job`: its commit records the job
/// ([`Store::committed_job`]), so the job's outcome survives a crash right after the commit.
pub fn ingest_release_for(
    store: &Store,
    req: &IngestRequest,
    progress: Arc<Progress>,
    job: Option<&str>,
) -> Result<IngestResult, IngestError> {
    let started = std::time::Instant::now();
    if !valid_release(&req.release) {
        return Err(IngestError::Invalid(format!(
            "invalid release label '{}': use 1-64 letters, digits, '.', '_' or '-'",
            req.release
        )));
    }
    if req.format.is_notes() {
        return Err(IngestError::Invalid(format!(
            "format {} holds notes; it is ingested by the notes subsystem",
            req.format
        )));
    }
    let system = resolve_system(req)?;
    let mut writer =
        ReleaseWriter::begin(store, &system, &req.release, req.format.name(), req.replace)?
            .with_progress(progress.clone());
    if let Some(job) = job {
        writer = writer.with_job(job);
    }
    let total = ontology::input::total_size(&req.files);
    progress.phase("parsing", total);
    let opts = LoadOptions::for_system(&system);
    tracing::info!(system = %system, release = %req.release, format = %req.format, files = req.files.len(), bytes = total, "ingest started");
    match &req.hold_out {
        None => ontology::load(req.format, &req.files, &opts, &mut writer)?,
        Some((fraction, path)) => {
            let file = std::fs::File::create(path).map_err(|e| {
                IngestError::Invalid(format!("cannot create {}: {e}", path.display()))
            })?;
            let mut gold = std::io::BufWriter::new(file);
            let mut sink =
                ontology::holdout::HoldOutSink::new(&mut writer, &system, *fraction, &mut gold);
            ontology::load(req.format, &req.files, &opts, &mut sink)?;
            let n = sink.held_out;
            std::io::Write::flush(&mut gold).map_err(|e| {
                IngestError::Invalid(format!("cannot write {}: {e}", path.display()))
            })?;
            writer.add_warning(format!("{n} terms held out for evaluation"));
        }
    }
    let info = writer.commit()?;
    let result = IngestResult::from_release(&info, started.elapsed().as_secs_f64());
    tracing::info!(system = %result.system, release = %result.release, concepts = result.concepts,
        terms = result.terms, relations = result.relations, mappings = result.mappings,
        secs = format!("{:.1}", result.seconds), "ingest committed");
    Ok(result)
}
