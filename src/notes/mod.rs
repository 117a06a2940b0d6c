//! Clinical notes (NoteContrast): loading, storage, lexical and vector indexes, hybrid note
//! search and ICD coding of notes.
//!
//! * [`ingest`] — `notes-jsonl` and MIMIC-III (`NOTEEVENTS.csv` + `DIAGNOSES_ICD.csv`) loaders;
//! * [`codiesp`] — the CodiEsp layout (`{split}D.tsv` + `text_files_en/*.txt`) loader;
//! * [`windows`] — long notes as overlapping encoder windows, and how they are pooled;
//! * [`segments`] — notes as sentences, list items and header lines: what coding attends over;
//! * abbreviations are spelled out before segments are embedded with the table search uses
//!   for queries ([`crate::search::abbrev`]);
//! * [`negation`] — NegEx-style cue scopes: negated, family and resolved history left unread;
//! * [`rank`] — a coder-like answer: the list diversified across categories, evidence spans;
//! * [`screen`] — submitted text: markup and control characters blanked, language warnings;
//! * [`index`] — tantivy BM25 over note texts;
//! * [`coding`] — the trained coding model's files and ranking;
//! * [`predict`] — ICD coding of one note for a caller: trained model or zero-shot, systems,
//!   threshold;
//! * [`query`] — note search for a caller: the query embedded (admitted) when the mode needs it;
//! * [`synth`] — the synthetic corpus generator (`ontovec synth-notes`).
//!
//! Notes live in their own sled trees ([`crate::store::notes`]). Derived state lives under
//! `<data-dir>/indexes/notes/`: `lexical/` (tantivy; its commit records the next nid it holds)
//! and `<model>.usearch` (note vectors keyed by nid; its saved sequence is the next nid it
//! holds). [`Notes::sync`] appends what the store has beyond that, so restarts and new loads
//! only index new notes.
//!
//! ## Catch-up never blocks requests
//! [`Notes::sync`] runs on background threads only (the indexer, ingest jobs, `reindex`): no
//! request path calls it. It works in batches — [`LEXICAL_BATCH`] notes per tantivy commit,
//! [`VECTOR_BATCH`] notes per encoder submission and vector upsert — and between batches it
//! publishes how far it got ([`Notes::indexed_next`]), checks for cancellation (shutdown) and
//! saves the vector index at least every [`SAVE_EVERY`], always when it stops: a restart goes on
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
pub mod screen;
pub mod segments;
pub mod synth;
pub mod windows;

use crate::encoder::tokenize::TextTokenizer;
use crate::encoder::{EncoderError, EngineHandle, ModelKind, Registry};
use crate::search::fusion::{fuse, FusionMethod};
use crate::search::{Hit, SearchError, VectorIndex};
use crate::store::notes::{NoteStore, StoredNote};
use crate::store::{Store, StoreError};
use crate::util::progress::Progress;
use coding::CodingModel;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
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

/// Notes per tantivy commit during catch-up.
pub const LEXICAL_BATCH: usize = 512;
/// Notes per encoder submission and vector upsert during catch-up.
pub const VECTOR_BATCH: usize = 16;
/// Longest time between two saves of a note vector index during catch-up.
pub const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A note model's vector index and the catch-up watermark: every nid below `next` is in it.
struct NoteVectors {
    index: Arc<VectorIndex>,
    next: std::sync::atomic::AtomicU64,
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
    vectors: Mutex<HashMap<String, Arc<NoteVectors>>>,
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

    fn vector_index(&self, model: &str) -> Result<Arc<VectorIndex>, NotesError> {
        Ok(self.note_vectors(model)?.index.clone())
    }

    fn note_vectors(&self, model: &str) -> Result<Arc<NoteVectors>, NotesError> {
        if let Some(v) = self.vectors.lock().get(model) {
            return Ok(v.clone());
        }
        let dim = self
            .coders
            .get(model)
            .map_or_else(|| self.handle(model).map(|h| h.dim()), |c| Ok(c.dim()))?;
        let index = Arc::new(VectorIndex::open_or_create(
            &self.dir.join(format!("{model}.usearch")),
            dim,
        )?);
        let next = index.seq().into();
        let v = Arc::new(NoteVectors { index, next });
        Ok(self
            .vectors
            .lock()
            .entry(model.to_string())
            .or_insert(v)
            .clone())
    }

    /// One past the highest nid that both indexes (lexical, and the note model's vectors when
    /// a model is served) hold: a note with a smaller nid is found by note search.
    pub fn indexed_next(&self) -> Result<u64, NotesError> {
        let lexical = self.lexical.next_nid();
        Ok(match self.note_model() {
            Some(m) => lexical.min(self.note_vectors(&m)?.next.load(Ordering::SeqCst)),
            None => lexical,
        })
    }

    /// Notes the store holds that the indexes do not yet (0 when caught up).
    pub fn behind(&self) -> Result<u64, NotesError> {
        let next = self.store.next_nid()?;
        Ok(next.saturating_sub(self.indexed_next()?))
    }

    /// Index notes the store has beyond what the indexes hold (lexical, then vectors with the
    /// note model), batch by batch (see the module docs). Returns early, with its progress
    /// saved, when `progress` is cancelled. Background threads only: it holds the catch-up
    /// lock for its whole run.
    pub fn sync(&self, progress: Option<&Progress>) -> Result<(), NotesError> {
        let _g = self.catchup_lock.lock();
        let cancelled = || progress.is_some_and(|p| p.is_cancelled());
        let next = self.store.next_nid()?;
        if self.lexical.next_nid() > next {
            tracing::warn!("notes lexical index is ahead of the store; rebuilding");
            self.lexical.clear()?;
        }
        let from = self.lexical.next_nid();
        if from < next {
            if let Some(p) = progress {
                p.phase("indexing notes (lexical)", next - from);
            }
            let mut pending = 0;
            let mut last = from;
            for n in self.store.iter_from(from) {
                let n = n?;
                if n.nid >= next {
                    break;
                }
                self.lexical.add(n.nid, &n.note.text)?;
                last = n.nid + 1;
                pending += 1;
                if pending >= LEXICAL_BATCH {
                    self.lexical.commit(last)?;
                    if let Some(p) = progress {
                        p.add_done(pending as u64);
                    }
                    pending = 0;
                    if cancelled() {
                        return Ok(());
                    }
                }
            }
            self.lexical.commit(next.max(last))?;
            if let Some(p) = progress {
                p.add_done(pending as u64);
            }
        }
        let Some(model) = self.note_model() else {
            return Ok(());
        };
        let nv = self.note_vectors(&model)?;
        let index = &nv.index;
        let mut from = nv.next.load(Ordering::SeqCst);
        if from > next {
            index.remove_range(0..u64::MAX)?;
            from = 0;
            nv.next.store(0, Ordering::SeqCst);
        }
        if from >= next || cancelled() {
            return Ok(());
        }
        if let Some(p) = progress {
            p.phase(&format!("embedding notes with {model}"), next - from);
        }
        if from > 0 {
            tracing::info!(model = %model, from, to = next, "resuming note embedding");
        }
        let started = std::time::Instant::now();
        let mut last_save = started;
        let mut done = 0u64;
        let mut batch: Vec<StoredNote> = Vec::with_capacity(VECTOR_BATCH);
        let mut notes = self.store.iter_from(from);
        let mut more = true;
        while more {
            batch.clear();
            while batch.len() < VECTOR_BATCH {
                match notes.next().transpose()? {
                    Some(n) if n.nid < next => batch.push(n),
                    _ => {
                        more = false;
                        break;
                    }
                }
            }
            let Some(last) = batch.last().map(|n| n.nid) else {
                break;
            };
            let texts: Vec<&str> = batch.iter().map(|n| n.note.text.as_str()).collect();
            let vecs = match self.embed_many_blocking(&model, &texts, progress) {
                // shutdown: keep what the earlier batches did (saved below)
                Err(_) if cancelled() => break,
                r => r?,
            };
            let items: Vec<(u64, Vec<f32>)> = batch.iter().map(|n| n.nid).zip(vecs).collect();
            index.upsert(&items)?;
            nv.next.store(last + 1, Ordering::SeqCst);
            done += items.len() as u64;
            if let Some(p) = progress {
                p.add_done(items.len() as u64);
            }
            if cancelled() {
                break;
            }
            if last_save.elapsed() >= SAVE_EVERY {
                index.save(last + 1)?;
                last_save = std::time::Instant::now();
            }
        }
        let upto = nv.next.load(Ordering::SeqCst);
        index.save(upto)?;
        tracing::info!(
            notes = done,
            upto,
            of = next,
            secs = format!("{:.1}", started.elapsed().as_secs_f64()),
            "embedded notes"
        );
        Ok(())
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
