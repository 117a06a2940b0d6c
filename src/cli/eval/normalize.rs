//! `ontovec eval normalize`: acc@1 / acc@5 / MRR tables of lexical, vector and hybrid
//! variants per gold file, in-process or against a server; `--baseline` adds the paired
//! comparison with a second model, `--dump` every mention's top 5.

use super::{open, remote_default_model, EvalTarget};
use crate::eval::metrics::{fmt_metric, RankScores};
use crate::eval::terms::{self as eval, read_gold, score_rankings};
use crate::search::engine::Mode;
use crate::search::fusion::FusionMethod;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};

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

/// One gold file's tables: each variant's row (and `--dump` lines), then with a baseline the
/// paired table. `rank(i, baseline)` ranks the mentions with variant `names[i]`, by the model
/// or (`true`) by the baseline — in-process or through a server, the reporting is the same.
fn report_file(
    path: &Path,
    gold: &[eval::Gold],
    model: &str,
    names: &[String],
    baseline: Option<&str>,
    dump: &mut Option<std::io::BufWriter<std::fs::File>>,
    mut rank: impl FnMut(usize, bool) -> Result<Vec<Vec<(String, String)>>>,
) -> Result<()> {
    let boot = crate::eval::ratings::Bootstrap::default();
    header(path, gold.len(), model);
    let mut paired = Vec::new();
    let (mut lexical, mut vector) = (None, None);
    for (i, name) in names.iter().enumerate() {
        let ranked = rank(i, false)?;
        row(name, score_rankings(gold, &ranked));
        if let Some(out) = dump.as_mut() {
            dump_ranked(out, path, name, gold, &ranked)?;
        }
        if baseline.is_some() {
            let base = rank(i, true)?;
            let p = crate::eval::paired::paired_acc(
                &first_hits(gold, &base),
                &first_hits(gold, &ranked),
                boot,
            );
            paired.push((name.clone(), p));
        }
        match name.as_str() {
            "lexical" => lexical = Some(ranked),
            "vector" => vector = Some(ranked),
            _ => {}
        }
    }
    if let (Some(l), Some(v)) = (&lexical, &vector) {
        let c = eval::fusion_ceilings(gold, l, v);
        println!(
            "\nceilings of any fusion of the two sides: gold first on either side {} \
             (the best an arbiter of the two first answers can do), gold in either side's top 5 {}",
            fmt_metric(c.either_first),
            fmt_metric(c.union_at5)
        );
    }
    if let Some(b) = baseline {
        paired_table(model, b, boot, &paired);
    }
    Ok(())
}

/// Run `ontovec eval normalize` (see the command's docs): in-process, or against a running
/// server (`target.url`: lexical, vector and hybrid as it serves them, each model ranked by
/// the server), with the same `--baseline` comparison and `--dump` either way.
pub(super) fn normalize(
    gold: &[PathBuf],
    sweep: bool,
    dump: Option<&Path>,
    baseline: Option<&str>,
    target: &EvalTarget,
) -> Result<()> {
    let mut dump = match &dump {
        Some(p) => Some(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        None => None,
    };
    if let Some(url) = &target.url {
        let model = match target.model.as_deref() {
            Some(m) => m.to_string(),
            None => remote_default_model(url)?,
        };
        let modes = ["lexical", "vector", "hybrid"];
        let names: Vec<String> = modes.iter().map(|m| m.to_string()).collect();
        for path in gold {
            let gold = read_gold(path)?;
            report_file(
                path,
                &gold,
                &model,
                &names,
                baseline,
                &mut dump,
                |i, base| {
                    let who = if base { baseline } else { Some(model.as_str()) };
                    eval::rank_remote(url, &gold, modes[i], who)
                },
            )?;
        }
    } else {
        let app = open(target)?;
        let eng = app.search.clone().context("no search engine")?;
        // name the model the table is about (the default terms model when none is given)
        let model = eng.terms_model(target.model.as_deref())?;
        let baseline = match &baseline {
            Some(b) => Some(eng.terms_model(Some(b))?),
            None => None,
        };
        let variants = variants(sweep);
        let names: Vec<String> = variants.iter().map(|v| v.0.clone()).collect();
        for path in gold {
            let gold = read_gold(path)?;
            let vecs = eval::embed_mentions(&eng, &gold, Some(&model))?;
            let base_vecs = match &baseline {
                Some(b) => Some(eval::embed_mentions(&eng, &gold, Some(b))?),
                None => None,
            };
            report_file(
                path,
                &gold,
                &model,
                &names,
                baseline.as_deref(),
                &mut dump,
                |i, base| {
                    let (_, mode, fusion) = &variants[i];
                    let (who, v) = if base {
                        (baseline.as_deref(), base_vecs.as_deref())
                    } else {
                        (Some(model.as_str()), Some(vecs.as_slice()))
                    };
                    eval::rank_local(&eng, &gold, *mode, *fusion, who, v)
                },
            )?;
        }
    }
    if let Some(mut out) = dump {
        std::io::Write::flush(&mut out)?;
    }
    Ok(())
}
