//! The code-sequence encoder of NoteContrast: a small BERT over ICD code tokens, trained with
//! masked-language modelling (20% of positions) and aligned with notes.
//!
//! It *is* a [`TrainBert`] (the trainer's differentiable BERT, HF layout), so the checkpoint,
//! optimizer and output machinery of the HiPrBERT trainer apply unchanged, and the written
//! folder (config.json, model.safetensors, a word-level `tokenizer.json`) is served by the
//! registry as a `codes` model: `/v1/embed` with text `"ICD10CM:E11.9 ICD10CM:I10"` embeds a
//! code sequence.
//!
//! * **Vocabulary**: `[PAD]`, `[UNK]`, `[MASK]`, then one token `SYSTEM:CODE` per code of the
//!   store's ICD systems that occurs in the training notes. No `[CLS]`/`[SEP]`: a sequence is
//!   only codes, mean-pooled, so a single code's embedding is its own token's output.
//! * **Order**: a note's codes in their given order (principal first / MIMIC `SEQ_NUM`), with
//!   absolute positions; the paper's relative-time embeddings are not built (our notes carry no
//!   per-code times).
//! * **Initialisation from descriptions** (chosen): each code's input embedding starts as the
//!   note encoder's embedding of the code's description (unit vector, width = the note encoder's
//!   width), position embeddings near zero, LayerNorms identity, and the residual branches'
//!   output projections scaled down. At step 0 a single code's output is then ≈ its description
//!   embedding (LayerNorm only centres and rescales it), so the untrained model already codes
//!   zero-shot like the terms encoder, and codes seen in only a few notes (the rare ones) keep a
//!   meaningful vector instead of a random one. Random init would leave rare codes unusable.
//! * **MLM head**: tied to the input embeddings (logits = states · Eᵀ + bias), as in BERT.

use crate::train::common::bert::{random_weights, BertConfig, TrainBert};
use crate::train::common::ops;
use candle_core::{DType, Device, Result, Tensor, Var, D};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::Path;

/// Token ids of the specials.
pub const PAD: u32 = 0;
/// Unknown code.
pub const UNK: u32 = 1;
/// Mask token.
pub const MASK: u32 = 2;
/// First code token id.
pub const FIRST_CODE: u32 = 3;

/// The token of a code.
pub fn token(system: &str, code: &str) -> String {
    format!("{system}:{code}")
}

/// Build the code encoder: `codes` in vocabulary order, their description embeddings
/// (`desc[i]`, all of width `hidden`), `layers`/`heads`, seeded.
pub fn init(
    desc: &[Vec<f32>],
    hidden: usize,
    layers: usize,
    heads: usize,
    max_positions: usize,
    seed: u64,
) -> anyhow::Result<TrainBert> {
    let vocab = desc.len() + FIRST_CODE as usize;
    let mut cfg = BertConfig::tiny(vocab, hidden, layers, heads);
    cfg.inner.max_position_embeddings = max_positions;
    cfg.inner.intermediate_size = hidden * 2;
    cfg.inner.pad_token_id = PAD as usize;
    let mut w = random_weights(&cfg, seed)?;
    let mut rng: ChaCha8Rng = rand::SeedableRng::seed_from_u64(seed ^ 0x5eed);
    let dev = Device::Cpu;
    // word embeddings: specials random-small, codes = description embeddings
    let mut emb = Vec::with_capacity(vocab * hidden);
    for _ in 0..FIRST_CODE {
        emb.extend((0..hidden).map(|_| rng.gen_range(-0.02f32..0.02)));
    }
    for d in desc {
        anyhow::ensure!(d.len() == hidden, "description embedding width mismatch");
        emb.extend_from_slice(d);
    }
    w.insert(
        "embeddings.word_embeddings.weight".into(),
        Tensor::from_vec(emb, (vocab, hidden), &dev)?,
    );
    let small = |n: usize, r: &mut ChaCha8Rng, s: f32| -> Vec<f32> {
        (0..n).map(|_| r.gen_range(-s..s)).collect()
    };
    w.insert(
        "embeddings.position_embeddings.weight".into(),
        Tensor::from_vec(
            small(max_positions * hidden, &mut rng, 0.002),
            (max_positions, hidden),
            &dev,
        )?,
    );
    w.insert(
        "embeddings.token_type_embeddings.weight".into(),
        Tensor::zeros((2, hidden), DType::F32, &dev)?,
    );
    let ones = Tensor::ones(hidden, DType::F32, &dev)?;
    let zeros = Tensor::zeros(hidden, DType::F32, &dev)?;
    let mut norms = vec!["embeddings.LayerNorm".to_string()];
    for l in 0..layers {
        norms.push(format!("encoder.layer.{l}.attention.output.LayerNorm"));
        norms.push(format!("encoder.layer.{l}.output.LayerNorm"));
        for name in ["attention.output.dense", "output.dense"] {
            let k = format!("encoder.layer.{l}.{name}.weight");
            let t = (w[&k].clone() * 0.05)?;
            w.insert(k, t);
            w.insert(
                format!("encoder.layer.{l}.{name}.bias"),
                Tensor::zeros(hidden, DType::F32, &dev)?,
            );
        }
    }
    for n in norms {
        w.insert(format!("{n}.weight"), ones.clone());
        w.insert(format!("{n}.bias"), zeros.clone());
    }
    Ok(TrainBert::from_tensors(cfg, w)?)
}

/// Pad code-token sequences into `(ids, mask)`.
pub fn batch(seqs: &[Vec<u32>]) -> Result<(Tensor, Tensor)> {
    let refs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
    crate::train::common::bert::pad_batch(&refs, PAD)
}

/// Mean-pooled, unit-norm embeddings of code sequences (differentiable).
pub fn embed(
    model: &TrainBert,
    seqs: &[Vec<u32>],
    dropout: Option<&mut ops::Dropout>,
) -> Result<Tensor> {
    let (ids, mask) = batch(seqs)?;
    model.embed(&ids, &mask, dropout)
}

/// Unit embeddings (N, H) of single codes given by input embeddings `inputs` (N, H) instead
/// of tokens: how a code outside the trained vocabulary is encoded, from its description
/// embedding — exactly what its token would have started from (see the module docs).
pub fn embed_inputs(model: &TrainBert, inputs: &Tensor) -> Result<Tensor> {
    let n = inputs.dims2()?.0;
    let mask = Tensor::ones((n, 1), DType::U32, inputs.device())?;
    let states = model.forward_embeds(&inputs.unsqueeze(1)?, &mask, None)?;
    ops::l2_normalize(&ops::mean_pool(&states, &mask)?)
}

/// Masked-language-modelling loss over `seqs`: 20% of code positions (at least one per
/// sequence of two or more codes) are chosen; of those 80% become `[MASK]`, 10% a random code,
/// 10% stay. Cross-entropy of the original code at chosen positions, logits tied to the input
/// embeddings plus `bias` (V). Returns `None` when nothing was masked.
pub fn mlm_loss(
    model: &TrainBert,
    bias: &Var,
    seqs: &[Vec<u32>],
    rate: f64,
    rng: &mut ChaCha8Rng,
    dropout: Option<&mut ops::Dropout>,
) -> Result<Option<Tensor>> {
    let vocab = model.config.inner.vocab_size as u32;
    let mut inputs = seqs.to_vec();
    let mut targets: Vec<(usize, usize, u32)> = Vec::new();
    for (i, s) in inputs.iter_mut().enumerate() {
        if s.len() < 2 {
            continue;
        }
        let mut chosen: Vec<usize> = (0..s.len()).filter(|_| rng.gen_bool(rate)).collect();
        if chosen.is_empty() {
            chosen.push(rng.gen_range(0..s.len()));
        }
        for j in chosen {
            targets.push((i, j, s[j]));
            let r: f64 = rng.gen();
            if r < 0.8 {
                s[j] = MASK;
            } else if r < 0.9 && vocab > FIRST_CODE {
                s[j] = rng.gen_range(FIRST_CODE..vocab);
            }
        }
    }
    if targets.is_empty() {
        return Ok(None);
    }
    let (ids, mask) = batch(&inputs)?;
    let states = model.forward(&ids, &mask, dropout)?; // (B, L, H)
    let (_, l, h) = states.dims3()?;
    let flat = states.reshape(((), h))?;
    let rows: Vec<u32> = targets
        .iter()
        .map(|(i, j, _)| (*i * l + *j) as u32)
        .collect();
    let picked = flat.index_select(&Tensor::from_vec(rows, targets.len(), flat.device())?, 0)?;
    let emb = model
        .params()
        .iter()
        .find(|(n, _)| n.ends_with("embeddings.word_embeddings.weight"))
        .map(|(_, v)| v.as_tensor().clone())
        .ok_or_else(|| candle_core::Error::Msg("no word embeddings".into()))?;
    let logits = picked.matmul(&emb.t()?)?.broadcast_add(bias.as_tensor())?;
    let gold: Vec<u32> = targets.iter().map(|t| t.2).collect();
    Ok(Some(cross_entropy(&logits, &gold)?))
}

/// Mean cross-entropy of `logits` (N, C) against class indices `gold` (N), differentiable
/// (log-softmax from elementary ops; the row max is detached, which changes nothing).
pub fn cross_entropy(logits: &Tensor, gold: &[u32]) -> Result<Tensor> {
    let max = logits.max_keepdim(D::Minus1)?.detach();
    let shifted = logits.broadcast_sub(&max)?;
    let lse = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    let logp = shifted.broadcast_sub(&lse)?;
    let idx = Tensor::from_vec(gold.to_vec(), (gold.len(), 1), logits.device())?;
    let picked = logp.gather(&idx, 1)?;
    picked.mean_all()?.neg()
}

/// Write a word-level `tokenizer.json` for the vocabulary (`[PAD]`, `[UNK]`, `[MASK]`, then
/// `tokens`), splitting on whitespace, no normaliser, no special tokens added.
pub fn write_tokenizer(path: &Path, tokens: &[String]) -> anyhow::Result<()> {
    use tokenizers::models::wordlevel::WordLevel;
    use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
    let mut vocab: HashMap<String, u32> = HashMap::new();
    for (i, s) in ["[PAD]", "[UNK]", "[MASK]"].iter().enumerate() {
        vocab.insert(s.to_string(), i as u32);
    }
    for (i, t) in tokens.iter().enumerate() {
        vocab.insert(t.clone(), FIRST_CODE + i as u32);
    }
    let wl = WordLevel::builder()
        .vocab(vocab.into_iter().collect())
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| anyhow::anyhow!("word-level vocabulary: {e}"))?;
    let mut tok = tokenizers::Tokenizer::new(wl);
    tok.with_pre_tokenizer(Some(WhitespaceSplit));
    tok.save(path, false)
        .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn unit(seed: u64, h: usize) -> Vec<f32> {
        let mut r = ChaCha8Rng::seed_from_u64(seed);
        let mut v: Vec<f32> = (0..h).map(|_| r.gen_range(-1.0..1.0)).collect();
        crate::encoder::pooling::l2_normalize(&mut v);
        v
    }

    #[test]
    fn single_code_starts_near_its_description() {
        let h = 32;
        let desc: Vec<Vec<f32>> = (0..5).map(|i| unit(i, h)).collect();
        let m = init(&desc, h, 2, 4, 16, 1).unwrap();
        let e = embed(&m, &[vec![FIRST_CODE + 3]], None).unwrap();
        let v: Vec<f32> = e.flatten_all().unwrap().to_vec1().unwrap();
        let d = &desc[3];
        let mean = d.iter().sum::<f32>() / h as f32;
        let mut c: Vec<f32> = d.iter().map(|x| x - mean).collect();
        crate::encoder::pooling::l2_normalize(&mut c);
        let cos: f32 = v.iter().zip(&c).map(|(a, b)| a * b).sum();
        assert!(cos > 0.9, "cos {cos}");
    }

    #[test]
    fn a_code_from_its_input_embedding_equals_its_token() {
        let h = 32;
        let desc: Vec<Vec<f32>> = (0..5).map(|i| unit(i, h)).collect();
        let m = init(&desc, h, 2, 4, 16, 1).unwrap();
        let by_token = embed(&m, &[vec![FIRST_CODE + 2]], None).unwrap();
        let word = m
            .tensors()
            .into_iter()
            .find(|(k, _)| k.ends_with("embeddings.word_embeddings.weight"))
            .unwrap()
            .1;
        let row = word.narrow(0, FIRST_CODE as usize + 2, 1).unwrap();
        let by_input = embed_inputs(&m, &row).unwrap();
        let diff: f32 = (by_token - by_input)
            .unwrap()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn mlm_loss_has_gradients_for_embeddings_and_bias() {
        let h = 16;
        let desc: Vec<Vec<f32>> = (0..6).map(|i| unit(i, h)).collect();
        let m = init(&desc, h, 1, 2, 16, 2).unwrap();
        let bias = Var::zeros(desc.len() + 3, DType::F32, &Device::Cpu).unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let seqs = vec![vec![3, 4, 5, 6], vec![7, 8]];
        let l = mlm_loss(&m, &bias, &seqs, 0.2, &mut rng, None)
            .unwrap()
            .unwrap();
        let g = l.backward().unwrap();
        assert!(g.get(bias.as_tensor()).is_some());
        let missing: Vec<&String> = m
            .params()
            .iter()
            .filter(|(_, v)| g.get(v.as_tensor()).is_none())
            .map(|(n, _)| n)
            .filter(|n| !n.contains("token_type"))
            .collect();
        assert!(missing.is_empty(), "no gradient for {missing:?}");
    }

    #[test]
    fn tokenizer_round_trips_code_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("tokenizer.json");
        write_tokenizer(&p, &["ICD10CM:E11.9".into(), "ICD10CM:I10".into()]).unwrap();
        let t = tokenizers::Tokenizer::from_file(&p).unwrap();
        let e = t.encode("ICD10CM:I10 ICD10CM:E11.9 X:1", true).unwrap();
        assert_eq!(e.get_ids(), &[4, 3, UNK]);
    }
}
