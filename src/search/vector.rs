//! Vector index for one embedding model: usearch HNSW with the cosine metric.
//!
//! ## Keys
//! Keys are term ids; the set of keys is mirrored in a sorted [`KeySet`] so a release
//! (`term_id >> 40`) can be removed as one key range, filters can be sampled, and the keys can
//! be persisted next to the index.
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
//! kind) yields a fresh empty index with seq 0 and a warning: the store rebuilds it. Loading and
//! saving live in `vector/files.rs`.
//!
//! ## Concurrency
//! usearch's `Index` is `Send + Sync`, and concurrent searches are safe as long as each has one
//! of the thread contexts reserved up front (beyond those, usearch *fails* the call). So: a
//! `RwLock` (searches and saves shared; upserts and removals exclusive — `reserve` reallocates)
//! plus a counting semaphore of [`VectorOptions::threads`] search slots. Inside one upsert, the
//! adds run on [`VectorOptions::add_threads`] threads (HNSW insertion is the slow part).
//!
//! ## Scalar types
//! [`VectorOptions::scalar`]: f32, f16 or i8 (`vector/scalar.rs`), distances on usearch's NumKong
//! SIMD kernels. i8 vectors are quantized here ([`to_i8`]), queries too; [`VectorIndex::get`]
//! and exact scans see them dequantized to unit length. An index file records its type and is
//! never opened as another.
//!
//! ## Scores and filters
//! Vectors are L2-normalised on the way in; a hit's score is the cosine similarity
//! `1 − distance`, clamped to [-1, 1].
//!
//! A filtered search first estimates how many keys pass the filter from an evenly spaced sample
//! of 1,024 keys. Few passing keys → an exact scan of them (recall 1, and much faster than a
//! filtered graph walk, which must visit ~1/selectivity times more nodes: measured 22–37 ms at
//! 5 % of 50k). Exact is chosen when the estimate `p` satisfies `p ≤ brute_force_max` and
//! `p² ≤ ef·M·n` (scan cost `p` vs graph cost `≈ ef·M/(p/n)` distances). Otherwise usearch's
//! filtered HNSW search runs (the predicate sees candidate keys during the walk), and if it
//! returns fewer than `k` hits an exact scan (bounded by `brute_force_max`) answers instead.

use super::keyset::KeySet;
use super::{release_range, Hit, SearchError};
use crate::util::vector::cosine;
use files::path_str;
use parking_lot::{Condvar, Mutex, RwLock};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use usearch::{Index, IndexOptions, MetricKind};

mod files;
mod scalar;

pub use scalar::{to_i8, VectorScalar};

/// Largest `k` served (larger values are capped).
pub const MAX_K: usize = 10_000;

/// Keys removed per write-lock hold by [`VectorIndex::remove_range`].
pub const REMOVE_CHUNK: usize = 4096;

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
    /// Largest number of keys passing a filter that may be scanned exactly (see module docs);
    /// 0 disables exact scans.
    pub brute_force_max: usize,
    /// Threads adding vectors inside one upsert.
    pub add_threads: usize,
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
            add_threads: std::thread::available_parallelism().map_or(2, |n| n.get().min(8)),
        }
    }
}

impl VectorOptions {
    /// The engine's options for an index of `scalar` vectors: the defaults, except that an i8
    /// index links each node to 16 neighbours instead of 32, so vector and graph together stay
    /// under 600 bytes at 384 dimensions (541 measured, recall@10 0.997 vs exact f32 at 100k:
    /// README, compact vectors).
    pub fn for_scalar(scalar: VectorScalar) -> Self {
        let defaults = VectorOptions::default();
        VectorOptions {
            scalar,
            connectivity: match scalar {
                VectorScalar::I8 => 16,
                _ => defaults.connectivity,
            },
            ..defaults
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
    keys: KeySet,
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
    brute_force_max: AtomicUsize,
}

/// A query vector for an index of `dim` dimensions, scaled to unit length (any vector
/// backend checks a query the same way).
pub(crate) fn checked_query(query: &[f32], dim: usize) -> Result<Vec<f32>, SearchError> {
    if query.len() != dim {
        return Err(SearchError::InvalidQuery(format!(
            "query has {} dimensions, index has {dim}",
            query.len()
        )));
    }
    normalized(query)
        .ok_or_else(|| SearchError::InvalidQuery("query vector is zero or not finite".into()))
}

/// `v` scaled to unit length; `None` when it is zero or holds a value that is not finite.
pub(crate) fn normalized(v: &[f32]) -> Option<Vec<f32>> {
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
        let add_threads = options.add_threads.max(1);
        let options = VectorOptions {
            threads: options.threads.max(add_threads),
            add_threads,
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
            brute_force_max: AtomicUsize::new(options.brute_force_max),
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
            keys: KeySet::default(),
        })
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
        // the last occurrence of a key in the batch wins
        let mut seen = HashSet::with_capacity(prepared.len());
        prepared.reverse();
        prepared.retain(|(k, _)| seen.insert(*k));
        prepared.reverse();

        let mut inner = self.inner.write();
        let Inner { index, keys } = &mut *inner;
        let needed = index.size() + prepared.len();
        if index.capacity() < needed {
            let grown = needed.max(index.capacity() + index.capacity() / 2);
            index
                .reserve_capacity_and_threads(grown, self.options.threads)
                .map_err(super::index_err)?;
        }
        let mut removed = Vec::new();
        for (key, _) in &prepared {
            if keys.contains(*key) {
                index.remove(*key).map_err(super::index_err)?;
                removed.push(*key);
            }
        }
        keys.remove_many(&removed);
        let threads = self
            .options
            .add_threads
            .min(prepared.len().div_ceil(32))
            .max(1);
        let per = prepared.len().div_ceil(threads).max(1);
        let index: &Index = index;
        let scalar = self.options.scalar;
        let results: Vec<(Vec<u64>, Option<SearchError>)> = std::thread::scope(|s| {
            let handles: Vec<_> = prepared
                .chunks(per)
                .map(|chunk| {
                    s.spawn(move || {
                        let mut added = Vec::with_capacity(chunk.len());
                        for (key, v) in chunk {
                            let result = match scalar {
                                VectorScalar::I8 => index.add(*key, to_i8(v).as_slice()),
                                _ => index.add(*key, v.as_slice()),
                            };
                            if let Err(e) = result {
                                return (added, Some(super::index_err(e)));
                            }
                            added.push(*key);
                        }
                        (added, None)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        (
                            Vec::new(),
                            Some(SearchError::Index("vector add thread panicked".into())),
                        )
                    })
                })
                .collect()
        });
        let mut first_err = None;
        for (added, err) in results {
            keys.insert_many(added);
            if first_err.is_none() {
                first_err = err;
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Remove every vector whose key belongs to release `rid`; returns how many were removed.
    pub fn remove_release(&self, rid: u64) -> Result<(), SearchError> {
        self.remove_range(release_range(rid)).map(|_| ())
    }

    /// Remove every key in `range`; returns how many were removed. Works in chunks of
    /// [`REMOVE_CHUNK`] keys, taking the write lock per chunk: searches run between chunks
    /// (a replaced release's vectors disappear gradually; its terms are gone from the store).
    pub fn remove_range(&self, range: std::ops::Range<u64>) -> Result<usize, SearchError> {
        let mut removed = 0;
        loop {
            let mut inner = self.inner.write();
            let doomed = inner.keys.drain_range_max(range.clone(), REMOVE_CHUNK);
            if doomed.is_empty() {
                return Ok(removed);
            }
            for (i, key) in doomed.iter().enumerate() {
                if let Err(e) = inner.index.remove(*key) {
                    // keep the mirror truthful: keys not yet removed are still indexed
                    inner.keys.insert_many(doomed[i..].to_vec());
                    return Err(super::index_err(e));
                }
            }
            removed += doomed.len();
        }
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
        self.inner.read().keys.contains(key)
    }

    /// The stored vector of `key` (unit length; rounded to the index's scalar type).
    pub fn get(&self, key: u64) -> Result<Option<Vec<f32>>, SearchError> {
        let inner = self.inner.read();
        if !inner.keys.contains(key) {
            return Ok(None);
        }
        let mut buf = vec![0f32; self.dim];
        Ok(self.stored(&inner, key, &mut buf)?.then_some(buf))
    }

    /// The stored vector of `key` into `buf` (unit length); false when it is not there.
    fn stored(&self, inner: &Inner, key: u64, buf: &mut [f32]) -> Result<bool, SearchError> {
        if self.options.scalar != VectorScalar::I8 {
            return Ok(inner.index.get(key, buf).map_err(super::index_err)? > 0);
        }
        let mut q = vec![0i8; self.dim];
        if inner.index.get(key, &mut q).map_err(super::index_err)? == 0 {
            return Ok(false);
        }
        let norm = q.iter().map(|&x| (x as f32).powi(2)).sum::<f32>().sqrt();
        for (b, &x) in buf.iter_mut().zip(&q) {
            *b = if norm > 0.0 { x as f32 / norm } else { 0.0 };
        }
        Ok(true)
    }

    /// Change [`VectorOptions::brute_force_max`] (0 = always use the filtered graph search).
    pub fn set_brute_force_max(&self, n: usize) {
        self.brute_force_max.store(n, Ordering::Relaxed);
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
        let q = checked_query(query, self.dim)?;
        let k = k.min(MAX_K);
        let inner = self.inner.read();
        if k == 0 || inner.keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut hits = match filter {
            None => self.graph_search(&inner, &q, k, None)?,
            Some(f) => match self.exact_candidates(&inner, f) {
                Some(keys) => self.scan(&inner, &q, k, keys)?,
                None => {
                    let hits = self.graph_search(&inner, &q, k, Some(f))?;
                    match (hits.len() < k).then(|| self.passing(&inner, f)).flatten() {
                        Some(keys) => self.scan(&inner, &q, k, keys)?,
                        None => hits,
                    }
                }
            },
        };
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.term_id.cmp(&b.term_id)));
        Ok(hits)
    }

    fn graph_search(
        &self,
        inner: &Inner,
        q: &[f32],
        k: usize,
        filter: Option<&dyn Fn(u64) -> bool>,
    ) -> Result<Vec<Hit>, SearchError> {
        let qi = (self.options.scalar == VectorScalar::I8).then(|| to_i8(q));
        let matches = {
            let _slot = self.slots.acquire();
            match (filter, &qi) {
                (None, None) => inner.index.search(q, k),
                (None, Some(qi)) => inner.index.search(qi.as_slice(), k),
                (Some(f), None) => inner.index.filtered_search(q, k, f),
                (Some(f), Some(qi)) => inner.index.filtered_search(qi.as_slice(), k, f),
            }
            .map_err(super::index_err)?
        };
        Ok(matches
            .keys
            .iter()
            .zip(&matches.distances)
            .map(|(&term_id, &d)| Hit {
                term_id,
                score: to_score(d),
            })
            .collect())
    }

    /// The keys passing `filter` when an exact scan is expected to beat the graph (see module
    /// docs), else `None`.
    fn exact_candidates(&self, inner: &Inner, filter: &dyn Fn(u64) -> bool) -> Option<Vec<u64>> {
        const SAMPLE: usize = 1024;
        let n = inner.keys.len();
        let sampled = SAMPLE.min(n).max(1);
        let pass = inner.keys.sample(SAMPLE).filter(|k| filter(*k)).count();
        let estimate = pass * n / sampled;
        let graph_cost =
            inner.index.expansion_search().max(1) * self.options.connectivity.max(1) * n;
        if estimate > self.brute_force_max.load(Ordering::Relaxed)
            || estimate.saturating_mul(estimate) > graph_cost
        {
            return None;
        }
        self.passing(inner, filter)
    }

    /// All keys passing `filter`, or `None` if more than `brute_force_max` do.
    fn passing(&self, inner: &Inner, filter: &dyn Fn(u64) -> bool) -> Option<Vec<u64>> {
        let mut out = Vec::new();
        for key in inner.keys.iter() {
            if filter(key) {
                if out.len() >= self.brute_force_max.load(Ordering::Relaxed) {
                    return None;
                }
                out.push(key);
            }
        }
        Some(out)
    }

    /// Exact top-k of `q` over `keys`.
    fn scan(
        &self,
        inner: &Inner,
        q: &[f32],
        k: usize,
        keys: Vec<u64>,
    ) -> Result<Vec<Hit>, SearchError> {
        let mut buf = vec![0f32; self.dim];
        let mut hits = Vec::with_capacity(keys.len());
        for key in keys {
            if !self.stored(inner, key, &mut buf)? {
                continue;
            }
            hits.push(Hit {
                term_id: key,
                score: cosine(q, &buf),
            });
        }
        hits.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.term_id.cmp(&b.term_id)));
        hits.truncate(k);
        Ok(hits)
    }
}
