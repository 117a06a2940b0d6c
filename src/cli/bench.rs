//! `ontovec bench ingest | load | overload`: benchmarks that need whole processes or files.

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

/// The server a load benchmark talks to: a running one (`--url`), or one it starts over a data
/// directory on a free 127.0.0.1 port (RSS is then sampled from /proc).
#[derive(Debug, Args, Clone)]
pub struct BenchServer {
    /// Base URL of a running server (127.0.0.1).
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
        BenchCommand::Load {
            server,
            concurrency,
            modes,
            requests,
        } => {
            let (t, _child) = server.target()?;
            crate::bench::load::load(&t, &modes, &concurrency, requests)
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
