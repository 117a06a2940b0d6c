//! The engine's side of [`super::serving`]: switching a model's searches to its rebuilt index
//! once it is complete, and reporting which index each terms model serves.

use super::engine::SearchEngine;
use super::serving::{ModelStatus, VectorServing};
use crate::encoder::ModelKind;
use std::collections::BTreeSet;
use std::sync::Arc;

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
        // as `behind` counts it: a read-only node's shared store is the writer's, possibly
        // ahead of this node's store
        let shared_ro = self.read_only && building.backend() != "usearch";
        let complete = building
            .state()
            .is_ok_and(|st| (st.seq == seq && st.rids == *want) || (shared_ro && st.seq >= seq));
        if !complete {
            return;
        }
        let mut map = self.vectors.write();
        if let Some(m) = map.get_mut(model) {
            if m.building
                .as_ref()
                .is_some_and(|b| Arc::ptr_eq(b, &building))
            {
                tracing::info!(
                    model,
                    from = m.serving_variant.index_name(model),
                    to = m.own.index_name(model),
                    "vector index complete: searches switch to it"
                );
                m.serving = building;
                m.serving_variant = m.own;
                m.building = None;
            }
        }
    }

    /// The loaded models as `/v1/models` shows them, terms models with the index their
    /// vector searches read.
    pub fn models(&self) -> Vec<ModelStatus> {
        let map = self.vectors.read();
        self.registry
            .list()
            .into_iter()
            .map(|info| ModelStatus {
                vectors: map
                    .get(&info.name)
                    .filter(|_| info.kind == ModelKind::Terms)
                    .map(|v| VectorServing {
                        serving: v.serving_variant,
                        building: v.building.as_ref().map(|_| v.own),
                    }),
                info,
            })
            .collect()
    }
}
