//! `ontovec eval ...`: runs the term-search evaluations of [`crate::eval::terms`] and the
//! human-rating relatedness evaluation of [`crate::eval::ratings`], and prints markdown tables.
//! This file holds the arguments, ratings and relatedness; [`normalize`] the normalisation
//! tables (with `--baseline` and `--dump`), [`fit`] fitting the learned hybrid.

mod fit;
mod normalize;

use super::args::DataArgs;
use crate::encoder::registry::load_model;
use crate::encoder::{EngineConfig, EngineHandle, ModelKind, PrecisionChoice, PrecisionPolicy};
use crate::eval::metrics::{category_aucs, category_counts, fmt_metric};
use crate::eval::terms::read_pairs;
use crate::service::app::App;
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

/// Options of `ontovec eval ratings`. Only models are loaded (no data directory is opened), so
/// it also runs beside a server that holds the store.
#[derive(Debug, Args, Clone)]
pub struct RatingsArgs {
    /// Ratings TSV: term_a, term_b, rating (repeat; e.g. ontologies/dev/relatedness_*.tsv).
    #[arg(long, required = true)]
    pub pairs: Vec<PathBuf>,
    /// Sets to pool into one more row, by name (file stem without `relatedness_`; comma
    /// separated or repeated), e.g. `mayosrs,pedersen_physicians,hliaoutakis`.
    #[arg(long, value_delimiter = ',')]
    pub pool: Vec<String>,
    /// A model folder under the models dir, by name (repeat for side by side columns).
    #[arg(long)]
    pub model: Vec<String>,
    /// A model folder anywhere, e.g. a trainer's output (repeat; columns after the `--model`s).
    /// With neither flag: the models dir's default terms model, the one the server serves.
    #[arg(long)]
    pub model_dir: Vec<PathBuf>,
    /// Folder of model folders.
    #[arg(long, env = "ONTOVEC_MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,
    /// Precision of the models' matrix products (see `serve --precision`).
    #[arg(long, env = "ONTOVEC_PRECISION")]
    pub precision: Option<PrecisionChoice>,
    /// Bootstrap resamples of the confidence intervals.
    #[arg(long, default_value_t = 1000)]
    pub resamples: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 14)]
    pub seed: u64,
}

/// Evaluations.
#[derive(Debug, Subcommand)]
pub enum EvalCommand {
    /// acc@1, acc@5, MRR of normalisation for lexical, vector and hybrid variants (one table
    /// per gold file).
    Normalize {
        /// Gold TSV: mention, system, code (repeat for several dev sets).
        #[arg(long, required = true)]
        gold: Vec<PathBuf>,
        /// Also print the weighted-fusion alpha sweep and RRF k=10.
        #[arg(long)]
        sweep: bool,
        /// Also write every mention's top 5 per variant as JSON lines here
        /// (`{"set","variant","mention","gold","rank","top"}`), to study what each side gets wrong.
        #[arg(long)]
        dump: Option<PathBuf>,
        /// Also rank with this model and print, per gold file and variant, acc@1 of `--model`
        /// minus this one's with a paired bootstrap 95% CI, SE and a verdict (local runs only).
        #[arg(long)]
        baseline: Option<String>,
        /// Where to run.
        #[command(flatten)]
        target: EvalTarget,
    },
    /// Fit the learned hybrid's weights on gold files (the shipped src/search/fusion_weights.json
    /// for the base model; `--out <model folder>/fusion_weights.json` for a trained model, whose
    /// hybrid searches then use them), print acc@1 on the check files and the feature ablation.
    FitFusion {
        /// Gold TSVs to fit on (repeat).
        #[arg(long, required = true)]
        gold: Vec<PathBuf>,
        /// Gold TSVs to report on, never fitted (repeat).
        #[arg(long)]
        check: Vec<PathBuf>,
        /// Weigh every fit file the same (small ones repeated) instead of every query once.
        #[arg(long)]
        balance: bool,
        /// Where to write the weights.
        #[arg(long, default_value = "src/search/fusion_weights.json")]
        out: PathBuf,
        /// Also write every query's candidates (features, gold flags) as JSON lines here, to
        /// study other models of the same features.
        #[arg(long)]
        dump: Option<PathBuf>,
        /// Where to run.
        #[command(flatten)]
        target: EvalTarget,
    },
    /// Spearman ρ (95% bootstrap CI) of cosine against human relatedness ratings (MayoSRS,
    /// MiniMayoSRS, Pedersen-30, Hliaoutakis-36), per set and pooled; several models side by
    /// side with their difference to the first.
    Ratings(RatingsArgs),
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
    let cfg = t.data.app_config()?;
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

/// The models of a ratings run, loaded as the server loads them: `--model` names from the
/// models dir, then `--model-dir` folders; neither: the models dir's default terms model.
fn ratings_models(a: &RatingsArgs) -> Result<Vec<EngineHandle>> {
    let config = EngineConfig {
        precision: PrecisionPolicy {
            forced: a.precision,
            default: PrecisionChoice::Auto,
        },
        ..EngineConfig::default()
    };
    if a.model.is_empty() && a.model_dir.is_empty() {
        let registry = crate::encoder::Registry::load_dir(&a.models_dir, config)?;
        return Ok(vec![registry.get(None, ModelKind::Terms)?.clone()]);
    }
    let dirs = a.model.iter().map(|m| a.models_dir.join(m));
    let mut out = Vec::new();
    for dir in dirs.chain(a.model_dir.iter().cloned()) {
        anyhow::ensure!(
            dir.join("config.json").is_file(),
            "{} is not a model folder (no config.json)",
            dir.display()
        );
        out.push(
            load_model(&dir, config.clone())
                .with_context(|| format!("loading {}", dir.display()))?,
        );
    }
    Ok(out)
}

/// `ontovec eval ratings`: print the models and the ρ table.
fn ratings(a: &RatingsArgs) -> Result<()> {
    use crate::eval::ratings::{evaluate, read_ratings, render, Bootstrap};
    let sets = a
        .pairs
        .iter()
        .map(|p| read_ratings(p))
        .collect::<Result<Vec<_>>>()?;
    let handles = ratings_models(a)?;
    for h in &handles {
        let m = h.manifest();
        println!(
            "model {}: kind {}, dim {}, base {}, trained by {}",
            m.name, m.kind, m.dim, m.base, m.trained_by
        );
    }
    let mut models: Vec<(String, Box<crate::eval::embedding::EmbedFn<'_>>)> = handles
        .iter()
        .map(|h| {
            let embed = move |t: &[String]| -> Result<Vec<Vec<f32>>> { Ok(h.embed_blocking(t)?) };
            (h.manifest().name.clone(), Box::new(embed) as Box<_>)
        })
        .collect();
    let boot = Bootstrap {
        resamples: a.resamples,
        seed: a.seed,
    };
    let report = evaluate(&sets, &a.pool, &mut models, boot)?;
    println!("\n{}", render(&report));
    Ok(())
}

/// Run an evaluation command.
pub fn run(cmd: EvalCommand) -> Result<()> {
    match cmd {
        EvalCommand::Ratings(a) => ratings(&a),
        EvalCommand::Normalize {
            gold,
            sweep,
            dump,
            baseline,
            target,
        } => normalize::normalize(&gold, sweep, dump.as_deref(), baseline.as_deref(), &target),
        EvalCommand::FitFusion {
            gold,
            check,
            balance,
            out,
            dump,
            target,
        } => fit::fit_fusion(&gold, &check, balance, &out, dump.as_deref(), &target),
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
