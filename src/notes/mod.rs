//! Clinical notes (NoteContrast): loading, storage, lexical and vector indexes, hybrid note
//! search and ICD coding of notes.
//!
//! * [`ingest`] — `notes-jsonl` and MIMIC-III (`NOTEEVENTS.csv` + `DIAGNOSES_ICD.csv`) loaders;
//! * [`record`] — what a valid note is: limits, id/text checks, code normalisation;
//! * [`codiesp`] — the CodiEsp layout (`{split}D.tsv` + `text_files_en/*.txt`) loader;
//! * [`windows`] — long notes as overlapping encoder windows, and how they are pooled;
//! * [`segments`] — notes as sentences, list items and header lines: what coding attends over;
//! * abbreviations are spelled out before segments are embedded with the table search uses
//!   for queries ([`crate::search::abbrev`]);
//! * [`negation`] — NegEx-style cue scopes: negated, family and resolved history left unread;
//! * [`rank`] — a coder-like answer: the list diversified across categories, evidence spans;
//! * [`screen`] — submitted text: markup and control characters blanked, language warnings;
//! * [`index`] — tantivy BM25 over note texts;
//! * [`sync`] — the catch-up that brings the note indexes up to the store;
//! * [`coding`] — the trained coding model's files and ranking;
//! * [`predict`] — ICD coding of one note for a caller: trained model or zero-shot, systems,
//!   threshold;
//! * [`query`] — note search for a caller: the query embedded (admitted) when the mode needs it;
//! * [`synth`] — the synthetic corpus generator (`ontovec synth-notes`).
//!
//! Notes live in their own sled trees ([`crate::store::notes`]). Derived state lives under
//! `<data-dir>/indexes/notes/`: `lexical/` (tantivy; its commit records the next nid it holds)
//! and `<model>.usearch` (note vectors keyed by nid; its saved sequence is the next nid it
//! holds; `<model>` is the model's vector id, so a precision change gets its own index). [`Notes::sync`] appends what the store has beyond that, so restarts and new loads
//! only index new notes.
//!
//! ## Catch-up never blocks requests
//! [`Notes::sync`] runs on background threads only (the indexer, ingest jobs, `reindex`): no
//! request path calls it. It works in batches — [`sync::LEXICAL_BATCH`] notes per tantivy commit,
//! [`sync::VECTOR_BATCH`] notes per encoder submission and vector upsert — and between batches it
//! publishes how far it got ([`Notes::indexed_next`]), checks for cancellation (shutdown) and
//! saves the vector index at least every [`sync::SAVE_EVERY`], always when it stops: a restart goes on
//! from the last saved note, never re-embedding what was saved. Searches read the last commit
//! of the lexical index and the vectors upserted so far; `POST /v1/notes` only stores the note
//! (durable) and wakes the indexer.
//!
//! The note encoder is the default `notes` model when one is served (a NoteContrast model:
//! window pooling then its learned projection), else the default `terms` model (window pooling
//! only: the untrained baseline).

pub mod codiesp;
pub mod coding;
pub mod index;
pub mod ingest;
pub mod negation;
pub mod predict;
pub mod query;
pub mod rank;
pub mod record;
pub mod screen;
pub mod segments;
pub mod sync;
pub mod synth;
pub mod windows;

use crate::encoder::tokenize::TextTokenizer;
use crate::encoder::{EncoderError, EngineHandle, ModelKind, Registry};
use crate::search::fusion::{fuse, FusionMethod};
use crate::search::{Hit, SearchError};
use crate::store::notes::{NoteStore, StoredNote};
use crate::store::{Store, StoreError};
use crate::util::progress::Progress;
use coding::CodingModel;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use windows::WindowConfig;

/// Failures of note operations (mapped to HTTP in `api/error.rs`).
#[derive(Debug, thiserror::Error)]
pub enum NotesError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An index failed.
    #[error(transparent)]
    Search(#[from] SearchError),
    /// The encoder failed or is overloaded.
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    /// No model can encode notes.
    #[error("no notes or terms model is loaded")]
    NoModel,
    /// A model folder's coding files are unreadable.
    #[error("coding model: {0}")]
    Model(String),
    /// Bad request content (e.g. a vector search with no note encoder).
    #[error("{0}")]
    Invalid(String),
    /// The coding model has no codes of the system asked for.
    #[error("{message}")]
    UnknownSystem {
        /// The system asked for.
        system: String,
        /// What the model codes instead.
        message: String,
    },
    /// Zero-shot coding found no ICD system loaded.
    #[error("no ICD system is loaded; ingest ICD-10-CM or ICD-9-CM first")]
    NoIcdSystem,
    /// A well-formed note with nothing to read: no letter or digit outside markup and control
    /// characters.
    #[error("{0}")]
    NothingToCode(String),
    /// Ranking code names (zero-shot coding) failed.
    #[error(transparent)]
    Engine(#[from] crate::search::engine::EngineError),
    /// A blocking-pool task failed (a panic; never expected).
    #[error("notes worker failed: {0}")]
    Worker(String),
}

/// A note found by search.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct NoteHit {
    /// Note id.
    pub id: String,
    /// Fused score (weighted min-max of BM25 and cosine), or the single side's score.
    pub score: f32,
    /// `weighted` (hybrid), `bm25` or `cosine`.
    pub score_kind: String,
    /// Up to ~240 characters of the note around the first query word found.
    pub snippet: String,
}

/// A note embedded for coding.
#[derive(Debug, Clone)]
pub struct EmbeddedNote {
    /// The (projected) pooled note vector.
    pub pooled: Vec<f32>,
    /// Unit segment vectors (empty when the model does not read segments).
    pub segments: Vec<Vec<f32>>,
    /// Byte range of each segment in the note text.
    pub spans: Vec<std::ops::Range<usize>>,
}

/// The notes subsystem of a running instance.
pub struct Notes {
    /// The notes trees.
    pub store: NoteStore,
    registry: Arc<Registry>,
    models_dir: PathBuf,
    dir: PathBuf,
    lexical: index::NotesLexical,
    vectors: Mutex<HashMap<String, Arc<sync::NoteVectors>>>,
    coders: HashMap<String, Arc<CodingModel>>,
    tokenizers: Mutex<HashMap<String, Arc<TextTokenizer>>>,
    /// Serialises catch-ups; taken by background work only (never by a request).
    catchup_lock: Mutex<()>,
}

impl Notes {
    /// Open the notes trees and indexes, and the coding files of every served notes model.
    pub fn open(
        store: &Store,
        registry: Arc<Registry>,
        models_dir: &Path,
        data_dir: &Path,
    ) -> Result<Self, NotesError> {
        let dir = data_dir.join("indexes").join("notes");
        std::fs::create_dir_all(&dir).map_err(SearchError::Io)?;
        let lexical = match index::NotesLexical::open(&dir.join("lexical")) {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "notes lexical index unusable; rebuilding");
                let _ = std::fs::remove_dir_all(dir.join("lexical"));
                index::NotesLexical::open(&dir.join("lexical"))?
            }
        };
        let mut coders = HashMap::new();
        for info in registry.list() {
            if info.kind == ModelKind::Notes {
                if let Some(c) =
                    CodingModel::load(&models_dir.join(&info.name)).map_err(NotesError::Model)?
                {
                    tracing::info!(model = %info.name, codes = c.codes().len(), "loaded coding model");
                    coders.insert(info.name.clone(), Arc::new(c));
                }
            }
        }
        Ok(Self {
            store: NoteStore::open(store)?,
            registry,
            models_dir: models_dir.to_path_buf(),
            dir,
            lexical,
            vectors: Mutex::new(HashMap::new()),
            coders,
            tokenizers: Mutex::new(HashMap::new()),
            catchup_lock: Mutex::new(()),
        })
    }

    /// The model that encodes notes: the default `notes` model, else the default `terms` model.
    pub fn note_model(&self) -> Option<String> {
        self.registry
            .default_name(ModelKind::Notes)
            .or_else(|| self.registry.default_name(ModelKind::Terms))
            .map(str::to_string)
    }

    /// The coding model of the note model, if it is a trained NoteContrast model.
    pub fn coder(&self) -> Option<(String, Arc<CodingModel>)> {
        let m = self.note_model()?;
        self.coders.get(&m).map(|c| (m, c.clone()))
    }

    fn handle(&self, model: &str) -> Result<&EngineHandle, NotesError> {
        Ok(self.registry.get(Some(model), ModelKind::Notes)?)
    }

    fn window_config(&self, model: &str) -> Result<WindowConfig, NotesError> {
        if let Some(c) = self.coders.get(model) {
            return Ok(c.manifest.window);
        }
        Ok(WindowConfig::for_max_len(
            self.handle(model)?.manifest().max_len,
        ))
    }

    fn long_tokenizer(&self, model: &str) -> Result<Arc<TextTokenizer>, NotesError> {
        if let Some(t) = self.tokenizers.lock().get(model) {
            return Ok(t.clone());
        }
        let t = Arc::new(TextTokenizer::load(&self.models_dir.join(model), 1 << 22)?);
        self.tokenizers.lock().insert(model.to_string(), t.clone());
        Ok(t)
    }

    /// The windows of a text for `model` (token ids with specials, body sizes).
    fn windows(&self, model: &str, text: &str) -> Result<Vec<windows::Window>, NotesError> {
        let ids = self.long_tokenizer(model)?.encode(text)?;
        let (w, _cut) = windows::split(&ids, &self.window_config(model)?);
        Ok(w)
    }

    fn finish(&self, model: &str, vecs: &[Vec<f32>], w: &[windows::Window]) -> Vec<f32> {
        let weights: Vec<usize> = w.iter().map(|x| x.body).collect();
        let pooled = windows::pool(vecs, &weights);
        match self.coders.get(model) {
            Some(c) => c.project(&pooled),
            None => pooled,
        }
    }

    /// Embed a note (or a query) from synchronous code, waiting for queue room (bulk priority).
    pub fn embed_blocking(&self, model: &str, text: &str) -> Result<Vec<f32>, NotesError> {
        Ok(self.embed_many_blocking(model, &[text], None)?.remove(0))
    }

    /// Embed notes from synchronous code in one bulk encoder submission (their windows are
    /// batched together), one vector per note. Gives up with [`EncoderError::Cancelled`] soon
    /// after `progress` is cancelled (see [`EngineHandle::embed_blocking_until`]).
    pub fn embed_many_blocking(
        &self,
        model: &str,
        texts: &[&str],
        progress: Option<&Progress>,
    ) -> Result<Vec<Vec<f32>>, NotesError> {
        let mut wins = Vec::with_capacity(texts.len());
        for t in texts {
            wins.push(self.windows(model, t)?);
        }
        let ids: Vec<Vec<u32>> = wins.iter().flatten().map(|x| x.ids.clone()).collect();
        let mut vecs = self
            .handle(model)?
            .embed_ids_blocking_until(ids, progress)?
            .into_iter();
        Ok(wins
            .iter()
            .map(|w| {
                let v: Vec<Vec<f32>> = vecs.by_ref().take(w.len()).collect();
                self.finish(model, &v, w)
            })
            .collect())
    }

    /// Embed a note (or a query) from async code; 429 when the encoder queue is full.
    pub async fn embed(&self, model: &str, text: String) -> Result<Vec<f32>, NotesError> {
        Ok(self.embed_parts(model, text, None).await?.pooled)
    }

    /// Embed short texts (code names) from async code in one submission, as notes are (window
    /// pooling, then the model's projection); 429 when the encoder queue is full.
    pub async fn embed_texts(
        &self,
        model: &str,
        texts: Vec<String>,
    ) -> Result<Vec<Vec<f32>>, NotesError> {
        let tok = self.long_tokenizer(model)?;
        let cfg = self.window_config(model)?;
        let ws = tokio::task::spawn_blocking(move || -> Result<_, EncoderError> {
            texts
                .iter()
                .map(|t| Ok(windows::split(&tok.encode(t)?, &cfg).0))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
        .map_err(|e| EncoderError::Inference(format!("tokenizer task failed: {e}")))??;
        let ids: Vec<Vec<u32>> = ws.iter().flatten().map(|w| w.ids.clone()).collect();
        let rx = self.handle(model)?.try_submit(ids)?;
        let vecs = rx
            .await
            .map_err(|_| EncoderError::Inference("encoder stopped".into()))??;
        let mut out = Vec::with_capacity(ws.len());
        let mut at = 0;
        for w in &ws {
            out.push(self.finish(model, &vecs[at..at + w.len()], w));
            at += w.len();
        }
        Ok(out)
    }

    /// Embed a note for coding: its (projected) note vector and, when the model's coder scores
    /// codes over segments ([`segments`]), the unit vectors of its segments with their byte
    /// ranges in `text` — one encoder submission for both; 429 when the encoder queue is full.
    /// `seg_cfg` overrides the coder's segment settings (zero-shot coding reads segments too).
    pub async fn embed_for_coding(
        &self,
        model: &str,
        text: String,
        seg_cfg: Option<segments::SegmentConfig>,
    ) -> Result<EmbeddedNote, NotesError> {
        let seg_cfg = seg_cfg.or_else(|| self.coders.get(model).and_then(|c| c.segment_config()));
        self.embed_parts(model, text, seg_cfg).await
    }

    /// The note vector of `text` and, with `seg_cfg`, its segment vectors and spans (tokenised
    /// off the async threads, embedded in one submission).
    async fn embed_parts(
        &self,
        model: &str,
        text: String,
        seg_cfg: Option<segments::SegmentConfig>,
    ) -> Result<EmbeddedNote, NotesError> {
        let tok = self.long_tokenizer(model)?;
        let cfg = self.window_config(model)?;
        let (w, segs) = tokio::task::spawn_blocking(move || -> Result<_, EncoderError> {
            let ids = tok.encode(&text)?;
            let (w, _) = windows::split(&ids, &cfg);
            let segs = match seg_cfg {
                Some(sc) => segments::split_spans(&text, &tok, &sc)?.0,
                None => Vec::new(),
            };
            Ok((w, segs))
        })
        .await
        .map_err(|e| EncoderError::Inference(format!("tokenizer task failed: {e}")))??;
        let h = self.handle(model)?;
        let ids: Vec<Vec<u32>> = w
            .iter()
            .chain(segs.iter().map(|s| &s.window))
            .map(|x| x.ids.clone())
            .collect();
        let rx = h.try_submit(ids)?;
        let mut vecs = rx
            .await
            .map_err(|_| EncoderError::Inference("encoder stopped".into()))??;
        let seg_vecs = vecs.split_off(w.len());
        Ok(EmbeddedNote {
            pooled: self.finish(model, &vecs, &w),
            segments: seg_vecs,
            spans: segs.into_iter().map(|s| s.span).collect(),
        })
    }

    /// Hybrid search over notes: BM25 and (when `qvec` is given) cosine, fused.
    /// An empty `lexical_query` skips the lexical side; `query` picks the snippets.
    pub fn search(
        &self,
        lexical_query: &str,
        query: &str,
        k: usize,
        qvec: Option<&[f32]>,
    ) -> Result<Vec<NoteHit>, NotesError> {
        let fetch = (k * 4).clamp(50, 1000);
        let lexical = if lexical_query.is_empty() {
            Vec::new()
        } else {
            self.lexical.search(lexical_query, fetch)?
        };
        let vector: Vec<Hit> = match (qvec, self.note_model()) {
            (Some(v), Some(m)) => {
                let idx = self.vector_index(&m)?;
                if idx.is_empty() {
                    Vec::new()
                } else {
                    idx.search(v, fetch, None)?
                }
            }
            _ => Vec::new(),
        };
        let kind = match (lexical.is_empty(), vector.is_empty()) {
            (false, true) => "bm25",
            (true, false) => "cosine",
            _ => "weighted",
        };
        let fused = fuse(
            &lexical,
            &vector,
            FusionMethod::Weighted { alpha: 0.5 },
            fetch,
        );
        let raw: HashMap<u64, f32> = match kind {
            "bm25" => lexical.iter().map(|h| (h.term_id, h.score)).collect(),
            "cosine" => vector.iter().map(|h| (h.term_id, h.score)).collect(),
            _ => HashMap::new(),
        };
        let mut out = Vec::with_capacity(k);
        for h in fused.into_iter().take(k) {
            let Some(StoredNote { note, .. }) = self.store.get_nid(h.term_id)? else {
                continue;
            };
            out.push(NoteHit {
                snippet: snippet(&note.text, query),
                id: note.id,
                score: raw.get(&h.term_id).copied().unwrap_or(h.score),
                score_kind: kind.to_string(),
            });
        }
        Ok(out)
    }
}

/// Up to ~240 characters of `text` around the first word of `query` it contains.
pub fn snippet(text: &str, query: &str) -> String {
    let lower = text.to_lowercase();
    let pos = query
        .split_whitespace()
        .filter(|w| w.len() >= 3)
        .filter_map(|w| lower.find(&w.to_lowercase()))
        .min()
        .unwrap_or(0);
    // `lower` can differ in byte length from `text` for some scripts: clamp to a boundary.
    let mut start = pos.saturating_sub(80).min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + 240).min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let s = text[start..end]
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let mut out = String::new();
    if start > 0 {
        out.push('…');
    }
    out.push_str(&s);
    if end < text.len() {
        out.push('…');
    }
    out
}
