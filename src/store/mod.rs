//! The durable store: sled is the source of truth for concepts, terms, relations, mappings,
//! releases, jobs, notes and embeddings. Search indexes are derived from it.
//!
//! ## Layout (one sled tree each)
//! | tree        | key                                 | value                          |
//! |-------------|-------------------------------------|--------------------------------|
//! | `meta`      | `schema_version`, `seq`, `next_rid` | u32/u64 big-endian             |
//! | `meta`      | `job/<job id>`                      | rid the job committed          |
//! | `releases`  | rid                                 | [`ReleaseInfo`]                |
//! | `active`    | system                              | rid                            |
//! | `blocks`    | rid ‖ table ‖ first key of block    | a block of sorted entries      |
//!
//! A release's data lives in immutable sorted tables ([`table`]): `Concepts` (code →
//! [`StoredConcept`]), `Terms` (term id = rid << 40 ‖ n → [`TermRow`]), `Rel`/`RelRev`
//! (`from 0 rel 0 to` / `to 0 rel 0 from`), `Map`/`MapRev` (`sys 0 code 0 sys 0 code` →
//! [`MapVal`]) and `MapSystems`. Loading stages records in external-sort spools ([`spool`]) and
//! writes each table once, in key order, at commit ([`writer`]).
//!
//! Every block key starts with its release id, so a release is written invisibly and made
//! visible by one transaction that points `active[system]` at it
//! ([`writer::ReleaseWriter::commit`]). Releases left `loading` by a crash, and superseded ones,
//! are purged at start-up ([`Store::open`]), as is the staging directory. A code as a user
//! types it resolves to the stored code it stands for through [`codes`] (used by concept
//! lookups and by search).

pub mod codes;
pub mod disk;
mod graph;
pub mod keys;
pub mod migrate;
pub mod notes;
pub mod read;
pub mod spool;
pub mod table;
pub mod writer;

use crate::domain::model::{self, ReleaseInfo, ReleaseState, TermKind};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Schema version written by this binary. See `migrations/` and [`migrate`].
pub const SCHEMA_VERSION: u32 = 3;

/// Failures of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// sled reported an I/O or corruption problem.
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    /// A value could not be decoded: the store is corrupt or from an incompatible version.
    #[error("corrupt record in tree '{tree}': {message}")]
    Corrupt {
        /// Tree name.
        tree: &'static str,
        /// Decoder message.
        message: String,
    },
    /// The release already exists and replace was not asked for.
    #[error("release {release} of {system} already exists (use replace to load it again)")]
    ReleaseExists {
        /// System.
        system: String,
        /// Release label.
        release: String,
    },
    /// The store was written by a newer binary.
    #[error("store schema version {found} is newer than this binary supports ({supported}); upgrade ontovec")]
    SchemaTooNew {
        /// Version found on disk.
        found: u32,
        /// Version this binary writes.
        supported: u32,
    },
    /// The store needs `ontovec migrate` before it can be served.
    #[error("store schema version {found} is older than {current}; run `ontovec migrate --data-dir ...`")]
    NeedsMigration {
        /// Version found on disk.
        found: u32,
        /// Version this binary writes.
        current: u32,
    },
    /// Staging files of a release being written could not be written or read (disk full, ...).
    #[error("staging error: {path}: {source}")]
    Staging {
        /// The staging file.
        path: PathBuf,
        /// What the file system said.
        source: std::io::Error,
    },
    /// A write would leave less than the reserve free on the data directory's file system
    /// (see [`disk`]).
    #[error(
        "only {available} bytes are free on the data directory's file system: this write \
         ({needed} bytes) would eat into the {reserve}-byte reserve the store keeps so that a \
         full disk never breaks it (ONTOVEC_MIN_FREE_MB)"
    )]
    DiskLow {
        /// Bytes free.
        available: u64,
        /// Bytes the write needs.
        needed: u64,
        /// The reserve.
        reserve: u64,
    },
    /// A transaction was aborted for a reason given.
    #[error("{0}")]
    Aborted(String),
}

impl StoreError {
    /// Whether a write failed because the file system holding the data directory is full (or
    /// over quota). sled stops writing after any failed write (every later write returns the
    /// same error until the store is opened again), so callers say "free space and restart".
    pub fn is_storage_full(&self) -> bool {
        let io = match self {
            StoreError::DiskLow { .. } => return true,
            StoreError::Sled(sled::Error::Io(e)) => e,
            StoreError::Staging { source, .. } => source,
            _ => return false,
        };
        matches!(
            io.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        )
    }

    /// For a full disk: [`disk::advice`] for whoever's `what` met it (None otherwise).
    pub fn storage_full_advice(&self, what: &str) -> Option<String> {
        self.is_storage_full()
            .then(|| disk::advice(&self.to_string(), self.store_stopped(), what))
    }

    /// As a loader's error: [`crate::ontology::LoadError::StorageFull`] for a full disk,
    /// else `LoadError::Store`.
    pub fn into_load_error(self) -> crate::ontology::LoadError {
        use crate::ontology::LoadError;
        if self.is_storage_full() {
            LoadError::StorageFull {
                store_stopped: self.store_stopped(),
                message: self.to_string(),
            }
        } else {
            LoadError::Store(self.to_string())
        }
    }

    /// Whether the store itself met the full disk (not a refusal at its reserve).
    fn store_stopped(&self) -> bool {
        !matches!(self, StoreError::DiskLow { .. })
    }
}

/// Result alias for store operations.
pub type StoreResult<T> = Result<T, StoreError>;

/// One term as indexed for search (the value of the `terms` tree).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TermRow {
    /// Concept code the term belongs to.
    pub code: String,
    /// The string.
    pub text: String,
    /// Its role.
    pub kind: TermKind,
}

/// Value of the `Concepts` table: the concept and the id of its first term (its terms have
/// consecutive ids, in the order of `concept.terms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredConcept {
    /// Term id of `concept.terms[0]`.
    pub first_term: u64,
    /// The concept.
    pub concept: model::Concept,
}

/// Value of a mapping entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MapVal {
    /// Kind of mapping (`maps_to`, `xref`, `gem_approximate`, ...).
    pub relation: String,
    /// Provenance (file or vocabulary).
    pub source: String,
}

/// Handle on the opened store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// Largest release id: a term id is `rid << 40 | n` in a u64, so a rid has 24 bits.
pub const MAX_RID: u64 = (1 << 24) - 1;

pub(crate) struct Inner {
    pub(crate) db: sled::Db,
    pub(crate) path: PathBuf,
    pub(crate) meta: sled::Tree,
    pub(crate) releases: sled::Tree,
    pub(crate) active: sled::Tree,
    pub(crate) tables: table::Tables,
    /// Free-space reserve checked before bulk writes and notes.
    pub(crate) disk: disk::DiskGuard,
    /// Mapping systems of each release (`MapSystems` table), cached: releases are immutable.
    pub(crate) map_systems: RwLock<HashMap<u64, std::sync::Arc<MapSystems>>>,
    /// Cache of `active`: system → rid. Updated under the commit lock.
    pub(crate) active_cache: RwLock<HashMap<String, u64>>,
    /// Serialises release commits and GC.
    pub(crate) commit_lock: parking_lot::Mutex<()>,
}

/// Key under which a job's commit is recorded (in `meta`, and in `notes_meta` for notes).
pub(crate) fn job_key(job: &str) -> String {
    format!("job/{job}")
}

pub(crate) fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    // bincode cannot fail for our plain data types (no maps with non-string keys, no
    // skip_serializing_if); an error here would be a programming bug caught by tests.
    bincode::serialize(v).unwrap_or_default()
}

pub(crate) fn decode<T: for<'de> Deserialize<'de>>(
    tree: &'static str,
    bytes: &[u8],
) -> StoreResult<T> {
    bincode::deserialize(bytes).map_err(|e| StoreError::Corrupt {
        tree,
        message: e.to_string(),
    })
}

impl Store {
    /// Open (or create) the store under `dir` for serving: refuses stores written by a newer
    /// binary and stores that need migration, purges releases a crash left half-written.
    pub fn open(dir: &Path) -> StoreResult<Self> {
        let store = Self::open_raw(dir)?;
        let version = store.schema_version()?;
        match version {
            None => store.set_schema_version(SCHEMA_VERSION)?,
            Some(v) if v > SCHEMA_VERSION => {
                return Err(StoreError::SchemaTooNew {
                    found: v,
                    supported: SCHEMA_VERSION,
                })
            }
            Some(v) if v < SCHEMA_VERSION => {
                return Err(StoreError::NeedsMigration {
                    found: v,
                    current: SCHEMA_VERSION,
                })
            }
            Some(_) => {}
        }
        store.recover()?;
        Ok(store)
    }

    /// Open the trees without any version check (used by `migrate`).
    ///
    /// The data dir's file lock is sled's; a store closed a moment ago (in this process or a
    /// process that is exiting) may still hold it while sled's flusher thread winds down, so a
    /// lock conflict is retried for up to 3 s before it is reported.
    pub fn open_raw(dir: &Path) -> StoreResult<Self> {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Sled(sled::Error::Io(e)))?;
        // sled's page cache. Release tables are a few large blocks and the OS page cache holds
        // the rest, so a small cache costs little on reads and bounds memory during bulk loads
        // (measured: 256 MB → 64 MB cut peak RSS of a 2M-row load without slowing it).
        let cache_mb = std::env::var("ONTOVEC_SLED_CACHE_MB")
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(64);
        let config = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_mb * 1024 * 1024)
            .mode(sled::Mode::HighThroughput);
        let db = open_waiting_for_lock(&config)?;
        let t = |name: &str| db.open_tree(name);
        let inner = Inner {
            meta: t("meta")?,
            releases: t("releases")?,
            active: t("active")?,
            tables: table::Tables::new(t("blocks")?),
            disk: disk::DiskGuard::from_env(dir),
            map_systems: RwLock::new(HashMap::new()),
            path: dir.to_path_buf(),
            db,
            active_cache: RwLock::new(HashMap::new()),
            commit_lock: parking_lot::Mutex::new(()),
        };
        let store = Store {
            inner: Arc::new(inner),
        };
        store.reload_active()?;
        for (system, rid) in store.active_rids() {
            if rid > MAX_RID {
                tracing::error!(
                    system,
                    rid,
                    "release id too large (written by an older ontovec): its term ids overflowed \
                     and its terms cannot be searched; ingest this system again"
                );
            }
        }
        Ok(store)
    }

    /// The free-space guard of the store's file system (see [`disk`]).
    pub fn disk(&self) -> &disk::DiskGuard {
        &self.inner.disk
    }

    /// The sled database (for subsystems that keep their own trees: embeddings, notes, jobs).
    pub fn db(&self) -> &sled::Db {
        &self.inner.db
    }

    /// Directory where releases being written stage their sort runs.
    pub fn staging_dir(&self) -> PathBuf {
        self.inner.path.join("staging")
    }

    /// Directory of the store.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Schema version recorded in the store, `None` for a new store.
    pub fn schema_version(&self) -> StoreResult<Option<u32>> {
        Ok(self
            .inner
            .meta
            .get("schema_version")?
            .map(|v| keys::read_u32(&v)))
    }

    pub(crate) fn set_schema_version(&self, v: u32) -> StoreResult<()> {
        self.inner
            .meta
            .insert("schema_version", v.to_be_bytes().to_vec())?;
        self.inner.db.flush()?;
        Ok(())
    }

    /// A fresh release id: the next value of the `next_rid` counter in `meta` (atomic, so
    /// concurrent ingests never share one) that no release uses yet. Ids must fit in
    /// [`MAX_RID`] because term ids are `rid << 40 | n`; sled's own `generate_id` jumps by a
    /// million at every restart and overflowed that after ~17 restarts (term ids wrapped and
    /// the release's terms could no longer be found by search), so it is not used.
    pub(crate) fn allocate_rid(&self) -> StoreResult<u64> {
        loop {
            let next = self
                .inner
                .meta
                .update_and_fetch("next_rid", |old| {
                    let cur = old.map_or(0, keys::read_u64);
                    Some(cur.saturating_add(1).to_be_bytes().to_vec())
                })?
                .map_or(1, |v| keys::read_u64(&v));
            if next > MAX_RID {
                return Err(StoreError::Aborted(format!(
                    "no release id left: {MAX_RID} releases were started in this store"
                )));
            }
            if !self.inner.releases.contains_key(next.to_be_bytes())? {
                return Ok(next);
            }
        }
    }

    /// Monotonic sequence number, bumped by every committed change of searchable data. Derived
    /// indexes record the sequence they reflect and are caught up when it differs.
    pub fn seq(&self) -> StoreResult<u64> {
        Ok(self
            .inner
            .meta
            .get("seq")?
            .map(|v| keys::read_u64(&v))
            .unwrap_or(0))
    }

    /// The release that ingest job `job` committed, if its commit happened: `Some((rid, the
    /// release if it is still recorded))`. Written in the commit's transaction
    /// ([`writer::ReleaseWriter::with_job`]), so it is true exactly when the release became
    /// visible, whatever the job registry managed to record before a crash.
    pub fn committed_job(&self, job: &str) -> StoreResult<Option<(u64, Option<ReleaseInfo>)>> {
        let Some(v) = self.inner.meta.get(job_key(job))? else {
            return Ok(None);
        };
        let rid = keys::read_u64(&v);
        Ok(Some((rid, self.release(rid)?)))
    }

    /// Flush everything to disk.
    pub fn flush(&self) -> StoreResult<()> {
        self.inner.db.flush()?;
        Ok(())
    }

    fn reload_active(&self) -> StoreResult<()> {
        let mut map = HashMap::new();
        for kv in self.inner.active.iter() {
            let (k, v) = kv?;
            map.insert(String::from_utf8_lossy(&k).into_owned(), keys::read_u64(&v));
        }
        *self.inner.active_cache.write() = map;
        Ok(())
    }

    /// Active release id of a system.
    pub fn active_rid(&self, system: &str) -> Option<u64> {
        self.inner.active_cache.read().get(system).copied()
    }

    /// Active release ids of all systems.
    pub fn active_rids(&self) -> HashMap<String, u64> {
        self.inner.active_cache.read().clone()
    }

    /// All releases recorded, in rid order.
    pub fn releases(&self) -> StoreResult<Vec<ReleaseInfo>> {
        let mut out = Vec::new();
        for kv in self.inner.releases.iter() {
            let (_, v) = kv?;
            out.push(decode("releases", &v)?);
        }
        Ok(out)
    }

    /// One release by id.
    pub fn release(&self, rid: u64) -> StoreResult<Option<ReleaseInfo>> {
        match self.inner.releases.get(rid.to_be_bytes())? {
            Some(v) => Ok(Some(decode("releases", &v)?)),
            None => Ok(None),
        }
    }

    /// Purge releases that are not active (crash leftovers and superseded ones).
    fn recover(&self) -> StoreResult<()> {
        let staging = self.staging_dir();
        if staging.exists() {
            tracing::info!(dir = %staging.display(), "removing staging files of an interrupted load");
            let _ = std::fs::remove_dir_all(&staging);
        }
        for r in self.releases()? {
            if r.state != ReleaseState::Active {
                tracing::info!(rid = r.rid, system = %r.system, release = %r.release, state = ?r.state,
                    "purging release that is not active");
                self.purge_release(r.rid)?;
            }
        }
        Ok(())
    }

    /// Delete every key of a release and its record. Idempotent; safe after a crash mid-way.
    pub fn purge_release(&self, rid: u64) -> StoreResult<()> {
        let _g = self.inner.commit_lock.lock();
        self.inner.tables.purge(rid)?;
        self.inner.releases.remove(rid.to_be_bytes())?;
        self.inner.map_systems.write().remove(&rid);
        self.inner.db.flush()?;
        Ok(())
    }
}

/// Systems on either side of a release's mappings.
#[derive(Debug, Default)]
pub struct MapSystems {
    /// Systems of mapping sources.
    pub from: std::collections::HashSet<String>,
    /// Systems of mapping targets.
    pub to: std::collections::HashSet<String>,
}

/// Open a sled database, retrying a held file lock for up to 3 s (see [`Store::open_raw`]).
fn open_waiting_for_lock(config: &sled::Config) -> Result<sled::Db, sled::Error> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match config.open() {
            Err(sled::Error::Io(e))
                if e.to_string().contains("could not acquire lock")
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            other => return other,
        }
    }
}
