//! The NoteContrast training loop: load notes and codes, embed windows and segments, train the
//! projection, gates and code encoder, evaluate against the baselines, write both folders.

use super::{codes_dir, Args, NoteContrastConfig, Report};
use crate::domain::model::ConceptRef;
use crate::encoder::tokenize::TextTokenizer;
use crate::encoder::Encoder;
use crate::eval::bm25::Bm25;
use crate::eval::coding::{self, CodingMetrics, Split};
use crate::notes::coding::{CodingModel, CodingTensors};
use crate::notes::windows::WindowConfig;
use crate::store::Store;
use crate::train::common::checkpoint::{self, progress_bar, DevPoint, RngState, TrainState};
use crate::train::common::optim::{lr_at, AdamW, GradAccumulator};
use crate::train::notecontrast::codeseq::{self, FIRST_CODE};
use crate::train::notecontrast::data::{
    description_vectors, load_data, note_features, NoteFeatures,
};
use crate::train::notecontrast::eval::{eval_table, tuning_table};
use crate::train::notecontrast::model::{coding_manifest, matrix, step, Model, SegmentVars};
use crate::train::notecontrast::serving::{blend_weights, serving};
use crate::train::notecontrast::tuned::TunedEncoder;
use crate::util::fs::write_atomic;
use anyhow::Context;
use candle_core::{DType, Device, Tensor, Var};
use std::collections::BTreeMap;
use std::time::Instant;

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
    if !r.eval_all_codes.is_empty() {
        eprintln!(
            "over every code of the store's systems ({} codes):\n{}",
            r.data["label_space"],
            eval_table(&r.eval_all_codes)
        );
    }
    if !r.tuning.is_empty() {
        eprintln!(
            "serving options on the dev split (chosen: {}):\n{}",
            r.serving,
            tuning_table(&r.tuning)
        );
    }
    Ok(())
}

/// Train per `args`; `stop_after` returns after that many steps (checkpointed), as if killed.
pub fn train(args: &Args, stop_after: Option<u64>) -> anyhow::Result<Report> {
    let session = Instant::now();
    let cfg = NoteContrastConfig::load(args.preset, args.config.as_deref())?;
    let store = Store::open(&args.data_dir.join("store"))
        .with_context(|| format!("opening the store in {}", args.data_dir.display()))?;
    let d = load_data(&store, &cfg)?;
    tracing::info!(
        notes = d.items.len(),
        train = d.train.len(),
        dev = d.dev.len(),
        test = d.test.len(),
        codes = d.vocab.len(),
        rare = d.rare.len(),
        other_codes = d.extra.len(),
        "notecontrast data"
    );

    let enc = Encoder::load(&args.base)
        .with_context(|| format!("loading the note encoder from {}", args.base.display()))?;
    let mut wcfg = WindowConfig::for_max_len(enc.manifest().max_len);
    wcfg.max_tokens = cfg.max_tokens;
    let tok = TextTokenizer::load(&args.base, 1 << 22)?;
    let ckpt_dir = args.out.join("checkpoint");
    std::fs::create_dir_all(&ckpt_dir)?;
    let mut scfg = cfg.segments.unwrap_or_default();
    scfg.max_tokens = cfg.max_tokens;
    let feats = note_features(
        &enc,
        &tok,
        &wcfg,
        &scfg,
        &d.items,
        &ckpt_dir.join("note_features.safetensors"),
    )?;
    // the features the trained coder is evaluated on: the base encoder's, refreshed through
    // the tuned layers before each evaluation when the encoder trains (copied only then)
    let mut tfeats = std::borrow::Cow::Borrowed(&feats);
    let mut held_out: Vec<usize> = d.dev.iter().chain(&d.test).copied().collect();
    held_out.sort_unstable();
    held_out.dedup();
    let used: Vec<usize> = d.train.iter().chain(&held_out).copied().collect();
    let tuned = match cfg.encoder_layers {
        0 => None,
        k => Some(TunedEncoder::build(
            &args.base,
            k,
            &tok,
            (&wcfg, &scfg),
            &d.items,
            &used,
        )?),
    };
    let served_as = args
        .base
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let desc_vecs = description_vectors(&store, &served_as, &enc, &d.descriptions)?;
    let extra_desc_vecs = description_vectors(&store, &served_as, &enc, &d.extra_descriptions)?;
    drop(store);
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
        seg: match cfg.segments {
            None => None,
            Some(_) => Some(SegmentVars {
                w: Var::from_tensor(&Tensor::eye(dim, DType::F32, &dev)?)?,
                b: Var::zeros(dim, DType::F32, &dev)?,
                gate_w: Var::zeros(dim, DType::F32, &dev)?,
                // σ(4) ≈ 0.98: every segment open at the start
                gate_b: Var::from_vec(vec![4f32], 1, &dev)?,
                tau: cfg.attn_temperature as f64,
            }),
        },
    };
    let gold = |idx: &[usize]| -> Vec<Vec<usize>> {
        idx.iter().map(|&i| d.items[i].codes.clone()).collect()
    };
    let (gold_dev, gold_test) = (gold(&d.dev), gold(&d.test));
    // scores of notes `idx` with features `f` by a coding model, over their segments or
    // (`segmented` false) by the pooled note vector only
    let coder_scores =
        |f: &NoteFeatures, c: &CodingModel, idx: &[usize], segmented: bool| -> Vec<Vec<f32>> {
            idx.iter()
                .map(|&i| {
                    let segs: &[Vec<f32>] = if segmented { &f.segments[i] } else { &[] };
                    c.score_all(segs, &c.project(&f.pooled[i]))
                })
                .collect()
        };
    let metrics = |dev_s: &[Vec<f32>], test_s: &[Vec<f32>]| {
        coding::evaluate(
            &Split {
                scores: dev_s,
                gold: &gold_dev,
            },
            &Split {
                scores: test_s,
                gold: &gold_test,
            },
            &d.rare,
        )
    };
    // dev-tuned test metrics of a coding model
    let coder_metrics = |f: &NoteFeatures, c: &CodingModel, segmented: bool| {
        metrics(
            &coder_scores(f, c, &d.dev, segmented),
            &coder_scores(f, c, &d.test, segmented),
        )
    };
    // (segment-scored metrics, pooled-only metrics, code vectors)
    let eval_model =
        |m: &Model, f: &NoteFeatures| -> anyhow::Result<(CodingMetrics, CodingMetrics, Tensor)> {
            let cv = m.code_vectors(d.vocab.len())?;
            let c = m.coder(&cfg, &wcfg, &d.vocab, &cv, 0.0)?;
            Ok((coder_metrics(f, &c, true), coder_metrics(f, &c, false), cv))
        };
    let untrained_path = ckpt_dir.join("untrained_eval.json");
    let untrained: CodingMetrics = match std::fs::read_to_string(&untrained_path) {
        Ok(t) => serde_json::from_str(&t)?,
        Err(_) => {
            let (m, _, _) = eval_model(&model, &feats)?;
            write_atomic(&untrained_path, serde_json::to_string(&m)?.as_bytes())?;
            m
        }
    };

    let mut params = model.params();
    let mut scales = vec![1.0; params.len()];
    if let Some(t) = &tuned {
        let p = t.params();
        scales.extend(std::iter::repeat_n(
            cfg.encoder_lr / cfg.optimizer.lr,
            p.len(),
        ));
        params.extend(p);
    }
    let mut opt = AdamW::new(cfg.optimizer.clone(), &params).with_lr_scales(scales);
    let fingerprint = cfg.fingerprint();
    let mut state =
        checkpoint::resume_or_start(&ckpt_dir, &params, &mut opt, fingerprint, cfg.seed)?;
    if let Some(t) = &tuned {
        // the bank of the training sequences (the only ones a step reads), with the weights
        // the run starts or resumes from
        let t0 = Instant::now();
        let seqs = t.sequences(&d.train);
        t.refresh_bank(&seqs)?;
        tracing::info!(
            sequences = seqs.len(),
            secs = format!("{:.0}", t0.elapsed().as_secs_f64()),
            "note encoder bank filled through the tuned layers"
        );
    }
    let mut rng = state.rng.restore()?;
    let warmup = (cfg.steps as f64 * cfg.warmup_frac).round() as u64;
    let bar = progress_bar(cfg.steps, "training");
    bar.set_position(state.step);
    let mut acc = GradAccumulator::new(&params);
    let mut stopped_by_time = false;
    let cap = (100f32).ln();
    // the dev curve (not counted in train_secs); resumed runs keep the points before the stop
    let mut dev_curve = |state: &mut TrainState| -> anyhow::Result<()> {
        if cfg.dev_every == 0
            || d.dev.is_empty()
            || state.dev_log.last().map(|p| p.step) == Some(state.step)
        {
            return Ok(());
        }
        if let Some(t) = &tuned {
            t.refresh(&d.dev, tfeats.to_mut())?;
        }
        let cv = model.code_vectors(d.vocab.len())?;
        let c = model.coder(&cfg, &wcfg, &d.vocab, &cv, 0.0)?;
        let scores = coder_scores(&tfeats, &c, &d.dev, true);
        let dev = Split {
            scores: &scores,
            gold: &gold_dev,
        };
        let m = coding::evaluate(&dev, &dev, &d.rare);
        let metrics = [
            ("micro-F1", m.micro_f1),
            ("micro-AUC", m.micro_auc),
            ("R@8", m.recall_at_8),
        ]
        .into_iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        tracing::info!(step = state.step, ?metrics, "dev");
        state.dev_log.push(DevPoint {
            step: state.step,
            metrics,
        });
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
        let out = step(&model, &d, &feats, tuned.as_ref(), &cfg, &mut rng)?;
        let (ls, lc, lm) = (out.seq, out.code, out.mlm);
        acc.add(&params, &out.grads)?;
        let lr = lr_at(state.step, cfg.optimizer.lr, warmup, cfg.steps);
        let norm = opt.step_from(&mut acc, &params, cfg.clip_norm, lr)?;
        for s in [&model.scale_seq, &model.scale_code] {
            s.set(&s.as_tensor().clamp(0f32, cap)?)?;
        }
        state.step += 1;
        if let Some(t) = &tuned {
            if cfg.encoder_refresh_every > 0 && state.step.is_multiple_of(cfg.encoder_refresh_every)
            {
                t.refresh_bank(&t.sequences(&d.train))?;
            }
        }
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
                encoder_sequences = out.encoder.map(|e| e.sequences),
                encoder_tokens = out.encoder.map(|e| e.tokens),
                encoder_gradient_share = out.encoder.map(|e| e.gradient_share),
                "train"
            );
        }
        if state.step == cfg.steps
            || (cfg.dev_every > 0 && state.step.is_multiple_of(cfg.dev_every))
        {
            dev_curve(&mut state)?;
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
    if stopped_by_time {
        dev_curve(&mut state)?;
    }

    // evaluation: trained, untrained (step 0), zero-shot base encoder, BM25
    if let Some(t) = &tuned {
        t.refresh(&held_out, tfeats.to_mut())?;
    }
    let (trained, trained_pooled, code_vectors) = eval_model(&model, &tfeats)?;
    let desc = matrix(&desc_vecs)?;
    // zero-shot: identity heads, open gates, description vectors as code vectors
    let zero_shot =
        |segmented: bool, codes: &[ConceptRef], desc: &Tensor| -> anyhow::Result<CodingMetrics> {
            let eye = Tensor::eye(dim, DType::F32, &dev)?;
            let zero = Tensor::zeros(dim, DType::F32, &dev)?;
            let open = Tensor::new(&[30f32], &dev)?;
            let mut zcfg = cfg.clone();
            zcfg.segments = Some(scfg);
            let c = CodingModel::from_tensors(
                coding_manifest(&zcfg, &wcfg, codes, 0.0),
                codes.to_vec(),
                &CodingTensors {
                    head: (&eye, &zero),
                    code_vectors: desc,
                    segments: Some([&eye, &zero, &zero, &open]),
                    blend: None,
                },
            )?;
            Ok(coder_metrics(&feats, &c, segmented))
        };
    let v = d.vocab.len();
    let bm = Bm25::new(&d.bm25_docs);
    let bm_scores = |idx: &[usize]| -> Vec<Vec<f32>> {
        idx.iter().map(|&i| bm.scores(&d.items[i].text)).collect()
    };
    let (bd, bt) = (bm_scores(&d.dev), bm_scores(&d.test));
    let corpus_only =
        |m: &[Vec<f32>]| -> Vec<Vec<f32>> { m.iter().map(|r| r[..v].to_vec()).collect() };
    let mut eval = BTreeMap::new();
    eval.insert(
        "bm25".to_string(),
        metrics(&corpus_only(&bd), &corpus_only(&bt)),
    );
    eval.insert(
        "zero_shot_base".to_string(),
        zero_shot(false, &d.vocab, &desc)?,
    );
    eval.insert(
        "zero_shot_segments".to_string(),
        zero_shot(true, &d.vocab, &desc)?,
    );
    eval.insert("untrained".to_string(), untrained);
    if cfg.segments.is_some() {
        eval.insert("trained_pooled".to_string(), trained_pooled);
    }
    eval.insert("trained".to_string(), trained.clone());

    // the whole label space: every code of the store's systems, the ones no note carries
    // encoded from their description embeddings by the trained code encoder
    let mut all_codes = d.vocab.clone();
    all_codes.extend(d.extra.iter().cloned());
    let mut full_vectors = vec![code_vectors.clone()];
    for chunk in extra_desc_vecs.chunks(4096) {
        // detached: each chunk's autograd graph would otherwise stay alive (GBs for 96k codes)
        full_vectors.push(codeseq::embed_inputs(&model.code, &matrix(chunk)?)?.detach());
    }
    let full_vectors = Tensor::cat(&full_vectors, 0)?;
    let mut all_desc = desc_vecs.clone();
    all_desc.extend(extra_desc_vecs.iter().cloned());
    let all_desc = matrix(&all_desc)?;
    let served = serving(
        &model,
        &cfg,
        &wcfg,
        &d,
        &tfeats,
        &all_codes,
        &full_vectors,
        &all_desc,
        &desc,
    )?;
    let mut eval_all_codes = served.eval_all_codes;
    if let Some(m) = served.vocab_blend {
        eval.insert("trained_blend".to_string(), m);
    }
    if !d.extra.is_empty() {
        eval_all_codes.insert(
            "zero_shot_segments".to_string(),
            zero_shot(true, &all_codes, &all_desc)?,
        );
        eval_all_codes.insert(
            "zero_shot_base".to_string(),
            zero_shot(false, &all_codes, &all_desc)?,
        );
        eval_all_codes.insert("bm25".to_string(), metrics(&bd, &bt));
    }
    let (unseen_codes, unseen_occurrences) = d.unseen_gold(&d.test);
    let report = Report {
        config: cfg.clone(),
        steps: state.step,
        stopped_by_time,
        train_secs: state.train_secs,
        session_secs: session.elapsed().as_secs_f64(),
        data: serde_json::json!({
            "notes": d.items.len(), "train": d.train.len(), "dev": d.dev.len(), "test": d.test.len(),
            "codes": d.vocab.len(), "rare_codes": d.rare.len(),
            "codes_from": "training split only (the code encoder's tokens and the random negatives)",
            "test_gold_unseen_in_training": {"codes": unseen_codes, "occurrences": unseen_occurrences},
            "label_space": all_codes.len(),
            "rare_definition": format!("1-{} training notes", cfg.rare_max_train),
            "split": d.split_rule,
            "window": wcfg,
            "segments": cfg.segments.map(|_| scfg),
            "note_encoder": match cfg.encoder_layers {
                0 => "frozen".to_string(),
                k => format!("top {k} layer(s) tuned (peak lr {})", cfg.encoder_lr),
            },
        }),
        eval,
        eval_all_codes,
        loss_log: state.loss_log,
        dev_log: state.dev_log,
        tuning: served.tuning,
        serving: serde_json::json!({"blend": served.blend, "diversity": served.diversity}),
    };
    let weights = blend_weights(&d, &cfg, all_codes.len(), served.blend)?;
    let mut tensors = model.tensors(&full_vectors);
    if served.blend > 0.0 {
        tensors.blend = Some((&all_desc, &weights));
    }
    let mut manifest = coding_manifest(&cfg, &wcfg, &all_codes, served.threshold);
    manifest.diversity = served.diversity;
    manifest.blend = served.blend;
    crate::train::notecontrast::output::write(
        args,
        &model.code,
        tuned.as_ref().map(|t| &t.bert),
        &tensors,
        &all_codes,
        &d.vocab,
        manifest,
        &report,
    )?;
    if !cfg.keep_checkpoint {
        std::fs::remove_dir_all(&ckpt_dir).ok();
    }
    Ok(report)
}
