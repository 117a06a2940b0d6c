//! `ontovec eval ...`: runs the term-search evaluations of [`crate::eval::terms`] and the
//! human-rating relatedness evaluation of [`crate::eval::ratings`], and prints markdown tables.

use super::args::DataArgs;
use crate::encoder::registry::load_model;
use crate::encoder::{EngineConfig, EngineHandle, ModelKind, PrecisionChoice, PrecisionPolicy};
use crate::eval::metrics::{category_aucs, category_counts, fmt_metric, RankScores};
use crate::eval::terms::{self as eval, read_gold, read_pairs, score_rankings};
use crate::search::engine::Mode;
use crate::search::fusion::FusionMethod;
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
    /// Fit the learned hybrid's weights (src/search/fusion_weights.json) on gold files, print
    /// acc@1 on the check files and the feature ablation.
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

const RRF60: FusionMethod = FusionMethod::Rrf { k: 60.0 };

fn header(path: &std::path::Path, n: usize, model: &str) {
    println!(
        "\nnormalization, {}: {n} gold mentions, terms model {model}",
        path.display()
    );
    println!("| variant (model {model}) | acc@1 | acc@5 | MRR |");
    println!("|---|---|---|---|");
}

fn row(name: &str, s: RankScores) {
    println!(
        "| {name} | {} | {} | {} |",
        fmt_metric(s.acc1),
        fmt_metric(s.acc5),
        fmt_metric(s.mrr)
    );
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

/// The variants of the normalisation table: both sides alone, the old fixed fusions and the
/// learned hybrid with and without bridges (`sweep`: also the alpha sweep and RRF k=10).
fn variants(sweep: bool) -> Vec<(String, Mode, FusionMethod)> {
    let mut v: Vec<(String, Mode, FusionMethod)> = vec![
        ("lexical".into(), Mode::Lexical, RRF60),
        ("vector".into(), Mode::Vector, RRF60),
        ("old hybrid rrf k=60".into(), Mode::Hybrid, RRF60),
    ];
    if sweep {
        v.push((
            "hybrid rrf k=10".into(),
            Mode::Hybrid,
            FusionMethod::Rrf { k: 10.0 },
        ));
        for alpha in [0.3f32, 0.5, 0.6, 0.7, 0.8, 0.95] {
            v.push((
                format!("hybrid weighted alpha={alpha}"),
                Mode::Hybrid,
                FusionMethod::Weighted { alpha },
            ));
        }
    }
    v.extend([
        (
            "old hybrid weighted alpha=0.9 (old default)".into(),
            Mode::Hybrid,
            FusionMethod::Weighted { alpha: 0.9 },
        ),
        (
            "new hybrid without bridges".into(),
            Mode::Hybrid,
            FusionMethod::Learned { bridges: false },
        ),
        (
            "**new hybrid (learned, default)**".into(),
            Mode::Hybrid,
            FusionMethod::Learned { bridges: true },
        ),
    ]);
    v
}

/// Feature groups of the ablation table: (name, names of `hybrid::FEATURES` refitted without).
const GROUPS: &[(&str, &[&str])] = &[
    ("vector (v_cos, v_gap, v_rr)", &["v_cos", "v_gap", "v_rr"]),
    ("lexical scores (l_rel, l_rr)", &["l_rel", "l_rr"]),
    (
        "exact / code (exact, exact_pref, code)",
        &["exact", "exact_pref", "code"],
    ),
    ("near-exact (overlap_f1)", &["overlap_f1"]),
    (
        "aggregation (v_pref, v_related_kind)",
        &["v_pref", "v_related_kind"],
    ),
    ("agreement (both, both_first)", &["both", "both_first"]),
    (
        "bridges (bridge_cos, bridge_exact, bridge_overlap)",
        &["bridge_cos", "bridge_exact", "bridge_overlap"],
    ),
    ("grouping (block range / chapter)", &["grouping"]),
];

fn fit_fusion(
    gold: &[std::path::PathBuf],
    check: &[std::path::PathBuf],
    balance: bool,
    out: &std::path::Path,
    dump: Option<&std::path::Path>,
    target: &EvalTarget,
) -> Result<()> {
    use crate::eval::learn::{acc_at_1, fit, FitOptions, QueryData};
    let app = open(target)?;
    let eng = app.search.clone().context("no search engine")?;
    let m = target.model.as_deref();
    let load = |paths: &[std::path::PathBuf]| -> Result<Vec<(String, Vec<QueryData>)>> {
        let mut sets = Vec::new();
        for p in paths {
            let g = read_gold(p)?;
            let vecs = eval::embed_mentions(&eng, &g, m)?;
            sets.push((
                p.display().to_string(),
                eval::learned_data(&eng, &g, m, &vecs)?,
            ));
        }
        Ok(sets)
    };
    let fit_sets = load(gold)?;
    let check_sets = load(check)?;
    if let Some(path) = dump {
        dump_candidates(path, &fit_sets, &check_sets)?;
    }
    // Each query once, or (`balance`) every fit set weighing the same: small sets repeated.
    let largest = fit_sets.iter().map(|s| s.1.len()).max().unwrap_or(0);
    let mut data: Vec<QueryData> = Vec::new();
    for (_, d) in &fit_sets {
        let reps = if balance {
            (largest / d.len().max(1)).max(1)
        } else {
            1
        };
        for _ in 0..reps {
            data.extend(d.iter().cloned());
        }
    }
    let names: Vec<&str> = fit_sets.iter().map(|s| s.0.as_str()).collect();
    let fitted_on = format!(
        "ontovec eval fit-fusion{} on {}",
        if balance { " --balance" } else { "" },
        names.join(", ")
    );
    let w = fit(&data, &FitOptions::default(), &fitted_on);
    println!(
        "weights: {:?}",
        w.features.iter().zip(&w.w).collect::<Vec<_>>()
    );
    println!("calibration: {:?}", w.calib);
    let all: Vec<&(String, Vec<QueryData>)> = fit_sets.iter().chain(&check_sets).collect();
    println!("\n| set | fitted on it | acc@1 (learned) |");
    println!("|---|---|---|");
    for (i, (name, d)) in all.iter().enumerate() {
        let fitted = if i < fit_sets.len() { "yes" } else { "no" };
        println!("| {name} | {fitted} | {:.3} |", acc_at_1(&w, d));
    }
    // Ablation: refit without each group, acc@1 on the check sets (fit sets if none).
    let report: Vec<&(String, Vec<QueryData>)> = if check_sets.is_empty() {
        fit_sets.iter().collect()
    } else {
        check_sets.iter().collect()
    };
    println!(
        "\nablation (refit without the group; acc@1 on {}):",
        report
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "| without | {} |",
        report
            .iter()
            .map(|r| r.0.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(report.len()));
    let line = |name: &str, w: &crate::search::hybrid::Weights| {
        let cells: Vec<String> = report
            .iter()
            .map(|r| format!("{:.3}", acc_at_1(w, &r.1)))
            .collect();
        println!("| {name} | {} |", cells.join(" | "));
    };
    line("(nothing: all features)", &w);
    for (name, idx) in GROUPS {
        let mut opt = FitOptions::default();
        for name in *idx {
            let i = crate::search::hybrid::FEATURES
                .iter()
                .position(|f| f == name)
                .expect("a feature of the hybrid");
            opt.mask[i] = false;
        }
        line(name, &fit(&data, &opt, ""));
    }
    let json = serde_json::to_string_pretty(&w)?;
    std::fs::write(out, json + "\n").with_context(|| format!("writing {}", out.display()))?;
    println!("\nwrote {}", out.display());
    Ok(())
}

/// Every query's candidates as JSON lines: `{"set", "split": "fit"|"check", "x", "gold"}`.
fn dump_candidates(
    path: &std::path::Path,
    fit_sets: &[(String, Vec<crate::eval::learn::QueryData>)],
    check_sets: &[(String, Vec<crate::eval::learn::QueryData>)],
) -> Result<()> {
    use std::io::Write;
    let mut f = std::io::BufWriter::new(
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
    );
    for (split, sets) in [("fit", fit_sets), ("check", check_sets)] {
        for (set, queries) in sets {
            for q in queries {
                let line =
                    serde_json::json!({"set": set, "split": split, "x": q.x, "gold": q.gold});
                writeln!(f, "{line}")?;
            }
        }
    }
    f.flush()?;
    Ok(())
}

/// Per mention: is its gold concept ranked first.
fn first_hits(gold: &[eval::Gold], ranked: &[Vec<(String, String)>]) -> Vec<bool> {
    gold.iter()
        .zip(ranked)
        .map(|(g, r)| r.first().is_some_and(|(s, c)| g.matches(s, c)))
        .collect()
}

/// The `--baseline` table of one gold file: acc@1 of both models per variant and the paired Δ
/// (resampled as `boot` says).
fn paired_table(
    model: &str,
    baseline: &str,
    boot: crate::eval::ratings::Bootstrap,
    rows: &[(String, crate::eval::paired::PairedAcc)],
) {
    use crate::eval::paired::verdict;
    println!(
        "\nacc@1 {model} − {baseline}, same mentions, paired bootstrap ({} resamples, seed {}):",
        boot.resamples, boot.seed
    );
    println!("| variant | {baseline} | {model} | Δ [95% CI] | SE | lost / gained | verdict |");
    println!("|---|---|---|---|---|---|---|");
    for (name, p) in rows {
        println!(
            "| {name} | {:.3} | {:.3} | {:+.3} [{:+.3}, {:+.3}] | {:.3} | {} / {} | {} |",
            p.base,
            p.cand,
            p.delta.value,
            p.delta.lo,
            p.delta.hi,
            p.se,
            p.flips.0,
            p.flips.1,
            verdict(p)
        );
    }
    println!();
}

/// One JSON line per mention of a normalisation variant: its gold, the rank of the gold
/// concept (null: not in the list) and the top 5 `SYSTEM:code`s.
fn dump_ranked(
    out: &mut impl std::io::Write,
    set: &std::path::Path,
    variant: &str,
    gold: &[eval::Gold],
    ranked: &[Vec<(String, String)>],
) -> Result<()> {
    for (g, r) in gold.iter().zip(ranked) {
        let rank = r.iter().position(|(s, c)| g.matches(s, c)).map(|p| p + 1);
        let top: Vec<String> = r.iter().take(5).map(|(s, c)| format!("{s}:{c}")).collect();
        let line = serde_json::json!({
            "set": set.display().to_string(), "variant": variant, "mention": g.mention,
            "gold": format!("{}:{}", g.system, g.code), "rank": rank, "top": top,
        });
        writeln!(out, "{line}")?;
    }
    Ok(())
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
        } => {
            if let Some(url) = &target.url {
                let model = match &target.model {
                    Some(m) => m.clone(),
                    None => remote_default_model(url)?,
                };
                for path in &gold {
                    let gold = read_gold(path)?;
                    header(path, gold.len(), &model);
                    for mode in ["lexical", "vector", "hybrid"] {
                        let ranked = eval::rank_remote(url, &gold, mode, Some(&model))?;
                        row(mode, score_rankings(&gold, &ranked));
                    }
                }
                return Ok(());
            }
            let app = open(&target)?;
            let eng = app.search.clone().context("no search engine")?;
            // name the model the table is about (the default terms model when none is given)
            let model = eng.terms_model(target.model.as_deref())?;
            let m = Some(model.as_str());
            let baseline = match &baseline {
                Some(b) => Some(eng.terms_model(Some(b))?),
                None => None,
            };
            let boot = crate::eval::ratings::Bootstrap::default();
            let variants = variants(sweep);
            let mut dump = match &dump {
                Some(p) => Some(std::io::BufWriter::new(
                    std::fs::File::create(p)
                        .with_context(|| format!("creating {}", p.display()))?,
                )),
                None => None,
            };
            for path in &gold {
                let gold = read_gold(path)?;
                header(path, gold.len(), &model);
                let vecs = eval::embed_mentions(&eng, &gold, m)?;
                let base_vecs = match &baseline {
                    Some(b) => Some(eval::embed_mentions(&eng, &gold, Some(b))?),
                    None => None,
                };
                let mut paired = Vec::new();
                for (name, mode, fusion) in &variants {
                    let ranked = eval::rank_local(&eng, &gold, *mode, *fusion, m, Some(&vecs))?;
                    row(name, score_rankings(&gold, &ranked));
                    if let Some(out) = dump.as_mut() {
                        dump_ranked(out, path, name, &gold, &ranked)?;
                    }
                    if let (Some(b), Some(bv)) = (&baseline, &base_vecs) {
                        let base =
                            eval::rank_local(&eng, &gold, *mode, *fusion, Some(b), Some(bv))?;
                        let p = crate::eval::paired::paired_acc(
                            &first_hits(&gold, &base),
                            &first_hits(&gold, &ranked),
                            boot,
                        );
                        paired.push((name.clone(), p));
                    }
                }
                if let Some(b) = &baseline {
                    paired_table(&model, b, boot, &paired);
                }
            }
            if let Some(mut out) = dump {
                std::io::Write::flush(&mut out)?;
            }
            Ok(())
        }
        EvalCommand::FitFusion {
            gold,
            check,
            balance,
            out,
            dump,
            target,
        } => fit_fusion(&gold, &check, balance, &out, dump.as_deref(), &target),
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
