//! [`Encoder`]: a BERT-family model folder loaded for CPU inference (F32, or BF16 after the
//! parity gate of [`super::precision`]) with candle.
//!
//! Loading is tolerant of the usual checkpoint variations: tensor names with or without a
//! `bert.` prefix, old `gamma`/`beta` LayerNorm names, F16/BF16 storage (converted to F32), and
//! `config.json` files missing optional fields. A forward pass takes a batch of token-id
//! sequences, runs the model ([`super::model::Bert`], numerically the same as
//! candle_transformers' `BertModel` but much faster on CPU) on the sequences packed without
//! padding and with all-zero token types, then pools each text's rows and L2-normalises.

use super::manifest::ModelManifest;
use super::model::Bert;
use super::pooling::{l2_normalize, pool};
use super::precision::{
    gate, parity_texts, GateReport, Precision, PrecisionChoice, PrecisionPolicy,
};
use super::tokenize::TextTokenizer;
use super::EncoderError;
use candle_core::{DType, Device, Tensor};
use candle_transformers::models::bert::Config;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The weights file every model folder must have.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// A loaded model: tokenizer, BERT weights and the folder's manifest.
pub struct Encoder {
    model: Bert,
    tokenizer: TextTokenizer,
    manifest: ModelManifest,
    config: Config,
    dir: PathBuf,
    gate: Option<GateReport>,
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder")
            .field("dir", &self.dir)
            .field("manifest", &self.manifest)
            .finish_non_exhaustive()
    }
}

impl Encoder {
    /// Loads a Hugging Face BERT folder (`config.json`, `model.safetensors`, `tokenizer.json` or
    /// `vocab.txt`, optional sentence-transformers files and `ontovec.json`).
    /// The model runs in F32 (see [`Encoder::load_with`]).
    pub fn load(dir: &Path) -> Result<Self, EncoderError> {
        Self::load_with(dir, PrecisionPolicy::default())
    }

    /// As [`Encoder::load`], in the precision `policy` and the folder's manifest ask for. A
    /// reduced precision is used only where the CPU runs it and only after it passes the parity
    /// gate against F32 on the model's parity strings; otherwise the model runs in F32 and a
    /// warning says why ([`Encoder::gate`] keeps the gate's numbers).
    pub fn load_with(dir: &Path, policy: PrecisionPolicy) -> Result<Self, EncoderError> {
        let config = read_config(&dir.join("config.json"))?;
        let mut manifest =
            ModelManifest::load(dir, config.hidden_size, config.max_position_embeddings)?;
        let tokenizer = TextTokenizer::load(dir, manifest.max_len)?;
        let weights_path = dir.join(WEIGHTS_FILE);
        // the file is read once: fingerprinted (~0.1 s for MiniLM's 90 MB), then parsed
        let bytes = read_weights(&weights_path)?;
        manifest.weights_id = format!("{:016x}", crate::util::hash::fnv1a64(&bytes));
        let tensors = tensors_from_bytes(&weights_path, &bytes)?;
        drop(bytes);
        let model =
            Bert::load(&tensors, &config).map_err(|e| EncoderError::load(&weights_path, e))?;
        let choice = policy.resolve(manifest.requested_precision);
        let mut enc = Encoder {
            model,
            tokenizer,
            manifest,
            config,
            dir: dir.to_path_buf(),
            gate: None,
        };
        // the fastest candidate this CPU runs that passes the gate; F32 when none does
        for &want in choice.candidates() {
            if !want.supported() {
                if choice != PrecisionChoice::Auto {
                    tracing::warn!(dir = %dir.display(), "{want} asked for, but this CPU cannot run it (AVX512_BF16 / AVX512_VNNI missing, or ONTOVEC_GEMM=portable): serving F32");
                }
                continue;
            }
            let cfg = enc.config.clone();
            enc = enc.gated(want, |p| {
                Bert::load_with(&tensors, &cfg, p).map_err(|e| EncoderError::load(&weights_path, e))
            })?;
            if enc.precision() == want {
                break;
            }
        }
        Ok(enc)
    }

    /// Tries `want`: builds the model in it with `build`, embeds the parity strings in F32 (the
    /// current model) and in `want`, and keeps the new model only if the gate passes; otherwise
    /// keeps F32 and logs a warning with the gate's numbers.
    pub(crate) fn gated(
        mut self,
        want: Precision,
        build: impl FnOnce(Precision) -> Result<Bert, EncoderError>,
    ) -> Result<Self, EncoderError> {
        let texts = parity_texts(self.manifest.parity_texts.as_deref());
        let reference = self.embed_texts(&texts, 16, true)?;
        let candidate = build(want)?;
        if candidate.precision() != want {
            return Ok(self);
        }
        let f32_model = std::mem::replace(&mut self.model, candidate);
        let report = gate(
            want,
            &texts,
            &reference,
            &self.embed_texts(&texts, 16, true)?,
        );
        if report.passed {
            tracing::info!(dir = %self.dir.display(), precision = %want, texts = report.texts, mean_cosine = report.mean_cosine, min_cosine = report.min_cosine, "precision gate passed");
            self.manifest.precision = want;
        } else {
            tracing::warn!(dir = %self.dir.display(), precision = %want, texts = report.texts, mean_cosine = report.mean_cosine, min_cosine = report.min_cosine, worst = %report.worst, "precision gate failed (needs mean cosine to F32 >= {} and min >= {}): serving F32", super::precision::GATE_MEAN, super::precision::GATE_MIN);
            self.model = f32_model;
        }
        self.gate = Some(report);
        Ok(self)
    }

    /// The parity gate's outcome, when a reduced precision was tried.
    pub fn gate(&self) -> Option<&GateReport> {
        self.gate.as_ref()
    }

    /// The precision the model runs in.
    pub fn precision(&self) -> Precision {
        self.model.precision()
    }

    /// The folder's effective manifest.
    pub fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    /// Renames the model (the registry names models after their folder).
    pub fn set_name(&mut self, name: String) {
        self.manifest.name = name;
    }

    /// The tokenizer (unpadded, truncated to the model's `max_len`).
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Output dimension.
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// The folder this model was loaded from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// One forward pass over a batch of token-id sequences (each non-empty, `[CLS]`/`[SEP]`
    /// included, as [`TextTokenizer::encode`] makes them). Returns one pooled (and, unless the
    /// manifest says otherwise, unit-norm) vector per sequence, in order.
    pub fn embed_ids<T: AsRef<[u32]>>(&self, batch: &[T]) -> Result<Vec<Vec<f32>>, EncoderError> {
        let n = batch.len();
        if n == 0 {
            return Ok(Vec::new());
        }
        if batch.iter().any(|s| s.as_ref().is_empty()) {
            return Err(EncoderError::InvalidInput("empty token sequence".into()));
        }
        let (flat, offsets) = self.model.forward(batch)?;
        let mut pooled = pool(&flat, &offsets, self.dim(), self.manifest.pooling);
        if self.manifest.normalize {
            pooled.iter_mut().for_each(|v| l2_normalize(v));
        }
        Ok(pooled)
    }

    /// Embeds texts synchronously on the calling thread, `batch_size` at a time; with
    /// `sort_by_length` the texts are processed in token-length order (far less padding) and
    /// the results put back in input order. For benchmarks and offline tools; servers use the
    /// [`super::EngineHandle`].
    pub fn embed_texts<S: AsRef<str> + Sync>(
        &self,
        texts: &[S],
        batch_size: usize,
        sort_by_length: bool,
    ) -> Result<Vec<Vec<f32>>, EncoderError> {
        let ids = self.tokenizer.encode_many(texts)?;
        let mut order: Vec<usize> = (0..ids.len()).collect();
        if sort_by_length {
            order.sort_by_key(|&i| ids[i].len());
        }
        let mut out = vec![Vec::new(); ids.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| ids[i].as_slice()).collect();
            for (&i, v) in chunk.iter().zip(self.embed_ids(&batch)?) {
                out[i] = v;
            }
        }
        Ok(out)
    }
}

/// Reads a safetensors file into F32 tensors named as `BertModel` expects them (the loader
/// reads the file once itself, to fingerprint the same bytes; tests call this).
#[cfg(test)]
pub(crate) fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>, EncoderError> {
    tensors_from_bytes(path, &read_weights(path)?)
}

/// The bytes of the safetensors file at `path`.
fn read_weights(path: &Path) -> Result<Vec<u8>, EncoderError> {
    std::fs::read(path).map_err(|e| {
        EncoderError::load(
            path,
            format!("{e} (only safetensors weights are supported)"),
        )
    })
}

/// F32 tensors named as `BertModel` expects them from a safetensors file's bytes, already
/// read (`path` names it in errors).
fn tensors_from_bytes(path: &Path, bytes: &[u8]) -> Result<HashMap<String, Tensor>, EncoderError> {
    let raw = candle_core::safetensors::load_buffer(bytes, &Device::Cpu)
        .map_err(|e| EncoderError::load(path, e))?;
    normalise_tensor_names(raw)
        .into_iter()
        .map(|(k, t)| Ok((k, t.to_dtype(DType::F32)?)))
        .collect::<candle_core::Result<_>>()
        .map_err(|e| EncoderError::load(path, e))
}

/// Parses `config.json`, filling optional fields some checkpoints omit and mapping activation
/// names candle spells differently.
pub(crate) fn read_config(path: &Path) -> Result<Config, EncoderError> {
    let bytes = std::fs::read(path).map_err(|e| EncoderError::load(path, e))?;
    let mut v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| EncoderError::load(path, e))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| EncoderError::load(path, "config.json is not an object"))?;
    if let Some(mt) = obj.get("model_type").and_then(|m| m.as_str()) {
        if mt.contains("roberta") || mt == "camembert" || mt == "distilbert" {
            return Err(EncoderError::load(
                path,
                format!("model_type `{mt}` is not BERT-compatible (different positions/names)"),
            ));
        }
    }
    let defaults = [
        ("hidden_act", serde_json::json!("gelu")),
        ("hidden_dropout_prob", serde_json::json!(0.1)),
        ("initializer_range", serde_json::json!(0.02)),
        ("layer_norm_eps", serde_json::json!(1e-12)),
        ("pad_token_id", serde_json::json!(0)),
        ("type_vocab_size", serde_json::json!(2)),
        ("max_position_embeddings", serde_json::json!(512)),
    ];
    for (k, d) in defaults {
        if obj.get(k).is_none_or(|x| x.is_null()) {
            obj.insert(k.to_string(), d);
        }
    }
    if let Some(act) = obj.get("hidden_act").and_then(|a| a.as_str()) {
        let mapped = match act {
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" | "gelu_approximate" => {
                "geluapproximate"
            }
            other => other,
        }
        .to_string();
        obj.insert("hidden_act".into(), serde_json::Value::String(mapped));
    }
    let config: Config = serde_json::from_value(v).map_err(|e| EncoderError::load(path, e))?;
    if config.hidden_size == 0
        || config.num_attention_heads == 0
        || !config
            .hidden_size
            .is_multiple_of(config.num_attention_heads)
    {
        return Err(EncoderError::load(
            path,
            "hidden_size must be a positive multiple of num_attention_heads",
        ));
    }
    Ok(config)
}

/// Strips a leading `bert.` (as in `BertForMaskedLM`/`BertForPreTraining` checkpoints) and
/// renames old-style LayerNorm `gamma`/`beta` so the names match what `BertModel` asks for.
fn normalise_tensor_names(raw: HashMap<String, Tensor>) -> HashMap<String, Tensor> {
    let prefixed = raw.keys().any(|k| k.starts_with("bert.embeddings."));
    raw.into_iter()
        .filter_map(|(k, t)| {
            let k = if prefixed {
                k.strip_prefix("bert.")?.to_string()
            } else {
                k
            };
            let k = if let Some(stem) = k.strip_suffix(".gamma") {
                format!("{stem}.weight")
            } else if let Some(stem) = k.strip_suffix(".beta") {
                format!("{stem}.bias")
            } else {
                k
            };
            Some((k, t))
        })
        .collect()
}
