//! `ontovec bench vectors`: the two vector backends side by side on the same vectors — load
//! time, bytes per vector, recall@10 against an exact scan (unfiltered and with a 1% "system"
//! filter), and query p50/p99 and queries/s at several concurrencies.
//!
//! `--from-cache DATA_DIR --vector-id ID` uses the real vectors a data directory's embedding
//! cache holds for a model instead (some held out as queries); `--from-texts FILE --model DIR`
//! the vectors a model gives the lines of a text file ([`super::texts`]).
//!
//! `--dtypes f32,f16,i8` builds one usearch index per scalar type (optionally `i8:16`: with
//! HNSW connectivity 16), so compact vectors are measured against f32 in the same run; recall
//! is always against the exact f32 top 10.
//!
//! Vectors are synthetic but clustered like term embeddings (many near-duplicates around
//! concept centres, unit length), seeded, so both backends and every run see the same data.
//! Term ids put 90% of the vectors in release 1, 9% in release 2 and 1% in release 3; the
//! filtered recall searches release 3 only (a small system next to a big one).

use crate::search::vector::{VectorOptions, VectorScalar};
use crate::search::vector_store::postgres::{PgClient, PgOptions, PgStore};
use crate::search::vector_store::usearch::EmbeddedStore;
use crate::search::vector_store::{IndexState, VectorStore};
use anyhow::Result;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

/// What to run.
#[derive(Debug, Clone)]
pub struct VectorBench {
    /// Vectors to index.
    pub n: usize,
    /// Dimension.
    pub dim: usize,
    /// Queries for recall (each also timed).
    pub queries: usize,
    /// Concurrencies to time.
    pub concurrency: Vec<usize>,
    /// Timed queries per concurrency level.
    pub requests: usize,
    /// Postgres connection string (the usearch side always runs).
    pub postgres: Option<String>,
    /// Postgres tuning.
    pub pg: PgOptions,
    /// Leave out the usearch side (e.g. to re-run only Postgres).
    pub skip_usearch: bool,
    /// Further `hnsw.ef_search` values to measure the Postgres table at (no rebuild).
    pub ef_sweep: Vec<u32>,
    /// Further ef_search values to measure each usearch index at (no rebuild).
    pub usearch_ef_sweep: Vec<usize>,
    /// The usearch indexes to build, side by side: scalar type and HNSW connectivity (M).
    pub usearch: Vec<(VectorScalar, usize)>,
    /// Real vectors instead of synthetic ones: a data directory and the vector id whose
    /// embedding-cache entries to use (`all-MiniLM-L6-v2@bf16`); `queries` of them, drawn at
    /// random, are held out as the queries.
    pub from_cache: Option<(std::path::PathBuf, String)>,
    /// Real vectors of real strings instead: a text file (one string per line) and the model
    /// folder that embeds it ([`super::texts`]); `queries` of them held out as the queries.
    pub from_texts: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

/// Every vector the embedding cache of data directory `dir` holds for vector id `vid`.
fn cached_vectors(dir: &std::path::Path, vid: &str) -> Result<Vec<Vec<f32>>> {
    let store = crate::store::Store::open(&dir.join("store"))?;
    let tree = crate::search::cache::embedding_cache(&store)?;
    let mut prefix = vid.as_bytes().to_vec();
    prefix.push(0);
    let mut out = Vec::new();
    for kv in tree.scan_prefix(&prefix) {
        let (_, v) = kv?;
        out.push(crate::search::cache::decode_vector(&v));
    }
    anyhow::ensure!(
        !out.is_empty(),
        "no cached vectors of `{vid}` in {}",
        dir.display()
    );
    Ok(out)
}

/// Real vectors as bench data: shuffled (seeded), `q` held out as queries, the rest keyed
/// like [`data`]'s.
fn real_data(mut vecs: Vec<Vec<f32>>, q: usize) -> (Items, Vec<Vec<f32>>) {
    use rand::seq::SliceRandom;
    vecs.shuffle(&mut ChaCha8Rng::seed_from_u64(18));
    vecs.iter_mut().for_each(|v| unit(v));
    let queries = vecs.split_off(vecs.len().saturating_sub(q.min(vecs.len() / 2)));
    let items = vecs
        .into_iter()
        .enumerate()
        .map(|(i, v)| (key_of(i), v))
        .collect();
    (items, queries)
}

/// Term id of the `i`-th bench vector: 90% in release 1, 9% in release 2, 1% in release 3.
fn key_of(i: usize) -> u64 {
    let rid = match i % 100 {
        0 => 3,
        1..=9 => 2,
        _ => 1,
    };
    (rid << 40) | i as u64
}

/// A `--dtypes` entry: `f32`, `f16`, `i8`, optionally with the HNSW connectivity, `i8:16`
/// (default 32, the engine's).
pub fn parse_dtype(s: &str) -> Result<(VectorScalar, usize), String> {
    let (dtype, m) = match s.split_once(':') {
        Some((d, m)) => (
            d,
            m.parse::<usize>()
                .ok()
                .filter(|m| (2..=256).contains(m))
                .ok_or_else(|| format!("connectivity in `{s}` must be 2..=256"))?,
        ),
        None => (s, VectorOptions::default().connectivity),
    };
    Ok((dtype.trim().parse()?, m))
}

fn unit(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
    v.iter_mut().for_each(|x| *x /= n);
}

/// `n` unit vectors around `n / 20` cluster centres, and `q` queries near random members.
/// Keyed vectors.
type Items = Vec<(u64, Vec<f32>)>;
/// A backend under test: its label, the store, and how to measure its bytes on disk.
type Backend = (String, Arc<dyn VectorStore>, Box<dyn Fn() -> Result<u64>>);

fn data(n: usize, dim: usize, q: usize) -> (Items, Vec<Vec<f32>>) {
    let mut rng = ChaCha8Rng::seed_from_u64(18);
    let centres: Vec<Vec<f32>> = (0..(n / 20).max(1))
        .map(|_| {
            let mut c: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            unit(&mut c);
            c
        })
        .collect();
    let mut items = Vec::with_capacity(n);
    for i in 0..n {
        let c = &centres[rng.gen_range(0..centres.len())];
        let mut v: Vec<f32> = c.iter().map(|x| x + rng.gen_range(-0.08..0.08)).collect();
        unit(&mut v);
        items.push((key_of(i), v));
    }
    let queries = (0..q)
        .map(|_| {
            let base = &items[rng.gen_range(0..n)].1;
            let mut v: Vec<f32> = base
                .iter()
                .map(|x| x + rng.gen_range(-0.05..0.05))
                .collect();
            unit(&mut v);
            v
        })
        .collect();
    (items, queries)
}

fn exact(items: &[(u64, Vec<f32>)], q: &[f32], k: usize, rid: Option<u64>) -> Vec<u64> {
    let mut s: Vec<(f32, u64)> = items
        .iter()
        .filter(|(id, _)| rid.is_none_or(|r| id >> 40 == r))
        .map(|(id, v)| (crate::util::vector::dot(q, v), *id))
        .collect();
    s.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    s.into_iter().take(k).map(|x| x.1).collect()
}

fn recall(
    store: &dyn VectorStore,
    queries: &[Vec<f32>],
    truth: &[Vec<u64>],
    rid: Option<u64>,
) -> Result<f64> {
    let allowed: Option<HashSet<u64>> = rid.map(|r| [r].into_iter().collect());
    let mut hit = 0usize;
    let mut all = 0usize;
    for (q, t) in queries.iter().zip(truth) {
        let got: HashSet<u64> = store
            .search(q, 10, allowed.as_ref())?
            .iter()
            .map(|h| h.term_id)
            .collect();
        hit += t.iter().filter(|id| got.contains(id)).count();
        all += t.len();
    }
    Ok(hit as f64 / all.max(1) as f64)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// p50 ms, p99 ms, queries/s of `requests` top-10 searches from `threads` threads.
fn timed(
    store: &Arc<dyn VectorStore>,
    queries: &Arc<Vec<Vec<f32>>>,
    threads: usize,
    requests: usize,
) -> Result<(f64, f64, f64)> {
    let per = requests.div_ceil(threads);
    let t = Instant::now();
    let handles: Vec<_> = (0..threads)
        .map(|w| {
            let (s, q) = (store.clone(), queries.clone());
            std::thread::spawn(move || -> Result<Vec<f64>, crate::search::SearchError> {
                let mut lat = Vec::with_capacity(per);
                for i in 0..per {
                    let query = &q[(w * per + i) % q.len()];
                    let t = Instant::now();
                    s.search(query, 10, None)?;
                    lat.push(t.elapsed().as_secs_f64() * 1e3);
                }
                Ok(lat)
            })
        })
        .collect();
    let mut lat = Vec::new();
    for h in handles {
        lat.extend(
            h.join()
                .map_err(|_| anyhow::anyhow!("bench thread panicked"))??,
        );
    }
    let secs = t.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    Ok((pct(&lat, 0.5), pct(&lat, 0.99), lat.len() as f64 / secs))
}

fn dir_bytes(p: &std::path::Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Run the benchmark and print a Markdown table (one row per backend and concurrency).
pub fn run(b: &VectorBench) -> Result<()> {
    let (items, queries) = match (&b.from_cache, &b.from_texts) {
        (Some((dir, vid)), _) => real_data(cached_vectors(dir, vid)?, b.queries),
        (None, Some((file, model))) => real_data(super::texts::embed_file(file, model)?, b.queries),
        (None, None) => {
            eprintln!(
                "generating {} vectors of {} dims and {} queries",
                b.n, b.dim, b.queries
            );
            data(b.n, b.dim, b.queries)
        }
    };
    let (n, dim) = (items.len(), items.first().map_or(b.dim, |i| i.1.len()));
    eprintln!("{n} vectors of {dim} dims, {} queries", queries.len());
    let b = &VectorBench {
        n,
        dim,
        ..b.clone()
    };
    let truth: Vec<Vec<u64>> = queries.iter().map(|q| exact(&items, q, 10, None)).collect();
    let truth_f: Vec<Vec<u64>> = queries
        .iter()
        .map(|q| exact(&items, q, 10, Some(3)))
        .collect();
    let queries = Arc::new(queries);
    let tmp = tempfile::tempdir()?;
    let mut backends: Vec<Backend> = Vec::new();
    let mut embedded: Vec<(String, Arc<EmbeddedStore>)> = Vec::new();
    let mut cleanup: Vec<Arc<PgStore>> = Vec::new();
    let pg_name = format!("bench_{}", std::process::id());
    let dir = tmp.path().to_path_buf();
    for &(scalar, m) in b.usearch.iter().filter(|_| !b.skip_usearch) {
        let options = VectorOptions {
            scalar,
            connectivity: m,
            ..VectorOptions::default()
        };
        // one directory each: bytes/vector is everything the index keeps on disk (= in memory)
        let dir = dir.join(format!("{scalar}-{m}"));
        std::fs::create_dir_all(&dir)?;
        let store = Arc::new(EmbeddedStore::open_with(&dir, "bench", b.dim, options)?);
        embedded.push((
            format!("usearch (embedded, {scalar}, M={m})"),
            store.clone(),
        ));
        let usearch: Arc<dyn VectorStore> = store;
        backends.push((
            format!(
                "usearch (embedded, {scalar}, M={m}, ef={})",
                options.expansion_search
            ),
            usearch,
            Box::new(move || Ok(dir_bytes(&dir))),
        ));
    }
    if let Some(url) = &b.postgres {
        let client = PgClient::new(url, b.pg)?;
        let name = pg_name.clone();
        let pg = Arc::new(PgStore::new(client.clone(), &name, b.dim));
        let label = format!(
            "pgvector ({}, m={}, ef_construction={}, ef_search={})",
            if b.pg.halfvec { "halfvec" } else { "vector" },
            b.pg.m,
            b.pg.ef_construction,
            b.pg.ef_search
        );
        let size_of = pg.clone();
        backends.push((
            label,
            pg.clone(),
            Box::new(move || Ok(size_of.table_bytes()?)),
        ));
        cleanup.push(pg);
    }
    println!("| backend | vectors | load s | bytes/vector | recall@10 | recall@10, 1% filter | concurrency | p50 ms | p99 ms | queries/s |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for (label, store, size) in &backends {
        // a catch-up as the engine runs it: begin (a backend may pick its bulk path), upserts
        // in batches, commit (Postgres builds the HNSW index after a bulk load there)
        let t = Instant::now();
        let mut terms = std::collections::BTreeMap::new();
        for (id, _) in &items {
            *terms.entry(id >> 40).or_insert(0u64) += 1;
        }
        store.begin_catch_up(&terms)?;
        for chunk in items.chunks(1000) {
            store.upsert(chunk)?;
        }
        let rows = t.elapsed().as_secs_f64();
        store.commit(&IndexState {
            seq: 1,
            rids: terms.keys().copied().collect(),
        })?;
        let load = t.elapsed().as_secs_f64();
        eprintln!(
            "{label}: rows in {rows:.1} s, commit (index build when deferred) {:.1} s",
            load - rows
        );
        let bytes = size()? as f64 / b.n as f64;
        let r = recall(store.as_ref(), &queries, &truth, None)?;
        let rf = recall(store.as_ref(), &queries, &truth_f, Some(3))?;
        for &c in &b.concurrency {
            let (p50, p99, qps) = timed(store, &queries, c.max(1), b.requests)?;
            println!(
                "| {label} | {} | {load:.1} | {bytes:.0} | {r:.4} | {rf:.4} | {c} | {p50:.2} | {p99:.2} | {qps:.0} |",
                b.n
            );
        }
    }
    for (label, store) in &embedded {
        for &ef in &b.usearch_ef_sweep {
            store.set_expansion_search(ef);
            let dynstore: Arc<dyn VectorStore> = store.clone();
            let r = recall(dynstore.as_ref(), &queries, &truth, None)?;
            let rf = recall(dynstore.as_ref(), &queries, &truth_f, Some(3))?;
            for &c in &b.concurrency {
                let (p50, p99, qps) = timed(&dynstore, &queries, c.max(1), b.requests)?;
                println!(
                    "| {label}, same index, ef={ef} | {} | — | — | {r:.4} | {rf:.4} | {c} | {p50:.2} | {p99:.2} | {qps:.0} |",
                    b.n
                );
            }
        }
    }
    for pg in &cleanup {
        for &ef in &b.ef_sweep {
            // a second client whose connections search with another ef_search, same table
            let opts = PgOptions {
                ef_search: ef,
                ..b.pg
            };
            let store: Arc<dyn VectorStore> = Arc::new(PgStore::new(
                PgClient::new(b.postgres.as_deref().unwrap_or_default(), opts)?,
                &pg_name,
                b.dim,
            ));
            let r = recall(store.as_ref(), &queries, &truth, None)?;
            let rf = recall(store.as_ref(), &queries, &truth_f, Some(3))?;
            for &c in &b.concurrency {
                let (p50, p99, qps) = timed(&store, &queries, c.max(1), b.requests)?;
                println!(
                    "| pgvector, same table, ef_search={ef} | {} | — | — | {r:.4} | {rf:.4} | {c} | {p50:.2} | {p99:.2} | {qps:.0} |",
                    b.n
                );
            }
        }
        pg.drop_table()?;
    }
    Ok(())
}
