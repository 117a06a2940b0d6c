//! Operation input: the query string of a GET or the `Parameters` resource of a POST, read
//! into one list of named values. Typed getters check the values (integer, boolean, Coding)
//! and answer `OperationOutcome`-ready errors.

use super::{FhirError, FhirResult};
use serde_json::Value;

/// Largest number of parameters accepted in one request.
pub const MAX_PARAMS: usize = 64;

/// A `Coding` given to an operation.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Coding {
    /// Code system URL.
    pub system: Option<String>,
    /// Code system version.
    pub version: Option<String>,
    /// Code.
    pub code: Option<String>,
    /// Display.
    pub display: Option<String>,
}

/// One parameter value.
#[derive(Debug, Clone, PartialEq)]
pub enum PValue {
    /// Any string-like value (`valueString`, `valueCode`, `valueUri`, query text).
    Str(String),
    /// `valueInteger` and friends.
    Int(i64),
    /// `valueBoolean`.
    Bool(bool),
    /// `valueCoding`.
    Coding(Coding),
}

/// The parameters of one operation call.
#[derive(Debug, Clone, Default)]
pub struct Params(pub Vec<(String, PValue)>);

impl Params {
    /// From query-string pairs (every value a string; `_format` and other `_` names are
    /// kept and ignored by the getters).
    pub fn from_query(pairs: Vec<(String, String)>) -> FhirResult<Self> {
        if pairs.len() > MAX_PARAMS {
            return Err(FhirError::too_costly(format!(
                "at most {MAX_PARAMS} parameters per request"
            )));
        }
        Ok(Self(
            pairs
                .into_iter()
                .map(|(k, v)| (k, PValue::Str(v)))
                .collect(),
        ))
    }

    /// From a POSTed `Parameters` resource (JSON bytes).
    pub fn from_body(body: &[u8]) -> FhirResult<Self> {
        let v: Value = serde_json::from_slice(body)
            .map_err(|e| FhirError::new(400, "structure", format!("the body is not JSON: {e}")))?;
        if v.get("resourceType").and_then(Value::as_str) != Some("Parameters") {
            return Err(FhirError::new(
                400,
                "structure",
                "the body must be a FHIR Parameters resource (resourceType \"Parameters\")",
            ));
        }
        let list = match v.get("parameter") {
            None => return Ok(Self::default()),
            Some(Value::Array(a)) => a,
            Some(_) => {
                return Err(FhirError::new(
                    400,
                    "structure",
                    "Parameters.parameter must be an array",
                ))
            }
        };
        if list.len() > MAX_PARAMS {
            return Err(FhirError::too_costly(format!(
                "at most {MAX_PARAMS} parameters per request"
            )));
        }
        let mut out = Vec::with_capacity(list.len());
        for p in list {
            let Some(name) = p.get("name").and_then(Value::as_str) else {
                return Err(FhirError::new(
                    400,
                    "structure",
                    "every Parameters.parameter needs a string name",
                ));
            };
            out.push((name.to_string(), value_of(name, p)?));
        }
        Ok(Self(out))
    }

    fn first(&self, name: &str) -> Option<&PValue> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v)
    }

    /// Refuse parameters this operation does not know (names starting with `_`, such as
    /// `_format`, are allowed everywhere).
    pub fn check_known(&self, op: &str, known: &[&str]) -> FhirResult<()> {
        for (n, _) in &self.0 {
            if !n.starts_with('_') && !known.contains(&n.as_str()) {
                return Err(FhirError::not_supported(format!(
                    "{op} has no parameter '{n}' here; it takes {}",
                    known.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// A string parameter (first occurrence); blank counts as absent only when `allow_blank`.
    pub fn str(&self, name: &str) -> FhirResult<Option<String>> {
        match self.first(name) {
            None => Ok(None),
            Some(PValue::Str(s)) if s.trim().is_empty() => {
                Err(FhirError::invalid(format!("parameter '{name}' is empty")))
            }
            Some(PValue::Str(s)) if s.len() > 4096 => Err(FhirError::invalid(format!(
                "parameter '{name}' is longer than 4096 bytes"
            ))),
            Some(PValue::Str(s)) => Ok(Some(s.clone())),
            Some(_) => Err(FhirError::invalid(format!(
                "parameter '{name}' must be a string/code/uri"
            ))),
        }
    }

    /// An integer parameter.
    pub fn int(&self, name: &str) -> FhirResult<Option<i64>> {
        match self.first(name) {
            None => Ok(None),
            Some(PValue::Int(i)) => Ok(Some(*i)),
            Some(PValue::Str(s)) => s.trim().parse().map(Some).map_err(|_| {
                FhirError::invalid(format!("parameter '{name}' must be an integer, got {s:?}"))
            }),
            Some(_) => Err(FhirError::invalid(format!(
                "parameter '{name}' must be an integer"
            ))),
        }
    }

    /// A boolean parameter.
    pub fn bool(&self, name: &str) -> FhirResult<Option<bool>> {
        match self.first(name) {
            None => Ok(None),
            Some(PValue::Bool(b)) => Ok(Some(*b)),
            Some(PValue::Str(s)) if s == "true" => Ok(Some(true)),
            Some(PValue::Str(s)) if s == "false" => Ok(Some(false)),
            Some(_) => Err(FhirError::invalid(format!(
                "parameter '{name}' must be true or false"
            ))),
        }
    }

    /// A Coding parameter; in a query string it is written `system|code`.
    pub fn coding(&self, name: &str) -> FhirResult<Option<Coding>> {
        match self.first(name) {
            None => Ok(None),
            Some(PValue::Coding(c)) => Ok(Some(c.clone())),
            Some(PValue::Str(s)) => match s.split_once('|') {
                Some((sys, code)) if !sys.is_empty() && !code.is_empty() => Ok(Some(Coding {
                    system: Some(sys.to_string()),
                    code: Some(code.to_string()),
                    ..Default::default()
                })),
                _ => Err(FhirError::invalid(format!(
                    "parameter '{name}' must be a Coding (system|code in a query string)"
                ))),
            },
            Some(_) => Err(FhirError::invalid(format!(
                "parameter '{name}' must be a Coding"
            ))),
        }
    }

    /// The (system URL, code, version, display) of a concept given either as `system` +
    /// `code` (+ `version`, `display`) or as the Coding parameter `coding_name`.
    pub fn concept(
        &self,
        system_name: &str,
        code_name: &str,
        coding_name: &str,
    ) -> FhirResult<(String, String, Option<String>, Option<String>)> {
        if let Some(c) = self.coding(coding_name)? {
            let (Some(system), Some(code)) = (c.system, c.code) else {
                return Err(FhirError::required(format!(
                    "'{coding_name}' needs both system and code"
                )));
            };
            return Ok((system, code, c.version.or(self.str("version")?), c.display));
        }
        let code = self.str(code_name)?.ok_or_else(|| {
            FhirError::required(format!(
                "give '{code_name}' (with '{system_name}') or '{coding_name}'"
            ))
        })?;
        let system = self.str(system_name)?.ok_or_else(|| {
            FhirError::required(format!(
                "'{code_name}' needs '{system_name}' (the code system URL)"
            ))
        })?;
        Ok((system, code, self.str("version")?, self.str("display")?))
    }
}

fn value_of(name: &str, p: &Value) -> FhirResult<PValue> {
    let obj = p.as_object().ok_or_else(|| {
        FhirError::new(
            400,
            "structure",
            "every Parameters.parameter must be an object",
        )
    })?;
    for (k, v) in obj {
        let Some(kind) = k.strip_prefix("value") else {
            continue;
        };
        let bad = || FhirError::invalid(format!("parameter '{name}': {k} has the wrong JSON type"));
        return match kind {
            "String" | "Code" | "Uri" | "Url" | "Canonical" | "Id" | "Markdown" | "DateTime"
            | "Date" => v
                .as_str()
                .map(|s| PValue::Str(s.to_string()))
                .ok_or_else(bad),
            "Integer" | "UnsignedInt" | "PositiveInt" => {
                v.as_i64().map(PValue::Int).ok_or_else(bad)
            }
            "Boolean" => v.as_bool().map(PValue::Bool).ok_or_else(bad),
            "Coding" => {
                let s = |f: &str| v.get(f).and_then(Value::as_str).map(str::to_string);
                if !v.is_object() {
                    return Err(bad());
                }
                Ok(PValue::Coding(Coding {
                    system: s("system"),
                    version: s("version"),
                    code: s("code"),
                    display: s("display"),
                }))
            }
            other => Err(FhirError::not_supported(format!(
                "parameter '{name}': value{other} is not supported here"
            ))),
        };
    }
    Err(FhirError::invalid(format!(
        "parameter '{name}' has no value"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_body_and_query_agree() {
        let body = br#"{"resourceType":"Parameters","parameter":[
            {"name":"system","valueUri":"http://hl7.org/fhir/sid/icd-10-cm"},
            {"name":"code","valueCode":"E11.9"},{"name":"count","valueInteger":5},
            {"name":"reverse","valueBoolean":true}]}"#;
        let p = Params::from_body(body).unwrap();
        let q = Params::from_query(vec![
            ("system".into(), "http://hl7.org/fhir/sid/icd-10-cm".into()),
            ("code".into(), "E11.9".into()),
            ("count".into(), "5".into()),
            ("reverse".into(), "true".into()),
        ])
        .unwrap();
        for x in [p, q] {
            let (s, c, _, _) = x.concept("system", "code", "coding").unwrap();
            assert_eq!(
                (s.as_str(), c.as_str()),
                ("http://hl7.org/fhir/sid/icd-10-cm", "E11.9")
            );
            assert_eq!(x.int("count").unwrap(), Some(5));
            assert_eq!(x.bool("reverse").unwrap(), Some(true));
        }
    }

    #[test]
    fn bad_input_is_refused() {
        assert_eq!(Params::from_body(b"{}").unwrap_err().code, "structure");
        assert_eq!(Params::from_body(b"nope").unwrap_err().code, "structure");
        let q = Params::from_query(vec![("count".into(), "ten".into())]).unwrap();
        assert_eq!(q.int("count").unwrap_err().code, "invalid");
        assert_eq!(
            q.check_known("$expand", &["url"]).unwrap_err().code,
            "not-supported"
        );
        let q = Params::from_query(vec![("code".into(), "X".into())]).unwrap();
        assert_eq!(
            q.concept("system", "code", "coding").unwrap_err().code,
            "required"
        );
        let c = Params::from_query(vec![("coding".into(), "http://loinc.org|1-8".into())])
            .unwrap()
            .concept("system", "code", "coding")
            .unwrap();
        assert_eq!(c.1, "1-8");
    }
}
