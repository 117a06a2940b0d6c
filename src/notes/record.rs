//! What a valid note is, for every way notes come in (the loaders in [`super::ingest`] and
//! [`super::codiesp`], and `POST /v1/notes`): limits, the id and text checks, how a note's
//! codes are normalised, and what a load reports.

use crate::domain::model::ConceptRef;
use crate::ontology::LoadError;
use crate::ontology::{icd10cm, icd9cm};
use crate::store::notes::{InsertError, MAX_ID_CHARS};

/// Longest accepted note text, in bytes.
pub const MAX_TEXT_BYTES: usize = 4 << 20;
/// Most codes on one note.
pub const MAX_CODES: usize = 512;
/// Longest code (after trimming), in characters.
pub const MAX_CODE_CHARS: usize = 64;

/// What a notes load produced.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct NotesLoadResult {
    /// Notes stored.
    pub notes: u64,
    /// Code assignments stored (over all notes).
    pub codes: u64,
    /// Non-fatal findings.
    pub warnings: Vec<String>,
    /// Seconds spent.
    pub seconds: f64,
}

/// Normalise one code of a note: system upper-cased (1-32 of `[A-Z0-9_-]`); ICD-9-CM and
/// ICD-10-CM codes get their dot (`4019` → `401.9`, `E119` → `E11.9`). Errors are messages for
/// the caller to locate.
pub fn normalize_code(system: &str, code: &str) -> Result<ConceptRef, String> {
    let sys = crate::domain::normalize_system(system).map_err(|e| e.to_string())?;
    let code = code.trim();
    if code.is_empty()
        || code.chars().count() > MAX_CODE_CHARS
        || code.chars().any(|c| c.is_control())
    {
        return Err(format!(
            "code {code:?} of {sys} must be 1-{MAX_CODE_CHARS} characters without control characters"
        ));
    }
    let code = match sys.as_str() {
        "ICD9CM" => icd9cm::with_dot(code),
        "ICD10CM" => icd10cm::with_dot(code),
        _ => code.to_string(),
    };
    Ok(ConceptRef::new(sys, code))
}

/// Check a note's id and text (the rules shared by loaders and `POST /v1/notes`).
pub fn validate_note(id: &str, text: &str) -> Result<(), String> {
    if id.is_empty() || id.chars().count() > MAX_ID_CHARS || id.chars().any(|c| c.is_control()) {
        return Err(format!(
            "note id must be 1-{MAX_ID_CHARS} characters without control characters"
        ));
    }
    if text.trim().is_empty() {
        return Err("note text is empty".into());
    }
    if text.len() > MAX_TEXT_BYTES {
        return Err(format!(
            "note text is {} bytes; the limit is {MAX_TEXT_BYTES}",
            text.len()
        ));
    }
    Ok(())
}

/// A failed note insert as a loader error: a taken id is a malformed line of `file`, a full
/// disk a [`LoadError::StorageFull`], any other store failure a store error.
pub fn insert_error(file: &str, line: u64, e: InsertError) -> LoadError {
    match e {
        InsertError::Conflict(c) => LoadError::malformed(file, line, c.to_string()),
        InsertError::Store(s) => s.into_load_error(),
    }
}
