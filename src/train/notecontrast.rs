//! NoteContrast training (arXiv 2412.11477): `ontovec train notecontrast`.
//!
//! The paper aligns a long-document note encoder (BigBird, 8,192 tokens) with a RoBERTa-style
//! ICD code-sequence encoder by a symmetric InfoNCE loss with a learnable temperature, trained
//! jointly with masked-language modelling of the code sequences, then codes notes. Here:
//!
//! * **Note side**: the base terms encoder (e.g. the HiPrBERT model) over overlapping windows,
//!   pooled ([`crate::notes::windows`]), then a learned linear projection `W x + b` (initialised
//!   to the identity) and unit norm. The encoder's transformer is **frozen** in both presets:
//!   window embeddings are computed once (and cached in the checkpoint folder); fine-tuning it
//!   through 8k-token notes does not fit a CPU budget (see README).
//! * **Code side**: [`super::codeseq`], a small BERT over code tokens (description-initialised),
//!   trained end to end by the trainer's differentiable forward ([`super::bert::TrainBert`]).
//! * **Loss** = `w_seq · L_seq + w_code · L_code + w_mlm · L_mlm`:
//!   `L_seq` the paper's symmetric InfoNCE between a batch's notes and their code sequences
//!   (logit scale `exp(s)` learnable, init 1/0.07, capped at 100); `L_code` (our addition) a
//!   multi-positive InfoNCE between each note and single codes (the batch's codes plus random
//!   negatives; its own learnable scale), because coding ranks single codes against a note and
//!   the sequence loss alone never shows the model one code at a time; `L_mlm` the code
//!   encoder's MLM (20% masking). Defaults 1 / 1 / 0.5: the MLM term regularises the code
//!   encoder and is halved so the alignment terms lead.
//! * **Machinery** reused from the HiPrBERT trainer: [`super::bert`] (forward, dropout),
//!   [`super::optim`] (AdamW, warm-up/decay, clipping, accumulation), [`super::checkpoint`]
//!   (atomic, resumable: parameters, moments, step, RNG), [`super::output`] (folder copy),
//!   presets and `--config` overrides.
//!
//! Evaluation (held-out notes, split by patient): the trained model against BM25 of the note
//! over code descriptions, the base encoder zero-shot (pooled note vs description embedding)
//! and the untrained NoteContrast model (step 0), same run; see [`super::coding_eval`].

use super::bert::TrainBert;
use super::checkpoint::{self, progress_bar, RngState};
use super::codeseq::{self, FIRST_CODE};
use super::coding_eval::{self, CodingMetrics, Split};
use super::hiprbert::{write_atomic, Preset};
use super::notecontrast_data::{load_data, note_vectors, Data};
use super::ops::{l2_normalize, Dropout};
use super::optim::{clip_global_norm, lr_at, AdamW, AdamWConfig, GradAccumulator};
use crate::encoder::tokenize::TextTokenizer;
use crate::encoder::Encoder;
use crate::notes::bm25::Bm25;
use crate::notes::windows::WindowConfig;
use crate::store::Store;
use anyhow::Context;
use candle_core::{DType, Device, Tensor, Var};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `ontovec train notecontrast`.
#[derive(Debug, Clone)]
pub struct Args {
    /// Note encoder folder (a terms model).
    pub base: PathBuf,
    /// Data dir with the notes and ICD releases.
    pub data_dir: PathBuf,
    /// Output notes model folder; the codes model goes to `<out>-codes`.
    pub out: PathBuf,
    /// Preset.
    pub preset: Preset,
    /// JSON overrides.
    pub config: Option<PathBuf>,
}

/// Every knob of a run (a `--config` JSON overrides any subset).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct NoteContrastConfig {
    /// Optimizer steps.
    pub steps: u64,
    /// Notes per step.
    pub batch_notes: usize,
    /// Random negative codes per step for `L_code`.
    pub negatives: usize,
    /// Code encoder layers.
    pub code_layers: usize,
    /// Code encoder heads (must divide the note encoder's width).
    pub code_heads: usize,
    /// Codes per sequence at most.
    pub max_codes: usize,
    /// AdamW.
    pub optimizer: AdamWConfig,
    /// Warm-up share of steps.
    pub warmup_frac: f64,
    /// Gradient-norm bound.
    pub clip_norm: f64,
    /// MLM masking rate.
    pub mlm_rate: f64,
    /// Weights of the three losses.
    pub w_seq: f64,
    /// Weight of the note–single-code loss.
    pub w_code: f64,
    /// Weight of MLM.
    pub w_mlm: f64,
    /// Initial temperature of both InfoNCE terms.
    pub init_temperature: f64,
    /// Code encoder dropout.
    pub dropout: f32,
    /// Seed.
    pub seed: u64,
    /// Held-out shares per mille (by patient, else note id): test, then dev.
    pub test_permille: u32,
    /// Dev share per mille.
    pub dev_permille: u32,
    /// Codes with 1..=this many training notes are "rare".
    pub rare_max_train: usize,
    /// Notes used at most (0 = all), first by nid.
    pub max_notes: usize,
    /// Body tokens per note at most.
    pub max_tokens: usize,
    /// Checkpoint every this many steps.
    pub checkpoint_every: u64,
    /// Training time budget, seconds.
    pub max_train_secs: Option<u64>,
    /// Log every this many steps.
    pub log_every: u64,
}

impl NoteContrastConfig {
    /// A preset.
    pub fn preset(p: Preset) -> Self {
        let base = Self {
            steps: 800,
            batch_notes: 64,
            negatives: 256,
            code_layers: 2,
            code_heads: 6,
            max_codes: 32,
            optimizer: AdamWConfig {
                lr: 5e-4,
                ..Default::default()
            },
            warmup_frac: 0.05,
            clip_norm: 1.0,
            mlm_rate: 0.2,
            w_seq: 1.0,
            w_code: 1.0,
            w_mlm: 0.5,
            init_temperature: 0.07,
            dropout: 0.1,
            seed: 23,
            test_permille: 150,
            dev_permille: 100,
            rare_max_train: 10,
            max_notes: 1500,
            max_tokens: 8192,
            checkpoint_every: 100,
            max_train_secs: Some(8 * 60),
            log_every: 50,
        };
        match p {
            Preset::Quick => base,
            Preset::Full => Self {
                steps: 4000,
                code_layers: 4,
                max_notes: 0,
                optimizer: AdamWConfig {
                    lr: 3e-4,
                    ..Default::default()
                },
                checkpoint_every: 250,
                max_train_secs: None,
                ..base
            },
        }
    }

    /// Preset with a JSON file laid over it.
    pub fn load(p: Preset, file: Option<&Path>) -> anyhow::Result<Self> {
        let mut v = serde_json::to_value(Self::preset(p))?;
        if let Some(f) = file {
            let o: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(f)?)
                .with_context(|| format!("parsing {}", f.display()))?;
            super::hiprbert::merge(&mut v, o);
        }
        Ok(serde_json::from_value(v)?)
    }

    fn fingerprint(&self) -> String {
        let mut c = self.clone();
        c.max_train_secs = None;
        c.log_every = 0;
        c.checkpoint_every = 0;
        format!(
            "{:016x}",
            super::data::fnv1a64(serde_json::to_string(&c).unwrap_or_default().as_bytes())
        )
    }
}

/// The trainable pieces.
struct Model {
    code: TrainBert,
    head_w: Var,
    head_b: Var,
    scale_seq: Var,
    scale_code: Var,
    mlm_bias: Var,
}

impl Model {
    fn params(&self) -> Vec<(String, Var)> {
        let mut p = self.code.params().to_vec();
        p.push(("note_head.weight".into(), self.head_w.clone()));
        p.push(("note_head.bias".into(), self.head_b.clone()));
        p.push(("logit_scale.seq".into(), self.scale_seq.clone()));
        p.push(("logit_scale.code".into(), self.scale_code.clone()));
        p.push(("mlm.bias".into(), self.mlm_bias.clone()));
        p
    }

    /// Projected unit note vectors (B, d) from pooled vectors.
    fn notes(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        l2_normalize(
            &x.matmul(&self.head_w.as_tensor().t()?)?
                .broadcast_add(self.head_b.as_tensor())?,
        )
    }

    /// Unit vectors of every vocabulary code (eval mode), (V, d).
    fn code_vectors(&self, v: usize) -> candle_core::Result<Tensor> {
        let mut parts = Vec::new();
        let all: Vec<Vec<u32>> = (0..v).map(|i| vec![FIRST_CODE + i as u32]).collect();
        for chunk in all.chunks(512) {
            parts.push(codeseq::embed(&self.code, chunk, None)?);
        }
        Tensor::cat(&parts, 0)
    }
}

fn matrix(rows: &[Vec<f32>]) -> candle_core::Result<Tensor> {
    let d = rows.first().map(|r| r.len()).unwrap_or(0);
    Tensor::from_vec(
        rows.iter().flatten().copied().collect::<Vec<f32>>(),
        (rows.len(), d),
        &Device::Cpu,
    )
}

fn scores(notes: &Tensor, codes: &Tensor) -> anyhow::Result<Vec<Vec<f32>>> {
    Ok(notes.matmul(&codes.t()?)?.to_vec2()?)
}

/// Symmetric InfoNCE over a (B, B) logit matrix whose diagonal holds the positives.
fn info_nce(logits: &Tensor) -> candle_core::Result<Tensor> {
    let b = logits.dims()[0];
    let diag: Vec<u32> = (0..b as u32).collect();
    let a = codeseq::cross_entropy(logits, &diag)?;
    let c = codeseq::cross_entropy(&logits.t()?.contiguous()?, &diag)?;
    (a + c)? / 2.0
}

/// One step's losses and gradients.
fn step(
    m: &Model,
    d: &Data,
    x: &[Vec<f32>],
    cfg: &NoteContrastConfig,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<(f32, f32, f32, candle_core::backprop::GradStore)> {
    let b = cfg.batch_notes.min(d.train.len());
    let batch: Vec<usize> = d.train.choose_multiple(rng, b).copied().collect();
    let xs: Vec<Vec<f32>> = batch.iter().map(|&i| x[i].clone()).collect();
    let z = m.notes(&matrix(&xs)?)?;
    let seqs: Vec<Vec<u32>> = batch
        .iter()
        .map(|&i| {
            d.items[i]
                .codes
                .iter()
                .take(cfg.max_codes)
                .map(|&c| FIRST_CODE + c as u32)
                .collect()
        })
        .collect();
    let mut drop = Dropout::new(rng.gen(), cfg.dropout, cfg.dropout);
    let y = codeseq::embed(&m.code, &seqs, Some(&mut drop))?;
    let scale_seq = m.scale_seq.as_tensor().exp()?;
    let l_seq = info_nce(&z.matmul(&y.t()?)?.broadcast_mul(&scale_seq)?)?;
    // note vs single codes: the batch's codes + random negatives
    let mut cand: Vec<usize> = Vec::new();
    let mut at: HashMap<usize, usize> = HashMap::new();
    for &i in &batch {
        for &c in &d.items[i].codes {
            at.entry(c).or_insert_with(|| {
                cand.push(c);
                cand.len() - 1
            });
        }
    }
    for _ in 0..cfg.negatives {
        let c = rng.gen_range(0..d.vocab.len());
        at.entry(c).or_insert_with(|| {
            cand.push(c);
            cand.len() - 1
        });
    }
    let single: Vec<Vec<u32>> = cand.iter().map(|&c| vec![FIRST_CODE + c as u32]).collect();
    let u = codeseq::embed(&m.code, &single, Some(&mut drop))?;
    let logits = z
        .matmul(&u.t()?)?
        .broadcast_mul(&m.scale_code.as_tensor().exp()?)?;
    let (rows, cols) = logits.dims2()?;
    let max = logits.max_keepdim(1)?.detach();
    let sh = logits.broadcast_sub(&max)?;
    let logp = sh.broadcast_sub(&sh.exp()?.sum_keepdim(1)?.log()?)?;
    let mut picks = Vec::new();
    for (r, &i) in batch.iter().enumerate() {
        for &c in &d.items[i].codes {
            picks.push((r * cols + at[&c]) as u32);
        }
    }
    let n = picks.len();
    let l_code = logp
        .reshape(rows * cols)?
        .index_select(&Tensor::from_vec(picks, n, &Device::Cpu)?, 0)?
        .mean_all()?
        .neg()?;
    let mut total = ((l_seq.clone() * cfg.w_seq)? + (l_code.clone() * cfg.w_code)?)?;
    let mut mlm = 0f32;
    if cfg.w_mlm > 0.0 {
        if let Some(l) = codeseq::mlm_loss(
            &m.code,
            &m.mlm_bias,
            &seqs,
            cfg.mlm_rate,
            rng,
            Some(&mut drop),
        )? {
            mlm = l.to_scalar::<f32>()?;
            total = (total + (l * cfg.w_mlm)?)?;
        }
    }
    let grads = total.backward()?;
    Ok((
        l_seq.to_scalar::<f32>()?,
        l_code.to_scalar::<f32>()?,
        mlm,
        grads,
    ))
}

/// What a run produced.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Report {
    /// Configuration.
    pub config: NoteContrastConfig,
    /// Steps done.
    pub steps: u64,
    /// Whether the time budget ended training.
    pub stopped_by_time: bool,
    /// Training seconds.
    pub train_secs: f64,
    /// Seconds of this session in all.
    pub session_secs: f64,
    /// Notes (train, dev, test), vocabulary size, rare codes.
    pub data: serde_json::Value,
    /// Metrics on the test split per method.
    pub eval: BTreeMap<String, CodingMetrics>,
}

/// `ontovec train notecontrast`.
pub fn run(args: Args) -> anyhow::Result<()> {
    let r = train(&args, None)?;
    eprintln!(
        "trained {} steps in {:.0}s; notes model in {}, codes model in {}",
        r.steps,
        r.train_secs,
        args.out.display(),
        codes_dir(&args.out).display()
    );
    eprintln!("{}", eval_table(&r.eval));
    Ok(())
}

/// The codes model folder written next to a notes model folder.
pub fn codes_dir(out: &Path) -> PathBuf {
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "notecontrast".into());
    out.with_file_name(format!("{name}-codes"))
}

/// Train per `args`; `stop_after` returns after that many steps (checkpointed), as if killed.
pub fn train(args: &Args, stop_after: Option<u64>) -> anyhow::Result<Report> {
    let session = Instant::now();
    let cfg = NoteContrastConfig::load(args.preset, args.config.as_deref())?;
    let store = Store::open(&args.data_dir.join("store"))
        .with_context(|| format!("opening the store in {}", args.data_dir.display()))?;
    let d = load_data(&store, &cfg)?;
    let bm25_docs: Vec<String> = d
        .vocab
        .iter()
        .zip(&d.descriptions)
        .map(|(c, desc)| {
            let mut s = desc.clone();
            if let Ok(Some(r)) = store.concept(&c.system, &c.code) {
                for t in r.concept.terms.iter().filter(|t| {
                    t.kind.is_equivalent() || t.kind == crate::store::model::TermKind::Inclusion
                }) {
                    s.push_str(" ; ");
                    s.push_str(&t.text);
                }
            }
            s
        })
        .collect();
    drop(store);
    tracing::info!(
        notes = d.items.len(),
        train = d.train.len(),
        dev = d.dev.len(),
        test = d.test.len(),
        codes = d.vocab.len(),
        rare = d.rare.len(),
        "notecontrast data"
    );

    let enc = Encoder::load(&args.base)
        .with_context(|| format!("loading the note encoder from {}", args.base.display()))?;
    let mut wcfg = WindowConfig::for_max_len(enc.manifest().max_len);
    wcfg.max_tokens = cfg.max_tokens;
    let tok = TextTokenizer::load(&args.base, 1 << 22)?;
    let ckpt_dir = args.out.join("checkpoint");
    std::fs::create_dir_all(&ckpt_dir)?;
    let x = note_vectors(
        &enc,
        &tok,
        &wcfg,
        &d.items,
        &ckpt_dir.join("note_vectors.safetensors"),
    )?;
    let desc_vecs = enc.embed_texts(&d.descriptions, 64, true)?;
    let dim = enc.dim();

    let dev = Device::Cpu;
    let model = Model {
        code: codeseq::init(
            &desc_vecs,
            dim,
            cfg.code_layers,
            cfg.code_heads,
            cfg.max_codes.max(8),
            cfg.seed,
        )?,
        head_w: Var::from_tensor(&Tensor::eye(dim, DType::F32, &dev)?)?,
        head_b: Var::zeros(dim, DType::F32, &dev)?,
        scale_seq: Var::from_vec(vec![(1.0 / cfg.init_temperature).ln() as f32], 1, &dev)?,
        scale_code: Var::from_vec(vec![(1.0 / cfg.init_temperature).ln() as f32], 1, &dev)?,
        mlm_bias: Var::zeros(d.vocab.len() + FIRST_CODE as usize, DType::F32, &dev)?,
    };
    let gold = |idx: &[usize]| -> Vec<Vec<usize>> {
        idx.iter().map(|&i| d.items[i].codes.clone()).collect()
    };
    let (gold_dev, gold_test) = (gold(&d.dev), gold(&d.test));
    let pick = |m: &[Vec<f32>], idx: &[usize]| -> Vec<Vec<f32>> {
        idx.iter().map(|&i| m[i].clone()).collect()
    };
    let eval_model = |m: &Model| -> anyhow::Result<(CodingMetrics, Tensor)> {
        let cv = m.code_vectors(d.vocab.len())?;
        let sd = scores(&m.notes(&matrix(&pick(&x, &d.dev))?)?, &cv)?;
        let st = scores(&m.notes(&matrix(&pick(&x, &d.test))?)?, &cv)?;
        let met = coding_eval::evaluate(
            &Split {
                scores: &sd,
                gold: &gold_dev,
            },
            &Split {
                scores: &st,
                gold: &gold_test,
            },
            &d.rare,
        );
        Ok((met, cv))
    };
    let untrained_path = ckpt_dir.join("untrained_eval.json");
    let untrained: CodingMetrics = match std::fs::read_to_string(&untrained_path) {
        Ok(t) => serde_json::from_str(&t)?,
        Err(_) => {
            let (m, _) = eval_model(&model)?;
            write_atomic(&untrained_path, serde_json::to_string(&m)?.as_bytes())?;
            m
        }
    };

    let params = model.params();
    let mut opt = AdamW::new(cfg.optimizer.clone(), &params);
    let fingerprint = cfg.fingerprint();
    let mut state =
        checkpoint::resume_or_start(&ckpt_dir, &params, &mut opt, fingerprint, cfg.seed)?;
    let mut rng = state.rng.restore()?;
    let warmup = (cfg.steps as f64 * cfg.warmup_frac).round() as u64;
    let bar = progress_bar(cfg.steps, "training");
    bar.set_position(state.step);
    let mut acc = GradAccumulator::new(&params);
    let mut stopped_by_time = false;
    let cap = (100f32).ln();
    while state.step < cfg.steps {
        if cfg
            .max_train_secs
            .is_some_and(|m| state.train_secs >= m as f64)
        {
            stopped_by_time = true;
            break;
        }
        let t0 = Instant::now();
        let (ls, lc, lm, grads) = step(&model, &d, &x, &cfg, &mut rng)?;
        acc.add(&params, &grads)?;
        let mut g = acc.take_mean();
        let norm = clip_global_norm(&mut g, cfg.clip_norm);
        let lr = lr_at(state.step, cfg.optimizer.lr, warmup, cfg.steps);
        opt.update(&params, &g, lr)?;
        for s in [&model.scale_seq, &model.scale_code] {
            s.set(&s.as_tensor().clamp(0f32, cap)?)?;
        }
        state.step += 1;
        state.examples += cfg.batch_notes as u64;
        state.train_secs += t0.elapsed().as_secs_f64();
        state.loss_log.push((state.step, ls + lc, lm));
        bar.set_position(state.step);
        bar.set_message(format!(
            "seq {ls:.3} code {lc:.3} mlm {lm:.3} |g| {norm:.2} lr {lr:.1e}"
        ));
        if cfg.log_every > 0 && state.step.is_multiple_of(cfg.log_every) {
            tracing::info!(
                step = state.step,
                seq = ls,
                code = lc,
                mlm = lm,
                grad_norm = norm,
                lr,
                notes_per_s = state.examples as f64 / state.train_secs.max(1e-9),
                "train"
            );
        }
        if state.step == cfg.steps
            || (cfg.checkpoint_every > 0 && state.step.is_multiple_of(cfg.checkpoint_every))
            || stop_after == Some(state.step)
        {
            state.rng = RngState::capture(&rng);
            checkpoint::save(&ckpt_dir, &params, &opt, &state)?;
        }
        if stop_after == Some(state.step) {
            bar.abandon();
            anyhow::bail!("stopped after {} steps (test hook)", state.step);
        }
    }
    bar.finish();

    // evaluation: trained, untrained (step 0), zero-shot base encoder, BM25
    let (trained, code_vectors) = eval_model(&model)?;
    let desc = matrix(&desc_vecs)?;
    let zs_dev = scores(&matrix(&pick(&x, &d.dev))?, &desc)?;
    let zs_test = scores(&matrix(&pick(&x, &d.test))?, &desc)?;
    let zero_shot = coding_eval::evaluate(
        &Split {
            scores: &zs_dev,
            gold: &gold_dev,
        },
        &Split {
            scores: &zs_test,
            gold: &gold_test,
        },
        &d.rare,
    );
    let bm = Bm25::new(&bm25_docs);
    let bm_scores = |idx: &[usize]| -> Vec<Vec<f32>> {
        idx.iter().map(|&i| bm.scores(&d.items[i].text)).collect()
    };
    let (bd, bt) = (bm_scores(&d.dev), bm_scores(&d.test));
    let bm25 = coding_eval::evaluate(
        &Split {
            scores: &bd,
            gold: &gold_dev,
        },
        &Split {
            scores: &bt,
            gold: &gold_test,
        },
        &d.rare,
    );
    let mut eval = BTreeMap::new();
    eval.insert("bm25".to_string(), bm25);
    eval.insert("zero_shot_base".to_string(), zero_shot);
    eval.insert("untrained".to_string(), untrained);
    eval.insert("trained".to_string(), trained.clone());
    let report = Report {
        config: cfg.clone(),
        steps: state.step,
        stopped_by_time,
        train_secs: state.train_secs,
        session_secs: session.elapsed().as_secs_f64(),
        data: serde_json::json!({
            "notes": d.items.len(), "train": d.train.len(), "dev": d.dev.len(), "test": d.test.len(),
            "codes": d.vocab.len(), "rare_codes": d.rare.len(),
            "rare_definition": format!("1-{} training notes", cfg.rare_max_train),
            "split": "by meta.patient (else note id): fnv1a64 % 1000 < test_permille → test, next dev_permille → dev",
            "window": wcfg,
        }),
        eval,
    };
    super::notecontrast_output::write(
        args,
        &model.code,
        &model.head_w,
        &model.head_b,
        &code_vectors,
        &d.vocab,
        &wcfg,
        trained.threshold,
        &report,
    )?;
    std::fs::remove_dir_all(&ckpt_dir).ok();
    Ok(report)
}

/// The test-split table: one row per method.
pub fn eval_table(eval: &BTreeMap<String, CodingMetrics>) -> String {
    let f = |x: f64| {
        if x.is_finite() {
            format!("{x:.3}")
        } else {
            "–".into()
        }
    };
    let mut s = String::from("| method | micro-F1 | macro-F1 | micro-AUC | macro-AUC | P@5 | P@8 | R@8 | R@20 | rare macro-F1 | rare R@8 | rare R@20 |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for name in ["bm25", "zero_shot_base", "untrained", "trained"] {
        if let Some(m) = eval.get(name) {
            s.push_str(&format!(
                "| {name} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
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
