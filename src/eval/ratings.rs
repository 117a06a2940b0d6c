//! Human-rated relatedness dev sets (MayoSRS, MiniMayoSRS, Pedersen-30, Hliaoutakis-36 in
//! `ontologies/dev/relatedness_*.tsv`): Spearman's ρ of a model's cosine against the human
//! rating, per set and pooled, with percentile-bootstrap 95% confidence intervals.
//!
//! * Files are `term_a<TAB>term_b<TAB>rating`, `#` comment lines and a `term_a` header line
//!   allowed; a set is named after its file (`relatedness_mayosrs.tsv` → `mayosrs`).
//! * Pooled: the pairs of several sets together. Their rating scales differ (1–10, 1–4, 0–1),
//!   so each pair's rating is first replaced by its within-set percentile (average rank / n);
//!   the model's cosines are comparable across sets as they are.
//! * Bootstrap: pairs are resampled with replacement within each set (stratified, so a pooled
//!   resample keeps every set's size), the same resamples for every model, so the difference
//!   of two models gets a paired interval too. Seeded: the same seed gives the same table.

use super::embedding::{pair_similarities, EmbedFn};
use super::metrics::{average_ranks, fmt_metric, spearman};
use anyhow::{bail, ensure, Context, Result};
use rand::{Rng, SeedableRng};
use std::path::Path;

/// One rated pair.
#[derive(Debug, Clone, PartialEq)]
pub struct RatedPair {
    /// First term.
    pub a: String,
    /// Second term.
    pub b: String,
    /// Human rating (higher = more related; the scale is the set's own).
    pub rating: f64,
}

/// A named dev set of rated pairs.
#[derive(Debug, Clone, PartialEq)]
pub struct RatingSet {
    /// Set name (file stem without `relatedness_`).
    pub name: String,
    /// Its pairs, in file order.
    pub pairs: Vec<RatedPair>,
}

/// Read a ratings TSV (`term_a<TAB>term_b<TAB>rating`). Fails, naming the line, on a missing
/// column, an empty term or a rating that is not a finite number; fails on a file with fewer
/// than two pairs (no correlation to measure).
pub fn read_ratings(path: &Path) -> Result<RatingSet> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut pairs = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() || line.starts_with('#') || line.starts_with("term_a\t") {
            continue;
        }
        let cols: Vec<&str> = line.split('\t').collect();
        let rating = cols.get(2).and_then(|r| r.trim().parse::<f64>().ok());
        match (cols.as_slice(), rating) {
            ([a, b, ..], Some(r))
                if !a.trim().is_empty() && !b.trim().is_empty() && r.is_finite() =>
            {
                pairs.push(RatedPair {
                    a: a.trim().to_string(),
                    b: b.trim().to_string(),
                    rating: r,
                })
            }
            _ => bail!(
                "{}:{}: expected term_a<TAB>term_b<TAB>rating (non-empty terms, a number)",
                path.display(),
                i + 1
            ),
        }
    }
    ensure!(
        pairs.len() >= 2,
        "{}: {} rated pairs; a rank correlation needs at least 2",
        path.display(),
        pairs.len()
    );
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = stem
        .strip_prefix("relatedness_")
        .unwrap_or(&stem)
        .to_string();
    Ok(RatingSet { name, pairs })
}

/// Bootstrap settings.
#[derive(Debug, Clone, Copy)]
pub struct Bootstrap {
    /// Resamples (1,000 by default).
    pub resamples: usize,
    /// Seed of the resampling (ChaCha8).
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Bootstrap {
            resamples: 1000,
            seed: 14,
        }
    }
}

/// A ρ with its 95% percentile-bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// On all the pairs.
    pub value: f64,
    /// 2.5th percentile of the resampled values.
    pub lo: f64,
    /// 97.5th percentile of the resampled values.
    pub hi: f64,
}

/// One row of the report: a set (or the pool) for every model.
#[derive(Debug, Clone)]
pub struct Row {
    /// Set name, or `pooled (a + b + …)`.
    pub set: String,
    /// Pairs.
    pub n: usize,
    /// ρ of each model, in the report's model order.
    pub rho: Vec<Estimate>,
    /// ρ of model i+1 minus ρ of the first model (paired resamples), for each later model.
    pub delta: Vec<Estimate>,
}

/// The ratings evaluation of one or more models.
#[derive(Debug, Clone)]
pub struct Report {
    /// Model names, in column order (the first is the reference of the differences).
    pub models: Vec<String>,
    /// One row per set, then the pooled row if any.
    pub rows: Vec<Row>,
    /// The bootstrap used.
    pub bootstrap: Bootstrap,
}

/// The `q` quantile (0..1) of sorted finite values, linearly interpolated; NaN when empty.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// The estimate `value` with the 2.5th and 97.5th percentiles of its finite bootstrap `samples`.
pub(crate) fn interval(value: f64, mut samples: Vec<f64>) -> Estimate {
    samples.retain(|x| x.is_finite());
    samples.sort_by(f64::total_cmp);
    Estimate {
        value,
        lo: quantile(&samples, 0.025),
        hi: quantile(&samples, 0.975),
    }
}

/// ρ of each model's `scores` against `human` with bootstrap intervals, and each later model's
/// difference to the first. `strata` are the sizes of consecutive blocks of the pairs that are
/// resampled separately (one block = plain resampling).
pub fn rho_with_intervals(
    human: &[f64],
    scores: &[Vec<f64>],
    strata: &[usize],
    boot: Bootstrap,
) -> (Vec<Estimate>, Vec<Estimate>) {
    assert_eq!(
        strata.iter().sum::<usize>(),
        human.len(),
        "strata cover the pairs"
    );
    let full: Vec<f64> = scores.iter().map(|s| spearman(human, s)).collect();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(boot.seed);
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(boot.resamples); scores.len()];
    let mut idx = Vec::with_capacity(human.len());
    for _ in 0..boot.resamples {
        idx.clear();
        let mut start = 0;
        for &len in strata {
            idx.extend((0..len).map(|_| start + rng.gen_range(0..len)));
            start += len;
        }
        let h: Vec<f64> = idx.iter().map(|&i| human[i]).collect();
        for (m, s) in scores.iter().enumerate() {
            let s: Vec<f64> = idx.iter().map(|&i| s[i]).collect();
            samples[m].push(spearman(&h, &s));
        }
    }
    let rho = full
        .iter()
        .zip(&samples)
        .map(|(&v, s)| interval(v, s.clone()))
        .collect();
    let delta = (1..scores.len())
        .map(|m| {
            let d = samples[m].iter().zip(&samples[0]).map(|(a, b)| a - b);
            interval(full[m] - full[0], d.collect())
        })
        .collect();
    (rho, delta)
}

/// Evaluate every model on every set, and on the pool of the sets named in `pool` (none: no
/// pooled row). `models` are (name, embedding function) pairs; each set's distinct terms are
/// embedded once per model.
pub fn evaluate(
    sets: &[RatingSet],
    pool: &[String],
    models: &mut [(String, Box<EmbedFn<'_>>)],
    boot: Bootstrap,
) -> Result<Report> {
    ensure!(!models.is_empty(), "no model to evaluate");
    for p in pool {
        ensure!(
            sets.iter().any(|s| &s.name == p),
            "pooled set `{p}` is not among the rating files ({})",
            sets.iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    // cosines[set][model][pair]
    let mut cosines: Vec<Vec<Vec<f64>>> = Vec::with_capacity(sets.len());
    for set in sets {
        let pairs: Vec<(String, String, u8)> = set
            .pairs
            .iter()
            .map(|p| (p.a.clone(), p.b.clone(), 0))
            .collect();
        let mut per_model = Vec::with_capacity(models.len());
        for (name, embed) in models.iter_mut() {
            let sims = pair_similarities(embed.as_mut(), &pairs)
                .with_context(|| format!("embedding set {} with {name}", set.name))?;
            per_model.push(sims.into_iter().map(f64::from).collect());
        }
        cosines.push(per_model);
    }
    let mut rows = Vec::new();
    for (set, cos) in sets.iter().zip(&cosines) {
        let human: Vec<f64> = set.pairs.iter().map(|p| p.rating).collect();
        let (rho, delta) = rho_with_intervals(&human, cos, &[human.len()], boot);
        rows.push(Row {
            set: set.name.clone(),
            n: human.len(),
            rho,
            delta,
        });
    }
    if !pool.is_empty() {
        let (mut human, mut strata) = (Vec::new(), Vec::new());
        let mut scores: Vec<Vec<f64>> = vec![Vec::new(); models.len()];
        for (set, cos) in sets.iter().zip(&cosines) {
            if !pool.contains(&set.name) {
                continue;
            }
            let r: Vec<f64> = set.pairs.iter().map(|p| p.rating).collect();
            let n = r.len() as f64;
            human.extend(average_ranks(&r).into_iter().map(|x| x / n));
            strata.push(r.len());
            for (m, c) in cos.iter().enumerate() {
                scores[m].extend_from_slice(c);
            }
        }
        let (rho, delta) = rho_with_intervals(&human, &scores, &strata, boot);
        rows.push(Row {
            set: format!("pooled ({})", pool.join(" + ")),
            n: human.len(),
            rho,
            delta,
        });
    }
    Ok(Report {
        models: models.iter().map(|m| m.0.clone()).collect(),
        rows,
        bootstrap: boot,
    })
}

fn cell(e: &Estimate) -> String {
    format!(
        "{} [{}, {}]",
        fmt_metric(e.value),
        fmt_metric(e.lo),
        fmt_metric(e.hi)
    )
}

/// The report as a markdown table: ρ [95% CI] per model, then Δ to the first model.
pub fn render(report: &Report) -> String {
    let mut head = vec!["set".to_string(), "n".to_string()];
    head.extend(report.models.iter().map(|m| format!("{m} ρ [95% CI]")));
    head.extend(
        report.models[1..]
            .iter()
            .map(|m| format!("Δ {m} − {} [95% CI]", report.models[0])),
    );
    let mut out = format!(
        "Spearman ρ of cosine vs human rating; 95% CI: percentile bootstrap, {} resamples, seed {} \
         (pooled: ratings as within-set percentiles, resampled within each set)\n\n| {} |\n|{}\n",
        report.bootstrap.resamples,
        report.bootstrap.seed,
        head.join(" | "),
        "---|".repeat(head.len())
    );
    for r in &report.rows {
        let mut cells = vec![r.set.clone(), r.n.to_string()];
        cells.extend(r.rho.iter().map(cell));
        cells.extend(r.delta.iter().map(cell));
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, body: &str) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        p
    }

    #[test]
    fn reads_and_rejects() {
        let d = tempfile::tempdir().unwrap();
        let p = write(
            d.path(),
            "relatedness_x.tsv",
            "# comment\nterm_a\tterm_b\trating\nheart\tmyocardium\t3.3\r\nacne\tsyringe\t1\n",
        );
        let s = read_ratings(&p).unwrap();
        assert_eq!(s.name, "x");
        assert_eq!(s.pairs.len(), 2);
        assert_eq!(s.pairs[0].rating, 3.3);
        for bad in [
            "a\tb\n",
            "a\tb\tx\n",
            "\tb\t1\n",
            "a\tb\tNaN\nc\td\t1\n",
            "a\tb\t1\n",
        ] {
            let p = write(d.path(), "bad.tsv", bad);
            assert!(read_ratings(&p).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn bootstrap_is_seeded_and_brackets_the_estimate() {
        let human: Vec<f64> = (0..40).map(|i| i as f64).collect();
        // model 0 noisy, model 1 perfect
        let noisy: Vec<f64> = (0..40)
            .map(|i| i as f64 + ((i * 7) % 11) as f64 * 3.0)
            .collect();
        let scores = vec![noisy, human.clone()];
        let boot = Bootstrap::default();
        let (rho, delta) = rho_with_intervals(&human, &scores, &[20, 20], boot);
        let again = rho_with_intervals(&human, &scores, &[20, 20], boot);
        assert_eq!(rho, again.0);
        assert!(rho[0].lo <= rho[0].value && rho[0].value <= rho[0].hi);
        assert!(rho[0].value < 1.0 && rho[0].hi - rho[0].lo > 0.01);
        assert_eq!((rho[1].value, rho[1].lo, rho[1].hi), (1.0, 1.0, 1.0));
        assert!(delta[0].value > 0.0 && delta[0].lo > 0.0);
    }

    #[test]
    fn pooled_uses_within_set_percentiles() {
        // two sets on different scales; the "model" reproduces each set's order but on one
        // common scale, so the pooled ρ of percentiles is high though raw ratings would mix
        let mk = |name: &str, ratings: &[f64]| RatingSet {
            name: name.into(),
            pairs: ratings
                .iter()
                .enumerate()
                .map(|(i, &r)| RatedPair {
                    a: format!("{name}{i}a"),
                    b: format!("{name}{i}b"),
                    rating: r,
                })
                .collect(),
        };
        let sets = vec![
            mk("big", &[1.0, 4.0, 7.0, 10.0]),
            mk("small", &[0.1, 0.4, 0.7, 0.9]),
        ];
        // embedding: the pair's index within its set decides the angle
        let embed = |t: &[String]| -> Result<Vec<Vec<f32>>> {
            Ok(t.iter()
                .map(|s| {
                    let i = s[s.len() - 2..s.len() - 1].parse::<f32>().unwrap();
                    if s.ends_with('a') {
                        vec![1.0, 0.0]
                    } else {
                        vec![1.0, 3.0 - i]
                    }
                })
                .collect())
        };
        let mut models: Vec<(String, Box<EmbedFn<'_>>)> = vec![("toy".into(), Box::new(embed))];
        let pool = vec!["big".to_string(), "small".to_string()];
        let r = evaluate(&sets, &pool, &mut models, Bootstrap::default()).unwrap();
        assert_eq!(r.rows.len(), 3);
        assert_eq!(r.rows[2].n, 8);
        for row in &r.rows {
            assert!((row.rho[0].value - 1.0).abs() < 1e-9, "{row:?}");
        }
        let table = render(&r);
        assert!(
            table.contains("| pooled (big + small) | 8 | 1.000"),
            "{table}"
        );
        let bad = evaluate(&sets, &["nope".into()], &mut models, Bootstrap::default());
        assert!(bad.is_err());
    }
}
