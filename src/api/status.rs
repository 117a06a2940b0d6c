//! Service endpoints: liveness, readiness, Prometheus metrics.

use super::error::{ApiError, ErrorBody};
use super::AppState;
use crate::service::background::IndexLag;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// Liveness/readiness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusResponse {
    /// `ok`.
    pub status: String,
}

/// Liveness: 200 as soon as the process serves.
#[utoipa::path(get, path = "/health", tag = "service", responses((status = 200, body = StatusResponse)))]
pub async fn health() -> Json<StatusResponse> {
    Json(StatusResponse {
        status: "ok".into(),
    })
}

/// Readiness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyResponse {
    /// `ok`.
    pub status: String,
    /// Indexes that do not reflect the store yet (a background catch-up is due or running;
    /// `GET /v1/jobs` shows its progress). Searches answer meanwhile from what is indexed.
    pub indexes_behind: Vec<IndexLag>,
    /// Room for writes on the data directory's file system.
    pub disk: DiskStatus,
}

/// Free space against the store's reserve (`ONTOVEC_MIN_FREE_MB`): below it, writes answer
/// 507 and reads go on.
#[derive(Debug, Serialize, ToSchema)]
pub struct DiskStatus {
    /// Bytes free (absent when the file system cannot say).
    pub available_bytes: Option<u64>,
    /// Bytes the store keeps free (0: no check).
    pub reserve_bytes: u64,
    /// Whether a write would be accepted now (free space above the reserve).
    pub writes_accepted: bool,
}

impl DiskStatus {
    fn of(disk: &crate::store::disk::DiskGuard) -> Self {
        let available = disk.available();
        Self {
            available_bytes: available,
            reserve_bytes: disk.reserve(),
            writes_accepted: disk.ensure_with(available, 0).is_ok(),
        }
    }
}

/// Readiness: 200 once the store and indexes are open (searches answer), 503 before; says
/// which indexes are still catching up with the store.
#[utoipa::path(get, path = "/ready", tag = "service",
    responses((status = 200, body = ReadyResponse), (status = 503, body = ErrorBody)))]
pub async fn ready(State(st): State<AppState>) -> Result<Json<ReadyResponse>, ApiError> {
    let app = st.app()?;
    let (indexes_behind, disk) =
        super::blocking(move || (app.index_lag(), DiskStatus::of(app.store.disk()))).await?;
    Ok(Json(ReadyResponse {
        status: "ok".into(),
        indexes_behind,
        disk,
    }))
}

/// Prometheus metrics (text exposition format).
///
/// HTTP requests and latencies, jobs, and the encoder's queue depth, admitted texts, queue
/// waits, batch sizes and inference times.
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain", body = String)))]
pub async fn metrics(State(st): State<AppState>) -> impl IntoResponse {
    if let Ok(app) = st.app() {
        metrics::gauge!("ontovec_jobs_active").set(app.jobs.active_count() as f64);
        if let Some(free) = app.store.disk().available() {
            metrics::gauge!("ontovec_disk_available_bytes").set(free as f64);
        }
        for (id, phase, done, total) in app.jobs.live_progress() {
            let labels = [("job_id", id), ("phase", phase)];
            metrics::gauge!("ontovec_job_done", &labels).set(done as f64);
            metrics::gauge!("ontovec_job_total", &labels).set(total as f64);
        }
        if let Some(search) = &app.search {
            let registry = search.registry();
            for (model, depth) in registry.queue_depths() {
                metrics::gauge!("ontovec_encoder_queue_depth", "model" => model).set(depth as f64);
            }
            metrics::gauge!("ontovec_encoder_admitted_texts")
                .set(registry.admission().in_flight() as f64);
        }
    }
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics().render(),
    )
}
