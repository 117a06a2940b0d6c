//! Paired comparison of two models on the same gold mentions: the difference of their acc@1
//! with a percentile-bootstrap interval and standard error, both from the same resamples of
//! the mentions (a mention either model gets right counts for both in every resample, so the
//! interval is about the *difference*, much narrower than two separate intervals would
//! suggest). Used by `ontovec eval normalize --baseline` to judge "better", "level" and "worse
//! beyond one standard error" on dev sets of a few hundred mentions.

use super::ratings::{interval, Bootstrap, Estimate};
use rand::{Rng, SeedableRng};

/// acc@1 of a baseline and a candidate and their paired difference.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairedAcc {
    /// Mentions compared.
    pub n: usize,
    /// Baseline acc@1.
    pub base: f64,
    /// Candidate acc@1.
    pub cand: f64,
    /// Candidate minus baseline, with its 95% bootstrap interval.
    pub delta: Estimate,
    /// Bootstrap standard error of the difference.
    pub se: f64,
    /// Mentions only the baseline gets right / only the candidate gets right.
    pub flips: (usize, usize),
}

/// Compare per-mention hits (`base[i]`, `cand[i]`: was mention i's gold concept first).
pub fn paired_acc(base: &[bool], cand: &[bool], boot: Bootstrap) -> PairedAcc {
    assert_eq!(base.len(), cand.len(), "the same mentions for both models");
    let n = base.len();
    let acc = |h: &[bool]| {
        if n == 0 {
            f64::NAN
        } else {
            h.iter().filter(|&&x| x).count() as f64 / n as f64
        }
    };
    // per-mention difference: −1, 0 or +1
    let d: Vec<f64> = base
        .iter()
        .zip(cand)
        .map(|(&b, &c)| f64::from(u8::from(c)) - f64::from(u8::from(b)))
        .collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(boot.seed);
    let mut samples = Vec::with_capacity(boot.resamples);
    if n > 0 {
        for _ in 0..boot.resamples {
            let s: f64 = (0..n).map(|_| d[rng.gen_range(0..n)]).sum();
            samples.push(s / n as f64);
        }
    }
    let mean = samples.iter().sum::<f64>() / samples.len().max(1) as f64;
    let var =
        samples.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (samples.len().max(2) - 1) as f64;
    let (base_acc, cand_acc) = (acc(base), acc(cand));
    PairedAcc {
        n,
        base: base_acc,
        cand: cand_acc,
        delta: interval(cand_acc - base_acc, samples),
        se: if n > 0 { var.sqrt() } else { f64::NAN },
        flips: (
            d.iter().filter(|&&x| x < 0.0).count(),
            d.iter().filter(|&&x| x > 0.0).count(),
        ),
    }
}

/// The verdict of a comparison: `better` when the interval is above 0, `worse` when the
/// difference is below −1 standard error, `level` otherwise.
pub fn verdict(p: &PairedAcc) -> &'static str {
    if p.delta.lo > 0.0 {
        "better"
    } else if p.delta.value < -p.se {
        "worse"
    } else {
        "level"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_models_differ_by_nothing() {
        let h = [true, false, true, true];
        let p = paired_acc(&h, &h, Bootstrap::default());
        assert_eq!(
            (p.delta.value, p.delta.lo, p.delta.hi, p.se),
            (0.0, 0.0, 0.0, 0.0)
        );
        assert_eq!(p.flips, (0, 0));
        assert_eq!(verdict(&p), "level");
    }

    #[test]
    fn a_clear_win_is_better_and_a_loss_worse() {
        let base: Vec<bool> = (0..200).map(|i| i % 2 == 0).collect();
        let cand: Vec<bool> = (0..200).map(|i| i % 2 == 0 || i % 3 == 0).collect();
        let p = paired_acc(&base, &cand, Bootstrap::default());
        assert!((p.delta.value - (p.cand - p.base)).abs() < 1e-12);
        assert_eq!(p.flips, (0, 33));
        assert!(p.delta.lo > 0.0 && p.delta.hi > p.delta.value, "{p:?}");
        assert_eq!(verdict(&p), "better");
        let q = paired_acc(&cand, &base, Bootstrap::default());
        assert_eq!(verdict(&q), "worse");
        // the standard error of a mean of 33 (−1)s among 200 is about sqrt(p(1−p)/n)
        let expect = ((33.0 / 200.0) * (1.0 - 33.0 / 200.0) / 200.0f64).sqrt();
        assert!((q.se - expect).abs() < 0.01, "{} vs {expect}", q.se);
    }

    #[test]
    fn seeded_and_empty_safe() {
        let a = [true, false, false, true, false];
        let b = [false, true, false, true, true];
        let boot = Bootstrap {
            resamples: 200,
            seed: 3,
        };
        assert_eq!(paired_acc(&a, &b, boot), paired_acc(&a, &b, boot));
        let e = paired_acc(&[], &[], boot);
        assert!(e.base.is_nan() && e.se.is_nan());
    }
}
