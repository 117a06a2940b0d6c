//! Ranking and separation metrics as pure functions: ROC AUC, the category-pair AUCs of
//! HiPrBERT's relatedness measure, acc@k and MRR of a ranking, Spearman's rank correlation.
//!
//! Conventions: a metric that cannot be measured (an empty side of an AUC, no category pair
//! with data on both sides, no examples) is NaN — "not measurable", never 0, which would read
//! as the worst possible score. Reports write NaN as `null` ([`nan_as_null`]) and tables as `–`
//! ([`fmt_metric`]).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Serde for metrics that may be NaN ("not measurable"): written as `null`, read back as NaN.
pub mod nan_as_null {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Write NaN/∞ as `null`.
    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_f64(*x)
        } else {
            s.serialize_none()
        }
    }

    /// Read `null` as NaN.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
}

/// A metric for a markdown table: three decimals, `–` when not measurable.
pub fn fmt_metric(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "–".into()
    }
}

/// A difference for a markdown table: signed, three decimals, `–` when not measurable.
pub fn fmt_delta(x: f64) -> String {
    if x.is_finite() {
        format!("{x:+.3}")
    } else {
        "–".into()
    }
}

/// Mean of `xs`, NaN when empty.
pub fn mean(xs: &[f64]) -> f64 {
    if xs.is_empty() {
        f64::NAN
    } else {
        xs.iter().sum::<f64>() / xs.len() as f64
    }
}

/// ROC AUC that a random positive scores above a random negative (ties count half; the
/// Mann–Whitney U over n·m). NaN when either side is empty. O((n+m) log(n+m)) via ranks.
pub fn roc_auc(pos: &[f32], neg: &[f32]) -> f64 {
    if pos.is_empty() || neg.is_empty() {
        return f64::NAN;
    }
    let mut all: Vec<(f32, bool)> = pos
        .iter()
        .map(|&s| (s, true))
        .chain(neg.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // average ranks for ties
    let mut rank_sum_pos = 0f64;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j + 1 < all.len() && all[j + 1].0 == all[i].0 {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum_pos += avg * all[i..=j].iter().filter(|x| x.1).count() as f64;
        i = j + 1;
    }
    let (n, m) = (pos.len() as f64, neg.len() as f64);
    (rank_sum_pos - n * (n + 1.0) / 2.0) / (n * m)
}

/// The relatedness categories (0 = same concept, 1 = child/sibling, 2 = parent, 3 = random in
/// the same tree, following HiPrBERT).
pub const CATEGORIES: usize = 4;

/// The category pairs reported, closer category first.
pub const CATEGORY_PAIRS: [(u8, u8); 6] = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)];

/// AUCs for every category pair present, keyed `"0v1"` etc., and their mean.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CategoryAucs {
    /// AUC per category pair `i < j` (does category i score above j?), only pairs with both
    /// categories present; keys sort in [`CATEGORY_PAIRS`] order.
    pub aucs: BTreeMap<String, f64>,
    /// Mean of `aucs`; NaN (written `null`) when no pair had data on both sides.
    #[serde(with = "nan_as_null")]
    pub mean: f64,
}

/// Pairs per category (index = category; categories ≥ [`CATEGORIES`] are not counted).
pub fn category_counts(cats: &[u8]) -> [usize; CATEGORIES] {
    let mut n = [0; CATEGORIES];
    for &c in cats {
        if let Some(x) = n.get_mut(c as usize) {
            *x += 1;
        }
    }
    n
}

/// Category-pair AUCs from pair similarities `sims` and their categories `cats` (HiPrBERT's
/// relatedness measure; one implementation for training reports and `ontovec eval`).
pub fn category_aucs(sims: &[f32], cats: &[u8]) -> CategoryAucs {
    let mut by: [Vec<f32>; CATEGORIES] = Default::default();
    for (s, &c) in sims.iter().zip(cats) {
        if let Some(v) = by.get_mut(c as usize) {
            v.push(*s);
        }
    }
    let mut aucs = BTreeMap::new();
    for (i, j) in CATEGORY_PAIRS {
        let a = roc_auc(&by[i as usize], &by[j as usize]);
        if a.is_finite() {
            aucs.insert(format!("{i}v{j}"), a);
        }
    }
    let mean = mean(&aucs.values().copied().collect::<Vec<_>>());
    CategoryAucs { aucs, mean }
}

/// acc@1, acc@5 and MRR of a set of rankings.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RankScores {
    /// Examples evaluated.
    pub n: usize,
    /// Fraction with the right answer first (NaN without examples).
    pub acc1: f64,
    /// Fraction with the right answer in the top 5.
    pub acc5: f64,
    /// Mean reciprocal rank within the top [`MRR_DEPTH`] (0 for an answer ranked lower or absent).
    pub mrr: f64,
}

/// How deep the reciprocal rank of [`rank_scores`] looks.
pub const MRR_DEPTH: usize = 10;

/// acc@1, acc@5 and MRR from the 0-based position of the right answer in each ranking (`None`
/// when it is absent).
pub fn rank_scores(positions: &[Option<usize>]) -> RankScores {
    let (mut a1, mut a5, mut rr) = (0usize, 0usize, 0f64);
    for pos in positions.iter().flatten() {
        a1 += usize::from(*pos == 0);
        a5 += usize::from(*pos < 5);
        if *pos < MRR_DEPTH {
            rr += 1.0 / (pos + 1) as f64;
        }
    }
    let n = positions.len() as f64;
    let frac = |x: f64| if n > 0.0 { x / n } else { f64::NAN };
    RankScores {
        n: positions.len(),
        acc1: frac(a1 as f64),
        acc5: frac(a5 as f64),
        mrr: frac(rr),
    }
}

/// Ranks of `xs`, 1-based, ties sharing the average of the ranks they span (so `[10, 20, 20,
/// 30]` ranks `[1, 2.5, 2.5, 4]`). NaNs sort last (by `total_cmp`); callers reject them first.
pub fn average_ranks(xs: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..xs.len()).collect();
    order.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut ranks = vec![0.0; xs.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && xs[order[j + 1]] == xs[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            ranks[k] = avg;
        }
        i = j + 1;
    }
    ranks
}

/// Pearson's correlation of `x` and `y` (same length); NaN when shorter than 2 or either side
/// is constant.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "pearson of unequal lengths");
    if x.len() < 2 {
        return f64::NAN;
    }
    let (mx, my) = (mean(x), mean(y));
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (dx, dy) = (a - mx, b - my);
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if sxx == 0.0 || syy == 0.0 {
        return f64::NAN;
    }
    sxy / (sxx * syy).sqrt()
}

/// Spearman's rank correlation ρ: Pearson's correlation of the average ranks
/// ([`average_ranks`]), the tie-corrected form (scipy's `spearmanr`). NaN when shorter than 2
/// or either side is constant.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&average_ranks(x), &average_ranks(y))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn average_ranks_share_ties() {
        assert_eq!(
            average_ranks(&[10.0, 20.0, 20.0, 30.0]),
            [1.0, 2.5, 2.5, 4.0]
        );
        assert_eq!(average_ranks(&[3.0, 1.0, 2.0]), [3.0, 1.0, 2.0]);
        assert_eq!(average_ranks(&[5.0, 5.0, 5.0]), [2.0, 2.0, 2.0]);
        assert!(average_ranks(&[]).is_empty());
    }

    #[test]
    fn spearman_perfect_inverse_ties_and_degenerate() {
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        // any increasing transform is a perfect rank agreement
        assert!((spearman(&x, &[0.1, 0.4, 0.9, 1.6, 2.5]) - 1.0).abs() < 1e-12);
        assert!((spearman(&x, &[9.0, 7.0, 5.0, 3.0, 1.0]) + 1.0).abs() < 1e-12);
        // with ties (scipy.stats.spearmanr([1,2,2,3],[1,2,3,4]) = 0.9486832980505138)
        let r = spearman(&[1.0, 2.0, 2.0, 3.0], &[1.0, 2.0, 3.0, 4.0]);
        assert!((r - 0.948_683_298_050_513_8).abs() < 1e-12, "{r}");
        // one swap in five: 1 - 6*2/(5*24) = 0.9
        assert!((spearman(&x, &[1.0, 3.0, 2.0, 4.0, 5.0]) - 0.9).abs() < 1e-12);
        assert!(spearman(&x, &[1.0; 5]).is_nan());
        assert!(spearman(&[1.0], &[2.0]).is_nan());
    }

    #[test]
    fn auc_known_values() {
        assert_eq!(roc_auc(&[0.9, 0.8], &[0.1, 0.2]), 1.0);
        assert_eq!(roc_auc(&[0.1], &[0.9]), 0.0);
        assert_eq!(roc_auc(&[0.5], &[0.5]), 0.5);
        // 3 of 4 orderings right
        assert!((roc_auc(&[0.3, 0.9], &[0.1, 0.5]) - 0.75).abs() < 1e-12);
        assert!((roc_auc(&[0.9, 0.3], &[0.5]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn auc_of_an_empty_side_is_not_measurable() {
        assert!(roc_auc(&[], &[0.1]).is_nan());
        assert!(roc_auc(&[0.1], &[]).is_nan());
        assert!(roc_auc(&[], &[]).is_nan());
    }

    #[test]
    fn auc_matches_brute_force_with_ties() {
        let pos = [0.1f32, 0.4, 0.4, 0.7, 0.9, 0.3];
        let neg = [0.4f32, 0.2, 0.3, 0.05, 0.8];
        let mut s = 0.0;
        for p in pos {
            for n in neg {
                s += if p > n {
                    1.0
                } else if p == n {
                    0.5
                } else {
                    0.0
                };
            }
        }
        let brute = s / (pos.len() * neg.len()) as f64;
        assert!((roc_auc(&pos, &neg) - brute).abs() < 1e-12);
    }

    #[test]
    fn category_aucs_cover_present_pairs() {
        let sims = [0.9, 0.8, 0.5, 0.6, 0.1, 0.2];
        let cats = [0u8, 0, 1, 1, 3, 3];
        let r = category_aucs(&sims, &cats);
        assert_eq!(
            r.aucs.keys().cloned().collect::<Vec<_>>(),
            vec!["0v1", "0v3", "1v3"]
        );
        assert_eq!(r.mean, 1.0);
        assert_eq!(category_counts(&cats), [2, 2, 0, 2]);
    }

    /// The convention both former copies now share: no measurable pair → no AUCs and a NaN
    /// mean (one copy used to report 0.0, which reads as "always wrong").
    #[test]
    fn category_aucs_without_data_are_not_measurable() {
        for (sims, cats) in [(&[][..], &[][..]), (&[0.5, 0.7][..], &[2u8, 2][..])] {
            let r = category_aucs(sims, cats);
            assert!(r.aucs.is_empty());
            assert!(r.mean.is_nan());
            let json = serde_json::to_value(&r).unwrap();
            assert!(json["mean"].is_null(), "{json}");
            let back: CategoryAucs = serde_json::from_value(json).unwrap();
            assert!(back.mean.is_nan());
        }
        assert_eq!(fmt_metric(f64::NAN), "–");
        assert_eq!(fmt_metric(0.12345), "0.123");
    }

    #[test]
    fn rank_scores_known_values() {
        let s = rank_scores(&[Some(0), Some(2), None]);
        assert_eq!(s.n, 3);
        assert!((s.acc1 - 1.0 / 3.0).abs() < 1e-9);
        assert!((s.acc5 - 2.0 / 3.0).abs() < 1e-9);
        assert!((s.mrr - (1.0 + 1.0 / 3.0) / 3.0).abs() < 1e-9);
        // beyond the MRR depth: counts for nothing
        assert_eq!(rank_scores(&[Some(MRR_DEPTH)]).mrr, 0.0);
        assert!(rank_scores(&[]).acc1.is_nan());
    }
}
