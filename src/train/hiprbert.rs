//! The HiPrBERT training run: configuration and presets, the training loop (gradient
//! accumulation, AdamW with warm-up/decay, clipping, seeded sampling, progress, checkpoints
//! that survive `kill -9`), and the output folder the server loads as a terms model.

use super::bert::{embed_sequences, rowwise_cosine, TrainBert};
use super::checkpoint::{self, RngState, TrainState};
use super::data::{self, Corpus, EvalSizes, SystemEval};
use super::embed::{InferenceEncoder, TermTokenizer};
use super::eval::{self, SystemReport};
use super::loss::{self, LossConfig};
use super::ops::Dropout;
use super::optim::{clip_global_norm, lr_at, AdamW, AdamWConfig, GradAccumulator};
use crate::store::Store;
use anyhow::Context;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Named training configurations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// At most 12 minutes of training (400 steps of 96 strings, or fewer when the time budget
    /// ends it) plus evaluation: 14 minutes in all measured on 2 shared cores.
    Quick,
    /// The recommended run: 2,000 steps of 4 × 96 strings (768k strings, batches of 128 tree
    /// pairs + 64 synonym concepts, about the paper's 256), full-size evaluation. Expected
    /// time on 2 cores: about 5 h at the 45 strings/s measured on a quiet machine, 11 h at the
    /// 19 strings/s measured while other jobs shared the cores (see the report in
    /// `MODEL_CARD.md`; `RAYON_NUM_THREADS=1` helps on a busy machine).
    Full,
}

impl std::str::FromStr for Preset {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "quick" => Ok(Preset::Quick),
            "full" => Ok(Preset::Full),
            _ => anyhow::bail!("unknown preset '{s}' (quick|full)"),
        }
    }
}

/// Every knob of a run. A `--config` JSON file may override any subset of fields of the preset.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainConfig {
    /// Optimizer steps.
    pub steps: u64,
    /// Tree pairs per micro-batch (one hierarchy per micro-batch; categories balanced).
    pub tree_pairs: usize,
    /// Synonym concepts per micro-batch (two names each).
    pub synonym_concepts: usize,
    /// Micro-batches per optimizer step.
    pub grad_accum: usize,
    /// AdamW.
    pub optimizer: AdamWConfig,
    /// Fraction of `steps` spent warming up.
    pub warmup_frac: f64,
    /// Global gradient-norm bound (0 = off).
    pub clip_norm: f64,
    /// Training truncation length in tokens.
    pub max_len: usize,
    /// Sequences per forward chunk (length-sorted).
    pub chunk: usize,
    /// Hidden dropout (None = the base config's).
    pub hidden_dropout: Option<f32>,
    /// Attention dropout (None = the base config's).
    pub attention_dropout: Option<f32>,
    /// Seed of the sampling and dropout RNG.
    pub seed: u64,
    /// Loss hyper-parameters.
    pub loss: LossConfig,
    /// Weight of the synonym loss relative to the tree loss.
    pub synonym_weight: f64,
    /// Held-out share of concepts, per mille.
    pub heldout_permille: u32,
    /// Cap on concepts read per system (0 = all).
    pub max_concepts_per_system: usize,
    /// Evaluation set sizes.
    pub eval: EvalSizes,
    /// Checkpoint every this many steps (and at the end).
    pub checkpoint_every: u64,
    /// Stop training after this many seconds even if `steps` are not done (None = never).
    pub max_train_secs: Option<u64>,
    /// Log a line every this many steps.
    pub log_every: u64,
}

impl TrainConfig {
    /// The configuration of a preset.
    pub fn preset(p: Preset) -> Self {
        let base = TrainConfig {
            steps: 400,
            tree_pairs: 32,
            synonym_concepts: 16,
            grad_accum: 1,
            // a few hundred steps instead of the paper's epoch over millions of pairs: a higher
            // peak rate than its 2e-5
            optimizer: AdamWConfig {
                lr: 1e-4,
                ..Default::default()
            },
            warmup_frac: 0.06,
            clip_norm: 1.0,
            max_len: 32,
            chunk: 32,
            hidden_dropout: None,
            attention_dropout: None,
            seed: 17,
            loss: LossConfig::default(),
            synonym_weight: 1.0,
            heldout_permille: 100,
            max_concepts_per_system: 0,
            eval: EvalSizes {
                pairs_per_category: 200,
                max_queries: 200,
                max_candidates: 1000,
            },
            checkpoint_every: 50,
            max_train_secs: Some(12 * 60),
            log_every: 10,
        };
        match p {
            Preset::Quick => base,
            Preset::Full => TrainConfig {
                // about the paper's batch of 256: 4 × (32 tree pairs + 16 synonym concepts)
                steps: 2000,
                grad_accum: 4,
                optimizer: AdamWConfig {
                    lr: 3e-5,
                    ..Default::default()
                },
                eval: EvalSizes {
                    pairs_per_category: 2000,
                    max_queries: 2000,
                    max_candidates: 0,
                },
                checkpoint_every: 100,
                max_train_secs: None,
                log_every: 25,
                ..base
            },
        }
    }

    /// The preset with a JSON file's fields laid over it.
    pub fn load(p: Preset, file: Option<&Path>) -> anyhow::Result<Self> {
        let mut v = serde_json::to_value(Self::preset(p))?;
        if let Some(f) = file {
            let o: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
            )
            .with_context(|| format!("parsing {}", f.display()))?;
            merge(&mut v, o);
        }
        Ok(serde_json::from_value(v)?)
    }

    /// A fingerprint of everything that changes the trajectory (not the time budget or logging).
    pub fn fingerprint(&self) -> String {
        let mut c = self.clone();
        c.max_train_secs = None;
        c.log_every = 0;
        c.checkpoint_every = 0;
        c.eval = EvalSizes {
            pairs_per_category: 0,
            max_queries: 0,
            max_candidates: 0,
        };
        format!(
            "{:016x}",
            data::fnv1a64(serde_json::to_string(&c).unwrap_or_default().as_bytes())
        )
    }
}

pub(crate) fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}

/// Arguments of `ontovec train hiprbert` (clap-free; the CLI fills it).
#[derive(Debug, Clone)]
pub struct HiprbertArgs {
    /// Base HF BERT folder (config.json, tokenizer.json, model.safetensors, ...).
    pub base: PathBuf,
    /// ontovec data dir (the store is `DATA_DIR/store`).
    pub data_dir: PathBuf,
    /// Output model folder, e.g. `models/NAME`.
    pub out: PathBuf,
    /// Preset.
    pub preset: Preset,
    /// JSON file overriding preset fields.
    pub config: Option<PathBuf>,
}

/// What a run did, for the manifest, the model card and tests.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainReport {
    /// Configuration used.
    pub config: TrainConfig,
    /// Optimizer steps done.
    pub steps: u64,
    /// Whether the time budget ended training before `config.steps`.
    pub stopped_by_time: bool,
    /// Strings embedded in training.
    pub examples: u64,
    /// Real tokens in training.
    pub tokens: u64,
    /// Training seconds (all sessions of a resumed run).
    pub train_secs: f64,
    /// Whole-run seconds of this session (data, evaluation, writing).
    pub session_secs: f64,
    /// Per-system data statistics.
    pub data: Vec<DataStats>,
    /// Base model on the held-out split.
    pub base_eval: Vec<SystemReport>,
    /// Trained model on the held-out split.
    pub trained_eval: Vec<SystemReport>,
    /// (step, tree loss, synonym loss) log.
    pub loss_log: Vec<(u64, f32, f32)>,
}

/// Data statistics of one system.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DataStats {
    /// System.
    pub system: String,
    /// Concepts read.
    pub concepts: usize,
    /// Held-out concepts.
    pub heldout: usize,
    /// Hierarchy or relation edges.
    pub edges: usize,
    /// Training concepts with a name.
    pub train_concepts: usize,
    /// Training concepts with ≥ 2 true synonyms.
    pub synonym_concepts: usize,
    /// Whether tree batches are drawn from it.
    pub tree_batches: bool,
}

/// Test and benchmark hooks (the CLI passes the default).
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Return right after this many optimizer steps (after checkpointing), as if killed.
    pub stop_after: Option<u64>,
    /// Skip the base-model evaluation (benchmarks).
    pub skip_eval: bool,
}

/// `ontovec train hiprbert`: train and write the model folder. See [`train`].
pub fn run_hiprbert(args: HiprbertArgs) -> anyhow::Result<()> {
    let r = train(&args, &RunOptions::default())?;
    eprintln!(
        "trained {} steps in {:.0}s ({:.1} examples/s, {:.0} tokens/s); model in {}",
        r.steps,
        r.train_secs,
        r.examples as f64 / r.train_secs.max(1e-9),
        r.tokens as f64 / r.train_secs.max(1e-9),
        args.out.display()
    );
    Ok(())
}

fn data_stats(c: &Corpus) -> Vec<DataStats> {
    let trainable = c.trainable();
    c.hierarchies
        .iter()
        .enumerate()
        .map(|(i, h)| DataStats {
            system: h.system.clone(),
            concepts: h.len(),
            heldout: h.heldout.iter().filter(|x| **x).count(),
            edges: h.edges(),
            train_concepts: c.train_concepts[i].len(),
            synonym_concepts: c
                .synonym_concepts
                .iter()
                .filter(|(hi, _)| *hi as usize == i)
                .count(),
            tree_batches: trainable.contains(&i),
        })
        .collect()
}

fn evaluate_tensors(
    model: &TrainBert,
    tok: &TermTokenizer,
    sets: &[SystemEval],
) -> anyhow::Result<Vec<SystemReport>> {
    let enc = InferenceEncoder::from_tensors(&model.config, model.tensors())?;
    let mut f = |t: &[String]| enc.embed_texts(tok, t);
    eval::evaluate(&mut f, sets)
}

/// One micro-batch: forward, both losses, backward. Returns (tree, synonym, grads, strings, tokens).
fn micro_batch(
    model: &TrainBert,
    tok: &TermTokenizer,
    corpus: &Corpus,
    cfg: &TrainConfig,
    rng: &mut ChaCha8Rng,
    hidden_p: f32,
    attention_p: f32,
) -> anyhow::Result<(f32, f32, candle_core::backprop::GradStore, usize, usize)> {
    let tree = match corpus.pick_hierarchy(rng) {
        Some(hi) => corpus.tree_batch(hi, cfg.tree_pairs, rng),
        None => Vec::new(),
    };
    let syn = corpus.synonym_batch(cfg.synonym_concepts, rng);
    let mut texts: Vec<String> = tree.iter().map(|p| p.0.clone()).collect();
    texts.extend(tree.iter().map(|p| p.1.clone()));
    texts.extend(syn.iter().map(|s| s.0.clone()));
    anyhow::ensure!(!texts.is_empty(), "no training pairs could be sampled");
    let seqs = tok.encode(&texts)?;
    let tokens: usize = seqs.iter().map(|s| s.len()).sum();
    let mut dropout = Dropout::new(rng.gen(), hidden_p, attention_p);
    let emb = embed_sequences(model, &seqs, cfg.chunk, Some(&mut dropout))?;
    let n = tree.len();
    let mut total = None;
    let (mut tl, mut sl) = (0f32, 0f32);
    if n > 0 {
        let sims = rowwise_cosine(&emb.narrow(0, 0, n)?, &emb.narrow(0, n, n)?)?;
        let cats: Vec<u8> = tree.iter().map(|p| p.2).collect();
        let l = loss::tree_loss(&sims, &cats, &cfg.loss)?;
        tl = l.to_scalar::<f32>()?;
        total = Some(l);
    }
    if !syn.is_empty() {
        let labels: Vec<u32> = syn.iter().map(|s| s.1).collect();
        let (l, _, _) = loss::synonym_loss(&emb.narrow(0, 2 * n, syn.len())?, &labels, &cfg.loss)?;
        sl = l.to_scalar::<f32>()?;
        let l = (l * cfg.synonym_weight)?;
        total = Some(match total {
            Some(t) => (t + l)?,
            None => l,
        });
    }
    let total = total.context("empty batch")?;
    let grads = total.backward()?;
    Ok((tl, sl, grads, texts.len(), tokens))
}

/// Train per `args` and write the model folder; returns what happened. Resumes from
/// `OUT/checkpoint/` when a checkpoint of the same configuration is there.
pub fn train(args: &HiprbertArgs, opts: &RunOptions) -> anyhow::Result<TrainReport> {
    let session = Instant::now();
    let cfg = TrainConfig::load(args.preset, args.config.as_deref())?;
    let store = Store::open(&args.data_dir.join("store"))
        .with_context(|| format!("opening the store in {}", args.data_dir.display()))?;
    let hierarchies =
        data::load_hierarchies(&store, cfg.heldout_permille, cfg.max_concepts_per_system)?;
    drop(store);
    let corpus = Corpus::new(hierarchies);
    anyhow::ensure!(
        !corpus.trainable().is_empty() || !corpus.synonym_concepts.is_empty(),
        "the store holds no hierarchy or synonyms to train on (load ontologies first)"
    );
    let eval_sets = data::build_eval(&corpus, &cfg.eval);
    let stats = data_stats(&corpus);

    let model = TrainBert::load_dir(&args.base)
        .with_context(|| format!("loading the base model from {}", args.base.display()))?;
    let tok = TermTokenizer::load(&args.base.join("tokenizer.json"), cfg.max_len)?;
    let hidden_p = cfg
        .hidden_dropout
        .unwrap_or(model.config.inner.hidden_dropout_prob as f32);
    let attention_p = cfg
        .attention_dropout
        .unwrap_or(model.config.attention_dropout);

    let ckpt_dir = args.out.join("checkpoint");
    std::fs::create_dir_all(&ckpt_dir)?;
    let base_eval_path = ckpt_dir.join("base_eval.json");
    let base_eval: Vec<SystemReport> = if opts.skip_eval {
        Vec::new()
    } else if let Ok(t) = std::fs::read_to_string(&base_eval_path) {
        serde_json::from_str(&t)?
    } else {
        let e = evaluate_tensors(&model, &tok, &eval_sets)?;
        write_atomic(&base_eval_path, serde_json::to_string(&e)?.as_bytes())?;
        e
    };

    let params = model.params().to_vec();
    let mut opt = AdamW::new(cfg.optimizer.clone(), &params);
    let fingerprint = cfg.fingerprint();
    let mut state =
        checkpoint::resume_or_start(&ckpt_dir, &params, &mut opt, fingerprint, cfg.seed)?;
    let mut rng = state.rng.restore()?;
    let warmup = (cfg.steps as f64 * cfg.warmup_frac).round() as u64;
    let bar = checkpoint::progress_bar(cfg.steps, "");
    bar.set_position(state.step);
    let mut acc = GradAccumulator::new(&params);
    let mut stopped_by_time = false;
    let mut window = (Instant::now(), 0u64, 0u64);
    while state.step < cfg.steps {
        if cfg
            .max_train_secs
            .is_some_and(|m| state.train_secs >= m as f64)
        {
            stopped_by_time = true;
            break;
        }
        let t0 = Instant::now();
        let (mut tl, mut sl) = (0f32, 0f32);
        for _ in 0..cfg.grad_accum.max(1) {
            let (a, b, grads, ex, tk) =
                micro_batch(&model, &tok, &corpus, &cfg, &mut rng, hidden_p, attention_p)?;
            acc.add(&params, &grads)?;
            tl += a / cfg.grad_accum.max(1) as f32;
            sl += b / cfg.grad_accum.max(1) as f32;
            state.examples += ex as u64;
            state.tokens += tk as u64;
            window.1 += ex as u64;
            window.2 += tk as u64;
        }
        let mut g = acc.take_mean();
        let norm = clip_global_norm(&mut g, cfg.clip_norm);
        let lr = lr_at(state.step, cfg.optimizer.lr, warmup, cfg.steps);
        opt.update(&params, &g, lr)?;
        state.step += 1;
        state.train_secs += t0.elapsed().as_secs_f64();
        state.loss_log.push((state.step, tl, sl));
        let dt = window.0.elapsed().as_secs_f64().max(1e-9);
        bar.set_position(state.step);
        bar.set_message(format!(
            "tree {tl:.4} syn {sl:.4} |g| {norm:.2} lr {lr:.1e} {:.1} ex/s {:.0} tok/s",
            window.1 as f64 / dt,
            window.2 as f64 / dt
        ));
        if cfg.log_every > 0 && state.step % cfg.log_every == 0 {
            tracing::info!(
                step = state.step,
                tree = tl,
                syn = sl,
                grad_norm = norm,
                lr,
                ex_per_s = window.1 as f64 / dt,
                "train"
            );
            window = (Instant::now(), 0, 0);
        }
        let last = state.step == cfg.steps;
        if last
            || (cfg.checkpoint_every > 0 && state.step % cfg.checkpoint_every == 0)
            || opts.stop_after == Some(state.step)
        {
            state.rng = RngState::capture(&rng);
            checkpoint::save(&ckpt_dir, &params, &opt, &state)?;
        }
        if opts.stop_after == Some(state.step) {
            bar.abandon();
            return Ok(report(
                cfg,
                state,
                stopped_by_time,
                session,
                stats,
                base_eval,
                Vec::new(),
            ));
        }
    }
    bar.finish();
    if stopped_by_time {
        state.rng = RngState::capture(&rng);
        checkpoint::save(&ckpt_dir, &params, &opt, &state)?;
    }
    let trained_eval = if opts.skip_eval {
        Vec::new()
    } else {
        evaluate_tensors(&model, &tok, &eval_sets)?
    };
    let r = report(
        cfg,
        state,
        stopped_by_time,
        session,
        stats,
        base_eval,
        trained_eval,
    );
    super::output::write_model_folder(args, &model, &r)?;
    std::fs::remove_dir_all(&ckpt_dir).ok();
    Ok(r)
}

fn report(
    config: TrainConfig,
    s: TrainState,
    stopped_by_time: bool,
    session: Instant,
    data: Vec<DataStats>,
    base_eval: Vec<SystemReport>,
    trained_eval: Vec<SystemReport>,
) -> TrainReport {
    TrainReport {
        config,
        steps: s.step,
        stopped_by_time,
        examples: s.examples,
        tokens: s.tokens,
        train_secs: s.train_secs,
        session_secs: session.elapsed().as_secs_f64(),
        data,
        base_eval,
        trained_eval,
        loss_log: s.loss_log,
    }
}

/// Write `bytes` to `path` atomically (temporary file in the same folder, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}
