//! Held-out evaluation of a HiPrBERT model, per system: category-pair ROC AUCs of related
//! pairs and synonym normalisation accuracy, computed by [`crate::eval`] over an embedding
//! function so the base and the trained model are measured the same way.

use crate::eval::embedding::{normalization_accuracy, pair_similarities, EmbedFn};
use crate::eval::metrics::{category_aucs, category_counts, nan_as_null, CategoryAucs};

/// Evaluation results of one model on one system.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct SystemReport {
    /// System.
    pub system: String,
    /// Pairs evaluated per category (index = category).
    pub pairs_per_category: [usize; 4],
    /// Category-pair AUCs (None when the system has no structure).
    pub aucs: Option<CategoryAucs>,
    /// Normalisation queries.
    pub queries: usize,
    /// Normalisation candidates.
    pub candidates: usize,
    /// Normalisation accuracy at 1 (NaN without queries).
    #[serde(with = "nan_as_null")]
    pub acc1: f64,
    /// Normalisation accuracy at 5.
    #[serde(with = "nan_as_null")]
    pub acc5: f64,
}

/// Evaluate one embedding function on prepared per-system sets (see
/// [`crate::train::hiprbert::data::build_eval`]).
pub fn evaluate(
    embed: &mut EmbedFn<'_>,
    sets: &[crate::train::hiprbert::data::SystemEval],
) -> anyhow::Result<Vec<SystemReport>> {
    let mut out = Vec::new();
    for s in sets {
        let mut r = SystemReport {
            system: s.system.clone(),
            queries: s.queries.len(),
            candidates: s.candidates.len(),
            acc1: f64::NAN,
            acc5: f64::NAN,
            ..Default::default()
        };
        let cats: Vec<u8> = s.pairs.iter().map(|p| p.2).collect();
        r.pairs_per_category = category_counts(&cats);
        if !s.pairs.is_empty() {
            let sims = pair_similarities(embed, &s.pairs)?;
            r.aucs = Some(category_aucs(&sims, &cats));
        }
        let (a1, a5) = normalization_accuracy(embed, &s.queries, &s.candidates)?;
        r.acc1 = a1;
        r.acc5 = a5;
        out.push(r);
    }
    Ok(out)
}
