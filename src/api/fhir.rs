//! FHIR R4 terminology endpoints under `/fhir` (thin: parse, run [`crate::fhir`] on the
//! blocking pool, answer `application/fhir+json`; every error is an `OperationOutcome`).
//! Not part of `openapi.yaml`: FHIR clients read `/fhir/metadata` instead.

use super::error::ApiError;
use super::search::engine;
use super::{blocking, AppState};
use crate::fhir::params::Params;
use crate::fhir::{expand, ops, resources, FhirError, FhirResult, FHIR_JSON};
use crate::search::engine::{EngineError, Query as SearchQuery};
use crate::search::query::DEFAULT_FUSION;
use crate::store::Store;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

/// The `/fhir` routes (nested by [`super::router`]).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/metadata", get(metadata))
        .route("/CodeSystem", get(code_systems))
        .route("/CodeSystem/{id}", get(code_system))
        .route("/CodeSystem/$lookup", get(lookup_get).post(lookup_post))
        .route(
            "/CodeSystem/$validate-code",
            get(validate_get).post(validate_post),
        )
        .route(
            "/CodeSystem/$subsumes",
            get(subsumes_get).post(subsumes_post),
        )
        .route(
            "/ConceptMap/$translate",
            get(translate_get).post(translate_post),
        )
        .route("/ValueSet/$expand", get(expand_get).post(expand_post))
        .fallback(unknown)
}

/// A FHIR JSON answer; empty arrays and objects are dropped (FHIR JSON has none).
fn fhir(status: StatusCode, mut body: Value) -> Response {
    prune(&mut body);
    let mut resp = (status, axum::Json(body)).into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(FHIR_JSON));
    resp
}

fn prune(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.values_mut().for_each(prune);
            m.retain(|_, x| !is_empty(x));
        }
        Value::Array(a) => {
            a.iter_mut().for_each(prune);
            a.retain(|x| !is_empty(x));
        }
        _ => {}
    }
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
        Value::String(s) => s.is_empty(),
        _ => false,
    }
}

fn answer(r: FhirResult<Value>) -> Response {
    match r {
        Ok(v) => fhir(StatusCode::OK, v),
        Err(e) => outcome(e),
    }
}

fn outcome(e: FhirError) -> Response {
    let status = StatusCode::from_u16(e.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::error!(message = %e.message, "FHIR request failed");
    }
    let mut resp = fhir(status, e.outcome());
    if matches!(e.status, 429 | 503) {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// An HTTP-layer error (not ready, overloaded, unknown model, ...) as a FHIR error.
fn from_api(e: ApiError) -> FhirError {
    let code = match e.status.as_u16() {
        400 => "invalid",
        404 => "not-found",
        413 => "too-costly",
        429 => "throttled",
        503 => "transient",
        _ => "exception",
    };
    FhirError::new(e.status.as_u16(), code, e.message)
}

async fn with_store<F>(st: &AppState, f: F) -> FhirResult<Value>
where
    F: FnOnce(&Store) -> FhirResult<Value> + Send + 'static,
{
    let app = st.app().map_err(from_api)?;
    blocking(move || f(&app.store)).await.map_err(from_api)?
}

fn query_params(q: Result<Query<Vec<(String, String)>>, QueryRejection>) -> FhirResult<Params> {
    match q {
        Ok(Query(pairs)) => Params::from_query(pairs),
        Err(e) => Err(FhirError::invalid(format!("bad query string: {e}"))),
    }
}

fn body_params(body: Result<Bytes, BytesRejection>) -> FhirResult<Params> {
    match body {
        Ok(b) => Params::from_body(&b),
        Err(e) => Err(FhirError::new(
            e.status().as_u16(),
            "too-costly",
            e.body_text(),
        )),
    }
}

fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| {
            h.chars()
                .all(|c| c.is_ascii_alphanumeric() || ".:-[]".contains(c))
        })
        .unwrap_or("localhost");
    format!("http://{host}/fhir")
}

type Op = fn(&Store, &Params) -> FhirResult<Value>;

async fn run_op(st: AppState, p: FhirResult<Params>, op: Op) -> Response {
    let p = match p {
        Ok(p) => p,
        Err(e) => return outcome(e),
    };
    answer(with_store(&st, move |s| op(s, &p)).await)
}

async fn metadata(
    State(st): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let p = match query_params(q) {
        Ok(p) => p,
        Err(e) => return outcome(e),
    };
    match p.str("mode") {
        Err(e) => outcome(e),
        Ok(Some(m)) if m == "terminology" => {
            answer(with_store(&st, resources::terminology_capabilities).await)
        }
        Ok(None) => answer(Ok(resources::capability_statement(&base_url(&headers)))),
        Ok(Some(m)) if m == "full" || m == "normative" => {
            answer(Ok(resources::capability_statement(&base_url(&headers))))
        }
        Ok(Some(m)) => outcome(FhirError::invalid(format!(
            "mode {m:?}: use terminology, full or normative"
        ))),
    }
}

async fn code_systems(
    State(st): State<AppState>,
    headers: HeaderMap,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    let url = match query_params(q).and_then(|p| p.str("url")) {
        Ok(u) => u,
        Err(e) => return outcome(e),
    };
    let base = base_url(&headers);
    answer(
        with_store(&st, move |s| {
            resources::code_system_bundle(s, &base, url.as_deref())
        })
        .await,
    )
}

async fn code_system(State(st): State<AppState>, Path(id): Path<String>) -> Response {
    if id.is_empty() || id.len() > 64 {
        return outcome(FhirError::not_found("no CodeSystem with this id"));
    }
    answer(with_store(&st, move |s| resources::code_system_by_id(s, &id)).await)
}

macro_rules! op_handlers {
    ($get:ident, $post:ident, $op:path) => {
        async fn $get(
            State(st): State<AppState>,
            q: Result<Query<Vec<(String, String)>>, QueryRejection>,
        ) -> Response {
            run_op(st, query_params(q), $op).await
        }
        async fn $post(
            State(st): State<AppState>,
            body: Result<Bytes, BytesRejection>,
        ) -> Response {
            run_op(st, body_params(body), $op).await
        }
    };
}

op_handlers!(lookup_get, lookup_post, ops::lookup);
op_handlers!(validate_get, validate_post, ops::validate_code);
op_handlers!(subsumes_get, subsumes_post, ops::subsumes);
op_handlers!(translate_get, translate_post, ops::translate);

async fn expand_get(
    State(st): State<AppState>,
    q: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    run_expand(st, query_params(q)).await
}

async fn expand_post(State(st): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    run_expand(st, body_params(body)).await
}

/// `$expand`: plan on the blocking pool, search when there is a filter, then shape the page.
async fn run_expand(st: AppState, p: FhirResult<Params>) -> Response {
    let p = match p {
        Ok(p) => p,
        Err(e) => return outcome(e),
    };
    let plan = match with_plan(&st, p).await {
        Ok(plan) => plan,
        Err(e) => return outcome(e),
    };
    let hits = match &plan.filter {
        None => Vec::new(),
        Some(text) => {
            let q = SearchQuery {
                text: text.clone(),
                k: plan.search_k(),
                mode: plan.mode,
                systems: Some(vec![plan.system.clone()]),
                model: None,
                fusion: DEFAULT_FUSION,
                explain: false,
                // `expand::finish` applies `activeOnly` itself
                include_inactive: true,
            };
            let eng = match engine(&st) {
                Ok(e) => e,
                Err(e) => return outcome(from_api(e)),
            };
            match eng.search(q).await {
                Ok(h) => h,
                // A filter with no letter or digit matches nothing: an empty expansion.
                Err(EngineError::NothingToSearch(_)) => Vec::new(),
                Err(e) => return outcome(from_api(e.into())),
            }
        }
    };
    answer(with_store(&st, move |s| expand::finish(s, &plan, hits)).await)
}

async fn with_plan(st: &AppState, p: Params) -> FhirResult<expand::Plan> {
    let app = st.app().map_err(from_api)?;
    blocking(move || expand::plan(&app.store, &p))
        .await
        .map_err(from_api)?
}

async fn unknown() -> Response {
    outcome(FhirError::not_found(
        "no such FHIR endpoint: see GET /fhir/metadata for what is served",
    ))
}
