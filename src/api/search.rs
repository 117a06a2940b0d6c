//! Search endpoints: search, normalize, relatedness, similar, embed (models: [`super::models`]). Validation and
//! shaping only: the engine embeds queries and ranks ([`crate::search::query`],
//! [`crate::search::relatedness`]), the encoder infers.

use super::error::{ApiError, ApiJson, ErrorBody};
use super::validate::{
    check_batch, check_k, check_systems, check_text, de_count, fusion, text_list_schema,
    text_schema, FusionParams,
};
use super::AppState;
use crate::search::engine::{Found, Mode, Query, SearchEngine};
use crate::search::query::DEFAULT_FUSION;
use crate::search::relatedness::Side as EngineSide;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// `POST /v1/search` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Free text (1..4096 characters, not only white space).
    #[schema(schema_with = text_schema)]
    pub query: String,
    /// Concepts wanted (1..1000, default 10).
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "de_count")]
    pub k: Option<usize>,
    /// `hybrid` (default), `lexical`, `vector` or `exact`.
    pub mode: Option<Mode>,
    /// Only these systems (1..64 names; a system with no loaded release is a 404).
    #[schema(min_items = 1, max_items = 64)]
    pub systems: Option<Vec<String>>,
    /// Terms model (default: the default terms model).
    pub model: Option<String>,
    /// Fusion settings (hybrid).
    pub fusion: Option<FusionParams>,
    /// Return each result's features and their weighted contributions (`explain` field;
    /// the learned hybrid only, the default mode).
    #[serde(default)]
    pub explain: bool,
    /// Also return concepts their source marks obsolete or inactive (default false: left out).
    #[serde(default)]
    pub include_inactive: bool,
}

/// Search answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    /// Concepts, best first, one entry per concept.
    pub results: Vec<Found>,
    /// Server time spent, milliseconds.
    pub took_ms: f64,
}

/// The search engine, or 503 while the application is opening.
pub(crate) fn engine(st: &AppState) -> Result<Arc<SearchEngine>, ApiError> {
    st.app()?.search.clone().ok_or_else(ApiError::not_ready)
}

/// Hybrid lexical + vector search over all terms, deduplicated to concepts.
#[utoipa::path(post, path = "/v1/search", tag = "search", request_body = SearchRequest,
    responses((status = 200, body = SearchResponse), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody), (status = 404, body = ErrorBody, description = "Unknown model, system or concept")))]
pub async fn search(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<SearchRequest>,
) -> Result<ApiJson<SearchResponse>, ApiError> {
    let t = std::time::Instant::now();
    check_text("query", &req.query)?;
    check_systems(&req.systems)?;
    let q = Query {
        text: req.query,
        k: check_k(req.k, 10)?,
        mode: req.mode.unwrap_or_default(),
        systems: req.systems,
        model: req.model,
        fusion: fusion(&req.fusion)?,
        explain: req.explain,
        include_inactive: req.include_inactive,
    };
    let results = engine(&st)?.search(q).await?;
    Ok(ApiJson(SearchResponse {
        results,
        took_ms: t.elapsed().as_secs_f64() * 1000.0,
    }))
}

/// `POST /v1/normalize` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NormalizeRequest {
    /// Mentions to normalise (1..1024, each 1..4096 characters).
    #[schema(schema_with = text_list_schema)]
    pub mentions: Vec<String>,
    /// Candidates per mention (1..1000, default 5).
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "de_count")]
    pub k: Option<usize>,
    /// Only these systems (1..64 names).
    #[schema(min_items = 1, max_items = 64)]
    pub systems: Option<Vec<String>>,
    /// Terms model.
    pub model: Option<String>,
    /// Mode (default hybrid).
    pub mode: Option<Mode>,
    /// Drop candidates scoring below this.
    pub min_score: Option<f32>,
    /// Also return concepts their source marks obsolete or inactive (default false: left out).
    #[serde(default)]
    pub include_inactive: bool,
}

/// Candidates of one mention.
#[derive(Debug, Serialize, ToSchema)]
pub struct NormalizeResult {
    /// The mention as given.
    pub mention: String,
    /// Candidate concepts, best first.
    pub candidates: Vec<Found>,
}

/// Normalize answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct NormalizeResponse {
    /// One entry per mention, in request order.
    pub results: Vec<NormalizeResult>,
}

/// Map each mention to its top-k candidate concepts (batched embedding).
#[utoipa::path(post, path = "/v1/normalize", tag = "search", request_body = NormalizeRequest,
    responses((status = 200, body = NormalizeResponse), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody), (status = 404, body = ErrorBody, description = "Unknown model, system or concept")))]
pub async fn normalize(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<NormalizeRequest>,
) -> Result<ApiJson<NormalizeResponse>, ApiError> {
    check_batch("mentions", &req.mentions, "strings")?;
    for m in &req.mentions {
        check_text("mentions[]", m)?;
    }
    check_systems(&req.systems)?;
    let template = Query {
        text: String::new(),
        k: check_k(req.k, 5)?,
        mode: req.mode.unwrap_or_default(),
        systems: req.systems,
        model: req.model,
        fusion: DEFAULT_FUSION,
        explain: false,
        include_inactive: req.include_inactive,
    };
    let found = engine(&st)?
        .normalize(req.mentions, template, req.min_score)
        .await?;
    Ok(ApiJson(NormalizeResponse {
        results: found
            .into_iter()
            .map(|n| NormalizeResult {
                mention: n.mention,
                candidates: n.candidates,
            })
            .collect(),
    }))
}

/// One side of a relatedness pair: a text or a concept.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Side {
    /// Free text.
    Text(TextSide),
    /// A concept (its vector is the mean of its equivalent terms' vectors).
    Concept(ConceptSide),
}

/// A text side of a relatedness pair.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TextSide {
    /// The text (1..4096 characters, not only white space).
    #[schema(schema_with = text_schema)]
    pub text: String,
}

/// A concept side of a relatedness pair (404 when the concept does not exist).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConceptSide {
    /// System, e.g. `HPO`.
    #[schema(example = "HPO")]
    pub system: String,
    /// Code, e.g. `HP:0001250`.
    #[schema(example = "HP:0001250")]
    pub code: String,
}

impl From<Side> for EngineSide {
    fn from(s: Side) -> Self {
        match s {
            Side::Text(t) => EngineSide::Text(t.text),
            Side::Concept(c) => EngineSide::Concept {
                system: c.system,
                code: c.code,
            },
        }
    }
}

/// A pair to score.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct Pair {
    /// First side.
    pub a: Side,
    /// Second side.
    pub b: Side,
}

/// `POST /v1/relatedness` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RelatednessRequest {
    /// Pairs (1..1024).
    #[schema(min_items = 1, max_items = 1024)]
    pub pairs: Vec<Pair>,
    /// Terms model.
    pub model: Option<String>,
}

/// Relatedness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelatednessResponse {
    /// Cosine per pair, in request order.
    pub scores: Vec<f32>,
    /// Model used.
    pub model: String,
    /// Always `cosine`.
    pub score_kind: String,
}

/// Cosine relatedness of text or concept pairs.
#[utoipa::path(post, path = "/v1/relatedness", tag = "search", request_body = RelatednessRequest,
    responses((status = 200, body = RelatednessResponse), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody), (status = 404, body = ErrorBody, description = "Unknown model, system or concept")))]
pub async fn relatedness(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<RelatednessRequest>,
) -> Result<ApiJson<RelatednessResponse>, ApiError> {
    check_batch("pairs", &req.pairs, "pairs")?;
    for p in &req.pairs {
        for s in [&p.a, &p.b] {
            if let Side::Text(t) = s {
                check_text("text", &t.text)?;
            }
        }
    }
    let pairs = req
        .pairs
        .into_iter()
        .map(|p| (p.a.into(), p.b.into()))
        .collect();
    let r = engine(&st)?
        .relatedness(pairs, req.model.as_deref())
        .await?;
    Ok(ApiJson(RelatednessResponse {
        scores: r.scores,
        model: r.model,
        score_kind: "cosine".into(),
    }))
}

/// `POST /v1/similar` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SimilarRequest {
    /// System of the concept.
    #[schema(example = "ICD10CM")]
    pub system: String,
    /// Code of the concept (404 when it does not exist).
    #[schema(example = "E11.9")]
    pub code: String,
    /// Concepts wanted (1..1000, default 10).
    #[schema(minimum = 1, maximum = 1000)]
    #[serde(default, deserialize_with = "de_count")]
    pub k: Option<usize>,
    /// Only these systems (1..64 names).
    #[schema(min_items = 1, max_items = 64)]
    pub systems: Option<Vec<String>>,
    /// Terms model.
    pub model: Option<String>,
}

/// Concepts whose terms are nearest to a concept's vector (the concept itself excluded).
#[utoipa::path(post, path = "/v1/similar", tag = "search", request_body = SimilarRequest,
    responses((status = 200, body = SearchResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn similar(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<SimilarRequest>,
) -> Result<ApiJson<SearchResponse>, ApiError> {
    let t = std::time::Instant::now();
    let k = check_k(req.k, 10)?;
    check_systems(&req.systems)?;
    let results = engine(&st)?
        .similar(req.system, req.code, k, req.systems, req.model.as_deref())
        .await?;
    Ok(ApiJson(SearchResponse {
        results,
        took_ms: t.elapsed().as_secs_f64() * 1000.0,
    }))
}

/// `POST /v1/embed` body.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EmbedRequest {
    /// Texts (1..1024, each 1..4096 characters).
    #[schema(schema_with = text_list_schema)]
    pub texts: Vec<String>,
    /// Model (default terms model).
    pub model: Option<String>,
}

/// Embed answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct EmbedResponse {
    /// Model used.
    pub model: String,
    /// Vector size.
    pub dim: usize,
    /// Unit-norm vectors in request order.
    pub embeddings: Vec<Vec<f32>>,
}

/// Embed texts with a model.
#[utoipa::path(post, path = "/v1/embed", tag = "search", request_body = EmbedRequest,
    responses((status = 200, body = EmbedResponse), (status = 400, body = ErrorBody), (status = 429, body = ErrorBody), (status = 404, body = ErrorBody, description = "Unknown model, system or concept")))]
pub async fn embed(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<EmbedRequest>,
) -> Result<ApiJson<EmbedResponse>, ApiError> {
    check_batch("texts", &req.texts, "strings")?;
    for t in &req.texts {
        check_text("texts[]", t)?;
    }
    let e = engine(&st)?
        .embed_texts(req.model.as_deref(), req.texts)
        .await?;
    Ok(ApiJson(EmbedResponse {
        model: e.model,
        dim: e.dim,
        embeddings: e.vectors,
    }))
}
