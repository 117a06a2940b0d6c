//! `POST /v1/ingest` (multipart upload streamed to disk, then a background job) and
//! `GET /v1/jobs/{job_id}`.

use super::error::{ApiError, ApiMultipart, ApiPath, ErrorBody};
use super::AppState;
use crate::ingest::IngestRequest;
use crate::jobs::JobStatus;
use crate::ontology::{Format, InputFile};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use tokio::io::AsyncWriteExt;
use utoipa::ToSchema;

/// Form fields of an ingest upload (for the OpenAPI document).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct IngestForm {
    /// One of `umls-rrf`, `rxnorm-rrf`, `loinc-csv`, `phecode-csv`, `icd10cm-xml`, `icd9cm-txt`,
    /// `icd9cm-csv`, `obo`, `notes-jsonl`, `mimic-notes-csv` (NOTEEVENTS.csv + DIAGNOSES_ICD.csv).
    format: String,
    /// Release label, 1-64 of `[A-Za-z0-9._-]` (optional for note formats).
    release: Option<String>,
    /// System name override (default: the format's, or an OBO file's `ontology:` header).
    system: Option<String>,
    /// `true` to replace an existing release with the same label.
    replace: Option<bool>,
    /// The release's files (repeat the part for multi-file releases).
    #[schema(value_type = Vec<String>, format = Binary)]
    file: Vec<Vec<u8>>,
}

/// Answer of an accepted ingest.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobCreated {
    /// Id to poll at `/v1/jobs/{job_id}`.
    pub job_id: String,
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

fn multipart_error(e: axum::extract::multipart::MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            e.body_text(),
        )
    } else {
        ApiError::bad_request(format!("malformed multipart body: {}", e.body_text()))
    }
}

/// Upload a release and start ingesting it.
///
/// Files are streamed to a staging directory (never held in memory), then a background job
/// parses and stores them; poll the job for progress. A failed job leaves nothing behind.
#[utoipa::path(post, path = "/v1/ingest", tag = "ontologies",
    request_body(content = IngestForm, content_type = "multipart/form-data"),
    responses((status = 202, body = JobCreated), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn ingest(
    State(st): State<AppState>,
    ApiMultipart(mut multipart): ApiMultipart,
) -> Result<(StatusCode, Json<JobCreated>), ApiError> {
    let app = st.app()?;
    let staging = app
        .config
        .uploads_dir()
        .join(uuid::Uuid::new_v4().simple().to_string());
    // Remove the staging directory on every early return.
    struct Cleanup(Option<std::path::PathBuf>);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            if let Some(p) = self.0.take() {
                let _ = std::fs::remove_dir_all(p);
            }
        }
    }
    let mut guard = Cleanup(Some(staging.clone()));
    tokio::fs::create_dir_all(&staging)
        .await
        .map_err(|e| ApiError::internal(format!("cannot create upload directory: {e}")))?;
    let (mut format, mut release, mut system, mut replace) = (None, None, None, false);
    let mut files = Vec::new();
    let mut total: u64 = 0;
    let cap = app.config.max_upload_bytes;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        let name = field.name().unwrap_or("").to_string();
        match name.as_str() {
            "file" | "files" | "file[]" => {
                let client_name = field.file_name().unwrap_or("upload").to_string();
                let safe = safe_file_name(&client_name).ok_or_else(|| {
                    ApiError::bad_request(format!("unusable file name {client_name:?}"))
                })?;
                let path = staging.join(format!("{:03}-{safe}", files.len()));
                let mut out = tokio::fs::File::create(&path)
                    .await
                    .map_err(|e| ApiError::internal(format!("cannot stage upload: {e}")))?;
                while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
                    total += chunk.len() as u64;
                    if total > cap {
                        return Err(ApiError::new(
                            StatusCode::PAYLOAD_TOO_LARGE,
                            "body_too_large",
                            format!("upload exceeds the limit of {cap} bytes"),
                        ));
                    }
                    out.write_all(&chunk)
                        .await
                        .map_err(|e| ApiError::internal(format!("cannot stage upload: {e}")))?;
                }
                out.flush()
                    .await
                    .map_err(|e| ApiError::internal(format!("cannot stage upload: {e}")))?;
                files.push(InputFile { path, name: safe });
            }
            "format" | "release" | "system" | "replace" => {
                let text = field.text().await.map_err(multipart_error)?;
                if text.len() > 256 {
                    return Err(ApiError::bad_request(format!("field '{name}' is too long")));
                }
                let text = text.trim().to_string();
                match name.as_str() {
                    "format" => format = Some(text),
                    "release" => release = Some(text),
                    "system" if !text.is_empty() => system = Some(text),
                    "replace" => {
                        replace = match text.as_str() {
                            "true" | "1" | "yes" => true,
                            "false" | "0" | "no" | "" => false,
                            other => {
                                return Err(ApiError::bad_request(format!(
                                    "field 'replace' must be true or false, got {other:?}"
                                )))
                            }
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
    let format: Format = format
        .ok_or_else(|| ApiError::bad_request("missing form field 'format'"))?
        .parse()
        .map_err(ApiError::bad_request)?;
    let release = match (release, format.is_notes()) {
        (Some(r), _) => r,
        // notes are not versioned releases; the label is optional and only logged
        (None, true) => "notes".to_string(),
        (None, false) => return Err(ApiError::bad_request("missing form field 'release'")),
    };
    if files.is_empty() {
        return Err(ApiError::bad_request("no 'file' part in the upload"));
    }
    if !crate::ingest::valid_release(&release) {
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
    // Early, cheap checks so clients get 400/409 now rather than a failed job.
    if !req.format.is_notes() {
        let sys = crate::ingest::resolve_system(&req)?;
        if !req.replace {
            crate::store::writer::check_not_exists(&app.store, &sys, &req.release)?;
        }
    }
    let dir = guard.0.take();
    let job_id = app.submit_ingest(req, dir)?;
    Ok((StatusCode::ACCEPTED, Json(JobCreated { job_id })))
}

/// Status and progress of a job.
#[utoipa::path(get, path = "/v1/jobs/{job_id}", tag = "ontologies",
    params(("job_id" = String, Path, description = "Job id from /v1/ingest")),
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
