//! The search engine over the store: keeps the derived indexes in step with the store
//! (incrementally, per release), caches embeddings in sled, and answers search, normalize,
//! relatedness and similarity queries. Handlers call this; no ranking logic lives in `api/`.
//! This file holds the engine and its query types; its work is split by seam: the catch-up in
//! [`super::catchup`], answering a query with its vector in [`super::ranking`], the embedding
//! cache in [`super::cache`].
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
//! `model` here and in the vector index file names is the model's *vector id*
//! ([`crate::encoder::ModelManifest::vector_id`]): its name when it runs in F32, `name@bf16` when
//! it runs in BF16. A model served in another precision than before thus gets its own cache
//! entries and its own index (built from the store like a new model's), and vectors of two
//! precisions never meet in one index.
//!
//! ## A concept's vector
//! The mean of the embeddings of its equivalent terms (preferred, synonyms, abbreviations,
//! short/consumer/brand names), L2-normalised. Inclusion, narrower and broader terms are left
//! out: they name related but different meanings.

use super::cache::{decode_vector, emb_key};
pub use super::cache::{embed_through_cache, embedding_cache, mean_normalized};
pub use super::error::EngineError;
use super::fusion::FusionMethod;
use super::lexical::LexicalIndex;
use super::serving::{Indexes, ModelVectors, VectorVariant};
use super::vector::{VectorOptions, VectorScalar};
use super::vector_store::{self, Backend, IndexState, VectorConfig, VectorStore};
use super::SearchError;
use crate::encoder::Precision;
use crate::encoder::{ModelKind, Registry};
use crate::store::Store;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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
    /// Return each result's features and their contributions (learned hybrid only).
    pub explain: bool,
    /// Also return concepts their source marks obsolete or inactive (left out by default:
    /// HPO's "obsolete ..." classes, retired codes).
    pub include_inactive: bool,
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
    /// Why it ranks where it does (`explain: true`, learned hybrid only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub explain: Option<Explanation>,
}

pub use super::weights::{Explanation, FeatureContribution};

/// Where the indexes of one terms model live, in any variant (for [`super::serving::choose`]).
struct ModelIndexes<'a> {
    dir: &'a Path,
    pg: Option<&'a Arc<vector_store::postgres::PgClient>>,
    name: &'a str,
    dim: usize,
    /// The configured dtype (Postgres: what its tables hold, `halfvec` = f16).
    dtype: VectorScalar,
}

impl Indexes for ModelIndexes<'_> {
    fn variants(&self) -> Vec<VectorVariant> {
        // Postgres tables are keyed by the vector id alone: one dtype
        let dtypes: &[VectorScalar] = match self.pg {
            None => &VectorScalar::ALL,
            Some(_) => std::slice::from_ref(&self.dtype),
        };
        Precision::ALL
            .into_iter()
            .flat_map(|precision| {
                dtypes
                    .iter()
                    .map(move |&dtype| VectorVariant { precision, dtype })
            })
            .collect()
    }

    fn open(&self, variant: VectorVariant) -> Result<Arc<dyn VectorStore>, EngineError> {
        Ok(match self.pg {
            None => Arc::new(vector_store::usearch::EmbeddedStore::open_with(
                self.dir,
                &variant.index_name(self.name),
                self.dim,
                VectorOptions::for_scalar(variant.dtype),
            )?),
            Some(client) => {
                let vid = crate::encoder::precision::vector_id(self.name, variant.precision);
                let s = vector_store::postgres::PgStore::new(client.clone(), &vid, self.dim);
                if let Err(e) = s.ensure_table() {
                    tracing::error!(error = %e, "vector store unusable at start; lexical search is served, vector search answers 503 until it is back");
                }
                Arc::new(s)
            }
        })
    }

    fn peek(&self, variant: VectorVariant) -> Option<IndexState> {
        match self.pg {
            None => vector_store::usearch::EmbeddedStore::peek_state(
                self.dir,
                &variant.index_name(self.name),
            ),
            Some(client) => {
                let vid = crate::encoder::precision::vector_id(self.name, variant.precision);
                vector_store::postgres::PgStore::new(client.clone(), &vid, self.dim)
                    .state()
                    .ok()
            }
        }
    }
}

/// The engine.
pub struct SearchEngine {
    pub(super) store: Store,
    pub(super) registry: Arc<Registry>,
    pub(super) dir: PathBuf,
    pub(super) lexical: LexicalIndex,
    /// Per terms model, the index searches read and the one catch-ups write ([`super::serving`]).
    pub(super) vectors: RwLock<HashMap<String, ModelVectors>>,
    /// A read-only node never writes a shared vector store (the writer catches it up).
    pub(super) read_only: bool,
    pub(super) emb: sled::Tree,
    /// Serialises catch-ups; taken by background work only (never by a request).
    pub(super) catchup_lock: parking_lot::Mutex<()>,
    /// Per terms model, the learned hybrid's weights fitted on its own scores (its folder's
    /// `fusion_weights.json`); models without one use the shipped weights.
    pub(super) fusion: HashMap<String, super::weights::Weights>,
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
        let mut vectors: HashMap<String, ModelVectors> = HashMap::new();
        let fusion = model_fusion_weights(&registry)?;
        let pg = match &config.backend {
            Backend::Embedded => None,
            Backend::Postgres(url) => {
                Some(vector_store::postgres::PgClient::new(url, config.postgres)?)
            }
        };
        let emb = embedding_cache(&store)?;
        super::identity::reconcile(
            &store,
            &registry,
            &dir.join("vectors"),
            &emb,
            config.read_only,
            pg.is_some(),
        )?;
        let terms = super::serving::active_terms(&store)?;
        let dtype = match &pg {
            None => config.dtype,
            Some(_) if config.postgres.halfvec => VectorScalar::F16,
            Some(_) => VectorScalar::F32,
        };
        for info in registry.list() {
            if info.kind != ModelKind::Terms {
                continue;
            }
            // the vector id: a model served in another precision gets its own store
            let indexes = ModelIndexes {
                dir: &dir.join("vectors"),
                pg: pg.as_ref(),
                name: &info.name,
                dim: info.dim,
                dtype,
            };
            let own_variant = VectorVariant {
                precision: info.precision,
                dtype,
            };
            let own = indexes.open(own_variant)?;
            let v = super::serving::choose(&info.name, own_variant, own, &terms, &indexes)?;
            vectors.insert(info.name.clone(), v);
        }
        Ok(Self {
            store,
            registry,
            dir,
            lexical,
            vectors: RwLock::new(vectors),
            read_only: config.read_only,
            emb,
            catchup_lock: parking_lot::Mutex::new(()),
            fusion,
        })
    }

    /// The learned hybrid's weights for a terms model: the [`super::weights::WEIGHTS_ENV`]
    /// override if set, else the model folder's own, else the shipped ones.
    pub fn fusion_weights(&self, model: Option<&str>) -> &super::weights::Weights {
        if let Some(w) = super::weights::override_weights() {
            return w;
        }
        model
            .and_then(|m| self.fusion.get(m))
            .unwrap_or_else(|| super::weights::shipped_weights())
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

    /// The vector id of a terms model (cache keys and index files; see the module docs).
    pub(super) fn vid(&self, model: &str) -> String {
        self.registry
            .get(Some(model), ModelKind::Terms)
            .map_or_else(|_| model.to_string(), |h| h.manifest().vector_id())
    }

    /// A text's vector from the embedding cache only (no encoder call).
    pub(super) fn cached_vector(
        &self,
        model: &str,
        text: &str,
    ) -> Result<Option<Vec<f32>>, EngineError> {
        Ok(self
            .emb
            .get(emb_key(&self.vid(model), text))?
            .map(|v| decode_vector(&v)))
    }

    /// Embeddings of `texts` with `model`, from the cache where present; computes and stores
    /// the rest (length-sorted batches inside the encoder).
    pub fn embed_cached(&self, model: &str, texts: &[&str]) -> Result<Vec<Vec<f32>>, EngineError> {
        embed_through_cache(
            &self.emb,
            self.store.disk(),
            &self.vid(model),
            texts,
            None,
            |todo| {
                let handle = self.registry.get(Some(model), ModelKind::Terms)?;
                Ok(handle.embed_blocking(todo)?)
            },
        )
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

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }
}

/// Every terms model's own fusion weights, checked; a folder whose file does not fit this
/// build's features stops the open with its name (serving other weights silently would
/// change every hybrid ranking of that model).
fn model_fusion_weights(
    registry: &Registry,
) -> Result<HashMap<String, super::weights::Weights>, EngineError> {
    let mut out = HashMap::new();
    for info in registry.list() {
        if info.kind != ModelKind::Terms || !info.own_fusion_weights {
            continue;
        }
        let handle = registry.get(Some(&info.name), ModelKind::Terms)?;
        if let Some(v) = handle.manifest().fusion.clone() {
            let w = super::weights::Weights::from_json(v).map_err(|e| {
                SearchError::Index(format!(
                    "model {}: {}: {e}",
                    info.name,
                    crate::encoder::manifest::FUSION_FILE
                ))
            })?;
            tracing::info!(model = %info.name, fitted_on = %w.fitted_on, "model's own fusion weights");
            out.insert(info.name.clone(), w);
        }
    }
    Ok(out)
}
