//! Canonical URLs of the code systems: the HL7 / publisher URIs for the well-known systems,
//! documented URIs for PheCODE and phecodeX, and `urn:ontovec:system:{NAME}` for any other
//! system a user loads. The `CodeSystem` resource id is the system name (`ICD10CM`).

use crate::store::Store;

/// (system name, canonical URL, title) of the systems with a published or documented URI.
pub const KNOWN: &[(&str, &str, &str)] = &[
    ("ICD10CM", "http://hl7.org/fhir/sid/icd-10-cm", "ICD-10-CM"),
    ("ICD9CM", "http://hl7.org/fhir/sid/icd-9-cm", "ICD-9-CM"),
    ("LOINC", "http://loinc.org", "LOINC"),
    (
        "RXNORM",
        "http://www.nlm.nih.gov/research/umls/rxnorm",
        "RxNorm",
    ),
    (
        "HPO",
        "http://purl.obolibrary.org/obo/hp.owl",
        "Human Phenotype Ontology",
    ),
    (
        "UMLS",
        "http://www.nlm.nih.gov/research/umls",
        "UMLS Metathesaurus",
    ),
    (
        "PHECODE",
        "https://phewascatalog.org/phecodes",
        "PheCODE 1.2",
    ),
    (
        "PHECODEX",
        "https://phewascatalog.org/phecodes_x",
        "phecodeX",
    ),
];

/// Prefix of the URL of a system without a published URI.
pub const OTHER_PREFIX: &str = "urn:ontovec:system:";

/// Canonical URL of a system.
pub fn url_of(system: &str) -> String {
    KNOWN
        .iter()
        .find(|(s, _, _)| *s == system)
        .map(|(_, u, _)| (*u).to_string())
        .unwrap_or_else(|| format!("{OTHER_PREFIX}{system}"))
}

/// Human title of a system.
pub fn title_of(system: &str) -> String {
    KNOWN
        .iter()
        .find(|(s, _, _)| *s == system)
        .map(|(_, _, t)| (*t).to_string())
        .unwrap_or_else(|| system.to_string())
}

/// The system named by a canonical URL (whether or not it is loaded).
pub fn system_of_url(url: &str) -> Option<String> {
    let url = url.trim_end_matches('/');
    if let Some((s, _, _)) = KNOWN.iter().find(|(_, u, _)| *u == url) {
        return Some((*s).to_string());
    }
    url.strip_prefix(OTHER_PREFIX)
        .filter(|s| !s.is_empty() && s.len() <= 64)
        .map(str::to_ascii_uppercase)
}

/// The loaded system named by `url`, with its active release label; a 404 `not-found`
/// OperationOutcome otherwise.
pub fn loaded(store: &Store, url: &str) -> super::FhirResult<(String, String)> {
    let Some(system) = system_of_url(url) else {
        return Err(super::FhirError::not_found(format!(
            "unknown code system {url}: see GET /fhir/CodeSystem for the systems served"
        )));
    };
    let release = store
        .active_rid(&system)
        .and_then(|rid| store.release(rid).ok().flatten())
        .map(|r| r.release);
    match release {
        Some(r) => Ok((system, r)),
        None => Err(super::FhirError::not_found(format!(
            "code system {url} ({system}) is not loaded"
        ))),
    }
}

/// A FHIR resource id for a system name: `[A-Za-z0-9.-]{1,64}`, other characters as `-`.
pub fn resource_id(system: &str) -> String {
    system
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .take(64)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_round_trip() {
        for (s, u, _) in KNOWN {
            assert_eq!(url_of(s), *u);
            assert_eq!(system_of_url(u).as_deref(), Some(*s));
        }
        assert_eq!(url_of("MESH"), "urn:ontovec:system:MESH");
        assert_eq!(
            system_of_url("urn:ontovec:system:mesh").as_deref(),
            Some("MESH")
        );
        assert_eq!(system_of_url("http://example.org/x"), None);
        assert_eq!(resource_id("MY_SYS"), "MY-SYS");
    }
}
