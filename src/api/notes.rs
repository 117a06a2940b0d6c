//! Note endpoints (NoteContrast): add and read notes, hybrid note search, ICD coding of a note.
//! Validation and shaping only; the work is in [`crate::notes`]. The request schemas state
//! every rule the handlers check (the contract test, `scripts/contract.sh`, holds them to it).

use super::error::{ApiError, ApiJson, ApiPath, ErrorBody, HttpError};
use super::search::engine;
use super::validate::{
    check_chars, check_k, check_nonblank, check_text, de_count, is_space, nonblank_text_schema,
    space_class, text_schema,
};
use super::{blocking, AppState};
use crate::domain::model::ConceptRef;
use crate::notes::ingest::{normalize_code, validate_note, MAX_CODES, MAX_TEXT_BYTES};
use crate::notes::predict::IcdSystem;
use crate::notes::query::NoteSearchMode;
use crate::notes::rank::Evidence;
use crate::notes::NoteHit;
use crate::store::notes::{Note, MAX_ID_CHARS};
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::openapi::schema::{ObjectBuilder, Type};
use utoipa::ToSchema;

/// Longest note text, in characters; its UTF-8 must also fit in [`MAX_TEXT_BYTES`] (else 413).
pub const MAX_NOTE_CHARS: usize = MAX_TEXT_BYTES;
/// Longest code of a note, in characters.
pub const MAX_CODE_CHARS: usize = crate::notes::ingest::MAX_CODE_CHARS;

/// Control characters (Unicode `Cc`) as the inside of a JSON Schema character class.
const CONTROL_CLASS: &str = "\\u0000-\\u001f\\u007f-\\u009f";

/// Schema of a note text: 1..4 Mi characters, not only white space.
fn note_text_schema() -> utoipa::openapi::Object {
    nonblank_text_schema(MAX_NOTE_CHARS)
}

/// Schema of a note id: 1..256 characters, no control characters.
fn note_id_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .min_length(Some(1))
        .max_length(Some(MAX_ID_CHARS))
        .pattern(Some(format!("^[^{CONTROL_CLASS}]*$")))
}

/// Schema of the optional `id` of `POST /v1/notes`.
fn optional_id_schema() -> utoipa::openapi::Object {
    note_id_schema()
        .schema_type(utoipa::openapi::schema::SchemaType::from_iter([
            Type::String,
            Type::Null,
        ]))
        .description(Some("Id (default: a new UUID): 1-256 characters without control characters, unique (409 when taken)."))
        .build()
}

/// Schema of a code on a note: 1..64 characters, some not white space, no control characters.
fn note_code_schema() -> utoipa::openapi::Object {
    let space = space_class();
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_CODE_CHARS))
        .pattern(Some(format!(
            "^[^{CONTROL_CLASS}]*[^{CONTROL_CLASS}{space}][^{CONTROL_CLASS}]*$"
        )))
        .build()
}

/// A note text: what [`note_text_schema`] says (400), and at most [`MAX_TEXT_BYTES`] of UTF-8
/// (413, like a body over the limit).
fn check_note_text(text: &str) -> Result<(), ApiError> {
    check_nonblank("text", text)?;
    check_chars("text", text, MAX_NOTE_CHARS)?;
    if text.len() > MAX_TEXT_BYTES {
        return Err(HttpError::TextTooLarge {
            field: "text",
            bytes: text.len(),
            limit: MAX_TEXT_BYTES,
        }
        .into());
    }
    Ok(())
}

/// A code on a posted note, checked as [`NoteCode`]'s schema says before it is normalised.
fn check_note_code(c: &NoteCode) -> Result<ConceptRef, ApiError> {
    let sys_ok = (1..=32).contains(&c.system.len())
        && c.system
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | '-'));
    if !sys_ok {
        return Err(ApiError::bad_request(format!(
            "invalid system name {:?}: use 1-32 letters, digits, '_' or '-'",
            c.system
        )));
    }
    let n = c.code.chars().count();
    if n == 0
        || n > MAX_CODE_CHARS
        || c.code.chars().any(char::is_control)
        || c.code.chars().all(is_space)
    {
        return Err(ApiError::bad_request(format!(
            "code {:?} of {} must be 1-{MAX_CODE_CHARS} characters, not only white space, without control characters",
            c.code, c.system
        )));
    }
    normalize_code(&c.system, &c.code).map_err(ApiError::bad_request)
}

/// A code assigned to a posted note.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteCode {
    /// System: 1-32 letters, digits, `_` or `-` (stored upper-case).
    #[schema(example = "ICD10CM", pattern = "^[A-Za-z0-9_-]{1,32}$")]
    pub system: String,
    /// Code (ICD-9-CM/ICD-10-CM codes without their dot get it: `4280` → `428.0`).
    #[schema(example = "E11.9", schema_with = note_code_schema)]
    pub code: String,
}

/// `POST /v1/notes` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// Id (default: a new UUID): 1-256 characters without control characters, unique (409 when taken).
    #[schema(schema_with = optional_id_schema)]
    pub id: Option<String>,
    /// The note text: 1..4,194,304 characters, not only white space (413 past 4 MiB of UTF-8).
    #[schema(schema_with = note_text_schema)]
    pub text: String,
    /// Codes assigned to the note, in order (at most 512).
    #[schema(max_items = 512)]
    pub codes: Option<Vec<NoteCode>>,
    /// Free-form metadata object (`patient`, `time`, ...).
    #[schema(value_type = Option<Object>)]
    pub meta: Option<serde_json::Value>,
}

/// Answer of a stored note.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoteCreated {
    /// The note's id.
    pub id: String,
    /// Whether note search finds it yet. A note is stored (durable, readable by `GET`) before
    /// it is indexed; the indexer adds it in the background (`GET /v1/notes/{id}` and `/ready`
    /// tell when).
    pub indexed: bool,
}

/// A stored note.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoteResponse {
    /// Id.
    pub id: String,
    /// Text.
    pub text: String,
    /// Codes in order.
    pub codes: Vec<ConceptRef>,
    /// Metadata.
    #[schema(value_type = Object)]
    pub meta: serde_json::Value,
    /// Whether note search finds it yet (the indexer adds stored notes in the background).
    pub indexed: bool,
}

/// Store one note (bulk loads: `POST /v1/ingest` with `notes-jsonl` or `mimic-notes-csv`).
#[utoipa::path(post, path = "/v1/notes", operation_id = "note_create", tag = "notes", request_body = NoteRequest,
    security(("bearer" = [])),
    responses((status = 201, body = NoteCreated), (status = 400, body = ErrorBody),
        (status = 401, description = "Missing or wrong bearer token", body = ErrorBody),
        (status = 403, description = "A read-only replica (`read_only`; `details.writer` names the writer)", body = ErrorBody),
        (status = 409, description = "A note with this id exists", body = ErrorBody),
        (status = 413, description = "Body or text too large", body = ErrorBody),
        (status = 507, description = "The data directory is down to its free-space reserve (`insufficient_storage`); nothing was stored", body = ErrorBody)))]
pub async fn create(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<NoteRequest>,
) -> Result<(StatusCode, ApiJson<NoteCreated>), ApiError> {
    let app = st.app()?;
    let id = req
        .id
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    check_note_text(&req.text)?;
    validate_note(&id, &req.text).map_err(ApiError::bad_request)?;
    let codes = req.codes.unwrap_or_default();
    if codes.len() > MAX_CODES {
        return Err(ApiError::bad_request(format!(
            "at most {MAX_CODES} codes per note"
        )));
    }
    let codes = codes
        .iter()
        .map(check_note_code)
        .collect::<Result<Vec<_>, _>>()?;
    let meta_json = match req.meta {
        None | Some(serde_json::Value::Null) => "{}".to_string(),
        Some(v @ serde_json::Value::Object(_)) => v.to_string(),
        Some(_) => return Err(ApiError::bad_request("'meta' must be an object")),
    };
    let note = Note {
        id: id.clone(),
        text: req.text,
        codes,
        meta_json,
    };
    // durable when this returns; indexing is the indexer's (never this request's) work
    let indexed = blocking(move || app.add_note(note)).await??;
    Ok((StatusCode::CREATED, ApiJson(NoteCreated { id, indexed })))
}

/// A stored note by id.
#[utoipa::path(get, path = "/v1/notes/{id}", operation_id = "note_get", tag = "notes",
    params(("id" = String, Path, description = "Note id (1-256 characters without control characters)", min_length = 1, max_length = 256,
        pattern = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$")),
    responses((status = 200, body = NoteResponse), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<NoteResponse>, ApiError> {
    let app = st.app()?;
    // An id no note can have names nothing: 404 without a lookup.
    if validate_note(&id, "x").is_err() {
        return Err(ApiError::not_found("no note has this id"));
    }
    let found = blocking(move || app.note(&id).map(|n| (id, n))).await??;
    match found {
        (_, Some((s, indexed))) => Ok(ApiJson(NoteResponse {
            indexed,
            meta: s.note.meta(),
            id: s.note.id,
            text: s.note.text,
            codes: s.note.codes,
        })),
        (id, None) => Err(ApiError::not_found(format!("no note {id}"))
            .with_details(serde_json::json!({"id": id}))),
    }
}

/// `POST /v1/notes/search` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteSearchRequest {
    /// Free text (1..4096 characters, not only white space).
    #[schema(schema_with = text_schema)]
    pub query: String,
    /// Notes wanted (1..1000, default 10).
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "de_count")]
    pub k: Option<usize>,
    /// `hybrid` (default), `lexical` or `vector`.
    pub mode: Option<NoteSearchMode>,
}

/// Note search answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoteSearchResponse {
    /// Notes, best first.
    pub results: Vec<NoteHit>,
    /// Server time, milliseconds.
    pub took_ms: f64,
}

/// Hybrid search over notes: BM25 over note texts fused with the note encoder's cosine.
#[utoipa::path(post, path = "/v1/notes/search", operation_id = "note_search", tag = "notes", request_body = NoteSearchRequest,
    responses((status = 200, body = NoteSearchResponse), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn search(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<NoteSearchRequest>,
) -> Result<ApiJson<NoteSearchResponse>, ApiError> {
    let t = std::time::Instant::now();
    check_text("query", &req.query)?;
    let k = check_k(req.k, 10)?;
    let notes = st.app()?.notes.clone();
    let results = notes
        .search_query(req.query, k, req.mode.unwrap_or_default())
        .await?;
    Ok(ApiJson(NoteSearchResponse {
        results,
        took_ms: t.elapsed().as_secs_f64() * 1000.0,
    }))
}

/// `POST /v1/notes/code` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// The note text: 1..4,194,304 characters, not only white space (413 past 4 MiB of UTF-8).
    #[schema(schema_with = note_text_schema)]
    pub text: String,
    /// Codes wanted (1..1000, default 8).
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "de_count")]
    pub k: Option<usize>,
    /// Only codes of this system (default: every system of the model's vocabulary; 404 when
    /// the model or the store has none).
    pub system: Option<IcdSystem>,
}

/// One predicted code.
#[derive(Debug, Serialize, ToSchema)]
pub struct CodeResult {
    /// System.
    pub system: String,
    /// Code.
    pub code: String,
    /// Preferred name (from the store; empty when the system is not loaded).
    pub preferred_term: String,
    /// Score of the code for the note (see `score_kind`).
    pub score: f32,
    /// Whether the score passes the model's dev-tuned threshold (set prediction).
    pub predicted: bool,
    /// The note text that supports the code, strongest first: sentences, list items or clauses
    /// with character offsets (Unicode scalar values, end exclusive) into the submitted text.
    pub evidence: Vec<Evidence>,
}

/// Coding answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct CodeResponse {
    /// Codes, best first.
    pub codes: Vec<CodeResult>,
    /// Model used.
    pub model: String,
    /// `notecontrast` (a trained model) or `zero_shot` (terms encoder vs code names).
    pub method: String,
    /// Threshold behind `predicted` (null for zero-shot ranking).
    pub threshold: Option<f32>,
    /// `segment_attention` (a trained model that attends over note segments: a gated soft
    /// maximum of segment–code cosines) or `cosine` (pooled note vector vs code vector).
    pub score_kind: String,
    /// How the note was read: markup or control characters ignored, a language other than
    /// English, nothing left to code after negated / family / resolved-history statements.
    pub warnings: Vec<String>,
}

/// Rank ICD codes for a note: the trained NoteContrast model's segment attention over its code
/// vectors, or, without one, the terms encoder's pooled note vector against code names; the list
/// diversified across 3-character categories, every code with the note text supporting it.
#[utoipa::path(post, path = "/v1/notes/code", operation_id = "note_code", tag = "notes", request_body = CodeRequest,
    responses((status = 200, body = CodeResponse), (status = 400, body = ErrorBody),
        (status = 404, description = "The model or the store has no codes of the system asked for", body = ErrorBody),
        (status = 413, description = "Body or text too large", body = ErrorBody),
        (status = 422, description = "The text has no letter or digit outside markup and control characters (`nothing_to_code`)", body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, description = "No model can encode notes, not ready yet, or the request deadline passed", body = ErrorBody)))]
pub async fn code(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<CodeRequest>,
) -> Result<ApiJson<CodeResponse>, ApiError> {
    let app = st.app()?;
    check_note_text(&req.text)?;
    let k = check_k(req.k, 8)?;
    let p = app
        .notes
        .predict_codes(req.text, k, req.system, &app.store, &engine(&st)?)
        .await?;
    Ok(ApiJson(CodeResponse {
        codes: p
            .codes
            .into_iter()
            .map(|c| CodeResult {
                system: c.system,
                code: c.code,
                preferred_term: c.preferred_term,
                score: c.score,
                predicted: c.predicted,
                evidence: c.evidence,
            })
            .collect(),
        model: p.model,
        method: p.method.into(),
        threshold: p.threshold,
        score_kind: p.score_kind.into(),
        warnings: p.warnings,
    }))
}
