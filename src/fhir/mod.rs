//! FHIR R4 terminology service: store data mapped to FHIR resources (`CodeSystem`,
//! `CapabilityStatement`, `TerminologyCapabilities`, `ValueSet` expansions, `Parameters`
//! answers of `$lookup` / `$validate-code` / `$subsumes` / `$translate`) and errors as
//! `OperationOutcome`. Everything here is plain data in, JSON out: the HTTP handlers
//! (`crate::api::fhir`) only parse the request, call these functions on the blocking pool and
//! send the answer as `application/fhir+json`. Text filters of `$expand` run the same search
//! engine as `/v1/search`; the handler runs the search and [`expand::finish`] shapes the hits.

pub mod expand;
pub mod ops;
pub mod params;
pub mod resources;
pub mod systems;

use crate::store::StoreError;
use serde_json::{json, Value};

/// The FHIR version served.
pub const FHIR_VERSION: &str = "4.0.1";

/// Media type of every answer.
pub const FHIR_JSON: &str = "application/fhir+json";

/// Base of the URIs ontovec defines (extensions, concept maps, designation kinds).
pub const URN: &str = "urn:ontovec";

/// A failed FHIR interaction: the HTTP status and the `OperationOutcome.issue.code`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct FhirError {
    /// HTTP status.
    pub status: u16,
    /// FHIR `IssueType` code (`invalid`, `required`, `not-found`, `not-supported`,
    /// `too-costly`, `throttled`, `transient`, `exception`, ...).
    pub code: &'static str,
    /// What went wrong, for humans (`issue.diagnostics`).
    pub message: String,
}

impl FhirError {
    /// A new error.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `invalid`: a malformed or out-of-range parameter.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(400, "invalid", message)
    }

    /// 400 `required`: a mandatory parameter is missing.
    pub fn required(message: impl Into<String>) -> Self {
        Self::new(400, "required", message)
    }

    /// 404 `not-found`: unknown code system, version, code or resource.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(404, "not-found", message)
    }

    /// 400 `not-supported`: a parameter or value set form this server does not offer.
    pub fn not_supported(message: impl Into<String>) -> Self {
        Self::new(400, "not-supported", message)
    }

    /// 400 `too-costly`: the answer would be larger than the server hands out at once.
    pub fn too_costly(message: impl Into<String>) -> Self {
        Self::new(400, "too-costly", message)
    }

    /// The error as an `OperationOutcome` resource.
    pub fn outcome(&self) -> Value {
        let severity = if self.status >= 500 { "fatal" } else { "error" };
        json!({
            "resourceType": "OperationOutcome",
            "issue": [{"severity": severity, "code": self.code, "diagnostics": self.message}]
        })
    }
}

impl From<StoreError> for FhirError {
    fn from(e: StoreError) -> Self {
        Self::new(500, "exception", format!("store: {e}"))
    }
}

/// Result of a FHIR function.
pub type FhirResult<T> = Result<T, FhirError>;

/// A `Parameters` resource from (name, value) parts, each value an object such as
/// `{"valueString": "x"}` or `{"part": [...]}`.
pub fn parameters(parts: Vec<Value>) -> Value {
    json!({"resourceType": "Parameters", "parameter": parts})
}

/// One `Parameters.parameter` with a value: `param("display", "valueString", "x")`.
pub fn param(name: &str, kind: &str, value: impl Into<Value>) -> Value {
    let mut p = serde_json::Map::new();
    p.insert("name".into(), name.into());
    p.insert(kind.into(), value.into());
    Value::Object(p)
}

/// One `Parameters.parameter` made of parts.
pub fn param_parts(name: &str, parts: Vec<Value>) -> Value {
    json!({"name": name, "part": parts})
}
