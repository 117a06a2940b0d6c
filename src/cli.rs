//! Command-line interface: argument parsing (clap, every flag also from the environment) kept
//! apart from the work, which lives in the library.

use crate::app::{App, AppConfig};
use crate::ingest::IngestRequest;
use crate::ontology::{Format, InputFile};
use crate::progress::{with_bar, Progress};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// ontovec: embedding database and semantic search server for medical terminologies.
#[derive(Debug, Parser)]
#[command(name = "ontovec", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Options shared by commands that open a data directory.
#[derive(Debug, Args, Clone)]
pub struct DataArgs {
    /// Data directory (store, indexes, uploads).
    #[arg(long, env = "ONTOVEC_DATA_DIR", default_value = "data/ontovec")]
    pub data_dir: PathBuf,
    /// Folder of model folders.
    #[arg(long, env = "ONTOVEC_MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API.
    Serve {
        /// Data directory options.
        #[command(flatten)]
        data: DataArgs,
        /// Address to listen on.
        #[arg(long, env = "ONTOVEC_ADDR", default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Bearer token required for write endpoints (required to bind a non-loopback address).
        #[arg(long, env = "ONTOVEC_AUTH_TOKEN")]
        auth_token: Option<String>,
        /// Largest ingest upload in bytes.
        #[arg(long, env = "ONTOVEC_MAX_UPLOAD_BYTES", default_value_t = 16 << 30)]
        max_upload_bytes: u64,
        /// Largest total of uploads staged on disk at once by all in-flight ingests (507 past it).
        #[arg(long, env = "ONTOVEC_MAX_STAGED_BYTES", default_value_t = 32 << 30)]
        max_staged_bytes: u64,
        /// Deadline of one request in milliseconds (uploads excepted); past it: 503 `deadline_exceeded`.
        #[arg(long, env = "ONTOVEC_REQUEST_TIMEOUT_MS", default_value_t = 30_000,
              value_parser = clap::value_parser!(u64).range(1..))]
        request_timeout_ms: u64,
        /// Origin allowed to call the API from a browser (CORS), e.g. https://app.example.org;
        /// repeat or separate with commas; `*` allows any. None by default.
        #[arg(
            long = "cors-origin",
            env = "ONTOVEC_CORS_ORIGINS",
            value_delimiter = ','
        )]
        cors_origins: Vec<String>,
        /// Texts that search/normalize/relatedness/embed requests may have waiting in the
        /// encoder at once; beyond it requests get 429 with Retry-After instead of queueing.
        #[arg(long, env = "ONTOVEC_MAX_INFLIGHT_TEXTS", default_value_t = 64,
              value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
        max_inflight_texts: u64,
    },
    /// Ingest a terminology release from files.
    Ingest {
        /// Data directory options.
        #[command(flatten)]
        data: DataArgs,
        /// Input format (umls-rrf, rxnorm-rrf, loinc-csv, phecode-csv, icd10cm-xml, icd9cm-txt, icd9cm-csv, obo).
        #[arg(long, env = "ONTOVEC_FORMAT")]
        format: Format,
        /// Release label.
        #[arg(long, env = "ONTOVEC_RELEASE")]
        release: String,
        /// System name (default: the format's own, or the OBO `ontology:` header).
        #[arg(long, env = "ONTOVEC_SYSTEM")]
        system: Option<String>,
        /// Replace an existing release with the same label.
        #[arg(long)]
        replace: bool,
        /// Skip (exit 0) when this release is already loaded, instead of failing.
        #[arg(long)]
        if_absent: bool,
        /// Evaluation only: hold out this fraction of synonyms/inclusion terms from the store.
        #[arg(long, requires = "gold_out")]
        hold_out: Option<f64>,
        /// Where to write the held-out terms as a gold TSV (mention, system, code).
        #[arg(long)]
        gold_out: Option<PathBuf>,
        /// Only load the store; leave the derived indexes to `ontovec reindex` or the next
        /// `serve` (useful when loading several releases in a row).
        #[arg(long, env = "ONTOVEC_SKIP_INDEX")]
        skip_index: bool,
        /// Input files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Bring the derived indexes (lexical, vectors) up to date with the store, or rebuild them.
    Reindex {
        /// Data directory options.
        #[command(flatten)]
        data: DataArgs,
        /// Delete the indexes first and rebuild them from the store.
        #[arg(long)]
        rebuild: bool,
    },
    /// Upgrade the store's schema to this binary's version.
    Migrate {
        /// Data directory options.
        #[command(flatten)]
        data: DataArgs,
    },
    /// Print the OpenAPI document (YAML).
    Openapi,
    /// Evaluate normalisation or relatedness against a data directory or a running server.
    Eval {
        /// What to evaluate.
        #[command(subcommand)]
        what: EvalCommand,
    },
    /// Train an embedding model from the loaded terminologies.
    Train {
        /// Which recipe.
        #[command(subcommand)]
        what: TrainCommand,
    },
    /// Write a synthetic corpus of coded clinical notes (notes-jsonl) from the ICD-10-CM and HPO
    /// releases in the store and the clinosim modules. The notes are synthetic, not real.
    SynthNotes {
        /// Notes to write.
        #[arg(long, default_value_t = 2000)]
        n: usize,
        /// Seed (the output is deterministic for a seed and store).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Output file (notes-jsonl).
        #[arg(long)]
        out: PathBuf,
        /// Data directory whose store holds ICD10CM (and HPO).
        #[arg(long, env = "ONTOVEC_DATA_DIR", default_value = "data/ontovec")]
        data_dir: PathBuf,
        /// clinosim download (modules/disease/reference_data/*.yaml).
        #[arg(long, default_value = "data/downloads/notes/clinosim")]
        clinosim: PathBuf,
        /// ICD-10-CM codes in the label pool besides clinosim's.
        #[arg(long, default_value_t = 300)]
        pool: usize,
        /// Share of long notes (> 4,000 tokens).
        #[arg(long, default_value_t = 0.05)]
        long_share: f64,
    },
    /// Benchmarks that need whole processes or generated files.
    Bench {
        /// What to measure.
        #[command(subcommand)]
        what: BenchCommand,
    },
}

/// Where an evaluation runs.
#[derive(Debug, Args, Clone)]
pub struct EvalTarget {
    /// Data directory options (in-process evaluation).
    #[command(flatten)]
    pub data: DataArgs,
    /// Evaluate a running server instead (e.g. http://127.0.0.1:8080).
    #[arg(long)]
    pub url: Option<String>,
    /// Terms model (default model when absent).
    #[arg(long)]
    pub model: Option<String>,
}

/// Evaluations.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// acc@1, acc@5, MRR of normalisation for lexical, vector and hybrid variants.
    Normalize {
        /// Gold TSV: mention, system, code.
        #[arg(long)]
        gold: PathBuf,
        /// Where to run.
        #[command(flatten)]
        target: EvalTarget,
    },
    /// ROC AUC per distance-category pair (0v1 ... 2v3) and their mean.
    Relatedness {
        /// Pairs TSV: text_a, text_b, distance 0-3.
        #[arg(long)]
        pairs: PathBuf,
        /// Where to run.
        #[command(flatten)]
        target: EvalTarget,
    },
}

/// Training recipes.
#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// HiPrBERT: hierarchy-aware fine-tuning of a BERT encoder (arXiv 2307.00266).
    Hiprbert {
        /// Base model folder (HF BERT layout: config.json, tokenizer.json, model.safetensors).
        #[arg(long, default_value = "models/all-MiniLM-L6-v2")]
        base: PathBuf,
        /// Data directory whose store holds the ontologies to train on.
        #[arg(long, env = "ONTOVEC_DATA_DIR", default_value = "data/ontovec")]
        data_dir: PathBuf,
        /// Output model folder, e.g. models/hiprbert-minilm (resumes from its checkpoint).
        #[arg(long)]
        out: PathBuf,
        /// quick (≤ 20 min on 2 cores) or full.
        #[arg(long, default_value = "quick")]
        preset: crate::train::Preset,
        /// JSON file overriding preset fields (see `TrainConfig`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// NoteContrast (arXiv 2412.11477): a code-sequence transformer (MLM) aligned with a
    /// windowed note encoder by symmetric InfoNCE; writes a notes model and a codes model.
    Notecontrast {
        /// Note encoder to start from (a terms model folder, e.g. the HiPrBERT model).
        #[arg(long, default_value = "models/all-MiniLM-L6-v2")]
        base: PathBuf,
        /// Data directory whose store holds the notes and the ICD releases.
        #[arg(long, env = "ONTOVEC_DATA_DIR", default_value = "data/ontovec")]
        data_dir: PathBuf,
        /// Output notes model folder, e.g. models/notecontrast (the codes model goes to
        /// `<out>-codes`); resumes from its checkpoint.
        #[arg(long)]
        out: PathBuf,
        /// quick (≤ 20 min on 2 cores) or full.
        #[arg(long, default_value = "quick")]
        preset: crate::train::Preset,
        /// JSON file overriding preset fields (see `NoteContrastConfig`).
        #[arg(long)]
        config: Option<PathBuf>,
    },
}

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

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("ONTOVEC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tantivy=warn,sled=warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Parse arguments and run.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Bench {
            what: BenchCommand::Ingest { rows, work_dir },
        } => {
            let tmp = tempfile::tempdir()?;
            let work = work_dir.unwrap_or_else(|| tmp.path().to_path_buf());
            crate::bench::ingest(rows, &work)
        }
        Command::Bench {
            what:
                BenchCommand::Load {
                    server,
                    concurrency,
                    modes,
                    requests,
                },
        } => {
            let (t, _child) = crate::bench::load::target(
                server.url,
                server.data_dir,
                &server.models_dir,
                server.systems,
                &server.serve_args,
            )?;
            crate::bench::load::load(&t, &modes, &concurrency, requests)
        }
        Command::Bench {
            what:
                BenchCommand::Overload {
                    server,
                    clients,
                    seconds,
                },
        } => {
            let (t, _child) = crate::bench::load::target(
                server.url,
                server.data_dir,
                &server.models_dir,
                server.systems,
                &server.serve_args,
            )?;
            if !crate::bench::load::overload(&t, clients, seconds)? {
                bail!("the server did not hold up under overload");
            }
            Ok(())
        }
        Command::Eval { what } => crate::eval_cli::run(what),
        Command::SynthNotes {
            n,
            seed,
            out,
            data_dir,
            clinosim,
            pool,
            long_share,
        } => {
            let store = crate::store::Store::open(&data_dir.join("store"))
                .with_context(|| format!("opening the store in {}", data_dir.display()))?;
            let cfg = crate::notes::synth::SynthConfig {
                n,
                seed,
                pool,
                long_share: long_share.clamp(0.0, 1.0),
            };
            let codes = crate::notes::synth::generate(&store, &clinosim, &cfg, &out)?;
            eprintln!(
                "wrote {n} synthetic notes with {codes} distinct ICD-10-CM codes to {}",
                out.display()
            );
            Ok(())
        }
        Command::Train {
            what:
                TrainCommand::Notecontrast {
                    base,
                    data_dir,
                    out,
                    preset,
                    config,
                },
        } => crate::train::notecontrast::run(crate::train::notecontrast::Args {
            base,
            data_dir,
            out,
            preset,
            config,
        }),
        Command::Train {
            what:
                TrainCommand::Hiprbert {
                    base,
                    data_dir,
                    out,
                    preset,
                    config,
                },
        } => crate::train::run_hiprbert(crate::train::HiprbertArgs {
            base,
            data_dir,
            out,
            preset,
            config,
        }),
        Command::Openapi => {
            print!("{}", crate::api::openapi::yaml());
            Ok(())
        }
        Command::Migrate { data } => {
            let cfg = AppConfig::new(&data.data_dir);
            let m = crate::store::migrate::migrate(&cfg.store_dir())?;
            println!(
                "store at {}: schema {} -> {}",
                cfg.store_dir().display(),
                m.from
                    .map(|v| v.to_string())
                    .unwrap_or_else(|| "new".into()),
                m.to
            );
            Ok(())
        }
        Command::Ingest {
            data,
            format,
            release,
            system,
            replace,
            if_absent,
            hold_out,
            gold_out,
            skip_index,
            files,
        } => {
            let mut cfg = AppConfig::new(&data.data_dir);
            cfg.models_dir = data.models_dir;
            let app = App::open(cfg).context("opening the store")?;
            let req = IngestRequest {
                format,
                release,
                system,
                files: files.into_iter().map(InputFile::from_path).collect(),
                replace,
                hold_out: hold_out.zip(gold_out),
            };
            if req.format.is_notes() {
                let outcome = with_bar(|progress| {
                    interruptible(&progress);
                    if skip_index {
                        app.load_notes(&req, &progress)
                    } else {
                        app.ingest_notes(&req, progress)
                    }
                });
                let r = outcome.map_err(|e| anyhow::anyhow!("ingest failed: {e}"))?;
                println!("{}", serde_json::to_string_pretty(&r)?);
                return Ok(());
            }
            let outcome = with_bar(|progress| {
                interruptible(&progress);
                if skip_index {
                    crate::ingest::ingest_release(&app.store, &req, progress)
                } else {
                    app.ingest(&req, progress)
                }
            });
            match outcome {
                Ok(r) => {
                    println!("{}", serde_json::to_string_pretty(&r)?);
                    Ok(())
                }
                Err(crate::ingest::IngestError::Store(
                    crate::store::StoreError::ReleaseExists { system, release },
                )) if if_absent => {
                    println!("{system} {release} is already loaded; skipped");
                    Ok(())
                }
                Err(e) => bail!("ingest failed: {e}"),
            }
        }
        Command::Reindex { data, rebuild } => {
            let mut cfg = AppConfig::new(&data.data_dir);
            cfg.models_dir = data.models_dir;
            if rebuild {
                let dir = cfg.indexes_dir();
                if dir.exists() {
                    std::fs::remove_dir_all(&dir)
                        .with_context(|| format!("removing {}", dir.display()))?;
                }
            }
            let app = App::open(cfg).context("opening the store")?;
            let t = std::time::Instant::now();
            let (outcome, cancelled) = with_bar(|progress| {
                interruptible(&progress);
                (app.sync_indexes(Some(&progress)), progress.is_cancelled())
            });
            if cancelled {
                app.store.flush()?;
                bail!("interrupted; what was indexed is saved: run `ontovec reindex` (without --rebuild) to go on");
            }
            outcome.context("indexing")?;
            println!(
                "{}",
                serde_json::json!({ "seconds": t.elapsed().as_secs_f64() })
            );
            Ok(())
        }
        Command::Serve {
            data,
            addr,
            auth_token,
            max_upload_bytes,
            max_staged_bytes,
            request_timeout_ms,
            cors_origins,
            max_inflight_texts,
        } => {
            if !addr.ip().is_loopback() && auth_token.is_none() {
                bail!("refusing to listen on non-loopback {addr} without --auth-token (writes would be open to the network)");
            }
            if auth_token.as_deref().is_some_and(|t| t.trim().is_empty()) {
                bail!("--auth-token must not be empty");
            }
            crate::api::cors_layer(&cors_origins).map_err(anyhow::Error::msg)?;
            let mut cfg = AppConfig::new(&data.data_dir);
            cfg.models_dir = data.models_dir;
            cfg.auth_token = auth_token;
            cfg.max_upload_bytes = max_upload_bytes;
            cfg.max_staged_bytes = max_staged_bytes;
            cfg.request_timeout = std::time::Duration::from_millis(request_timeout_ms);
            cfg.cors_origins = cors_origins;
            cfg.max_inflight_texts = max_inflight_texts as usize;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            let r = rt.block_on(crate::server::serve(cfg, addr));
            // blocking tasks stuck in dropped requests must not hold the exit
            rt.shutdown_timeout(std::time::Duration::from_millis(200));
            r
        }
    }
}

/// SIGTERM / Ctrl-C cancel `progress` (work stops at its next batch boundary and saves what it
/// did); the process exits 4.5 s after the signal whatever still runs.
fn interruptible(progress: &std::sync::Arc<Progress>) {
    crate::background::cancel_on_signal(progress.clone(), std::time::Duration::from_millis(4500));
}
