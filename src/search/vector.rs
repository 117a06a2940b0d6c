//! Vector index for one embedding model: usearch HNSW with the cosine metric.
//!
//! ## Keys
//! Keys are term ids; the set of keys is mirrored in a `BTreeSet` so a release
//! (`term_id >> 40`) can be removed as one key range, and persisted next to the index.
//!
//! ## Files
//! For an index at `path` (e.g. `vectors/minilm.usearch`):
//! - `path`: the usearch graph and vectors;
//! - `path.keys`: magic, generation, count, then the keys (little-endian u64);
//! - `path.json`: `{seq, dim, count, generation, scalar}`.
//!
//! [`VectorIndex::save`] writes all three as `*.tmp`, fsyncs them, then renames keys, index and
//! finally the json (the commit point), and fsyncs the directory. A crash in between leaves a
//! keys file whose generation differs from the json's, so [`VectorIndex::open_or_create`]
//! detects it. Any missing, unreadable or inconsistent file (or a different dimension or scalar
//! kind) yields a fresh empty index with seq 0 and a warning: the store rebuilds it.
//!
//! ## Concurrency
//! usearch's `Index` is `Send + Sync`, and concurrent searches are safe as long as each has one
//! of the thread contexts reserved up front (beyond those, usearch *fails* the call). So: a
//! `RwLock` (searches and saves shared; upserts and removals exclusive — `reserve` reallocates)
//! plus a counting semaphore of [`VectorOptions::threads`] search slots.
//!
//! ## Scores and filters
//! Vectors are L2-normalised on the way in; a hit's score is the cosine similarity
//! `1 − distance`, clamped to [-1, 1]. A filter runs inside usearch's filtered HNSW search
//! (the predicate sees candidate keys while the graph is walked); when that returns fewer than
//! `k` hits and at most [`VectorOptions::brute_force_max`] keys pass the filter, an exact scan
//! of those keys answers instead, so very selective filters stay exact.

use super::{release_range, Hit, SearchError};
use parking_lot::{Condvar, Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use usearch::{Index, IndexOptions, MetricKind, ScalarKind};

/// Largest `k` served (larger values are capped).
pub const MAX_K: usize = 10_000;
const KEYS_MAGIC: &[u8; 8] = b"OVKEYS01";

/// Scalar type the vectors are stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VectorScalar {
    /// 32-bit floats (default). With usearch built without SIMD kernels
    /// (`default-features = false`) this is ~6× faster than f16 to build and search.
    F32,
    /// 16-bit floats: half the vector memory, same recall as f32 (measured), but without SIMD
    /// kernels every distance converts in software (~6× slower).
    F16,
}

impl VectorScalar {
    fn usearch(self) -> ScalarKind {
        match self {
            VectorScalar::F32 => ScalarKind::F32,
            VectorScalar::F16 => ScalarKind::F16,
        }
    }
}

/// HNSW and runtime settings.
#[derive(Debug, Clone, Copy)]
pub struct VectorOptions {
    /// Storage scalar kind.
    pub scalar: VectorScalar,
    /// HNSW connectivity (M).
    pub connectivity: usize,
    /// Candidate list size while inserting (ef_construction).
    pub expansion_add: usize,
    /// Candidate list size while searching (ef_search); `max(ef, k)` is used.
    pub expansion_search: usize,
    /// Concurrent searches allowed (usearch thread contexts reserved); more wait.
    pub threads: usize,
    /// Filtered searches that come back short are answered exactly when at most this many
    /// keys pass the filter.
    pub brute_force_max: usize,
}

impl Default for VectorOptions {
    fn default() -> Self {
        Self {
            scalar: VectorScalar::F32,
            connectivity: 32,
            expansion_add: 128,
            expansion_search: 64,
            threads: 16,
            brute_force_max: 20_000,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Meta {
    seq: u64,
    dim: usize,
    count: usize,
    generation: u64,
    scalar: VectorScalar,
}

struct Inner {
    index: Index,
    keys: BTreeSet<u64>,
}

/// A counting semaphore bounding concurrent usearch searches to the reserved thread contexts.
struct Slots {
    free: Mutex<usize>,
    cv: Condvar,
}

struct SlotGuard<'a>(&'a Slots);

impl Slots {
    fn acquire(&self) -> SlotGuard<'_> {
        let mut free = self.free.lock();
        while *free == 0 {
            self.cv.wait(&mut free);
        }
        *free -= 1;
        SlotGuard(self)
    }
}

impl Drop for SlotGuard<'_> {
    fn drop(&mut self) {
        *self.0.free.lock() += 1;
        self.0.cv.notify_one();
    }
}

/// The vector index of one model (see module docs).
pub struct VectorIndex {
    path: PathBuf,
    dim: usize,
    options: VectorOptions,
    inner: RwLock<Inner>,
    seq: AtomicU64,
    slots: Slots,
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s: OsString = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn path_str(path: &Path) -> Result<&str, SearchError> {
    path.to_str()
        .ok_or_else(|| SearchError::Index(format!("path {} is not UTF-8", path.display())))
}

fn normalized(v: &[f32]) -> Option<Vec<f32>> {
    if v.iter().any(|x| !x.is_finite()) {
        return None;
    }
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm.is_finite() && norm > 0.0 {
        Some(v.iter().map(|x| x / norm).collect())
    } else {
        None
    }
}

fn to_score(distance: f32) -> f32 {
    if distance.is_finite() {
        (1.0 - distance).clamp(-1.0, 1.0)
    } else {
        -1.0
    }
}

impl VectorIndex {
    /// Open the index at `path` (dimension `dim`) with default options; a missing, corrupt or
    /// mismatching index gives a fresh empty one with seq 0 (logged as a warning).
    pub fn open_or_create(path: &Path, dim: usize) -> Result<Self, SearchError> {
        Self::open_with(path, dim, VectorOptions::default())
    }

    /// [`Self::open_or_create`] with explicit options.
    pub fn open_with(path: &Path, dim: usize, options: VectorOptions) -> Result<Self, SearchError> {
        if dim == 0 {
            return Err(SearchError::Index("vector dimension must be > 0".into()));
        }
        path_str(path)?;
        let options = VectorOptions {
            threads: options.threads.max(1),
            ..options
        };
        let (inner, seq) = if path.exists() {
            match Self::load(path, dim, &options) {
                Ok(loaded) => loaded,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "vector index unusable; starting empty (it will be rebuilt)");
                    (Self::fresh(dim, &options)?, 0)
                }
            }
        } else {
            (Self::fresh(dim, &options)?, 0)
        };
        Ok(Self {
            path: path.to_path_buf(),
            dim,
            options,
            inner: RwLock::new(inner),
            seq: AtomicU64::new(seq),
            slots: Slots {
                free: Mutex::new(options.threads),
                cv: Condvar::new(),
            },
        })
    }

    fn usearch_options(dim: usize, o: &VectorOptions) -> IndexOptions {
        IndexOptions {
            dimensions: dim,
            metric: MetricKind::Cos,
            quantization: o.scalar.usearch(),
            connectivity: o.connectivity,
            expansion_add: o.expansion_add,
            expansion_search: o.expansion_search,
            multi: false,
        }
    }

    fn fresh(dim: usize, o: &VectorOptions) -> Result<Inner, SearchError> {
        let index = Index::new(&Self::usearch_options(dim, o)).map_err(super::index_err)?;
        index
            .reserve_capacity_and_threads(1024, o.threads)
            .map_err(super::index_err)?;
        Ok(Inner {
            index,
            keys: BTreeSet::new(),
        })
    }

    fn load(path: &Path, dim: usize, o: &VectorOptions) -> Result<(Inner, u64), SearchError> {
        let bad = |m: String| SearchError::Index(m);
        let meta: Meta = serde_json::from_slice(&std::fs::read(sibling(path, ".json"))?)
            .map_err(|e| bad(format!("sidecar json: {e}")))?;
        if meta.dim != dim {
            return Err(bad(format!("dimension {} on disk, {dim} wanted", meta.dim)));
        }
        if meta.scalar != o.scalar {
            return Err(bad(format!("scalar {:?} on disk, {:?} wanted", meta.scalar, o.scalar)));
        }
        let keys = read_keys(&sibling(path, ".keys"), meta.generation)?;
        let p = path_str(path)?;
        let head = Index::metadata(p).map_err(super::index_err)?;
        if head.dimensions != dim as u64 || head.quantization != o.scalar.usearch() || head.metric != MetricKind::Cos {
            return Err(bad(format!("index header {head:?} does not match")));
        }
        let index = Index::new(&Self::usearch_options(dim, o)).map_err(super::index_err)?;
        index.load(p).map_err(super::index_err)?;
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
        if let Some(k) = keys.iter().find(|k| !index.contains(**k)) {
            return Err(bad(format!("key {k} listed but not in the index")));
        }
        index
            .reserve_capacity_and_threads(index.size().max(1024), o.threads)
            .map_err(super::index_err)?;
        Ok((Inner { index, keys }, meta.seq))
    }

    /// Insert or replace vectors (any length-`dim`, finite, non-zero vectors; they are
    /// L2-normalised). The whole batch is validated before anything changes.
    pub fn upsert(&self, items: &[(u64, Vec<f32>)]) -> Result<(), SearchError> {
        let mut prepared = Vec::with_capacity(items.len());
        for (key, v) in items {
            if v.len() != self.dim {
                return Err(SearchError::InvalidQuery(format!(
                    "vector for key {key} has {} dimensions, index has {}",
                    v.len(),
                    self.dim
                )));
            }
            if *key == u64::MAX {
                return Err(SearchError::InvalidQuery("key u64::MAX is reserved".into()));
            }
            let n = normalized(v).ok_or_else(|| {
                SearchError::InvalidQuery(format!("vector for key {key} is zero or not finite"))
            })?;
            prepared.push((*key, n));
        }
        let mut inner = self.inner.write();
        let Inner { index, keys } = &mut *inner;
        let needed = index.size() + prepared.len();
        if index.capacity() < needed {
            let grown = needed.max(index.capacity() + index.capacity() / 2);
            index
                .reserve_capacity_and_threads(grown, self.options.threads)
                .map_err(super::index_err)?;
        }
        for (key, v) in &prepared {
            if keys.remove(key) {
                index.remove(*key).map_err(super::index_err)?;
            }
            index.add(*key, v.as_slice()).map_err(super::index_err)?;
            keys.insert(*key);
        }
        Ok(())
    }

    /// Remove every vector whose key belongs to release `rid`; returns how many were removed.
    pub fn remove_release(&self, rid: u64) -> Result<(), SearchError> {
        self.remove_range(release_range(rid)).map(|_| ())
    }

    /// Remove every key in `range`; returns how many were removed.
    pub fn remove_range(&self, range: std::ops::Range<u64>) -> Result<usize, SearchError> {
        let mut inner = self.inner.write();
        let doomed: Vec<u64> = inner.keys.range(range).copied().collect();
        for key in &doomed {
            inner.index.remove(*key).map_err(super::index_err)?;
            inner.keys.remove(key);
        }
        Ok(doomed.len())
    }

    /// Persist atomically (see module docs), recording the store sequence `seq`.
    pub fn save(&self, seq: u64) -> Result<(), SearchError> {
        let inner = self.inner.read();
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
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
        inner.index.save(path_str(&index_tmp)?).map_err(super::index_err)?;
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
            f.write_all(&serde_json::to_vec(&meta).map_err(super::index_err)?)?;
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

    /// Store sequence recorded by the last save (0 for a fresh index).
    pub fn seq(&self) -> u64 {
        self.seq.load(Ordering::SeqCst)
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.inner.read().keys.len()
    }

    /// True when the index holds no vectors.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Whether `key` is indexed.
    pub fn contains(&self, key: u64) -> bool {
        self.inner.read().keys.contains(&key)
    }

    /// The stored (normalised, possibly f16-rounded) vector of `key`.
    pub fn get(&self, key: u64) -> Result<Option<Vec<f32>>, SearchError> {
        let inner = self.inner.read();
        if !inner.keys.contains(&key) {
            return Ok(None);
        }
        let mut buf = vec![0f32; self.dim];
        let n = inner.index.get(key, &mut buf).map_err(super::index_err)?;
        Ok((n > 0).then_some(buf))
    }

    /// Change ef_search (candidate list size of searches).
    pub fn set_expansion_search(&self, ef: usize) {
        self.inner.write().index.change_expansion_search(ef.max(1));
    }

    /// The `k` nearest keys to `query` by cosine similarity, best first; with `filter`, only
    /// keys for which it returns true (see module docs).
    pub fn search(
        &self,
        query: &[f32],
        k: usize,
        filter: Option<&dyn Fn(u64) -> bool>,
    ) -> Result<Vec<Hit>, SearchError> {
        if query.len() != self.dim {
            return Err(SearchError::InvalidQuery(format!(
                "query has {} dimensions, index has {}",
                query.len(),
                self.dim
            )));
        }
        let q = normalized(query)
            .ok_or_else(|| SearchError::InvalidQuery("query vector is zero or not finite".into()))?;
        let k = k.min(MAX_K);
        let inner = self.inner.read();
        if k == 0 || inner.keys.is_empty() {
            return Ok(Vec::new());
        }
        let matches = {
            let _slot = self.slots.acquire();
            match filter {
                None => inner.index.search(q.as_slice(), k),
                Some(f) => inner.index.filtered_search(q.as_slice(), k, f),
            }
            .map_err(super::index_err)?
        };
        let mut hits: Vec<Hit> = matches
            .keys
            .iter()
            .zip(&matches.distances)
            .map(|(&term_id, &d)| Hit {
                term_id,
                score: to_score(d),
            })
            .collect();
        if let Some(f) = filter {
            if hits.len() < k {
                if let Some(exact) = self.scan(&inner, &q, k, f)? {
                    hits = exact;
                }
            }
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.term_id.cmp(&b.term_id)));
        Ok(hits)
    }

    /// Exact top-k over the keys passing `filter`, or `None` when more than
    /// `brute_force_max` keys pass.
    fn scan(
        &self,
        inner: &Inner,
        q: &[f32],
        k: usize,
        filter: &dyn Fn(u64) -> bool,
    ) -> Result<Option<Vec<Hit>>, SearchError> {
        let mut passing = Vec::new();
        for &key in &inner.keys {
            if filter(key) {
                if passing.len() >= self.options.brute_force_max {
                    return Ok(None);
                }
                passing.push(key);
            }
        }
        let mut buf = vec![0f32; self.dim];
        let mut hits = Vec::with_capacity(passing.len());
        for key in passing {
            if inner.index.get(key, &mut buf).map_err(super::index_err)? == 0 {
                continue;
            }
            let score = super::vector::cosine(q, &buf);
            hits.push(Hit { term_id: key, score });
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.term_id.cmp(&b.term_id)));
        hits.truncate(k);
        Ok(Some(hits))
    }
}

/// Cosine similarity of two vectors (0 when either is zero), clamped to [-1, 1].
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut na, mut nb) = (0f32, 0f32, 0f32);
    for (x, y) in a.iter().zip(b) {
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        0.0
    } else {
        (dot / (na.sqrt() * nb.sqrt())).clamp(-1.0, 1.0)
    }
}

fn write_keys(path: &Path, generation: u64, keys: &BTreeSet<u64>) -> Result<(), SearchError> {
    let f = std::fs::File::create(path)?;
    let mut w = BufWriter::new(f);
    w.write_all(KEYS_MAGIC)?;
    w.write_all(&generation.to_le_bytes())?;
    w.write_all(&(keys.len() as u64).to_le_bytes())?;
    for k in keys {
        w.write_all(&k.to_le_bytes())?;
    }
    let f = w.into_inner().map_err(|e| SearchError::Io(e.into_error()))?;
    f.sync_all()?;
    Ok(())
}

fn read_keys(path: &Path, generation: u64) -> Result<BTreeSet<u64>, SearchError> {
    let mut r = BufReader::new(std::fs::File::open(path)?);
    let mut word = [0u8; 8];
    r.read_exact(&mut word)?;
    if &word != KEYS_MAGIC {
        return Err(SearchError::Index("keys file has a bad magic".into()));
    }
    r.read_exact(&mut word)?;
    if u64::from_le_bytes(word) != generation {
        return Err(SearchError::Index("keys file is from another save (interrupted save?)".into()));
    }
    r.read_exact(&mut word)?;
    let n = u64::from_le_bytes(word);
    let mut keys = BTreeSet::new();
    for _ in 0..n {
        r.read_exact(&mut word)?;
        keys.insert(u64::from_le_bytes(word));
    }
    let mut rest = [0u8; 1];
    if r.read(&mut rest)? != 0 {
        return Err(SearchError::Index("keys file has trailing bytes".into()));
    }
    Ok(keys)
}
