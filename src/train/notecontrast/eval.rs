//! The NoteContrast evaluation table: the methods compared and their markdown row layout (the
//! metrics themselves are [`crate::eval::coding`]).

use crate::eval::coding::CodingMetrics;
use crate::eval::metrics::fmt_metric as f;
use std::collections::BTreeMap;

/// The methods of the evaluation, in table order (`trained_pooled` only with segment scoring).
/// `trained_diverse` (the served order diversified across categories) is a row of the
/// whole-label-space table only ([`ROWS`]).
pub const METHODS: [&str; 6] = [
    "bm25",
    "zero_shot_base",
    "zero_shot_segments",
    "untrained",
    "trained_pooled",
    "trained",
];

/// Every row an evaluation table may have, in order.
const ROWS: [&str; 8] = [
    "bm25",
    "zero_shot_base",
    "zero_shot_segments",
    "untrained",
    "trained_pooled",
    "trained",
    "trained_blend",
    "trained_diverse",
];

/// The serving options a run tried on its dev split ([`super::serving`]): one row per option.
pub fn tuning_table(tuning: &[(String, CodingMetrics)]) -> String {
    let mut s = String::from(
        "| option (dev) | MAP | P@5 | R@8 | R@20 | rare R@8 | rare R@20 |\n|---|---|---|---|---|---|---|\n",
    );
    for (name, m) in tuning {
        s.push_str(&format!(
            "| {name} | {} | {} | {} | {} | {} | {} |\n",
            f(m.map),
            f(m.p_at_5),
            f(m.recall_at_8),
            f(m.recall_at_20),
            f(m.rare_recall_at_8),
            f(m.rare_recall_at_20)
        ));
    }
    s
}

/// The test-split table: one row per method.
pub fn eval_table(eval: &BTreeMap<String, CodingMetrics>) -> String {
    let mut s = String::from("| method | MAP | micro-F1 | macro-F1 (gold codes) | macro-F1 (label-wise) | micro-AUC | macro-AUC | P@5 | P@8 | R@8 | R@20 | rare macro-F1 | rare R@8 | rare R@20 |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for name in ROWS {
        if let Some(m) = eval.get(name) {
            s.push_str(&format!(
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                f(m.map),
                f(m.micro_f1),
                f(m.macro_f1),
                f(m.macro_f1_label),
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
