//! Browse endpoints: sources, concepts, hierarchy traversal and mappings.

use super::error::{ApiError, ApiPath, ApiQuery, ErrorBody, HttpError};
use super::{blocking, AppState};
use crate::domain::model::{ConceptRef, Counts, Term};
use crate::service::codes::{self, CodeMatch};
use crate::store::read::{ConceptRecord, MAX_TRAVERSAL};
use crate::store::Store;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// One loaded release.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourceView {
    /// System name.
    pub system: String,
    /// Release label.
    pub release: String,
    /// Input format.
    pub format: String,
    /// Concepts.
    pub concepts: u64,
    /// Terms.
    pub terms: u64,
    /// Relations.
    pub relations: u64,
    /// Mappings.
    pub mappings: u64,
    /// When it became active (RFC 3339).
    pub loaded_at: String,
    /// Non-fatal findings recorded at ingest.
    pub warnings: Vec<String>,
}

/// `GET /v1/sources` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct SourcesResponse {
    /// Active releases, one per system.
    pub sources: Vec<SourceView>,
}

/// List the loaded terminology releases.
#[utoipa::path(get, path = "/v1/sources", tag = "ontologies",
    responses((status = 200, body = SourcesResponse), (status = 503, body = ErrorBody)))]
pub async fn sources(State(st): State<AppState>) -> Result<Json<SourcesResponse>, ApiError> {
    let app = st.app()?;
    let sources = blocking(move || app.store.sources()).await??;
    Ok(Json(SourcesResponse {
        sources: sources
            .into_iter()
            .map(|r| {
                let Counts {
                    concepts,
                    terms,
                    relations,
                    mappings,
                } = r.counts;
                SourceView {
                    system: r.system,
                    release: r.release,
                    format: r.format,
                    concepts,
                    terms,
                    relations,
                    mappings,
                    loaded_at: r.loaded_at,
                    warnings: r.warnings,
                }
            })
            .collect(),
    }))
}

/// A typed (non-hierarchical) relation of a concept.
#[derive(Debug, Serialize, ToSchema)]
pub struct RelationItem {
    /// Relation name (`has_ingredient`, `tradename_of`, ...).
    pub rel: String,
    /// The other concept.
    pub target: ConceptRef,
    /// `out`: this concept --rel--> target; `in`: target --rel--> this concept.
    pub direction: String,
}

/// A concept with its names, hierarchy neighbours and cross-references.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConceptView {
    /// System.
    pub system: String,
    /// Code, as the system writes it.
    pub code: String,
    /// The code as requested, when it was another spelling of `code` (`s72001a` for
    /// `S72.001A`); absent when the request named `code` exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_code: Option<String>,
    /// Preferred name.
    pub preferred_term: String,
    /// All names with their kind.
    pub terms: Vec<Term>,
    /// Semantic types / categories.
    pub semantic_types: Vec<String>,
    /// Release label the concept comes from.
    pub release: String,
    /// False for obsolete/deprecated concepts.
    pub active: bool,
    /// Further published attributes.
    pub attributes: BTreeMap<String, String>,
    /// Direct parents.
    pub parents: Vec<ConceptRef>,
    /// Direct children.
    pub children: Vec<ConceptRef>,
    /// Cross-references (UMLS source codes, OBO xrefs) in both directions.
    pub xrefs: Vec<ConceptRef>,
    /// Typed relations (RxNorm ingredients, UMLS RO, ...), at most 200.
    pub relations: Vec<RelationItem>,
}

/// No system name is longer than 64 bytes and no code longer than 256: such a reference names
/// nothing (404) and is not looked up.
fn check_ref(system: &str, code: &str) -> Result<(), ApiError> {
    if system.is_empty() || system.len() > 64 {
        return Err(HttpError::UnknownSystem(None).into());
    }
    if code.is_empty() || code.len() > 256 {
        return Err(ApiError::not_found("no concept has this code"));
    }
    Ok(())
}

/// Resolve a requested code to its concept (see [`codes::resolve_concept`]): the record and the
/// requested spelling when it differed; 404 when no code or several codes fit.
fn resolve(
    store: &Store,
    system: &str,
    code: &str,
) -> Result<(ConceptRecord, Option<String>), ApiError> {
    match codes::resolve_concept(store, system, code)? {
        CodeMatch::Exact(rec) => Ok((rec, None)),
        CodeMatch::Normalized(rec) => Ok((rec, Some(code.to_string()))),
        CodeMatch::Ambiguous(candidates) => Err(ApiError::not_found(format!(
            "{code} could be any of {} in {system}; ask for one of them",
            candidates.join(", ")
        ))
        .with_details(
            serde_json::json!({"system": system, "code": code, "candidates": candidates}),
        )),
        CodeMatch::NotFound => Err(unknown(store, system, code)),
    }
}

fn unknown(store: &Store, system: &str, code: &str) -> ApiError {
    if store.has_system(system) {
        HttpError::UnknownConcept {
            system: system.to_string(),
            code: code.to_string(),
        }
        .into()
    } else {
        HttpError::UnknownSystem(Some(system.to_string())).into()
    }
}

/// Look up one concept.
#[utoipa::path(get, path = "/v1/systems/{system}/concepts/{code}", tag = "ontologies",
    params(("system" = String, Path, description = "System, e.g. ICD10CM", max_length = 64), ("code" = String, Path, description = "Code, e.g. E11.9", max_length = 256)),
    responses((status = 200, body = ConceptView), (status = 404, body = ErrorBody), (status = 400, body = ErrorBody)))]
pub async fn concept(
    State(st): State<AppState>,
    ApiPath((system, code)): ApiPath<(String, String)>,
) -> Result<Json<ConceptView>, ApiError> {
    check_ref(&system, &code)?;
    let app = st.app()?;
    blocking(move || {
        let store = &app.store;
        let system = system.to_ascii_uppercase();
        let (rec, requested_code) = resolve(store, &system, &code)?;
        let code = rec.concept.code.clone();
        let to_refs = |codes: Vec<String>| {
            codes
                .into_iter()
                .map(|c| ConceptRef::new(system.clone(), c))
                .collect::<Vec<_>>()
        };
        let parents = to_refs(store.parents(&system, &code)?);
        let mut children = to_refs(store.children(&system, &code)?);
        children.truncate(MAX_TRAVERSAL);
        let xrefs = store
            .mappings(&system, &code, None)?
            .into_iter()
            .filter(|m| m.relation == "xref")
            .map(|m| m.target)
            .collect();
        let relations = store
            .relations(&system, &code)?
            .into_iter()
            .take(200)
            .map(|r| RelationItem {
                rel: r.rel,
                target: ConceptRef::new(system.clone(), r.code),
                direction: r.direction.into(),
            })
            .collect();
        let c = rec.concept;
        Ok(Json(ConceptView {
            system: rec.system,
            code: c.code,
            requested_code,
            preferred_term: c.preferred_term,
            terms: c.terms,
            semantic_types: c.semantic_types,
            release: rec.release,
            active: c.active,
            attributes: c.attributes,
            parents,
            children,
            xrefs,
            relations,
        }))
    })
    .await?
}

/// A concept reached by a traversal, with its distance.
#[derive(Debug, Serialize, ToSchema)]
pub struct TraversalItem {
    /// System.
    pub system: String,
    /// Code.
    pub code: String,
    /// Preferred name.
    pub preferred_term: String,
    /// Number of hierarchy steps from the starting concept (1 = parent/child).
    pub depth: u32,
}

/// Ancestors or descendants.
#[derive(Debug, Serialize, ToSchema)]
pub struct TraversalResponse {
    /// The starting concept's code, as the system writes it.
    pub code: String,
    /// The code as requested, when it was another spelling of `code`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_code: Option<String>,
    /// Reached concepts, nearest first.
    pub concepts: Vec<TraversalItem>,
    /// True when the traversal stopped at its bound.
    pub truncated: bool,
}

async fn traverse(
    st: AppState,
    system: String,
    code: String,
    up: bool,
) -> Result<Json<TraversalResponse>, ApiError> {
    check_ref(&system, &code)?;
    let app = st.app()?;
    blocking(move || {
        let store = &app.store;
        let system = system.to_ascii_uppercase();
        let (rec, requested_code) = resolve(store, &system, &code)?;
        let code = rec.concept.code;
        let found = store.traverse(&system, &code, up)?;
        let truncated = found.len() >= MAX_TRAVERSAL;
        let mut concepts = Vec::with_capacity(found.len());
        for (c, depth) in found {
            let preferred_term = store
                .concept(&system, &c)?
                .map(|r| r.concept.preferred_term)
                .unwrap_or_default();
            concepts.push(TraversalItem {
                system: system.clone(),
                code: c,
                preferred_term,
                depth,
            });
        }
        Ok(Json(TraversalResponse {
            code,
            requested_code,
            concepts,
            truncated,
        }))
    })
    .await?
}

/// All ancestors of a concept with their depth (cycle-safe, bounded).
#[utoipa::path(get, path = "/v1/systems/{system}/concepts/{code}/ancestors", tag = "ontologies",
    params(("system" = String, Path, description = "System", max_length = 64), ("code" = String, Path, description = "Code", max_length = 256)),
    responses((status = 200, body = TraversalResponse), (status = 404, body = ErrorBody)))]
pub async fn ancestors(
    State(st): State<AppState>,
    ApiPath((system, code)): ApiPath<(String, String)>,
) -> Result<Json<TraversalResponse>, ApiError> {
    traverse(st, system, code, true).await
}

/// All descendants of a concept with their depth (cycle-safe, bounded).
#[utoipa::path(get, path = "/v1/systems/{system}/concepts/{code}/descendants", tag = "ontologies",
    params(("system" = String, Path, description = "System", max_length = 64), ("code" = String, Path, description = "Code", max_length = 256)),
    responses((status = 200, body = TraversalResponse), (status = 404, body = ErrorBody)))]
pub async fn descendants(
    State(st): State<AppState>,
    ApiPath((system, code)): ApiPath<(String, String)>,
) -> Result<Json<TraversalResponse>, ApiError> {
    traverse(st, system, code, false).await
}

/// Filter of the mappings endpoint.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct MappingsQuery {
    /// Only mappings whose other side is in this system (e.g. `PHECODE`).
    pub target: Option<String>,
}

/// A crosswalk entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct MappingItem {
    /// System of the other side.
    pub system: String,
    /// Code of the other side.
    pub code: String,
    /// Preferred name of the other side when that system is loaded.
    pub preferred_term: Option<String>,
    /// Relation (`maps_to`, `xref`, `gem_approximate`, ...).
    pub relation: String,
    /// Provenance.
    pub source: String,
    /// `forward` when this concept is the mapping's source, `reverse` otherwise.
    pub direction: String,
}

/// Mappings of a concept.
#[derive(Debug, Serialize, ToSchema)]
pub struct MappingsResponse {
    /// The concept's code, as the system writes it.
    pub code: String,
    /// The code as requested, when it was another spelling of `code`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requested_code: Option<String>,
    /// Entries.
    pub mappings: Vec<MappingItem>,
}

/// Crosswalks of a concept in both directions (ICD→PheCODE, GEMs, UMLS xrefs).
#[utoipa::path(get, path = "/v1/systems/{system}/concepts/{code}/mappings", tag = "ontologies",
    params(("system" = String, Path, description = "System", max_length = 64), ("code" = String, Path, description = "Code", max_length = 256), MappingsQuery),
    responses((status = 200, body = MappingsResponse), (status = 404, body = ErrorBody)))]
pub async fn mappings(
    State(st): State<AppState>,
    ApiPath((system, code)): ApiPath<(String, String)>,
    ApiQuery(q): ApiQuery<MappingsQuery>,
) -> Result<Json<MappingsResponse>, ApiError> {
    check_ref(&system, &code)?;
    let app = st.app()?;
    blocking(move || {
        let store = &app.store;
        let system = system.to_ascii_uppercase();
        let target = q.target.map(|t| t.to_ascii_uppercase());
        // Mappings may name codes of a system that is not loaded: those are looked up as given.
        let (code, requested_code) = match resolve(store, &system, &code) {
            Ok((rec, requested)) => (rec.concept.code, requested),
            Err(e) => {
                if !store.mappings(&system, &code, None)?.is_empty() {
                    (code, None)
                } else {
                    return Err(e);
                }
            }
        };
        let found = store.mappings(&system, &code, target.as_deref())?;
        let mut mappings = Vec::with_capacity(found.len());
        for m in found {
            let preferred_term = store
                .concept(&m.target.system, &m.target.code)?
                .map(|r| r.concept.preferred_term);
            mappings.push(MappingItem {
                system: m.target.system,
                code: m.target.code,
                preferred_term,
                relation: m.relation,
                source: m.source,
                direction: m.direction.into(),
            });
        }
        Ok(Json(MappingsResponse {
            code,
            requested_code,
            mappings,
        }))
    })
    .await?
}
