//! `ontovec bench train`: the HiPrBERT training step, ours vs PyTorch, side by side in one run.
//!
//! Samples micro-batches with the trainer's own sampler from a data dir, writes the exact
//! workload (token ids, tree categories, synonym labels per step) to JSON, times the trainer's
//! own step ([`forward_backward`], gradient averaging, clipping, AdamW) on it, then runs
//! `scripts/bench_train_reference.py` — the same step in PyTorch on the same weights and the
//! same ids — and prints both rows and their ratio. Tokenisation is excluded on both sides.
//! Running in the release binary matters: it is the allocator and build the trainer runs with.

use crate::store::Store;
use crate::train::common::bert::TrainBert;
use crate::train::common::embed::TermTokenizer;
use crate::train::common::ops::DropoutPlan;
use crate::train::common::optim::{AdamW, AdamWConfig, GradAccumulator};
use crate::train::common::parallel;
use crate::train::hiprbert::data::{load_hierarchies, Corpus};
use crate::train::hiprbert::train::{forward_backward, sample_micro_batch, MicroBatch};
use crate::train::hiprbert::{Preset, TrainConfig};
use anyhow::{bail, Context, Result};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What to run.
#[derive(Debug, Clone)]
pub struct TrainBench {
    /// Base model folder (safetensors + tokenizer.json).
    pub base: PathBuf,
    /// Data dir whose store holds the hierarchies to sample from.
    pub data_dir: PathBuf,
    /// Timed steps (after `warmup` untimed ones).
    pub steps: usize,
    /// Untimed warm-up steps.
    pub warmup: usize,
    /// Where the workload JSON is written.
    pub workload: PathBuf,
    /// Python interpreter for the PyTorch reference; `None` skips it.
    pub python: Option<String>,
    /// The reference script.
    pub script: PathBuf,
    /// Threads for the reference (ours: `ONTOVEC_TRAIN_THREADS`, default all cores).
    pub threads: usize,
}

/// Timings of our side.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StepTimes {
    /// Strings per timed step summed.
    pub examples: usize,
    /// Tokens summed.
    pub tokens: usize,
    /// Wall seconds of the timed steps.
    pub seconds: f64,
    /// Of which forward + losses.
    pub forward_s: f64,
    /// Of which backward.
    pub backward_s: f64,
    /// Of which accumulation, clipping and AdamW.
    pub optimizer_s: f64,
}

fn sample(b: &TrainBench, cfg: &TrainConfig, tok: &TermTokenizer) -> Result<Vec<MicroBatch>> {
    let store = Store::open(&b.data_dir.join("store"))
        .with_context(|| format!("opening the store in {}", b.data_dir.display()))?;
    let corpus = Corpus::new(load_hierarchies(&store, cfg.heldout_permille, 0)?);
    drop(store);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    (0..b.warmup + b.steps)
        .map(|_| sample_micro_batch(tok, &corpus, cfg, &mut rng))
        .collect()
}

fn write_workload(
    path: &Path,
    b: &TrainBench,
    cfg: &TrainConfig,
    batches: &[MicroBatch],
) -> Result<()> {
    let json = serde_json::json!({
        "warmup": b.warmup, "chunk": cfg.chunk, "dropout": 0.1, "lr": cfg.optimizer.lr,
        "batches": batches.iter().map(|m| serde_json::json!({
            "ids": m.seqs, "cats": m.cats, "labels": m.labels,
        })).collect::<Vec<_>>(),
    });
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(path, json.to_string())
        .with_context(|| format!("writing the workload to {}", path.display()))
}

/// Time the trainer's step on `batches` (the first `warmup` untimed).
pub fn time_steps(
    model: &TrainBert,
    cfg: &TrainConfig,
    batches: &[MicroBatch],
    warmup: usize,
    workers: usize,
) -> Result<StepTimes> {
    let params = model.params().to_vec();
    let mut opt = AdamW::new(cfg.optimizer.clone(), &params);
    let mut acc = GradAccumulator::new(&params);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
    let mut t = StepTimes {
        examples: 0,
        tokens: 0,
        seconds: 0.0,
        forward_s: 0.0,
        backward_s: 0.0,
        optimizer_s: 0.0,
    };
    for (k, batch) in batches.iter().enumerate() {
        let t0 = Instant::now();
        let plan = DropoutPlan {
            seed: rng.gen(),
            hidden_p: 0.1,
            attention_p: 0.1,
        };
        let out = forward_backward(model, batch, cfg, plan, workers)?;
        let (grads, fwd) = (out.grads, out.forward_secs);
        let t2 = Instant::now();
        acc.add_chunks(&params, &grads)?;
        opt.step_from(&mut acc, &params, cfg.clip_norm, cfg.optimizer.lr)?;
        let t3 = Instant::now();
        if k >= warmup {
            let step = t3.duration_since(t0).as_secs_f64();
            let fb = t2.duration_since(t0).as_secs_f64();
            t.seconds += step;
            t.examples += batch.strings();
            t.tokens += batch.tokens();
            t.forward_s += fwd;
            t.backward_s += fb - fwd;
            t.optimizer_s += step - fb;
        }
    }
    Ok(t)
}

fn reference(b: &TrainBench, python: &str) -> Result<serde_json::Value> {
    let out = std::process::Command::new(python)
        .arg(&b.script)
        .arg(&b.workload)
        .arg(&b.base)
        .args(["--threads", &b.threads.to_string()])
        .args(["--steps", &b.steps.to_string()])
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {python} {}", b.script.display()))?;
    if !out.status.success() {
        bail!(
            "the PyTorch reference failed ({}); install torch, safetensors and numpy for {python}",
            out.status
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text
        .lines()
        .rev()
        .find(|l| l.starts_with('{'))
        .unwrap_or("");
    serde_json::from_str(last).with_context(|| format!("parsing the reference output: {text}"))
}

/// Run the benchmark and print the side-by-side table.
pub fn run(b: &TrainBench) -> Result<()> {
    let mut cfg = TrainConfig::preset(Preset::Quick);
    // the reference sums both losses unweighted, and uses lr 5e-5
    cfg.synonym_weight = 1.0;
    cfg.optimizer = AdamWConfig {
        lr: 5e-5,
        ..cfg.optimizer
    };
    let tok = TermTokenizer::load(&b.base.join("tokenizer.json"), 48)?;
    let batches = sample(b, &cfg, &tok)?;
    write_workload(&b.workload, b, &cfg, &batches)?;
    let model = TrainBert::load_dir(&b.base)?;
    let threads = parallel::workers();
    let ours = time_steps(&model, &cfg, &batches, b.warmup, threads)?;
    println!("| implementation | threads | strings/s | tokens/s | forward+losses s | backward s | optimizer s |");
    println!("|---|---|---|---|---|---|---|");
    println!(
        "| ontovec (candle + fused ops) | {threads} | {:.1} | {:.0} | {:.2} | {:.2} | {:.2} |",
        ours.examples as f64 / ours.seconds,
        ours.tokens as f64 / ours.seconds,
        ours.forward_s,
        ours.backward_s,
        ours.optimizer_s
    );
    let Some(python) = &b.python else {
        return Ok(());
    };
    let r = reference(b, python)?;
    let theirs = r["examples_per_sec"].as_f64().unwrap_or(f64::NAN);
    println!(
        "| {} | {} | {:.1} | {:.0} | | | |",
        r["impl"].as_str().unwrap_or("pytorch"),
        r["threads"],
        theirs,
        r["tokens_per_sec"].as_f64().unwrap_or(f64::NAN)
    );
    println!(
        "\nratio ontovec / PyTorch: {:.2}x ({} timed steps of {} strings, workload {})",
        ours.examples as f64 / ours.seconds / theirs,
        b.steps,
        ours.examples / b.steps.max(1),
        b.workload.display()
    );
    Ok(())
}
