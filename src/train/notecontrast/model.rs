//! The trainable pieces of a NoteContrast run and one training step (see
//! [`crate::train::notecontrast`] for the method): the code-sequence BERT, the note projection, the
//! segment projection and gate, the learnable logit scales and the MLM bias; the losses.

use crate::domain::model::ConceptRef;
use crate::notes::coding::{CodingManifest, CodingModel, CodingTensors};
use crate::notes::windows::WindowConfig;
use crate::train::common::bert::TrainBert;
use crate::train::common::ops::{l2_normalize, Dropout};
use crate::train::notecontrast::codeseq::{self, FIRST_CODE};
use crate::train::notecontrast::data::{Data, NoteFeatures};
use crate::train::notecontrast::tuned::{BackpropStats, TunedEncoder};
use crate::train::notecontrast::NoteContrastConfig;
use candle_core::{Device, Tensor, Var};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;

/// The trainable pieces.
pub(super) struct Model {
    pub(super) code: TrainBert,
    pub(super) head_w: Var,
    pub(super) head_b: Var,
    pub(super) scale_seq: Var,
    pub(super) scale_code: Var,
    pub(super) mlm_bias: Var,
    pub(super) seg: Option<SegmentVars>,
}

/// The segment side: projection and gate (see [`crate::notes::coding`]).
pub(super) struct SegmentVars {
    pub(super) w: Var,
    pub(super) b: Var,
    pub(super) gate_w: Var,
    pub(super) gate_b: Var,
    pub(super) tau: f64,
}

impl Model {
    pub(super) fn params(&self) -> Vec<(String, Var)> {
        let mut p = self.code.params().to_vec();
        p.push(("note_head.weight".into(), self.head_w.clone()));
        p.push(("note_head.bias".into(), self.head_b.clone()));
        p.push(("logit_scale.seq".into(), self.scale_seq.clone()));
        p.push(("logit_scale.code".into(), self.scale_code.clone()));
        p.push(("mlm.bias".into(), self.mlm_bias.clone()));
        if let Some(sv) = &self.seg {
            p.push(("seg_head.weight".into(), sv.w.clone()));
            p.push(("seg_head.bias".into(), sv.b.clone()));
            p.push(("gate.weight".into(), sv.gate_w.clone()));
            p.push(("gate.bias".into(), sv.gate_b.clone()));
        }
        p
    }

    /// Code scores (B, C) of a batch of notes against unit code vectors `u` (C, d): attention
    /// over each note's segments `sx` (`counts[r]` rows per note, in order), or the projected
    /// pooled vectors `z` without segment scoring.
    fn code_scores(
        &self,
        sx: &Tensor,
        counts: &[usize],
        z: &Tensor,
        u: &Tensor,
    ) -> candle_core::Result<Tensor> {
        let Some(sv) = &self.seg else {
            return z.matmul(&u.t()?);
        };
        let ns: usize = counts.iter().sum();
        let zs = l2_normalize(
            &sx.matmul(&sv.w.as_tensor().t()?)?
                .broadcast_add(sv.b.as_tensor())?,
        )?;
        let gate = log_sigmoid(
            &sx.matmul(&sv.gate_w.as_tensor().unsqueeze(1)?)?
                .broadcast_add(sv.gate_b.as_tensor())?,
        )?;
        let sims = (zs.matmul(&u.t()?)?.broadcast_add(&gate)? / sv.tau)?;
        // per-note log-sum-exp over its segments in one matmul: shift every code column by its
        // batch maximum, sum each note's rows with a 0/1 membership matrix (B × Ns), and floor
        // the sums at 1e-30 (a code far below the batch maximum in every segment of a note
        // bottoms out at max − 69, far below any code that matters)
        let mx = sims.max_keepdim(0)?.detach();
        let e = sims.broadcast_sub(&mx)?.exp()?;
        let mut member = vec![0f32; counts.len() * ns];
        let mut off = 0;
        for (r, n) in counts.iter().enumerate() {
            member[r * ns + off..r * ns + off + n].fill(1.0);
            off += n;
        }
        let member = Tensor::from_vec(member, (counts.len(), ns), &Device::Cpu)?;
        let lse = (member.matmul(&e)? + 1e-30)?.log()?.broadcast_add(&mx)?;
        lse * sv.tau
    }

    /// The coding model these parameters make with code vectors `cv` (what gets written).
    pub(super) fn coder(
        &self,
        cfg: &NoteContrastConfig,
        wcfg: &WindowConfig,
        vocab: &[ConceptRef],
        cv: &Tensor,
        threshold: f32,
    ) -> anyhow::Result<CodingModel> {
        CodingModel::from_tensors(
            coding_manifest(cfg, wcfg, vocab, threshold),
            vocab.to_vec(),
            &self.tensors(cv),
        )
    }

    /// The coding tensors of these parameters with code vectors `cv` (evaluated and written).
    pub(super) fn tensors<'a>(&'a self, cv: &'a Tensor) -> CodingTensors<'a> {
        CodingTensors {
            head: (self.head_w.as_tensor(), self.head_b.as_tensor()),
            code_vectors: cv,
            segments: self.seg.as_ref().map(|sv| {
                [
                    sv.w.as_tensor(),
                    sv.b.as_tensor(),
                    sv.gate_w.as_tensor(),
                    sv.gate_b.as_tensor(),
                ]
            }),
            blend: None,
        }
    }

    /// Projected unit note vectors (B, d) from pooled vectors.
    pub(super) fn notes(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        l2_normalize(
            &x.matmul(&self.head_w.as_tensor().t()?)?
                .broadcast_add(self.head_b.as_tensor())?,
        )
    }

    /// Unit vectors of every vocabulary code (eval mode), (V, d).
    pub(super) fn code_vectors(&self, v: usize) -> candle_core::Result<Tensor> {
        let mut parts = Vec::new();
        let all: Vec<Vec<u32>> = (0..v).map(|i| vec![FIRST_CODE + i as u32]).collect();
        for chunk in all.chunks(512) {
            parts.push(codeseq::embed(&self.code, chunk, None)?);
        }
        Tensor::cat(&parts, 0)
    }
}

/// `log σ(x) = min(x, 0) − log(1 + exp(−|x|))`, stable for large |x|.
fn log_sigmoid(x: &Tensor) -> candle_core::Result<Tensor> {
    let neg_part = x.neg()?.relu()?.neg()?;
    neg_part - x.abs()?.neg()?.exp()?.affine(1.0, 1.0)?.log()?
}

/// The `notecontrast` manifest section of a run.
pub(super) fn coding_manifest(
    cfg: &NoteContrastConfig,
    wcfg: &WindowConfig,
    vocab: &[ConceptRef],
    threshold: f32,
) -> CodingManifest {
    let mut systems: Vec<String> = vocab.iter().map(|c| c.system.clone()).collect();
    systems.sort();
    systems.dedup();
    CodingManifest {
        window: *wcfg,
        codes_model: String::new(),
        threshold,
        systems,
        segments: cfg.segments,
        attn_temperature: cfg.attn_temperature,
        diversity: crate::notes::rank::Diversity::default(),
        blend: 0.0,
    }
}

pub(super) fn matrix(rows: &[Vec<f32>]) -> candle_core::Result<Tensor> {
    let d = rows.first().map(|r| r.len()).unwrap_or(0);
    Tensor::from_vec(
        rows.iter().flatten().copied().collect::<Vec<f32>>(),
        (rows.len(), d),
        &Device::Cpu,
    )
}

/// Symmetric InfoNCE over a (B, B) logit matrix whose diagonal holds the positives.
fn info_nce(logits: &Tensor) -> candle_core::Result<Tensor> {
    let b = logits.dims()[0];
    let diag: Vec<u32> = (0..b as u32).collect();
    let a = codeseq::cross_entropy(logits, &diag)?;
    let c = codeseq::cross_entropy(&logits.t()?.contiguous()?, &diag)?;
    (a + c)? / 2.0
}

/// What one step computed.
pub(super) struct StepOut {
    /// Sequence InfoNCE loss.
    pub(super) seq: f32,
    /// Note–single-code InfoNCE loss.
    pub(super) code: f32,
    /// MLM loss (0 when off).
    pub(super) mlm: f32,
    /// Stores that sum to the step's gradient.
    pub(super) grads: Vec<candle_core::backprop::GradStore>,
    /// What the tuned encoder's backward covered.
    pub(super) encoder: Option<BackpropStats>,
}

/// One step's losses and gradients.
pub(super) fn step(
    m: &Model,
    d: &Data,
    feats: &NoteFeatures,
    tuned: Option<&TunedEncoder>,
    cfg: &NoteContrastConfig,
    rng: &mut ChaCha8Rng,
) -> anyhow::Result<StepOut> {
    let b = cfg.batch_notes.min(d.train.len());
    let batch: Vec<usize> = d.train.choose_multiple(rng, b).copied().collect();
    // the note side: cached features, or the tuned encoder's bank rows of the batch's
    // sequences (a leaf of this graph; the top layers get their gradient after the backward)
    let mut encoder_pass = None;
    let (x, sx, counts) = match tuned {
        Some(t) => {
            let seqs = t.sequences(&batch);
            let rows = Var::from_tensor(&t.bank_rows(&seqs)?)?;
            let f = t.assemble(&batch, rows.as_tensor())?;
            encoder_pass = Some((t, seqs, rows));
            (f.pooled, f.segments, f.counts)
        }
        None => {
            let xs: Vec<Vec<f32>> = batch.iter().map(|&i| feats.pooled[i].clone()).collect();
            let segs: Vec<Vec<f32>> = batch
                .iter()
                .flat_map(|&i| feats.segments[i].iter().cloned())
                .collect();
            let counts = batch.iter().map(|&i| feats.segments[i].len()).collect();
            (matrix(&xs)?, matrix(&segs)?, counts)
        }
    };
    let z = m.notes(&x)?;
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
    let logits = m
        .code_scores(&sx, &counts, &z, &u)?
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
    let mut stores = Vec::new();
    let mut encoder = None;
    if let Some((t, seqs, rows)) = encoder_pass {
        if let Some(g) = grads.get(rows.as_tensor()) {
            let (s, stats) = t.backprop(&seqs, g, cfg.encoder_tokens)?;
            stores = s;
            encoder = Some(stats);
        }
    }
    stores.insert(0, grads);
    Ok(StepOut {
        seq: l_seq.to_scalar::<f32>()?,
        code: l_code.to_scalar::<f32>()?,
        mlm,
        grads: stores,
        encoder,
    })
}
