//! Keeping the derived indexes in step with the store ([`SearchEngine::sync`]): the lexical
//! index, then one vector store per terms model, each with the store sequence and the release
//! ids it reflects; releases no longer active are removed and new ones added, chunk by chunk,
//! cancellable. [`SearchEngine::behind`] says which indexes a catch-up is due for.

use super::cache::embed_through_cache;
use super::engine::{EngineError, SearchEngine};
use super::vector_store::{IndexState, VectorStore};
use super::{SearchError, TermDoc};
use crate::encoder::ModelKind;
use crate::store::TermRow;
use crate::util::progress::Progress;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;

/// Texts embedded per call while indexing.
const EMBED_CHUNK: usize = 256;

fn read_state(path: &Path) -> Option<IndexState> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

fn write_state(path: &Path, st: &IndexState) -> std::io::Result<()> {
    crate::util::fs::write_atomic(path, &serde_json::to_vec(st).unwrap_or_default())
}

impl SearchEngine {
    /// Bring every index up to the store's active releases. Incremental: only releases added or
    /// removed since the index's recorded state are touched.
    ///
    /// Runs on background threads only and works in chunks: searches meanwhile read the last
    /// lexical commit and the vectors upserted so far. When `progress` is cancelled it stops at
    /// the next chunk, flushing the embedding cache first, so a restart re-embeds nothing it did.
    pub fn sync(&self, progress: Option<&Progress>) -> Result<(), EngineError> {
        let _g = self.catchup_lock.lock();
        let cancelled = || progress.is_some_and(|p| p.is_cancelled());
        let seq = self.store.seq()?;
        let active = self.store.active_rids();
        let want: BTreeSet<u64> = active.values().copied().collect();
        let sys_of: HashMap<u64, String> = active.iter().map(|(s, r)| (*r, s.clone())).collect();

        // lexical
        let lpath = self.dir.join("lexical.state.json");
        let mut st = read_state(&lpath).unwrap_or_default();
        if st.seq != self.lexical.seq() {
            tracing::warn!(
                state = st.seq,
                index = self.lexical.seq(),
                "lexical index disagrees with its state; rebuilding"
            );
            for rid in std::mem::take(&mut st.rids) {
                self.lexical.delete_release(rid)?;
            }
            st = IndexState::default();
        }
        if st.rids != want || st.seq != seq {
            for rid in st.rids.difference(&want) {
                self.lexical.delete_release(*rid)?;
            }
            for rid in want.difference(&st.rids) {
                let system = &sys_of[rid];
                if let Some(p) = progress {
                    p.phase(&format!("lexical index {system}"), 0);
                }
                let mut docs = Vec::with_capacity(4096);
                for t in self.store.terms_of_release(*rid) {
                    let (term_id, row) = t?;
                    docs.push(TermDoc {
                        term_id,
                        system: system.clone(),
                        code: row.code,
                        text: row.text,
                        kind: row.kind,
                    });
                    if docs.len() >= 4096 {
                        self.lexical.add(std::mem::take(&mut docs))?;
                        if let Some(p) = progress {
                            p.add_done(4096);
                        }
                        if cancelled() {
                            return Err(EngineError::Invalid("cancelled".into()));
                        }
                    }
                }
                self.lexical.add(docs)?;
            }
            self.lexical.commit(seq)?;
            write_state(
                &lpath,
                &IndexState {
                    seq,
                    rids: want.clone(),
                },
            )
            .map_err(|e| SearchError::Index(e.to_string()))?;
        }

        // vectors, one store per terms model: the one being built where a precision change is
        // under way (searches read the complete one meanwhile; `super::serving`)
        let models: Vec<(String, Arc<dyn VectorStore>)> = self
            .vectors
            .read()
            .iter()
            .map(|(n, v)| (n.clone(), v.target()))
            .collect();
        let terms = super::serving::active_terms(&self.store)?;
        for (model, index) in models {
            self.catch_up_vectors(&model, &*index, seq, &want, &terms, &sys_of, progress)?;
            self.promote_if_complete(&model, seq, &want);
        }
        Ok(())
    }

    /// One terms model's share of [`Self::sync`]: bring `index` to `seq` / `want`.
    #[allow(clippy::too_many_arguments)]
    fn catch_up_vectors(
        &self,
        model: &str,
        index: &dyn VectorStore,
        seq: u64,
        want: &BTreeSet<u64>,
        terms: &BTreeMap<u64, u64>,
        sys_of: &HashMap<u64, String>,
        progress: Option<&Progress>,
    ) -> Result<(), EngineError> {
        let cancelled = || progress.is_some_and(|p| p.is_cancelled());
        {
            // cache entries are keyed by the vector id (the model's name and precision)
            let vid = self.vid(model);
            if self.read_only && index.backend() != "usearch" {
                // a shared store is the writer's to catch up
                return Ok(());
            }
            let st = index.begin_catch_up(terms)?;
            if st.rids == *want && st.seq == seq {
                return Ok(());
            }
            for rid in st.rids.difference(want) {
                index.remove_release(*rid)?;
            }
            for rid in want.difference(&st.rids) {
                let system = &sys_of[rid];
                let n = terms.get(rid).copied().unwrap_or(0);
                if let Some(p) = progress {
                    p.phase(&format!("embedding {system} with {model}"), n);
                }
                let mut batch: Vec<(u64, TermRow)> = Vec::with_capacity(EMBED_CHUNK);
                // texts the encoder had to embed (the rest came from the cache)
                let embedded = std::cell::Cell::new(0usize);
                let started = std::time::Instant::now();
                let log = |how: &str| {
                    tracing::info!(model = %model, system = %system, terms = n, embedded = embedded.get(), secs = format!("{:.1}", started.elapsed().as_secs_f64()), "{how}");
                };
                let flush = |batch: &mut Vec<(u64, TermRow)>| -> Result<(), EngineError> {
                    let texts: Vec<&str> = batch.iter().map(|(_, r)| r.text.as_str()).collect();
                    let interrupted = || -> Result<(), EngineError> {
                        // what was embedded stays in the cache: a restart reuses it
                        self.emb.flush()?;
                        log("term embedding interrupted; the cache keeps what was embedded");
                        Err(EngineError::Invalid("cancelled".into()))
                    };
                    let vecs = embed_through_cache(
                        &self.emb,
                        self.store.disk(),
                        &vid,
                        &texts,
                        None,
                        |todo| {
                            let handle = self.registry.get(Some(model), ModelKind::Terms)?;
                            let v = handle.embed_blocking_until(todo, progress)?;
                            embedded.set(embedded.get() + todo.len());
                            Ok::<_, EngineError>(v)
                        },
                    );
                    let vecs = match vecs {
                        Err(_) if cancelled() => return interrupted(),
                        r => r?,
                    };
                    let items: Vec<(u64, Vec<f32>)> =
                        batch.iter().map(|(id, _)| *id).zip(vecs).collect();
                    index.upsert(&items)?;
                    if let Some(p) = progress {
                        p.add_done(items.len() as u64);
                    }
                    if cancelled() {
                        return interrupted();
                    }
                    batch.clear();
                    Ok(())
                };
                for t in self.store.terms_of_release(*rid) {
                    batch.push(t?);
                    if batch.len() >= EMBED_CHUNK {
                        flush(&mut batch)?;
                    }
                }
                if !batch.is_empty() {
                    flush(&mut batch)?;
                }
                log("embedded terms");
            }
            index.commit(&IndexState {
                seq,
                rids: want.clone(),
            })?;
            self.emb.flush()?;
        }
        Ok(())
    }

    /// Indexes that do not reflect the store yet (a catch-up is due or running): `lexical`
    /// and `vectors/<model>`.
    pub fn behind(&self) -> Result<Vec<String>, EngineError> {
        let seq = self.store.seq()?;
        let want: BTreeSet<u64> = self.store.active_rids().values().copied().collect();
        let current = |st: &IndexState| st.seq == seq && st.rids == want;
        let mut out = Vec::new();
        let lexical = read_state(&self.dir.join("lexical.state.json")).unwrap_or_default();
        if !current(&lexical) {
            out.push("lexical".to_string());
        }
        let targets: Vec<(String, Arc<dyn VectorStore>)> = self
            .vectors
            .read()
            .iter()
            .map(|(n, v)| (n.clone(), v.target()))
            .collect();
        for (model, index) in targets {
            // an unreachable store counts as behind; a read-only node's shared store is the
            // writer's, possibly ahead of this node's store snapshot
            let st = index.state().unwrap_or_default();
            let shared_ro = self.read_only && index.backend() != "usearch";
            let ahead_shared = shared_ro && st.seq >= seq;
            if !(current(&st) || ahead_shared) {
                out.push(format!("vectors/{model}"));
            }
        }
        out.sort();
        Ok(out)
    }
}
