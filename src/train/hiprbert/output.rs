//! The trained model folder: what the server loads as a terms model.
//!
//! `model.safetensors` (HF tensor names as in the base), everything else of the base copied
//! (config.json, tokenizer files, modules.json, 1_Pooling/, ...), the manifest `ontovec.json`
//! and a `MODEL_CARD.md` with data, configuration, time and the base-vs-trained table, with
//! its pictures `curves.svg` and `eval.svg` (written by [`crate::train::common::card`]).

use super::{HiprbertArgs, Preset, TrainConfig, TrainReport};
use crate::eval::metrics::{fmt_delta, fmt_metric};
use crate::train::common::bert::TrainBert;
use crate::train::common::card::{self, Bars, Card, Curves};
use crate::train::hiprbert::eval::SystemReport;
use crate::util::fs::write_atomic_with;
use std::fmt::Write as _;

/// Version string recorded in manifests.
pub const TRAINED_BY: &str = concat!("ontovec hiprbert ", env!("CARGO_PKG_VERSION"));

fn mean_auc(r: &[SystemReport]) -> f64 {
    let v: Vec<f64> = r
        .iter()
        .filter_map(|s| s.aucs.as_ref().map(|a| a.mean))
        .filter(|x| x.is_finite())
        .collect();
    if v.is_empty() {
        f64::NAN
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

fn eval_json(r: &[SystemReport]) -> serde_json::Value {
    let mut m = serde_json::Map::new();
    for s in r {
        let num = |x: f64| {
            if x.is_finite() {
                serde_json::json!(x)
            } else {
                serde_json::Value::Null
            }
        };
        m.insert(
            s.system.clone(),
            serde_json::json!({
                "auc": s.aucs.as_ref().map(|a| a.aucs.iter().map(|(k, v)| (k.clone(), num(*v))).collect::<serde_json::Map<_, _>>()),
                "auc_mean": s.aucs.as_ref().map(|a| num(a.mean)),
                "acc1": num(s.acc1),
                "acc5": num(s.acc5),
                "pairs_per_category": s.pairs_per_category,
                "queries": s.queries,
                "candidates": s.candidates,
            }),
        );
    }
    serde_json::Value::Object(m)
}

/// The markdown table comparing base and trained, one row per system and metric.
pub fn eval_table(base: &[SystemReport], trained: &[SystemReport]) -> String {
    let mut t = String::from("| system | metric | base | trained | Δ |\n|---|---|---|---|---|\n");
    for b in base {
        let Some(tr) = trained.iter().find(|t| t.system == b.system) else {
            continue;
        };
        let mut row = |metric: &str, x: f64, y: f64| {
            let d = fmt_delta(y - x);
            let _ = writeln!(
                t,
                "| {} | {metric} | {} | {} | {d} |",
                b.system,
                fmt_metric(x),
                fmt_metric(y)
            );
        };
        if let (Some(ba), Some(ta)) = (&b.aucs, &tr.aucs) {
            for (k, v) in &ba.aucs {
                row(
                    &format!("AUC {k}"),
                    *v,
                    ta.aucs.get(k).copied().unwrap_or(f64::NAN),
                );
            }
            row("AUC mean", ba.mean, ta.mean);
        }
        if b.queries > 0 {
            row(
                &format!("acc@1 ({} q / {} cand)", b.queries, b.candidates),
                b.acc1,
                tr.acc1,
            );
            row("acc@5", b.acc5, tr.acc5);
        }
    }
    t
}

/// The learned hybrid's weights fitted on the dev store for a model of this preset's recipe
/// (`fusion_quick.json`: `scripts/fit-fusion.sh` on a quick model trained on the dev store; see
/// README), written into the folder when the run used the preset unchanged. Any other run gets
/// none, and the server scores its hybrid with the shipped weights (fitted on the base model)
/// until `ontovec eval fit-fusion --out <folder>/fusion_weights.json` fits its own.
pub fn preset_fusion_weights(args: &HiprbertArgs, cfg: &TrainConfig) -> Option<&'static str> {
    let preset = TrainConfig::preset(args.preset);
    let unchanged = preset.fingerprint() == cfg.fingerprint()
        && preset.weight_interpolation == cfg.weight_interpolation;
    match args.preset {
        Preset::Quick if unchanged => Some(include_str!("fusion_quick.json")),
        _ => None,
    }
}

/// Write model.safetensors, the copied base files, ontovec.json and MODEL_CARD.md to `args.out`.
pub fn write_model_folder(
    args: &HiprbertArgs,
    model: &TrainBert,
    r: &TrainReport,
) -> anyhow::Result<()> {
    let out = &args.out;
    card::copy_base_files(&args.base, out)?;
    write_atomic_with(&out.join("model.safetensors"), |tmp| model.save(tmp))?;
    let fusion = preset_fusion_weights(args, &r.config);
    let fusion_path = out.join(card::FUSION_FILE);
    match fusion {
        Some(text) => crate::util::fs::write_atomic(&fusion_path, text.as_bytes())?,
        // an earlier run into the same folder may have left weights for another recipe
        None => match std::fs::remove_file(&fusion_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e.into()),
            _ => {}
        },
    }
    let name = out
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let base = args
        .base
        .file_name()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    let base = if base == "model" {
        // pip wheels keep the HF folder as `<package>/model`: name the package instead
        args.base
            .parent()
            .and_then(|p| p.file_name())
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or(base)
    } else {
        base
    };
    let max_len = std::fs::read_to_string(args.base.join("sentence_bert_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("max_seq_length").and_then(|x| x.as_u64()))
        .unwrap_or(r.config.max_len as u64);
    let manifest = serde_json::json!({
        "name": name,
        "kind": "terms",
        "base": base,
        "pooling": "mean",
        "dim": model.config.inner.hidden_size,
        "max_len": max_len,
        "trained_by": TRAINED_BY,
        "default": true,
        "eval": {
            "split": format!("held-out concepts: fnv1a64(system\\0code) % 1000 < {}", r.config.heldout_permille),
            "mean_auc": { "base": mean_auc(&r.base_eval), "trained": mean_auc(&r.trained_eval) },
            "base": eval_json(&r.base_eval),
            "trained": eval_json(&r.trained_eval),
            "dev_sets": r.dev_sets,
        },
        "training": {
            "steps": r.steps,
            "stopped_by_time_budget": r.stopped_by_time,
            "examples": r.examples,
            "tokens": r.tokens,
            "train_secs": r.train_secs,
            "examples_per_sec": r.examples as f64 / r.train_secs.max(1e-9),
            "tokens_per_sec": r.tokens as f64 / r.train_secs.max(1e-9),
            "config": r.config,
        },
    });
    let curves = Curves::from_logs(
        &format!("{name}: HiPrBERT training"),
        ["tree loss", "synonym loss"],
        &r.loss_log,
        &r.dev_log,
        &format!(
            "held-out dev curve (mean over systems; {} pairs per category, {} queries)",
            r.config.dev_eval.pairs_per_category, r.config.dev_eval.max_queries
        ),
    );
    card::write_card(
        out,
        &Card {
            manifest: &manifest,
            markdown: model_card(&name, &base, r) + fusion_note(fusion.is_some()),
            curves: Some(&curves),
            bars: Some(&eval_bars(
                &r.base_eval,
                &r.trained_eval,
                r.dev_sets.as_ref(),
            )),
        },
    )
}

fn fusion_note(preset_weights: bool) -> &'static str {
    if preset_weights {
        "\n## Hybrid search\n\n`fusion_weights.json`: the learned hybrid's weights fitted on the \
         scores of a model of this preset trained on the dev store (README, HiPrBERT quick \
         preset); the server uses them for this model's hybrid searches.\n"
    } else {
        "\n## Hybrid search\n\nNo fusion weights of its own: hybrid searches use the shipped \
         weights (fitted on the base model) until `ontovec eval fit-fusion --out \
         <this folder>/fusion_weights.json` fits them on this model's scores.\n"
    }
}

/// The held-out table as bars: per system, mean AUC, acc@1 and acc@5, base vs trained; then
/// the dev sets' rows, when measured.
pub fn eval_bars(
    base: &[SystemReport],
    trained: &[SystemReport],
    dev: Option<&super::devsets::DevSets>,
) -> Bars {
    let mut groups = Vec::new();
    for b in base {
        let Some(t) = trained.iter().find(|t| t.system == b.system) else {
            continue;
        };
        if let (Some(ba), Some(ta)) = (&b.aucs, &t.aucs) {
            groups.push((format!("{} · mean AUC", b.system), vec![ba.mean, ta.mean]));
        }
        if b.queries > 0 {
            groups.push((format!("{} · acc@1", b.system), vec![b.acc1, t.acc1]));
            groups.push((format!("{} · acc@5", b.system), vec![b.acc5, t.acc5]));
        }
    }
    for r in dev.map(|d| d.rows.as_slice()).unwrap_or_default() {
        groups.push((
            format!("dev · {} · {}", r.set, r.metric),
            vec![r.base, r.trained],
        ));
    }
    Bars {
        title: if dev.is_some_and(|d| !d.rows.is_empty()) {
            "held-out and dev sets: base vs trained (same run)".into()
        } else {
            "held-out evaluation: base vs trained (same run)".into()
        },
        series: vec!["base".into(), "trained".into()],
        groups,
    }
}

fn model_card(name: &str, base: &str, r: &TrainReport) -> String {
    let c = &r.config;
    let mut s = String::new();
    let _ = writeln!(s, "# {name}\n");
    let _ = writeln!(
        s,
        "A terms embedding model trained by `{TRAINED_BY}` from `{base}` with the HiPrBERT recipe \
         (arXiv 2307.00266): a tree multi-similarity loss over ordered distance categories \
         (0 same concept, 1 parent/child/sibling, 2 two steps apart, 3 unrelated in the same tree) \
         plus a synonym multi-similarity loss with in-batch hard-pair mining. Mean pooling, \
         unit-normalised, cosine similarity.\n"
    );
    let _ = writeln!(
        s,
        "## Data (held-out {}‰ of concepts by hash, never seen in training)\n",
        c.heldout_permille
    );
    let _ = writeln!(s, "| system | concepts | held out | edges | training concepts | synonym concepts | tree batches |\n|---|---|---|---|---|---|---|");
    for d in &r.data {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} |",
            d.system,
            d.concepts,
            d.heldout,
            d.edges,
            d.train_concepts,
            d.synonym_concepts,
            if d.tree_batches { "yes" } else { "no" }
        );
    }
    let _ = writeln!(s, "\n## Training\n");
    let _ = writeln!(
        s,
        "{} optimizer steps{} of {} micro-batch(es) × ({} tree pairs + {} synonym concepts × 2 names); \
         AdamW lr {:.1e} (warm-up {:.0}%, linear decay), weight decay {}, clip {}; max_len {}; seed {}.\n\
         {} strings, {} tokens in {:.0} s: {:.1} strings/s, {:.0} tokens/s on this machine.\n",
        r.steps,
        if r.stopped_by_time { format!(" (stopped by the {} s time budget; {} planned)", c.max_train_secs.unwrap_or(0), c.steps) } else { String::new() },
        c.grad_accum, c.tree_pairs, c.synonym_concepts, c.optimizer.lr, c.warmup_frac * 100.0,
        c.optimizer.weight_decay, c.clip_norm, c.max_len, c.seed,
        r.examples, r.tokens, r.train_secs,
        r.examples as f64 / r.train_secs.max(1e-9), r.tokens as f64 / r.train_secs.max(1e-9),
    );
    if c.weight_interpolation < 1.0 {
        let _ = writeln!(
            s,
            "Weights written: base + {} × (fine-tuned − base) (WiSE-FT, arXiv 2109.01903); the \
             dev curve follows the fine-tuned weights, the table below the weights written.\n",
            c.weight_interpolation
        );
    }
    let _ = writeln!(
        s,
        "Full configuration:\n\n```json\n{}\n```\n",
        serde_json::to_string_pretty(c).unwrap_or_default()
    );
    let _ = writeln!(s, "## Held-out evaluation (base vs trained, same run)\n");
    let _ = writeln!(
        s,
        "AUC iv j: probability that a category-i pair is more similar than a category-j pair. \
         acc@k: a held-out synonym's nearest preferred names (cosine, brute force) include its concept's. \
         Rows where the trained model loses are reported as they are.\n"
    );
    s.push_str(&eval_table(&r.base_eval, &r.trained_eval));
    let _ = writeln!(
        s,
        "\nMean AUC over systems: base {} → trained {}.",
        fmt_metric(mean_auc(&r.base_eval)),
        fmt_metric(mean_auc(&r.trained_eval))
    );
    if let Some(d) = &r.dev_sets {
        s.push('\n');
        s.push_str(&super::devsets::render(d));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(preset: Preset) -> HiprbertArgs {
        HiprbertArgs {
            base: "models/base".into(),
            data_dir: "data".into(),
            out: "models/out".into(),
            preset,
            config: None,
            dev_dir: None,
        }
    }

    #[test]
    fn only_an_unchanged_quick_run_gets_the_preset_fusion_weights() {
        let quick = TrainConfig::preset(Preset::Quick);
        let text = preset_fusion_weights(&args(Preset::Quick), &quick).expect("quick as is");
        let w = crate::search::weights::Weights::from_json(serde_json::from_str(text).unwrap());
        assert!(w.is_ok(), "{w:?}");
        // a changed recipe or another interpolation: other score distributions
        let mut other = quick.clone();
        other.steps += 1;
        assert!(preset_fusion_weights(&args(Preset::Quick), &other).is_none());
        let mut other = quick.clone();
        other.weight_interpolation = 1.0;
        assert!(preset_fusion_weights(&args(Preset::Quick), &other).is_none());
        // the time budget and logging do not change the model
        let mut same = quick;
        same.max_train_secs = None;
        same.log_every = 1;
        assert!(preset_fusion_weights(&args(Preset::Quick), &same).is_some());
        let standard = TrainConfig::preset(Preset::Standard);
        assert!(preset_fusion_weights(&args(Preset::Standard), &standard).is_none());
    }
}
