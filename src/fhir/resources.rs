//! Conformance resources: the `CapabilityStatement`, the `TerminologyCapabilities` (which also
//! documents how `$expand`'s `filter` searches) and one summary `CodeSystem` per loaded system
//! (`content: not-present`: concepts are reached through the operations, never dumped).

use super::systems::{resource_id, title_of, url_of};
use super::{FhirError, FhirResult, FHIR_VERSION};
use crate::domain::model::ReleaseInfo;
use crate::store::Store;
use crate::util::time::now_rfc3339;
use serde_json::{json, Value};

/// Software version reported in conformance resources.
pub const SOFTWARE_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The operations served, as (resource type, operation name, HL7 definition).
pub const OPERATIONS: &[(&str, &str, &str)] = &[
    (
        "CodeSystem",
        "lookup",
        "http://hl7.org/fhir/OperationDefinition/CodeSystem-lookup",
    ),
    (
        "CodeSystem",
        "validate-code",
        "http://hl7.org/fhir/OperationDefinition/CodeSystem-validate-code",
    ),
    (
        "CodeSystem",
        "subsumes",
        "http://hl7.org/fhir/OperationDefinition/CodeSystem-subsumes",
    ),
    (
        "ValueSet",
        "expand",
        "http://hl7.org/fhir/OperationDefinition/ValueSet-expand",
    ),
    (
        "ConceptMap",
        "translate",
        "http://hl7.org/fhir/OperationDefinition/ConceptMap-translate",
    ),
];

/// How `$expand`'s `filter` works (TerminologyCapabilities.expansion.textFilter).
pub const TEXT_FILTER_DOC: &str = "`filter` runs ontovec's search over every term of the \
value set's code system (synonyms, inclusion terms, abbreviations included) and returns \
concepts best first: by default a hybrid of lexical (BM25, trigram, code and exact-match \
boosts, fuzzy fallback) and vector (sentence-embedding nearest neighbours) search, fused. \
The parameter `filterMode` chooses `hybrid` (default), `lexical` (words only: no embedding \
model involved) or `vector`. Each entry of `expansion.contains` carries its score and the \
rank on each side in the extensions `urn:ontovec:extension:search-score`, \
`urn:ontovec:extension:lexical-rank` and `urn:ontovec:extension:vector-rank`. A filtered \
expansion is a ranking of at most 1000 concepts, paged with `offset`/`count` (default \
count 20); it has no `total`.";

fn active_releases(store: &Store) -> FhirResult<Vec<ReleaseInfo>> {
    Ok(store.sources()?)
}

/// `GET /fhir/metadata`: the CapabilityStatement.
pub fn capability_statement(base: &str) -> Value {
    let mut by_type: Vec<(&str, Vec<Value>)> = Vec::new();
    for (ty, name, def) in OPERATIONS {
        let op = json!({"name": name, "definition": def});
        match by_type.iter_mut().find(|(t, _)| t == ty) {
            Some((_, ops)) => ops.push(op),
            None => by_type.push((ty, vec![op])),
        }
    }
    let resources: Vec<Value> = by_type
        .into_iter()
        .map(|(ty, ops)| {
            let mut r = json!({"type": ty, "operation": ops});
            if ty == "CodeSystem" {
                r["interaction"] = json!([{"code": "read"}, {"code": "search-type"}]);
                r["searchParam"] = json!([{"name": "url", "type": "uri"}]);
            }
            r
        })
        .collect();
    json!({
        "resourceType": "CapabilityStatement",
        "id": "ontovec",
        "name": "OntovecTerminologyServer",
        "title": "ontovec FHIR R4 terminology service",
        "status": "active",
        "date": now_rfc3339(),
        "publisher": "ontovec",
        "kind": "instance",
        "instantiates": ["http://hl7.org/fhir/CapabilityStatement/terminology-server"],
        "software": {"name": "ontovec", "version": SOFTWARE_VERSION},
        "implementation": {"description": "ontovec terminology server", "url": base},
        "fhirVersion": FHIR_VERSION,
        "format": ["json"],
        "rest": [{"mode": "server", "resource": resources}]
    })
}

/// `GET /fhir/metadata?mode=terminology`: the TerminologyCapabilities.
pub fn terminology_capabilities(store: &Store) -> FhirResult<Value> {
    let code_systems: Vec<Value> = active_releases(store)?
        .iter()
        .map(|r| {
            json!({
                "uri": url_of(&r.system),
                "version": [{"code": r.release, "isDefault": true,
                             "property": ["parent", "child", "inactive"]}],
                "subsumption": true
            })
        })
        .collect();
    Ok(json!({
        "resourceType": "TerminologyCapabilities",
        "id": "ontovec",
        "name": "OntovecTerminologyCapabilities",
        "status": "active",
        "date": now_rfc3339(),
        "kind": "instance",
        "software": {"name": "ontovec", "version": SOFTWARE_VERSION},
        "codeSystem": code_systems,
        "expansion": {
            "hierarchical": false,
            "paging": true,
            "incomplete": false,
            "parameter": [
                {"name": "url", "documentation": "Implicit value sets only: `{code system URL}?fhir_vs` (every concept) or `{code system URL}?fhir_vs=isa/{code}` (the concept and its descendants)."},
                {"name": "filter", "documentation": "Free text; see textFilter."},
                {"name": "filterMode", "documentation": "ontovec: `hybrid` (default), `lexical` or `vector` search for `filter`."},
                {"name": "count", "documentation": "Concepts per page, 0..1000. Without it an expansion larger than 1000 concepts is refused (too-costly); a filtered one returns 20."},
                {"name": "offset", "documentation": "Concepts to skip (paging)."},
                {"name": "activeOnly", "documentation": "Leave out inactive concepts."}
            ],
            "textFilter": TEXT_FILTER_DOC
        },
        "validateCode": {"translations": false},
        "translation": {"needsMap": false},
        "closure": {"translation": false}
    }))
}

/// The summary CodeSystem resource of a loaded release.
pub fn code_system(r: &ReleaseInfo) -> Value {
    json!({
        "resourceType": "CodeSystem",
        "id": resource_id(&r.system),
        "url": url_of(&r.system),
        "version": r.release,
        "name": resource_id(&r.system).replace(['-', '.'], "_"),
        "title": title_of(&r.system),
        "status": "active",
        "experimental": false,
        "date": r.loaded_at,
        "description": format!("{} release {} as loaded into ontovec ({} format, {} concepts, {} terms).",
            title_of(&r.system), r.release, r.format, r.counts.concepts, r.counts.terms),
        "caseSensitive": true,
        "hierarchyMeaning": "is-a",
        "content": "not-present",
        "count": r.counts.concepts,
        "property": [
            {"code": "parent", "uri": "http://hl7.org/fhir/concept-properties#parent", "description": "A direct parent of the concept", "type": "code"},
            {"code": "child", "uri": "http://hl7.org/fhir/concept-properties#child", "description": "A direct child of the concept", "type": "code"},
            {"code": "inactive", "uri": "http://hl7.org/fhir/concept-properties#inactive", "description": "True when the source marks the concept obsolete or inactive", "type": "boolean"}
        ]
    })
}

/// `GET /fhir/CodeSystem/{id}`.
pub fn code_system_by_id(store: &Store, id: &str) -> FhirResult<Value> {
    active_releases(store)?
        .iter()
        .find(|r| resource_id(&r.system).eq_ignore_ascii_case(id))
        .map(code_system)
        .ok_or_else(|| FhirError::not_found(format!("no CodeSystem with id {id}")))
}

/// `GET /fhir/CodeSystem[?url=...]`: a searchset Bundle of the summaries.
pub fn code_system_bundle(store: &Store, base: &str, url: Option<&str>) -> FhirResult<Value> {
    let entries: Vec<Value> = active_releases(store)?
        .iter()
        .filter(|r| url.is_none_or(|u| u.trim_end_matches('/') == url_of(&r.system)))
        .map(|r| {
            json!({
                "fullUrl": format!("{base}/CodeSystem/{}", resource_id(&r.system)),
                "resource": code_system(r),
                "search": {"mode": "match"}
            })
        })
        .collect();
    Ok(json!({
        "resourceType": "Bundle",
        "type": "searchset",
        "total": entries.len(),
        "link": [{"relation": "self", "url": format!("{base}/CodeSystem")}],
        "entry": entries
    }))
}
