//! The catch-up of the note indexes ([`Notes::sync`]): the lexical index, then the note
//! model's vectors, appended from the store beyond what each holds, batch by batch, with
//! progress published between batches and saved at least every [`SAVE_EVERY`] (see the module
//! docs of [`crate::notes`]). Background threads only.

use super::{Notes, NotesError};
use crate::search::VectorIndex;
use crate::store::notes::StoredNote;
use crate::util::progress::Progress;
use std::sync::atomic::Ordering;
use std::sync::Arc;

/// Notes per tantivy commit during catch-up.
pub const LEXICAL_BATCH: usize = 512;
/// Notes per encoder submission and vector upsert during catch-up.
pub const VECTOR_BATCH: usize = 16;
/// Longest time between two saves of a note vector index during catch-up.
pub const SAVE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// A note model's vector index and the catch-up watermark: every nid below `next` is in it.
pub(super) struct NoteVectors {
    pub(super) index: Arc<VectorIndex>,
    pub(super) next: std::sync::atomic::AtomicU64,
}

impl Notes {
    pub(super) fn vector_index(&self, model: &str) -> Result<Arc<VectorIndex>, NotesError> {
        Ok(self.note_vectors(model)?.index.clone())
    }

    pub(super) fn note_vectors(&self, model: &str) -> Result<Arc<NoteVectors>, NotesError> {
        if let Some(v) = self.vectors.lock().get(model) {
            return Ok(v.clone());
        }
        let dim = self
            .coders
            .get(model)
            .map_or_else(|| self.handle(model).map(|h| h.dim()), |c| Ok(c.dim()))?;
        // the vector id: a note model served in another precision gets its own index
        let vid = self
            .handle(model)
            .map_or_else(|_| model.to_string(), |h| h.manifest().vector_id());
        let index = Arc::new(VectorIndex::open_or_create(
            &self.dir.join(format!("{vid}.usearch")),
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
        let next = self.store.visible_next()?;
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
}
