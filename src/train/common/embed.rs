//! Tokenisation and batched inference for training and evaluation.
//!
//! The all-MiniLM `tokenizer.json` pads every input to 128 tokens; we turn padding off and
//! pad per length-sorted chunk ourselves ([`crate::train::common::bert::embed_sequences`]), and truncate to the
//! training `max_len`. Evaluation runs candle's `BertModel` (fused kernels, no autograd graph)
//! on the current weights: the same computation as the trainer's forward, proven equal in tests,
//! and what the server will run.

use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::BertModel;
use std::path::Path;
use tokenizers::{Tokenizer, TruncationParams};

/// A tokenizer that returns unpadded id sequences truncated to `max_len` tokens.
pub struct TermTokenizer {
    inner: Tokenizer,
}

impl TermTokenizer {
    /// Load `tokenizer.json` and set truncation to `max_len`, padding off.
    pub fn load(path: &Path, max_len: usize) -> anyhow::Result<Self> {
        let inner =
            Tokenizer::from_file(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        Self::from_tokenizer(inner, max_len)
    }

    /// Wrap an existing tokenizer (tests build one in memory).
    pub fn from_tokenizer(mut inner: Tokenizer, max_len: usize) -> anyhow::Result<Self> {
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| anyhow::anyhow!("truncation: {e}"))?;
        Ok(Self { inner })
    }

    /// Token ids (with special tokens) of each text.
    pub fn encode(&self, texts: &[String]) -> anyhow::Result<Vec<Vec<u32>>> {
        let enc = self
            .inner
            .encode_batch(texts.to_vec(), true)
            .map_err(|e| anyhow::anyhow!("tokenize: {e}"))?;
        Ok(enc.into_iter().map(|e| e.get_ids().to_vec()).collect())
    }
}

/// An inference-only encoder: `BertModel` + mean pooling + L2 normalisation.
pub struct InferenceEncoder {
    model: BertModel,
    pad_id: u32,
    /// Sequences per forward call.
    pub batch: usize,
    /// Batches run at once on this many threads (set it with single-threaded kernels, see
    /// [`crate::train::common::parallel`]).
    pub workers: usize,
}

impl InferenceEncoder {
    /// Build from tensors in the HF layout (e.g. [`crate::train::common::bert::TrainBert::tensors`]).
    pub fn from_tensors(
        config: &crate::train::common::bert::BertConfig,
        tensors: std::collections::HashMap<String, Tensor>,
    ) -> anyhow::Result<Self> {
        let tensors = tensors
            .into_iter()
            .map(|(k, t)| {
                Ok((
                    k,
                    if t.dtype() == DType::F32 {
                        t.detach()
                    } else {
                        t
                    },
                ))
            })
            .collect::<candle_core::Result<_>>()?;
        let vb = candle_nn::VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
        Ok(Self {
            model: BertModel::load(vb, &config.inner)?,
            pad_id: config.inner.pad_token_id as u32,
            batch: 64,
            workers: 1,
        })
    }

    /// Embed token sequences: sorted by length, batched, returned in input order.
    pub fn embed_ids(&self, seqs: &[Vec<u32>]) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut order: Vec<usize> = (0..seqs.len()).collect();
        order.sort_by_key(|&i| seqs[i].len());
        let groups: Vec<&[usize]> = order.chunks(self.batch.max(1)).collect();
        let longest_first: Vec<usize> = (0..groups.len()).rev().collect();
        let rows = crate::train::common::parallel::map_items(
            groups.len(),
            &longest_first,
            self.workers,
            |g| {
                let refs: Vec<&[u32]> = groups[g].iter().map(|&i| seqs[i].as_slice()).collect();
                let (ids, mask) = crate::train::common::bert::pad_batch(&refs, self.pad_id)?;
                let states = self.model.forward(&ids, &ids.zeros_like()?, Some(&mask))?;
                crate::train::common::ops::l2_normalize(&crate::train::common::ops::mean_pool(
                    &states, &mask,
                )?)?
                .to_vec2::<f32>()
            },
        )?;
        let mut out = vec![Vec::new(); seqs.len()];
        for (group, rows) in groups.iter().zip(rows) {
            for (&i, r) in group.iter().zip(rows) {
                out[i] = r;
            }
        }
        Ok(out)
    }

    /// Tokenise and embed texts.
    pub fn embed_texts(
        &self,
        tok: &TermTokenizer,
        texts: &[String],
    ) -> anyhow::Result<Vec<Vec<f32>>> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(4096) {
            out.extend(self.embed_ids(&tok.encode(chunk)?)?);
        }
        Ok(out)
    }
}
