//! The HTTP layer (axum): routing, shared state, middleware and the OpenAPI document.
//! Handlers are thin: they validate, call the application core ([`crate::app::App`]) on the
//! blocking pool, and shape the answer. Errors map to HTTP in [`error`] only.

pub mod error;
pub mod ingest;
pub mod notes;
pub mod ontology;
pub mod openapi;
pub mod search;
pub mod service;

use crate::app::App;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::Router;
use error::ApiError;
use metrics_exporter_prometheus::PrometheusHandle;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
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
}

impl AppState {
    /// State with no application yet.
    pub fn new(auth_token: Option<String>) -> Self {
        Self {
            inner: Arc::new(StateInner {
                app: OnceLock::new(),
                metrics: metrics_handle(),
                auth_token,
            }),
        }
    }

    /// State with an opened application.
    pub fn with_app(app: Arc<App>) -> Self {
        let s = Self::new(app.config.auth_token.clone());
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
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(&[
                    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                ])
                .map(|b| b.build_recorder())
                .unwrap_or_else(|_| {
                    metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder()
                });
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
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let labels = [("method", method), ("path", path), ("status", status)];
    metrics::counter!("ontovec_http_requests_total", &labels).increment(1);
    metrics::histogram!("ontovec_http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    resp
}

async fn require_token(
    axum::extract::State(st): axum::extract::State<AppState>,
    req: Request<axum::body::Body>,
    next: Next,
) -> Result<Response, ApiError> {
    if let Some(token) = &st.inner.auth_token {
        let given = req
            .headers()
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if given != Some(token.as_str()) {
            return Err(ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "unauthorized",
                "this endpoint writes data and needs `Authorization: Bearer <token>`",
            ));
        }
    }
    Ok(next.run(req).await)
}

async fn fallback() -> ApiError {
    ApiError::not_found("no such endpoint")
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
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let request_id = HeaderName::from_static("x-request-id");
    Router::new()
        .route("/health", get(service::health))
        .route("/ready", get(service::ready))
        .route("/metrics", get(service::metrics))
        .route("/v1/sources", get(ontology::sources))
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
        .route("/v1/models", get(search::models))
        .route("/v1/search", post(search::search))
        .route("/v1/normalize", post(search::normalize))
        .route("/v1/relatedness", post(search::relatedness))
        .route("/v1/similar", post(search::similar))
        .route("/v1/embed", post(search::embed))
        .route("/v1/notes/{id}", get(notes::get))
        .route("/v1/notes/search", post(notes::search))
        .route("/v1/notes/code", post(notes::code))
        .layer(DefaultBodyLimit::max(MAX_JSON_BODY))
        .merge(writes)
        .merge(openapi::docs_router())
        .fallback(fallback)
        .layer(middleware::from_fn(track_metrics))
        .layer(TraceLayer::new_for_http())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
