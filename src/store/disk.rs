//! Room left on the file system of the data directory, kept above a reserve.
//!
//! sled 0.34 does not survive a write that fails for lack of space: the failed write leaves a
//! log buffer that never becomes stable, and the next `flush` waits for it forever (seen in
//! `tests/disk_full.rs` before this guard: a job's status update after an ingest filled a
//! 24 MiB tmpfs hung in `sled::pagecache::iobuf::make_stable`, holding the ingest lock, and
//! every later write hung behind it). So the store never lets sled reach the wall: every bulk
//! write (release table batches, spilled sort runs) and every note first checks that the
//! write leaves at least the reserve free, and fails with [`StoreError::DiskLow`] otherwise —
//! the way Elasticsearch's flood-stage watermark turns an index read-only before its disk is
//! full. The reserve is `ONTOVEC_MIN_FREE_MB` (default 256; 0 turns the guard off).

use super::{StoreError, StoreResult};
use std::path::{Path, PathBuf};

/// Default reserve in MiB.
pub const DEFAULT_MIN_FREE_MB: u64 = 256;

/// Checks a data directory's free space against a reserve.
#[derive(Debug, Clone)]
pub struct DiskGuard {
    dir: PathBuf,
    reserve: u64,
}

impl DiskGuard {
    /// A guard of `dir` keeping `reserve` bytes free (0 = no checks).
    pub fn new(dir: &Path, reserve: u64) -> Self {
        Self {
            dir: dir.to_path_buf(),
            reserve,
        }
    }

    /// A guard of `dir` with the reserve `ONTOVEC_MIN_FREE_MB` gives (MiB, default
    /// [`DEFAULT_MIN_FREE_MB`]).
    pub fn from_env(dir: &Path) -> Self {
        let mb = std::env::var("ONTOVEC_MIN_FREE_MB")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(DEFAULT_MIN_FREE_MB);
        Self::new(dir, mb.saturating_mul(1 << 20))
    }

    /// The reserve in bytes.
    pub fn reserve(&self) -> u64 {
        self.reserve
    }

    /// Bytes free on the file system now (None when it cannot say).
    pub fn available(&self) -> Option<u64> {
        fs4::available_space(&self.dir).ok()
    }

    /// Succeed when writing `bytes` more would leave at least the reserve free. A file
    /// system that cannot report its free space is not refused (the check is a guard, not a
    /// gate); the write then meets whatever the disk says.
    pub fn ensure(&self, bytes: u64) -> StoreResult<()> {
        if self.reserve == 0 {
            return Ok(());
        }
        self.ensure_with(self.available(), bytes)
    }

    /// [`Self::ensure`] against a free-space reading already taken (`/ready` reports the
    /// reading and the verdict from one `statvfs`).
    pub fn ensure_with(&self, available: Option<u64>, bytes: u64) -> StoreResult<()> {
        let Some(available) = available.filter(|_| self.reserve > 0) else {
            return Ok(());
        };
        if available < self.reserve.saturating_add(bytes) {
            return Err(StoreError::DiskLow {
                available,
                needed: bytes,
                reserve: self.reserve,
            });
        }
        Ok(())
    }
}

/// What to tell whoever's `what` (a request, a job) met a full disk: the `error`, that nothing
/// of it was kept, and how to write again — free space, and restart too when the store itself
/// met the full disk (`store_stopped`: sled writes nothing more until it is opened again).
pub fn advice(error: &str, store_stopped: bool, what: &str) -> String {
    if store_stopped {
        format!(
            "the data directory is full, so the store stopped writing ({error}); nothing of this \
             {what} was kept. Reads go on; free space and restart the server to write again"
        )
    } else {
        format!("{error}; nothing of this {what} was kept. Free space, then try again")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_a_write_that_would_eat_into_the_reserve() {
        let dir = tempfile::tempdir().unwrap();
        let free = fs4::available_space(dir.path()).unwrap();
        assert!(DiskGuard::new(dir.path(), 0).ensure(u64::MAX).is_ok());
        assert!(DiskGuard::new(dir.path(), 1).ensure(0).is_ok());
        let e = DiskGuard::new(dir.path(), free / 2)
            .ensure(free)
            .unwrap_err();
        assert!(e.is_storage_full(), "{e}");
        assert!(matches!(e, StoreError::DiskLow { needed, .. } if needed == free));
        assert!(e.to_string().contains("ONTOVEC_MIN_FREE_MB"), "{e}");
    }
}
