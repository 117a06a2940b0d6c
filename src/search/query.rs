//! Requests as the engine answers them for someone waiting: search, normalize, similar, embed.
//!
//! The engine embeds the query itself (as meilisearch's hybrid search does): an HTTP handler or
//! a CLI command hands over a [`Query`] and gets concepts back. Each operation
//! 1. checks a named model exists (even when the mode would not use it),
//! 2. embeds the query texts (abbreviations spelled out, [`SearchEngine::query_text`]) when
//!    the mode needs vectors — through the registry's
//!    [admission gate](crate::encoder::Admission) (429 at once when full), each distinct text
//!    once — and falls back to lexical ranking when a hybrid query finds no terms model served
//!    (a vector query without one is an error),
//! 3. ranks on the blocking pool ([`SearchEngine::search_with_vector`]).

use super::engine::{EngineError, Found, Mode, Query, SearchEngine};
use super::fusion::FusionMethod;
use crate::encoder::ModelKind;
use std::collections::HashMap;
use std::sync::Arc;

/// The most results one request may ask for (`k`; 400 past it at the HTTP layer). Internal
/// candidate pools are capped here too, so a request never costs more than its largest `k`.
pub const MAX_K: usize = 1000;

/// Default weight of the vector side in weighted fusion.
pub const DEFAULT_ALPHA: f32 = 0.9;

/// Default fusion: the learned concept-level hybrid with cross-system bridges (README's
/// dev-set table says what it gains over lexical, vector and the fixed fusions).
pub const DEFAULT_FUSION: FusionMethod = FusionMethod::Learned { bridges: true };

/// Vectors of texts embedded for a caller.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// The model that embedded them.
    pub model: String,
    /// Their dimension.
    pub dim: usize,
    /// One unit-norm vector per text, in the caller's order.
    pub vectors: Vec<Vec<f32>>,
}

/// The candidates of one mention of a [`SearchEngine::normalize`] call.
#[derive(Debug, Clone)]
pub struct Normalized {
    /// The mention as given.
    pub mention: String,
    /// Candidate concepts, best first.
    pub candidates: Vec<Found>,
}

/// Run `f` on the blocking pool (index and store reads block).
pub(crate) async fn on_blocking_pool<T, F>(f: F) -> Result<T, EngineError>
where
    F: FnOnce() -> Result<T, EngineError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| EngineError::Worker(e.to_string()))?
}

impl SearchEngine {
    /// Embed `texts` with a terms model (the default one when `model` is `None`) for a waiting
    /// caller: admitted as one request of its distinct texts, each distinct text embedded once
    /// (a batch repeating a mention costs one slot), one vector per input text in order.
    pub async fn embed_texts(
        &self,
        model: Option<&str>,
        texts: Vec<String>,
    ) -> Result<Embedded, EngineError> {
        let handle = self.registry().get(model, ModelKind::Terms)?;
        let mut slot_of: HashMap<&str, usize> = HashMap::new();
        let mut unique: Vec<String> = Vec::new();
        let slots: Vec<usize> = texts
            .iter()
            .map(|t| {
                *slot_of.entry(t.as_str()).or_insert_with(|| {
                    unique.push(t.clone());
                    unique.len() - 1
                })
            })
            .collect();
        // Held until the vectors are back.
        let _admitted = self.registry().admission().try_admit(unique.len())?;
        let vectors = if unique.len() == texts.len() {
            handle.embed(unique).await?
        } else {
            let vecs = handle.embed(unique).await?;
            slots.into_iter().map(|i| vecs[i].clone()).collect()
        };
        Ok(Embedded {
            model: handle.manifest().name.clone(),
            dim: handle.dim(),
            vectors,
        })
    }

    /// The query vectors `mode` needs for `texts`: `None` for lexical modes, and for a hybrid
    /// query when no terms model is served (it ranks lexically then); a vector query without a
    /// terms model is [`EngineError::Invalid`]. A named `model` must exist in any mode.
    async fn query_vectors(
        &self,
        mode: Mode,
        model: Option<&str>,
        texts: &[String],
    ) -> Result<Option<Vec<Vec<f32>>>, EngineError> {
        if let Some(m) = model {
            self.terms_model(Some(m))?;
        }
        let served = self.registry().default_name(ModelKind::Terms).is_some();
        match mode {
            Mode::Hybrid | Mode::Vector if served => {
                // The text search ranks (abbreviations spelled out), not the raw query.
                let texts = texts
                    .iter()
                    .map(|t| SearchEngine::query_text(t).into_owned())
                    .collect();
                Ok(Some(self.embed_texts(model, texts).await?.vectors))
            }
            Mode::Vector => Err(EngineError::Invalid(
                "vector search needs a terms model; none is loaded".into(),
            )),
            _ => Ok(None),
        }
    }

    /// Answer one query: embed it when its mode needs a vector, then rank. A query with no
    /// letter or digit is [`EngineError::NothingToSearch`] (any vector of it would be noise).
    pub async fn search(self: &Arc<Self>, q: Query) -> Result<Vec<Found>, EngineError> {
        if !Self::searchable(&q.text) {
            return Err(EngineError::NothingToSearch(q.text));
        }
        let qvec = self
            .query_vectors(q.mode, q.model.as_deref(), std::slice::from_ref(&q.text))
            .await?
            .and_then(|mut v| v.pop());
        let eng = Arc::clone(self);
        on_blocking_pool(move || eng.search_with_vector(&q, qvec.as_deref())).await
    }

    /// Candidates for each mention (one batched embedding for all of them): `template` gives
    /// `k`, mode, systems, model and fusion; candidates scoring below `min_score` are dropped.
    /// A mention with no letter or digit gets no candidates (the batch goes on).
    pub async fn normalize(
        self: &Arc<Self>,
        mentions: Vec<String>,
        template: Query,
        min_score: Option<f32>,
    ) -> Result<Vec<Normalized>, EngineError> {
        let vecs = self
            .query_vectors(template.mode, template.model.as_deref(), &mentions)
            .await?;
        let eng = Arc::clone(self);
        // Mentions are ranked in parallel (rayon's pool, in order): a batch of 1,000 is bound
        // by the index reads of its mentions, not by one thread.
        on_blocking_pool(move || {
            use rayon::prelude::*;
            mentions
                .into_par_iter()
                .enumerate()
                .map(|(i, mention)| {
                    let q = Query {
                        text: mention,
                        ..template.clone()
                    };
                    let v = vecs.as_ref().map(|v| v[i].as_slice());
                    let mut candidates = if Self::searchable(&q.text) {
                        eng.search_with_vector(&q, v)?
                    } else {
                        Vec::new()
                    };
                    if let Some(min) = min_score {
                        candidates.retain(|c| c.score >= min);
                    }
                    Ok(Normalized {
                        mention: q.text,
                        candidates,
                    })
                })
                .collect()
        })
        .await
    }

    /// The `k` concepts whose terms are nearest to the vector of concept `system`/`code` (the
    /// concept itself left out), optionally only of `systems`, with a terms `model`.
    pub async fn similar(
        self: &Arc<Self>,
        system: String,
        code: String,
        k: usize,
        systems: Option<Vec<String>>,
        model: Option<&str>,
    ) -> Result<Vec<Found>, EngineError> {
        let model = self.terms_model(model)?;
        let eng = Arc::clone(self);
        on_blocking_pool(move || {
            let v = eng.concept_vector(&model, &system, &code)?;
            let q = Query {
                text: String::new(),
                k: k + 1,
                mode: Mode::Vector,
                systems,
                model: Some(model),
                fusion: DEFAULT_FUSION,
                explain: false,
                include_inactive: false,
            };
            let sys = system.to_ascii_uppercase();
            let mut found = eng.search_with_vector(&q, Some(&v))?;
            found.retain(|f| !(f.system == sys && f.code == code));
            found.truncate(k);
            Ok(found)
        })
        .await
    }
}
