//! Detecting a damaged store at start-up. sled recovers a damaged log by cutting it at the first
//! bad record, so a corrupted store can open "fine" with its latest commits — or everything —
//! gone. To turn that silent loss into a refusal, every acknowledged commit's store sequence is
//! also written to `<data-dir>/store.commit` (outside sled, written atomically after the store
//! is flushed). At open, a store whose sequence is behind that record is refused.

use crate::store::{Store, StoreError};
use crate::util::fs::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Why a store is refused.
#[derive(Debug, thiserror::Error)]
pub enum IntegrityError {
    /// The store lost acknowledged commits.
    #[error(
        "the store at {store} is damaged: it reflects commit {found}, but commit {recorded} was \
         acknowledged (recorded in {record}). Refusing to start rather than serve data with \
         releases missing. Restore the data directory from a backup, or, to accept the loss and \
         keep what is left, delete {record}."
    )]
    Behind {
        /// Store directory.
        store: String,
        /// Sequence found in the store.
        found: u64,
        /// Sequence recorded as acknowledged.
        recorded: u64,
        /// The record file.
        record: String,
    },
    /// The record itself cannot be read.
    #[error(
        "cannot read the commit record {path}: {message}; delete it to accept the store as it is"
    )]
    Record {
        /// The record file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// The store's sequence cannot be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The record cannot be written.
    #[error("cannot write the commit record {path}: {source}")]
    Io {
        /// The record file.
        path: String,
        /// I/O error.
        source: std::io::Error,
    },
}

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    seq: u64,
}

/// The record file of a data directory.
pub fn record_path(data_dir: &Path) -> PathBuf {
    data_dir.join("store.commit")
}

/// Check an opened store against the record; create the record when there is none (a data
/// directory from before this check, or a new one).
pub fn check(data_dir: &Path, store: &Store) -> Result<(), IntegrityError> {
    let path = record_path(data_dir);
    let found = store.seq()?;
    let recorded = match std::fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice::<Record>(&bytes)
                .map_err(|e| IntegrityError::Record {
                    path: path.display().to_string(),
                    message: e.to_string(),
                })?
                .seq
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::info!(seq = found, record = %path.display(), "no commit record yet; recording the store's sequence");
            return record(data_dir, found);
        }
        Err(e) => {
            return Err(IntegrityError::Record {
                path: path.display().to_string(),
                message: e.to_string(),
            })
        }
    };
    if found < recorded {
        tracing::error!(found, recorded, "store is behind its commit record");
        return Err(IntegrityError::Behind {
            store: store.path().display().to_string(),
            found,
            recorded,
            record: path.display().to_string(),
        });
    }
    if found > recorded {
        // A commit flushed but killed before its record was written: the store is ahead, fine.
        record(data_dir, found)?;
    }
    Ok(())
}

/// Record `seq` as acknowledged (call after the commit is flushed). Atomic: temp file, fsync,
/// rename.
pub fn record(data_dir: &Path, seq: u64) -> Result<(), IntegrityError> {
    let path = record_path(data_dir);
    let io = |source| IntegrityError::Io {
        path: path.display().to_string(),
        source,
    };
    write_atomic(
        &path,
        &serde_json::to_vec(&Record { seq }).unwrap_or_default(),
    )
    .map_err(io)
}
