//! The one place where subsystem errors become HTTP responses, in the error shape of API.md:
//! `{"error": {"code": "snake_case", "message": "...", "details": {...}}}`.

use crate::service::ingest::IngestError;
use crate::store::StoreError;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

/// Refusals decided by the HTTP layer itself (middleware, request checks, upload streaming).
/// Subsystem errors have their own enums; every one is mapped to a status below, and nowhere
/// else.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A write without the configured bearer token (401 + `WWW-Authenticate`).
    #[error("this endpoint writes data and needs `Authorization: Bearer <token>`")]
    Unauthorized,
    /// A write sent to a read-only node (403, with the writer's URL when configured).
    #[error("this node is a read-only replica: send writes to the writer{}", .writer.as_deref().map(|w| format!(" at {w}")).unwrap_or_default())]
    ReadOnly {
        /// The writer's base URL (`--writer-url`).
        writer: Option<String>,
    },
    /// The request did not finish within its deadline (503 + `Retry-After`).
    #[error("the request did not finish within {timeout_ms} ms; retry later or ask for less")]
    DeadlineExceeded {
        /// The deadline, in milliseconds.
        timeout_ms: u64,
    },
    /// A text field is over its limit of UTF-8 bytes (413, like a body over the limit).
    #[error("'{field}' is {bytes} bytes of UTF-8; the limit is {limit}")]
    TextTooLarge {
        /// The field.
        field: &'static str,
        /// Its size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// A path names a system with no loaded release (404 `unknown_system`); `None` when the
    /// name cannot be one (empty or too long) and was not looked up.
    #[error("no release of {} is loaded", .0.as_deref().map_or("this system".to_string(), |s| format!("system {s}")))]
    UnknownSystem(Option<String>),
    /// A path names a concept its (loaded) system does not have (404 `not_found`).
    #[error("no concept {code} in {system}")]
    UnknownConcept {
        /// The system.
        system: String,
        /// The code.
        code: String,
    },
    /// An upload is over the per-request limit (413).
    #[error("upload exceeds the limit of {limit} bytes")]
    UploadTooLarge {
        /// `--max-upload-bytes`.
        limit: u64,
    },
    /// Uploads staged by in-flight ingests would pass the cap (507 + `Retry-After`).
    #[error("uploads staged by in-flight ingests would pass the server's cap of {cap} bytes; retry when they finish")]
    StagingCapReached {
        /// `--max-staged-bytes`.
        cap: u64,
    },
    /// The data directory is full while staging an upload (507).
    #[error("the server's data directory is full; the upload was discarded ({0})")]
    StorageFull(std::io::Error),
    /// The data directory cannot be written (503).
    #[error("the server cannot write to its data directory ({0})")]
    StorageReadOnly(std::io::Error),
    /// Any other failure to stage an upload (500).
    #[error("cannot stage the upload: {0}")]
    Staging(std::io::Error),
    /// A well-formed upload whose files do not parse as their format or name no system: the
    /// early check of `POST /v1/ingest` (422, with the file and line when known).
    #[error(transparent)]
    UnreadableUpload(IngestError),
}

/// An error answer.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code.
    pub code: &'static str,
    /// Human-readable message.
    pub message: String,
    /// Extra structured information.
    pub details: Value,
    /// Seconds for `Retry-After` (429/503).
    pub retry_after: Option<u64>,
}

/// The body of every error response (for the OpenAPI document).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Inner error object.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable snake_case code, e.g. `invalid_request`, `not_found`, `release_exists`.
    pub code: String,
    /// What went wrong, for humans.
    pub message: String,
    /// Structured details (field, file, line, limits...).
    #[schema(value_type = Object)]
    pub details: Value,
}

impl ApiError {
    /// A new error.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: json!({}),
            retry_after: None,
        }
    }

    /// 400 with code `invalid_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    /// 404 with code `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 503 with code `not_ready`.
    pub fn not_ready() -> Self {
        let mut e = Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not_ready",
            "the server is still opening its store and indexes",
        );
        e.retry_after = Some(1);
        e
    }

    /// 500 with code `internal` (never for bad input).
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }

    /// Attach details.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if self.status.is_server_error() {
            tracing::error!(code = self.code, message = %self.message, "request failed");
        }
        let body =
            json!({"error": {"code": self.code, "message": self.message, "details": self.details}});
        let mut resp = (self.status, axum::Json(body)).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"ontovec\""),
            );
        }
        resp
    }
}

impl From<HttpError> for ApiError {
    fn from(e: HttpError) -> Self {
        use HttpError as E;
        let message = e.to_string();
        match e {
            E::Unauthorized => ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message),
            E::ReadOnly { writer } => ApiError::new(StatusCode::FORBIDDEN, "read_only", message)
                .with_details(json!({ "writer": writer })),
            E::DeadlineExceeded { timeout_ms } => {
                let mut err = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "deadline_exceeded",
                    message,
                )
                .with_details(json!({"timeout_ms": timeout_ms}));
                err.retry_after = Some(1);
                err
            }
            E::TextTooLarge { field, limit, .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", message)
                    .with_details(json!({"field": field, "limit_bytes": limit}))
            }
            E::UnknownSystem(system) => {
                let err = ApiError::new(StatusCode::NOT_FOUND, "unknown_system", message);
                match system {
                    Some(s) => err.with_details(json!({"system": s})),
                    None => err,
                }
            }
            E::UnknownConcept { system, code } => {
                ApiError::not_found(message).with_details(json!({"system": system, "code": code}))
            }
            E::UploadTooLarge { limit } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", message)
                    .with_details(json!({"limit_bytes": limit}))
            }
            E::StagingCapReached { cap } => {
                let mut err = ApiError::new(
                    StatusCode::INSUFFICIENT_STORAGE,
                    "insufficient_storage",
                    message,
                )
                .with_details(json!({"limit_bytes": cap}));
                err.retry_after = Some(30);
                err
            }
            E::StorageFull(_) => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                message,
            ),
            E::StorageReadOnly(_) => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_read_only",
                message,
            ),
            E::Staging(_) => ApiError::internal(message),
            E::UnreadableUpload(IngestError::Invalid(m)) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "system_unknown",
                format!("{m}; give the `system` field"),
            ),
            E::UnreadableUpload(IngestError::Load(l)) => {
                let loc = l.location().map(|(f, n)| json!({"file": f, "line": n}));
                ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_input_file",
                    l.to_string(),
                )
                .with_details(loc.unwrap_or_else(|| json!({})))
            }
            E::UnreadableUpload(other) => other.into(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let full = |e: &StoreError| {
            let m = e
                .storage_full_advice("request")
                .unwrap_or_else(|| e.to_string());
            ApiError::new(StatusCode::INSUFFICIENT_STORAGE, "insufficient_storage", m)
        };
        match &e {
            StoreError::DiskLow { .. } => full(&e),
            _ if e.is_storage_full() => full(&e),
            StoreError::ReleaseExists { system, release } => {
                ApiError::new(StatusCode::CONFLICT, "release_exists", e.to_string())
                    .with_details(json!({"system": system, "release": release}))
            }
            StoreError::SchemaTooNew { .. } | StoreError::NeedsMigration { .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_version",
                e.to_string(),
            ),
            StoreError::Aborted(m) => ApiError::bad_request(m.clone()),
            StoreError::Sled(_) | StoreError::Corrupt { .. } | StoreError::Staging { .. } => {
                ApiError::internal(e.to_string())
            }
        }
    }
}

impl From<IngestError> for ApiError {
    fn from(e: IngestError) -> Self {
        match e {
            IngestError::Store(s) => s.into(),
            IngestError::Invalid(m) => ApiError::bad_request(m),
            IngestError::Load(crate::ontology::LoadError::StorageFull {
                message,
                store_stopped,
            }) => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "insufficient_storage",
                crate::store::disk::advice(&message, store_stopped, "request"),
            ),
            IngestError::Load(l) => {
                let loc = l.location().map(|(f, n)| json!({"file": f, "line": n}));
                ApiError::new(StatusCode::BAD_REQUEST, "invalid_input_file", l.to_string())
                    .with_details(loc.unwrap_or_else(|| json!({})))
            }
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = match &r {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            JsonRejection::BytesRejection(_) => {
                if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    StatusCode::PAYLOAD_TOO_LARGE
                } else {
                    StatusCode::BAD_REQUEST
                }
            }
            _ => StatusCode::BAD_REQUEST,
        };
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            _ => "invalid_json",
        };
        ApiError::new(status, code, r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        ApiError::bad_request(r.body_text())
    }
}

/// JSON body extractor whose rejections use our error shape.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl<T: Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// Path extractor whose rejections use our error shape.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// Query extractor whose rejections use our error shape.
#[derive(Debug, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

impl From<axum::extract::multipart::MultipartRejection> for ApiError {
    fn from(r: axum::extract::multipart::MultipartRejection) -> Self {
        ApiError::bad_request(format!(
            "expected a multipart/form-data body: {}",
            r.body_text()
        ))
    }
}

impl From<axum::extract::multipart::MultipartError> for ApiError {
    fn from(e: axum::extract::multipart::MultipartError) -> Self {
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
}

/// Multipart extractor whose rejections use our error shape.
#[derive(Debug)]
pub struct ApiMultipart(pub axum::extract::Multipart);

impl<S: Send + Sync> axum::extract::FromRequest<S> for ApiMultipart {
    type Rejection = ApiError;
    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Self, Self::Rejection> {
        axum::extract::Multipart::from_request(req, state)
            .await
            .map(ApiMultipart)
            .map_err(ApiError::from)
    }
}

impl From<crate::encoder::EncoderError> for ApiError {
    fn from(e: crate::encoder::EncoderError) -> Self {
        use crate::encoder::EncoderError as E;
        match &e {
            E::UnknownModel(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_model", e.to_string())
            }
            E::Overloaded { retry_after_ms } => {
                let mut err =
                    ApiError::new(StatusCode::TOO_MANY_REQUESTS, "overloaded", e.to_string());
                err.retry_after = Some(retry_after_ms.div_ceil(1000).max(1));
                err
            }
            E::InvalidInput(_) => ApiError::bad_request(e.to_string()),
            E::Load { .. } | E::Inference(_) | E::Cancelled => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "encoder_unavailable",
                e.to_string(),
            ),
        }
    }
}

impl From<crate::service::models::ModelCardError> for ApiError {
    fn from(e: crate::service::models::ModelCardError) -> Self {
        use crate::service::models::ModelCardError as E;
        let message = e.to_string();
        match e {
            E::UnknownModel(m) => ApiError::new(StatusCode::NOT_FOUND, "unknown_model", message)
                .with_details(json!({"model": m})),
            E::NotServed(f) => ApiError::not_found(message).with_details(
                json!({"file": f, "served": crate::service::models::CARD_FILES.map(|c| c.0)}),
            ),
            E::Missing { model, file } => {
                ApiError::not_found(message).with_details(json!({"model": model, "file": file}))
            }
            E::Io { .. } => ApiError::internal(message),
        }
    }
}

impl From<crate::search::SearchError> for ApiError {
    fn from(e: crate::search::SearchError) -> Self {
        use crate::search::SearchError as S;
        match e {
            S::InvalidQuery(m) => ApiError::bad_request(m),
            S::Unavailable(m) => {
                let mut err = ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "vector_store_unavailable",
                    m,
                );
                err.retry_after = Some(5);
                err
            }
            other => ApiError::internal(other.to_string()),
        }
    }
}

impl From<crate::search::engine::EngineError> for ApiError {
    fn from(e: crate::search::engine::EngineError) -> Self {
        use crate::search::engine::EngineError as E;
        match e {
            E::Encoder(x) => x.into(),
            E::Store(x) => x.into(),
            E::Invalid(m) => ApiError::bad_request(m),
            E::UnknownSystem(s) => ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_system",
                format!("no release of system {s} is loaded"),
            )
            .with_details(json!({"system": s})),
            E::UnknownConcept(s, c) => ApiError::not_found(format!("no concept {c} in {s}"))
                .with_details(json!({"system": s, "code": c})),
            E::Search(x) => x.into(),
            E::Cache(x) => ApiError::internal(x.to_string()),
            E::Worker(m) => ApiError::internal(format!("search worker failed: {m}")),
            E::NothingToSearch(q) => ApiError::new(
                StatusCode::NOT_FOUND,
                "nothing_to_search",
                format!("the query {q:?} has no letter or digit: nothing to search"),
            )
            .with_details(json!({"query": q})),
        }
    }
}

impl From<crate::store::notes::InsertError> for ApiError {
    fn from(e: crate::store::notes::InsertError) -> Self {
        use crate::store::notes::{InsertError, NoteConflict};
        match e {
            InsertError::Conflict(NoteConflict::Exists(id))
            | InsertError::Conflict(NoteConflict::DuplicateInBatch(id)) => ApiError::new(
                StatusCode::CONFLICT,
                "note_exists",
                format!("a note with id '{id}' already exists"),
            )
            .with_details(json!({"id": id})),
            InsertError::Store(s) => s.into(),
        }
    }
}

impl From<crate::notes::NotesError> for ApiError {
    fn from(e: crate::notes::NotesError) -> Self {
        use crate::notes::NotesError as E;
        match e {
            E::Store(s) => s.into(),
            E::Encoder(x) => x.into(),
            E::Search(x) => x.into(),
            E::NoModel => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "encoder_unavailable",
                e.to_string(),
            ),
            E::Model(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "encoder_unavailable", m),
            E::Invalid(m) => ApiError::bad_request(m),
            E::UnknownSystem { system, message } => {
                ApiError::new(StatusCode::NOT_FOUND, "unknown_system", message)
                    .with_details(json!({"system": system}))
            }
            E::NoIcdSystem => ApiError::new(StatusCode::NOT_FOUND, "unknown_system", e.to_string())
                .with_details(json!({"systems": crate::notes::predict::ICD_SYSTEMS})),
            E::NothingToCode(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "nothing_to_code", m)
                    .with_details(json!({"field": "text"}))
            }
            E::Engine(x) => x.into(),
            E::Worker(m) => ApiError::internal(format!("notes worker failed: {m}")),
        }
    }
}
