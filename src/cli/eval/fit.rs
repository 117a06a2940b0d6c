//! `ontovec eval fit-fusion`: fit the learned hybrid's weights on dev-set candidates, report
//! them on the check files with a feature ablation, and write them.

use super::{open, EvalTarget};
use crate::eval::terms::{self as eval, read_gold};
use anyhow::{Context, Result};

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

pub(super) fn fit_fusion(
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
    let names: Vec<&str> = report.iter().map(|r| r.0.as_str()).collect();
    println!(
        "\nablation (refit without the group; acc@1 on {}):",
        names.join(", ")
    );
    println!("| without | {} |", names.join(" | "));
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

/// Every query's candidates as JSON lines: `{"set", "split": "fit"|"check", "x", "gold", "codes"}`.
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
                let line = serde_json::json!({"set": set, "split": split, "x": q.x, "gold": q.gold, "codes": q.codes});
                writeln!(f, "{line}")?;
            }
        }
    }
    f.flush()?;
    Ok(())
}
