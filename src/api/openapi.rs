//! The OpenAPI document, generated from the handlers' annotations, and the offline Swagger UI.
//! `openapi.yaml` at the repository root is this document; a test fails when they drift.

use super::AppState;
use axum::Router;
use utoipa::OpenApi;
use utoipa_swagger_ui::SwaggerUi;

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "ontovec", description = "Embedding database and semantic search server for medical terminologies."),
    paths(
        super::service::health,
        super::service::ready,
        super::service::metrics,
        super::ontology::sources,
        super::ontology::concept,
        super::ontology::ancestors,
        super::ontology::descendants,
        super::ontology::mappings,
        super::ingest::ingest,
        super::ingest::job,
        super::search::models,
        super::search::search,
        super::search::normalize,
        super::search::relatedness,
        super::search::similar,
        super::search::embed,
        super::notes::create,
        super::notes::get,
        super::notes::search,
        super::notes::code,
    ),
    tags(
        (name = "service", description = "Liveness, readiness, metrics"),
        (name = "ontologies", description = "Releases, concepts, hierarchies, crosswalks, ingest"),
        (name = "search", description = "Hybrid search, normalization, relatedness, embeddings"),
        (name = "notes", description = "Clinical notes: storage, hybrid note search, ICD coding (NoteContrast)"),
    )
)]
pub struct ApiDoc;

/// The document as YAML (what `ontovec openapi` prints and `openapi.yaml` holds).
pub fn yaml() -> String {
    ApiDoc::openapi()
        .to_yaml()
        .unwrap_or_else(|e| format!("# cannot render: {e}\n"))
}

/// Routes for `/openapi.json` and `/docs` (Swagger UI, vendored assets, works offline).
pub fn docs_router() -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", ApiDoc::openapi()))
}
