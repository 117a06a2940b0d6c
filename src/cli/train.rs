//! `ontovec train hiprbert | notecontrast` and `ontovec synth-notes`: the training recipes and
//! the synthetic notes corpus they can train on.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;

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
        TrainCommand::Notecontrast {
            base,
            data_dir,
            out,
            preset,
            config,
        } => crate::train::notecontrast::run(crate::train::notecontrast::Args {
            base,
            data_dir,
            out,
            preset,
            config,
        }),
        TrainCommand::Hiprbert {
            base,
            data_dir,
            out,
            preset,
            config,
        } => crate::train::run_hiprbert(crate::train::HiprbertArgs {
            base,
            data_dir,
            out,
            preset,
            config,
        }),
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
