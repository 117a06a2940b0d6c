//! The learned hybrid: candidate concepts from both indexes (and from cross-system bridges),
//! aggregated over all of a concept's terms, described by a few features, and scored by a
//! small linear model whose output is a calibrated probability that the concept is right.
//!
//! ## Candidates and evidence
//! 1. Lexical hits (BM25 + trigrams + exact/code boosts) and vector hits (cosine) of the query,
//!    after [`super::abbrev::expand_query`].
//! 2. **Bridges** (cross-system evidence): when the query equals a term of some concept in *any*
//!    system (the normalised whole string, e.g. HPO's synonym "Heart attack" of HP:0001658),
//!    that concept's preferred name ("Myocardial infarction") is searched too, in the systems
//!    the query is restricted to: its cached vector against the vector index and its words
//!    against the lexical index (an exact match of the name is the `bridge_exact` feature).
//!    Not when the query already equals a term in scope (refit with and without: acc@1 level
//!    on every dev set, normalize 1.46× faster).
//!    The bridged-from concept itself gets no bridge features (its exact match says it all). Up to [`MAX_BRIDGES`] bridges per query; a bridge name whose
//!    vector is not in the embedding cache is used lexically only (no encoder call).
//! 3. **Codes**: a short query with a digit that is a code as users type it (`s72001a`,
//!    `S00.00A`, `25000`) adds the one stored code it stands for in each system in scope
//!    ([`crate::store::codes::resolve_concept`], the rule of concept lookups).
//! 4. Every term hit is folded into its concept; a concept's features look at all of its terms
//!    that were found (best term, how many matched, whether the best one is the preferred name).
//!
//! Each result lists the evidence that put it there (`lexical`, `vector`, `exact`, `code`,
//! `via:SYSTEM:CODE`).
//!
//! ## Features ([`FEATURES`])
//! Vector: best cosine (of the query or of a bridge name, whichever is higher), its gap to the
//! best such cosine of the query, reciprocal concept rank. Lexical:
//! best BM25 relative to the query's best, reciprocal concept rank. Exact and near-exact: the
//! normalised whole string equals a term (any / the preferred one), the query is the code, word
//! overlap F1 of the best-overlapping term. Aggregation: best vector term is preferred / is a
//! narrower-or-related kind. (Not the number of matching terms: it rewards concepts for having
//! many synonyms, which held-out dev sets reward by construction — a concept with more terms
//! has more of them held out — and real queries pay for: "heart attack" went to I22, which
//! repeats I21's inclusion terms and adds more; README, "Which features carry the gain".) Agreement: found by both sides, first on
//! both. Bridges: best cosine to a bridge name, exact match of a bridge name, word-overlap F1
//! of the concept's preferred name (when found) with a bridge name. Grouping: the code is a block range or a chapter
//! (`I20-I25`, `9`).
//!
//! ## Scoring
//! `s = w · x` ranks; `p = σ(a·s + c)` is the reported score (`score_kind` `learned`), fitted
//! so that p is the probability of being the gold concept on the dev sets: `min_score` means
//! the same across queries. Weights live in `fusion_weights.json` next to this file, written by
//! `ontovec eval fit-fusion` ([`crate::eval::learn`]).

use super::analyzer;
use super::engine::{EngineError, Found, SearchEngine};
use super::Hit;
use crate::domain::model::TermKind;
use std::collections::{HashMap, HashSet};

pub use super::weights::{explanation, shipped_weights, Weights, FEATURES, NF, WEIGHTS_ENV};

/// Bridges (preferred names of exactly matching concepts) searched per query.
pub const MAX_BRIDGES: usize = 2;
/// Vector hits fetched per bridge.
const BRIDGE_FETCH: usize = 20;
/// Lexical hits fetched per bridge: the terms worded most like the bridge name (its exact
/// matches first), which the vector hits of a short name can miss among many longer codes.
const BRIDGE_LEX_FETCH: usize = 10;
/// Longest query tried as a typed code (`S72.001 A`, `HP:0001250`).
const MAX_CODE_CHARS: usize = 16;

/// One candidate concept with its features.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Release id of the concept's system.
    pub rid: u64,
    /// Concept code.
    pub code: String,
    /// The best-matching term's text.
    pub matched_term: String,
    /// Features, in [`FEATURES`] order.
    pub x: [f32; NF],
    /// 1-based rank of the concept's best term on the lexical side.
    pub lexical_rank: Option<usize>,
    /// 1-based rank of the concept's best term on the vector side.
    pub vector_rank: Option<usize>,
    /// Evidence that put it there.
    pub evidence: Vec<String>,
}

#[derive(Default)]
struct Agg {
    rid: u64,
    code: String,
    terms: HashSet<u64>,
    v_best: Option<(f32, usize, String, TermKind)>,
    l_best: Option<(f32, usize, String)>,
    v_concept_rank: Option<usize>,
    l_concept_rank: Option<usize>,
    exact: bool,
    exact_pref: bool,
    code_match: bool,
    overlap: f32,
    bridge_cos: f32,
    bridge_exact: bool,
    /// Best word-overlap F1 of the found preferred name with a bridge name.
    bridge_overlap: f32,
    via: Vec<String>,
    /// The preferred name of a concept found by its code only.
    code_term: Option<String>,
}

/// Whether a code names a grouping rather than a condition: a block range (`I20-I25`,
/// `390-459`) or an ICD-10-CM chapter number (`9`). Queries rarely mean these.
fn is_grouping(code: &str) -> bool {
    code.contains('-') || (code.len() <= 2 && code.bytes().all(|b| b.is_ascii_digit()))
}

fn word_set(text: &str) -> HashSet<String> {
    analyzer::parts(text).into_iter().collect()
}

fn overlap_f1(q: &HashSet<String>, t: &HashSet<String>) -> f32 {
    if q.is_empty() || t.is_empty() {
        return 0.0;
    }
    let common = q.intersection(t).count() as f32;
    if common == 0.0 {
        return 0.0;
    }
    let (p, r) = (common / t.len() as f32, common / q.len() as f32);
    2.0 * p * r / (p + r)
}

/// What the learned hybrid is asked.
pub struct LearnedQuery<'a> {
    /// The query as given.
    pub original: &'a str,
    /// The text searched ([`super::abbrev::query_text`]).
    pub text: &'a str,
    /// The query vector (of `text`), if a model is loaded.
    pub qvec: Option<&'a [f32]>,
    /// Terms model name.
    pub model: Option<&'a str>,
    /// Upper-cased system filter.
    pub systems: Option<&'a [String]>,
    /// Allowed release ids (the same filter as rids).
    pub allowed: Option<&'a HashSet<u64>>,
    /// Hits fetched per side.
    pub fetch: usize,
    /// Whether to follow bridges.
    pub bridges: bool,
    /// Whether results carry their [`super::engine::Explanation`].
    pub explain: bool,
    /// Keep concepts marked inactive (see [`super::engine::Query::include_inactive`]).
    pub include_inactive: bool,
}

impl SearchEngine {
    /// The learned hybrid (this module): candidates scored with the terms model's fusion
    /// weights ([`SearchEngine::fusion_weights`]), best first, `k` of them.
    pub fn learned_search(&self, lq: &LearnedQuery, k: usize) -> Result<Vec<Found>, EngineError> {
        let w = self.fusion_weights(lq.model);
        let mut cands: Vec<(f32, Candidate)> = self
            .learned_candidates(lq)?
            .into_iter()
            .map(|c| (w.rank_score(&c.x), c))
            .collect();
        cands.sort_by(|a, b| {
            b.0.total_cmp(&a.0)
                .then(a.1.rid.cmp(&b.1.rid))
                .then(a.1.code.cmp(&b.1.code))
        });
        let mut out = Vec::with_capacity(k.min(cands.len()));
        for (s, c) in cands {
            if out.len() >= k {
                break;
            }
            let Some(system) = self.store().system_of_rid(c.rid) else {
                continue;
            };
            let Some(preferred_term) =
                self.listed_name(&system, &c.code, &c.matched_term, lq.include_inactive)?
            else {
                continue;
            };
            out.push(Found {
                system,
                code: c.code,
                preferred_term,
                matched_term: c.matched_term,
                score: w.probability(s),
                score_kind: "learned".to_string(),
                lexical_rank: c.lexical_rank,
                vector_rank: c.vector_rank,
                evidence: c.evidence,
                explain: lq.explain.then(|| explanation(w, &c.x)),
            });
        }
        Ok(out)
    }

    /// Candidate concepts of a query with their features (see module docs), unsorted.
    pub fn learned_candidates(&self, q: &LearnedQuery) -> Result<Vec<Candidate>, EngineError> {
        let lexical = self.lexical().search(q.text, q.fetch, q.systems, false)?;
        let vector = match (q.qvec, q.model) {
            (Some(v), Some(m)) => self.vector_hits(m, v, q.fetch, q.allowed)?,
            _ => Vec::new(),
        };
        let keys: HashSet<String> = [analyzer::exact_key(q.text), analyzer::exact_key(q.original)]
            .into_iter()
            .filter(|k| !k.is_empty())
            .collect();
        let codes: HashSet<String> = analyzer::code_keys(q.original).into_iter().collect();
        let qwords = word_set(q.text);

        let mut aggs: HashMap<(u64, String), Agg> = HashMap::new();
        let mut rows: HashMap<u64, Option<crate::store::TermRow>> = HashMap::new();
        let mut row_of = |id: u64| -> Result<Option<crate::store::TermRow>, EngineError> {
            if let Some(r) = rows.get(&id) {
                return Ok(r.clone());
            }
            let r = self.store().term(id)?;
            rows.insert(id, r.clone());
            Ok(r)
        };
        let touch = |aggs: &mut HashMap<(u64, String), Agg>,
                     id: u64,
                     row: &crate::store::TermRow|
         -> (u64, String) {
            let key = (id >> super::RID_SHIFT, row.code.clone());
            let a = aggs.entry(key.clone()).or_insert_with(|| Agg {
                rid: key.0,
                code: row.code.clone(),
                ..Default::default()
            });
            if a.terms.insert(id) {
                let tk = analyzer::exact_key(&row.text);
                if keys.contains(&tk) {
                    a.exact = true;
                    a.exact_pref |= row.kind == TermKind::Preferred;
                }
                a.overlap = a.overlap.max(overlap_f1(&qwords, &word_set(&row.text)));
                if !codes.is_empty()
                    && analyzer::code_keys(&row.code)
                        .iter()
                        .any(|c| codes.contains(c))
                {
                    a.code_match = true;
                }
            }
            key
        };

        let mut concept_rank = 0usize;
        for (i, h) in vector.iter().enumerate() {
            let Some(row) = row_of(h.term_id)? else {
                continue;
            };
            let key = touch(&mut aggs, h.term_id, &row);
            let a = aggs.get_mut(&key).expect("just inserted");
            if a.v_best.is_none() {
                concept_rank += 1;
                a.v_concept_rank = Some(concept_rank);
                a.v_best = Some((h.score, i + 1, row.text.clone(), row.kind));
            }
        }
        concept_rank = 0;
        for (i, h) in lexical.iter().enumerate() {
            let Some(row) = row_of(h.term_id)? else {
                continue;
            };
            let key = touch(&mut aggs, h.term_id, &row);
            let a = aggs.get_mut(&key).expect("just inserted");
            if a.l_best.is_none() {
                concept_rank += 1;
                a.l_concept_rank = Some(concept_rank);
                a.l_best = Some((h.score, i + 1, row.text.clone()));
            }
        }

        // A code as users type it (`s72001a`, `S00.00A`): the one stored code it stands for.
        for (rid, rec) in self.code_concepts(q)? {
            let code = rec.concept.code.clone();
            let a = aggs.entry((rid, code.clone())).or_insert_with(|| Agg {
                rid,
                code,
                ..Default::default()
            });
            a.code_match = true;
            a.code_term = Some(rec.concept.preferred_term);
        }

        let mut bridge_words: Vec<HashSet<String>> = Vec::new();
        // A query that already equals a term in scope needs no other system's wording: bridges
        // would only add competitors to the concept it names (and cost up to two more vector
        // and lexical searches per query).
        let exact_in_scope = aggs.values().any(|a| a.exact);
        if q.bridges && !exact_in_scope {
            for (source, via, name, hits, lex_hits) in self.bridge_hits(q, &keys)? {
                bridge_words.push(word_set(&name));
                let name_key = analyzer::exact_key(&name);
                // The concept the bridge starts from already matches exactly: its hits add nothing.
                let is_source = |term_id: u64, code: &str| {
                    (term_id >> super::RID_SHIFT, code) == (source.0, source.1.as_str())
                };
                for h in hits {
                    let Some(row) = row_of(h.term_id)? else {
                        continue;
                    };
                    if is_source(h.term_id, &row.code) {
                        continue;
                    }
                    let key = touch(&mut aggs, h.term_id, &row);
                    let a = aggs.get_mut(&key).expect("just inserted");
                    a.bridge_cos = a.bridge_cos.max(h.score);
                    if !a.via.contains(&via) {
                        a.via.push(via.clone());
                    }
                }
                for h in lex_hits {
                    let Some(row) = row_of(h.term_id)? else {
                        continue;
                    };
                    if is_source(h.term_id, &row.code) {
                        continue;
                    }
                    let key = touch(&mut aggs, h.term_id, &row);
                    let a = aggs.get_mut(&key).expect("just inserted");
                    a.bridge_exact |= analyzer::exact_key(&row.text) == name_key;
                    if !a.via.contains(&via) {
                        a.via.push(via.clone());
                    }
                }
            }
        }

        // How closely a concept's preferred name (when found) words the bridge names:
        // "Myocardial infarction" (HPO's name for "heart attack") is nearly I21's "Acute
        // myocardial infarction", not I22's "Subsequent ... myocardial infarction", though their
        // cosines tie and I22 repeats I21's inclusion terms.
        if !bridge_words.is_empty() {
            for a in aggs.values_mut() {
                for id in &a.terms {
                    if let Some(Some(row)) = rows
                        .get(id)
                        .filter(|r| r.as_ref().is_some_and(|r| r.kind == TermKind::Preferred))
                    {
                        let t = word_set(&row.text);
                        for b in &bridge_words {
                            a.bridge_overlap = a.bridge_overlap.max(overlap_f1(b, &t));
                        }
                    }
                }
            }
        }

        let v_floor = vector.last().map_or(0.0, |h| h.score);
        // A bridge name is a paraphrase of the query (the query is one of its concept's
        // terms), so its cosine counts as the query's own: a concept found only through a
        // bridge competes on the vector features too.
        let v_top = aggs
            .values()
            .map(|a| a.bridge_cos)
            .fold(vector.first().map_or(0.0, |h| h.score), f32::max);
        let l_top = lexical
            .first()
            .map_or(0.0, |h| h.score)
            .max(f32::MIN_POSITIVE);
        let mut out = Vec::with_capacity(aggs.len());
        for a in aggs.into_values() {
            let v = a.v_best.as_ref().map_or(v_floor, |b| b.0).max(a.bridge_cos);
            let kind = a.v_best.as_ref().map(|b| b.3);
            let x = [
                v,
                v - v_top,
                a.v_concept_rank.map_or(0.0, |r| 1.0 / r as f32),
                a.l_best
                    .as_ref()
                    .map_or(0.0, |b| (b.0 / l_top).clamp(0.0, 1.0)),
                a.l_concept_rank.map_or(0.0, |r| 1.0 / r as f32),
                f32::from(u8::from(a.exact)),
                f32::from(u8::from(a.exact_pref)),
                f32::from(u8::from(a.code_match)),
                a.overlap,
                f32::from(u8::from(matches!(
                    kind,
                    Some(TermKind::Preferred | TermKind::Short)
                ))),
                f32::from(u8::from(matches!(
                    kind,
                    Some(
                        TermKind::Inclusion
                            | TermKind::Narrow
                            | TermKind::Broad
                            | TermKind::Related
                    )
                ))),
                f32::from(u8::from(a.v_best.is_some() && a.l_best.is_some())),
                f32::from(u8::from(
                    a.v_concept_rank == Some(1) && a.l_concept_rank == Some(1),
                )),
                a.bridge_cos,
                f32::from(u8::from(a.bridge_exact)),
                f32::from(u8::from(is_grouping(&a.code))),
                a.bridge_overlap,
            ];
            let mut evidence = Vec::new();
            if a.l_best.is_some() {
                evidence.push("lexical".to_string());
            }
            if a.v_best.is_some() {
                evidence.push("vector".to_string());
            }
            if a.exact {
                evidence.push("exact".to_string());
            }
            if a.code_match {
                evidence.push("code".to_string());
            }
            evidence.extend(a.via.iter().cloned());
            let matched_term = match (&a.v_best, &a.l_best) {
                (_, Some(l)) if a.exact || a.v_best.is_none() => l.2.clone(),
                (Some(v), _) => v.2.clone(),
                (None, Some(l)) => l.2.clone(),
                (None, None) => a.code_term.clone().unwrap_or_default(),
            };
            out.push(Candidate {
                rid: a.rid,
                code: a.code,
                matched_term,
                x,
                lexical_rank: a.l_best.as_ref().map(|b| b.1),
                vector_rank: a.v_best.as_ref().map(|b| b.1),
                evidence,
            });
        }
        Ok(out)
    }

    /// Concepts a code-like query (a digit, at most [`MAX_CODE_CHARS`] characters) names in the
    /// systems in scope, as [`crate::store::codes::resolve_concept`] resolves a typed code:
    /// exactly, or as the single stored code its spellings fit.
    fn code_concepts(
        &self,
        q: &LearnedQuery,
    ) -> Result<Vec<(u64, crate::store::read::ConceptRecord)>, EngineError> {
        use crate::store::codes::{resolve_concept, CodeMatch};
        let text = q.original.trim();
        if text.chars().count() > MAX_CODE_CHARS || !text.chars().any(|c| c.is_ascii_digit()) {
            return Ok(Vec::new());
        }
        let systems: Vec<String> = match q.systems {
            Some(s) => s.to_vec(),
            None => self.store().active_rids().into_keys().collect(),
        };
        let mut out = Vec::new();
        for system in systems {
            let Some(rid) = self.store().active_rid(&system) else {
                continue;
            };
            match resolve_concept(self.store(), &system, text)? {
                CodeMatch::Exact(rec) | CodeMatch::Normalized(rec) => out.push((rid, rec)),
                CodeMatch::Ambiguous(_) | CodeMatch::NotFound => {}
            }
        }
        Ok(out)
    }

    /// Bridges of a query: `((rid, code) of the concept bridged from, via label, bridge name, vector hits of the name's cached vector,
    /// lexical hits of the name)` for concepts (any system) having a term equal to the
    /// query.
    #[allow(clippy::type_complexity)]
    fn bridge_hits(
        &self,
        q: &LearnedQuery,
        keys: &HashSet<String>,
    ) -> Result<Vec<((u64, String), String, String, Vec<Hit>, Vec<Hit>)>, EngineError> {
        let mut out = Vec::new();
        let mut names_seen: HashSet<String> = keys.clone();
        let exact = self.lexical().search(q.text, 8, None, true)?;
        for h in exact {
            if out.len() >= MAX_BRIDGES {
                break;
            }
            let Some(row) = self.store().term(h.term_id)? else {
                continue;
            };
            let rid = h.term_id >> super::RID_SHIFT;
            let Some(system) = self.store().system_of_rid(rid) else {
                continue;
            };
            // A code match is not a wording; only terms that equal the query bridge.
            if !keys.contains(&analyzer::exact_key(&row.text)) {
                continue;
            }
            let Some(rec) = self.store().concept(&system, &row.code)? else {
                continue;
            };
            let name = rec.concept.preferred_term;
            let name_key = analyzer::exact_key(&name);
            if name_key.is_empty() || !names_seen.insert(name_key) {
                continue;
            }
            let via = format!("via:{system}:{}", row.code);
            let vhits = match (q.model, q.qvec.is_some()) {
                (Some(m), true) => match self.cached_vector(m, &name)? {
                    Some(v) => self.vector_hits(m, &v, BRIDGE_FETCH, q.allowed)?,
                    None => Vec::new(),
                },
                _ => Vec::new(),
            };
            let lhits = self
                .lexical()
                .search(&name, BRIDGE_LEX_FETCH, q.systems, false)?;
            out.push(((rid, row.code.clone()), via, name, vhits, lhits));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feature(name: &str) -> usize {
        FEATURES.iter().position(|f| *f == name).unwrap()
    }

    #[test]
    fn overlap_is_f1_of_word_sets() {
        let q = word_set("high blood pressure");
        assert!((overlap_f1(&q, &word_set("High blood pressure")) - 1.0).abs() < 1e-6);
        // 2 common of 3 query and 2 term words: p = 1, r = 2/3
        let f = overlap_f1(&q, &word_set("blood pressure"));
        assert!((f - 0.8).abs() < 1e-6, "{f}");
        assert_eq!(overlap_f1(&q, &word_set("fracture")), 0.0);
        assert_eq!(overlap_f1(&HashSet::new(), &q), 0.0);
    }

    #[test]
    fn groupings_are_ranges_and_chapters() {
        for c in ["I20-I25", "390-459", "9", "19"] {
            assert!(is_grouping(c), "{c}");
        }
        for c in ["I21", "E11.9", "HP:0001250", "250", "250.2", "CV_401"] {
            assert!(!is_grouping(c), "{c}");
        }
    }

    #[test]
    fn shipped_weights_load_and_calibrate() {
        let w = shipped_weights();
        assert_eq!(w.features.len(), NF);
        let p = w.probability(0.0);
        assert!((0.0..=1.0).contains(&p));
        // exact matches of the preferred name must raise the score
        let mut x = [0f32; NF];
        let base = w.rank_score(&x);
        x[feature("exact")] = 1.0;
        x[feature("exact_pref")] = 1.0;
        assert!(w.rank_score(&x) > base);
    }

    #[test]
    fn bridge_wording_breaks_cosine_ties() {
        // Two concepts reached through the same bridge with equal cosines ("heart attack" →
        // HPO "Myocardial infarction" → I21 / I22): the one whose term words the bridge name
        // more closely must rank first.
        let w = shipped_weights();
        let j = feature("bridge_overlap");
        let mut i21 = [0f32; NF];
        i21[feature("v_cos")] = 0.89;
        i21[feature("bridge_cos")] = 0.89;
        let mut i22 = i21;
        i21[j] = overlap_f1(
            &word_set("Myocardial infarction"),
            &word_set("Acute myocardial infarction"),
        );
        i22[j] = overlap_f1(
            &word_set("Myocardial infarction"),
            &word_set("Subsequent ST elevation (STEMI) and non-ST elevation (NSTEMI) myocardial infarction"),
        );
        assert!(i21[j] > i22[j]);
        assert!(w.rank_score(&i21) > w.rank_score(&i22));
    }
}
