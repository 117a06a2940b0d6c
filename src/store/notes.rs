//! Clinical notes in the store (NoteContrast): their own sled trees, kept apart from the
//! terminology releases.
//!
//! ## Layout
//! | tree            | key              | value                                   |
//! |-----------------|------------------|-----------------------------------------|
//! | `notes`         | note id (UTF-8)  | [`StoredNote`] (bincode)                 |
//! | `note_nids`     | nid (u64 BE)     | note id                                 |
//! | `notes_meta`    | `next_nid`, `seq`, `committing` | u64 BE                    |
//! | `notes_meta`    | `job/<job id>`   | notes the job's batch committed (u64 BE) |
//! | `notes_staging` | note id          | [`StoredNote`] of the batch being loaded |
//!
//! Every note gets a dense, monotonic number (`nid`): the derived indexes (tantivy, usearch) key
//! notes by it, and catch up by reading `note_nids` from the last nid they hold.
//!
//! ## All or nothing
//! A load streams its notes into `notes_staging` (bounded memory; duplicate ids within the batch
//! and ids already stored are refused there, so the caller can name the file and line). Nothing
//! of it is visible until [`NoteBatch::commit`]: it writes the `committing` marker (its value is
//! 1 + how far the staged nids move: single notes may have taken nids while the load parsed)
//! and flushes, moves the staged notes into `notes`/`note_nids` in sled batches, bumps `seq`,
//! removes the marker and flushes again.
//!
//! ## Locks
//! Loads run one at a time (`load`, held by a [`NoteBatch`] for the whole load). Writes to the
//! visible trees take `write` only for short steps whose cost does not grow with a load: a
//! single [`NoteStore::insert`] (one sled transaction and a flush), and the two ends of a load's
//! commit — the start (check the ids posted while the load ran, reserve the batch's nids by
//! raising `next_nid` past them, write the marker, flush) and the end (bump `seq`, remove the
//! marker, flush). The move in between runs without `write`, so `POST /v1/notes` never waits
//! for a bulk load, neither its parsing nor its commit; a posted id that is staged in the
//! committing batch gets 409 like a stored one.
//!
//! While a commit moves its notes, [`NoteStore::visible_next`] stays at the batch's first nid:
//! index catch-up reads notes below it only, so a single note posted meanwhile (whose nid lies
//! past the batch) is indexed after the batch, never before notes with smaller nids that are
//! still being moved. A crash before the marker leaves only staging rows, which
//! [`NoteStore::open`] drops; a crash after it is rolled forward at open. A batch dropped without
//! commit (a parse error) clears its staging rows. Notes are append-only: an id cannot be loaded
//! twice (409 over HTTP), so indexes never need deletions.

use super::{decode, encode, keys, Store, StoreError, StoreResult};
use crate::domain::model::ConceptRef;
use parking_lot::{Mutex, MutexGuard};
use serde::{Deserialize, Serialize};
use sled::Transactional;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Longest note id, in characters (Unicode scalar values, as JSON Schema counts).
pub const MAX_ID_CHARS: usize = 256;

/// A note as loaded or posted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Note {
    /// Caller's id (unique in the store).
    pub id: String,
    /// The note text.
    pub text: String,
    /// Codes assigned to the note, in order (time / sequence number).
    pub codes: Vec<ConceptRef>,
    /// Free-form metadata as a JSON object text (`patient`, `time`, `category`, ...).
    pub meta_json: String,
}

impl Note {
    /// Metadata as JSON (an empty object when absent or unreadable).
    pub fn meta(&self) -> serde_json::Value {
        serde_json::from_str(&self.meta_json)
            .unwrap_or_else(|_| serde_json::Value::Object(Default::default()))
    }
}

/// A stored note: the note and its number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredNote {
    /// Dense, monotonic note number (index key).
    pub nid: u64,
    /// The note.
    pub note: Note,
}

/// Why a note could not be added to a batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteConflict {
    /// The id appears twice in the same load.
    #[error("note id '{0}' appears twice in this load")]
    DuplicateInBatch(String),
    /// The id is already stored.
    #[error("a note with id '{0}' already exists")]
    Exists(String),
}

/// The notes trees of a store. Cheap to clone.
#[derive(Clone)]
pub struct NoteStore {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    notes: sled::Tree,
    nids: sled::Tree,
    meta: sled::Tree,
    staging: sled::Tree,
    /// The store's free-space reserve, checked before every note is written.
    disk: super::disk::DiskGuard,
    /// One bulk load at a time (held for the whole load).
    load: Mutex<()>,
    /// Short writes to the visible trees (a single insert, the two ends of a load's commit).
    write: Mutex<()>,
    /// Ids of single inserts since the running load began (its commit checks them against
    /// its staged ids; cleared by [`NoteStore::begin`]).
    posted_during_load: Mutex<Vec<Vec<u8>>>,
    /// First nid of the batch a commit is moving (`u64::MAX` when none): notes from it on are
    /// not visible to index catch-up yet.
    moving_from: AtomicU64,
}

const NEXT_NID: &str = "next_nid";
const SEQ: &str = "seq";
const COMMITTING: &str = "committing";
/// The notes meta tree's name.
const META_TREE: &str = "notes_meta";

/// A failed notes transaction (`what` names it) as a store error.
fn tx_error(what: &'static str) -> impl Fn(sled::transaction::TransactionError<()>) -> StoreError {
    move |e| match e {
        sled::transaction::TransactionError::Storage(e) => StoreError::Sled(e),
        sled::transaction::TransactionError::Abort(()) => {
            StoreError::Aborted(format!("{what} aborted"))
        }
    }
}

/// About what storing `note` writes (its text and id, twice: the note and its staging or
/// nid row), for the free-space check.
fn note_bytes(note: &Note) -> u64 {
    2 * (note.text.len() + note.id.len()) as u64 + 256
}

fn read_meta(tree: &sled::Tree, key: &str) -> StoreResult<u64> {
    Ok(tree.get(key)?.map(|v| keys::read_u64(&v)).unwrap_or(0))
}

impl NoteStore {
    /// Open the notes trees of `store`, rolling a commit that a crash interrupted forward and
    /// dropping staging rows of a load that never committed.
    pub fn open(store: &Store) -> StoreResult<Self> {
        let db = store.db().clone();
        let inner = Inner {
            notes: db.open_tree("notes")?,
            nids: db.open_tree("note_nids")?,
            meta: db.open_tree(META_TREE)?,
            staging: db.open_tree("notes_staging")?,
            disk: store.disk().clone(),
            load: Mutex::new(()),
            write: Mutex::new(()),
            posted_during_load: Mutex::new(Vec::new()),
            moving_from: AtomicU64::new(u64::MAX),
            db,
        };
        let s = NoteStore {
            inner: Arc::new(inner),
        };
        if s.inner.meta.get(COMMITTING)?.is_some() {
            tracing::info!("rolling an interrupted notes commit forward");
            s.move_staged()?;
        } else if !s.inner.staging.is_empty() {
            tracing::info!("dropping notes of a load that never committed");
            s.inner.staging.clear()?;
            s.inner.db.flush()?;
        }
        Ok(s)
    }

    /// Number of stored notes.
    pub fn len(&self) -> usize {
        self.inner.notes.len()
    }

    /// Whether no note is stored.
    pub fn is_empty(&self) -> bool {
        self.inner.notes.is_empty()
    }

    /// Bumped by every commit; derived indexes record the value they reflect.
    pub fn seq(&self) -> StoreResult<u64> {
        read_meta(&self.inner.meta, SEQ)
    }

    /// The nid the next note will get (= one past the highest nid stored).
    pub fn next_nid(&self) -> StoreResult<u64> {
        read_meta(&self.inner.meta, NEXT_NID)
    }

    /// A note by id.
    pub fn get(&self, id: &str) -> StoreResult<Option<StoredNote>> {
        match self.inner.notes.get(id.as_bytes())? {
            Some(v) => Ok(Some(decode("notes", &v)?)),
            None => Ok(None),
        }
    }

    /// A note by number.
    pub fn get_nid(&self, nid: u64) -> StoreResult<Option<StoredNote>> {
        match self.inner.nids.get(nid.to_be_bytes())? {
            Some(id) => match self.inner.notes.get(&id)? {
                Some(v) => Ok(Some(decode("notes", &v)?)),
                None => Ok(None),
            },
            None => Ok(None),
        }
    }

    /// Stored notes with `nid >= from`, in nid order.
    pub fn iter_from(&self, from: u64) -> impl Iterator<Item = StoreResult<StoredNote>> + '_ {
        self.inner.nids.range(from.to_be_bytes()..).map(move |kv| {
            let (_, id) = kv?;
            let v = self
                .inner
                .notes
                .get(&id)?
                .ok_or_else(|| StoreError::Corrupt {
                    tree: "note_nids",
                    message: format!(
                        "nid points at missing note {}",
                        String::from_utf8_lossy(&id)
                    ),
                })?;
            decode("notes", &v)
        })
    }

    /// Start a load. Loads run one at a time; the batch holds the load lock (single inserts do
    /// not take it).
    pub fn begin(&self) -> StoreResult<NoteBatch<'_>> {
        let guard = self.inner.load.lock();
        self.inner.staging.clear()?;
        self.inner.posted_during_load.lock().clear();
        let next = self.next_nid()?;
        Ok(NoteBatch {
            store: self,
            _guard: guard,
            first_nid: next,
            next_nid: next,
            added: 0,
            job: None,
            committed: false,
        })
    }

    /// How many notes job `job` committed, if its batch reached its commit marker (written in
    /// the marker's transaction: true exactly when the batch is kept, rolled forward or not).
    pub fn committed_job(store: &Store, job: &str) -> StoreResult<Option<u64>> {
        let meta = store.db().open_tree(META_TREE)?;
        Ok(meta.get(super::job_key(job))?.map(|v| keys::read_u64(&v)))
    }

    /// Insert one note: one sled transaction over the notes, nid and meta trees, flushed
    /// (durable when this returns). Holds the write lock for that step only.
    pub fn insert(&self, note: Note) -> Result<StoredNote, InsertError> {
        let i = &self.inner;
        i.disk.ensure(note_bytes(&note))?;
        let _w = i.write.lock();
        let staged_now = i.moving_from.load(Ordering::SeqCst) != u64::MAX
            && i.staging.contains_key(note.id.as_bytes())?;
        if staged_now || i.notes.contains_key(note.id.as_bytes())? {
            return Err(NoteConflict::Exists(note.id).into());
        }
        let nid = self.next_nid()?;
        let seq = self.seq()? + 1;
        let stored = StoredNote { nid, note };
        let value = encode(&stored);
        let id = stored.note.id.as_bytes().to_vec();
        (&i.notes, &i.nids, &i.meta)
            .transaction(|(notes, nids, meta)| {
                notes.insert(id.as_slice(), value.as_slice())?;
                nids.insert(&nid.to_be_bytes(), id.as_slice())?;
                meta.insert(NEXT_NID, &(nid + 1).to_be_bytes())?;
                meta.insert(SEQ, &seq.to_be_bytes())?;
                Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
            })
            .map_err(tx_error("note insert"))?;
        i.db.flush()?;
        if i.load.is_locked() {
            i.posted_during_load.lock().push(id);
        }
        Ok(stored)
    }

    /// One past the highest nid index catch-up may read: [`Self::next_nid`], except while a
    /// load's commit moves its notes (then the batch's first nid; see the module docs).
    pub fn visible_next(&self) -> StoreResult<u64> {
        Ok(self
            .next_nid()?
            .min(self.inner.moving_from.load(Ordering::SeqCst)))
    }

    /// Move the staged notes into the visible trees, their nids raised by the `committing`
    /// marker's offset. Takes the write lock only for the final step (`seq`, the marker).
    fn move_staged(&self) -> StoreResult<()> {
        let i = &self.inner;
        let shift = read_meta(&i.meta, COMMITTING)?.saturating_sub(1);
        let mut notes = sled::Batch::default();
        let mut nids = sled::Batch::default();
        let mut n = 0usize;
        let mut max_nid = None;
        for kv in i.staging.iter() {
            let (k, v) = kv?;
            let mut s: StoredNote = decode("notes_staging", &v)?;
            if shift > 0 {
                s.nid += shift;
            }
            let v: Vec<u8> = if shift > 0 { encode(&s) } else { v.to_vec() };
            max_nid = max_nid.max(Some(s.nid));
            nids.insert(s.nid.to_be_bytes().to_vec(), k.clone());
            notes.insert(k, v);
            n += 1;
            if n.is_multiple_of(2000) {
                i.notes.apply_batch(std::mem::take(&mut notes))?;
                i.nids.apply_batch(std::mem::take(&mut nids))?;
            }
        }
        i.notes.apply_batch(notes)?;
        i.nids.apply_batch(nids)?;
        {
            let _w = i.write.lock();
            // a commit reserved its nids at its start; a marker written by an older version
            // did not, so the end of the batch still raises `next_nid` here
            if let Some(m) = max_nid {
                let next = read_meta(&i.meta, NEXT_NID)?.max(m + 1);
                i.meta.insert(NEXT_NID, next.to_be_bytes().to_vec())?;
            }
            let seq = read_meta(&i.meta, SEQ)? + 1;
            i.meta.insert(SEQ, seq.to_be_bytes().to_vec())?;
            i.meta.remove(COMMITTING)?;
            i.db.flush()?;
            i.moving_from.store(u64::MAX, Ordering::SeqCst);
        }
        i.staging.clear()?;
        i.db.flush()?;
        Ok(())
    }
}

/// Failure of a single insert.
#[derive(Debug, thiserror::Error)]
pub enum InsertError {
    /// The id is taken.
    #[error(transparent)]
    Conflict(#[from] NoteConflict),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sled::Error> for InsertError {
    fn from(e: sled::Error) -> Self {
        InsertError::Store(e.into())
    }
}

/// A load in progress (see the module docs). Dropping it without [`Self::commit`] discards it.
pub struct NoteBatch<'a> {
    store: &'a NoteStore,
    _guard: MutexGuard<'a, ()>,
    first_nid: u64,
    next_nid: u64,
    added: u64,
    job: Option<String>,
    committed: bool,
}

impl NoteBatch<'_> {
    /// Record in the commit marker's transaction that job `id` committed this batch
    /// ([`NoteStore::committed_job`]).
    pub fn set_job(&mut self, id: &str) {
        self.job = Some(id.to_string());
    }

    /// The start of a commit, under the write lock: refuse the batch if a single insert took
    /// one of its ids while it loaded, reserve its nids past every single insert's, write the
    /// marker. From here the batch is committed (rolled forward after a crash).
    fn start_commit(&self) -> StoreResult<()> {
        let i = &self.store.inner;
        let _w = i.write.lock();
        for k in i.posted_during_load.lock().iter() {
            if i.staging.contains_key(k)? {
                return Err(StoreError::Aborted(format!(
                    "a note with id '{}' was added while this load ran; nothing was loaded",
                    String::from_utf8_lossy(k)
                )));
            }
        }
        // single inserts may have taken nids since `begin`: move the batch past them
        let shift = self.store.next_nid()?.saturating_sub(self.first_nid);
        // hidden from catch-up before `next_nid` moves (sled makes writes visible at once)
        i.moving_from
            .store(self.first_nid + shift, Ordering::SeqCst);
        let job_key = self.job.as_deref().map(super::job_key);
        let (marker, next) = (
            (shift + 1).to_be_bytes(),
            (self.next_nid + shift).to_be_bytes(),
        );
        let marked = (|| -> StoreResult<()> {
            // one transaction: the job's record is durable exactly when the marker is
            i.meta
                .transaction(|t| {
                    t.insert(COMMITTING, &marker)?;
                    t.insert(NEXT_NID, &next)?;
                    if let Some(k) = &job_key {
                        t.insert(k.as_bytes(), &self.added.to_be_bytes())?;
                    }
                    Ok::<_, sled::transaction::ConflictableTransactionError<()>>(())
                })
                .map_err(tx_error("notes commit"))?;
            i.db.flush()?;
            Ok(())
        })();
        if marked.is_err() {
            i.moving_from.store(u64::MAX, Ordering::SeqCst);
        }
        marked
    }

    /// Stage one note; returns its nid. Refuses ids seen in this batch or already stored.
    pub fn add(&mut self, note: Note) -> Result<u64, InsertError> {
        let i = &self.store.inner;
        let key = note.id.as_bytes().to_vec();
        if i.notes.contains_key(&key)? {
            return Err(NoteConflict::Exists(note.id).into());
        }
        if i.staging.contains_key(&key)? {
            return Err(NoteConflict::DuplicateInBatch(note.id).into());
        }
        i.disk.ensure(note_bytes(&note))?;
        let nid = self.next_nid;
        self.next_nid += 1;
        i.staging.insert(key, encode(&StoredNote { nid, note }))?;
        self.added += 1;
        Ok(nid)
    }

    /// Notes staged so far.
    pub fn len(&self) -> u64 {
        self.added
    }

    /// Whether nothing was staged.
    pub fn is_empty(&self) -> bool {
        self.added == 0
    }

    /// Commit the staged notes at once (the marker: durable, rolled forward after a crash) and
    /// move them into the visible trees; returns how many. Index catch-up sees the whole batch
    /// when the move ends. Fails (nothing loaded) when a single insert took one of the staged
    /// ids while the load ran.
    pub fn commit(mut self) -> StoreResult<u64> {
        if self.added > 0 {
            self.start_commit()?;
            // committed from here: a move that fails is rolled forward at the next open, from
            // the staging rows (so the drop must not clear them)
            self.committed = true;
            self.store.move_staged()?;
        }
        self.committed = true;
        Ok(self.added)
    }
}

impl Drop for NoteBatch<'_> {
    fn drop(&mut self) {
        if !self.committed {
            let _ = self.store.inner.staging.clear();
        }
    }
}

#[cfg(test)]
#[path = "notes_tests.rs"]
mod tests;
