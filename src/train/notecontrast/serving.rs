//! The serving choices of a run, tuned on its dev split over the whole label space: how much of
//! the description embedding is blended into the scores of codes seen in few training notes
//! ([`crate::notes::coding`]), and how the served list is diversified ([`crate::notes::rank`]).
//!
//! Each option is measured on the dev split and the one with the best MAP + R@8 + R@20 + rare
//! R@20 wins: first the blend weight on the plain order, then the segment penalty of the
//! diversification on the chosen blend. Every option's dev metrics go in the report (a table in
//! the model card), so what the choice costs or buys is visible. When a corpus has no separate
//! test split (CodiEsp: dev is reported), the choice is tuned on the notes it is reported on,
//! like the F1 threshold; the README says so.

use super::data::{Data, NoteFeatures};
use super::model::{coding_manifest, Model};
use super::NoteContrastConfig;
use crate::domain::model::ConceptRef;
use crate::eval::coding::{self, CodingMetrics, Split};
use crate::notes::coding::CodingModel;
use crate::notes::rank::{self, Diversity};
use crate::notes::windows::WindowConfig;
use candle_core::{Device, Tensor};
use std::collections::BTreeMap;

/// Codes of a list the diversified order is measured over (as in the served answers, k ≤ 50).
const DEPTH: usize = 50;

/// What [`serving`] chose and measured.
pub(super) struct Served {
    /// The description blend weight `w` (0: none).
    pub(super) blend: f32,
    /// The diversification.
    pub(super) diversity: Diversity,
    /// The dev-tuned threshold of the chosen (undiversified) scores.
    pub(super) threshold: f32,
    /// Rows over the whole label space: `trained` (no blend, plain order), `trained_blend`
    /// (the chosen blend, plain order; when it is not 0), `trained_diverse` (as served).
    /// Empty when the label space is the training codes.
    pub(super) eval_all_codes: BTreeMap<String, CodingMetrics>,
    /// The chosen blend over the training codes only (the first table), when it is not 0.
    pub(super) vocab_blend: Option<CodingMetrics>,
    /// Every option's dev metrics, in the order tried.
    pub(super) tuning: Vec<(String, CodingMetrics)>,
}

/// Per-code blend weights `w · h / (h + n_c)` of the first `n` codes of the label space, `n_c`
/// the code's training notes and `h` the rare-code bound (`rare_max_train`).
pub(super) fn blend_weights(
    d: &Data,
    cfg: &NoteContrastConfig,
    n: usize,
    w: f32,
) -> candle_core::Result<Tensor> {
    let mut counts = vec![0usize; n];
    for &i in &d.train {
        for &c in &d.items[i].codes {
            if let Some(x) = counts.get_mut(c) {
                *x += 1;
            }
        }
    }
    let h = cfg.rare_max_train.max(1) as f32;
    let weights: Vec<f32> = counts.iter().map(|&k| w * h / (h + k as f32)).collect();
    Tensor::from_vec(weights, n, &Device::Cpu)
}

/// Logs one tried serving option's dev metrics; returns its label (`blend=0.3`).
fn log_option(name: &str, value: f32, m: &CodingMetrics) -> String {
    let label = format!("{name}={value}");
    tracing::info!(
        option = %label,
        map = m.map,
        r20 = m.recall_at_20,
        rare_r20 = m.rare_recall_at_20,
        "serving: option on dev"
    );
    label
}

/// MAP + R@8 + R@20 + rare R@20 (undefined ones count 0).
fn objective(m: &CodingMetrics) -> f64 {
    [m.map, m.recall_at_8, m.recall_at_20, m.rare_recall_at_20]
        .iter()
        .filter(|x| x.is_finite())
        .sum()
}

/// Scores of notes and each code's best segment.
type Scored = (Vec<Vec<f32>>, Vec<Vec<u32>>);

/// Tune and measure the serving choices (module docs). `all_codes` is the label space with
/// its code vectors `full_vectors` and description embeddings `all_desc`; `vocab_desc` the
/// description embeddings of the training codes (its first rows).
#[allow(clippy::too_many_arguments)]
pub(super) fn serving(
    model: &Model,
    cfg: &NoteContrastConfig,
    wcfg: &WindowConfig,
    d: &Data,
    feats: &NoteFeatures,
    all_codes: &[ConceptRef],
    full_vectors: &Tensor,
    all_desc: &Tensor,
    vocab_desc: &Tensor,
) -> anyhow::Result<Served> {
    let gold = |idx: &[usize]| -> Vec<Vec<usize>> {
        idx.iter().map(|&i| d.items[i].codes.clone()).collect()
    };
    let (gold_dev, gold_test) = (gold(&d.dev), gold(&d.test));
    let same = d.dev == d.test;
    let score = |c: &CodingModel, idx: &[usize]| -> Scored {
        idx.iter()
            .map(|&i| c.score_best(&feats.segments[i], &c.project(&feats.pooled[i])))
            .unzip()
    };
    let on_dev = |s: &[Vec<f32>]| {
        let dev = Split {
            scores: s,
            gold: &gold_dev,
        };
        coding::evaluate(&dev, &dev, &d.rare)
    };
    let reported = |sd: &[Vec<f32>], st: &[Vec<f32>]| {
        coding::evaluate(
            &Split {
                scores: sd,
                gold: &gold_dev,
            },
            &Split {
                scores: st,
                gold: &gold_test,
            },
            &d.rare,
        )
    };
    let coder = |codes: &[ConceptRef], cv: &Tensor, desc: &Tensor, w: f32| {
        let weights = blend_weights(d, cfg, codes.len(), w)?;
        let mut t = model.tensors(cv);
        if w > 0.0 {
            t.blend = Some((desc, &weights));
        }
        CodingModel::from_tensors(coding_manifest(cfg, wcfg, codes, 0.0), codes.to_vec(), &t)
    };

    // the blend weight, on the plain order
    let mut tuning = Vec::new();
    let mut grid = vec![0f32];
    grid.extend(
        cfg.serving
            .blend
            .iter()
            .copied()
            .filter(|&w| w > 0.0 && w <= 1.0),
    );
    let mut trained = None;
    let mut best: Option<(f32, f64, Scored)> = None;
    for w in grid {
        let c = coder(all_codes, full_vectors, all_desc, w)?;
        let sd = score(&c, &d.dev);
        let m = on_dev(&sd.0);
        let obj = objective(&m);
        tuning.push((log_option("blend", w, &m), m.clone()));
        if w == 0.0 {
            trained = Some(if same {
                m
            } else {
                reported(&sd.0, &score(&c, &d.test).0)
            });
        }
        if best.as_ref().is_none_or(|b| obj > b.1 + 1e-9) {
            best = Some((w, obj, sd));
        }
    }
    let Some((blend, _, sd)) = best else {
        anyhow::bail!("no blend weight to try");
    };
    let st_own;
    let st = if same {
        &sd
    } else {
        st_own = score(&coder(all_codes, full_vectors, all_desc, blend)?, &d.test);
        &st_own
    };
    let plain = reported(&sd.0, &st.0);
    let threshold = plain.threshold;

    // the diversification, on the chosen blend
    let cat = |i: usize| rank::category(&all_codes[i].code);
    let diverse = |s: &Scored, div: Diversity| -> Vec<Vec<f32>> {
        s.0.iter()
            .zip(&s.1)
            .map(|(r, b)| rank::diversified_scores(r, cat, |i| b[i], DEPTH, div))
            .collect()
    };
    let mut pens = vec![0f32];
    pens.extend(
        cfg.serving
            .segment_penalty
            .iter()
            .copied()
            .filter(|&p| p > 0.0),
    );
    let mut best_div: Option<(Diversity, f64)> = None;
    for p in pens {
        let div = Diversity {
            category: cfg.serving.category_penalty.max(0.0),
            segment: p,
        };
        let m = on_dev(&diverse(&sd, div));
        let obj = objective(&m);
        tuning.push((log_option("segment", p, &m), m));
        if best_div.is_none_or(|b| obj > b.1 + 1e-9) {
            best_div = Some((div, obj));
        }
    }
    let diversity = best_div.map(|b| b.0).unwrap_or_default();
    tuning.push((
        format!("chosen: blend={blend} segment={}", diversity.segment),
        on_dev(&diverse(&sd, diversity)),
    ));

    let mut eval_all_codes = BTreeMap::new();
    if all_codes.len() > d.vocab.len() {
        if let Some(t) = trained {
            eval_all_codes.insert("trained".to_string(), t);
        }
        if blend > 0.0 {
            eval_all_codes.insert("trained_blend".to_string(), plain);
        }
        eval_all_codes.insert(
            "trained_diverse".to_string(),
            reported(&diverse(&sd, diversity), &diverse(st, diversity)),
        );
    }
    let vocab_blend = if blend > 0.0 {
        let v = d.vocab.len();
        let c = coder(&d.vocab, &full_vectors.narrow(0, 0, v)?, vocab_desc, blend)?;
        Some(reported(&score(&c, &d.dev).0, &score(&c, &d.test).0))
    } else {
        None
    };
    Ok(Served {
        blend,
        diversity,
        threshold,
        eval_all_codes,
        vocab_blend,
        tuning,
    })
}
