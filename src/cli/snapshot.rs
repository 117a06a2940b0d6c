//! `ontovec snapshot create | restore`: consistent copies of a data directory for read
//! replicas (the work is in [`crate::service::snapshot`]).

use super::args::DataArgs;
use crate::service::app::App;
use crate::service::snapshot;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Snapshot subcommands.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Write the store and every derived index, at one store sequence, to a directory or a
    /// `.tar` file (indexes are caught up first). The data directory must not be in use by a
    /// server (the store's lock refuses it).
    Create(CreateArgs),
    /// Verify a snapshot (checksums, versions, store sequence) and install it as a data
    /// directory; on any failure nothing is changed.
    Restore(RestoreArgs),
}

/// Flags of `ontovec snapshot create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Data directory to snapshot, and its models / vector store.
    #[command(flatten)]
    pub data: DataArgs,
    /// Where to write: a directory, or a file ending in `.tar`. Must not exist.
    pub out: PathBuf,
}

/// Flags of `ontovec snapshot restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The snapshot: a directory or a `.tar` file.
    pub snapshot: PathBuf,
    /// The data directory to create.
    #[arg(long, env = "ONTOVEC_DATA_DIR")]
    pub data_dir: PathBuf,
    /// Replace a data directory that exists and holds data.
    #[arg(long)]
    pub force: bool,
}

/// Run a snapshot subcommand; prints the manifest's summary as JSON.
pub fn run(cmd: SnapshotCommand) -> Result<()> {
    let m = match cmd {
        SnapshotCommand::Create(a) => {
            let cfg = a.data.app_config()?;
            let app = App::open(cfg).context("opening the data directory")?;
            snapshot::create(&app, &a.out)
                .with_context(|| format!("writing a snapshot to {}", a.out.display()))?
        }
        SnapshotCommand::Restore(a) => snapshot::restore(&a.snapshot, &a.data_dir, a.force)
            .with_context(|| format!("restoring {}", a.snapshot.display()))?,
    };
    println!(
        "{}",
        serde_json::json!({
            "store_seq": m.store_seq,
            "store_schema": m.store_schema,
            "vector_backend": m.vector_backend,
            "files": m.files.len(),
            "bytes": m.files.iter().map(|f| f.bytes).sum::<u64>(),
        })
    );
    Ok(())
}
