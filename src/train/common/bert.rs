//! A BERT encoder written for training: the same computation as `candle_transformers`'
//! `BertModel` (HF layout, post-LayerNorm, GELU-erf), but with differentiable LayerNorm and
//! softmax ([`crate::train::common::ops`]) and real, seeded dropout.
//!
//! Parameters are candle [`Var`]s named exactly as in the HF checkpoint they came from
//! (`embeddings.word_embeddings.weight`, `encoder.layer.0.attention.self.query.weight`, ... with
//! whatever prefix, e.g. `bert.`, the base used), so the trained `model.safetensors` loads back
//! into `BertModel` and into the server unchanged. Tensors the encoder does not use (a pooler,
//! `position_ids`) are carried through untouched.

use crate::train::common::ops::{self, Dropout};
use candle_core::{DType, Device, Result, Tensor, Var, D};
use candle_transformers::models::bert::{Config, HiddenAct};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::Path;

/// BERT hyper-parameters: candle's [`Config`] plus the attention dropout it does not read.
#[derive(Debug, Clone)]
pub struct BertConfig {
    /// The HF config as candle parses it.
    pub inner: Config,
    /// `attention_probs_dropout_prob` from config.json (default 0.1).
    pub attention_dropout: f32,
}

impl BertConfig {
    /// Parse an HF `config.json` text.
    pub fn from_json(text: &str) -> anyhow::Result<Self> {
        let inner: Config = serde_json::from_str(text)?;
        let v: serde_json::Value = serde_json::from_str(text)?;
        let attention_dropout = v
            .get("attention_probs_dropout_prob")
            .and_then(|x| x.as_f64())
            .unwrap_or(0.1) as f32;
        Ok(Self {
            inner,
            attention_dropout,
        })
    }

    /// A tiny configuration for tests: `layers` layers of width `hidden`, `heads` heads.
    pub fn tiny(vocab: usize, hidden: usize, layers: usize, heads: usize) -> Self {
        let inner = Config {
            vocab_size: vocab,
            hidden_size: hidden,
            num_hidden_layers: layers,
            num_attention_heads: heads,
            intermediate_size: hidden * 4,
            hidden_act: HiddenAct::Gelu,
            hidden_dropout_prob: 0.1,
            max_position_embeddings: 64,
            type_vocab_size: 2,
            initializer_range: 0.02,
            layer_norm_eps: 1e-12,
            pad_token_id: 0,
            classifier_dropout: None,
            model_type: Some("bert".into()),
            ..Config::default()
        };
        Self {
            inner,
            attention_dropout: 0.1,
        }
    }

    /// The config.json text for this configuration (HF field names).
    pub fn to_json(&self) -> String {
        let c = &self.inner;
        serde_json::json!({
            "architectures": ["BertModel"],
            "model_type": "bert",
            "vocab_size": c.vocab_size,
            "hidden_size": c.hidden_size,
            "num_hidden_layers": c.num_hidden_layers,
            "num_attention_heads": c.num_attention_heads,
            "intermediate_size": c.intermediate_size,
            "hidden_act": match c.hidden_act { HiddenAct::Gelu => "gelu", HiddenAct::GeluApproximate => "gelu_new", HiddenAct::Relu => "relu" },
            "hidden_dropout_prob": c.hidden_dropout_prob,
            "attention_probs_dropout_prob": self.attention_dropout,
            "max_position_embeddings": c.max_position_embeddings,
            "type_vocab_size": c.type_vocab_size,
            "initializer_range": c.initializer_range,
            "layer_norm_eps": c.layer_norm_eps,
            "pad_token_id": c.pad_token_id,
            "position_embedding_type": "absolute",
        })
        .to_string()
    }
}

/// Random weights in the HF layout (no prefix) for a configuration, drawn from a seeded ChaCha
/// stream: linear and embedding weights ~ U(-0.1, 0.1), LayerNorm weights ~ 1 ± 0.1, biases
/// ~ U(-0.05, 0.05). For tests and benchmarks that must not need a downloaded model.
pub fn random_weights(cfg: &BertConfig, seed: u64) -> Result<HashMap<String, Tensor>> {
    let c = &cfg.inner;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = HashMap::new();
    let mut put = |name: String, shape: &[usize], centre: f32, spread: f32| -> Result<()> {
        let n: usize = shape.iter().product();
        let v: Vec<f32> = (0..n)
            .map(|_| centre + rng.gen_range(-spread..spread))
            .collect();
        out.insert(name, Tensor::from_vec(v, shape, &Device::Cpu)?);
        Ok(())
    };
    let (h, i) = (c.hidden_size, c.intermediate_size);
    put(
        "embeddings.word_embeddings.weight".into(),
        &[c.vocab_size, h],
        0.0,
        0.1,
    )?;
    put(
        "embeddings.position_embeddings.weight".into(),
        &[c.max_position_embeddings, h],
        0.0,
        0.1,
    )?;
    put(
        "embeddings.token_type_embeddings.weight".into(),
        &[c.type_vocab_size, h],
        0.0,
        0.1,
    )?;
    put("embeddings.LayerNorm.weight".into(), &[h], 1.0, 0.1)?;
    put("embeddings.LayerNorm.bias".into(), &[h], 0.0, 0.05)?;
    for l in 0..c.num_hidden_layers {
        let p = format!("encoder.layer.{l}.");
        for (name, o, inp) in [
            ("attention.self.query", h, h),
            ("attention.self.key", h, h),
            ("attention.self.value", h, h),
            ("attention.output.dense", h, h),
            ("intermediate.dense", i, h),
            ("output.dense", h, i),
        ] {
            put(format!("{p}{name}.weight"), &[o, inp], 0.0, 0.1)?;
            put(format!("{p}{name}.bias"), &[o], 0.0, 0.05)?;
        }
        for name in ["attention.output.LayerNorm", "output.LayerNorm"] {
            put(format!("{p}{name}.weight"), &[h], 1.0, 0.1)?;
            put(format!("{p}{name}.bias"), &[h], 0.0, 0.05)?;
        }
    }
    Ok(out)
}

struct Lin {
    w: Tensor,
    b: Tensor,
}

impl Lin {
    /// `x` (N, in) → (N, out).
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        x.matmul(&self.w.t()?)?.broadcast_add(&self.b)
    }
}

struct Norm {
    w: Tensor,
    b: Tensor,
}

struct Layer {
    q: Lin,
    k: Lin,
    v: Lin,
    attn_out: Lin,
    attn_norm: Norm,
    inter: Lin,
    out: Lin,
    out_norm: Norm,
}

/// The trainable encoder. See the module docs.
pub struct TrainBert {
    /// Hyper-parameters.
    pub config: BertConfig,
    prefix: String,
    params: Vec<(String, Var)>,
    passthrough: Vec<(String, Tensor)>,
    word: Tensor,
    position: Tensor,
    token_type: Tensor,
    emb_norm: Norm,
    layers: Vec<Layer>,
}

impl TrainBert {
    /// Build from a map of tensors in the HF layout (optionally all under one prefix such as
    /// `bert.`). Every encoder tensor becomes a trainable [`Var`]; other tensors are kept as-is.
    pub fn from_tensors(config: BertConfig, tensors: HashMap<String, Tensor>) -> Result<Self> {
        let prefix = ["", "bert.", "model."]
            .into_iter()
            .find(|p| tensors.contains_key(&format!("{p}embeddings.word_embeddings.weight")))
            .ok_or_else(|| {
                candle_core::Error::Msg(
                    "no embeddings.word_embeddings.weight in the checkpoint".into(),
                )
            })?
            .to_string();
        let trainable = |name: &str| {
            name.strip_prefix(prefix.as_str()).is_some_and(|rest| {
                (rest.starts_with("embeddings.") && !rest.ends_with("position_ids"))
                    || rest.starts_with("encoder.layer.")
            })
        };
        let mut params = Vec::new();
        let mut passthrough = Vec::new();
        let mut names: Vec<&String> = tensors.keys().collect();
        names.sort();
        for name in names {
            let t = &tensors[name];
            if trainable(name) {
                // F64 is kept (gradient checks); anything else trains in F32.
                let dt = if t.dtype() == DType::F64 {
                    DType::F64
                } else {
                    DType::F32
                };
                let t = t.to_dtype(dt)?.contiguous()?;
                params.push((name.clone(), Var::from_tensor(&t)?));
            } else {
                passthrough.push((name.clone(), t.clone()));
            }
        }
        let get = |n: &str| -> Result<Tensor> {
            let full = format!("{prefix}{n}");
            params
                .iter()
                .find(|(k, _)| *k == full)
                .map(|(_, v)| v.as_tensor().clone())
                .ok_or_else(|| candle_core::Error::Msg(format!("missing tensor {full}")))
        };
        let lin = |n: &str| -> Result<Lin> {
            Ok(Lin {
                w: get(&format!("{n}.weight"))?,
                b: get(&format!("{n}.bias"))?,
            })
        };
        let norm = |n: &str| -> Result<Norm> {
            Ok(Norm {
                w: get(&format!("{n}.weight"))?,
                b: get(&format!("{n}.bias"))?,
            })
        };
        let mut layers = Vec::new();
        for l in 0..config.inner.num_hidden_layers {
            let p = format!("encoder.layer.{l}.");
            layers.push(Layer {
                q: lin(&format!("{p}attention.self.query"))?,
                k: lin(&format!("{p}attention.self.key"))?,
                v: lin(&format!("{p}attention.self.value"))?,
                attn_out: lin(&format!("{p}attention.output.dense"))?,
                attn_norm: norm(&format!("{p}attention.output.LayerNorm"))?,
                inter: lin(&format!("{p}intermediate.dense"))?,
                out: lin(&format!("{p}output.dense"))?,
                out_norm: norm(&format!("{p}output.LayerNorm"))?,
            });
        }
        Ok(Self {
            word: get("embeddings.word_embeddings.weight")?,
            position: get("embeddings.position_embeddings.weight")?,
            token_type: get("embeddings.token_type_embeddings.weight")?,
            emb_norm: norm("embeddings.LayerNorm")?,
            layers,
            config,
            prefix,
            params,
            passthrough,
        })
    }

    /// Load `config.json` and `model.safetensors` from an HF model folder.
    pub fn load_dir(dir: &Path) -> anyhow::Result<Self> {
        let config = BertConfig::from_json(&std::fs::read_to_string(dir.join("config.json"))?)?;
        let tensors = candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu)?;
        Ok(Self::from_tensors(config, tensors)?)
    }

    /// The trainable parameters, by full checkpoint name, in name order.
    pub fn params(&self) -> &[(String, Var)] {
        &self.params
    }

    /// Position in [`Self::params`] of the word-embedding table.
    pub fn word_param(&self) -> usize {
        let name = format!("{}embeddings.word_embeddings.weight", self.prefix);
        self.params
            .iter()
            .position(|(k, _)| *k == name)
            .expect("from_tensors checked the word embeddings exist")
    }

    /// Word embeddings (B, L, H) of `ids` (B, L) looked up *outside* the autograd graph. Make
    /// the result a [`Var`] and pass it to [`Self::embed_words`]: its gradient is then the
    /// table's gradient as rows (one per token), instead of a dense table-sized tensor per call
    /// (30k × 384 floats for MiniLM, allocated and zeroed twice by candle's `index_select`
    /// backward — 8% of a training step under perf).
    pub fn lookup_words(&self, ids: &Tensor) -> Result<Tensor> {
        self.rows_of(&self.word.detach(), ids)
    }

    /// Rows of `table` for `ids` (B, L), shaped (B, L, H).
    fn rows_of(&self, table: &Tensor, ids: &Tensor) -> Result<Tensor> {
        let (b, l) = ids.dims2()?;
        table
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, l, self.config.inner.hidden_size))
    }

    /// Mean-pooled, L2-normalised sentence embeddings (B, H) from word embeddings (B, L, H).
    pub fn embed_words(
        &self,
        words: &Tensor,
        mask: &Tensor,
        dropout: Option<&mut Dropout>,
    ) -> Result<Tensor> {
        let states = self.forward_embeds(words, mask, dropout)?;
        ops::l2_normalize(&ops::mean_pool(&states, mask)?)
    }

    /// Name prefix the base checkpoint used (`""` or `"bert."`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// All tensors (trained and passed through) under their checkpoint names.
    pub fn tensors(&self) -> HashMap<String, Tensor> {
        let mut out: HashMap<String, Tensor> = self
            .passthrough
            .iter()
            .map(|(k, t)| (k.clone(), t.clone()))
            .collect();
        for (k, v) in &self.params {
            out.insert(k.clone(), v.as_tensor().clone());
        }
        out
    }

    /// WiSE-FT weight interpolation (Wortsman et al. 2022, arXiv 2109.01903): every trainable
    /// parameter becomes `base + alpha × (self − base)`, `base` being the model this one was
    /// fine-tuned from (same names and shapes). `alpha` 1 leaves the weights as they are.
    pub fn interpolate_toward(&self, base: &TrainBert, alpha: f64) -> anyhow::Result<()> {
        let base_params: HashMap<&str, &Var> =
            base.params.iter().map(|(k, v)| (k.as_str(), v)).collect();
        for (name, v) in &self.params {
            let b = base_params
                .get(name.as_str())
                .ok_or_else(|| anyhow::anyhow!("the base model has no parameter {name}"))?;
            anyhow::ensure!(
                b.dims() == v.dims(),
                "parameter {name}: base shape {:?}, trained {:?}",
                b.dims(),
                v.dims()
            );
            let moved = (b.as_tensor() + ((v.as_tensor() - b.as_tensor())? * alpha)?)?;
            v.set(&moved)?;
        }
        Ok(())
    }

    /// Write every tensor to `path` as safetensors, names unchanged.
    pub fn save(&self, path: &Path) -> Result<()> {
        candle_core::safetensors::save(&self.tensors(), path)
    }

    fn norm(&self, x: &Tensor, n: &Norm) -> Result<Tensor> {
        ops::layer_norm(x, &n.w, &n.b, self.config.inner.layer_norm_eps)
    }

    /// Token states (B, L, H) for `ids` (B, L, u32) with right padding and `mask` (B, L) of
    /// 0/1. Token types are all 0 (single sentences). Pass `dropout` to train, `None` to
    /// evaluate (then this equals `BertModel::forward`).
    pub fn forward(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        dropout: Option<&mut Dropout>,
    ) -> Result<Tensor> {
        self.forward_embeds(&self.rows_of(&self.word, ids)?, mask, dropout)
    }

    /// [`Self::forward`] from input embeddings (B, L, H) instead of token ids (position and
    /// token-type embeddings are still added).
    pub fn forward_embeds(
        &self,
        words: &Tensor,
        mask: &Tensor,
        mut dropout: Option<&mut Dropout>,
    ) -> Result<Tensor> {
        let (b, l, _) = words.dims3()?;
        let x = self.embeddings(words)?;
        let x = match dropout.as_deref_mut() {
            Some(d) => d.hidden(&x)?,
            None => x,
        };
        self.run_layers(x, (b, l), mask, 0..self.layers.len(), dropout)
    }

    /// Token states (B, L, H) after the embeddings and the first `n` layers, no dropout: what
    /// [`Self::forward_from`] continues from (the frozen lower part of a partly tuned encoder).
    pub fn states_after(&self, ids: &Tensor, mask: &Tensor, n: usize) -> Result<Tensor> {
        let words = self.rows_of(&self.word, ids)?;
        let (b, l, _) = words.dims3()?;
        let x = self.embeddings(&words)?;
        self.run_layers(x, (b, l), mask, 0..n.min(self.layers.len()), None)
    }

    /// Layers `from..` over token states `x` (B, L, H) (e.g. from [`Self::states_after`]):
    /// `forward_from(states_after(ids, mask, n), mask, n, d)` equals `forward(ids, mask, d)`
    /// without dropout.
    pub fn forward_from(
        &self,
        x: &Tensor,
        mask: &Tensor,
        from: usize,
        dropout: Option<&mut Dropout>,
    ) -> Result<Tensor> {
        let (b, l, h) = x.dims3()?;
        let n = self.layers.len();
        self.run_layers(
            x.reshape((b * l, h))?,
            (b, l),
            mask,
            from.min(n)..n,
            dropout,
        )
    }

    /// Names of the parameters of layers `from..` (what a partly tuned encoder trains).
    pub fn layer_params_from(&self, from: usize) -> Vec<(String, Var)> {
        let n = self.layers.len();
        let mine = |name: &str| {
            (from..n).any(|l| {
                name.strip_prefix(self.prefix.as_str())
                    .is_some_and(|r| r.starts_with(&format!("encoder.layer.{l}.")))
            })
        };
        self.params
            .iter()
            .filter(|(k, _)| mine(k))
            .cloned()
            .collect()
    }

    /// Word embeddings (B, L, H) plus position and token-type embeddings, normalised; flat
    /// (B·L, H).
    fn embeddings(&self, words: &Tensor) -> Result<Tensor> {
        let (b, l, h) = words.dims3()?;
        let pos = self.position.narrow(0, 0, l)?;
        let tt = self.token_type.narrow(0, 0, 1)?;
        let x = words.broadcast_add(&pos)?.broadcast_add(&tt)?;
        self.norm(&x, &self.emb_norm)?.reshape((b * l, h))
    }

    /// Layers `range` over flat token states `x` (B·L, H); returns (B, L, H).
    fn run_layers(
        &self,
        mut x: Tensor,
        (b, l): (usize, usize),
        mask: &Tensor,
        range: std::ops::Range<usize>,
        mut dropout: Option<&mut Dropout>,
    ) -> Result<Tensor> {
        let c = &self.config.inner;
        let h = c.hidden_size;
        let heads = c.num_attention_heads;
        let hd = h / heads;
        let ext = ops::additive_mask(mask, x.dtype())?;
        let scale = 1.0 / (hd as f64).sqrt();
        for layer in &self.layers[range] {
            let split = |t: Tensor| -> Result<Tensor> {
                t.reshape((b, l, heads, hd))?.transpose(1, 2)?.contiguous()
            };
            let q = split(layer.q.forward(&x)?)?;
            let k = split(layer.k.forward(&x)?)?;
            let v = split(layer.v.forward(&x)?)?;
            let scores = (q.matmul(&k.t()?)? * scale)?.broadcast_add(&ext)?;
            let mut probs = ops::softmax_last_dim(&scores)?;
            if let Some(d) = dropout.as_deref_mut() {
                probs = d.attention(&probs)?;
            }
            let ctx = probs
                .matmul(&v)?
                .transpose(1, 2)?
                .contiguous()?
                .reshape((b * l, h))?;
            let mut a = layer.attn_out.forward(&ctx)?;
            if let Some(d) = dropout.as_deref_mut() {
                a = d.hidden(&a)?;
            }
            let a = self.norm(&(a + &x)?, &layer.attn_norm)?;
            let i = layer.inter.forward(&a)?;
            let i = match c.hidden_act {
                HiddenAct::Gelu => ops::gelu_erf(&i)?,
                HiddenAct::GeluApproximate => i.gelu()?,
                HiddenAct::Relu => i.relu()?,
            };
            let mut o = layer.out.forward(&i)?;
            if let Some(d) = dropout.as_deref_mut() {
                o = d.hidden(&o)?;
            }
            x = self.norm(&(o + a)?, &layer.out_norm)?;
        }
        x.reshape((b, l, h))
    }

    /// Mean-pooled, L2-normalised sentence embeddings (B, H).
    pub fn embed(
        &self,
        ids: &Tensor,
        mask: &Tensor,
        dropout: Option<&mut Dropout>,
    ) -> Result<Tensor> {
        self.embed_words(&self.rows_of(&self.word, ids)?, mask, dropout)
    }
}

/// Right-pad token id lists into `(ids, mask)` tensors of shape (B, longest).
pub fn pad_batch(seqs: &[&[u32]], pad_id: u32) -> Result<(Tensor, Tensor)> {
    let l = seqs.iter().map(|s| s.len()).max().unwrap_or(1).max(1);
    let mut ids = Vec::with_capacity(seqs.len() * l);
    let mut mask = Vec::with_capacity(seqs.len() * l);
    for s in seqs {
        ids.extend_from_slice(s);
        mask.extend(std::iter::repeat_n(1u32, s.len()));
        ids.extend(std::iter::repeat_n(pad_id, l - s.len()));
        mask.extend(std::iter::repeat_n(0u32, l - s.len()));
    }
    let dev = Device::Cpu;
    Ok((
        Tensor::from_vec(ids, (seqs.len(), l), &dev)?,
        Tensor::from_vec(mask, (seqs.len(), l), &dev)?,
    ))
}

/// Sentence embeddings for many token sequences at once, differentiable end to end: sequences
/// are sorted by length and run in chunks of at most `chunk` (so padding stays small — worth
/// about 2× on short terms), then put back in input order with one `index_select`.
pub fn embed_sequences(
    model: &TrainBert,
    seqs: &[Vec<u32>],
    chunk: usize,
    mut dropout: Option<&mut Dropout>,
) -> Result<Tensor> {
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    order.sort_by_key(|&i| (seqs[i].len(), i));
    let mut parts = Vec::new();
    for group in order.chunks(chunk.max(1)) {
        let refs: Vec<&[u32]> = group.iter().map(|&i| seqs[i].as_slice()).collect();
        let (ids, mask) = pad_batch(&refs, model.config.inner.pad_token_id as u32)?;
        parts.push(model.embed(&ids, &mask, dropout.as_deref_mut())?);
    }
    let sorted = Tensor::cat(&parts, 0)?;
    let mut inverse = vec![0u32; seqs.len()];
    for (pos, &i) in order.iter().enumerate() {
        inverse[i] = pos as u32;
    }
    let inverse = Tensor::from_vec(inverse, seqs.len(), &Device::Cpu)?;
    sorted.index_select(&inverse, 0)
}

/// Cosine similarity of each row of `a` with the same row of `b` (both already unit length).
pub fn rowwise_cosine(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    (a * b)?.sum(D::Minus1)
}

#[cfg(test)]
#[path = "bert_tests.rs"]
mod tests;
