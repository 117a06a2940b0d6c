//! Which of a terms model's vector indexes its searches read.
//!
//! A model's vectors are keyed by its vector id (`name` in F32, `name@bf16` in BF16; see
//! [`crate::encoder::precision::vector_id`]), so serving a model in another precision than its
//! data directory was embedded in needs a new index, built from the store. For the full UMLS
//! that is hours of embedding. Searching the new index meanwhile would answer from whatever
//! part of it is embedded so far, so instead:
//!
//! * At open, if the index of the model's own precision covers fewer of the active terms than
//!   a *complete-so-far* index of another precision of the same model (one holding only active
//!   releases, every vector of them present), that other index is **served** and the model's
//!   own index is **built** beside it by the catch-ups ([`ModelVectors::building`]).
//! * When a catch-up leaves the index being built reflecting the whole store, searches switch
//!   to it at once (one swap under the map's write lock; [`SearchEngine::promote_if_complete`]).
//!   The old index stays on disk untouched, so switching back later finds it as it was.
//! * Until then, queries are embedded in the precision the model runs in and searched against
//!   the other precision's vectors. The parity gate bounds how far the two precisions' vectors
//!   of a text may be apart (mean cosine ≥ 0.995, minimum ≥ 0.98), while a partial index loses
//!   every term not yet embedded outright, so this is the better answer. No index ever holds
//!   vectors of two precisions: the served one is only read, the built one only written.
//!
//! Why build rather than keep serving the old precision until asked: `auto` is meant to give
//! the fastest precision that passes the gate without an operator's step, and the switch costs
//! searches nothing now (the complete index answers throughout, `/ready` lists
//! `vectors/<model>` as behind, `/v1/models` shows `vectors.precision` and
//! `vectors.building`). An operator who does not want the CPU spent starts with
//! `--precision f32` (or whatever the existing index is in): then nothing is rebuilt.

use super::engine::{EngineError, SearchEngine};
use super::vector_store::{IndexState, VectorStore};
use crate::encoder::{ModelInfo, ModelKind, Precision, VectorServing};
use crate::store::Store;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

/// The vector indexes of one terms model (see the module docs).
pub(super) struct ModelVectors {
    /// The precision the model runs in (its own index is built in it).
    pub(super) precision: Precision,
    /// The index searches read.
    pub(super) serving: Arc<dyn VectorStore>,
    /// The precision `serving` was built in.
    pub(super) serving_precision: Precision,
    /// The model's own index while another precision's complete index is served; catch-ups
    /// write here. `None` once it serves (or when it served from the start).
    pub(super) building: Option<Arc<dyn VectorStore>>,
}

impl ModelVectors {
    /// A model serving its own index.
    pub(super) fn own(precision: Precision, store: Arc<dyn VectorStore>) -> Self {
        ModelVectors {
            precision,
            serving: store,
            serving_precision: precision,
            building: None,
        }
    }

    /// The index catch-ups bring up to the store: the one being built, else the served one.
    pub(super) fn target(&self) -> Arc<dyn VectorStore> {
        self.building
            .clone()
            .unwrap_or_else(|| self.serving.clone())
    }
}

/// Each active release with its term count.
pub(super) fn active_terms(store: &Store) -> Result<BTreeMap<u64, u64>, EngineError> {
    let mut terms = BTreeMap::new();
    for rid in store.active_rids().values() {
        let n = store.release(*rid)?.map(|r| r.counts.terms).unwrap_or(0);
        terms.insert(*rid, n);
    }
    Ok(terms)
}

/// Active terms an index in state `st` holds vectors of; `None` when it holds a release that
/// is no longer active (it would answer with terms the store has dropped).
pub(super) fn covered(st: &IndexState, terms: &BTreeMap<u64, u64>) -> Option<u64> {
    st.rids
        .iter()
        .map(|rid| terms.get(rid).copied())
        .sum::<Option<u64>>()
}

/// How [`choose`] reaches the indexes of one model in other precisions.
pub(super) trait Indexes {
    /// Open (or create empty) the model's index in `precision`.
    fn open(&self, precision: Precision) -> Result<Arc<dyn VectorStore>, EngineError>;
    /// The recorded state of the model's index in `precision`, without loading it; `None` when
    /// there is none (or it cannot be read).
    fn peek(&self, precision: Precision) -> Option<IndexState>;
}

/// Which index a model running in `precision` serves at open (see the module docs): `own`,
/// unless an index of another precision covers more of the active terms.
pub(super) fn choose(
    model: &str,
    precision: Precision,
    own: Arc<dyn VectorStore>,
    terms: &BTreeMap<u64, u64>,
    indexes: &dyn Indexes,
) -> Result<ModelVectors, EngineError> {
    let own_covered = own
        .state()
        .ok()
        .and_then(|st| covered(&st, terms))
        .unwrap_or(0);
    let mut best: Option<(Precision, u64)> = None;
    for p in Precision::ALL.into_iter().filter(|p| *p != precision) {
        let Some(n) = indexes.peek(p).and_then(|st| covered(&st, terms)) else {
            continue;
        };
        if n > own_covered && best.is_none_or(|(_, b)| n > b) {
            best = Some((p, n));
        }
    }
    let Some((other, n)) = best else {
        return Ok(ModelVectors::own(precision, own));
    };
    let store = indexes.open(other)?;
    // its files must hold what its state claims (a damaged index resets to empty on open)
    match store.count() {
        Ok(c) if c == n => {}
        Ok(c) => {
            tracing::warn!(model, precision = %other, recorded = n, found = c, "the other precision's index does not hold what its state says; serving the model's own index as it is");
            return Ok(ModelVectors::own(precision, own));
        }
        Err(e) => {
            tracing::warn!(model, precision = %other, error = %e, "the other precision's index cannot be read; serving the model's own index as it is");
            return Ok(ModelVectors::own(precision, own));
        }
    }
    tracing::warn!(model, runs_in = %precision, serving = %other, terms = n, own_terms = own_covered, "the {precision} index is incomplete: searches read the complete {other} index until the {precision} one is built, then switch");
    Ok(ModelVectors {
        precision,
        serving: store,
        serving_precision: other,
        building: Some(own),
    })
}

impl SearchEngine {
    /// Switch `model`'s searches to the index being built once it reflects store sequence
    /// `seq` and the releases `want` (see the module docs); no-op otherwise.
    pub(super) fn promote_if_complete(&self, model: &str, seq: u64, want: &BTreeSet<u64>) {
        let Some(building) = self
            .vectors
            .read()
            .get(model)
            .and_then(|m| m.building.clone())
        else {
            return;
        };
        let complete = building
            .state()
            .is_ok_and(|st| st.seq == seq && st.rids == *want);
        if !complete {
            return;
        }
        let mut map = self.vectors.write();
        if let Some(m) = map.get_mut(model) {
            if m.building
                .as_ref()
                .is_some_and(|b| Arc::ptr_eq(b, &building))
            {
                tracing::info!(model, from = %m.serving_precision, to = %m.precision, "vector index complete: searches switch to it");
                m.serving = building;
                m.serving_precision = m.precision;
                m.building = None;
            }
        }
    }

    /// The loaded models as `/v1/models` shows them, terms models with the precision of the
    /// vectors their searches read.
    pub fn models(&self) -> Vec<ModelInfo> {
        let map = self.vectors.read();
        let mut list = self.registry.list();
        for m in list.iter_mut().filter(|m| m.kind == ModelKind::Terms) {
            m.vectors = map.get(&m.name).map(|v| VectorServing {
                precision: v.serving_precision,
                building: v.building.as_ref().map(|_| v.precision),
            });
        }
        list
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coverage_counts_active_terms_and_refuses_stale_releases() {
        let terms: BTreeMap<u64, u64> = [(1, 10), (2, 5)].into();
        let st = |rids: &[u64]| IndexState {
            seq: 1,
            rids: rids.iter().copied().collect(),
        };
        assert_eq!(covered(&st(&[]), &terms), Some(0));
        assert_eq!(covered(&st(&[1]), &terms), Some(10));
        assert_eq!(covered(&st(&[1, 2]), &terms), Some(15));
        assert_eq!(covered(&st(&[1, 3]), &terms), None);
    }
}
