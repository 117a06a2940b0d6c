//! NoteContrast training (arXiv 2412.11477): `ontovec train notecontrast`.
//!
//! This file holds the run's configuration and report; the leaves import it: [`data`] (notes,
//! windows, segment embeddings), [`codeseq`] (the code-sequence encoder), [`model`] (parameters
//! and the loss step), [`eval`] (the table of methods; the metrics are [`crate::eval::coding`]),
//! [`train`] (the loop), [`output`] (the notes and codes folders).
//!
//! The paper aligns a long-document note encoder (BigBird, 8,192 tokens) with a RoBERTa-style
//! ICD code-sequence encoder by a symmetric InfoNCE loss with a learnable temperature, trained
//! jointly with masked-language modelling of the code sequences, then codes notes. Here:
//!
//! * **Note side**: the base terms encoder (e.g. the HiPrBERT model) over overlapping windows,
//!   pooled ([`crate::notes::windows`]), then a learned linear projection `W x + b` (initialised
//!   to the identity) and unit norm. By default the encoder's transformer is **frozen**: window
//!   and segment embeddings are computed once (and cached in the checkpoint folder).
//!   `encoder_layers: k` fine-tunes its top `k` layers ([`tuned`]: the states below them are
//!   cached, a step runs only the top layers over its notes' windows and segments, at their
//!   own rate `encoder_lr`, anchored like the rest); the written notes folder then carries the
//!   tuned weights (`standard` and `full` tune one layer; `quick` keeps it frozen to stay in
//!   its budget). The whole encoder through 8k-token notes does not fit a CPU budget.
//! * **Coding side** (our departure from the paper, which compares one note vector with one code
//!   vector): the note's segments ([`crate::notes::segments`]: sentences, list items, header
//!   lines), each embedded by the same frozen encoder, get their own learned projection and a
//!   learned gate `log σ(w·s + b)`, and a code scores the gated soft maximum of its cosines with
//!   the segments (temperature `attn_temperature`; [`crate::notes::coding`]). A pooled vector
//!   has to stand for every condition of a note at once, negated and resolved ones included;
//!   attending over segments lets a rare condition named in one sentence win, and the gate
//!   learns to silence negated and historical mentions. `segments: null` trains the pooled
//!   scoring instead; the evaluation reports both.
//! * **Code side**: [`crate::train::notecontrast::codeseq`], a small BERT over code tokens (description-initialised),
//!   trained end to end by the trainer's differentiable forward ([`crate::train::common::bert::TrainBert`]).
//! * **Loss** = `w_seq · L_seq + w_code · L_code + w_mlm · L_mlm`:
//!   `L_seq` the paper's symmetric InfoNCE between a batch's notes and their code sequences
//!   (logit scale `exp(s)` learnable, init 1/0.07, capped at 100); `L_code` (our addition) a
//!   multi-positive InfoNCE between each note (segment-attention scores) and single codes (the
//!   batch's codes plus random negatives; its own learnable scale), because coding ranks single
//!   codes against a note and
//!   the sequence loss alone never shows the model one code at a time; `L_mlm` the code
//!   encoder's MLM (20% masking). Defaults 1 / 1 / 0.5: the MLM term regularises the code
//!   encoder and is halved so the alignment terms lead.
//! * **Anchoring**: AdamW decays every parameter toward its starting value (L2-SP,
//!   `anchor_decay` 10), so a code seen in a handful of training notes stays near its
//!   description's embedding instead of drifting with the few notes it has (on CodiEsp the
//!   unanchored 800-step run fell below zero-shot on rare codes).
//! * **Machinery** reused from the HiPrBERT trainer: [`crate::train::common::bert`] (forward, dropout),
//!   [`crate::train::common::optim`] (AdamW, warm-up/decay, clipping, accumulation), [`crate::train::common::checkpoint`]
//!   (atomic, resumable: parameters, moments, step, RNG), [`crate::train::hiprbert::output`] (folder copy),
//!   presets and `--config` overrides.
//!
//! Evaluation (held-out notes, split by patient): the trained model against BM25 of the note
//! over code descriptions, the base encoder zero-shot (pooled note vector, and segments with
//! open gates, against description embeddings) and the untrained NoteContrast model (step 0),
//! same run; metrics in [`crate::eval::coding`], the BM25 baseline in [`crate::eval::bm25`].

pub mod codeseq;
pub mod data;
pub mod eval;
mod model;
pub mod output;
mod serving;
pub mod train;
mod tuned;

use crate::eval::coding::CodingMetrics;
use crate::notes::segments::SegmentConfig;
use crate::train::common::checkpoint::DevPoint;
use crate::train::common::config::Preset;
use crate::train::common::optim::AdamWConfig;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub use train::{run, train};

/// Arguments of `ontovec train notecontrast` (the trainers share their shape).
pub type Args = crate::train::common::config::RunArgs;

/// Every knob of a run (a `--config` JSON overrides any subset).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NoteContrastConfig {
    /// Optimizer steps.
    pub steps: u64,
    /// Notes per step.
    pub batch_notes: usize,
    /// Random negative codes per step for `L_code` (drawn from the training notes' codes).
    pub negatives: usize,
    /// Code encoder layers.
    pub code_layers: usize,
    /// Code encoder heads (must divide the note encoder's width).
    pub code_heads: usize,
    /// Codes per sequence at most.
    pub max_codes: usize,
    /// AdamW.
    pub optimizer: AdamWConfig,
    /// Warm-up share of steps.
    pub warmup_frac: f64,
    /// Gradient-norm bound.
    pub clip_norm: f64,
    /// MLM masking rate.
    pub mlm_rate: f64,
    /// Weights of the three losses.
    pub w_seq: f64,
    /// Weight of the note–single-code loss.
    pub w_code: f64,
    /// Weight of MLM.
    pub w_mlm: f64,
    /// Initial temperature of both InfoNCE terms.
    pub init_temperature: f64,
    /// Code encoder dropout.
    pub dropout: f32,
    /// Seed.
    pub seed: u64,
    /// Held-out shares per mille (by patient, else note id): test, then dev; unused when notes
    /// carry their own split (`meta.split`).
    pub test_permille: u32,
    /// Dev share per mille.
    pub dev_permille: u32,
    /// Codes with 1..=this many training notes are "rare".
    pub rare_max_train: usize,
    /// Notes used at most (0 = all), first by nid.
    pub max_notes: usize,
    /// Body tokens per note at most.
    pub max_tokens: usize,
    /// Checkpoint every this many steps.
    pub checkpoint_every: u64,
    /// Training time budget, seconds.
    pub max_train_secs: Option<u64>,
    /// Log every this many steps.
    pub log_every: u64,
    /// Measure the dev curve (micro-F1, micro-AUC, R@8 of the coder on the dev split, threshold
    /// tuned there) every this many steps, and at step 0 and the end (0 = never).
    #[serde(default)]
    pub dev_every: u64,
    /// Code scoring by attention over note segments (`null`: the pooled note vector only).
    pub segments: Option<SegmentConfig>,
    /// Temperature of the soft maximum over segments.
    pub attn_temperature: f32,
    /// Label space of the written coder: every code of the store's ICD systems (`true`; codes
    /// no training note carries are encoded from their description embeddings) or only the
    /// codes the training notes carry.
    pub all_codes: bool,
    /// When some notes carry their own split (`meta.split`, e.g. CodiEsp), notes without one
    /// join the training split as augmentation (`true`) or are left out (`false`).
    #[serde(default = "yes")]
    pub augment: bool,
    /// Keep the checkpoint folder (parameters, cached note features) after a finished run, so
    /// running the same command again skips training and only re-evaluates and rewrites the
    /// folders (e.g. after a change to the ranking). Not part of the fingerprint.
    #[serde(default)]
    pub keep_checkpoint: bool,
    /// What the run tunes on the dev split for the served coder (not part of the fingerprint).
    #[serde(default)]
    pub serving: ServingConfig,
    /// Top layers of the note encoder fine-tuned (0: frozen; see [`tuned`]).
    #[serde(default)]
    pub encoder_layers: usize,
    /// Peak learning rate of the tuned note-encoder layers (the heads use `optimizer.lr`).
    #[serde(default = "default_encoder_lr")]
    pub encoder_lr: f64,
    /// Tokens a step runs through the tuned layers' backward (the sequences with the largest
    /// gradient; see [`tuned`]).
    #[serde(default = "default_encoder_tokens")]
    pub encoder_tokens: usize,
    /// Recompute every training sequence's bank vector this often (steps; 0: never).
    #[serde(default = "default_encoder_refresh")]
    pub encoder_refresh_every: u64,
}

fn default_encoder_lr() -> f64 {
    5e-5
}

fn default_encoder_tokens() -> usize {
    8192
}

fn default_encoder_refresh() -> u64 {
    200
}

/// Serving choices a run tunes on its dev split over the whole label space (see
/// [`crate::notes::coding`] and [`crate::notes::rank`]): each option is measured on dev, and
/// the one with the best MAP + R@8 + R@20 + rare R@20 is written.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ServingConfig {
    /// Description blend weights `w` tried (0: the trained score alone).
    pub blend: Vec<f32>,
    /// Segment penalties of the diversification tried (0: categories only).
    pub segment_penalty: Vec<f32>,
    /// Category penalty of the diversification.
    pub category_penalty: f32,
}

impl Default for ServingConfig {
    fn default() -> Self {
        Self {
            blend: vec![0.0, 0.15, 0.3, 0.5, 0.7],
            segment_penalty: vec![0.0, 0.02, 0.05, 0.1],
            category_penalty: crate::notes::rank::DEFAULT_PENALTY,
        }
    }
}

/// Settings that only shape logging, checkpoints, the time budget or the evaluation, left out
/// of the fingerprint so a run resumes (or re-evaluates) across changes to them.
const NOT_FINGERPRINTED: [&str; 7] = [
    "max_train_secs",
    "log_every",
    "checkpoint_every",
    "dev_every",
    "keep_checkpoint",
    "rare_max_train",
    "serving",
];

fn yes() -> bool {
    true
}

/// Decay of every parameter toward its starting value (see [`AdamWConfig::anchor_decay`]).
const ANCHOR_DECAY: f64 = 10.0;

impl NoteContrastConfig {
    /// A preset.
    pub fn preset(p: Preset) -> Self {
        let base = Self {
            steps: 800,
            batch_notes: 64,
            negatives: 256,
            code_layers: 2,
            code_heads: 6,
            max_codes: 32,
            // anchored to where the run starts (L2-SP; the code tokens start from the code
            // descriptions): on CodiEsp dev, 800 steps without it lost rare codes over the whole
            // label space (rare R@20 0.131, below zero-shot's 0.164; served MAP 0.146), with
            // `anchor_decay` 10 (the one value tried) rare R@20 0.188 and MAP 0.180 (README,
            // Notes → CodiEsp)
            optimizer: AdamWConfig {
                lr: 5e-4,
                anchor_decay: ANCHOR_DECAY,
                ..Default::default()
            },
            warmup_frac: 0.05,
            clip_norm: 1.0,
            mlm_rate: 0.2,
            w_seq: 1.0,
            w_code: 1.0,
            w_mlm: 0.5,
            init_temperature: 0.07,
            dropout: 0.1,
            seed: 23,
            test_permille: 150,
            dev_permille: 100,
            rare_max_train: 10,
            max_notes: 1500,
            max_tokens: 8192,
            checkpoint_every: 100,
            max_train_secs: Some(8 * 60),
            log_every: 50,
            dev_every: 100,
            segments: Some(SegmentConfig::default()),
            attn_temperature: 0.05,
            all_codes: true,
            augment: true,
            keep_checkpoint: false,
            serving: ServingConfig::default(),
            encoder_layers: 0,
            encoder_lr: default_encoder_lr(),
            encoder_tokens: default_encoder_tokens(),
            encoder_refresh_every: default_encoder_refresh(),
        };
        // `quick` keeps the note encoder frozen: on CodiEsp its 800 steps take 524 s that way and
        // 1,615 s with the top layer tuned, past the quick budget. `standard` and `full` tune
        // the top layer: on CodiEsp dev (800 steps, README, Notes → CodiEsp) served MAP 0.180 →
        // 0.273, rare R@20 0.188 → 0.229.
        match p {
            Preset::Quick => base,
            Preset::Standard => Self {
                steps: 2000,
                encoder_layers: 1,
                max_notes: 0,
                checkpoint_every: 200,
                dev_every: 200,
                max_train_secs: Some(110 * 60),
                ..base
            },
            Preset::Full => Self {
                steps: 4000,
                code_layers: 4,
                encoder_layers: 1,
                max_notes: 0,
                optimizer: AdamWConfig {
                    lr: 3e-4,
                    ..base.optimizer.clone()
                },
                checkpoint_every: 250,
                dev_every: 250,
                max_train_secs: None,
                ..base
            },
        }
    }

    /// Preset with a JSON file laid over it.
    pub fn load(p: Preset, file: Option<&Path>) -> anyhow::Result<Self> {
        crate::train::common::config::with_overrides(Self::preset(p), file)
    }

    fn fingerprint(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(m) = v.as_object_mut() {
            for k in NOT_FINGERPRINTED {
                m.remove(k);
            }
            // a frozen encoder fingerprints as before these settings existed (runs resume)
            if self.encoder_layers == 0 {
                for k in [
                    "encoder_layers",
                    "encoder_lr",
                    "encoder_tokens",
                    "encoder_refresh_every",
                ] {
                    m.remove(k);
                }
            }
        }
        format!(
            "{:016x}",
            crate::util::hash::fnv1a64(v.to_string().as_bytes())
        )
    }
}

/// What a run produced.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// Configuration.
    pub config: NoteContrastConfig,
    /// Steps done.
    pub steps: u64,
    /// Whether the time budget ended training.
    pub stopped_by_time: bool,
    /// Training seconds.
    pub train_secs: f64,
    /// Seconds of this session in all.
    pub session_secs: f64,
    /// Notes (train, dev, test), vocabulary size, rare codes.
    pub data: serde_json::Value,
    /// Metrics on the test split per method.
    pub eval: BTreeMap<String, CodingMetrics>,
    /// The same over the whole label space (every code of the store's systems; empty when
    /// `all_codes` is off or the notes use every code already).
    #[serde(default)]
    pub eval_all_codes: BTreeMap<String, CodingMetrics>,
    /// (step, InfoNCE loss (sequence + code), MLM loss) per step.
    #[serde(default)]
    pub loss_log: Vec<(u64, f32, f32)>,
    /// Dev curve per evaluation step.
    #[serde(default)]
    pub dev_log: Vec<DevPoint>,
    /// The serving options tried over the whole label space, measured on the dev split
    /// (`blend=w` on the plain order, then `segment=p` on the chosen blend), and the choice.
    #[serde(default)]
    pub tuning: Vec<(String, CodingMetrics)>,
    /// The chosen options: `{"blend": w, "diversity": {...}}`.
    #[serde(default)]
    pub serving: serde_json::Value,
}

/// The codes model folder written next to a notes model folder.
pub fn codes_dir(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "notecontrast".into());
    out.with_file_name(format!("{name}-codes"))
}
