//! `ontovec ingest | reindex | migrate`: load releases, bring the derived indexes up to date,
//! upgrade the store's schema — each a thin wrapper over [`crate::service`].

use super::args::DataArgs;
use crate::ontology::{Format, InputFile};
use crate::service::app::{App, AppConfig};
use crate::service::ingest::IngestRequest;
use crate::util::progress::{with_bar, Progress};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::PathBuf;

/// Flags of `ontovec ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Data directory options.
    #[command(flatten)]
    pub data: DataArgs,
    /// Input format (umls-rrf, rxnorm-rrf, loinc-csv, phecode-csv, icd10cm-xml, icd9cm-txt, icd9cm-csv, obo).
    #[arg(long, env = "ONTOVEC_FORMAT")]
    pub format: Format,
    /// Release label.
    #[arg(long, env = "ONTOVEC_RELEASE")]
    pub release: String,
    /// System name (default: the format's own, or the OBO `ontology:` header).
    #[arg(long, env = "ONTOVEC_SYSTEM")]
    pub system: Option<String>,
    /// Replace an existing release with the same label.
    #[arg(long)]
    pub replace: bool,
    /// Skip (exit 0) when this release is already loaded, instead of failing.
    #[arg(long)]
    pub if_absent: bool,
    /// Evaluation only: hold out this fraction of synonyms/inclusion terms from the store.
    #[arg(long, requires = "gold_out")]
    pub hold_out: Option<f64>,
    /// Where to write the held-out terms as a gold TSV (mention, system, code).
    #[arg(long)]
    pub gold_out: Option<PathBuf>,
    /// Only load the store; leave the derived indexes to `ontovec reindex` or the next
    /// `serve` (useful when loading several releases in a row).
    #[arg(long, env = "ONTOVEC_SKIP_INDEX")]
    pub skip_index: bool,
    /// Input files.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

/// Flags of `ontovec reindex`.
#[derive(Debug, Args)]
pub struct ReindexArgs {
    /// Data directory options.
    #[command(flatten)]
    pub data: DataArgs,
    /// Delete the indexes first and rebuild them from the store.
    #[arg(long)]
    pub rebuild: bool,
}

/// Flags of `ontovec migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Data directory options.
    #[command(flatten)]
    pub data: DataArgs,
}

/// `ontovec ingest`: load one release (terminology or notes) and index it.
pub fn ingest(a: IngestArgs) -> Result<()> {
    let IngestArgs {
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
    } = a;
    let cfg = data.app_config()?;
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
            crate::service::ingest::ingest_release(&app.store, &req, progress)
        } else {
            app.ingest(&req, progress)
        }
    });
    match outcome {
        Ok(r) => {
            println!("{}", serde_json::to_string_pretty(&r)?);
            Ok(())
        }
        Err(crate::service::ingest::IngestError::Store(
            crate::store::StoreError::ReleaseExists { system, release },
        )) if if_absent => {
            println!("{system} {release} is already loaded; skipped");
            Ok(())
        }
        Err(e) => bail!("ingest failed: {e}"),
    }
}

/// `ontovec reindex`: catch the derived indexes up with the store (or rebuild them).
pub fn reindex(a: ReindexArgs) -> Result<()> {
    let ReindexArgs { data, rebuild } = a;
    let cfg = data.app_config()?;
    if rebuild {
        let dir = cfg.indexes_dir();
        if dir.exists() {
            std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
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

/// `ontovec migrate`: upgrade the store's schema to this binary's version.
pub fn migrate(a: MigrateArgs) -> Result<()> {
    let MigrateArgs { data } = a;
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

/// SIGTERM / Ctrl-C cancel `progress` (work stops at its next batch boundary and saves what it
/// did); the process exits 4.5 s after the signal whatever still runs.
fn interruptible(progress: &std::sync::Arc<Progress>) {
    crate::service::background::cancel_on_signal(
        progress.clone(),
        std::time::Duration::from_millis(4500),
    );
}
