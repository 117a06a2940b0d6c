//! ICD-coding metrics over a score matrix (notes × codes), as pure functions.
//!
//! * micro-F1 / macro-F1 of set prediction `score ≥ threshold`, the threshold chosen on the dev
//!   split to maximise micro-F1 (exactly: every distinct dev score is a candidate);
//!   macro-F1 averages over the codes with at least one gold note in the split;
//! * micro-AUC (all note–code pairs pooled) and macro-AUC (mean over codes with both positive
//!   and negative notes), via [`crate::search::eval::roc_auc`];
//! * MAP (CodiEsp's official measure): the mean over notes of average precision over the
//!   note's whole ranking (the precision at the rank of each gold code, averaged over the
//!   note's gold codes; a gold code outside the label space counts as never ranked);
//! * P@k: share of the top k that are gold; recall@k: share of a note's gold codes in its top k;
//! * the same restricted to *rare* codes (given as a set): macro-F1 and recall@k over rare gold
//!   codes only.

use crate::search::eval::roc_auc;
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
    /// Micro ROC AUC.
    pub micro_auc: f64,
    /// Macro ROC AUC.
    pub macro_auc: f64,
    /// Mean average precision over the whole ranking.
    #[serde(default)]
    pub map: f64,
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

fn top(scores: &[f32], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

/// Average precision of one ranking (`scores`, higher first) against `gold`.
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

fn f1(tp: f64, fp: f64, fn_: f64) -> f64 {
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

/// All metrics of a method on `test`, with the threshold tuned on `dev`.
pub fn evaluate(dev: &Split<'_>, test: &Split<'_>, rare: &HashSet<usize>) -> CodingMetrics {
    let th = tune_threshold(dev);
    let v = test.scores.first().map(|r| r.len()).unwrap_or(0);
    let n = test.scores.len().max(1) as f64;
    let (mut p5, mut p8, mut r8, mut r20) = (0.0, 0.0, 0.0, 0.0);
    let (mut ap_sum, mut ap_n) = (0.0, 0.0);
    let (mut rr8, mut rr20, mut rare_gold) = (0.0, 0.0, 0.0);
    let mut tp = vec![0f64; v];
    let mut fp = vec![0f64; v];
    let mut fn_ = vec![0f64; v];
    let mut pos: Vec<Vec<f32>> = vec![Vec::new(); v];
    let mut neg: Vec<Vec<f32>> = vec![Vec::new(); v];
    let (mut all_pos, mut all_neg) = (Vec::new(), Vec::new());
    for (row, gold) in test.scores.iter().zip(test.gold) {
        let g: HashSet<usize> = gold.iter().copied().collect();
        let t20 = top(row, 20);
        let hit = |k: usize| t20.iter().take(k).filter(|c| g.contains(c)).count() as f64;
        let ap = average_precision(row, gold);
        if ap.is_finite() {
            ap_sum += ap;
            ap_n += 1.0;
        }
        p5 += hit(5) / 5.0;
        p8 += hit(8) / 8.0;
        if !g.is_empty() {
            r8 += hit(8) / g.len() as f64;
            r20 += hit(20) / g.len() as f64;
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
    let mean = |xs: &[f64]| {
        if xs.is_empty() {
            f64::NAN
        } else {
            xs.iter().sum::<f64>() / xs.len() as f64
        }
    };
    let f1s: Vec<f64> = gold_codes
        .iter()
        .map(|&c| f1(tp[c], fp[c], fn_[c]))
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
        fn_.iter().sum::<f64>(),
    );
    CodingMetrics {
        threshold: th,
        micro_f1: f1(stp, sfp, sfn),
        macro_f1: mean(&f1s),
        micro_auc: roc_auc(&all_pos, &all_neg),
        macro_auc: mean(&aucs),
        map: if ap_n > 0.0 { ap_sum / ap_n } else { f64::NAN },
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

/// The methods of the evaluation, in table order (`trained_pooled` only with segment scoring;
/// `trained_diverse`, the served order diversified across categories, over the whole label
/// space only).
pub const METHODS: [&str; 6] = [
    "bm25",
    "zero_shot_base",
    "zero_shot_segments",
    "untrained",
    "trained_pooled",
    "trained",
];

/// Every row an evaluation table may have, in order.
const ROWS: [&str; 7] = [
    "bm25",
    "zero_shot_base",
    "zero_shot_segments",
    "untrained",
    "trained_pooled",
    "trained",
    "trained_diverse",
];

/// The test-split table: one row per method.
pub fn eval_table(eval: &BTreeMap<String, CodingMetrics>) -> String {
    let f = |x: f64| {
        if x.is_finite() {
            format!("{x:.3}")
        } else {
            "–".into()
        }
    };
    let mut s = String::from("| method | MAP | micro-F1 | macro-F1 | micro-AUC | macro-AUC | P@5 | P@8 | R@8 | R@20 | rare macro-F1 | rare R@8 | rare R@20 |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for name in ROWS {
        if let Some(m) = eval.get(name) {
            s.push_str(&format!(
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                f(m.map),
                f(m.micro_f1),
                f(m.macro_f1),
                f(m.micro_auc),
                f(m.macro_auc),
                f(m.p_at_5),
                f(m.p_at_8),
                f(m.recall_at_8),
                f(m.recall_at_20),
                f(m.rare_macro_f1),
                f(m.rare_recall_at_8),
                f(m.rare_recall_at_20)
            ));
        }
    }
    s
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
        assert!((m.map - 1.0).abs() < 1e-9, "{m:?}");
        // gold at ranks 1 and 3: (1/1 + 2/3) / 2
        let ap = average_precision(&[0.9, 0.5, 0.7, 0.1], &[0, 1]);
        assert!((ap - (1.0 + 2.0 / 3.0) / 2.0).abs() < 1e-9, "{ap}");
        let bad = vec![vec![0.1, 0.9, 0.9], vec![0.9, 0.1, 0.1]];
        let b = Split {
            scores: &bad,
            gold: &gold,
        };
        let mb = evaluate(&b, &b, &rare);
        // inverted scores: the best threshold takes everything (F1 2/3), AUC is 0
        assert!(mb.micro_f1 < m.micro_f1 && mb.micro_auc < 0.5, "{mb:?}");
    }
}
