//! The embedded backend: a [`VectorIndex`] (usearch HNSW files under
//! `<data-dir>/indexes/vectors/<model>.usearch`) and its catch-up state in
//! `<model>.state.json`, exactly as the engine kept them before the backend seam.

use super::{IndexState, VectorStore};
use crate::search::vector::{VectorIndex, VectorOptions};
use crate::search::{Hit, SearchError};
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// usearch index + state file of one model.
pub struct EmbeddedStore {
    index: VectorIndex,
    state_path: PathBuf,
}

impl EmbeddedStore {
    /// Open (or create empty) the index of `model` in `dir` (`indexes/vectors`).
    pub fn open(dir: &Path, model: &str, dim: usize) -> Result<Self, SearchError> {
        Self::open_with(dir, model, dim, VectorOptions::default())
    }

    /// [`Self::open`] with explicit index options (scalar type, HNSW settings). An index on
    /// disk of another scalar type or dimension is not loaded: it starts empty and is rebuilt.
    pub fn open_with(
        dir: &Path,
        model: &str,
        dim: usize,
        options: VectorOptions,
    ) -> Result<Self, SearchError> {
        let index = VectorIndex::open_with(&dir.join(format!("{model}.usearch")), dim, options)?;
        Ok(Self {
            index,
            state_path: dir.join(format!("{model}.state.json")),
        })
    }

    /// Change the index's ef_search (benchmarks sweep it on one built index).
    pub fn set_expansion_search(&self, ef: usize) {
        self.index.set_expansion_search(ef);
    }

    /// The recorded state of `model`'s index in `dir` without loading it; `None` when it has
    /// no index file or no readable state.
    pub fn peek_state(dir: &Path, model: &str) -> Option<IndexState> {
        if !dir.join(format!("{model}.usearch")).is_file() {
            return None;
        }
        std::fs::read(dir.join(format!("{model}.state.json")))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Delete `model`'s index and state files in `dir`; returns how many files were removed.
    pub fn remove(dir: &Path, model: &str) -> usize {
        let state =
            usize::from(std::fs::remove_file(dir.join(format!("{model}.state.json"))).is_ok());
        VectorIndex::remove_files(&dir.join(format!("{model}.usearch"))) + state
    }

    fn read_state(&self) -> IndexState {
        std::fs::read(&self.state_path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default()
    }
}

impl VectorStore for EmbeddedStore {
    fn backend(&self) -> &'static str {
        "usearch"
    }

    fn state(&self) -> Result<IndexState, SearchError> {
        Ok(self.read_state())
    }

    fn begin_catch_up(&self, _terms: &BTreeMap<u64, u64>) -> Result<IndexState, SearchError> {
        let mut st = self.read_state();
        if st.seq != self.index.seq() {
            tracing::warn!(index = %self.state_path.display(), "vector index disagrees with its state; rebuilding");
            for rid in std::mem::take(&mut st.rids) {
                self.index.remove_release(rid)?;
            }
            st = IndexState::default();
        }
        Ok(st)
    }

    fn upsert(&self, items: &[(u64, Vec<f32>)]) -> Result<(), SearchError> {
        self.index.upsert(items)
    }

    fn remove_release(&self, rid: u64) -> Result<(), SearchError> {
        self.index.remove_release(rid)
    }

    fn commit(&self, state: &IndexState) -> Result<(), SearchError> {
        self.index.save(state.seq)?;
        crate::util::fs::write_atomic(
            &self.state_path,
            &serde_json::to_vec(state).unwrap_or_default(),
        )
        .map_err(|e| SearchError::Index(e.to_string()))
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        allowed: Option<&HashSet<u64>>,
    ) -> Result<Vec<Hit>, SearchError> {
        // After a catch-up the index holds only active releases, so an unfiltered query needs
        // no predicate (the fast path); a system filter becomes a predicate on the key's rid.
        match allowed {
            None => self.index.search(query, k, None),
            Some(a) => {
                let filter = |key: u64| a.contains(&crate::search::rid_of(key));
                self.index.search(query, k, Some(&filter))
            }
        }
    }

    fn count(&self) -> Result<u64, SearchError> {
        Ok(self.index.len() as u64)
    }
}
