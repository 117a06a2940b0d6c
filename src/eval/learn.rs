//! Fitting the learned hybrid's weights ([`crate::search::hybrid`]) on dev-set queries.
//!
//! Two steps, both plain full-batch optimisation over a few thousand queries:
//! 1. **Ranking** (`w`): a listwise softmax (conditional logit) over each query's candidates,
//!    maximising the log-probability of the gold concept — what acc@1 rewards — with a small L2
//!    penalty, by Adam. Queries whose gold concept is not among the candidates carry no
//!    ranking signal and are skipped in this step.
//! 2. **Calibration** (`a`, `c`): a one-feature logistic regression of "is gold" on the ranking
//!    score over every candidate of every query (Newton steps), so `σ(a·s + c)` is a probability.
//!
//! `ontovec eval fit-fusion` collects the candidates, calls [`fit`], prints held-out metrics and
//! the feature ablation, and writes `src/search/fusion_weights.json`.

use crate::search::hybrid::{Weights, FEATURES, NF};

/// One query's candidates: feature vectors and whether each is a gold concept.
#[derive(Debug, Clone, Default)]
pub struct QueryData {
    /// Candidate features.
    pub x: Vec<[f32; NF]>,
    /// Gold flags, parallel to `x`.
    pub gold: Vec<bool>,
    /// `SYSTEM:code` of each candidate, parallel to `x` (for `--dump`; not fitted).
    pub codes: Vec<String>,
}

/// Options of [`fit`].
#[derive(Debug, Clone)]
pub struct FitOptions {
    /// Adam steps of the ranking fit.
    pub steps: usize,
    /// Learning rate.
    pub lr: f64,
    /// L2 penalty on `w`.
    pub l2: f64,
    /// Features to use (false → weight fixed at 0), for ablations.
    pub mask: [bool; NF],
    /// Hold the [`PRIORS`] features at their hand-set weights instead of fitting them.
    pub priors: bool,
}

impl Default for FitOptions {
    fn default() -> Self {
        Self {
            steps: 600,
            lr: 0.05,
            l2: 1e-4,
            mask: [true; NF],
            priors: true,
        }
    }
}

/// Weights set by hand, not fitted: what the dev sets cannot teach. Held-out mentions are by
/// construction no term of the index, so in them an exact match is always *another* concept's
/// term (a fit learns a negative weight that real queries would pay for), and no dev mention
/// is a typed code. An exact match of a term and a resolved code are what the user meant.
pub const PRIORS: &[(&str, f64)] = &[("exact", 3.0), ("exact_pref", 1.0), ("code", 10.0)];

fn dot(w: &[f64], x: &[f32; NF]) -> f64 {
    w.iter().zip(x).map(|(w, x)| w * f64::from(*x)).sum()
}

/// Fit ranking weights and calibration on `data`.
pub fn fit(data: &[QueryData], opt: &FitOptions, fitted_on: &str) -> Weights {
    let usable: Vec<&QueryData> = data
        .iter()
        .filter(|q| q.gold.iter().any(|g| *g) && q.x.len() > 1)
        .collect();
    let mut w = vec![0f64; NF];
    let mut fixed = [false; NF];
    if opt.priors {
        for (name, value) in PRIORS {
            if let Some(j) = FEATURES
                .iter()
                .position(|f| f == name)
                .filter(|j| opt.mask[*j])
            {
                w[j] = *value;
                fixed[j] = true;
            }
        }
    }
    let (mut m, mut v) = (vec![0f64; NF], vec![0f64; NF]);
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let n = usable.len().max(1) as f64;
    for step in 1..=opt.steps {
        let mut grad = [0f64; NF];
        for q in &usable {
            let s: Vec<f64> = q.x.iter().map(|x| dot(&w, x)).collect();
            let mx = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|s| (s - mx).exp()).collect();
            let z: f64 = e.iter().sum();
            let gz: f64 = q
                .gold
                .iter()
                .zip(&e)
                .filter(|(g, _)| **g)
                .map(|(_, e)| e)
                .sum();
            // d(-log Σ_gold p)/dw = Σ_i p_i x_i − Σ_gold (e_i / gz) x_i
            for (i, x) in q.x.iter().enumerate() {
                let coef = e[i] / z - if q.gold[i] { e[i] / gz } else { 0.0 };
                for (g, xv) in grad.iter_mut().zip(x) {
                    *g += coef * f64::from(*xv);
                }
            }
        }
        for j in 0..NF {
            if fixed[j] {
                continue;
            }
            let g = if opt.mask[j] {
                grad[j] / n + opt.l2 * w[j]
            } else {
                0.0
            };
            m[j] = b1 * m[j] + (1.0 - b1) * g;
            v[j] = b2 * v[j] + (1.0 - b2) * g * g;
            let mh = m[j] / (1.0 - b1.powi(step as i32));
            let vh = v[j] / (1.0 - b2.powi(step as i32));
            w[j] -= opt.lr * mh / (vh.sqrt() + eps);
        }
    }
    let wf: Vec<f32> = w.iter().map(|x| *x as f32).collect();
    let calib = calibrate(data, &wf);
    Weights {
        features: FEATURES.iter().map(|s| s.to_string()).collect(),
        w: wf,
        calib,
        fitted_on: fitted_on.to_string(),
    }
}

/// Logistic regression of the gold flag on the ranking score: Newton's method on the
/// standardised score with step halving (the log-loss never increases) and a tiny ridge on the
/// slope, so separable data cannot send it to infinity.
fn calibrate(data: &[QueryData], w: &[f32]) -> (f32, f32) {
    let pts: Vec<(f64, f64)> = data
        .iter()
        .flat_map(|q| {
            q.x.iter().zip(&q.gold).map(|(x, g)| {
                let s: f32 = w.iter().zip(x).map(|(w, x)| w * x).sum();
                (f64::from(s), if *g { 1.0 } else { 0.0 })
            })
        })
        .collect();
    if pts.is_empty() {
        return (1.0, 0.0);
    }
    let n = pts.len() as f64;
    let mean = pts.iter().map(|p| p.0).sum::<f64>() / n;
    let sd = (pts.iter().map(|p| (p.0 - mean).powi(2)).sum::<f64>() / n)
        .sqrt()
        .max(1e-9);
    let z: Vec<(f64, f64)> = pts.iter().map(|(s, y)| ((s - mean) / sd, *y)).collect();
    const RIDGE: f64 = 1e-3;
    let loss = |a: f64, c: f64| -> f64 {
        let l: f64 = z
            .iter()
            .map(|(s, y)| {
                let t = a * s + c;
                // log(1 + e^t) - y t, stable
                t.max(0.0) + (-t.abs()).exp().ln_1p() - y * t
            })
            .sum();
        l / n + 0.5 * RIDGE * a * a
    };
    let (mut a, mut c) = (1.0f64, 0.0f64);
    let mut cur = loss(a, c);
    for _ in 0..100 {
        let (mut ga, mut gc, mut haa, mut hac, mut hcc) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (s, y) in &z {
            let p = 1.0 / (1.0 + (-(a * s + c)).exp());
            let r = p - y;
            ga += r * s;
            gc += r;
            let h = p * (1.0 - p);
            haa += h * s * s;
            hac += h * s;
            hcc += h;
        }
        let (ga, gc) = (ga / n + RIDGE * a, gc / n);
        let (haa, hac, hcc) = (haa / n + RIDGE, hac / n, hcc / n + 1e-12);
        let det = haa * hcc - hac * hac;
        if det.abs() < 1e-18 {
            break;
        }
        let da = (hcc * ga - hac * gc) / det;
        let dc = (haa * gc - hac * ga) / det;
        let mut step = 1.0;
        let mut next = loss(a - da, c - dc);
        while next > cur && step > 1e-6 {
            step *= 0.5;
            next = loss(a - step * da, c - step * dc);
        }
        if next > cur {
            break;
        }
        a -= step * da;
        c -= step * dc;
        let done = cur - next < 1e-12;
        cur = next;
        if done {
            break;
        }
    }
    // σ(a·(s − mean)/sd + c) = σ((a/sd)·s + (c − a·mean/sd))
    ((a / sd) as f32, (c - a * mean / sd) as f32)
}

/// acc@1 of `w` on `data` (a query with no gold candidate counts as a miss). Ties go to the
/// first candidate.
pub fn acc_at_1(w: &Weights, data: &[QueryData]) -> f64 {
    let hits = data
        .iter()
        .filter(|q| {
            let mut best: Option<(f32, bool)> = None;
            for (x, g) in q.x.iter().zip(&q.gold) {
                let s = w.rank_score(x);
                if best.is_none_or(|(b, _)| s > b) {
                    best = Some((s, *g));
                }
            }
            best.is_some_and(|(_, g)| g)
        })
        .count();
    hits as f64 / data.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Gold candidates have feature 0 high and feature 1 noise; the fit must weight feature 0,
    /// rank the gold first, and calibrate probabilities that sum near the gold rate.
    #[test]
    fn fit_learns_the_informative_feature() {
        let mut data = Vec::new();
        let mut seed = 7u64;
        let mut rnd = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 33) as f32) / (1u64 << 31) as f32
        };
        for q in 0..200 {
            let mut d = QueryData::default();
            for i in 0..10 {
                let gold = i == q % 10;
                let mut x = [0f32; NF];
                x[0] = if gold { 0.6 + 0.4 * rnd() } else { 0.5 * rnd() };
                x[1] = rnd();
                d.x.push(x);
                d.gold.push(gold);
            }
            data.push(d);
        }
        let w = fit(&data, &FitOptions::default(), "test");
        assert!(w.w[0] > 1.0, "{:?}", w.w);
        assert!(w.w[0] > 5.0 * w.w[1].abs(), "{:?}", w.w);
        assert!(acc_at_1(&w, &data) > 0.95);
        let total: f32 = data
            .iter()
            .flat_map(|q| q.x.iter().map(|x| w.probability(w.rank_score(x))))
            .sum();
        // 200 gold candidates among 2000: calibrated probabilities sum to about 200
        assert!((total - 200.0).abs() < 20.0, "{total}");
        // masking the informative feature loses the ranking
        let mut opt = FitOptions::default();
        opt.mask[0] = false;
        let w0 = fit(&data, &opt, "test");
        assert_eq!(w0.w[0], 0.0);
        assert!(acc_at_1(&w0, &data) < 0.5);
    }
}
