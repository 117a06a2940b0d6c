//! `ValueSet/$expand` over implicit value sets: `{system URL}?fhir_vs` (every concept) and
//! `{system URL}?fhir_vs=isa/{code}` (the concept and its descendants). A `filter` is a search
//! query: [`plan`] checks the request and says what to search, the handler runs the search
//! engine, and [`finish`] pages and shapes the ranked hits (or, without a filter, the concepts
//! in code order).

use super::params::Params;
use super::systems::{loaded, url_of};
use super::{FhirError, FhirResult};
use crate::search::engine::{Found, Mode};
use crate::store::read::MAX_TRAVERSAL;
use crate::store::Store;
use crate::util::time::now_rfc3339;
use serde_json::{json, Value};
use std::collections::HashSet;

/// Largest `count`.
pub const MAX_COUNT: i64 = 1000;
/// Page size of a filtered expansion without `count`.
pub const DEFAULT_FILTER_COUNT: usize = 20;
/// Search hits ranked for a filtered expansion (the last reachable `offset + count`).
pub const MAX_RANKED: usize = 1000;

/// What an expansion needs, checked.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The value set URL as given.
    pub url: String,
    /// Code system name.
    pub system: String,
    /// Its active release.
    pub release: String,
    /// `isa/{code}`: the concept and its descendants; `None`: the whole system.
    pub members: Option<HashSet<String>>,
    /// Search text.
    pub filter: Option<String>,
    /// Search mode for the filter.
    pub mode: Mode,
    /// Concepts per page (`None`: all, for an unfiltered expansion).
    pub count: Option<usize>,
    /// Concepts skipped.
    pub offset: usize,
    /// Leave out inactive concepts.
    pub active_only: bool,
}

impl Plan {
    /// Hits to ask the search engine for (`offset + count`, more when the value set is a
    /// subset of the system and hits outside it are dropped).
    pub fn search_k(&self) -> usize {
        if self.members.is_some() {
            MAX_RANKED
        } else {
            (self.offset + self.count.unwrap_or(DEFAULT_FILTER_COUNT)).clamp(1, MAX_RANKED)
        }
    }
}

/// Parse `{system}?fhir_vs[=isa/{code}]` into (system URL, root code).
fn implicit(url: &str) -> FhirResult<(String, Option<String>)> {
    let Some((sys, q)) = url.split_once('?') else {
        return Err(FhirError::not_found(format!(
            "unknown value set {url}: only implicit value sets ({{code system URL}}?fhir_vs, ?fhir_vs=isa/{{code}}) are served"
        )));
    };
    match q {
        "fhir_vs" => Ok((sys.to_string(), None)),
        _ => match q.strip_prefix("fhir_vs=isa/") {
            Some(code) if !code.is_empty() => Ok((sys.to_string(), Some(code.to_string()))),
            _ => Err(FhirError::not_supported(format!(
                "implicit value set form '?{q}' is not supported (use ?fhir_vs or ?fhir_vs=isa/{{code}})"
            ))),
        },
    }
}

/// Check an `$expand` request.
pub fn plan(store: &Store, p: &Params) -> FhirResult<Plan> {
    p.check_known(
        "$expand",
        &[
            "url",
            "valueSetVersion",
            "filter",
            "filterMode",
            "count",
            "offset",
            "activeOnly",
            "includeDesignations",
            "displayLanguage",
            "date",
            "excludeNested",
        ],
    )?;
    if p.0.iter().any(|(n, _)| n == "valueSet") {
        return Err(FhirError::not_supported(
            "expanding a posted ValueSet is not supported; give 'url'",
        ));
    }
    let url = p
        .str("url")?
        .ok_or_else(|| FhirError::required("'url' is required (an implicit value set URL)"))?;
    let (sys_url, root) = implicit(&url)?;
    let (system, release) = loaded(store, &sys_url)?;
    let count = match p.int("count")? {
        Some(c) if c < 0 => return Err(FhirError::invalid("'count' must be ≥ 0")),
        Some(c) if c > MAX_COUNT => {
            return Err(FhirError::too_costly(format!(
                "'count' is {c}; at most {MAX_COUNT} concepts per page: page with offset"
            )))
        }
        c => c.map(|c| c as usize),
    };
    let offset = match p.int("offset")? {
        Some(o) if o < 0 => return Err(FhirError::invalid("'offset' must be ≥ 0")),
        Some(o) => usize::try_from(o).unwrap_or(usize::MAX),
        None => 0,
    };
    let mode = match p.str("filterMode")?.as_deref() {
        None | Some("hybrid") => Mode::Hybrid,
        Some("lexical") => Mode::Lexical,
        Some("vector") => Mode::Vector,
        Some(m) => {
            return Err(FhirError::invalid(format!(
                "'filterMode' is {m:?}; use hybrid, lexical or vector"
            )))
        }
    };
    let filter = p.str("filter")?;
    if filter.is_some() && offset + count.unwrap_or(DEFAULT_FILTER_COUNT) > MAX_RANKED {
        return Err(FhirError::too_costly(format!(
            "a filtered expansion ranks at most {MAX_RANKED} concepts (offset + count ≤ {MAX_RANKED})"
        )));
    }
    let members = match &root {
        None => None,
        Some(code) => {
            if store.concept(&system, code)?.is_none() {
                return Err(FhirError::not_found(format!(
                    "unknown code '{code}' in {sys_url}"
                )));
            }
            let mut set: HashSet<String> = HashSet::from([code.clone()]);
            set.extend(
                store
                    .traverse(&system, code, false)?
                    .into_iter()
                    .map(|(c, _)| c),
            );
            Some(set)
        }
    };
    Ok(Plan {
        url,
        system,
        release,
        members,
        filter,
        mode,
        count,
        offset,
        active_only: p.bool("activeOnly")?.unwrap_or(false),
    })
}

fn entry(plan: &Plan, code: &str, display: &str, inactive: bool) -> Value {
    let mut e = json!({"system": url_of(&plan.system), "version": plan.release, "code": code, "display": display});
    if inactive {
        e["inactive"] = true.into();
    }
    e
}

/// One page of an unfiltered expansion being filled.
struct Page<'a> {
    plan: &'a Plan,
    count: usize,
    seen: usize,
    contains: &'a mut Vec<Value>,
}

impl Page<'_> {
    /// Offer a concept; true once the page is full.
    fn push(&mut self, code: &str, display: &str, active: bool) -> bool {
        if active || !self.plan.active_only {
            self.seen += 1;
            if self.seen > self.plan.offset && self.contains.len() < self.count {
                self.contains.push(entry(self.plan, code, display, !active));
            }
        }
        self.contains.len() >= self.count
    }
}

fn ext_int(name: &str, v: Option<usize>) -> Option<Value> {
    v.map(|r| json!({"url": format!("urn:ontovec:extension:{name}"), "valueInteger": r}))
}

/// The expansion: ranked `hits` when the plan has a filter, else the value set's concepts in
/// code order.
pub fn finish(store: &Store, plan: &Plan, hits: Vec<Found>) -> FhirResult<Value> {
    let mut contains = Vec::new();
    let mut total = None;
    if plan.filter.is_some() {
        let count = plan.count.unwrap_or(DEFAULT_FILTER_COUNT);
        let mut kept = 0usize;
        for h in hits {
            if h.system != plan.system
                || plan.members.as_ref().is_some_and(|m| !m.contains(&h.code))
            {
                continue;
            }
            let inactive = store
                .concept(&h.system, &h.code)?
                .is_some_and(|r| !r.concept.active);
            if inactive && plan.active_only {
                continue;
            }
            kept += 1;
            if kept <= plan.offset || contains.len() >= count {
                continue;
            }
            let mut e = entry(plan, &h.code, &h.preferred_term, inactive);
            let score = (f64::from(h.score) * 1e6).round() / 1e6;
            let mut ext =
                vec![json!({"url": "urn:ontovec:extension:search-score", "valueDecimal": score})];
            ext.extend(ext_int("lexical-rank", h.lexical_rank));
            ext.extend(ext_int("vector-rank", h.vector_rank));
            e["extension"] = Value::Array(ext);
            contains.push(e);
        }
    } else {
        let members: Option<Vec<String>> = plan.members.as_ref().map(|m| {
            let mut v: Vec<String> = m.iter().cloned().collect();
            v.sort();
            v
        });
        let n = match &members {
            Some(m) => m.len(),
            None => store
                .sources()?
                .into_iter()
                .find(|r| r.system == plan.system)
                .map_or(0, |r| r.counts.concepts as usize),
        };
        if plan.count.is_none() && n > MAX_COUNT as usize {
            return Err(FhirError::too_costly(format!(
                "{} has {n} concepts; page the expansion with count (≤ {MAX_COUNT}) and offset",
                plan.url
            )));
        }
        let count = plan.count.unwrap_or(n);
        let mut page = Page {
            plan,
            count,
            seen: 0,
            contains: &mut contains,
        };
        match members {
            Some(codes) => {
                for code in codes {
                    if let Some(r) = store.concept(&plan.system, &code)? {
                        if page.push(&code, &r.concept.preferred_term, r.concept.active) {
                            break;
                        }
                    }
                }
            }
            None => {
                if let Some(rid) = store.active_rid(&plan.system) {
                    for c in store.concepts_of_release(rid)? {
                        let c = c?;
                        if page.push(&c.code, &c.preferred_term, c.active) {
                            break;
                        }
                    }
                }
            }
        }
        // The total is exact unless inactive concepts were left out or the descendants were
        // cut at the traversal bound.
        let truncated = plan
            .members
            .as_ref()
            .is_some_and(|m| m.len() > MAX_TRAVERSAL);
        if !plan.active_only && !truncated {
            total = Some(n);
        }
    }
    let mut params = vec![json!({"name": "offset", "valueInteger": plan.offset})];
    if let Some(c) = plan.count {
        params.push(json!({"name": "count", "valueInteger": c}));
    }
    if let Some(f) = &plan.filter {
        params.push(json!({"name": "filter", "valueString": f}));
        let mode = match plan.mode {
            Mode::Lexical => "lexical",
            Mode::Vector => "vector",
            _ => "hybrid",
        };
        params.push(json!({"name": "filterMode", "valueString": mode}));
    }
    params.push(json!({"name": "version", "valueUri": format!("{}|{}", url_of(&plan.system), plan.release)}));
    let mut expansion = json!({
        "identifier": format!("urn:uuid:{}", uuid::Uuid::new_v4()),
        "timestamp": now_rfc3339(),
        "offset": plan.offset,
        "parameter": params,
    });
    if let Some(t) = total {
        expansion["total"] = t.into();
    }
    if !contains.is_empty() {
        expansion["contains"] = Value::Array(contains);
    }
    Ok(json!({
        "resourceType": "ValueSet",
        "url": plan.url,
        "status": "active",
        "expansion": expansion
    }))
}
