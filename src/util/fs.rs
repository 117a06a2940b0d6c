//! Files that are either whole or absent: write to a temporary file beside the target, fsync,
//! rename over it, fsync the folder. Every "write a file atomically" in ontovec goes through here.

use std::io::Write;
use std::path::Path;

/// Write `bytes` to `path` atomically (temporary file in the same folder, fsync, rename, fsync
/// of the folder so the rename itself survives a crash).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = tmp_path(path);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    sync_parent(path)
}

/// Produce `path` atomically from a writer that needs a file name (a safetensors save, a copy):
/// `produce` writes the temporary file beside `path`, which is then fsynced and renamed over
/// `path`, and the folder fsynced. On an error the temporary file is removed and `path` is
/// left as it was.
pub fn write_atomic_with<E: From<std::io::Error>>(
    path: &Path,
    produce: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let tmp = tmp_path(path);
    let done = produce(&tmp).and_then(|()| {
        std::fs::File::open(&tmp)?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(sync_parent(path)?)
    });
    if done.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    done
}

/// The temporary name used next to `path` while it is being written.
pub fn tmp_path(path: &Path) -> std::path::PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// fsync the folder holding `path` (makes a rename in it durable). Best effort on platforms
/// where folders cannot be opened.
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => match std::fs::File::open(dir) {
            Ok(f) => f.sync_all(),
            Err(_) => Ok(()),
        },
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_replace_whole_files_and_leave_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        write_atomic_with(&p, |tmp| std::fs::write(tmp, b"three")).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"three");
        assert!(!tmp_path(&p).exists());
    }

    #[test]
    fn a_failed_producer_keeps_the_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("model.safetensors");
        write_atomic(&p, b"old").unwrap();
        let r = write_atomic_with(&p, |tmp| {
            std::fs::write(tmp, b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read(&p).unwrap(), b"old");
        assert!(!tmp_path(&p).exists());
    }
}
