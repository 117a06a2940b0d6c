//! Multi-label coding metrics over a score matrix (notes × codes), as pure functions (the
//! NoteContrast evaluation; any code scorer can be measured with them).
//!
//! * micro-F1 / macro-F1 of set prediction `score ≥ threshold`, the threshold chosen on the dev
//!   split to maximise micro-F1 (exactly: every distinct dev score is a candidate);
//! * two macro-F1s: `macro_f1` averages the per-code F1 over the codes with at least one gold
//!   note in the split (a code that is only ever a false positive does not count);
//!   `macro_f1_label` is the standard label-wise mean over the whole candidate set, with one
//!   convention for the empty code: a candidate with no gold note and no prediction has an
//!   undefined F1 (0/0) and is **excluded**; every other candidate counts, false-positive-only
//!   codes with F1 = 0;
//! * a gold code outside the candidate set (an index past the score vector: a test code never
//!   seen in training, when the candidates are the training codes) is a miss: a false negative
//!   in micro-F1, 0 in `macro_f1`, a miss in recall@k; not a candidate, so not in
//!   `macro_f1_label` or the AUCs;
//! * micro-AUC (all note–code pairs pooled) and macro-AUC (mean over codes with both positive
//!   and negative notes), via [`super::metrics::roc_auc`];
//! * MAP (CodiEsp's official measure): the mean over notes of average precision over the
//!   note's whole ranking (the precision at the rank of each gold code, averaged over the
//!   note's gold codes; a gold code outside the candidate set counts as never ranked);
//! * P@k: share of the top k that are gold; recall@k: share of a note's gold codes in its top k;
//! * the same restricted to *rare* codes (given as a set): macro-F1 and recall@k over rare gold
//!   codes only.

use super::metrics::{mean, roc_auc};
use std::collections::{BTreeMap, HashSet};

/// Scores of one method on one split: `scores[i][c]` for note `i`, code `c`.
pub struct Split<'a> {
    /// Score matrix.
    pub scores: &'a [Vec<f32>],
    /// Gold code indices per note.
    pub gold: &'a [Vec<usize>],
}

/// Metrics of one method.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CodingMetrics {
    /// Threshold tuned on dev.
    pub threshold: f32,
    /// Micro-F1.
    pub micro_f1: f64,
    /// Macro-F1 over codes with gold notes.
    pub macro_f1: f64,
    /// Macro-F1 label-wise over the candidate set; candidates with no gold and no prediction
    /// excluded (module docs).
    #[serde(default)]
    pub macro_f1_label: f64,
    /// Mean average precision over the whole ranking.
    #[serde(default)]
    pub map: f64,
    /// Micro ROC AUC.
    pub micro_auc: f64,
    /// Macro ROC AUC.
    pub macro_auc: f64,
    /// Precision at 5.
    pub p_at_5: f64,
    /// Precision at 8.
    pub p_at_8: f64,
    /// Recall at 8.
    pub recall_at_8: f64,
    /// Recall at 20.
    pub recall_at_20: f64,
    /// Macro-F1 over rare codes with gold notes.
    pub rare_macro_f1: f64,
    /// Recall at 8 of rare gold codes.
    pub rare_recall_at_8: f64,
    /// Recall at 20 of rare gold codes.
    pub rare_recall_at_20: f64,
}

/// Indices of the `k` highest scores, best first (ties by index).
pub fn top(scores: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Precision at k: the share of the first `k` of `ranked` that are in `gold` (divided by `k`
/// even when fewer were ranked, as the coding literature reports P@k).
pub fn precision_at_k(ranked: &[usize], gold: &HashSet<usize>, k: usize) -> f64 {
    if k == 0 {
        return f64::NAN;
    }
    ranked.iter().take(k).filter(|c| gold.contains(c)).count() as f64 / k as f64
}

/// Recall at k: the share of `gold` among the first `k` of `ranked` (NaN for an empty gold set).
pub fn recall_at_k(ranked: &[usize], gold: &HashSet<usize>, k: usize) -> f64 {
    if gold.is_empty() {
        return f64::NAN;
    }
    ranked.iter().take(k).filter(|c| gold.contains(c)).count() as f64 / gold.len() as f64
}

/// F1 from true positives, false positives and false negatives (0 without a true positive).
pub fn f1(tp: f64, fp: f64, fn_: f64) -> f64 {
    if tp == 0.0 {
        0.0
    } else {
        2.0 * tp / (2.0 * tp + fp + fn_)
    }
}

/// Micro-F1 at a threshold.
pub fn micro_f1(s: &Split<'_>, th: f32) -> f64 {
    let (mut tp, mut fp, mut fn_) = (0f64, 0f64, 0f64);
    for (row, gold) in s.scores.iter().zip(s.gold) {
        let g: HashSet<usize> = gold.iter().copied().collect();
        fn_ += g.iter().filter(|&&c| c >= row.len()).count() as f64;
        for (c, &x) in row.iter().enumerate() {
            match (x >= th, g.contains(&c)) {
                (true, true) => tp += 1.0,
                (true, false) => fp += 1.0,
                (false, true) => fn_ += 1.0,
                _ => {}
            }
        }
    }
    f1(tp, fp, fn_)
}

/// The threshold maximising micro-F1 on `dev`: every (score, gold) pair sorted by score, swept
/// from the top with running counts, so the optimum is exact (ties are taken together).
pub fn tune_threshold(dev: &Split<'_>) -> f32 {
    let mut all: Vec<(f32, bool)> = Vec::new();
    let mut positives = 0f64;
    for (row, gold) in dev.scores.iter().zip(dev.gold) {
        let g: HashSet<usize> = gold.iter().copied().collect();
        positives += g.len() as f64;
        all.extend(row.iter().enumerate().map(|(c, &x)| (x, g.contains(&c))));
    }
    if all.is_empty() {
        return 0.5;
    }
    all.sort_unstable_by(|a, b| b.0.total_cmp(&a.0));
    let (mut tp, mut fp) = (0f64, 0f64);
    let mut best = (f64::NEG_INFINITY, all[0].0);
    let mut i = 0;
    while i < all.len() {
        let th = all[i].0;
        while i < all.len() && all[i].0 == th {
            if all[i].1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        let f = f1(tp, fp, positives - tp);
        if f > best.0 {
            best = (f, th);
        }
    }
    best.1
}

/// Average precision of one ranking (`scores`, higher first) against `gold`; NaN without gold.
pub fn average_precision(scores: &[f32], gold: &[usize]) -> f64 {
    let g: HashSet<usize> = gold.iter().copied().collect();
    if g.is_empty() {
        return f64::NAN;
    }
    // rank of each gold code = 1 + codes scored strictly higher (ties broken by index)
    let mut ranks: Vec<usize> = g
        .iter()
        .filter(|&&c| c < scores.len())
        .map(|&c| {
            1 + scores
                .iter()
                .enumerate()
                .filter(|&(i, &x)| x > scores[c] || (x == scores[c] && i < c))
                .count()
        })
        .collect();
    ranks.sort_unstable();
    let sum: f64 = ranks
        .iter()
        .enumerate()
        .map(|(hits, &r)| (hits + 1) as f64 / r as f64)
        .sum();
    sum / g.len() as f64
}

/// All metrics of a method on `test`, with the threshold tuned on `dev`.
pub fn evaluate(dev: &Split<'_>, test: &Split<'_>, rare: &HashSet<usize>) -> CodingMetrics {
    let th = tune_threshold(dev);
    let v = test.scores.first().map(|r| r.len()).unwrap_or(0);
    let n = test.scores.len().max(1) as f64;
    let (mut p5, mut p8, mut r8, mut r20) = (0.0, 0.0, 0.0, 0.0);
    let (mut rr8, mut rr20, mut rare_gold) = (0.0, 0.0, 0.0);
    let mut tp = vec![0f64; v];
    let mut fp = vec![0f64; v];
    let mut fn_ = vec![0f64; v];
    let mut pos: Vec<Vec<f32>> = vec![Vec::new(); v];
    let mut neg: Vec<Vec<f32>> = vec![Vec::new(); v];
    let (mut all_pos, mut all_neg) = (Vec::new(), Vec::new());
    // gold codes outside the candidate set: occurrences per code
    let mut outside: BTreeMap<usize, f64> = BTreeMap::new();
    let mut aps = Vec::new();
    for (row, gold) in test.scores.iter().zip(test.gold) {
        let ap = average_precision(row, gold);
        if ap.is_finite() {
            aps.push(ap);
        }
        let g: HashSet<usize> = gold.iter().copied().collect();
        for &c in g.iter().filter(|&&c| c >= v) {
            *outside.entry(c).or_default() += 1.0;
        }
        let t20 = top(row, 20);
        p5 += precision_at_k(&t20, &g, 5);
        p8 += precision_at_k(&t20, &g, 8);
        if !g.is_empty() {
            r8 += recall_at_k(&t20, &g, 8);
            r20 += recall_at_k(&t20, &g, 20);
        }
        for &c in gold.iter().filter(|c| rare.contains(c)) {
            rare_gold += 1.0;
            if t20.iter().take(8).any(|&x| x == c) {
                rr8 += 1.0;
            }
            if t20.contains(&c) {
                rr20 += 1.0;
            }
        }
        for (c, &x) in row.iter().enumerate() {
            let is_gold = g.contains(&c);
            match (x >= th, is_gold) {
                (true, true) => tp[c] += 1.0,
                (true, false) => fp[c] += 1.0,
                (false, true) => fn_[c] += 1.0,
                _ => {}
            }
            if is_gold {
                pos[c].push(x);
                all_pos.push(x);
            } else {
                neg[c].push(x);
                all_neg.push(x);
            }
        }
    }
    let gold_codes: Vec<usize> = (0..v).filter(|&c| tp[c] + fn_[c] > 0.0).collect();
    let f1s: Vec<f64> = gold_codes
        .iter()
        .map(|&c| f1(tp[c], fp[c], fn_[c]))
        .chain(outside.values().map(|_| 0.0))
        .collect();
    let label_f1s: Vec<f64> = (0..v)
        .filter(|&c| tp[c] + fp[c] + fn_[c] > 0.0)
        .map(|c| f1(tp[c], fp[c], fn_[c]))
        .collect();
    let rare_f1s: Vec<f64> = gold_codes
        .iter()
        .filter(|c| rare.contains(c))
        .map(|&c| f1(tp[c], fp[c], fn_[c]))
        .collect();
    let aucs: Vec<f64> = (0..v)
        .map(|c| roc_auc(&pos[c], &neg[c]))
        .filter(|a| a.is_finite())
        .collect();
    let (stp, sfp, sfn) = (
        tp.iter().sum::<f64>(),
        fp.iter().sum::<f64>(),
        fn_.iter().sum::<f64>() + outside.values().sum::<f64>(),
    );
    CodingMetrics {
        threshold: th,
        micro_f1: f1(stp, sfp, sfn),
        macro_f1: mean(&f1s),
        macro_f1_label: mean(&label_f1s),
        map: mean(&aps),
        micro_auc: roc_auc(&all_pos, &all_neg),
        macro_auc: mean(&aucs),
        p_at_5: p5 / n,
        p_at_8: p8 / n,
        recall_at_8: r8 / n,
        recall_at_20: r20 / n,
        rare_macro_f1: mean(&rare_f1s),
        rare_recall_at_8: if rare_gold > 0.0 {
            rr8 / rare_gold
        } else {
            f64::NAN
        },
        rare_recall_at_20: if rare_gold > 0.0 {
            rr20 / rare_gold
        } else {
            f64::NAN
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_scores_give_perfect_metrics() {
        let scores = vec![vec![0.9, 0.1, 0.2], vec![0.1, 0.8, 0.7]];
        let gold = vec![vec![0], vec![1, 2]];
        let s = Split {
            scores: &scores,
            gold: &gold,
        };
        let rare: HashSet<usize> = [2].into_iter().collect();
        let m = evaluate(&s, &s, &rare);
        assert!((m.micro_f1 - 1.0).abs() < 1e-9, "{m:?}");
        assert!((m.macro_auc - 1.0).abs() < 1e-9);
        assert!((m.recall_at_8 - 1.0).abs() < 1e-9);
        assert!((m.rare_recall_at_8 - 1.0).abs() < 1e-9);
        let bad = vec![vec![0.1, 0.9, 0.9], vec![0.9, 0.1, 0.1]];
        let b = Split {
            scores: &bad,
            gold: &gold,
        };
        let mb = evaluate(&b, &b, &rare);
        // inverted scores: the best threshold takes everything (F1 2/3), AUC is 0
        assert!(mb.micro_f1 < m.micro_f1 && mb.micro_auc < 0.5, "{mb:?}");
    }

    #[test]
    fn precision_and_recall_at_k() {
        let gold: HashSet<usize> = [1, 4, 7].into_iter().collect();
        let ranked = [4, 2, 1, 9];
        assert_eq!(precision_at_k(&ranked, &gold, 2), 0.5);
        // fewer ranked than k: still divided by k
        assert_eq!(precision_at_k(&ranked, &gold, 8), 2.0 / 8.0);
        assert!((recall_at_k(&ranked, &gold, 3) - 2.0 / 3.0).abs() < 1e-12);
        assert!(recall_at_k(&ranked, &HashSet::new(), 3).is_nan());
        assert_eq!(top(&[0.1, 0.9, 0.5, 0.9], 3), vec![1, 3, 2]);
        assert_eq!(f1(0.0, 3.0, 1.0), 0.0);
        assert!((f1(2.0, 1.0, 1.0) - 2.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn average_precision_by_hand() {
        // gold at ranks 1 and 3: (1/1 + 2/3) / 2
        let ap = average_precision(&[0.9, 0.5, 0.7, 0.1], &[0, 1]);
        assert!((ap - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-9, "{ap}");
        // a gold code outside the scored candidates is never ranked
        let ap = average_precision(&[0.9, 0.5], &[0, 7]);
        assert!((ap - 0.5).abs() < 1e-9, "{ap}");
        assert!(average_precision(&[0.9], &[]).is_nan());
    }

    #[test]
    fn macro_f1_both_definitions_by_hand() {
        // the dev split puts the threshold at 1.0: a score of 1 is a prediction
        let (dscores, dgold) = (vec![vec![1.0, 0.0, 0.0, 0.0]], vec![vec![0]]);
        let dev = Split {
            scores: &dscores,
            gold: &dgold,
        };
        // code 0: gold twice, predicted twice (F1 1); code 1: predicted twice, never gold
        // (F1 0); code 2: gold once, never predicted (F1 0); code 3: neither (0/0)
        let scores = vec![
            vec![1.0, 1.0, 0.0, 0.0],
            vec![1.0, 0.0, 0.0, 0.0],
            vec![0.0, 1.0, 0.0, 0.0],
        ];
        let gold = vec![vec![0], vec![0, 2], vec![]];
        let test = Split {
            scores: &scores,
            gold: &gold,
        };
        let m = evaluate(&dev, &test, &HashSet::new());
        assert_eq!(m.threshold, 1.0);
        // gold codes {0, 2}: (1 + 0) / 2; label-wise {0, 1, 2} (3 excluded): (1 + 0 + 0) / 3
        assert!((m.macro_f1 - 0.5).abs() < 1e-12, "{m:?}");
        assert!((m.macro_f1_label - 1.0 / 3.0).abs() < 1e-12, "{m:?}");
        // tp 2, fp 2, fn 1
        assert!((m.micro_f1 - 4.0 / 7.0).abs() < 1e-12, "{m:?}");
        assert!((micro_f1(&test, 1.0) - 4.0 / 7.0).abs() < 1e-12);

        // a gold code past the candidates (never seen in training) is a miss: fn in
        // micro-F1, a 0 in the gold-code macro-F1, absent from the label-wise one
        let gold = vec![vec![0], vec![0, 2, 9], vec![]];
        let test = Split {
            scores: &scores,
            gold: &gold,
        };
        let m = evaluate(&dev, &test, &HashSet::new());
        assert!((m.macro_f1 - 1.0 / 3.0).abs() < 1e-12, "{m:?}");
        assert!((m.macro_f1_label - 1.0 / 3.0).abs() < 1e-12, "{m:?}");
        assert!((m.micro_f1 - 0.5).abs() < 1e-12, "{m:?}");
        assert!((micro_f1(&test, 1.0) - 0.5).abs() < 1e-12);
        // recall@8: the 4 candidates are all in every top 8, so note 1 finds 2 of its 3 gold
        // codes; note 2 has none (counts 0, as before)
        assert!(
            (m.recall_at_8 - (1.0 + 2.0 / 3.0) / 3.0).abs() < 1e-12,
            "{m:?}"
        );
    }
}
