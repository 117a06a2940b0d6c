//! `POST /v1/ingest` (multipart upload streamed to disk, then a background job) and
//! `GET /v1/jobs/{job_id}`.

use super::error::{ApiError, ApiMultipart, ApiPath, ErrorBody, HttpError};
use super::AppState;
use crate::ontology::{Format, InputFile};
use crate::service::ingest::{resolve_system, IngestError, IngestRequest};
use crate::service::jobs::JobStatus;
use crate::store::disk::DiskGuard;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

/// Form fields of an ingest upload (for the OpenAPI document).
/// Unknown fields are refused (400), as the schema's `additionalProperties: false` says.
#[derive(Debug, ToSchema, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct IngestForm {
    /// Input format (`mimic-notes-csv`: NOTEEVENTS.csv + DIAGNOSES_ICD.csv).
    #[schema(schema_with = format_schema)]
    format: String,
    /// Release label, 1-64 of `[A-Za-z0-9._-]`, required for every format (note formats, which
    /// are not versioned releases, only log it).
    #[schema(pattern = r"^[A-Za-z0-9._-]{1,64}$")]
    release: String,
    /// System name override, 1-32 of `[A-Za-z0-9_-]`, stored upper-cased (default: the
    /// format's, or an OBO file's `ontology:` header; a file without one answers 422).
    #[schema(pattern = r"^[A-Za-z0-9_-]{1,32}$", nullable = false)]
    system: Option<String>,
    /// `true` to replace an existing release with the same label (default `false`).
    #[schema(nullable = false)]
    replace: Option<bool>,
    /// The release's files (repeat the part for multi-file releases).
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1)]
    file: Vec<Vec<u8>>,
}

/// The `format` field: one of the loaders' names.
fn format_schema() -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(Format::ALL.iter().map(|f| f.name())))
        .build()
}

/// Answer of an accepted ingest.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobCreated {
    /// Id to poll at `/v1/jobs/{job_id}`.
    pub job_id: String,
}

/// Bytes of uploads staged on disk by all in-flight ingests together, against a cap
/// (`--max-staged-bytes`): a burst of large uploads gets 507 instead of filling the disk.
#[derive(Debug)]
pub struct UploadBudget {
    cap: u64,
    used: AtomicU64,
}

impl UploadBudget {
    /// A budget of `cap` bytes.
    pub fn new(cap: u64) -> Self {
        Self {
            cap,
            used: AtomicU64::new(0),
        }
    }

    /// Take `n` bytes, or refuse when that would pass the cap.
    pub fn try_take(&self, n: u64) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                u.checked_add(n).filter(|t| *t <= self.cap)
            })
            .is_ok()
    }

    /// Give back `n` bytes.
    pub fn give(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
    }

    /// Bytes currently staged.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }
}

/// A staged upload: its directory and the budget it holds, both released when dropped (on an
/// early error, or when the ingest job that owns it ends).
struct Staged {
    dir: PathBuf,
    bytes: u64,
    budget: Arc<UploadBudget>,
}

impl Drop for Staged {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
        self.budget.give(self.bytes);
    }
}

/// A failure to write the staged upload, with the cause spelled out (disk full, read-only).
fn staging_error(e: std::io::Error) -> ApiError {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::StorageFull | K::QuotaExceeded | K::FileTooLarge => HttpError::StorageFull(e),
        K::ReadOnlyFilesystem | K::PermissionDenied => HttpError::StorageReadOnly(e),
        _ => HttpError::Staging(e),
    }
    .into()
}

/// Keep only a safe base name of a client-given file name (no directories, no traversal).
pub fn safe_file_name(raw: &str) -> Option<String> {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(128)
        .collect();
    let cleaned = cleaned.trim_start_matches('.').to_string();
    if cleaned.is_empty() {
        None
    } else {
        Some(cleaned)
    }
}

/// The fields of an ingest form, its files staged on disk.
struct Form {
    format: Option<String>,
    release: Option<String>,
    system: Option<String>,
    replace: bool,
    files: Vec<InputFile>,
}

/// Read an ingest form, streaming its files into `staged` (at most `cap` bytes in all).
async fn read_form(
    multipart: &mut axum::extract::Multipart,
    staged: &mut Staged,
    cap: u64,
    disk: &DiskGuard,
) -> Result<Form, ApiError> {
    disk.ensure(0)?;
    tokio::fs::create_dir_all(&staged.dir)
        .await
        .map_err(staging_error)?;
    let (mut format, mut release, mut system, mut replace) = (None, None, None, false);
    let mut files = Vec::new();
    let mut total: u64 = 0;
    while let Some(mut field) = multipart.next_field().await.map_err(ApiError::from)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "file" | "files" | "file[]" => {
                let Some(client_name) = field.file_name().map(str::to_string) else {
                    return Err(ApiError::bad_request(format!(
                        "form field '{name}' must be a file part (with a filename)"
                    )));
                };
                let safe = safe_file_name(&client_name).ok_or_else(|| {
                    ApiError::bad_request(format!("unusable file name {client_name:?}"))
                })?;
                let path = staged.dir.join(format!("{:03}-{safe}", files.len()));
                let mut out = tokio::fs::File::create(&path)
                    .await
                    .map_err(staging_error)?;
                while let Some(chunk) = field.chunk().await.map_err(ApiError::from)? {
                    let n = chunk.len() as u64;
                    total += n;
                    if total > cap {
                        return Err(HttpError::UploadTooLarge { limit: cap }.into());
                    }
                    if !staged.budget.try_take(n) {
                        return Err(HttpError::StagingCapReached {
                            cap: staged.budget.cap,
                        }
                        .into());
                    }
                    // the store's reserve holds for staged uploads too, checked every 8 MiB
                    if (staged.bytes + n) / STAGE_CHECK_BYTES != staged.bytes / STAGE_CHECK_BYTES {
                        disk.ensure(STAGE_CHECK_BYTES)?;
                    }
                    staged.bytes += n;
                    out.write_all(&chunk).await.map_err(staging_error)?;
                }
                out.flush().await.map_err(staging_error)?;
                files.push(InputFile { path, name: safe });
            }
            "format" | "release" | "system" | "replace" => {
                let text = field.text().await.map_err(ApiError::from)?;
                if text.len() > 256 {
                    return Err(ApiError::bad_request(format!("field '{name}' is too long")));
                }
                match name.as_str() {
                    "format" => format = Some(text),
                    "release" => release = Some(text),
                    "system" => system = Some(text),
                    "replace" => {
                        replace = if text.eq_ignore_ascii_case("true") {
                            true
                        } else if text.eq_ignore_ascii_case("false") {
                            false
                        } else {
                            return Err(ApiError::bad_request(format!(
                                "field 'replace' must be true or false, got {text:?}"
                            )));
                        }
                    }
                    _ => {}
                }
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown form field '{other}'; expected format, release, system, replace, file"
                )))
            }
        }
    }
    Ok(Form {
        format,
        release,
        system,
        replace,
        files,
    })
}

/// Staged bytes between two checks of the store's free-space reserve.
const STAGE_CHECK_BYTES: u64 = 8 << 20;

/// Bytes of a refused upload read and thrown away before answering (see [`drain`]).
const DRAIN_BYTES: u64 = 1 << 30;
/// Seconds spent at most on that.
const DRAIN_SECS: u64 = 30;

/// Read and discard the rest of an upload refused part-way (too large, no room): a client
/// still sending its body then reads the 413/507 instead of a reset connection, which is what
/// it would get if the server answered and closed with unread data (nginx's "lingering
/// close" does the same). Bounded by [`DRAIN_BYTES`] and [`DRAIN_SECS`]; past them the
/// connection closes.
async fn drain(multipart: &mut axum::extract::Multipart) {
    let work = async {
        let mut left = DRAIN_BYTES;
        while let Ok(Some(mut field)) = multipart.next_field().await {
            while let Ok(Some(chunk)) = field.chunk().await {
                left = left.saturating_sub(chunk.len() as u64);
                if left == 0 {
                    return;
                }
            }
        }
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(DRAIN_SECS), work).await;
}

/// Upload a release and start ingesting it.
///
/// Files are streamed to a staging directory (never held in memory), then a background job
/// parses and stores them; poll the job for progress. A failed job leaves nothing behind.
#[utoipa::path(post, path = "/v1/ingest", tag = "ontologies",
    request_body(content = IngestForm, content_type = "multipart/form-data"),
    security(("bearer" = [])),
    responses((status = 202, description = "Accepted; poll the job", body = JobCreated),
        (status = 400, description = "Invalid form or files", body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "A read-only replica (`read_only`; `details.writer` names the writer)", body = ErrorBody),
        (status = 409, description = "This release is already loaded", body = ErrorBody),
        (status = 413, description = "Upload too large", body = ErrorBody),
        (status = 422, description = "The form is valid but its files are not: they do not parse as the format (`invalid_input_file`, with file and line), or they name no system and no `system` field does (`system_unknown`: an OBO file without an `ontology:` header)", body = ErrorBody),
        (status = 507, description = "No room to stage the upload: the staging cap (`Retry-After`) or the data directory's free-space reserve (`insufficient_storage`)", body = ErrorBody)))]
pub async fn ingest(
    State(st): State<AppState>,
    ApiMultipart(mut multipart): ApiMultipart,
) -> Result<(StatusCode, Json<JobCreated>), ApiError> {
    let app = st.app()?;
    let mut staged = Staged {
        dir: app
            .config
            .uploads_dir()
            .join(uuid::Uuid::new_v4().simple().to_string()),
        bytes: 0,
        budget: st.inner.uploads.clone(),
    };
    let form = match read_form(
        &mut multipart,
        &mut staged,
        app.config.max_upload_bytes,
        app.store.disk(),
    )
    .await
    {
        Ok(f) => f,
        Err(e) => {
            if matches!(
                e.status,
                StatusCode::PAYLOAD_TOO_LARGE | StatusCode::INSUFFICIENT_STORAGE
            ) {
                drain(&mut multipart).await;
            }
            return Err(e);
        }
    };
    let Form {
        format,
        release,
        system,
        replace,
        files,
    } = form;
    let format: Format = format
        .ok_or_else(|| ApiError::bad_request("missing form field 'format'"))?
        .parse()
        .map_err(ApiError::bad_request)?;
    // Required for every format, as the form's schema says (the contract run found note
    // uploads without one accepted).
    let release = release.ok_or_else(|| ApiError::bad_request("missing form field 'release'"))?;
    if files.is_empty() {
        return Err(ApiError::bad_request("no 'file' part in the upload"));
    }
    // The form's pattern holds for every format (note formats then ignore the field).
    if system
        .as_ref()
        .is_some_and(|s| s.trim() != s || crate::domain::normalize_system(s).is_err())
    {
        return Err(ApiError::bad_request(
            "field 'system' must be 1-32 letters, digits, '_' or '-', without spaces",
        ));
    }
    if !crate::service::ingest::valid_release(&release) {
        return Err(ApiError::bad_request(format!(
            "invalid release label '{release}': use 1-64 letters, digits, '.', '_' or '-'"
        )));
    }
    let req = IngestRequest {
        format,
        release,
        system,
        files,
        replace,
        hold_out: None,
    };
    // Early, cheap checks so clients get 400/409/422 now rather than a failed job. A system
    // name the client gave is a form field (400 when invalid); one read from the files is
    // their content (422 when they do not name one).
    if !req.format.is_notes() {
        let sys = resolve_system(&req).map_err(|e| -> ApiError {
            match e {
                IngestError::Invalid(_) if req.system.is_none() => {
                    HttpError::UnreadableUpload(e).into()
                }
                IngestError::Load(_) => HttpError::UnreadableUpload(e).into(),
                other => other.into(),
            }
        })?;
        if !req.replace {
            crate::store::writer::check_not_exists(&app.store, &sys, &req.release)?;
        }
    }
    let job_id = app.submit_ingest_guarded(req, staged)?;
    Ok((StatusCode::ACCEPTED, Json(JobCreated { job_id })))
}

/// `GET /v1/jobs` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobList {
    /// The newest jobs first (at most 100): ingests (persisted) and index catch-ups (kind
    /// `catch-up`, kept in memory), with `done`/`total` of the running phase.
    pub jobs: Vec<JobStatus>,
}

/// Recent jobs, running ones with their progress.
#[utoipa::path(get, path = "/v1/jobs", tag = "ontologies",
    responses((status = 200, body = JobList), (status = 503, body = ErrorBody)))]
pub async fn jobs(State(st): State<AppState>) -> Result<Json<JobList>, ApiError> {
    let app = st.app()?;
    let jobs = super::blocking(move || app.jobs.list(100)).await??;
    Ok(Json(JobList { jobs }))
}

/// Status and progress of a job.
#[utoipa::path(get, path = "/v1/jobs/{job_id}", tag = "ontologies",
    params(("job_id" = String, Path, description = "Job id from /v1/ingest", max_length = 64)),
    responses((status = 200, body = JobStatus), (status = 404, body = ErrorBody)))]
pub async fn job(
    State(st): State<AppState>,
    ApiPath(job_id): ApiPath<String>,
) -> Result<Json<JobStatus>, ApiError> {
    let app = st.app()?;
    if job_id.len() > 64 {
        return Err(ApiError::not_found("no such job"));
    }
    match app.jobs.get(&job_id)? {
        Some(s) => Ok(Json(s)),
        None => Err(ApiError::not_found(format!("no job {job_id}"))),
    }
}
