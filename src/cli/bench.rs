//! `ontovec bench ingest | load | normalize | vectors | scale | train | overload`: benchmarks that need whole processes or files.

use anyhow::{bail, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Ingest throughput and peak RSS on a synthetic UMLS release.
    Ingest {
        /// MRCONSO rows to generate.
        #[arg(long, default_value_t = 2_000_000)]
        rows: u64,
        /// Working directory (default: a temporary one).
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// req/s and p50/p99 of lexical, vector and hybrid search at several concurrencies, next
    /// to GET /health at the same concurrency (127.0.0.1 only, bounded request counts).
    Load {
        /// Where the server is.
        #[command(flatten)]
        server: BenchServer,
        /// Concurrent clients, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
        concurrency: Vec<usize>,
        /// Search modes, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "lexical,vector,hybrid")]
        modes: Vec<String>,
        /// Requests per (mode, concurrency) cell.
        #[arg(long, default_value_t = 400)]
        requests: usize,
    },
    /// Mentions/s of `/v1/normalize` with batches of 1,000 distinct mentions.
    Normalize(NormalizeBench),
    /// The vector backends side by side on the same synthetic clustered vectors: load time,
    /// bytes/vector, recall@10 vs exact (unfiltered and 1% filter), p50/p99 and queries/s.
    Vectors(VectorsBench),
    /// Memory, disk and time of a UMLS-sized store by simulation: for each size, a synthetic
    /// UMLS release ingested and indexed, and as many synthetic clustered vectors indexed, then
    /// a projection to `--project` terms.
    Scale {
        /// Sizes in MRCONSO rows (= vectors), comma-separated, ascending.
        #[arg(long, value_delimiter = ',', default_value = "1000000")]
        terms: Vec<u64>,
        /// The vector index's scalar type and connectivity (what `--vector-dtype i8` builds).
        #[arg(long, default_value = "i8:16", value_parser = crate::bench::vectors::parse_dtype)]
        vectors: (crate::search::vector::VectorScalar, usize),
        /// Queries for recall@10 and latency.
        #[arg(long, default_value_t = 100)]
        queries: usize,
        /// Timed single queries.
        #[arg(long, default_value_t = 1000)]
        requests: usize,
        /// Size to project to (full UMLS: ~15M strings).
        #[arg(long, default_value_t = 15_000_000)]
        project: u64,
        /// Working directory (default: a temporary one).
        #[arg(long)]
        work_dir: Option<PathBuf>,
    },
    /// The HiPrBERT training step (forward, both losses, backward, clipping, AdamW) vs the
    /// same step in PyTorch on the same workload, side by side.
    Train(TrainBenchArgs),
    /// Many clients on semantic (vector) search at once: every answer must be 200 or 429 with
    /// Retry-After, RSS is sampled, and single requests right after must succeed at once.
    Overload {
        /// Where the server is.
        #[command(flatten)]
        server: BenchServer,
        /// Concurrent clients.
        #[arg(long, default_value_t = 256)]
        clients: usize,
        /// Seconds of overload.
        #[arg(long, default_value_t = 20.0)]
        seconds: f64,
    },
}

/// `ontovec bench train`.
#[derive(Debug, Args, Clone)]
pub struct TrainBenchArgs {
    /// Base model folder.
    #[arg(long, default_value = "models/all-MiniLM-L6-v2")]
    pub base: PathBuf,
    /// Data dir with loaded hierarchies to sample training pairs from.
    #[arg(long, default_value = "data/ontovec")]
    pub data_dir: PathBuf,
    /// Timed steps.
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Untimed warm-up steps.
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Where to write the workload JSON the reference reads.
    #[arg(long, default_value = "target/train_bench_workload.json")]
    pub workload: PathBuf,
    /// Python with torch for the reference (`--python none` skips it).
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// The PyTorch reference script.
    #[arg(long, default_value = "scripts/bench_train_reference.py")]
    pub script: PathBuf,
    /// Threads for the reference (ours: `ONTOVEC_TRAIN_THREADS`, default all cores).
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
}

/// Mentions per second of `/v1/normalize` with large batches (one client; a warm-up batch
/// first, then `requests` timed ones, every batch distinct mentions from gold TSVs).
#[derive(Debug, Args, Clone)]
pub struct NormalizeBench {
    /// Where the server is.
    #[command(flatten)]
    pub server: BenchServer,
    /// Gold TSVs whose first column gives the mentions (repeat).
    #[arg(long = "mentions-from", required = true)]
    pub mentions_from: Vec<PathBuf>,
    /// Mentions per request.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Timed requests per mode.
    #[arg(long, default_value_t = 3)]
    pub requests: usize,
    /// Search modes, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "lexical,hybrid")]
    pub modes: Vec<String>,
}

/// Flags of `ontovec bench vectors`.
#[derive(Debug, Args, Clone)]
pub struct VectorsBench {
    /// Vectors to index.
    #[arg(long, default_value_t = 100_000)]
    pub n: usize,
    /// Dimension (all-MiniLM-L6-v2: 384).
    #[arg(long, default_value_t = 384)]
    pub dim: usize,
    /// Queries for recall.
    #[arg(long, default_value_t = 200)]
    pub queries: usize,
    /// Concurrencies, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
    pub concurrency: Vec<usize>,
    /// Timed queries per concurrency.
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// PostgreSQL + pgvector to compare with (a table `ontovec_vec_bench_*` is created and
    /// dropped); without it only usearch runs.
    #[arg(long, env = "ONTOVEC_VECTOR_STORE")]
    pub vector_store: Option<String>,
    /// HNSW m.
    #[arg(long, default_value_t = 16)]
    pub pg_hnsw_m: u32,
    /// HNSW ef_construction.
    #[arg(long, default_value_t = 64)]
    pub pg_ef_construction: u32,
    /// hnsw.ef_search.
    #[arg(long, default_value_t = 100)]
    pub pg_ef_search: u32,
    /// Store halfvec.
    #[arg(long)]
    pub pg_halfvec: bool,
    /// usearch indexes to build side by side, comma-separated: `f32`, `f16`, `i8`, each
    /// optionally with its HNSW connectivity (`i8:16`; default 32).
    #[arg(long, value_delimiter = ',', default_value = "f32", value_parser = crate::bench::vectors::parse_dtype)]
    pub dtypes: Vec<(crate::search::vector::VectorScalar, usize)>,
    /// After the main rows, measure again at each of these hnsw.ef_search values
    /// (comma-separated; same table, no rebuild).
    #[arg(long, value_delimiter = ',')]
    pub pg_ef_search_sweep: Vec<u32>,
    /// maintenance_work_mem (MiB) of the HNSW build after the bulk load.
    #[arg(long, default_value_t = 1024)]
    pub pg_maintenance_work_mem_mb: u32,
    /// Parallel maintenance workers of that build.
    #[arg(long, default_value_t = 2)]
    pub pg_build_workers: u32,
    /// After the main rows, measure each usearch index again at each of these ef_search
    /// values (comma-separated; same index, no rebuild).
    #[arg(long, value_delimiter = ',')]
    pub ef_search_sweep: Vec<usize>,
    /// Run only the Postgres side.
    #[arg(long)]
    pub skip_usearch: bool,
    /// Use the real vectors in this data directory's embedding cache (the directory must not
    /// be open in a server) instead of synthetic ones; `--n` and `--dim` are then ignored.
    #[arg(long, requires = "vector_id")]
    pub from_cache: Option<PathBuf>,
    /// With `--from-cache`: the vector id whose vectors to use (model name, `name@bf16` for
    /// vectors computed in BF16).
    #[arg(long)]
    pub vector_id: Option<String>,
    /// Use the vectors `--model` gives the lines of this text file (kept beside it for
    /// reruns) instead of synthetic ones; `--n` and `--dim` are then ignored.
    #[arg(long, requires = "model", conflicts_with = "from_cache")]
    pub from_texts: Option<PathBuf>,
    /// With `--from-texts`: the model folder that embeds them (precision `auto`).
    #[arg(long)]
    pub model: Option<PathBuf>,
}

/// The server a load benchmark talks to: a running one (`--url`), or one it starts over a data
/// directory on a free 127.0.0.1 port (RSS is then sampled from /proc).
#[derive(Debug, Args, Clone)]
pub struct BenchServer {
    /// Base URL of a running server (127.0.0.1); `bench load` also takes several,
    /// comma-separated (API nodes side by side; requests alternate between them).
    #[arg(long)]
    pub url: Option<String>,
    /// Data directory to serve (starts `ontovec serve` as a child).
    #[arg(long, conflicts_with = "url")]
    pub data_dir: Option<PathBuf>,
    /// Models directory of the started server.
    #[arg(long, default_value = "models")]
    pub models_dir: PathBuf,
    /// Restrict searches to these systems (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub systems: Option<Vec<String>>,
    /// Extra argument for the started `serve` (repeat), e.g. --serve-arg=--request-timeout-ms=5000.
    #[arg(long = "serve-arg", allow_hyphen_values = true)]
    pub serve_args: Vec<String>,
}

impl BenchServer {
    /// The running server to talk to, or one started over the data directory (kept alive by
    /// the returned child handle).
    fn target(
        self,
    ) -> Result<(
        crate::bench::load::Target,
        Option<crate::bench::load::Spawned>,
    )> {
        crate::bench::load::target(
            self.url,
            self.data_dir,
            &self.models_dir,
            self.systems,
            &self.serve_args,
        )
    }
}

/// `ontovec bench ...`.
pub fn run(what: BenchCommand) -> Result<()> {
    match what {
        BenchCommand::Ingest { rows, work_dir } => {
            let tmp = tempfile::tempdir()?;
            let work = work_dir.unwrap_or_else(|| tmp.path().to_path_buf());
            crate::bench::ingest(rows, &work)
        }
        BenchCommand::Scale {
            mut terms,
            vectors,
            queries,
            requests,
            project,
            work_dir,
        } => {
            terms.sort_unstable();
            if terms.first().is_none_or(|&n| n < 1000) {
                bail!("--terms: sizes of at least 1000");
            }
            let tmp = tempfile::tempdir()?;
            let work = work_dir.unwrap_or_else(|| tmp.path().to_path_buf());
            crate::bench::scale::run(
                &crate::bench::scale::ScaleBench {
                    terms,
                    vectors,
                    queries: queries.max(1),
                    requests: requests.max(1),
                    project,
                },
                &work,
            )
        }
        BenchCommand::Load {
            server,
            concurrency,
            modes,
            requests,
        } => {
            let (t, _child) = server.target()?;
            crate::bench::load::load(&t, &modes, &concurrency, requests)
        }
        BenchCommand::Normalize(b) => {
            let mentions = crate::bench::normalize::read_mentions(&b.mentions_from)?;
            let (t, _child) = b.server.target()?;
            crate::bench::normalize::normalize(&t, &mentions, b.batch, b.requests, &b.modes)
        }
        BenchCommand::Vectors(v) => {
            let conns = v.concurrency.iter().copied().max().unwrap_or(1).max(1);
            crate::bench::vectors::run(&crate::bench::vectors::VectorBench {
                n: v.n.max(100),
                dim: v.dim.max(2),
                queries: v.queries.max(1),
                concurrency: v.concurrency,
                requests: v.requests.max(1),
                postgres: v.vector_store,
                usearch: v.dtypes,
                from_cache: v.from_cache.zip(v.vector_id),
                from_texts: v.from_texts.zip(v.model),
                pg: crate::search::vector_store::postgres::PgOptions {
                    m: v.pg_hnsw_m,
                    ef_construction: v.pg_ef_construction,
                    ef_search: v.pg_ef_search,
                    halfvec: v.pg_halfvec,
                    connections: conns,
                    maintenance_work_mem_mb: v.pg_maintenance_work_mem_mb,
                    build_workers: v.pg_build_workers,
                    ..Default::default()
                },
                skip_usearch: v.skip_usearch,
                ef_sweep: v.pg_ef_search_sweep,
                usearch_ef_sweep: v.ef_search_sweep,
            })
        }
        BenchCommand::Train(a) => {
            crate::train::common::parallel::single_threaded_kernels();
            crate::bench::train::run(&crate::bench::train::TrainBench {
                base: a.base,
                data_dir: a.data_dir,
                steps: a.steps.max(1),
                warmup: a.warmup,
                workload: a.workload,
                python: (a.python != "none").then_some(a.python),
                script: a.script,
                threads: a.threads.max(1),
            })
        }
        BenchCommand::Overload {
            server,
            clients,
            seconds,
        } => {
            let (t, _child) = server.target()?;
            if !crate::bench::load::overload(&t, clients, seconds)? {
                bail!("the server did not hold up under overload");
            }
            Ok(())
        }
    }
}
