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
