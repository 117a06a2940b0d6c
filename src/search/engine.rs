//! The search engine over the store: keeps the derived indexes in step with the store
//! (incrementally, per release), caches embeddings in sled, and answers search, normalize,
//! relatedness and similarity queries. Handlers call this; no ranking logic lives in `api/`.
//!
//! ## Derived state
//! `<data-dir>/indexes/lexical/` (tantivy) and `<data-dir>/indexes/vectors/<model>.usearch`, each
//! with a `*.state.json` recording the store sequence and the release ids it reflects. At
//! start-up and after each commit, [`SearchEngine::sync`] removes releases no longer active and
//! adds new ones; a missing, corrupt or disagreeing index is rebuilt from the store.
//!
//! ## Embedding cache
//! Tree `emb`: `model ‖ 0 ‖ text` → little-endian f32 vector. A restart never re-embeds, and a new
//! release re-uses the vectors of every string it shares with earlier ones.
//!
//! ## A concept's vector
//! The mean of the embeddings of its equivalent terms (preferred, synonyms, abbreviations,
//! short/consumer/brand names), L2-normalised. Inclusion, narrower and broader terms are left
//! out: they name related but different meanings.

use super::fusion::{fuse, FusionMethod};
use super::lexical::LexicalIndex;
use super::vector_store::{self, Backend, IndexState, VectorConfig, VectorStore};
use super::{Hit, SearchError, TermDoc};
use crate::encoder::{EncoderError, ModelKind, Registry};
use crate::store::{Store, TermRow};
use crate::util::progress::Progress;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Texts embedded per call while indexing.
const EMBED_CHUNK: usize = 256;

/// Failures of engine operations, mapped to HTTP in `api/error.rs`.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Index failure.
    #[error(transparent)]
    Search(#[from] SearchError),
    /// Encoder failure (unknown model, overloaded, ...).
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    /// Store failure.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Embedding cache failure.
    #[error("embedding cache: {0}")]
    Cache(#[from] sled::Error),
    /// Bad request content.
    #[error("{0}")]
    Invalid(String),
    /// A system named in the request has no loaded release.
    #[error("no release of system {0} is loaded")]
    UnknownSystem(String),
    /// A concept named in the request does not exist.
    #[error("no concept {1} in {0}")]
    UnknownConcept(String, String),
    /// A blocking-pool task failed (a panic; never expected).
    #[error("search worker failed: {0}")]
    Worker(String),
    /// The query (abbreviations spelled out) holds no letter or digit: nothing to search.
    #[error("the query {0:?} has no letter or digit: nothing to search")]
    NothingToSearch(String),
}

fn read_state(path: &Path) -> Option<IndexState> {
    std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
}

fn write_state(path: &Path, st: &IndexState) -> std::io::Result<()> {
    crate::util::fs::write_atomic(path, &serde_json::to_vec(st).unwrap_or_default())
}

/// Search mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Lexical and vector, fused.
    #[default]
    Hybrid,
    /// BM25 + n-grams + exact boosts only.
    Lexical,
    /// Embedding similarity only.
    Vector,
    /// Exact (normalised whole string or code) lexical matches only.
    Exact,
}

/// A search to run.
#[derive(Debug, Clone)]
pub struct Query {
    /// The text.
    pub text: String,
    /// Concepts wanted.
    pub k: usize,
    /// Mode.
    pub mode: Mode,
    /// Restrict to these systems.
    pub systems: Option<Vec<String>>,
    /// Terms model name (default model when `None`).
    pub model: Option<String>,
    /// Fusion for hybrid mode.
    pub fusion: FusionMethod,
}

/// One concept found.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Found {
    /// System.
    pub system: String,
    /// Code.
    pub code: String,
    /// Preferred name.
    pub preferred_term: String,
    /// The term that matched best.
    pub matched_term: String,
    /// Score (see `score_kind`).
    pub score: f32,
    /// `cosine` (vector), `bm25` (lexical), `rrf`, `weighted` or `learned` (hybrid; `learned`
    /// is a calibrated probability in [0, 1] that this is the concept meant).
    pub score_kind: String,
    /// 1-based rank of the best term on the lexical side, if it was there.
    pub lexical_rank: Option<usize>,
    /// 1-based rank of the best term on the vector side, if it was there.
    pub vector_rank: Option<usize>,
    /// What put it there: `lexical`, `vector`, `exact` (a term equals the query), `code` (the
    /// query is its code), `via:SYSTEM:CODE` (a cross-system bridge: the query equals a term of
    /// that concept and this one matches its preferred name). Learned hybrid only; empty
    /// otherwise.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub evidence: Vec<String>,
}

/// The engine.
pub struct SearchEngine {
    store: Store,
    registry: Arc<Registry>,
    dir: PathBuf,
    lexical: LexicalIndex,
    vectors: RwLock<HashMap<String, Arc<dyn VectorStore>>>,
    /// A read-only node never writes a shared vector store (the writer catches it up).
    read_only: bool,
    emb: sled::Tree,
    /// Serialises catch-ups; taken by background work only (never by a request).
    catchup_lock: parking_lot::Mutex<()>,
}

impl SearchEngine {
    /// Open (or create) the indexes under `<data_dir>/indexes` with the embedded vector
    /// backend. Call [`Self::sync`] afterwards.
    pub fn open(
        store: Store,
        registry: Arc<Registry>,
        data_dir: &Path,
    ) -> Result<Self, EngineError> {
        Self::open_with(store, registry, data_dir, &VectorConfig::default())
    }

    /// [`Self::open`] with a chosen vector backend. A Postgres store that cannot be reached
    /// (or holds a newer schema) is logged as an error naming it (password redacted) and the
    /// engine opens anyway: lexical search works, vector searches answer `Unavailable` until
    /// the server is back.
    pub fn open_with(
        store: Store,
        registry: Arc<Registry>,
        data_dir: &Path,
        config: &VectorConfig,
    ) -> Result<Self, EngineError> {
        let dir = data_dir.join("indexes");
        std::fs::create_dir_all(dir.join("vectors"))
            .map_err(|e| SearchError::Index(format!("cannot create {}: {e}", dir.display())))?;
        let lexical = match LexicalIndex::open_or_create(&dir.join("lexical")) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "lexical index unusable; rebuilding from the store");
                let _ = std::fs::remove_dir_all(dir.join("lexical"));
                let _ = std::fs::remove_file(dir.join("lexical.state.json"));
                LexicalIndex::open_or_create(&dir.join("lexical"))?
            }
        };
        let mut vectors: HashMap<String, Arc<dyn VectorStore>> = HashMap::new();
        let pg = match &config.backend {
            Backend::Embedded => None,
            Backend::Postgres(url) => {
                Some(vector_store::postgres::PgClient::new(url, config.postgres)?)
            }
        };
        for info in registry.list() {
            if info.kind != ModelKind::Terms {
                continue;
            }
            let v: Arc<dyn VectorStore> = match &pg {
                None => Arc::new(vector_store::usearch::EmbeddedStore::open(
                    &dir.join("vectors"),
                    &info.name,
                    info.dim,
                )?),
                Some(client) => {
                    let s =
                        vector_store::postgres::PgStore::new(client.clone(), &info.name, info.dim);
                    if let Err(e) = s.ensure_table() {
                        tracing::error!(error = %e, "vector store unusable at start; lexical search is served, vector search answers 503 until it is back");
                    }
                    Arc::new(s)
                }
            };
            vectors.insert(info.name.clone(), v);
        }
        let emb = embedding_cache(&store)?;
        Ok(Self {
            store,
            registry,
            dir,
            lexical,
            vectors: RwLock::new(vectors),
            read_only: config.read_only,
            emb,
            catchup_lock: parking_lot::Mutex::new(()),
        })
    }

    /// The model registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// The lexical index.
    pub(super) fn lexical(&self) -> &LexicalIndex {
        &self.lexical
    }

    /// The text a query is searched (and embedded) as: abbreviations, shorthand and numbers
    /// rewritten by [`super::abbrev::expand_query`]. Callers embed this, not the raw query.
    pub fn query_text(text: &str) -> std::borrow::Cow<'_, str> {
        super::abbrev::query_text(text)
    }

    /// Whether a query has anything to search: a letter or a digit once abbreviations are
    /// spelled out (`"???"`, `"--"` have none).
    pub fn searchable(text: &str) -> bool {
        Self::query_text(text).chars().any(char::is_alphanumeric)
    }

    /// A text's vector from the embedding cache only (no encoder call).
    pub(super) fn cached_vector(
        &self,
        model: &str,
        text: &str,
    ) -> Result<Option<Vec<f32>>, EngineError> {
        Ok(self
            .emb
            .get(emb_key(model, text))?
            .map(|v| bytes_to_f32(&v)))
    }

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

        // vectors, one store per terms model
        let models: Vec<(String, Arc<dyn VectorStore>)> = self
            .vectors
            .read()
            .iter()
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        let mut terms: BTreeMap<u64, u64> = BTreeMap::new();
        for rid in &want {
            terms.insert(
                *rid,
                self.store
                    .release(*rid)?
                    .map(|r| r.counts.terms)
                    .unwrap_or(0),
            );
        }
        for (model, index) in models {
            if self.read_only && index.backend() != "usearch" {
                // a shared store is the writer's to catch up
                continue;
            }
            let st = index.begin_catch_up(&terms)?;
            if st.rids == want && st.seq == seq {
                continue;
            }
            for rid in st.rids.difference(&want) {
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
                    let vecs = embed_through_cache(&self.emb, &model, &texts, None, |todo| {
                        let handle = self.registry.get(Some(&model), ModelKind::Terms)?;
                        let v = handle.embed_blocking_until(todo, progress)?;
                        embedded.set(embedded.get() + todo.len());
                        Ok::<_, EngineError>(v)
                    });
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
        for (model, index) in self.vectors.read().iter() {
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

    /// Embeddings of `texts` with `model`, from the cache where present; computes and stores
    /// the rest (length-sorted batches inside the encoder).
    pub fn embed_cached(&self, model: &str, texts: &[&str]) -> Result<Vec<Vec<f32>>, EngineError> {
        embed_through_cache(&self.emb, model, texts, None, |todo| {
            let handle = self.registry.get(Some(model), ModelKind::Terms)?;
            Ok(handle.embed_blocking(todo)?)
        })
    }

    /// Resolve the terms model to use.
    pub fn terms_model(&self, name: Option<&str>) -> Result<String, EngineError> {
        Ok(self
            .registry
            .get(name, ModelKind::Terms)?
            .manifest()
            .name
            .clone())
    }

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
        let index =
            self.vectors.read().get(model).cloned().ok_or_else(|| {
                EngineError::Invalid(format!("model {model} has no vector index"))
            })?;
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
            let preferred_term = self
                .store
                .concept(&system, &row.code)?
                .map(|c| c.concept.preferred_term)
                .unwrap_or_else(|| row.text.clone());
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
            });
        }
        Ok(out)
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

    /// Whether the store has the system.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Mean of vectors, L2-normalised (zero vector stays zero).
pub fn mean_normalized(vecs: &[Vec<f32>]) -> Vec<f32> {
    let dim = vecs.first().map(|v| v.len()).unwrap_or(0);
    let mut m = vec![0f32; dim];
    for v in vecs {
        for (a, b) in m.iter_mut().zip(v) {
            *a += b;
        }
    }
    let norm = m.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        m.iter_mut().for_each(|x| *x /= norm);
    }
    m
}

/// The embedding cache tree of a store (see the module docs).
pub fn embedding_cache(store: &Store) -> Result<sled::Tree, sled::Error> {
    store.db().open_tree("emb")
}

/// Embeddings of `texts` by `model`: from the embedding cache `cache` where it holds a vector
/// (of `dim` values, when given), the rest from `embed`, called once with every missing text,
/// and added to the cache. The search engine and the NoteContrast trainer (which reuses the
/// served model's vectors of code descriptions) both go through here.
pub fn embed_through_cache<E: From<sled::Error>>(
    cache: &sled::Tree,
    model: &str,
    texts: &[&str],
    dim: Option<usize>,
    embed: impl FnOnce(&[&str]) -> Result<Vec<Vec<f32>>, E>,
) -> Result<Vec<Vec<f32>>, E> {
    let mut out: Vec<Option<Vec<f32>>> = Vec::with_capacity(texts.len());
    let mut missing: Vec<usize> = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let v = cache
            .get(emb_key(model, t))?
            .map(|v| bytes_to_f32(&v))
            .filter(|v| dim.is_none_or(|d| v.len() == d));
        if v.is_none() {
            missing.push(i);
        }
        out.push(v);
    }
    if !missing.is_empty() {
        let todo: Vec<&str> = missing.iter().map(|&i| texts[i]).collect();
        let vecs = embed(&todo)?;
        let mut batch = sled::Batch::default();
        for (&i, v) in missing.iter().zip(vecs) {
            batch.insert(emb_key(model, texts[i]), f32_to_bytes(&v));
            out[i] = Some(v);
        }
        cache.apply_batch(batch)?;
    }
    Ok(out.into_iter().map(Option::unwrap_or_default).collect())
}

fn emb_key(model: &str, text: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(model.len() + 1 + text.len());
    k.extend_from_slice(model.as_bytes());
    k.push(0);
    k.extend_from_slice(text.as_bytes());
    k
}

fn f32_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

fn bytes_to_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
