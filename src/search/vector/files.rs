//! The files of a vector index (see the parent module's docs): loading and checking the three
//! files, the atomic save, and the keys file format.

use super::{Inner, Meta, VectorIndex, VectorOptions};
use crate::search::keyset::KeySet;
use crate::search::SearchError;
use std::ffi::OsString;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use usearch::{Index, MetricKind};

const KEYS_MAGIC: &[u8; 8] = b"OVKEYS01";

pub(super) fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

pub(super) fn path_str(path: &Path) -> Result<&str, SearchError> {
    path.to_str()
        .ok_or_else(|| SearchError::Index(format!("path {} is not UTF-8", path.display())))
}

impl VectorIndex {
    /// Load the index at `path`, checking its three files agree (see the parent module docs).
    pub(super) fn load(
        path: &Path,
        dim: usize,
        o: &VectorOptions,
    ) -> Result<(Inner, u64), SearchError> {
        let bad = |m: String| SearchError::Index(m);
        let meta: Meta = serde_json::from_slice(&std::fs::read(sibling(path, ".json"))?)
            .map_err(|e| bad(format!("sidecar json: {e}")))?;
        if meta.dim != dim {
            return Err(bad(format!("dimension {} on disk, {dim} wanted", meta.dim)));
        }
        if meta.scalar != o.scalar {
            return Err(bad(format!(
                "scalar {:?} on disk, {:?} wanted",
                meta.scalar, o.scalar
            )));
        }
        let keys = read_keys(&sibling(path, ".keys"), meta.generation)?;
        let p = path_str(path)?;
        let head = Index::metadata(p).map_err(crate::search::index_err)?;
        if head.dimensions != dim as u64
            || head.quantization != o.scalar.usearch()
            || head.metric != MetricKind::Cos
        {
            return Err(bad(format!("index header {head:?} does not match")));
        }
        let index = Index::new(&Self::usearch_options(dim, o)).map_err(crate::search::index_err)?;
        index.load(p).map_err(crate::search::index_err)?;
        index.change_expansion_search(o.expansion_search);
        index.change_expansion_add(o.expansion_add);
        if index.size() != meta.count || keys.len() != meta.count {
            return Err(bad(format!(
                "counts disagree: index {}, keys {}, sidecar {}",
                index.size(),
                keys.len(),
                meta.count
            )));
        }
        if let Some(k) = keys.iter().find(|k| !index.contains(*k)) {
            return Err(bad(format!("key {k} listed but not in the index")));
        }
        index
            .reserve_capacity_and_threads(index.size().max(1024), o.threads)
            .map_err(crate::search::index_err)?;
        Ok((Inner { index, keys }, meta.seq))
    }

    /// Delete the index at `path` from disk (its three files and any temporaries of an
    /// interrupted save); returns how many files were removed. A later open starts empty.
    pub fn remove_files(path: &Path) -> usize {
        ["", ".keys", ".json", ".tmp", ".keys.tmp", ".json.tmp"]
            .iter()
            .filter(|suffix| std::fs::remove_file(sibling(path, suffix)).is_ok())
            .count()
    }

    /// Persist atomically (see module docs), recording the store sequence `seq`.
    pub fn save(&self, seq: u64) -> Result<(), SearchError> {
        let inner = self.inner.read();
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
            // the new files are written beside the old ones: they must fit above the store's
            // reserve (a full disk would stop the store, see store/disk.rs); refused, the old
            // index stays and the catch-up is retried
            let bytes = (inner.index.serialized_length() + 16 * inner.keys.len()) as u64;
            crate::store::disk::DiskGuard::from_env(dir)
                .ensure(bytes)
                .map_err(|e| SearchError::Index(e.to_string()))?;
        }
        let generation = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0)
            ^ (seq.rotate_left(32));
        let (index_tmp, keys_tmp, json_tmp) = (
            sibling(&self.path, ".tmp"),
            sibling(&self.path, ".keys.tmp"),
            sibling(&self.path, ".json.tmp"),
        );
        inner
            .index
            .save(path_str(&index_tmp)?)
            .map_err(crate::search::index_err)?;
        std::fs::File::open(&index_tmp)?.sync_all()?;
        write_keys(&keys_tmp, generation, &inner.keys)?;
        let meta = Meta {
            seq,
            dim: self.dim,
            count: inner.keys.len(),
            generation,
            scalar: self.options.scalar,
        };
        {
            let mut f = std::fs::File::create(&json_tmp)?;
            f.write_all(&serde_json::to_vec(&meta).map_err(crate::search::index_err)?)?;
            f.sync_all()?;
        }
        std::fs::rename(&keys_tmp, sibling(&self.path, ".keys"))?;
        std::fs::rename(&index_tmp, &self.path)?;
        std::fs::rename(&json_tmp, sibling(&self.path, ".json"))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = std::fs::File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.seq.store(seq, Ordering::SeqCst);
        Ok(())
    }
}

fn write_keys(path: &Path, generation: u64, keys: &KeySet) -> Result<(), SearchError> {
    let f = std::fs::File::create(path)?;
    let mut w = BufWriter::new(f);
    w.write_all(KEYS_MAGIC)?;
    w.write_all(&generation.to_le_bytes())?;
    w.write_all(&(keys.len() as u64).to_le_bytes())?;
    for k in keys.iter() {
        w.write_all(&k.to_le_bytes())?;
    }
    let f = w
        .into_inner()
        .map_err(|e| SearchError::Io(e.into_error()))?;
    f.sync_all()?;
    Ok(())
}

fn read_keys(path: &Path, generation: u64) -> Result<KeySet, SearchError> {
    let mut r = BufReader::new(std::fs::File::open(path)?);
    let mut word = [0u8; 8];
    r.read_exact(&mut word)?;
    if &word != KEYS_MAGIC {
        return Err(SearchError::Index("keys file has a bad magic".into()));
    }
    r.read_exact(&mut word)?;
    if u64::from_le_bytes(word) != generation {
        return Err(SearchError::Index(
            "keys file is from another save (interrupted save?)".into(),
        ));
    }
    r.read_exact(&mut word)?;
    let n = u64::from_le_bytes(word);
    let mut keys = Vec::with_capacity(n.min(1 << 24) as usize);
    for _ in 0..n {
        r.read_exact(&mut word)?;
        keys.push(u64::from_le_bytes(word));
    }
    let keys = KeySet::from_unsorted(keys);
    let mut rest = [0u8; 1];
    if r.read(&mut rest)? != 0 {
        return Err(SearchError::Index("keys file has trailing bytes".into()));
    }
    Ok(keys)
}
