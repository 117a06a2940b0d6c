//! Search endpoints: search, normalize, relatedness, similar, embed, models. Validation and
//! shaping only; ranking lives in [`crate::search::engine`], inference in [`crate::encoder`].

use super::error::{ApiError, ApiJson, ErrorBody};
use super::{blocking, AppState};
use crate::encoder::ModelKind;
use crate::search::engine::{Found, Mode, Query, SearchEngine};
use crate::search::fusion::FusionMethod;
use crate::util::vector::cosine;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;

/// Largest `k`.
pub const MAX_K: usize = 1000;
/// Largest batch of texts or mentions.
pub const MAX_BATCH: usize = 1024;
/// Largest query/text length in characters (Unicode scalar values, as JSON Schema counts).
pub const MAX_TEXT_CHARS: usize = 4096;
/// Largest number of systems in a filter.
pub const MAX_SYSTEMS: usize = 64;

/// White space, spelled out: Unicode White_Space plus the information separators U+001C..U+001F
/// (which Python counts as space). `\s` means different sets in different regex engines (ASCII
/// only, Unicode, ECMA with U+FEFF), so the schema lists the characters instead.
const SPACE_RANGES: &[(char, char)] = &[
    ('\t', '\r'),
    ('\u{1c}', ' '),
    ('\u{85}', '\u{85}'),
    ('\u{a0}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{205f}', '\u{205f}'),
    ('\u{3000}', '\u{3000}'),
];

/// Whether `c` is white space in the sense of [`SPACE_RANGES`].
pub fn is_space(c: char) -> bool {
    SPACE_RANGES.iter().any(|(a, b)| (*a..=*b).contains(&c))
}

/// The white space of [`SPACE_RANGES`] as the inside of a JSON Schema character class.
pub fn space_class() -> String {
    let mut p = String::new();
    for (a, b) in SPACE_RANGES {
        p.push_str(&format!("\\u{:04x}", *a as u32));
        if a != b {
            p.push_str(&format!("-\\u{:04x}", *b as u32));
        }
    }
    p
}

/// The JSON Schema pattern of a text: some character that is not white space.
pub fn text_pattern() -> String {
    format!("[^{}]", space_class())
}

/// Schema of a text of 1..`max_chars` characters, not only white space.
pub(super) fn nonblank_text_schema(max_chars: usize) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(max_chars))
        .pattern(Some(text_pattern()))
        .build()
}

/// Schema of one query/mention/text: 1..4096 characters, not only white space.
pub(super) fn text_schema() -> utoipa::openapi::Object {
    nonblank_text_schema(MAX_TEXT_CHARS)
}

/// A count (`k`): JSON Schema's `integer` includes numbers such as `5.0`, so accept those too.
pub(super) fn de_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => {
            if let Some(u) = n.as_u64() {
                return Ok(Some(usize::try_from(u).unwrap_or(usize::MAX)));
            }
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f >= 0.0 => Ok(Some(if f > usize::MAX as f64 {
                    usize::MAX
                } else {
                    f as usize
                })),
                _ => Err(D::Error::custom(format!(
                    "expected a non-negative integer, got {n}"
                ))),
            }
        }
    }
}

/// Schema of a list of 1..1024 texts.
fn text_list_schema() -> utoipa::openapi::Array {
    utoipa::openapi::ArrayBuilder::new()
        .items(text_schema())
        .min_items(Some(1))
        .max_items(Some(MAX_BATCH))
        .build()
}

/// How hybrid search fuses its two ranked lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FusionName {
    /// Reciprocal rank fusion.
    Rrf,
    /// Alpha-weighted sum of min-max-normalised scores.
    Weighted,
}

/// Fusion settings for hybrid search.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FusionParams {
    /// `rrf` (reciprocal rank fusion) or `weighted` (default: alpha-weighted min-max-normalised scores).
    pub method: Option<FusionName>,
    /// RRF constant (default 60), in (0, 10000].
    #[schema(exclusive_minimum = 0, maximum = 10000)]
    pub rrf_k: Option<f64>,
    /// Weight of the vector side in weighted fusion, 0..1 (default 0.9).
    #[schema(minimum = 0, maximum = 1)]
    pub alpha: Option<f64>,
}

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
}

/// Search answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SearchResponse {
    /// Concepts, best first, one entry per concept.
    pub results: Vec<Found>,
    /// Server time spent, milliseconds.
    pub took_ms: f64,
}

pub(crate) fn engine(st: &AppState) -> Result<Arc<SearchEngine>, ApiError> {
    st.app()?.search.clone().ok_or_else(ApiError::not_ready)
}

/// A query/mention/text: 1..4096 characters, not only white space (what [`text_schema`] says).
pub(super) fn check_text(field: &str, text: &str) -> Result<(), ApiError> {
    if text.chars().all(is_space) {
        return Err(ApiError::bad_request(format!(
            "'{field}' must hold something other than white space"
        )));
    }
    let n = text.chars().count();
    if n > MAX_TEXT_CHARS {
        return Err(ApiError::bad_request(format!(
            "'{field}' is {n} characters long; the limit is {MAX_TEXT_CHARS}"
        ))
        .with_details(serde_json::json!({"field": field, "limit_chars": MAX_TEXT_CHARS})));
    }
    Ok(())
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

/// A filter lists 1..64 systems. Names are not checked here: one with no loaded release
/// (empty or overlong ones included) answers 404 `unknown_system` from the engine.
fn check_systems(systems: &Option<Vec<String>>) -> Result<(), ApiError> {
    if let Some(s) = systems {
        if s.is_empty() || s.len() > MAX_SYSTEMS {
            return Err(ApiError::bad_request(format!(
                "'systems' must list 1 to {MAX_SYSTEMS} system names"
            )));
        }
    }
    Ok(())
}

/// Default weight of the vector side in weighted fusion.
pub const DEFAULT_ALPHA: f32 = 0.9;

/// Default fusion: see README's dev-set fusion table for why (vector-heavy weighted fusion is
/// the only hybrid that stays level with vectors alone on acc@1 and MRR).
pub const DEFAULT_FUSION: FusionMethod = FusionMethod::Weighted {
    alpha: DEFAULT_ALPHA,
};

fn fusion(p: &Option<FusionParams>) -> Result<FusionMethod, ApiError> {
    let Some(p) = p else {
        return Ok(DEFAULT_FUSION);
    };
    // Every given field is checked, whichever method it belongs to.
    let k = p.rrf_k.unwrap_or(60.0);
    if !(k.is_finite() && k > 0.0 && k <= 10_000.0) {
        return Err(ApiError::bad_request("rrf_k must be in (0, 10000]"));
    }
    let alpha = p.alpha.unwrap_or(f64::from(DEFAULT_ALPHA));
    if !(0.0..=1.0).contains(&alpha) {
        return Err(ApiError::bad_request("alpha must be in [0, 1]"));
    }
    Ok(match p.method.unwrap_or(FusionName::Weighted) {
        // A tiny positive constant stays positive in f32.
        FusionName::Rrf => FusionMethod::Rrf {
            k: (k as f32).max(f32::MIN_POSITIVE),
        },
        FusionName::Weighted => FusionMethod::Weighted {
            alpha: alpha as f32,
        },
    })
}

/// Embed query texts through the batching engine (async; 429 when the queue is full).
async fn embed_queries(
    st: &AppState,
    eng: &SearchEngine,
    model: Option<&str>,
    texts: Vec<String>,
) -> Result<Vec<Vec<f32>>, ApiError> {
    let handle = eng.registry().get(model, ModelKind::Terms)?;
    embed_unique(st, handle, texts).await
}

/// Embed each distinct text once (a batch repeating a mention costs one slot in the queue),
/// answering one vector per input text in order.
async fn embed_unique(
    st: &AppState,
    handle: &crate::encoder::engine::EngineHandle,
    texts: Vec<String>,
) -> Result<Vec<Vec<f32>>, ApiError> {
    let mut slot_of: std::collections::HashMap<&str, usize> = Default::default();
    let mut unique: Vec<String> = Vec::new();
    let slots: Vec<usize> = texts
        .iter()
        .map(|t| {
            *slot_of.entry(t.as_str()).or_insert_with(|| {
                unique.push(t.clone());
                unique.len() - 1
            })
        })
        .collect();
    // Admission: held until the vectors are back; refused at once (429) when the texts of
    // requests already waiting would make this one wait too long.
    let _permit = st.admit_texts(unique.len())?;
    if unique.len() == texts.len() {
        return Ok(handle.embed(texts).await?);
    }
    let vecs = handle.embed(unique).await?;
    Ok(slots.into_iter().map(|i| vecs[i].clone()).collect())
}

pub(crate) async fn run_search(
    st: &AppState,
    eng: Arc<SearchEngine>,
    q: Query,
) -> Result<Vec<Found>, ApiError> {
    if let Some(m) = &q.model {
        // A named model must exist, even when the mode would not use it.
        eng.terms_model(Some(m))?;
    }
    let qvec = match q.mode {
        Mode::Hybrid | Mode::Vector if eng.registry().default_name(ModelKind::Terms).is_some() => {
            Some(
                embed_queries(st, &eng, q.model.as_deref(), vec![q.text.clone()])
                    .await?
                    .remove(0),
            )
        }
        Mode::Vector => {
            return Err(ApiError::bad_request(
                "vector search needs a terms model; none is loaded",
            ))
        }
        _ => None,
    };
    blocking(move || eng.search_with_vector(&q, qvec.as_deref()))
        .await?
        .map_err(ApiError::from)
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
    };
    let results = run_search(&st, engine(&st)?, q).await?;
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
    if req.mentions.is_empty() || req.mentions.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "'mentions' must hold 1 to {MAX_BATCH} strings"
        )));
    }
    for m in &req.mentions {
        check_text("mentions[]", m)?;
    }
    check_systems(&req.systems)?;
    let k = check_k(req.k, 5)?;
    let mode = req.mode.unwrap_or_default();
    let eng = engine(&st)?;
    if let Some(m) = &req.model {
        eng.terms_model(Some(m))?;
    }
    let vecs = match mode {
        Mode::Hybrid | Mode::Vector if eng.registry().default_name(ModelKind::Terms).is_some() => {
            Some(embed_queries(&st, &eng, req.model.as_deref(), req.mentions.clone()).await?)
        }
        _ => None,
    };
    let min = req.min_score;
    let (systems, model, mentions) = (req.systems, req.model, req.mentions);
    let results = blocking(move || -> Result<Vec<NormalizeResult>, ApiError> {
        let mut out = Vec::with_capacity(mentions.len());
        for (i, m) in mentions.into_iter().enumerate() {
            let q = Query {
                text: m.clone(),
                k,
                mode,
                systems: systems.clone(),
                model: model.clone(),
                fusion: DEFAULT_FUSION,
            };
            let v = vecs.as_ref().map(|v| v[i].as_slice());
            let mut candidates = eng.search_with_vector(&q, v)?;
            if let Some(min) = min {
                candidates.retain(|c| c.score >= min);
            }
            out.push(NormalizeResult {
                mention: m,
                candidates,
            });
        }
        Ok(out)
    })
    .await??;
    Ok(ApiJson(NormalizeResponse { results }))
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
    responses((status = 200, body = RelatednessResponse), (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn relatedness(
    State(st): State<AppState>,
    ApiJson(req): ApiJson<RelatednessRequest>,
) -> Result<ApiJson<RelatednessResponse>, ApiError> {
    if req.pairs.is_empty() || req.pairs.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "'pairs' must hold 1 to {MAX_BATCH} pairs"
        )));
    }
    for p in &req.pairs {
        for s in [&p.a, &p.b] {
            if let Side::Text(t) = s {
                check_text("text", &t.text)?;
            }
        }
    }
    let eng = engine(&st)?;
    let model = eng.terms_model(req.model.as_deref())?;
    let texts: Vec<String> = req
        .pairs
        .iter()
        .flat_map(|p| [&p.a, &p.b])
        .filter_map(|s| match s {
            Side::Text(t) => Some(t.text.clone()),
            Side::Concept(_) => None,
        })
        .collect();
    let mut text_vecs = if texts.is_empty() {
        Vec::new()
    } else {
        embed_queries(&st, &eng, Some(&model), texts).await?
    }
    .into_iter();
    let mut sides: Vec<Option<Vec<f32>>> = Vec::new();
    for p in &req.pairs {
        for s in [&p.a, &p.b] {
            sides.push(match s {
                Side::Text(_) => text_vecs.next(),
                Side::Concept(_) => None,
            });
        }
    }
    let m = model.clone();
    let scores = blocking(move || -> Result<Vec<f32>, ApiError> {
        let mut vecs = Vec::with_capacity(sides.len());
        let all: Vec<&Side> = req.pairs.iter().flat_map(|p| [&p.a, &p.b]).collect();
        for (side, v) in all.into_iter().zip(sides) {
            vecs.push(match (side, v) {
                (_, Some(v)) => v,
                (Side::Concept(c), None) => eng.concept_vector(&m, &c.system, &c.code)?,
                (Side::Text(_), None) => Vec::new(),
            });
        }
        Ok(vecs.chunks(2).map(|c| cosine(&c[0], &c[1])).collect())
    })
    .await??;
    Ok(ApiJson(RelatednessResponse {
        scores,
        model,
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
    let eng = engine(&st)?;
    let model = eng.terms_model(req.model.as_deref())?;
    let results = blocking(move || -> Result<Vec<Found>, ApiError> {
        let v = eng.concept_vector(&model, &req.system, &req.code)?;
        let q = Query {
            text: String::new(),
            k: k + 1,
            mode: Mode::Vector,
            systems: req.systems,
            model: Some(model),
            fusion: DEFAULT_FUSION,
        };
        let sys = req.system.to_ascii_uppercase();
        let mut found = eng.search_with_vector(&q, Some(&v))?;
        found.retain(|f| !(f.system == sys && f.code == req.code));
        found.truncate(k);
        Ok(found)
    })
    .await??;
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
    if req.texts.is_empty() || req.texts.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "'texts' must hold 1 to {MAX_BATCH} strings"
        )));
    }
    for t in &req.texts {
        check_text("texts[]", t)?;
    }
    let eng = engine(&st)?;
    let handle = match &req.model {
        Some(name) => eng.registry().get(Some(name), ModelKind::Terms)?,
        None => eng.registry().get(None, ModelKind::Terms)?,
    };
    let embeddings = embed_unique(&st, handle, req.texts).await?;
    Ok(ApiJson(EmbedResponse {
        model: handle.manifest().name.clone(),
        dim: handle.dim(),
        embeddings,
    }))
}

/// `GET /v1/models` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelsResponse {
    /// Loaded models.
    pub models: Vec<crate::encoder::ModelInfo>,
}

/// Loaded models with their kind, base, trainer and evaluation numbers.
#[utoipa::path(get, path = "/v1/models", tag = "search", responses((status = 200, body = ModelsResponse)))]
pub async fn models(State(st): State<AppState>) -> Result<ApiJson<ModelsResponse>, ApiError> {
    let eng = engine(&st)?;
    Ok(ApiJson(ModelsResponse {
        models: eng.registry().list(),
    }))
}
