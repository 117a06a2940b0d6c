//! Code lookups as users type them: a requested code resolves to the one stored code it can
//! stand for (`s72001a` → `S72.001A`), or to several (ambiguous), or to none.
//! The spellings come from [`crate::ontology::codes::spellings`]; the store says which exist.

use crate::ontology::codes;
use crate::store::read::ConceptRecord;
use crate::store::{Store, StoreResult};

/// The outcome of [`resolve_concept`].
#[derive(Debug, Clone)]
pub enum CodeMatch {
    /// The code exists as written.
    Exact(ConceptRecord),
    /// The code was another spelling of exactly one stored code (the record's).
    Normalized(ConceptRecord),
    /// Several stored codes fit the spelling; none is chosen.
    Ambiguous(Vec<String>),
    /// No stored code fits (or the system is not loaded).
    NotFound,
}

impl CodeMatch {
    /// The record found, exact or normalised.
    pub fn record(&self) -> Option<&ConceptRecord> {
        match self {
            CodeMatch::Exact(r) | CodeMatch::Normalized(r) => Some(r),
            _ => None,
        }
    }
}

/// Find the concept `code` names in `system`: as written, else through the spellings a user
/// may have meant (case, dots, blanks, placeholder `X`s; see [`codes::spellings`]). A group
/// of equally plausible spellings with more than one stored code is ambiguous.
pub fn resolve_concept(store: &Store, system: &str, code: &str) -> StoreResult<CodeMatch> {
    if let Some(rec) = store.concept(system, code)? {
        return Ok(CodeMatch::Exact(rec));
    }
    if !store.has_system(system) {
        return Ok(CodeMatch::NotFound);
    }
    for tier in codes::spellings(system, code) {
        let mut found: Vec<ConceptRecord> = Vec::new();
        for candidate in tier.iter().filter(|c| c.as_str() != code) {
            if let Some(rec) = store.concept(system, candidate)? {
                if !found.iter().any(|f| f.concept.code == rec.concept.code) {
                    found.push(rec);
                }
            }
        }
        match found.len() {
            0 => continue,
            1 => return Ok(CodeMatch::Normalized(found.remove(0))),
            _ => {
                return Ok(CodeMatch::Ambiguous(
                    found.into_iter().map(|r| r.concept.code).collect(),
                ))
            }
        }
    }
    Ok(CodeMatch::NotFound)
}
