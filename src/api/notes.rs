//! Note endpoints (NoteContrast): add and read notes, hybrid note search, ICD coding of a note.
//! Validation and shaping only; the work is in [`crate::notes`].

use super::error::{ApiError, ApiJson, ApiPath, ErrorBody};
use super::{blocking, AppState};
use crate::notes::ingest::{normalize_code, validate_note};
use crate::notes::NoteHit;
use crate::search::engine::{Mode, Query};
use crate::store::model::ConceptRef;
use crate::store::notes::Note;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Largest `k` for note search and coding.
pub const MAX_K: usize = 1000;
/// Longest search query, in bytes.
pub const MAX_QUERY_BYTES: usize = 4096;

/// `POST /v1/notes` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NoteRequest {
    /// Id (default: a new UUID). 1-256 bytes, unique.
    pub id: Option<String>,
    /// The note text (≤ 4 MiB).
    pub text: String,
    /// Codes assigned to the note, in order.
    pub codes: Option<Vec<ConceptRef>>,
    /// Free-form metadata object (`patient`, `time`, ...).
    #[schema(value_type = Object)]
    pub meta: Option<serde_json::Value>,
}

/// Answer of a stored note.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoteCreated {
    /// The note's id.
    pub id: String,
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
}

fn notes_err(e: crate::notes::NotesError) -> ApiError {
    e.into()
}

/// Store one note (bulk loads: `POST /v1/ingest` with `notes-jsonl` or `mimic-notes-csv`).
#[utoipa::path(post, path = "/v1/notes", operation_id = "note_create", tag = "notes", request_body = NoteRequest,
    responses((status = 201, body = NoteCreated), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn create(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<NoteRequest>,
) -> Result<(StatusCode, ApiJson<NoteCreated>), ApiError> {
    let app = st.app()?;
    let id = req
        .id
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    validate_note(&id, &req.text).map_err(ApiError::bad_request)?;
    let codes = req.codes.unwrap_or_default();
    if codes.len() > crate::notes::ingest::MAX_CODES {
        return Err(ApiError::bad_request(format!(
            "at most {} codes per note",
            crate::notes::ingest::MAX_CODES
        )));
    }
    let codes = codes
        .iter()
        .map(|c| normalize_code(&c.system, &c.code))
        .collect::<Result<Vec<_>, _>>()
        .map_err(ApiError::bad_request)?;
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
    let notes = app.notes.clone();
    blocking(move || -> Result<(), ApiError> {
        notes.store.insert(note)?;
        notes.sync(None).map_err(notes_err)
    })
    .await??;
    Ok((StatusCode::CREATED, ApiJson(NoteCreated { id })))
}

/// A stored note by id.
#[utoipa::path(get, path = "/v1/notes/{id}", operation_id = "note_get", tag = "notes",
    params(("id" = String, Path, description = "Note id")),
    responses((status = 200, body = NoteResponse), (status = 404, body = ErrorBody)))]
pub async fn get(
    State(st): State<AppState>,
    ApiPath(id): ApiPath<String>,
) -> Result<ApiJson<NoteResponse>, ApiError> {
    let app = st.app()?;
    let found = blocking(move || app.notes.store.get(&id).map(|n| (id, n))).await??;
    match found {
        (_, Some(s)) => Ok(ApiJson(NoteResponse {
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
    /// Free text (1..4096 bytes).
    pub query: String,
    /// Notes wanted (1..1000, default 10).
    pub k: Option<usize>,
    /// `hybrid` (default), `lexical` or `vector`.
    pub mode: Option<Mode>,
}

/// Note search answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct NoteSearchResponse {
    /// Notes, best first.
    pub results: Vec<NoteHit>,
    /// Server time, milliseconds.
    pub took_ms: f64,
}

fn check_k(k: Option<usize>, default: usize) -> Result<usize, ApiError> {
    let k = k.unwrap_or(default);
    if k == 0 || k > MAX_K {
        return Err(ApiError::bad_request(format!(
            "k must be between 1 and {MAX_K}, got {k}"
        )));
    }
    Ok(k)
}

/// Hybrid search over notes: BM25 over note texts fused with the note encoder's cosine.
#[utoipa::path(post, path = "/v1/notes/search", operation_id = "note_search", tag = "notes", request_body = NoteSearchRequest,
    responses((status = 200, body = NoteSearchResponse), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody)))]
pub async fn search(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<NoteSearchRequest>,
) -> Result<ApiJson<NoteSearchResponse>, ApiError> {
    let t = std::time::Instant::now();
    if req.query.trim().is_empty() || req.query.len() > MAX_QUERY_BYTES {
        return Err(ApiError::bad_request(format!(
            "'query' must be 1-{MAX_QUERY_BYTES} bytes"
        )));
    }
    let k = check_k(req.k, 10)?;
    let mode = req.mode.unwrap_or_default();
    if mode == Mode::Exact {
        return Err(ApiError::bad_request(
            "note search supports hybrid, lexical or vector",
        ));
    }
    let notes = st.app()?.notes.clone();
    let model = notes.note_model();
    let qvec = match (mode, &model) {
        (Mode::Lexical, _) => None,
        (_, Some(m)) => Some(notes.embed(m, req.query.clone()).await.map_err(notes_err)?),
        (Mode::Vector, None) => {
            return Err(ApiError::bad_request(
                "vector search needs a notes or terms model; none is loaded",
            ))
        }
        (_, None) => None,
    };
    let query = req.query;
    let results = blocking(move || {
        let lexical_query = if mode == Mode::Vector { "" } else { &query };
        notes.search(lexical_query, &query, k, qvec.as_deref())
    })
    .await?
    .map_err(notes_err)?;
    Ok(ApiJson(NoteSearchResponse {
        results,
        took_ms: t.elapsed().as_secs_f64() * 1000.0,
    }))
}

/// `POST /v1/notes/code` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeRequest {
    /// The note text (≤ 4 MiB).
    pub text: String,
    /// Codes wanted (1..1000, default 8).
    pub k: Option<usize>,
    /// `ICD10CM` or `ICD9CM` (default: every system of the model's vocabulary).
    pub system: Option<String>,
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
}

/// Rank ICD codes for a note: the trained NoteContrast model's note vector against its code
/// vectors, or, without one, the terms encoder's pooled note vector against code names.
#[utoipa::path(post, path = "/v1/notes/code", operation_id = "note_code", tag = "notes", request_body = CodeRequest,
    responses((status = 200, body = CodeResponse), (status = 400, body = ErrorBody),
        (status = 429, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn code(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<CodeRequest>,
) -> Result<ApiJson<CodeResponse>, ApiError> {
    let app = st.app()?;
    validate_note("x", &req.text).map_err(ApiError::bad_request)?;
    let k = check_k(req.k, 8)?;
    let system = match &req.system {
        Some(s) => Some(
            crate::ingest::normalize_system(s).map_err(|e| ApiError::bad_request(e.to_string()))?,
        ),
        None => None,
    };
    let notes = app.notes.clone();
    let model = notes
        .note_model()
        .ok_or_else(|| notes_err(crate::notes::NotesError::NoModel))?;
    let store = app.store.clone();
    if let Some((name, coder)) = notes.coder() {
        if let Some(s) = &system {
            if !coder.manifest.systems.contains(s) {
                return Err(ApiError::bad_request(format!(
                    "model {name} codes {}; it has no {s} codes",
                    coder.manifest.systems.join(", ")
                )));
            }
        }
        let (v, segments) = notes
            .embed_for_coding(&model, req.text)
            .await
            .map_err(notes_err)?;
        let score_kind = if coder.segment_config().is_some() && !segments.is_empty() {
            "segment_attention"
        } else {
            "cosine"
        };
        let codes = blocking(move || -> Result<Vec<CodeResult>, ApiError> {
            let th = coder.manifest.threshold;
            coder
                .rank_segments(&segments, &v, system.as_deref(), k)
                .into_iter()
                .map(|s| {
                    let preferred_term = store
                        .concept(&s.code.system, &s.code.code)?
                        .map(|c| c.concept.preferred_term)
                        .unwrap_or_default();
                    Ok(CodeResult {
                        system: s.code.system,
                        code: s.code.code,
                        preferred_term,
                        score: s.score,
                        predicted: s.score >= th,
                    })
                })
                .collect()
        })
        .await??;
        let th = notes.coder().map(|(_, c)| c.manifest.threshold);
        return Ok(ApiJson(CodeResponse {
            codes,
            model: name,
            method: "notecontrast".into(),
            threshold: th,
            score_kind: score_kind.into(),
        }));
    }
    // zero-shot: the terms encoder's pooled note vector against the code names it indexed
    let v = notes.embed(&model, req.text).await.map_err(notes_err)?;
    let eng = app.search.clone().ok_or_else(ApiError::not_ready)?;
    let systems: Vec<String> = match system {
        Some(s) => vec![s],
        None => ["ICD10CM", "ICD9CM"]
            .into_iter()
            .filter(|s| app.store.has_system(s))
            .map(str::to_string)
            .collect(),
    };
    if systems.is_empty() {
        return Err(ApiError::bad_request(
            "no ICD system is loaded; ingest ICD-10-CM or ICD-9-CM first",
        ));
    }
    let m = model.clone();
    let found = blocking(move || {
        let q = Query {
            text: String::new(),
            k,
            mode: Mode::Vector,
            systems: Some(systems),
            model: Some(m),
            fusion: crate::search::fusion::FusionMethod::Rrf { k: 60.0 },
        };
        eng.search_with_vector(&q, Some(&v))
    })
    .await??;
    Ok(ApiJson(CodeResponse {
        codes: found
            .into_iter()
            .map(|f| CodeResult {
                system: f.system,
                code: f.code,
                preferred_term: f.preferred_term,
                score: f.score,
                predicted: false,
            })
            .collect(),
        model,
        method: "zero_shot".into(),
        threshold: None,
        score_kind: "cosine".into(),
    }))
}
