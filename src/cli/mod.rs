//! Command-line interface: argument parsing (clap, every flag also from the environment) kept
//! apart from the work, which lives in the library. One file per command family: [`serve`],
//! [`store`] (ingest, reindex, migrate), [`snapshot`] (replicas), [`train`] (trainers, synthetic notes), [`eval`],
//! [`bench`]; [`args`] holds the flags they share. This file only dispatches.

pub mod args;
pub mod bench;
pub mod eval;
pub mod serve;
pub mod snapshot;
pub mod store;
pub mod train;

use anyhow::Result;
use clap::{Parser, Subcommand};

/// ontovec: embedding database and semantic search server for medical terminologies.
#[derive(Debug, Parser)]
#[command(name = "ontovec", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the HTTP API.
    Serve(serve::ServeArgs),
    /// Ingest a terminology release from files.
    Ingest(store::IngestArgs),
    /// Bring the derived indexes (lexical, vectors) up to date with the store, or rebuild them.
    Reindex(store::ReindexArgs),
    /// Upgrade the store's schema to this binary's version.
    Migrate(store::MigrateArgs),
    /// Print the OpenAPI document (YAML).
    Openapi,
    /// Evaluate normalisation or relatedness against a data directory or a running server.
    Eval {
        /// What to evaluate.
        #[command(subcommand)]
        what: eval::EvalCommand,
    },
    /// Train an embedding model from the loaded terminologies.
    Train {
        /// Which recipe.
        #[command(subcommand)]
        what: train::TrainCommand,
    },
    /// Write a synthetic corpus of coded clinical notes (notes-jsonl) from the ICD-10-CM and HPO
    /// releases in the store and the clinosim modules. The notes are synthetic, not real.
    SynthNotes(train::SynthNotesArgs),
    /// Snapshots of a data directory for read replicas (create, restore).
    Snapshot {
        /// create or restore.
        #[command(subcommand)]
        what: snapshot::SnapshotCommand,
    },
    /// Benchmarks that need whole processes or generated files.
    Bench {
        /// What to measure.
        #[command(subcommand)]
        what: bench::BenchCommand,
    },
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
        Command::Serve(a) => serve::run(a),
        Command::Ingest(a) => store::ingest(a),
        Command::Reindex(a) => store::reindex(a),
        Command::Migrate(a) => store::migrate(a),
        Command::Snapshot { what } => snapshot::run(what),
        Command::Openapi => {
            print!("{}", crate::api::openapi::yaml());
            Ok(())
        }
        Command::Eval { what } => eval::run(what),
        Command::Train { what } => train::train(what),
        Command::SynthNotes(a) => train::synth_notes(a),
        Command::Bench { what } => bench::run(what),
    }
}
