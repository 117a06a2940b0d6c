//! The HTTP layer (axum): routing, shared state, middleware and the OpenAPI document.
//!
//! Handlers are thin: they parse and validate ([`validate`]), call one function of the
//! application core — the search engine ([`crate::search::query`]), the notes subsystem
//! ([`crate::notes::query`], [`crate::notes::predict`]), the store or the job runner
//! ([`crate::service::app::App`]) — which embeds through the encoder's admission gate and does
//! blocking work on the blocking pool, and shape the answer. Every error becomes a status in
//! [`error`] and nowhere else: subsystem errors through their `From` impls, the HTTP layer's own
//! refusals as [`error::HttpError`] variants.

pub mod error;
pub mod fhir;
pub mod ingest;
pub mod models;
pub mod notes;
pub mod ontology;
pub mod openapi;
pub mod search;
pub mod server;
pub mod status;
pub mod ui;
pub mod validate;

use crate::service::app::{App, AppConfig};
use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method, Request};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use error::{ApiError, HttpError};
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// Largest JSON body accepted (bytes).
pub const MAX_JSON_BODY: usize = 4 << 20;

/// Shared state of the router. The application is set once it has opened, so `/health` answers
/// from the first moment while `/ready` and data endpoints answer 503 until then.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<StateInner>,
}

struct StateInner {
    app: OnceLock<Arc<App>>,
    metrics: PrometheusHandle,
    auth_token: Option<String>,
    request_timeout: Duration,
    cors_origins: Vec<String>,
    uploads: Arc<ingest::UploadBudget>,
    /// `Some(writer URL or None)` on a read-only node.
    read_only: Option<Option<String>>,
}

impl AppState {
    /// State with no application yet and default HTTP settings.
    pub fn new(auth_token: Option<String>) -> Self {
        let mut cfg = AppConfig::new("");
        cfg.auth_token = auth_token;
        Self::from_config(&cfg)
    }

    /// State with no application yet, HTTP settings (token, deadline, CORS, upload budget)
    /// taken from `cfg`.
    pub fn from_config(cfg: &AppConfig) -> Self {
        Self {
            inner: Arc::new(StateInner {
                app: OnceLock::new(),
                metrics: metrics_handle(),
                auth_token: cfg.auth_token.clone(),
                request_timeout: cfg.request_timeout,
                cors_origins: cfg.cors_origins.clone(),
                uploads: Arc::new(ingest::UploadBudget::new(cfg.max_staged_bytes)),
                read_only: cfg.vector.read_only.then(|| cfg.writer_url.clone()),
            }),
        }
    }

    /// State with an opened application.
    pub fn with_app(app: Arc<App>) -> Self {
        let s = Self::from_config(&app.config);
        s.set_app(app);
        s
    }

    /// Install the application once it has opened.
    pub fn set_app(&self, app: Arc<App>) {
        let _ = self.inner.app.set(app);
    }

    /// The application, or 503 while it is opening.
    pub fn app(&self) -> Result<Arc<App>, ApiError> {
        self.inner
            .app
            .get()
            .cloned()
            .ok_or_else(ApiError::not_ready)
    }

    /// The Prometheus handle.
    pub fn metrics(&self) -> &PrometheusHandle {
        &self.inner.metrics
    }
}

fn metrics_handle() -> PrometheusHandle {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            // Latency buckets (seconds) by default; the encoder's batch-size and batch-token
            // histograms count texts and tokens and bring their own.
            let mut builder = PrometheusBuilder::new().set_buckets(&[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]);
            for (name, buckets) in crate::encoder::stats::COUNT_BUCKETS {
                builder = builder.and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full((*name).to_string()), buckets)
                });
            }
            let recorder = builder
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// Run blocking store work on the blocking pool; a panic becomes a 500 (never expected).
pub async fn blocking<T, F>(f: F) -> Result<T, ApiError>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker failed: {e}")))
}

async fn track_metrics(req: Request<axum::body::Body>, next: Next) -> Response {
    let start = Instant::now();
    let path = req
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    // probes and job polling are not foreground work (background work keeps its cores)
    let foreground = !matches!(path.as_str(), "/health" | "/ready" | "/metrics")
        && !path.starts_with("/v1/jobs");
    if foreground {
        crate::util::activity::foreground();
    }
    let resp = next.run(req).await;
    if foreground {
        crate::util::activity::foreground();
    }
    let status = resp.status().as_u16().to_string();
    let labels = [("method", method), ("path", path), ("status", status)];
    metrics::counter!("ontovec_http_requests_total", &labels).increment(1);
    metrics::histogram!("ontovec_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    resp
}

/// Bytes of a refused upload read before answering 401.
const UNAUTHORIZED_DRAIN: usize = 1 << 20;

/// Compare secrets in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(
    axum::extract::State(st): axum::extract::State<AppState>,
    req: Request<axum::body::Body>,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(token) = &st.inner.auth_token {
        // RFC 7235: the scheme name is case-insensitive.
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        if !given.is_some_and(|g| same_secret(g.as_bytes(), token.as_bytes())) {
            // Read (and drop) a small body first: clients that send the whole upload before
            // reading the answer (most fetch implementations) then see the 401, not a reset.
            let _ = axum::body::to_bytes(req.into_body(), UNAUTHORIZED_DRAIN).await;
            return Err(HttpError::Unauthorized.into());
        }
    }
    Ok(next.run(req).await)
}

/// A read-only node answers every write 403 `read_only` (before any token check or upload).
async fn refuse_on_read_only(
    axum::extract::State(st): axum::extract::State<AppState>,
    req: Request<axum::body::Body>,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(writer) = &st.inner.read_only {
        let _ = axum::body::to_bytes(req.into_body(), UNAUTHORIZED_DRAIN).await;
        return Err(HttpError::ReadOnly {
            writer: writer.clone(),
        }
        .into());
    }
    Ok(next.run(req).await)
}

/// Per-request deadline: past it the client gets a 503 `deadline_exceeded` (with Retry-After)
/// instead of waiting on; work already handed to the blocking pool finishes on its own.
async fn deadline(
    axum::extract::State(st): axum::extract::State<AppState>,
    req: Request<axum::body::Body>,
    next: Next,
) -> Response {
    let limit = st.inner.request_timeout;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => {
            metrics::counter!("ontovec_http_deadline_exceeded_total").increment(1);
            ApiError::from(HttpError::DeadlineExceeded {
                timeout_ms: limit.as_millis() as u64,
            })
            .into_response()
        }
    }
}

async fn fallback() -> ApiError {
    ApiError::not_found("no such endpoint")
}

/// Parse `--cors-origin` values: `*` for any origin, else each must be a valid header value
/// such as `https://app.example.org`.
pub fn cors_layer(origins: &[String]) -> Result<Option<CorsLayer>, String> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o.trim() == "*") {
        AllowOrigin::any()
    } else {
        let mut list = Vec::with_capacity(origins.len());
        for o in origins {
            let o = o.trim().trim_end_matches('/');
            if !(o.starts_with("http://") || o.starts_with("https://")) {
                return Err(format!(
                    "CORS origin {o:?} must look like https://host[:port] (or be *)"
                ));
            }
            list.push(HeaderValue::from_str(o).map_err(|_| format!("bad CORS origin {o:?}"))?);
        }
        AllowOrigin::list(list)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                HeaderName::from_static("x-request-id"),
            ])
            .expose_headers([HeaderName::from_static("x-request-id"), header::RETRY_AFTER])
            .max_age(Duration::from_secs(3600)),
    ))
}

/// Build the full router.
pub fn router(state: AppState) -> Router {
    let writes = Router::new()
        .route("/v1/ingest", post(ingest::ingest))
        .layer(DefaultBodyLimit::disable())
        .merge(
            Router::new()
                .route("/v1/notes", post(notes::create))
                .layer(DefaultBodyLimit::max(MAX_JSON_BODY + (64 << 10))),
        )
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            refuse_on_read_only,
        ));
    let request_id = HeaderName::from_static("x-request-id");
    let r = Router::new()
        .route("/health", get(status::health))
        .route("/ready", get(status::ready))
        .route("/metrics", get(status::metrics))
        .route("/v1/sources", get(ontology::sources))
        .route("/v1/jobs", get(ingest::jobs))
        .route("/v1/jobs/{job_id}", get(ingest::job))
        .route(
            "/v1/systems/{system}/concepts/{code}",
            get(ontology::concept),
        )
        .route(
            "/v1/systems/{system}/concepts/{code}/ancestors",
            get(ontology::ancestors),
        )
        .route(
            "/v1/systems/{system}/concepts/{code}/descendants",
            get(ontology::descendants),
        )
        .route(
            "/v1/systems/{system}/concepts/{code}/mappings",
            get(ontology::mappings),
        )
        .route("/v1/models", get(models::models))
        .route("/v1/models/{name}", get(models::model))
        .route("/v1/models/{name}/files/{file}", get(models::model_file))
        .route("/v1/search", post(search::search))
        .route("/v1/normalize", post(search::normalize))
        .route("/v1/relatedness", post(search::relatedness))
        .route("/v1/similar", post(search::similar))
        .route("/v1/embed", post(search::embed))
        .route("/v1/notes/{id}", get(notes::get))
        .route("/v1/notes/search", post(notes::search))
        .route("/v1/notes/code", post(notes::code))
        .nest("/fhir", fhir::router())
        .merge(ui::router())
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        // Uploads (`writes`) stream for as long as the client sends: no deadline there.
        .route_layer(middleware::from_fn_with_state(state.clone(), deadline))
        .merge(writes)
        .merge(openapi::docs_router(state.inner.auth_token.is_some()))
        .fallback(fallback)
        .layer(middleware::from_fn(track_metrics))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid));
    // Origins were validated when the configuration was parsed; a bad one here means none.
    let cors = cors_layer(&state.inner.cors_origins).unwrap_or_else(|e| {
        tracing::error!(error = %e, "CORS disabled");
        None
    });
    let r = match cors {
        Some(c) => r.layer(c),
        None => r,
    };
    r.with_state(state)
}
