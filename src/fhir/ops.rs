//! `CodeSystem/$lookup`, `CodeSystem/$validate-code`, `CodeSystem/$subsumes` and
//! `ConceptMap/$translate` over the store, answering `Parameters` resources.

use super::params::Params;
use super::systems::{loaded, url_of};
use super::{param, param_parts, parameters, FhirError, FhirResult, URN};
use crate::store::read::ConceptRecord;
use crate::store::Store;
use serde_json::{json, Value};

/// Code system of the designation `use` codings: the term kinds of the store
/// (`preferred`, `synonym`, `abbreviation`, `inclusion`, ...).
pub const TERM_KIND_SYSTEM: &str = "urn:ontovec:term-kind";

/// Largest number of `match` entries one `$translate` answers.
pub const MAX_MATCHES: usize = 1000;

/// Resolve a system URL (+ optional version) to a loaded system; a version other than the
/// active release is a 404.
fn system_and_version(
    store: &Store,
    url: &str,
    version: Option<&str>,
) -> FhirResult<(String, String)> {
    let (system, release) = loaded(store, url)?;
    if let Some(v) = version {
        if v != release {
            return Err(FhirError::not_found(format!(
                "version {v} of {url} is not loaded (loaded: {release})"
            )));
        }
    }
    Ok((system, release))
}

fn concept_or_404(store: &Store, url: &str, system: &str, code: &str) -> FhirResult<ConceptRecord> {
    if code.len() > 256 {
        return Err(FhirError::invalid("codes are at most 256 bytes long"));
    }
    store
        .concept(system, code)?
        .ok_or_else(|| FhirError::not_found(format!("unknown code '{code}' in {url}")))
}

fn kind_name(kind: crate::domain::model::TermKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "synonym".into())
}

/// `CodeSystem/$lookup`: display, designations (with their kind as `use`), the properties
/// `parent`, `child` and `inactive`, and the version.
pub fn lookup(store: &Store, p: &Params) -> FhirResult<Value> {
    p.check_known(
        "$lookup",
        &[
            "system",
            "code",
            "version",
            "coding",
            "date",
            "displayLanguage",
            "property",
        ],
    )?;
    let (url, code, version, _) = p.concept("system", "code", "coding")?;
    let (system, release) = system_and_version(store, &url, version.as_deref())?;
    let rec = concept_or_404(store, &url, &system, &code)?;
    let c = &rec.concept;
    let mut out = vec![
        param("name", "valueString", super::systems::title_of(&system)),
        param("version", "valueString", release),
        param("display", "valueString", c.preferred_term.clone()),
    ];
    for t in &c.terms {
        let kind = kind_name(t.kind);
        out.push(param_parts(
            "designation",
            vec![
                param(
                    "use",
                    "valueCoding",
                    json!({"system": TERM_KIND_SYSTEM, "code": kind, "display": kind.replace('_', " ")}),
                ),
                param("value", "valueString", t.text.clone()),
            ],
        ));
    }
    let prop = |code: &str, kind: &str, v: Value| {
        param_parts(
            "property",
            vec![param("code", "valueCode", code), param("value", kind, v)],
        )
    };
    for parent in store.parents(&system, &code)? {
        out.push(prop("parent", "valueCode", parent.into()));
    }
    for child in store.children(&system, &code)?.into_iter().take(1000) {
        out.push(prop("child", "valueCode", child.into()));
    }
    out.push(prop("inactive", "valueBoolean", (!c.active).into()));
    Ok(parameters(out))
}

/// `CodeSystem/$validate-code`: `result` with a `message` for unknown or inactive codes and
/// for a display that is none of the concept's names.
pub fn validate_code(store: &Store, p: &Params) -> FhirResult<Value> {
    p.check_known(
        "$validate-code",
        &[
            "url",
            "system",
            "code",
            "version",
            "display",
            "coding",
            "date",
            "abstract",
            "displayLanguage",
        ],
    )?;
    let system_param = if p.str("url")?.is_some() {
        "url"
    } else {
        "system"
    };
    let (url, code, version, display) = p.concept(system_param, "code", "coding")?;
    let (system, _) = system_and_version(store, &url, version.as_deref())?;
    if code.len() > 256 {
        return Err(FhirError::invalid("codes are at most 256 bytes long"));
    }
    let Some(rec) = store.concept(&system, &code)? else {
        return Ok(parameters(vec![
            param("result", "valueBoolean", false),
            param(
                "message",
                "valueString",
                format!("Unknown code '{code}' in {url}"),
            ),
        ]));
    };
    let c = rec.concept;
    let mut out = vec![param("result", "valueBoolean", true)];
    let mut messages = Vec::new();
    if let Some(d) = &display {
        if !c.terms.iter().any(|t| t.text.eq_ignore_ascii_case(d))
            && !c.preferred_term.eq_ignore_ascii_case(d)
        {
            out[0] = param("result", "valueBoolean", false);
            messages.push(format!(
                "The display '{d}' is not a name of {code}; its display is '{}'",
                c.preferred_term
            ));
        }
    }
    if !c.active {
        messages.push(format!("The code '{code}' is inactive in {url}"));
    }
    if !messages.is_empty() {
        out.push(param("message", "valueString", messages.join("; ")));
    }
    out.push(param("display", "valueString", c.preferred_term));
    Ok(parameters(out))
}

/// `CodeSystem/$subsumes`: `equivalent`, `subsumes` (A is an ancestor of B), `subsumed-by`
/// or `not-subsumed`, from the stored hierarchy.
pub fn subsumes(store: &Store, p: &Params) -> FhirResult<Value> {
    p.check_known(
        "$subsumes",
        &["system", "version", "codeA", "codeB", "codingA", "codingB"],
    )?;
    let side = |code: &str, coding: &str| -> FhirResult<(String, String)> {
        if let Some(c) = p.coding(coding)? {
            let code = c
                .code
                .ok_or_else(|| FhirError::required(format!("'{coding}' needs a code")))?;
            let sys = match (c.system, p.str("system")?) {
                (Some(s), _) | (None, Some(s)) => s,
                (None, None) => {
                    return Err(FhirError::required(format!("'{coding}' needs a system")))
                }
            };
            return Ok((sys, code));
        }
        let code = p
            .str(code)?
            .ok_or_else(|| FhirError::required(format!("give '{code}' or '{coding}'")))?;
        let sys = p
            .str("system")?
            .ok_or_else(|| FhirError::required("'system' is required with codeA/codeB"))?;
        Ok((sys, code))
    };
    let (url_a, a) = side("codeA", "codingA")?;
    let (url_b, b) = side("codeB", "codingB")?;
    let version = p.str("version")?;
    let (sys_a, _) = system_and_version(store, &url_a, version.as_deref())?;
    let (sys_b, _) = system_and_version(store, &url_b, version.as_deref())?;
    if sys_a != sys_b {
        return Err(FhirError::invalid(
            "codeA and codeB must be in the same code system",
        ));
    }
    concept_or_404(store, &url_a, &sys_a, &a)?;
    concept_or_404(store, &url_b, &sys_b, &b)?;
    let outcome = if a == b {
        "equivalent"
    } else if store
        .traverse(&sys_a, &b, true)?
        .iter()
        .any(|(c, _)| *c == a)
    {
        "subsumes"
    } else if store
        .traverse(&sys_a, &a, true)?
        .iter()
        .any(|(c, _)| *c == b)
    {
        "subsumed-by"
    } else {
        "not-subsumed"
    };
    Ok(parameters(vec![param("outcome", "valueCode", outcome)]))
}

/// The R4 `ConceptMapEquivalence` of a stored mapping seen from the queried concept.
pub fn equivalence(relation: &str, forward: bool) -> &'static str {
    match relation {
        "xref" | "gem_exact" => "equivalent",
        "gem_approximate" => "inexact",
        // ICD code → PheCODE: the phecode is a wider grouping.
        "maps_to" if forward => "wider",
        "maps_to" => "narrower",
        _ => "relatedto",
    }
}

/// URI naming the concept map (provenance) a mapping comes from.
pub fn concept_map_uri(source: &str) -> String {
    let slug: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{URN}:conceptmap:{slug}")
}

/// `ConceptMap/$translate` over the stored crosswalks (CMS GEMs ICD-9-CM ↔ ICD-10-CM, ICD →
/// PheCODE / phecodeX, UMLS and OBO cross-references). Without `reverse`, mappings in both
/// directions are answered (the reverse ones with the inverse equivalence); `reverse=true`
/// answers only the codes whose mappings point at the given code.
pub fn translate(store: &Store, p: &Params) -> FhirResult<Value> {
    p.check_known(
        "$translate",
        &[
            "url",
            "conceptMap",
            "conceptMapVersion",
            "code",
            "system",
            "version",
            "source",
            "coding",
            "target",
            "targetsystem",
            "reverse",
        ],
    )?;
    if p.str("url")?.is_some() || p.str("conceptMap")?.is_some() {
        return Err(FhirError::not_supported(
            "$translate here runs over every loaded crosswalk; name the target with 'targetsystem', not a ConceptMap",
        ));
    }
    let (url, code, version, _) = p.concept("system", "code", "coding")?;
    let (system, _) = system_and_version(store, &url, version.as_deref())?;
    if code.len() > 256 {
        return Err(FhirError::invalid("codes are at most 256 bytes long"));
    }
    let target = match p.str("targetsystem")? {
        Some(t) => Some(loaded(store, &t)?.0),
        None => None,
    };
    let reverse = p.bool("reverse")?.unwrap_or(false);
    let found = store.mappings(&system, &code, target.as_deref())?;
    if found.is_empty() && store.concept(&system, &code)?.is_none() {
        return Err(FhirError::not_found(format!(
            "unknown code '{code}' in {url}"
        )));
    }
    let mut matches = Vec::new();
    for m in found
        .iter()
        .filter(|m| !reverse || m.direction == "reverse")
    {
        if matches.len() >= MAX_MATCHES {
            break;
        }
        let forward = m.direction == "forward";
        let eq = equivalence(&m.relation, forward || reverse);
        let mut coding = json!({"system": url_of(&m.target.system), "code": m.target.code});
        if let Some(rec) = store.concept(&m.target.system, &m.target.code)? {
            coding["display"] = rec.concept.preferred_term.into();
            coding["version"] = rec.release.into();
        }
        matches.push(param_parts(
            "match",
            vec![
                param("equivalence", "valueCode", eq),
                param("concept", "valueCoding", coding),
                param("source", "valueUri", concept_map_uri(&m.source)),
            ],
        ));
    }
    let mut out = vec![param("result", "valueBoolean", !matches.is_empty())];
    let n = matches.len();
    out.push(param(
        "message",
        "valueString",
        if n == 0 {
            format!("No mappings for {code} in {url}")
        } else {
            format!("{n} mapping(s) for {code}")
        },
    ));
    out.extend(matches);
    Ok(parameters(out))
}
