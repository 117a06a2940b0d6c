//! The HiPrBERT training run: the training loop (gradient
//! accumulation, AdamW with warm-up/decay, clipping, seeded sampling, progress, checkpoints
//! that survive `kill -9`), and the output folder the server loads as a terms model.

use super::{DataStats, HiprbertArgs, RunOptions, TrainConfig, TrainReport};
use crate::store::Store;
use crate::train::common::bert::{pad_batch, rowwise_cosine, TrainBert};
use crate::train::common::checkpoint::{self, DevPoint, RngState, TrainState};
use crate::train::common::embed::{InferenceEncoder, TermTokenizer};
use crate::train::common::ops::DropoutPlan;
use crate::train::common::optim::{lr_at, AdamW, ChunkGrad, GradAccumulator, SparseRows};
use crate::train::common::parallel::{self, ChunkedEmbeddings};
use crate::train::hiprbert::data::{self, Corpus, SystemEval};
use crate::train::hiprbert::eval::{self, SystemReport};
use crate::train::hiprbert::loss;
use crate::util::fs::write_atomic;
use anyhow::Context;
use candle_core::Tensor;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;

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
    let mut enc = InferenceEncoder::from_tensors(&model.config, model.tensors())?;
    enc.workers = parallel::workers();
    let mut f = |t: &[String]| enc.embed_texts(tok, t);
    eval::evaluate(&mut f, sets)
}

/// The corpus's hard neighbours under the base model ([`super::mining`]), mined once and
/// kept in the checkpoint folder (`hard_neighbors.json`, with the pool size it was mined
/// for) so a resumed run samples the same batches.
fn hard_neighbors(
    corpus: &Corpus,
    model: &TrainBert,
    tok: &TermTokenizer,
    ckpt_dir: &std::path::Path,
    per_concept: usize,
) -> anyhow::Result<Vec<Vec<u32>>> {
    let path = ckpt_dir.join("hard_neighbors.json");
    let key = (corpus.synonym_concepts.len(), per_concept);
    if let Ok(t) = std::fs::read_to_string(&path) {
        let (k, lists): ((usize, usize), Vec<Vec<u32>>) =
            serde_json::from_str(&t).with_context(|| format!("reading {}", path.display()))?;
        if k == key {
            return Ok(lists);
        }
    }
    let mut enc = InferenceEncoder::from_tensors(&model.config, model.tensors())?;
    enc.workers = parallel::workers();
    let mut f = |t: &[String]| enc.embed_texts(tok, t);
    let lists = super::mining::mine_neighbors(corpus, &mut f, per_concept)?;
    write_atomic(&path, serde_json::to_string(&(key, &lists))?.as_bytes())?;
    Ok(lists)
}

/// One point of the dev curve: mean over systems of the mean AUC and of acc@1 (systems
/// without pairs or queries left out).
fn dev_point(
    step: u64,
    model: &TrainBert,
    tok: &TermTokenizer,
    sets: &[SystemEval],
) -> anyhow::Result<DevPoint> {
    let r = evaluate_tensors(model, tok, sets)?;
    let mean = |xs: Vec<f64>| {
        let xs: Vec<f64> = xs.into_iter().filter(|x| x.is_finite()).collect();
        (!xs.is_empty()).then(|| xs.iter().sum::<f64>() / xs.len() as f64)
    };
    let mut metrics = std::collections::BTreeMap::new();
    if let Some(x) = mean(
        r.iter()
            .filter_map(|s| s.aucs.as_ref().map(|a| a.mean))
            .collect(),
    ) {
        metrics.insert("mean AUC".to_string(), x);
    }
    if let Some(x) = mean(r.iter().map(|s| s.acc1).collect()) {
        metrics.insert("acc@1".to_string(), x);
    }
    Ok(DevPoint { step, metrics })
}

/// One sampled, tokenised micro-batch: `cats.len()` tree pairs (all left strings, then all
/// right strings) followed by the synonym strings, whose concept labels are in `labels`.
pub struct MicroBatch {
    /// Token ids per string, in the order above.
    pub seqs: Vec<Vec<u32>>,
    /// Tree distance category of each pair.
    pub cats: Vec<u8>,
    /// Concept label of each synonym string.
    pub labels: Vec<u32>,
}

impl MicroBatch {
    /// Strings in the batch.
    pub fn strings(&self) -> usize {
        self.seqs.len()
    }

    /// Tokens in the batch (special tokens included, padding excluded).
    pub fn tokens(&self) -> usize {
        self.seqs.iter().map(|s| s.len()).sum()
    }
}

/// Draw one micro-batch per `cfg`: tree pairs from one hierarchy and a synonym group batch.
pub fn sample_micro_batch(
    tok: &TermTokenizer,
    corpus: &Corpus,
    cfg: &TrainConfig,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<MicroBatch> {
    let tree = match corpus.pick_hierarchy(cfg.tree_system_power, rng) {
        Some(hi) => corpus.tree_batch(hi, cfg.tree_pairs, rng),
        None => Vec::new(),
    };
    let syn = corpus.synonym_batch(cfg.synonym_concepts, cfg.hard_share, rng);
    let mut texts: Vec<String> = tree.iter().map(|p| p.0.clone()).collect();
    texts.extend(tree.iter().map(|p| p.1.clone()));
    texts.extend(syn.iter().map(|s| s.0.clone()));
    anyhow::ensure!(!texts.is_empty(), "no training pairs could be sampled");
    Ok(MicroBatch {
        seqs: tok.encode(&texts)?,
        cats: tree.iter().map(|p| p.2).collect(),
        labels: syn.iter().map(|s| s.1).collect(),
    })
}

/// Forward (length-sorted chunks, dropout), the tree and synonym losses, and backward for one
/// micro-batch, data-parallel over chunks on `workers` threads (see
/// [`crate::train::common::parallel`]). `ontovec bench train` times exactly this function.
pub fn forward_backward(
    model: &TrainBert,
    batch: &MicroBatch,
    cfg: &TrainConfig,
    dropout: DropoutPlan,
    workers: usize,
) -> anyhow::Result<StepOutput> {
    let t0 = Instant::now();
    let lens: Vec<usize> = batch.seqs.iter().map(|s| s.len()).collect();
    let pad = model.config.inner.pad_token_id as u32;
    let word = model.word_param();
    let chunks = ChunkedEmbeddings::forward(&lens, cfg.chunk, workers, |c, members| {
        let refs: Vec<&[u32]> = members
            .iter()
            .map(|&i| batch.seqs[i as usize].as_slice())
            .collect();
        let (ids, mask) = pad_batch(&refs, pad)?;
        let words = candle_core::Var::from_tensor(&model.lookup_words(&ids)?)?;
        let emb = model.embed_words(&words, &mask, Some(&mut dropout.for_chunk(c)))?;
        Ok((emb, (ids.flatten_all()?.to_vec1::<u32>()?, words)))
    })?;
    // the losses are differentiated down to the embeddings only; the chunks take it from there
    let emb = candle_core::Var::from_tensor(&chunks.detached()?)?;
    let n = batch.cats.len();
    let mut total = None;
    let (mut tl, mut sl) = (0f32, 0f32);
    if n > 0 {
        let sims = rowwise_cosine(&emb.narrow(0, 0, n)?, &emb.narrow(0, n, n)?)?;
        let l = loss::tree_loss(&sims, &batch.cats, &cfg.loss)?;
        tl = l.to_scalar::<f32>()?;
        total = Some(l);
    }
    if !batch.labels.is_empty() {
        let syn = emb.narrow(0, 2 * n, batch.labels.len())?;
        let (l, _, _) = loss::synonym_loss(&syn, &batch.labels, &cfg.loss)?;
        sl = l.to_scalar::<f32>()?;
        let l = (l * cfg.synonym_weight)?;
        total = Some(match total {
            Some(t) => (t + l)?,
            None => l,
        });
    }
    let total = total.context("empty batch")?;
    let forward_secs = t0.elapsed().as_secs_f64();
    let d_emb = total
        .backward()?
        .remove(emb.as_tensor())
        .context("the loss does not depend on the embeddings")?;
    Ok(StepOutput {
        tree_loss: tl,
        synonym_loss: sl,
        grads: chunks.backward(&d_emb, |store, (ids, words)| {
            let (b, l, h) = words.dims3()?;
            let rows = match store.get(words.as_tensor()) {
                Some(g) => g.reshape((b * l, h))?,
                None => Tensor::zeros((b * l, h), words.dtype(), words.device())?,
            };
            Ok(ChunkGrad {
                rows: SparseRows {
                    param: word,
                    ids: ids.clone(),
                    rows,
                },
                store,
            })
        })?,
        forward_secs,
    })
}

/// What [`forward_backward`] returns.
pub struct StepOutput {
    /// Tree multi-similarity loss (0 without tree pairs).
    pub tree_loss: f32,
    /// Synonym multi-similarity loss, unweighted (0 without synonyms).
    pub synonym_loss: f32,
    /// Gradients of the weighted sum, one part per chunk (their sum is the gradient).
    pub grads: Vec<ChunkGrad>,
    /// Seconds spent before backward (forward and losses).
    pub forward_secs: f64,
}

/// One micro-batch: sample, forward, both losses, backward. Returns (tree, synonym, grads, strings, tokens).
fn micro_batch(
    model: &TrainBert,
    tok: &TermTokenizer,
    corpus: &Corpus,
    cfg: &TrainConfig,
    rng: &mut ChaCha8Rng,
    hidden_p: f32,
    attention_p: f32,
) -> anyhow::Result<(f32, f32, Vec<ChunkGrad>, usize, usize)> {
    let batch = sample_micro_batch(tok, corpus, cfg, rng)?;
    let dropout = DropoutPlan {
        seed: rng.gen(),
        hidden_p,
        attention_p,
    };
    let o = forward_backward(model, &batch, cfg, dropout, parallel::workers())?;
    Ok((
        o.tree_loss,
        o.synonym_loss,
        o.grads,
        batch.strings(),
        batch.tokens(),
    ))
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
    let mut corpus = Corpus::new(hierarchies);
    anyhow::ensure!(
        !corpus.trainable().is_empty() || !corpus.synonym_concepts.is_empty(),
        "the store holds no hierarchy or synonyms to train on (load ontologies first)"
    );
    let eval_sets = data::build_eval(&corpus, &cfg.eval);
    let dev_sets = if cfg.dev_every > 0 && !opts.skip_eval {
        data::build_eval(&corpus, &cfg.dev_eval)
    } else {
        Vec::new()
    };
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

    if cfg.hard_neighbors > 0 {
        corpus.hard_neighbors =
            hard_neighbors(&corpus, &model, &tok, &ckpt_dir, cfg.hard_neighbors)?;
    }

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
    // the dev curve (not counted in train_secs); resumed runs keep the points before the stop
    let dev_curve = |state: &mut TrainState| -> anyhow::Result<()> {
        if !dev_sets.is_empty() && state.dev_log.last().map(|p| p.step) != Some(state.step) {
            let p = dev_point(state.step, &model, &tok, &dev_sets)?;
            tracing::info!(step = p.step, metrics = ?p.metrics, "dev");
            state.dev_log.push(p);
        }
        Ok(())
    };
    if state.step == 0 {
        dev_curve(&mut state)?;
    }
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
            acc.add_chunks(&params, &grads)?;
            tl += a / cfg.grad_accum.max(1) as f32;
            sl += b / cfg.grad_accum.max(1) as f32;
            state.examples += ex as u64;
            state.tokens += tk as u64;
            window.1 += ex as u64;
            window.2 += tk as u64;
        }
        let lr = lr_at(state.step, cfg.optimizer.lr, warmup, cfg.steps);
        let norm = opt.step_from(&mut acc, &params, cfg.clip_norm, lr)?;
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
        if last || (cfg.dev_every > 0 && state.step % cfg.dev_every == 0) {
            dev_curve(&mut state)?;
        }
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
        dev_curve(&mut state)?;
        state.rng = RngState::capture(&rng);
        checkpoint::save(&ckpt_dir, &params, &opt, &state)?;
    }
    if cfg.weight_interpolation < 1.0 {
        let base = TrainBert::load_dir(&args.base)?;
        model.interpolate_toward(&base, cfg.weight_interpolation)?;
        tracing::info!(
            alpha = cfg.weight_interpolation,
            "weights moved back toward the base (WiSE-FT)"
        );
    }
    let trained_eval = if opts.skip_eval {
        Vec::new()
    } else {
        evaluate_tensors(&model, &tok, &eval_sets)?
    };
    let dev = if opts.skip_eval {
        None
    } else {
        measure_dev_sets(args, &cfg, &model, &tok)
    };
    let mut r = report(
        cfg,
        state,
        stopped_by_time,
        session,
        stats,
        base_eval,
        trained_eval,
    );
    r.dev_sets = dev;
    crate::train::hiprbert::output::write_model_folder(args, &model, &r)?;
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
        dev_log: s.dev_log,
        dev_sets: None,
    }
}

/// The `--dev-dir` sets, base vs trained ([`super::devsets`]); `None` without a dev folder. A
/// failure (a malformed file) is logged and listed in the card, never fatal: the model of a
/// finished run is written either way.
fn measure_dev_sets(
    args: &HiprbertArgs,
    cfg: &TrainConfig,
    model: &TrainBert,
    tok: &TermTokenizer,
) -> Option<super::devsets::DevSets> {
    let dir = args.dev_dir.as_ref()?;
    let t0 = Instant::now();
    let run = || -> anyhow::Result<super::devsets::DevSets> {
        let base = TrainBert::load_dir(&args.base)?;
        let encoder = |m: &TrainBert| -> anyhow::Result<InferenceEncoder> {
            let mut e = InferenceEncoder::from_tensors(&m.config, m.tensors())?;
            e.workers = parallel::workers();
            Ok(e)
        };
        let (be, te) = (encoder(&base)?, encoder(model)?);
        let store = Store::open(&args.data_dir.join("store"))?;
        let mut fb = |t: &[String]| be.embed_texts(tok, t);
        let mut ft = |t: &[String]| te.embed_texts(tok, t);
        super::devsets::evaluate(dir, &store, cfg.dev_mentions, &mut fb, &mut ft)
    };
    let d = run().unwrap_or_else(|e| {
        tracing::warn!(error = %format!("{e:#}"), "dev sets not measured");
        super::devsets::DevSets {
            dir: dir.display().to_string(),
            skipped: vec![format!("every set: {e:#}")],
            ..Default::default()
        }
    });
    tracing::info!(
        rows = d.rows.len(),
        secs = t0.elapsed().as_secs_f64(),
        "dev sets measured"
    );
    Some(d)
}
