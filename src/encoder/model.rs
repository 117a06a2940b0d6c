//! The BERT encoder forward pass for inference, written for CPU speed.
//!
//! Same maths and same Hugging Face tensor names as `candle_transformers::models::bert::BertModel`
//! (a test checks the two agree to 1e-5), laid out for a CPU:
//! * sequences are **packed, not padded**: the token rows of every text in a batch are stacked
//!   (`[Σ len, hidden]`), every linear layer runs once over all real tokens, and attention runs
//!   per text over its own rows ([`ops::attention`]), so padding costs nothing and no mask is
//!   needed;
//! * every linear weight is packed once at load into the panels of [`gemm::PackedLinear`] (own
//!   AVX-512 kernel; the `gemm` crate on CPUs without AVX-512), with the bias, residual add and
//!   GELU fused into the product's epilogue;
//! * Q, K and V are one fused `[hidden, 3·hidden]` product;
//! * the products can run in BF16 ([`Precision`]; weights packed once to BF16 pairs, inputs
//!   rounded per call, F32 accumulation), while embeddings, LayerNorm, attention, GELU and the
//!   residual stream stay F32.
//!
//! Inference only: no dropout, no gradients. Weights are loaded through candle tensors but the
//! forward works on plain `f32` buffers.

use super::gemm::{Epilogue, PackedLinear};
use super::ops;
use super::precision::Precision;
use candle_core::{DType, Result, Tensor};
use candle_transformers::models::bert::{Config, HiddenAct};
use std::collections::HashMap;

struct LayerNorm {
    w: Vec<f32>,
    b: Vec<f32>,
    eps: f32,
}

impl LayerNorm {
    fn forward(&self, x: &mut [f32]) {
        ops::layer_norm(x, &self.w, &self.b, self.eps);
    }
}

struct Layer {
    qkv: PackedLinear,
    attn_out: PackedLinear,
    attn_norm: LayerNorm,
    ffn_in: PackedLinear,
    ffn_out: PackedLinear,
    ffn_norm: LayerNorm,
}

/// BERT embeddings + encoder stack (no pooler), ready for inference.
pub struct Bert {
    word: Vec<f32>,
    vocab: usize,
    position: Vec<f32>,
    max_positions: usize,
    token_type0: Vec<f32>,
    emb_norm: LayerNorm,
    layers: Vec<Layer>,
    heads: usize,
    hidden: usize,
    intermediate: usize,
    act: HiddenAct,
    precision: Precision,
}

/// Reads tensors by Hugging Face name from a map (names without a `bert.` prefix).
struct Weights<'a> {
    map: &'a HashMap<String, Tensor>,
    precision: Precision,
}

impl Weights<'_> {
    fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let t = self
            .map
            .get(name)
            .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {name}")))?;
        if t.dims() != shape {
            candle_core::bail!("tensor {name} has shape {:?}, expected {shape:?}", t.dims());
        }
        t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()
    }

    /// Weight `[out, in]` and bias `[out]` of one or more linear layers sharing an input,
    /// concatenated along the outputs.
    fn linear(&self, prefixes: &[String], inp: usize, out: usize) -> Result<PackedLinear> {
        let mut w = Vec::with_capacity(prefixes.len() * out * inp);
        let mut b = Vec::with_capacity(prefixes.len() * out);
        for p in prefixes {
            w.extend(self.get(&format!("{p}.weight"), &[out, inp])?);
            b.extend(self.get(&format!("{p}.bias"), &[out])?);
        }
        Ok(PackedLinear::with_precision(
            &w,
            &b,
            prefixes.len() * out,
            inp,
            self.precision,
        ))
    }

    fn norm(&self, prefix: &str, h: usize, eps: f64) -> Result<LayerNorm> {
        Ok(LayerNorm {
            w: self.get(&format!("{prefix}.weight"), &[h])?,
            b: self.get(&format!("{prefix}.bias"), &[h])?,
            eps: eps as f32,
        })
    }
}

impl Bert {
    /// Builds the model from Hugging Face tensors (`embeddings.*`, `encoder.layer.N.*`), F32.
    pub fn load(map: &HashMap<String, Tensor>, cfg: &Config) -> Result<Self> {
        Self::load_with(map, cfg, Precision::F32)
    }

    /// As [`Bert::load`], with the linear layers in `precision` where the CPU runs it (F32
    /// otherwise; [`Bert::precision`] tells which).
    pub fn load_with(
        map: &HashMap<String, Tensor>,
        cfg: &Config,
        precision: Precision,
    ) -> Result<Self> {
        let w = Weights { map, precision };
        let h = cfg.hidden_size;
        let i = cfg.intermediate_size;
        let eps = cfg.layer_norm_eps;
        let mut layers = Vec::with_capacity(cfg.num_hidden_layers);
        for l in 0..cfg.num_hidden_layers {
            let p = format!("encoder.layer.{l}");
            let one = |name: &str| vec![format!("{p}.{name}")];
            let qkv = ["query", "key", "value"].map(|n| format!("{p}.attention.self.{n}"));
            layers.push(Layer {
                qkv: w.linear(&qkv, h, h)?,
                attn_out: w.linear(&one("attention.output.dense"), h, h)?,
                attn_norm: w.norm(&format!("{p}.attention.output.LayerNorm"), h, eps)?,
                ffn_in: w.linear(&one("intermediate.dense"), h, i)?,
                ffn_out: w.linear(&one("output.dense"), i, h)?,
                ffn_norm: w.norm(&format!("{p}.output.LayerNorm"), h, eps)?,
            });
        }
        let tt = w.get(
            "embeddings.token_type_embeddings.weight",
            &[cfg.type_vocab_size, h],
        )?;
        let precision = layers
            .first()
            .map_or(Precision::F32, |l: &Layer| l.qkv.precision());
        Ok(Bert {
            precision,
            word: w.get("embeddings.word_embeddings.weight", &[cfg.vocab_size, h])?,
            vocab: cfg.vocab_size,
            position: w.get(
                "embeddings.position_embeddings.weight",
                &[cfg.max_position_embeddings, h],
            )?,
            max_positions: cfg.max_position_embeddings,
            token_type0: tt[..h].to_vec(),
            emb_norm: w.norm("embeddings.LayerNorm", h, eps)?,
            layers,
            heads: cfg.num_attention_heads,
            hidden: h,
            intermediate: i,
            act: cfg.hidden_act,
        })
    }

    /// The number format the linear layers run in.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Last hidden states of a batch of token-id sequences (all-zero token types), packed:
    /// returns `([Σ len, hidden] row-major, offsets)` where sequence `i` owns rows
    /// `offsets[i]..offsets[i+1]`. Sequences may have any lengths (no padding is computed);
    /// each must be non-empty and no longer than the model's position table.
    pub fn forward<T: AsRef<[u32]>>(&self, seqs: &[T]) -> Result<(Vec<f32>, Vec<usize>)> {
        let h = self.hidden;
        let mut offsets = Vec::with_capacity(seqs.len() + 1);
        offsets.push(0);
        for s in seqs {
            let s = s.as_ref();
            if s.is_empty() || s.len() > self.max_positions {
                candle_core::bail!(
                    "sequence length {} outside 1..={}",
                    s.len(),
                    self.max_positions
                );
            }
            if let Some(&bad) = s.iter().find(|&&id| id as usize >= self.vocab) {
                candle_core::bail!("token id {bad} outside the vocabulary ({})", self.vocab);
            }
            offsets.push(offsets.last().copied().unwrap_or(0) + s.len());
        }
        let t = offsets.last().copied().unwrap_or(0);
        let mut x = vec![0f32; t * h];
        for (s, &o) in seqs.iter().zip(&offsets) {
            for (j, &id) in s.as_ref().iter().enumerate() {
                let row = &mut x[(o + j) * h..(o + j + 1) * h];
                let word = &self.word[id as usize * h..(id as usize + 1) * h];
                let pos = &self.position[j * h..(j + 1) * h];
                for (((r, a), b), c) in row.iter_mut().zip(word).zip(pos).zip(&self.token_type0) {
                    *r = a + b + c;
                }
            }
        }
        self.emb_norm.forward(&mut x);
        let shape = ops::AttnShape {
            hidden: h,
            heads: self.heads,
        };
        let act = match self.act {
            HiddenAct::Gelu => Epilogue::GeluErf,
            HiddenAct::GeluApproximate => Epilogue::GeluTanh,
            HiddenAct::Relu => Epilogue::Relu,
        };
        let mut qkv = vec![0f32; t * 3 * h];
        let mut ctx = vec![0f32; t * h];
        let mut a = vec![0f32; t * h];
        let mut f = vec![0f32; t * self.intermediate];
        for layer in &self.layers {
            layer.qkv.forward(&x, t, Epilogue::None, &mut qkv);
            ops::attention(&qkv, &offsets, shape, &mut ctx);
            layer
                .attn_out
                .forward(&ctx, t, Epilogue::Residual(&x), &mut a);
            layer.attn_norm.forward(&mut a);
            layer.ffn_in.forward(&a, t, act, &mut f);
            layer.ffn_out.forward(&f, t, Epilogue::Residual(&a), &mut x);
            layer.ffn_norm.forward(&mut x);
        }
        Ok((x, offsets))
    }
}
