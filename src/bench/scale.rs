//! `ontovec bench scale`: what a UMLS-sized store costs, by simulation — for each size `N` a
//! synthetic UMLS release of `N` MRCONSO rows is ingested into a store and its lexical index
//! built (two child processes, [`super::ingest_measures`]), then `N` synthetic clustered 384-d
//! vectors are loaded into the embedded vector index in the dtype and connectivity asked
//! (a third child, `ontovec bench vectors`). Each step reports wall time, the child's own peak
//! RSS and the bytes it left on disk; the vector step adds recall@10 against an exact scan and
//! single-query p50/p99. Then a projection to the size asked with `--project` (full UMLS:
//! ~15M strings) from the largest measured size: bytes linear in `N`, the HNSW build as
//! `N log N`.
//!
//! Embedding the strings is not part of it: that is the encoder's throughput
//! (`scripts/bench-embed.sh`), which the projection line quotes separately.

use super::{ingest_measures, run_measured, IngestMeasures};
use crate::search::vector::VectorScalar;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

/// What to run.
#[derive(Debug, Clone)]
pub struct ScaleBench {
    /// Sizes (MRCONSO rows = vectors), ascending.
    pub terms: Vec<u64>,
    /// Vector index scalar type and HNSW connectivity.
    pub vectors: (VectorScalar, usize),
    /// Queries for recall and latency.
    pub queries: usize,
    /// Timed single queries.
    pub requests: usize,
    /// Size to project to.
    pub project: u64,
}

/// One size's measurements.
#[derive(Debug, Clone)]
struct Row {
    n: u64,
    ingest: IngestMeasures,
    vectors: VectorMeasures,
}

/// The vector step of one size, parsed from the `bench vectors` child's table row.
#[derive(Debug, Clone, Default)]
struct VectorMeasures {
    load_s: f64,
    bytes_per_vector: f64,
    recall: f64,
    p50_ms: f64,
    p99_ms: f64,
    peak_rss: u64,
}

/// Runs the vector step for `n` vectors in a child and parses its result row.
fn vectors(n: u64, b: &ScaleBench) -> Result<VectorMeasures> {
    let (scalar, m) = b.vectors;
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(["bench", "vectors", "--concurrency", "1"])
        .arg("--n")
        .arg(n.to_string())
        .arg("--dtypes")
        .arg(format!("{scalar}:{m}"))
        .arg("--queries")
        .arg(b.queries.to_string())
        .arg("--requests")
        .arg(b.requests.to_string());
    let (ok, stdout, peak_rss) = run_measured(&mut cmd)?;
    if !ok {
        bail!("bench vectors --n {n} failed");
    }
    // | backend | vectors | load s | bytes/vector | recall@10 | recall@10 1% | conc | p50 | p99 | q/s |
    let row = stdout
        .lines()
        .find(|l| l.starts_with("| usearch"))
        .context("no result row in the output of bench vectors")?;
    let cells: Vec<&str> = row.split('|').map(str::trim).collect();
    let num = |i: usize| -> Result<f64> {
        cells
            .get(i)
            .and_then(|c| c.parse().ok())
            .with_context(|| format!("cell {i} of `{row}`"))
    };
    Ok(VectorMeasures {
        load_s: num(3)?,
        bytes_per_vector: num(4)?,
        recall: num(5)?,
        p50_ms: num(8)?,
        p99_ms: num(9)?,
        peak_rss,
    })
}

fn gb(bytes: f64) -> f64 {
    bytes / 1e9
}

/// Runs every size in `work` (one sub-directory each, removed after its row) and prints the
/// table and the projection.
pub fn run(b: &ScaleBench, work: &Path) -> Result<()> {
    let mut rows = Vec::new();
    for &n in &b.terms {
        let dir = work.join(format!("n{n}"));
        eprintln!("== {n} terms: store and lexical index");
        let ingest = ingest_measures(n, &dir)?;
        let _ = std::fs::remove_dir_all(&dir);
        eprintln!("== {n} terms: vector index");
        let vectors = vectors(n, b)?;
        rows.push(Row { n, ingest, vectors });
    }
    let (scalar, m) = b.vectors;
    println!(
        "| terms | store ingest s | ingest peak RSS GB | store disk GB | lexical build s | lexical peak RSS GB | lexical disk GB | vector load s ({scalar}, M={m}) | vector bytes/term | vector peak RSS GB (incl. the bench's f32 copy) | recall@10 | vector p50 / p99 ms |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let (i, v) = (&r.ingest, &r.vectors);
        println!(
            "| {} | {:.1} | {:.2} | {:.2} | {:.1} | {:.2} | {:.2} | {:.1} | {:.0} | {:.2} | {:.4} | {:.2} / {:.2} |",
            r.n,
            i.store_secs,
            gb(i.store_rss as f64),
            gb(i.store_bytes as f64),
            i.index_secs,
            gb(i.index_rss as f64),
            gb(i.index_bytes as f64),
            v.load_s,
            v.bytes_per_vector,
            gb(v.peak_rss as f64),
            v.recall,
            v.p50_ms,
            v.p99_ms
        );
    }
    if let Some(last) = rows.last() {
        project(last, b.project);
    }
    Ok(())
}

/// Prints the projection of `r` to `n` terms.
fn project(r: &Row, n: u64) {
    let f = n as f64 / r.n as f64;
    let nlogn = f * (n as f64).ln() / (r.n as f64).ln();
    let (i, v) = (&r.ingest, &r.vectors);
    let vector_mem = v.bytes_per_vector * n as f64;
    println!();
    println!(
        "projection to {n} terms from the {} run (bytes × {f:.1}, HNSW build × {nlogn:.1} for N log N):",
        r.n
    );
    println!("| measure | projected |");
    println!("|---|---|");
    println!("| store ingest | {:.0} min |", i.store_secs * f / 60.0);
    println!("| store on disk | {:.1} GB |", gb(i.store_bytes as f64 * f));
    println!(
        "| lexical index build | {:.0} min |",
        i.index_secs * f / 60.0
    );
    println!(
        "| lexical index on disk (memory-mapped) | {:.1} GB |",
        gb(i.index_bytes as f64 * f)
    );
    println!(
        "| vector index build | {:.0} min |",
        v.load_s * nlogn / 60.0
    );
    println!(
        "| vector index in memory (= on disk) | {:.1} GB |",
        gb(vector_mem)
    );
    println!(
        "| ingest peak RSS (streaming: grows with the staging batch, not N) | {:.2} GB measured at {} |",
        gb(i.store_rss as f64),
        r.n
    );
}
