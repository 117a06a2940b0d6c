//! Answering a query whose vector is given ([`SearchEngine::search_with_vector`]): the system
//! filter as the allowed release ids, the lexical and vector hits, their fusion (fixed or the
//! learned concept-level hybrid of [`super::hybrid`]) into one entry per concept, and the
//! vector of a concept (the mean of its equivalent terms' embeddings).

use super::cache::mean_normalized;
use super::engine::{EngineError, Found, Mode, Query, SearchEngine};
use super::fusion::{fuse, FusionMethod};
use super::Hit;
use std::collections::{HashMap, HashSet};

impl SearchEngine {
    fn allowed_rids(
        &self,
        systems: &Option<Vec<String>>,
    ) -> Result<Option<HashSet<u64>>, EngineError> {
        let Some(systems) = systems else {
            return Ok(None);
        };
        let mut set = HashSet::new();
        for s in systems {
            let s = s.to_ascii_uppercase();
            match self.store.active_rid(&s) {
                Some(r) => {
                    set.insert(r);
                }
                None => return Err(EngineError::UnknownSystem(s)),
            }
        }
        Ok(Some(set))
    }

    /// Vector hits for an already embedded query.
    pub fn vector_hits(
        &self,
        model: &str,
        query: &[f32],
        k: usize,
        allowed: Option<&HashSet<u64>>,
    ) -> Result<Vec<Hit>, EngineError> {
        let index = self
            .vectors
            .read()
            .get(model)
            .map(|m| m.serving.clone())
            .ok_or_else(|| EngineError::Invalid(format!("model {model} has no vector index")))?;
        Ok(index.search(query, k, allowed)?)
    }

    /// Run a query whose vector (if needed) is given; see [`Self::search`].
    pub fn search_with_vector(
        &self,
        q: &Query,
        qvec: Option<&[f32]>,
    ) -> Result<Vec<Found>, EngineError> {
        let allowed = self.allowed_rids(&q.systems)?;
        let fetch = (q.k * 4).clamp(50, 2000);
        let systems_upper: Option<Vec<String>> = q
            .systems
            .as_ref()
            .map(|v| v.iter().map(|s| s.to_ascii_uppercase()).collect());
        let text = Self::query_text(&q.text);
        if let (Mode::Hybrid, FusionMethod::Learned { bridges }) = (q.mode, q.fusion) {
            let model = match qvec {
                Some(_) => Some(self.terms_model(q.model.as_deref())?),
                None => None,
            };
            let lq = super::hybrid::LearnedQuery {
                original: &q.text,
                text: &text,
                qvec,
                model: model.as_deref(),
                systems: systems_upper.as_deref(),
                allowed: allowed.as_ref(),
                fetch: (q.k * 2).clamp(30, 2000),
                bridges,
                explain: q.explain,
                include_inactive: q.include_inactive,
            };
            return self.learned_search(&lq, q.k);
        }
        let lexical = match q.mode {
            Mode::Vector => Vec::new(),
            Mode::Exact => self
                .lexical
                .search(&q.text, fetch, systems_upper.as_deref(), true)?,
            _ => self
                .lexical
                .search(&text, fetch, systems_upper.as_deref(), false)?,
        };
        let vector = match (q.mode, qvec) {
            (Mode::Hybrid | Mode::Vector, Some(v)) => {
                let model = self.terms_model(q.model.as_deref())?;
                self.vector_hits(&model, v, fetch, allowed.as_ref())?
            }
            _ => Vec::new(),
        };
        let (fused, kind) = match q.mode {
            Mode::Lexical | Mode::Exact => (
                fuse(&lexical, &[], FusionMethod::Rrf { k: 60.0 }, fetch),
                "bm25",
            ),
            Mode::Vector => (
                fuse(&[], &vector, FusionMethod::Rrf { k: 60.0 }, fetch),
                "cosine",
            ),
            Mode::Hybrid => (
                fuse(&lexical, &vector, q.fusion, fetch),
                match q.fusion {
                    FusionMethod::Rrf { .. } | FusionMethod::Learned { .. } => "rrf",
                    FusionMethod::Weighted { .. } => "weighted",
                },
            ),
        };
        // Single-sided modes report the side's own score, not the fused one.
        let raw: HashMap<u64, f32> = match q.mode {
            Mode::Lexical | Mode::Exact => lexical.iter().map(|h| (h.term_id, h.score)).collect(),
            Mode::Vector => vector.iter().map(|h| (h.term_id, h.score)).collect(),
            Mode::Hybrid => HashMap::new(),
        };
        let mut seen: HashSet<(u64, String)> = HashSet::new();
        let mut out = Vec::with_capacity(q.k);
        for h in fused {
            if out.len() >= q.k {
                break;
            }
            let Some(row) = self.store.term(h.term_id)? else {
                continue;
            };
            let rid = h.term_id >> 40;
            if !seen.insert((rid, row.code.clone())) {
                continue;
            }
            let Some(system) = self.store.system_of_rid(rid) else {
                continue;
            };
            let Some(preferred_term) =
                self.listed_name(&system, &row.code, &row.text, q.include_inactive)?
            else {
                continue;
            };
            out.push(Found {
                system,
                code: row.code,
                preferred_term,
                matched_term: row.text,
                score: raw.get(&h.term_id).copied().unwrap_or(h.score),
                score_kind: kind.to_string(),
                lexical_rank: h.lexical_rank,
                vector_rank: h.vector_rank,
                evidence: Vec::new(),
                explain: None,
            });
        }
        Ok(out)
    }

    /// The name a result shows for concept `system`/`code`: its preferred term (`fallback`, the
    /// matched term, when the store has no record of it), or `None` when its source marks it
    /// inactive and inactive concepts were not asked for — such a concept is left out.
    pub(crate) fn listed_name(
        &self,
        system: &str,
        code: &str,
        fallback: &str,
        include_inactive: bool,
    ) -> Result<Option<String>, EngineError> {
        Ok(match self.store.concept(system, code)? {
            Some(r) if !r.concept.active && !include_inactive => None,
            Some(r) => Some(r.concept.preferred_term),
            None => Some(fallback.to_string()),
        })
    }

    /// The L2-normalised mean vector of a concept's equivalent terms (see module docs).
    pub fn concept_vector(
        &self,
        model: &str,
        system: &str,
        code: &str,
    ) -> Result<Vec<f32>, EngineError> {
        let system = system.to_ascii_uppercase();
        let Some(rec) = self.store.concept(&system, code)? else {
            if self.store.has_system(&system) {
                return Err(EngineError::UnknownConcept(system, code.to_string()));
            }
            return Err(EngineError::UnknownSystem(system));
        };
        let mut texts: Vec<&str> = rec
            .concept
            .terms
            .iter()
            .filter(|t| t.kind.is_equivalent())
            .map(|t| t.text.as_str())
            .take(32)
            .collect();
        if texts.is_empty() {
            texts.push(&rec.concept.preferred_term);
        }
        let vecs = self.embed_cached(model, &texts)?;
        Ok(mean_normalized(&vecs))
    }
}
