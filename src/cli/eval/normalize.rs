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

/// The tables of a running server: lexical, vector and hybrid as it serves them, with the
/// same `--baseline` comparison and `--dump` as in-process (each model ranked by the server).
fn remote(
    url: &str,
    gold: &[PathBuf],
    model: Option<&str>,
    baseline: Option<&str>,
    dump: Option<&mut dyn std::io::Write>,
) -> Result<()> {
    let model = match model {
        Some(m) => m.to_string(),
        None => remote_default_model(url)?,
    };
    let boot = crate::eval::ratings::Bootstrap::default();
    let mut dump = dump;
    for path in gold {
        let gold = read_gold(path)?;
        header(path, gold.len(), &model);
        let mut paired = Vec::new();
        for mode in ["lexical", "vector", "hybrid"] {
            let ranked = eval::rank_remote(url, &gold, mode, Some(&model))?;
            row(mode, score_rankings(&gold, &ranked));
            if let Some(out) = dump.as_mut() {
                dump_ranked(out, path, mode, &gold, &ranked)?;
            }
            if let Some(b) = baseline {
                let base = eval::rank_remote(url, &gold, mode, Some(b))?;
                let p = crate::eval::paired::paired_acc(
                    &first_hits(&gold, &base),
                    &first_hits(&gold, &ranked),
                    boot,
                );
                paired.push((mode.to_string(), p));
            }
        }
        if let Some(b) = baseline {
            paired_table(&model, b, boot, &paired);
        }
    }
    Ok(())
}

/// Run `ontovec eval normalize` (see the command's docs): in-process unless `target.url`.
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
        remote(
            url,
            gold,
            target.model.as_deref(),
            baseline,
            dump.as_mut().map(|d| d as &mut dyn std::io::Write),
        )?;
        if let Some(mut out) = dump {
            std::io::Write::flush(&mut out)?;
        }
        return Ok(());
    }
    let app = open(target)?;
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
    for path in gold {
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
                let base = eval::rank_local(&eng, &gold, *mode, *fusion, Some(b), Some(bv))?;
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
