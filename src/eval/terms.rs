//! Evaluation of term search — normalisation and relatedness — against a data directory
//! (in-process, through the search engine) or a running server (over HTTP), with the same
//! metrics ([`super::metrics`]) either way.
//!
//! * Normalisation gold: TSV `mention \t system \t code` (e.g. written by `ingest --hold-out`).
//!   A code ending in `*` accepts that code or any code starting with it (`I21*`: any acute
//!   myocardial infarction code; lay phrases rarely name one billable code).
//!   Metrics: acc@1, acc@5 and MRR (reciprocal rank of the gold concept in the top 10, 0 when
//!   absent). [`fusion_ceilings`] bounds what any fusion of two rankings can reach.
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

impl Gold {
    /// Whether a found concept is this gold one (`*`: prefix match, see module docs).
    pub fn matches(&self, system: &str, code: &str) -> bool {
        if system != self.system {
            return false;
        }
        match self.code.strip_suffix('*') {
            Some(prefix) => code.starts_with(prefix),
            None => code == self.code,
        }
    }
}

/// Read a gold TSV (mention, system, code); `#` lines and a header line `mention<TAB>...` are
/// skipped.
pub fn read_gold(path: &Path) -> Result<Vec<Gold>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty()
            || line.starts_with('#')
            || line.starts_with("mention\t")
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
        .map(|(g, r)| r.iter().position(|(s, c)| g.matches(s, c)))
        .collect();
    rank_scores(&positions)
}

/// Upper bounds on what any fusion of two result lists can reach on a gold set, as shares of
/// its mentions: `either_first` — the gold concept is the first answer of at least one side
/// (no arbiter that picks one of the two first answers does better); `union_at(k)` — it is
/// among the first `k` of either side (no reranker of those 2k answers does better at acc@1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusionCeilings {
    /// Gold first on either side.
    pub either_first: f64,
    /// Gold within either side's first 5.
    pub union_at5: f64,
}

/// [`FusionCeilings`] of two rankings of the same mentions (lexical and vector, say).
pub fn fusion_ceilings(
    gold: &[Gold],
    a: &[Vec<(String, String)>],
    b: &[Vec<(String, String)>],
) -> FusionCeilings {
    let within =
        |g: &Gold, r: &[(String, String)], k: usize| r.iter().take(k).any(|(s, c)| g.matches(s, c));
    let (mut first, mut five) = (0usize, 0usize);
    for ((g, ra), rb) in gold.iter().zip(a).zip(b) {
        first += usize::from(within(g, ra, 1) || within(g, rb, 1));
        five += usize::from(within(g, ra, 5) || within(g, rb, 5));
    }
    let n = gold.len().max(1) as f64;
    FusionCeilings {
        either_first: first as f64 / n,
        union_at5: five as f64 / n,
    }
}

/// The systems a gold set is restricted to (sorted, distinct).
pub fn gold_systems(gold: &[Gold]) -> Vec<String> {
    let mut systems: Vec<String> = gold.iter().map(|g| g.system.clone()).collect();
    systems.sort();
    systems.dedup();
    systems
}

/// Query vectors of every gold mention (of the text search embeds, see
/// [`SearchEngine::query_text`]), computed once and shared by the variants of an evaluation.
pub fn embed_mentions(
    eng: &SearchEngine,
    gold: &[Gold],
    model: Option<&str>,
) -> Result<Vec<Vec<f32>>> {
    let h = eng.registry().get(model, ModelKind::Terms)?;
    let mut out = Vec::with_capacity(gold.len());
    for chunk in gold.chunks(256) {
        let texts: Vec<String> = chunk
            .iter()
            .map(|g| SearchEngine::query_text(&g.mention).into_owned())
            .collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        out.extend(h.embed_blocking(&refs)?);
    }
    Ok(out)
}

/// Rank candidates for every gold mention in-process (restricted to the gold systems), with
/// query vectors from [`embed_mentions`] (needed for hybrid and vector modes).
pub fn rank_local(
    eng: &SearchEngine,
    gold: &[Gold],
    mode: Mode,
    fusion: FusionMethod,
    model: Option<&str>,
    vecs: Option<&[Vec<f32>]>,
) -> Result<Vec<Vec<(String, String)>>> {
    let systems = gold_systems(gold);
    let mut out = Vec::with_capacity(gold.len());
    for (i, g) in gold.iter().enumerate() {
        let q = Query {
            text: g.mention.clone(),
            k: 10,
            mode,
            systems: Some(systems.clone()),
            model: model.map(str::to_string),
            fusion,
            explain: false,
            include_inactive: false,
        };
        let v = match mode {
            Mode::Hybrid | Mode::Vector => vecs.map(|v| v[i].as_slice()),
            _ => None,
        };
        let found = eng.search_with_vector(&q, v)?;
        out.push(found.into_iter().map(|f| (f.system, f.code)).collect());
    }
    Ok(out)
}

/// Learned-hybrid candidates of every gold mention with their features and gold flags (the
/// training data of [`super::learn::fit`]).
pub fn learned_data(
    eng: &SearchEngine,
    gold: &[Gold],
    model: Option<&str>,
    vecs: &[Vec<f32>],
) -> Result<Vec<super::learn::QueryData>> {
    let systems = gold_systems(gold);
    let model = eng.terms_model(model)?;
    let allowed: std::collections::HashSet<u64> = systems
        .iter()
        .filter_map(|s| eng.store().active_rid(s))
        .collect();
    let mut out = Vec::with_capacity(gold.len());
    for (g, v) in gold.iter().zip(vecs) {
        let text = SearchEngine::query_text(&g.mention);
        let lq = crate::search::hybrid::LearnedQuery {
            original: &g.mention,
            text: &text,
            qvec: Some(v),
            model: Some(&model),
            systems: Some(&systems),
            allowed: Some(&allowed),
            fetch: 30,
            bridges: true,
            explain: false,
            include_inactive: false,
        };
        let mut d = super::learn::QueryData::default();
        for c in eng.learned_candidates(&lq)? {
            let system = eng.store().system_of_rid(c.rid).unwrap_or_default();
            // what serving leaves out is not fitted on either
            if eng
                .store()
                .concept(&system, &c.code)?
                .is_some_and(|r| !r.concept.active)
            {
                continue;
            }
            d.gold.push(g.matches(&system, &c.code));
            d.x.push(c.x);
            d.codes.push(format!("{system}:{}", c.code));
        }
        out.push(d);
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
        assert!(g("I21*").matches("S", "I21.9") && g("I21*").matches("S", "I21"));
        assert!(!g("I21*").matches("S", "I22") && !g("I21*").matches("T", "I21"));
        assert!(!g("I21").matches("S", "I21.9"));
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

    #[test]
    fn fusion_ceilings_count_either_side() {
        let g = |c: &str| Gold {
            mention: "m".into(),
            system: "S".into(),
            code: c.into(),
        };
        let r = |v: &[&str]| {
            v.iter()
                .map(|c| ("S".to_string(), c.to_string()))
                .collect::<Vec<_>>()
        };
        let gold = vec![g("a"), g("b"), g("c"), g("d")];
        // a: first on side A; b: first on side B; c: 3rd on A only; d: nowhere in the top 5
        let a = vec![
            r(&["a"]),
            r(&["x", "b"]),
            r(&["x", "y", "c"]),
            r(&["1", "2", "3", "4", "5", "d"]),
        ];
        let b = vec![r(&["x"]), r(&["b"]), r(&["x"]), r(&[])];
        let c = fusion_ceilings(&gold, &a, &b);
        assert!((c.either_first - 0.5).abs() < 1e-9, "{c:?}");
        assert!((c.union_at5 - 0.75).abs() < 1e-9, "{c:?}");
        assert_eq!(fusion_ceilings(&[], &[], &[]).either_first, 0.0);
    }
}
