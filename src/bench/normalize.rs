//! `ontovec bench normalize`: mentions per second through `POST /v1/normalize` with large
//! batches (one client, sequential requests), each batch of distinct mentions.
//!
//! Mentions come from the first column of gold TSVs (`mention \t system \t code`, `#` lines and
//! a `mention` header skipped), e.g. the dev store's held-out gold: real wordings, not a few
//! strings repeated (a batch repeating a mention embeds it once, which would flatter the rate).
//! The first batch is a warm-up and is not counted.

use super::load::Target;
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Distinct mentions of the gold files, in file order.
pub fn read_mentions(files: &[PathBuf]) -> Result<Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for f in files {
        let text =
            std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?;
        for line in text.lines() {
            if line.starts_with('#') || line.starts_with("mention\t") || line.trim().is_empty() {
                continue;
            }
            let m = line.split('\t').next().unwrap_or("").trim();
            if !m.is_empty() && seen.insert(m.to_string()) {
                out.push(m.to_string());
            }
        }
    }
    Ok(out)
}

/// `requests` timed batches of `batch` mentions (plus one warm-up), each batch the next slice
/// of `mentions` (wrapping); prints one table row per mode.
pub fn normalize(
    t: &Target,
    mentions: &[String],
    batch: usize,
    requests: usize,
    modes: &[String],
) -> Result<()> {
    if mentions.len() < batch {
        bail!(
            "{} distinct mentions, fewer than one batch of {batch}",
            mentions.len()
        );
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    println!("| mode | mentions per request | requests | p50 s | max s | mentions/s |");
    println!("|---|---|---|---|---|---|");
    let mut start = 0usize;
    for mode in modes {
        let mut times = Vec::with_capacity(requests);
        for i in 0..=requests {
            let chunk: Vec<&str> = (0..batch)
                .map(|j| mentions[(start + j) % mentions.len()].as_str())
                .collect();
            start = (start + batch) % mentions.len();
            let mut body = serde_json::json!({"mentions": chunk, "k": 5, "mode": mode});
            if let Some(s) = &t.systems {
                body["systems"] = serde_json::json!(s);
            }
            let t0 = Instant::now();
            let mut resp = agent
                .post(format!("{}/v1/normalize", t.url))
                .header("content-type", "application/json")
                .send(body.to_string())?;
            let status = resp.status().as_u16();
            let v: serde_json::Value = resp.body_mut().read_json().unwrap_or_default();
            let secs = t0.elapsed().as_secs_f64();
            if status != 200 {
                bail!("normalize ({mode}) answered {status}: {v}");
            }
            let n = v["results"].as_array().map_or(0, Vec::len);
            if n != batch {
                bail!("normalize ({mode}) answered {n} results for {batch} mentions");
            }
            if i > 0 {
                times.push(secs);
            }
        }
        times.sort_by(f64::total_cmp);
        let total: f64 = times.iter().sum();
        println!(
            "| {mode} | {batch} | {requests} | {:.2} | {:.2} | {:.0} |",
            times[times.len() / 2],
            times.last().copied().unwrap_or(0.0),
            (batch * requests) as f64 / total.max(1e-9)
        );
    }
    Ok(())
}
