//! Evaluation of term search — normalisation and relatedness — against a data directory
//! (in-process, through the search engine) or a running server (over HTTP), with the same
//! metrics ([`super::metrics`]) either way.
//!
//! * Normalisation gold: TSV `mention \t system \t code` (e.g. written by `ingest --hold-out`).
//!   Metrics: acc@1, acc@5 and MRR (reciprocal rank of the gold concept in the top 10, 0 when
//!   absent).
//! * Relatedness pairs: TSV `text_a \t text_b \t distance` with distance 0–3 (0 = same concept,
//!   1 = child/sibling, 2 = parent, 3 = random in the same tree, following HiPrBERT). Metric: ROC
//!   AUC of the cosine for every pair of categories (i < j: does category i score above j?) and
//!   their mean — HiPrBERT's measure.

use super::metrics::{rank_scores, RankScores};
use crate::encoder::ModelKind;
use crate::search::engine::{Mode, Query, SearchEngine};
use crate::search::fusion::FusionMethod;
use anyhow::{bail, Context, Result};
use std::path::Path;

/// One gold normalisation example.
#[derive(Debug, Clone)]
pub struct Gold {
    /// Mention text.
    pub mention: String,
    /// Gold system.
    pub system: String,
    /// Gold code.
    pub code: String,
}

/// Read a gold TSV (mention, system, code); `#` lines and a header starting with `mention` are
/// skipped.
pub fn read_gold(path: &Path) -> Result<Vec<Gold>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty()
            || line.starts_with('#')
            || (i == 0 && line.starts_with("mention"))
        {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        if cols.len() < 3 {
            bail!(
                "{}:{}: expected mention<TAB>system<TAB>code",
                path.display(),
                i + 1
            );
        }
        out.push(Gold {
            mention: cols[0].to_string(),
            system: cols[1].to_ascii_uppercase(),
            code: cols[2].to_string(),
        });
    }
    Ok(out)
}

/// acc@1, acc@5 and MRR of ranked candidate lists against gold (system, code) pairs.
pub fn score_rankings(gold: &[Gold], ranked: &[Vec<(String, String)>]) -> RankScores {
    let positions: Vec<Option<usize>> = gold
        .iter()
        .zip(ranked)
        .map(|(g, r)| r.iter().position(|(s, c)| *s == g.system && *c == g.code))
        .collect();
    rank_scores(&positions)
}

/// Rank candidates for every gold mention in-process (restricted to the gold systems).
pub fn rank_local(
    eng: &SearchEngine,
    gold: &[Gold],
    mode: Mode,
    fusion: FusionMethod,
    model: Option<&str>,
) -> Result<Vec<Vec<(String, String)>>> {
    let mut systems: Vec<String> = gold.iter().map(|g| g.system.clone()).collect();
    systems.sort();
    systems.dedup();
    let needs_vec = matches!(mode, Mode::Hybrid | Mode::Vector);
    let mut out = Vec::with_capacity(gold.len());
    for chunk in gold.chunks(256) {
        let vecs = if needs_vec {
            let h = eng.registry().get(model, ModelKind::Terms)?;
            let texts: Vec<&str> = chunk.iter().map(|g| g.mention.as_str()).collect();
            Some(h.embed_blocking(&texts)?)
        } else {
            None
        };
        for (i, g) in chunk.iter().enumerate() {
            let q = Query {
                text: g.mention.clone(),
                k: 10,
                mode,
                systems: Some(systems.clone()),
                model: model.map(str::to_string),
                fusion,
            };
            let found = eng.search_with_vector(&q, vecs.as_ref().map(|v| v[i].as_slice()))?;
            out.push(found.into_iter().map(|f| (f.system, f.code)).collect());
        }
    }
    Ok(out)
}

/// Rank candidates through a running server's `/v1/normalize`.
pub fn rank_remote(
    url: &str,
    gold: &[Gold],
    mode: &str,
    model: Option<&str>,
) -> Result<Vec<Vec<(String, String)>>> {
    let mut systems: Vec<String> = gold.iter().map(|g| g.system.clone()).collect();
    systems.sort();
    systems.dedup();
    let mut out = Vec::with_capacity(gold.len());
    for chunk in gold.chunks(256) {
        let mut body = serde_json::json!({
            "mentions": chunk.iter().map(|g| g.mention.as_str()).collect::<Vec<_>>(),
            "k": 10, "systems": systems, "mode": mode,
        });
        if let Some(m) = model {
            body["model"] = serde_json::Value::String(m.to_string());
        }
        let mut resp = ureq::post(&format!("{}/v1/normalize", url.trim_end_matches('/')))
            .send_json(&body)
            .context("calling /v1/normalize")?;
        let v: serde_json::Value = resp.body_mut().read_json()?;
        for r in v["results"].as_array().cloned().unwrap_or_default() {
            out.push(
                r["candidates"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|c| {
                        (
                            c["system"].as_str().unwrap_or("").to_string(),
                            c["code"].as_str().unwrap_or("").to_string(),
                        )
                    })
                    .collect(),
            );
        }
    }
    Ok(out)
}

/// One relatedness pair.
#[derive(Debug, Clone)]
pub struct RelPair {
    /// First text.
    pub a: String,
    /// Second text.
    pub b: String,
    /// Distance category 0–3.
    pub distance: u8,
}

/// Read a pairs TSV (text_a, text_b, distance 0–3).
pub fn read_pairs(path: &Path) -> Result<Vec<RelPair>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() || line.starts_with('#') || (i == 0 && line.starts_with("text_a"))
        {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let d = cols
            .get(2)
            .and_then(|d| d.trim().parse::<u8>().ok())
            .filter(|d| *d <= 3);
        match (cols.len() >= 3, d) {
            (true, Some(distance)) => out.push(RelPair {
                a: cols[0].to_string(),
                b: cols[1].to_string(),
                distance,
            }),
            _ => bail!(
                "{}:{}: expected text_a<TAB>text_b<TAB>distance(0-3)",
                path.display(),
                i + 1
            ),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rankings_metrics() {
        let g = |c: &str| Gold {
            mention: "m".into(),
            system: "S".into(),
            code: c.into(),
        };
        let gold = vec![g("a"), g("b"), g("c")];
        let r = |v: &[&str]| {
            v.iter()
                .map(|c| ("S".to_string(), c.to_string()))
                .collect::<Vec<_>>()
        };
        let ranked = vec![r(&["a", "x"]), r(&["x", "y", "b"]), r(&["x"])];
        let s = score_rankings(&gold, &ranked);
        assert!((s.acc1 - 1.0 / 3.0).abs() < 1e-9);
        assert!((s.acc5 - 2.0 / 3.0).abs() < 1e-9);
        assert!((s.mrr - (1.0 + 1.0 / 3.0) / 3.0).abs() < 1e-9);
    }
}
