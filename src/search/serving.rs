//! Which of a terms model's vector indexes its searches read.
//!
//! A model's index is a [`VectorVariant`]: the precision its vectors were computed in (the vector id,
//! `name` in F32, `name@bf16` in BF16; see [`crate::encoder::precision::vector_id`]) and the
//! scalar type the index stores them in (`--vector-dtype`: f32, f16, i8; the file is
//! `<vector id>.usearch` for f32, `<vector id>.<dtype>.usearch` otherwise). Serving a model
//! in another precision than its data directory was embedded in needs a new index, embedded
//! from the store (for the full UMLS, hours); another dtype needs the HNSW graph built again
//! (from the embedding cache, no embedding). Searching the new index meanwhile would answer
//! from whatever part of it is done so far, so instead:
//!
//! * At open, if the model's own variant covers fewer of the active terms than a
//!   *complete-so-far* index of another variant of the same model (one holding only active
//!   releases, every vector of them present), that other index is **served** and the model's
//!   own index is **built** beside it by the catch-ups (`ModelVectors::building`).
//! * When a catch-up leaves the index being built reflecting the whole store, searches switch
//!   to it at once (one swap under the map's write lock; `SearchEngine::promote_if_complete`).
//!   The old index stays on disk untouched, so switching back later finds it as it was.
//! * Until then, queries are embedded in the precision the model runs in and searched against
//!   the other precision's vectors. The parity gate bounds how far the two precisions' vectors
//!   of a text may be apart (mean cosine ≥ 0.995, minimum ≥ 0.98), while a partial index loses
//!   every term not yet embedded outright, so this is the better answer. No index ever holds
//!   vectors of two precisions: the served one is only read, the built one only written.
//!
//! Why build rather than keep serving the old variant until asked: `auto` is meant to give
//! the fastest precision that passes the gate without an operator's step, and the switch costs
//! searches nothing now (the complete index answers throughout, `/ready` lists
//! `vectors/<model>` as behind, `/v1/models` shows `vectors` — precision and dtype — and
//! `vectors.building`). An operator who does not want the CPU spent starts with the
//! `--precision` and `--vector-dtype` the existing index has: then nothing is rebuilt.

use super::error::EngineError;
use super::vector::VectorScalar;
use super::vector_store::{IndexState, VectorStore};
use crate::encoder::{ModelInfo, Precision};
use crate::store::Store;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// What an index of a model holds: vectors of one precision, stored as one scalar type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct VectorVariant {
    /// The precision the model computed the vectors in.
    pub precision: Precision,
    /// The scalar type the index stores them as.
    pub dtype: VectorScalar,
}

impl VectorVariant {
    /// The index's name under `indexes/vectors/` (and its Postgres table's key): the vector
    /// id, with `.<dtype>` unless f32 (so f32 indexes keep the names they always had).
    pub fn index_name(self, model: &str) -> String {
        let vid = crate::encoder::precision::vector_id(model, self.precision);
        match self.dtype {
            VectorScalar::F32 => vid,
            d => format!("{vid}.{d}"),
        }
    }
}

/// Which index a terms model's vector searches read (`/v1/models` → `vectors`).
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct VectorServing {
    /// The served index: its precision (it differs from the model's `precision` while the
    /// index of the model's precision is being built; queries are embedded in the model's
    /// precision) and its scalar type.
    #[serde(flatten)]
    pub serving: VectorVariant,
    /// The index being built to replace it, if any (searches switch when it is complete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub building: Option<VectorVariant>,
}

/// A model as `/v1/models` lists it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ModelStatus {
    /// The model.
    #[serde(flatten)]
    pub info: ModelInfo,
    /// Terms models: the index their vector searches read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vectors: Option<VectorServing>,
}

/// The vector indexes of one terms model (see the module docs).
pub(super) struct ModelVectors {
    /// The model's own variant (its precision, the configured dtype).
    pub(super) own: VectorVariant,
    /// The index searches read.
    pub(super) serving: Arc<dyn VectorStore>,
    /// What `serving` holds.
    pub(super) serving_variant: VectorVariant,
    /// The model's own index while another precision's complete index is served; catch-ups
    /// write here. `None` once it serves (or when it served from the start).
    pub(super) building: Option<Arc<dyn VectorStore>>,
}

impl ModelVectors {
    /// A model serving its own index.
    pub(super) fn own(own: VectorVariant, store: Arc<dyn VectorStore>) -> Self {
        ModelVectors {
            own,
            serving: store,
            serving_variant: own,
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

/// How [`choose`] reaches the indexes of one model in other variants.
pub(super) trait Indexes {
    /// The variants this backend can hold for the model, the model's own included.
    fn variants(&self) -> Vec<VectorVariant>;
    /// Open (or create empty) the model's index of `variant`.
    fn open(&self, variant: VectorVariant) -> Result<Arc<dyn VectorStore>, EngineError>;
    /// The recorded state of the model's index of `variant`, without loading it; `None` when
    /// there is none (or it cannot be read).
    fn peek(&self, variant: VectorVariant) -> Option<IndexState>;
}

/// Which index a model whose own variant is `own_variant` serves at open (see the module
/// docs): `own`, unless an index of another variant covers more of the active terms.
pub(super) fn choose(
    model: &str,
    own_variant: VectorVariant,
    own: Arc<dyn VectorStore>,
    terms: &BTreeMap<u64, u64>,
    indexes: &dyn Indexes,
) -> Result<ModelVectors, EngineError> {
    // an unreachable store (Postgres down at start) is not probed further
    let Ok(own_state) = own.state() else {
        return Ok(ModelVectors::own(own_variant, own));
    };
    let candidates: Vec<(VectorVariant, u64)> = indexes
        .variants()
        .into_iter()
        .filter(|v| *v != own_variant)
        .filter_map(|v| Some((v, covered(&indexes.peek(v)?, terms)?)))
        .filter(|(_, n)| *n > 0)
        .collect();
    if candidates.is_empty() {
        return Ok(ModelVectors::own(own_variant, own));
    }
    // the own index must hold what its state claims too (a damaged file reopens empty)
    let claimed = covered(&own_state, terms).unwrap_or(0);
    let own_covered = match own.count() {
        Ok(c) if c == claimed => claimed,
        _ => 0,
    };
    let mut best: Option<(VectorVariant, u64)> = None;
    for (v, n) in candidates {
        // the most coverage, then the same precision (queries embedded as its vectors were)
        let better = |b: &(VectorVariant, u64)| {
            let same = |x: VectorVariant| x.precision == own_variant.precision;
            (n, same(v)) > (b.1, same(b.0))
        };
        if n > own_covered && best.as_ref().is_none_or(better) {
            best = Some((v, n));
        }
    }
    let Some((other, n)) = best else {
        return Ok(ModelVectors::own(own_variant, own));
    };
    let store = indexes.open(other)?;
    // its files must hold what its state claims (a damaged index resets to empty on open)
    match store.count() {
        Ok(c) if c == n => {}
        Ok(c) => {
            tracing::warn!(model, index = other.index_name(model), recorded = n, found = c, "an index does not hold what its state says; serving the model's own index as it is");
            return Ok(ModelVectors::own(own_variant, own));
        }
        Err(e) => {
            tracing::warn!(model, index = other.index_name(model), error = %e, "an index cannot be read; serving the model's own index as it is");
            return Ok(ModelVectors::own(own_variant, own));
        }
    }
    let (mine, theirs) = (own_variant.index_name(model), other.index_name(model));
    tracing::warn!(model, terms = n, own_terms = own_covered, "the vector index {mine} is incomplete: searches read the complete index {theirs} until {mine} is built, then switch");
    Ok(ModelVectors {
        own: own_variant,
        serving: store,
        serving_variant: other,
        building: Some(own),
    })
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

    #[test]
    fn index_names_keep_f32_names() {
        let v = |precision, dtype| VectorVariant { precision, dtype };
        assert_eq!(v(Precision::F32, VectorScalar::F32).index_name("m"), "m");
        assert_eq!(
            v(Precision::Bf16, VectorScalar::F32).index_name("m"),
            "m@bf16"
        );
        assert_eq!(
            v(Precision::Bf16, VectorScalar::I8).index_name("m"),
            "m@bf16.i8"
        );
        assert_eq!(
            v(Precision::F32, VectorScalar::F16).index_name("m"),
            "m.f16"
        );
    }
}
