//! A tiny random BERT written to disk in the Hugging Face layout, so that tests of the encoder
//! (and of everything built on it: search, API) run the real load → tokenize → embed path
//! without downloaded weights. Weights come from a seeded ChaCha RNG, so every run and every
//! machine builds the same model.

use super::EncoderError;
use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::Path;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::Tokenizer;

/// Shape and file options of the tiny model.
#[derive(Debug, Clone)]
pub struct TinyBert {
    /// Transformer layers.
    pub layers: usize,
    /// Hidden size (= output dimension).
    pub hidden: usize,
    /// Attention heads (must divide `hidden`).
    pub heads: usize,
    /// Feed-forward size.
    pub intermediate: usize,
    /// Position embeddings (maximum tokens per text).
    pub max_positions: usize,
    /// Name tensors `bert.embeddings…` (as `BertForMaskedLM` checkpoints do) instead of
    /// `embeddings…`.
    pub bert_prefix: bool,
    /// Also write a `tokenizer.json` (otherwise only `vocab.txt`).
    pub tokenizer_json: bool,
    /// Optional `ontovec.json` content.
    pub manifest: Option<serde_json::Value>,
    /// RNG seed of the weights.
    pub seed: u64,
}

impl Default for TinyBert {
    fn default() -> Self {
        TinyBert {
            layers: 2,
            hidden: 32,
            // head size 16: the size the AVX-512 attention kernel takes (8 would fall back to
            // the portable loop), so tests exercise it where the CPU has AVX-512
            heads: 2,
            intermediate: 64,
            max_positions: 64,
            bert_prefix: false,
            tokenizer_json: false,
            manifest: None,
            seed: 7,
        }
    }
}

/// The tiny model's vocabulary: BERT's special tokens, then clinical words and a few pieces.
pub const TINY_VOCAB: &[&str] = &[
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    "type",
    "2",
    "diabetes",
    "mellitus",
    "without",
    "with",
    "complications",
    "acute",
    "chronic",
    "myocardial",
    "infarction",
    "heart",
    "failure",
    "kidney",
    "disease",
    "stage",
    "3",
    "essential",
    "hypertension",
    "pneumonia",
    "unspecified",
    "fracture",
    "of",
    "left",
    "right",
    "femur",
    "asthma",
    "mild",
    "severe",
    "persistent",
    "pain",
    "in",
    "knee",
    "the",
    "a",
    "and",
    "fever",
    "cough",
    "##s",
    "##ing",
    "##ed",
    "##itis",
    "sep",
    "##sis",
    "pat",
    "##ient",
    ",",
    ".",
    "-",
    "(",
    ")",
];

/// Writes `config.json`, `vocab.txt` (and optionally `tokenizer.json`, `ontovec.json`) and a
/// random `model.safetensors` into `dir`.
pub fn write_tiny_bert(dir: &Path, opts: &TinyBert) -> Result<(), EncoderError> {
    let io = |e: std::io::Error| EncoderError::load(dir, e);
    std::fs::create_dir_all(dir).map_err(io)?;
    let vocab = TINY_VOCAB.len();
    let config = serde_json::json!({
        "architectures": ["BertModel"],
        "model_type": "bert",
        "vocab_size": vocab,
        "hidden_size": opts.hidden,
        "num_hidden_layers": opts.layers,
        "num_attention_heads": opts.heads,
        "intermediate_size": opts.intermediate,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "max_position_embeddings": opts.max_positions,
        "type_vocab_size": 2,
        "initializer_range": 0.02,
        "layer_norm_eps": 1e-12,
        "pad_token_id": 0
    });
    std::fs::write(dir.join("config.json"), config.to_string()).map_err(io)?;
    std::fs::write(dir.join("vocab.txt"), TINY_VOCAB.join("\n") + "\n").map_err(io)?;
    std::fs::write(
        dir.join("tokenizer_config.json"),
        r#"{"do_lower_case": true}"#,
    )
    .map_err(io)?;
    if let Some(m) = &opts.manifest {
        std::fs::write(dir.join(super::manifest::MANIFEST_FILE), m.to_string()).map_err(io)?;
    }
    if opts.tokenizer_json {
        let tok = tiny_tokenizer()?;
        tok.save(dir.join("tokenizer.json"), false)
            .map_err(|e| EncoderError::load(dir, e))?;
    }

    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let prefix = if opts.bert_prefix { "bert." } else { "" };
    let (h, i) = (opts.hidden, opts.intermediate);
    let mut add = |name: &str, shape: &[usize], kind: Init| -> Result<(), EncoderError> {
        let n: usize = shape.iter().product();
        let data: Vec<f32> = (0..n)
            .map(|_| match kind {
                Init::Weight => rng.gen_range(-0.25f32..0.25),
                Init::Bias => rng.gen_range(-0.05f32..0.05),
                Init::Gamma => 1.0 + rng.gen_range(-0.1f32..0.1),
            })
            .collect();
        let t = Tensor::from_vec(data, shape, &Device::Cpu)?;
        tensors.insert(format!("{prefix}{name}"), t);
        Ok(())
    };
    add(
        "embeddings.word_embeddings.weight",
        &[vocab, h],
        Init::Weight,
    )?;
    add(
        "embeddings.position_embeddings.weight",
        &[opts.max_positions, h],
        Init::Weight,
    )?;
    add(
        "embeddings.token_type_embeddings.weight",
        &[2, h],
        Init::Weight,
    )?;
    add("embeddings.LayerNorm.weight", &[h], Init::Gamma)?;
    add("embeddings.LayerNorm.bias", &[h], Init::Bias)?;
    for l in 0..opts.layers {
        let p = format!("encoder.layer.{l}.");
        for m in [
            "attention.self.query",
            "attention.self.key",
            "attention.self.value",
        ] {
            add(&format!("{p}{m}.weight"), &[h, h], Init::Weight)?;
            add(&format!("{p}{m}.bias"), &[h], Init::Bias)?;
        }
        add(
            &format!("{p}attention.output.dense.weight"),
            &[h, h],
            Init::Weight,
        )?;
        add(&format!("{p}attention.output.dense.bias"), &[h], Init::Bias)?;
        add(
            &format!("{p}attention.output.LayerNorm.weight"),
            &[h],
            Init::Gamma,
        )?;
        add(
            &format!("{p}attention.output.LayerNorm.bias"),
            &[h],
            Init::Bias,
        )?;
        add(
            &format!("{p}intermediate.dense.weight"),
            &[i, h],
            Init::Weight,
        )?;
        add(&format!("{p}intermediate.dense.bias"), &[i], Init::Bias)?;
        add(&format!("{p}output.dense.weight"), &[h, i], Init::Weight)?;
        add(&format!("{p}output.dense.bias"), &[h], Init::Bias)?;
        add(&format!("{p}output.LayerNorm.weight"), &[h], Init::Gamma)?;
        add(&format!("{p}output.LayerNorm.bias"), &[h], Init::Bias)?;
    }
    let path = dir.join(super::bert::WEIGHTS_FILE);
    candle_core::safetensors::save(&tensors, &path).map_err(|e| EncoderError::load(&path, e))?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Init {
    Weight,
    Bias,
    Gamma,
}

/// The tiny model's tokenizer built in memory with the tokenizers crate's WordPiece builder.
pub fn tiny_tokenizer() -> Result<Tokenizer, EncoderError> {
    let vocab = WordPiece::read_bytes((TINY_VOCAB.join("\n") + "\n").as_bytes())
        .map_err(|e| EncoderError::load("tiny tokenizer", e))?;
    let wp = WordPiece::builder()
        .vocab(vocab)
        .unk_token("[UNK]".into())
        .build()
        .map_err(|e| EncoderError::load("tiny tokenizer", e))?;
    let mut tok = Tokenizer::new(wp);
    tok.with_normalizer(Some(BertNormalizer::new(true, true, None, true)))
        .map_err(|e| EncoderError::load("tiny tokenizer", e))?;
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.with_post_processor(Some(BertProcessing::new(
        ("[SEP]".into(), 3),
        ("[CLS]".into(), 2),
    )));
    Ok(tok)
}
