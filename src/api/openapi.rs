//! The OpenAPI document, generated from the handlers' annotations, and the offline Swagger UI.
//!
//! The document describes the running configuration, so that a client generated from the
//! served `/openapi.json` is right about authentication:
//! * with `--auth-token` the writes (`POST /v1/ingest`, `POST /v1/notes`) require the `bearer`
//!   scheme and may answer 401;
//! * without one they are open: the served document declares no security scheme and no 401.
//!
//! `openapi.yaml` at the repository root is the token-configured document ([`yaml`], what
//! `ontovec openapi` prints); a test fails when they drift.

use super::AppState;
use axum::http::StatusCode;
use axum::Router;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, Ref, RefOr};
use utoipa::{Modify, OpenApi};
use utoipa_swagger_ui::SwaggerUi;

/// Name of the bearer-token security scheme (writes).
pub const BEARER: &str = "bearer";

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(title = "ontovec", description = "Embedding database and semantic search server for medical terminologies."),
    paths(
        super::status::health,
        super::status::ready,
        super::status::metrics,
        super::ontology::sources,
        super::ontology::concept,
        super::ontology::ancestors,
        super::ontology::descendants,
        super::ontology::mappings,
        super::ingest::ingest,
        super::ingest::jobs,
        super::ingest::job,
        super::models::models,
        super::models::model,
        super::models::model_file,
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
    modifiers(&CommonResponses),
    tags(
        (name = "service", description = "Liveness, readiness, metrics"),
        (name = "ontologies", description = "Releases, concepts, hierarchies, crosswalks, ingest"),
        (name = "search", description = "Hybrid search, normalization, relatedness, embeddings"),
        (name = "notes", description = "Clinical notes: storage, hybrid note search, ICD coding (NoteContrast)"),
    )
)]
pub struct ApiDoc;

/// Adds what every operation can answer besides its own responses, so the document lists every
/// status the server really sends (checked by the contract test, `scripts/contract.sh`):
/// 503 (store still opening, or the request deadline passed), 400/413/415 for request bodies,
/// 400/404 for path parameters; and gives each response a description.
struct CommonResponses;

fn error_response(description: &str, retry_after: bool) -> RefOr<Response> {
    let mut b = ResponseBuilder::new().description(description).content(
        "application/json",
        ContentBuilder::new()
            .schema(Some(Ref::from_schema_name("ErrorBody")))
            .build(),
    );
    if retry_after {
        b = b.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(
                    utoipa::openapi::ObjectBuilder::new()
                        .schema_type(utoipa::openapi::schema::Type::Integer),
                ))
                .description(Some("Seconds to wait before retrying"))
                .build(),
        );
    }
    RefOr::T(b.build())
}

fn add_error(op: &mut Operation, status: StatusCode, description: &str) {
    let retry = matches!(status.as_u16(), 429 | 503 | 507);
    op.responses
        .responses
        .entry(status.as_u16().to_string())
        .or_insert_with(|| error_response(description, retry));
}

impl Modify for CommonResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                BEARER,
                SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
            );
        for item in doc.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                let service = op
                    .tags
                    .as_ref()
                    .is_some_and(|t| t.iter().any(|t| t == "service"));
                if !service {
                    add_error(
                        op,
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Not ready yet (the store is opening), the request deadline passed, or (vector and hybrid search) the Postgres vector store is unreachable (`vector_store_unavailable`)",
                    );
                }
                if op.request_body.is_some() {
                    add_error(op, StatusCode::BAD_REQUEST, "Invalid request");
                    add_error(op, StatusCode::PAYLOAD_TOO_LARGE, "Request body too large");
                    add_error(op, StatusCode::UNSUPPORTED_MEDIA_TYPE, "Wrong Content-Type");
                }
                if op.parameters.as_ref().is_some_and(|p| !p.is_empty()) {
                    add_error(op, StatusCode::BAD_REQUEST, "Invalid parameter");
                    add_error(op, StatusCode::NOT_FOUND, "Not found");
                }
                // The job an ingest creates can be followed (lets contract tests chain calls).
                if op.operation_id.as_deref() == Some("ingest") {
                    if let Some(RefOr::T(r)) = op.responses.responses.get_mut("202") {
                        r.links.insert(
                            "GetJob".into(),
                            RefOr::T(
                                utoipa::openapi::link::LinkBuilder::new()
                                    .operation_id("job")
                                    .parameter("job_id", "$response.body#/job_id")
                                    .description("Status and progress of the job just created")
                                    .build(),
                            ),
                        );
                    }
                }
                for (code, resp) in op.responses.responses.iter_mut() {
                    if let RefOr::T(r) = resp {
                        if r.description.is_empty() {
                            r.description = code
                                .parse::<u16>()
                                .ok()
                                .and_then(|c| StatusCode::from_u16(c).ok())
                                .and_then(|c| c.canonical_reason())
                                .unwrap_or("Response")
                                .to_string();
                        }
                    }
                }
            }
        }
    }
}

/// The document of a server configured with a bearer token for writes (`with_token`), or
/// without one: then no operation requires security, none lists 401, and no security scheme is
/// declared.
pub fn document(with_token: bool) -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    if !with_token {
        for item in doc.paths.paths.values_mut() {
            for op in [&mut item.get, &mut item.post].into_iter().flatten() {
                op.security = None;
                op.responses
                    .responses
                    .remove(&StatusCode::UNAUTHORIZED.as_u16().to_string());
            }
        }
        if let Some(c) = doc.components.as_mut() {
            c.security_schemes.remove(BEARER);
        }
    }
    doc
}

/// The token-configured document as YAML (what `ontovec openapi` prints and `openapi.yaml`
/// holds).
pub fn yaml() -> String {
    document(true)
        .to_yaml()
        .unwrap_or_else(|e| format!("# cannot render: {e}\n"))
}

/// Routes for `/openapi.json` (the document of this configuration: `with_token` when the
/// server requires a bearer token for writes) and `/docs` (Swagger UI, vendored assets, works
/// offline).
pub fn docs_router(with_token: bool) -> Router<AppState> {
    Router::new().merge(SwaggerUi::new("/docs").url("/openapi.json", document(with_token)))
}
