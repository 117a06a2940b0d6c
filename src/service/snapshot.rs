//! Snapshots of a data directory, for read replicas: [`create`] writes the store and every
//! derived index at one store sequence to a directory or a `.tar` file; [`restore`] verifies one
//! and installs it as a data directory, all or nothing.
//!
//! ## Consistency
//! [`create`] holds the application's ingest lock (no ingest or note load can commit), catches
//! the derived indexes up to the store's sequence, flushes the store, then copies
//! `store/`, `store.commit`, `indexes/` and the note indexes (everything in the data directory
//! but `uploads/`). The CLI runs it on a data directory it has opened itself, so sled's own
//! file lock also keeps a server away meanwhile. With a Postgres vector store the vectors are
//! not in the snapshot: a replica opened with the same `--vector-store` shares them.
//!
//! ## Format
//! The files as they are in the data directory, plus `ontovec-snapshot.json`: format version,
//! ontovec version, store schema version and sequence, the vector backend, and each file's
//! size and SHA-256. [`restore`] unpacks into a temporary sibling of the target, refuses a
//! newer format or store schema, a missing, extra or altered file, or a store whose sequence is
//! not the manifest's, and only then swaps the directory in; on any failure the target is left
//! as it was.

use crate::service::app::App;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};

/// Version of the snapshot layout this binary writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// The manifest's file name inside a snapshot.
pub const MANIFEST: &str = "ontovec-snapshot.json";

/// What a snapshot holds.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    /// Snapshot layout version ([`FORMAT_VERSION`]).
    pub format: u32,
    /// The ontovec version that wrote it.
    pub ontovec: String,
    /// Store schema version ([`crate::store::SCHEMA_VERSION`] of the writer).
    pub store_schema: u32,
    /// Store sequence every index in the snapshot reflects.
    pub store_seq: u64,
    /// `usearch` (vectors included) or `postgres` (vectors shared in the database).
    pub vector_backend: String,
    /// When it was taken (RFC 3339).
    pub created: String,
    /// Every file, relative to the data directory.
    pub files: Vec<FileEntry>,
}

/// One file of a snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FileEntry {
    /// Path relative to the data directory, `/`-separated.
    pub path: String,
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256, lower-case hex.
    pub sha256: String,
}

/// Why a snapshot could not be made or restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// A file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The snapshot is damaged or incomplete.
    #[error("corrupt snapshot: {0}")]
    Corrupt(String),
    /// The snapshot was written by a newer ontovec.
    #[error("snapshot is newer than this ontovec: {0}")]
    Newer(String),
    /// The target exists and holds data (restore without `--force`).
    #[error("{0} exists and is not empty (use --force to replace it)")]
    TargetExists(PathBuf),
    /// Bringing the indexes up to the store failed.
    #[error("indexing before the snapshot failed: {0}")]
    Index(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotError + '_ {
    move |source| SnapshotError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn sha256_file(path: &Path) -> Result<(u64, String), SnapshotError> {
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut n = 0u64;
    loop {
        let r = f.read(&mut buf).map_err(io(path))?;
        if r == 0 {
            break;
        }
        h.update(&buf[..r]);
        n += r as u64;
    }
    let hex = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
    Ok((n, hex))
}

/// Every regular file under `root` (relative, `/`-separated, sorted), skipping `uploads/`
/// and the manifest.
fn list_files(root: &Path) -> Result<Vec<String>, SnapshotError> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let e = e.map_err(io(&dir))?;
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap_or(&p);
            let rel_s = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/");
            if rel_s == "uploads" || rel_s == MANIFEST {
                continue;
            }
            let ft = e.file_type().map_err(io(&p))?;
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() {
                out.push(rel_s);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Write a snapshot of `app`'s data directory to `out`: a directory, or a tar file when `out`
/// ends in `.tar`. `out` must not exist. Returns the manifest written.
pub fn create(app: &App, out: &Path) -> Result<Manifest, SnapshotError> {
    if out.exists() {
        return Err(SnapshotError::TargetExists(out.to_path_buf()));
    }
    let _g = app.ingest_guard();
    app.sync_indexes(None)
        .map_err(|e| SnapshotError::Index(e.to_string()))?;
    app.store.flush()?;
    let store_seq = app.store.seq()?;
    let root = &app.config.data_dir;
    let mut files = Vec::new();
    for rel in list_files(root)? {
        let (bytes, sha256) = sha256_file(&root.join(&rel))?;
        files.push(FileEntry {
            path: rel,
            bytes,
            sha256,
        });
    }
    let manifest = Manifest {
        format: FORMAT_VERSION,
        ontovec: env!("CARGO_PKG_VERSION").to_string(),
        store_schema: crate::store::SCHEMA_VERSION,
        store_seq,
        vector_backend: match app.config.vector.backend {
            crate::search::vector_store::Backend::Embedded => "usearch".into(),
            crate::search::vector_store::Backend::Postgres(_) => "postgres".into(),
        },
        created: crate::util::time::now_rfc3339(),
        files,
    };
    let json = serde_json::to_vec_pretty(&manifest).unwrap_or_default();
    let tmp = sibling_tmp(out, "partial");
    let _ = std::fs::remove_dir_all(&tmp);
    let _ = std::fs::remove_file(&tmp);
    let written = if out.extension().is_some_and(|e| e == "tar") {
        write_tar(root, &manifest, &json, &tmp)
    } else {
        write_dir(root, &manifest, &json, &tmp)
    };
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    std::fs::rename(&tmp, out).map_err(io(out))?;
    Ok(manifest)
}

fn sibling_tmp(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "snapshot".into());
    path.with_file_name(format!(".{name}.{what}-{}", std::process::id()))
}

fn write_dir(root: &Path, m: &Manifest, json: &[u8], tmp: &Path) -> Result<(), SnapshotError> {
    for f in &m.files {
        let to = tmp.join(&f.path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::copy(root.join(&f.path), &to).map_err(io(&to))?;
    }
    std::fs::create_dir_all(tmp).map_err(io(tmp))?;
    crate::util::fs::write_atomic(&tmp.join(MANIFEST), json).map_err(io(tmp))
}

fn write_tar(root: &Path, m: &Manifest, json: &[u8], tmp: &Path) -> Result<(), SnapshotError> {
    let file = std::fs::File::create(tmp).map_err(io(tmp))?;
    let mut b = tar::Builder::new(std::io::BufWriter::new(file));
    let mut header = tar::Header::new_gnu();
    header.set_size(json.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    b.append_data(&mut header, MANIFEST, json)
        .map_err(io(tmp))?;
    for f in &m.files {
        b.append_path_with_name(root.join(&f.path), &f.path)
            .map_err(io(&root.join(&f.path)))?;
    }
    let w = b.into_inner().map_err(io(tmp))?;
    let file = w.into_inner().map_err(|e| io(tmp)(e.into_error()))?;
    file.sync_all().map_err(io(tmp))
}

/// Verify the snapshot at `src` (directory or `.tar`) and install it as the data directory
/// `target`. A non-empty `target` is replaced only with `force`. Nothing in `target` changes
/// unless every check passed.
pub fn restore(src: &Path, target: &Path, force: bool) -> Result<Manifest, SnapshotError> {
    if !force && target.exists() && !is_empty_dir(target)? {
        return Err(SnapshotError::TargetExists(target.to_path_buf()));
    }
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let tmp = sibling_tmp(target, "restoring");
    let _ = std::fs::remove_dir_all(&tmp);
    let checked = unpack(src, &tmp).and_then(|()| verify(&tmp));
    let manifest = match checked {
        Ok(m) => m,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(e);
        }
    };
    if target.exists() {
        let old = sibling_tmp(target, "replaced");
        std::fs::rename(target, &old).map_err(io(target))?;
        if let Err(e) = std::fs::rename(&tmp, target) {
            let _ = std::fs::rename(&old, target);
            let _ = std::fs::remove_dir_all(&tmp);
            return Err(io(target)(e));
        }
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, target).map_err(io(target))?;
    }
    Ok(manifest)
}

fn is_empty_dir(p: &Path) -> Result<bool, SnapshotError> {
    Ok(p.is_dir() && std::fs::read_dir(p).map_err(io(p))?.next().is_none())
}

fn unpack(src: &Path, tmp: &Path) -> Result<(), SnapshotError> {
    std::fs::create_dir_all(tmp).map_err(io(tmp))?;
    if src.is_dir() {
        for rel in list_files(src)?.into_iter().chain([MANIFEST.to_string()]) {
            let from = src.join(&rel);
            if !from.is_file() {
                return Err(SnapshotError::Corrupt(format!("{MANIFEST} is missing")));
            }
            let to = tmp.join(&rel);
            if let Some(parent) = to.parent() {
                std::fs::create_dir_all(parent).map_err(io(parent))?;
            }
            std::fs::copy(&from, &to).map_err(io(&to))?;
        }
        return Ok(());
    }
    let file = std::fs::File::open(src).map_err(io(src))?;
    let mut archive = tar::Archive::new(std::io::BufReader::new(file));
    let entries = archive
        .entries()
        .map_err(|e| SnapshotError::Corrupt(format!("{}: {e}", src.display())))?;
    for entry in entries {
        let mut entry =
            entry.map_err(|e| SnapshotError::Corrupt(format!("{}: {e}", src.display())))?;
        let path = entry
            .path()
            .map_err(|e| SnapshotError::Corrupt(e.to_string()))?
            .into_owned();
        if path
            .components()
            .any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(SnapshotError::Corrupt(format!(
                "entry {} leaves the snapshot",
                path.display()
            )));
        }
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let to = tmp.join(&path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        let mut out = std::fs::File::create(&to).map_err(io(&to))?;
        std::io::copy(&mut entry, &mut out)
            .map_err(|e| SnapshotError::Corrupt(format!("{}: {e}", path.display())))?;
        out.flush().map_err(io(&to))?;
    }
    Ok(())
}

/// Check the unpacked snapshot in `dir` against its manifest, then open its store.
fn verify(dir: &Path) -> Result<Manifest, SnapshotError> {
    let mpath = dir.join(MANIFEST);
    let bytes = std::fs::read(&mpath)
        .map_err(|_| SnapshotError::Corrupt(format!("{MANIFEST} is missing")))?;
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| SnapshotError::Corrupt(format!("{MANIFEST}: {e}")))?;
    if m.format > FORMAT_VERSION {
        return Err(SnapshotError::Newer(format!(
            "snapshot format {} (this ontovec reads up to {FORMAT_VERSION})",
            m.format
        )));
    }
    if m.store_schema > crate::store::SCHEMA_VERSION {
        return Err(SnapshotError::Newer(format!(
            "store schema {} (this ontovec knows up to {}; written by ontovec {})",
            m.store_schema,
            crate::store::SCHEMA_VERSION,
            m.ontovec
        )));
    }
    let present = list_files(dir)?;
    let listed: Vec<&str> = m.files.iter().map(|f| f.path.as_str()).collect();
    if let Some(extra) = present.iter().find(|p| !listed.contains(&p.as_str())) {
        return Err(SnapshotError::Corrupt(format!(
            "{extra} is not in the manifest"
        )));
    }
    for f in &m.files {
        let p = dir.join(&f.path);
        if !p.is_file() {
            return Err(SnapshotError::Corrupt(format!("{} is missing", f.path)));
        }
        let (bytes, sha) = sha256_file(&p)?;
        if bytes != f.bytes || sha != f.sha256 {
            return Err(SnapshotError::Corrupt(format!(
                "{} does not match its checksum",
                f.path
            )));
        }
    }
    let store = crate::store::Store::open(&dir.join("store"))
        .map_err(|e| SnapshotError::Corrupt(format!("its store does not open: {e}")))?;
    crate::service::integrity::check(dir, &store)
        .map_err(|e| SnapshotError::Corrupt(e.to_string()))?;
    let seq = store.seq()?;
    if seq != m.store_seq {
        return Err(SnapshotError::Corrupt(format!(
            "store is at sequence {seq}, the manifest says {}",
            m.store_seq
        )));
    }
    Ok(m)
}
