//! The two folders a NoteContrast run writes, both served by the registry:
//! * `<out>` (kind `notes`): the note encoder (the base folder; its weights unchanged, or with
//!   the tuned top layers when the run trained them), the projection head and the code vectors
//!   ([`crate::notes::coding`]), the dev-tuned threshold, the evaluation and a model card;
//! * `<out>-codes` (kind `codes`): the code-sequence BERT with a word-level tokenizer of
//!   `SYSTEM:CODE` tokens.

use super::eval::{eval_table, tuning_table, METHODS};
use super::{codes_dir, Args, Report};
use crate::domain::model::ConceptRef;
use crate::eval::coding::CodingMetrics;
use crate::notes::coding::{CodingManifest, CodingModel, CodingTensors};
use crate::train::common::bert::TrainBert;
use crate::train::common::card::{self, Bars, Card, Curves};
use crate::util::fs::{write_atomic, write_atomic_with};
use std::fmt::Write as _;

/// `trained_by` of both folders.
pub const TRAINED_BY: &str = concat!("ontovec notecontrast ", env!("CARGO_PKG_VERSION"));

fn folder_name(p: &std::path::Path) -> String {
    p.file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default()
}

/// Write both folders: the coder over `vocab` (the label space), the code encoder with one
/// token per code of `tokens` (the training vocabulary: the rows of its word embeddings);
/// `encoder` the note encoder when the run tuned it (else the base weights are copied).
#[allow(clippy::too_many_arguments)]
pub fn write(
    args: &Args,
    code: &TrainBert,
    encoder: Option<&TrainBert>,
    tensors: &CodingTensors<'_>,
    vocab: &[ConceptRef],
    tokens: &[ConceptRef],
    mut coding: CodingManifest,
    r: &Report,
) -> anyhow::Result<()> {
    let out = &args.out;
    let cdir = codes_dir(out);
    let (name, cname) = (folder_name(out), folder_name(&cdir));
    let base = folder_name(&args.base);
    let eval = serde_json::to_value(&r.eval)?;
    // notes model
    card::copy_base_files(&args.base, out)?;
    write_atomic_with(&out.join("model.safetensors"), |tmp| match encoder {
        Some(e) => e.save(tmp).map_err(std::io::Error::other),
        None => std::fs::copy(args.base.join("model.safetensors"), tmp).map(drop),
    })?;
    CodingModel::write(out, vocab, tensors)?;
    coding.codes_model = cname.clone();
    let window = coding.window;
    let manifest = serde_json::json!({
        "name": name, "kind": "notes", "base": base, "pooling": "mean",
        "max_len": window.window, "trained_by": TRAINED_BY, "default": true,
        "eval": {"test": eval, "test_all_codes": r.eval_all_codes, "data": r.data},
        "notecontrast": coding,
        "training": {"steps": r.steps, "stopped_by_time_budget": r.stopped_by_time,
            "train_secs": r.train_secs, "session_secs": r.session_secs, "config": r.config},
    });
    let curves = Curves::from_logs(
        &format!("{name}: NoteContrast training"),
        ["InfoNCE loss (sequence + code)", "MLM loss"],
        &r.loss_log,
        &r.dev_log,
        "dev split (dev-tuned threshold), trained coder as served",
    );
    card::write_card(
        out,
        &Card {
            manifest: &manifest,
            markdown: card_markdown(&name, &cname, &base, r),
            curves: Some(&curves),
            bars: Some(&eval_bars(&r.eval)),
        },
    )?;
    // codes model
    std::fs::create_dir_all(&cdir)?;
    write_atomic(&cdir.join("config.json"), code.config.to_json().as_bytes())?;
    write_atomic_with(&cdir.join("model.safetensors"), |tmp| code.save(tmp))?;
    let tokens: Vec<String> = tokens
        .iter()
        .map(|c| crate::train::notecontrast::codeseq::token(&c.system, &c.code))
        .collect();
    crate::train::notecontrast::codeseq::write_tokenizer(&cdir.join("tokenizer.json"), &tokens)?;
    let cmanifest = serde_json::json!({
        "name": cname, "kind": "codes", "base": format!("{name} (code-sequence encoder)"),
        "pooling": "mean", "max_len": r.config.max_codes, "trained_by": TRAINED_BY,
        "default": true, "eval": {"test": eval},
    });
    card::write_manifest(&cdir, &cmanifest)
}

/// The test-split table as bars: per headline metric, one bar per method.
pub fn eval_bars(eval: &std::collections::BTreeMap<String, CodingMetrics>) -> Bars {
    let methods: Vec<&str> = METHODS
        .iter()
        .copied()
        .filter(|m| eval.contains_key(*m))
        .collect();
    type Get = fn(&CodingMetrics) -> f64;
    let metrics: [(&str, Get); 7] = [
        ("micro-F1", |m| m.micro_f1),
        ("macro-F1 (gold codes)", |m| m.macro_f1),
        ("micro-AUC", |m| m.micro_auc),
        ("P@5", |m| m.p_at_5),
        ("R@8", |m| m.recall_at_8),
        ("R@20", |m| m.recall_at_20),
        ("rare R@20", |m| m.rare_recall_at_20),
    ];
    Bars {
        title: "held-out test split, by method (same run)".into(),
        series: methods.iter().map(|m| m.to_string()).collect(),
        groups: metrics
            .iter()
            .map(|(label, get)| {
                (
                    label.to_string(),
                    methods.iter().map(|m| get(&eval[*m])).collect(),
                )
            })
            .collect(),
    }
}

fn card_markdown(name: &str, cname: &str, base: &str, r: &Report) -> String {
    let c = &r.config;
    let mut s = String::new();
    let _ = writeln!(s, "# {name} (+ {cname})\n");
    let _ = writeln!(
        s,
        "NoteContrast (arXiv 2412.11477) rebuilt in candle by `{TRAINED_BY}`. **Trained and \
         evaluated on synthetic notes** (`ontovec synth-notes`) unless the store held real ones.\n\n\
         * Note encoder: `{base}` over overlapping windows, token-weighted mean of the window \
         vectors, then a learned linear projection (the transformer is frozen).\n\
         * Coding: {}.\n\
         * Code encoder `{cname}`: a {}-layer BERT over code tokens, embeddings initialised from \
         the code descriptions, MLM with {:.0}% masking.\n\
         * Loss: {} × symmetric InfoNCE (note ↔ code sequence) + {} × note ↔ single-code InfoNCE \
         + {} × MLM; learnable temperatures (init {}).\n",
        if c.segments.is_some() {
            format!(
                "attention over the note's segments (sentences, list items, header lines, \
                 each embedded by `{base}`): per-segment projection and learned gate, a code \
                 scores the gated soft maximum (τ = {}) of its cosines with the segments",
                c.attn_temperature
            )
        } else {
            "the projected pooled note vector against each code vector".to_string()
        },
        c.code_layers,
        c.mlm_rate * 100.0,
        c.w_seq,
        c.w_code,
        c.w_mlm,
        c.init_temperature
    );
    let _ = writeln!(
        s,
        "{} steps of {} notes ({:.0} s{}), seed {}.\n\nData: {}\n",
        r.steps,
        c.batch_notes,
        r.train_secs,
        if r.stopped_by_time {
            ", stopped by the time budget"
        } else {
            ""
        },
        c.seed,
        r.data
    );
    let _ = writeln!(s, "## Held-out test split (same run)\n");
    let _ = writeln!(
        s,
        "Thresholds tuned on dev for micro-F1. `bm25`: the note against code descriptions, \
         inclusion terms and synonyms; `zero_shot_base`: pooled base-encoder note vector vs the \
         base encoder's description embedding; `zero_shot_segments`: the same over segments with open \
         gates; `untrained`: this architecture at step 0; `trained_pooled`: the trained model \
         scoring with the pooled note vector only; `trained`: after training; `trained_blend`: \
         with the description blend chosen on dev for codes seen in few training notes (as \
         served, before diversification). Rare \
         codes: 1–{} training notes. Candidates: the codes of the training notes (the code \
         encoder's tokens); a test gold code never seen in training ({} codes, {} occurrences \
         here) is a miss in micro-F1, recall and the gold-code macro-F1. Macro-F1 (gold codes): \
         mean per-code F1 over the codes with a gold test note. Macro-F1 (label-wise): the \
         standard mean over every candidate, a candidate with neither a gold test note nor a \
         prediction (F1 0/0) excluded, false-positive-only codes counted with F1 0.\n",
        c.rare_max_train,
        r.data["test_gold_unseen_in_training"]["codes"],
        r.data["test_gold_unseen_in_training"]["occurrences"],
    );
    s.push_str(&eval_table(&r.eval));
    if !r.eval_all_codes.is_empty() {
        let _ = writeln!(
            s,
            "\n## The same over every code of the store's systems ({} codes)\n\nThe table above \
             ranks the codes of the training notes; this one ranks every code of the systems \
             (the served label space; codes no training note carries, test-only ones included, \
             are encoded from their description embeddings by the trained code encoder).\n",
            r.data["label_space"]
        );
        s.push_str(&eval_table(&r.eval_all_codes));
        s.push_str(
            "\n`trained_diverse` is the order `/v1/notes/code` returns: the served scores \
             diversified across categories and best segments.\n",
        );
    }
    if !r.tuning.is_empty() {
        let _ = writeln!(
            s,
            "\n## Serving options tried on the dev split\n\nEach option measured on dev over \
             the whole label space; the best MAP + R@8 + R@20 + rare R@20 is written \
             (`blend=w`: the description embedding blended into codes with few training notes \
             at weight w·h/(h+n), plain order; `segment=p`: the diversification penalty per \
             picked code with the same best segment, on the chosen blend). Chosen: {}.\n",
            r.serving
        );
        s.push_str(&tuning_table(&r.tuning));
    }
    s
}
