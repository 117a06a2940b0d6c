//! `ontovec eval ...`: runs the term-search evaluations of [`crate::eval::terms`] and prints
//! markdown tables.

use super::args::DataArgs;
use crate::encoder::ModelKind;
use crate::eval::metrics::{category_aucs, category_counts, fmt_metric, RankScores};
use crate::eval::terms::{self as eval, read_gold, read_pairs, score_rankings};
use crate::search::engine::Mode;
use crate::search::fusion::FusionMethod;
use crate::service::app::{App, AppConfig};
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;

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

fn open(t: &EvalTarget) -> Result<Arc<App>> {
    let mut cfg = AppConfig::new(&t.data.data_dir);
    cfg.models_dir = t.data.models_dir.clone();
    let app = App::open(cfg).context("opening the data directory")?;
    app.sync_indexes(None)?;
    Ok(app)
}

/// The default terms model of a running server (`GET /v1/models`).
fn remote_default_model(url: &str) -> Result<String> {
    let mut resp = ureq::get(&format!("{}/v1/models", url.trim_end_matches('/'))).call()?;
    let v: serde_json::Value = resp.body_mut().read_json()?;
    v["models"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["kind"] == "terms" && m["default"] == true)
        .and_then(|m| m["name"].as_str().map(str::to_string))
        .context("the server lists no default terms model")
}

/// Run an evaluation command.
pub fn run(cmd: EvalCommand) -> Result<()> {
    match cmd {
        EvalCommand::Normalize { gold, target } => {
            let gold = read_gold(&gold)?;
            let header = |model: &str| {
                println!(
                    "normalization, {} gold mentions, terms model {model}",
                    gold.len()
                );
                println!("| variant (model {model}) | acc@1 | acc@5 | MRR |");
                println!("|---|---|---|---|");
            };
            let row = |name: &str, s: RankScores| {
                println!(
                    "| {name} | {} | {} | {} |",
                    fmt_metric(s.acc1),
                    fmt_metric(s.acc5),
                    fmt_metric(s.mrr)
                );
            };
            if let Some(url) = &target.url {
                let model = match &target.model {
                    Some(m) => m.clone(),
                    None => remote_default_model(url)?,
                };
                header(&model);
                for mode in ["lexical", "vector", "hybrid"] {
                    let ranked = eval::rank_remote(url, &gold, mode, Some(&model))?;
                    row(mode, score_rankings(&gold, &ranked));
                }
                return Ok(());
            }
            let app = open(&target)?;
            let eng = app.search.clone().context("no search engine")?;
            // name the model the table is about (the default terms model when none is given)
            let model = eng.terms_model(target.model.as_deref())?;
            header(&model);
            let m = Some(model.as_str());
            let mut variants: Vec<(String, Mode, FusionMethod)> = vec![
                (
                    "lexical".into(),
                    Mode::Lexical,
                    FusionMethod::Rrf { k: 60.0 },
                ),
                ("vector".into(), Mode::Vector, FusionMethod::Rrf { k: 60.0 }),
                (
                    "hybrid rrf k=60".into(),
                    Mode::Hybrid,
                    FusionMethod::Rrf { k: 60.0 },
                ),
            ];
            variants.push((
                "hybrid rrf k=10".into(),
                Mode::Hybrid,
                FusionMethod::Rrf { k: 10.0 },
            ));
            for alpha in [0.3f32, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95] {
                variants.push((
                    format!("hybrid weighted alpha={alpha}"),
                    Mode::Hybrid,
                    FusionMethod::Weighted { alpha },
                ));
            }
            for (name, mode, fusion) in variants {
                let ranked = eval::rank_local(&eng, &gold, mode, fusion, m)?;
                row(&name, score_rankings(&gold, &ranked));
            }
            Ok(())
        }
        EvalCommand::Relatedness { pairs, target } => {
            let pairs = read_pairs(&pairs)?;
            let mut model = target.model.clone().unwrap_or_default();
            let scores: Vec<f32> = if let Some(url) = &target.url {
                if model.is_empty() {
                    model = remote_default_model(url)?;
                }
                let mut out = Vec::with_capacity(pairs.len());
                for chunk in pairs.chunks(512) {
                    let mut body = serde_json::json!({"pairs": chunk.iter().map(|p| serde_json::json!({"a": {"text": p.a}, "b": {"text": p.b}})).collect::<Vec<_>>()});
                    body["model"] = serde_json::Value::String(model.clone());
                    let mut resp =
                        ureq::post(&format!("{}/v1/relatedness", url.trim_end_matches('/')))
                            .send_json(&body)?;
                    let v: serde_json::Value = resp.body_mut().read_json()?;
                    out.extend(
                        v["scores"]
                            .as_array()
                            .cloned()
                            .unwrap_or_default()
                            .iter()
                            .map(|x| x.as_f64().unwrap_or(0.0) as f32),
                    );
                }
                out
            } else {
                let app = open(&target)?;
                let eng = app.search.clone().context("no search engine")?;
                let h = eng
                    .registry()
                    .get(target.model.as_deref(), ModelKind::Terms)?;
                model = h.manifest().name.clone();
                let a: Vec<&str> = pairs.iter().map(|p| p.a.as_str()).collect();
                let b: Vec<&str> = pairs.iter().map(|p| p.b.as_str()).collect();
                let (va, vb) = (h.embed_blocking(&a)?, h.embed_blocking(&b)?);
                va.iter()
                    .zip(&vb)
                    .map(|(x, y)| crate::util::vector::cosine(x, y))
                    .collect()
            };
            let cats: Vec<u8> = pairs.iter().map(|p| p.distance).collect();
            let r = category_aucs(&scores, &cats);
            println!(
                "relatedness, terms model {model}, pairs per distance 0..3: {:?}",
                category_counts(&cats)
            );
            let mut head: Vec<&str> = r.aucs.keys().map(String::as_str).collect();
            let mut cells: Vec<String> = r.aucs.values().map(|a| fmt_metric(*a)).collect();
            head.push("mean");
            cells.push(fmt_metric(r.mean));
            println!("| {} |", head.join(" | "));
            println!("|{}", "---|".repeat(head.len()));
            println!("| {} |", cells.join(" | "));
            Ok(())
        }
    }
}
