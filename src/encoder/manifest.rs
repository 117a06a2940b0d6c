//! Model folder metadata: our `ontovec.json` manifest and the sentence-transformers files.
//!
//! A model folder is any Hugging Face BERT folder (`config.json`, `model.safetensors`,
//! `tokenizer.json` or `vocab.txt`). What we need beyond the weights — pooling, normalisation,
//! maximum length, which kind of text it encodes, who trained it and how it scored — comes from
//! `ontovec.json` when present; every field missing there is derived from the
//! sentence-transformers files, then from `config.json`, then from defaults (mean pooling, L2
//! normalisation, kind `terms`).

use super::precision::{vector_id, Precision, PrecisionChoice};
use super::EncoderError;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The manifest file name inside a model folder.
pub const MANIFEST_FILE: &str = "ontovec.json";
/// The markdown model card a trainer writes into its model folder.
pub const CARD_FILE: &str = "MODEL_CARD.md";
/// The training curves a trainer draws into its model folder (SVG).
pub const CURVES_FILE: &str = "curves.svg";
/// The evaluation table a trainer draws into its model folder (SVG).
pub const EVAL_FILE: &str = "eval.svg";
/// The learned hybrid's weights fitted on this model's scores (`ontovec eval fit-fusion
/// --out <folder>/fusion_weights.json`); the search layer reads and checks them.
pub const FUSION_FILE: &str = "fusion_weights.json";

/// What a model encodes, which decides the searches it serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ModelKind {
    /// Concept names and synonyms (term search, normalisation, relatedness).
    Terms,
    /// Clinical notes (note search).
    Notes,
    /// Code descriptions for note coding.
    Codes,
}

impl std::fmt::Display for ModelKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ModelKind::Terms => "terms",
            ModelKind::Notes => "notes",
            ModelKind::Codes => "codes",
        })
    }
}

/// How token vectors become one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// Average of the non-padding token vectors (sentence-transformers' default).
    #[default]
    Mean,
    /// The `[CLS]` token's vector.
    Cls,
    /// Element-wise maximum over the non-padding tokens.
    Max,
}

/// The effective description of one model folder (manifest merged with derived values).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelManifest {
    /// Model name; the registry uses the folder name.
    pub name: String,
    /// What the model encodes.
    pub kind: ModelKind,
    /// The base checkpoint it started from (e.g. `all-MiniLM-L6-v2`).
    pub base: String,
    /// Pooling over token vectors.
    pub pooling: Pooling,
    /// Output dimension.
    pub dim: usize,
    /// Maximum tokens per text (longer texts are truncated).
    pub max_len: usize,
    /// Who produced the weights (`sentence-transformers (pretrained)` for a raw base model).
    pub trained_by: String,
    /// Evaluation numbers recorded by the trainer (free-form JSON object).
    pub eval: serde_json::Value,
    /// Whether this model is the default for its kind.
    pub default: bool,
    /// Whether outputs are L2-normalised (always true unless a manifest says otherwise).
    pub normalize: bool,
    /// The precision `ontovec.json` asks for (`auto`, `f32`, `bf16`, `int8`), if any.
    pub requested_precision: Option<PrecisionChoice>,
    /// The model's own parity strings for the precision gate (else the built-in ones).
    pub parity_texts: Option<Vec<String>>,
    /// The precision the loaded model runs in (set by the loader; F32 until then).
    pub precision: Precision,
    /// A fingerprint of the weights file (FNV-1a 64 of its bytes, hex; set by the loader):
    /// the search engine drops a model's vectors when the weights under its name change.
    #[serde(skip)]
    pub weights_id: String,
    /// The folder's [`FUSION_FILE`] as JSON, if it has one (checked by the search layer).
    #[serde(skip)]
    pub fusion: Option<serde_json::Value>,
}

/// `trained_by` of a model nobody here fine-tuned.
pub const PRETRAINED: &str = "sentence-transformers (pretrained)";

impl ModelManifest {
    /// Whether the weights are a pretrained base model rather than one we trained.
    pub fn is_pretrained(&self) -> bool {
        self.trained_by.to_ascii_lowercase().contains("pretrained")
    }

    /// The identity of this model's vectors in caches and indexes (see
    /// [`super::precision::vector_id`]).
    pub fn vector_id(&self) -> String {
        vector_id(&self.name, self.precision)
    }

    /// Reads `ontovec.json` if present, and fills every missing field from the folder's
    /// sentence-transformers files and `config.json`. `hidden_size` and
    /// `max_position_embeddings` come from the already-parsed BERT config.
    pub fn load(
        dir: &Path,
        hidden_size: usize,
        max_position_embeddings: usize,
    ) -> Result<Self, EncoderError> {
        let folder_name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".to_string());
        let file: ManifestFile = match read_json_opt(&dir.join(MANIFEST_FILE))? {
            Some(v) => serde_json::from_value(v)
                .map_err(|e| EncoderError::load(dir.join(MANIFEST_FILE), e))?,
            None => ManifestFile::default(),
        };
        let st = SentenceTransformersInfo::read(dir)?;
        let base = match file.base {
            Some(b) => b,
            None => read_json_opt(&dir.join("config.json"))?
                .and_then(|c| c.get("_name_or_path")?.as_str().map(str::to_string))
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| folder_name.clone()),
        };
        let max_len = file
            .max_len
            .or(st.max_seq_length)
            .unwrap_or(max_position_embeddings)
            .clamp(2, max_position_embeddings);
        if let Some(d) = file.dim {
            if d != hidden_size {
                return Err(EncoderError::load(
                    dir.join(MANIFEST_FILE),
                    format!("manifest dim {d} does not match config hidden_size {hidden_size}"),
                ));
            }
        }
        Ok(ModelManifest {
            name: file.name.unwrap_or_else(|| folder_name.clone()),
            kind: file.kind.unwrap_or(ModelKind::Terms),
            base,
            pooling: file.pooling.or(st.pooling).unwrap_or_default(),
            dim: hidden_size,
            max_len,
            trained_by: file.trained_by.unwrap_or_else(|| PRETRAINED.to_string()),
            eval: file
                .eval
                .unwrap_or_else(|| serde_json::Value::Object(Default::default())),
            default: file.default.unwrap_or(false),
            normalize: file.normalize.unwrap_or(true),
            requested_precision: file.precision,
            parity_texts: file.parity_texts,
            precision: Precision::F32,
            weights_id: String::new(),
            fusion: read_json_opt(&dir.join(FUSION_FILE))?,
        })
    }
}

/// `ontovec.json` as written: every field optional.
#[derive(Debug, Default, Deserialize)]
struct ManifestFile {
    name: Option<String>,
    kind: Option<ModelKind>,
    base: Option<String>,
    pooling: Option<Pooling>,
    dim: Option<usize>,
    max_len: Option<usize>,
    trained_by: Option<String>,
    eval: Option<serde_json::Value>,
    default: Option<bool>,
    normalize: Option<bool>,
    precision: Option<PrecisionChoice>,
    parity_texts: Option<Vec<String>>,
}

/// What the sentence-transformers files say about a folder.
#[derive(Debug, Default)]
struct SentenceTransformersInfo {
    pooling: Option<Pooling>,
    max_seq_length: Option<usize>,
}

#[derive(Deserialize)]
struct StModule {
    #[serde(default)]
    path: String,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
struct StPooling {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
    #[serde(default)]
    pooling_mode_mean_sqrt_len_tokens: bool,
}

impl SentenceTransformersInfo {
    fn read(dir: &Path) -> Result<Self, EncoderError> {
        let mut info = SentenceTransformersInfo::default();
        let modules_path = dir.join("modules.json");
        let mut pooling_dir = None;
        if let Some(v) = read_json_opt(&modules_path)? {
            let modules: Vec<StModule> =
                serde_json::from_value(v).map_err(|e| EncoderError::load(&modules_path, e))?;
            for m in &modules {
                let short = m.kind.rsplit('.').next().unwrap_or(&m.kind);
                match short {
                    "Transformer" | "Normalize" => {}
                    "Pooling" => pooling_dir = Some(dir.join(&m.path)),
                    other => {
                        return Err(EncoderError::load(
                            &modules_path,
                            format!("unsupported sentence-transformers module `{other}`"),
                        ))
                    }
                }
            }
        }
        let pooling_cfg = pooling_dir
            .unwrap_or_else(|| dir.join("1_Pooling"))
            .join("config.json");
        if let Some(v) = read_json_opt(&pooling_cfg)? {
            let p: StPooling =
                serde_json::from_value(v).map_err(|e| EncoderError::load(&pooling_cfg, e))?;
            let modes = [
                p.pooling_mode_mean_tokens,
                p.pooling_mode_cls_token,
                p.pooling_mode_max_tokens,
                p.pooling_mode_mean_sqrt_len_tokens,
            ];
            if modes.iter().filter(|m| **m).count() > 1 || p.pooling_mode_mean_sqrt_len_tokens {
                return Err(EncoderError::load(
                    &pooling_cfg,
                    "only one of mean, cls or max pooling is supported",
                ));
            }
            info.pooling = if p.pooling_mode_cls_token {
                Some(Pooling::Cls)
            } else if p.pooling_mode_max_tokens {
                Some(Pooling::Max)
            } else {
                Some(Pooling::Mean)
            };
        }
        if let Some(v) = read_json_opt(&dir.join("sentence_bert_config.json"))? {
            info.max_seq_length = v
                .get("max_seq_length")
                .and_then(|m| m.as_u64())
                .map(|m| m as usize);
        }
        Ok(info)
    }
}

/// Reads a JSON file, `None` when it does not exist.
pub(crate) fn read_json_opt(path: &Path) -> Result<Option<serde_json::Value>, EncoderError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| EncoderError::load(path, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(EncoderError::load(path, e)),
    }
}

/// What `/v1/models` shows for one model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ModelInfo {
    /// Model name (its folder name under `models/`).
    pub name: String,
    /// Embedding dimension.
    pub dim: usize,
    /// Whether it is the default model for its kind.
    pub default: bool,
    /// What it encodes.
    pub kind: ModelKind,
    /// Base checkpoint.
    pub base: String,
    /// Who trained it.
    pub trained_by: String,
    /// Evaluation numbers recorded by the trainer.
    #[schema(value_type = Object)]
    pub eval: serde_json::Value,
    /// The number format its matrix products run in (BF16 only after passing the parity
    /// gate against F32).
    pub precision: Precision,
    /// Whether its hybrid searches use weights fitted on this model's own scores (the
    /// folder's `fusion_weights.json`) rather than the shipped ones.
    #[serde(default)]
    pub own_fusion_weights: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthesised_from_sentence_transformers_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("modules.json"),
            r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},
               {"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]"#,
        )
        .unwrap();
        std::fs::create_dir(d.join("1_Pooling")).unwrap();
        std::fs::write(
            d.join("1_Pooling/config.json"),
            r#"{"pooling_mode_cls_token":true,"pooling_mode_mean_tokens":false}"#,
        )
        .unwrap();
        std::fs::write(
            d.join("sentence_bert_config.json"),
            r#"{"max_seq_length":64}"#,
        )
        .unwrap();
        let m = ModelManifest::load(d, 32, 128).unwrap();
        assert_eq!(m.pooling, Pooling::Cls);
        assert_eq!(m.max_len, 64);
        assert_eq!(m.kind, ModelKind::Terms);
        assert!(m.is_pretrained());
        assert!(m.normalize);
    }

    #[test]
    fn manifest_wins_and_dim_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join(MANIFEST_FILE),
            r#"{"name":"x","kind":"notes","pooling":"max","max_len":1000,"trained_by":"ontovec train","default":true,"eval":{"acc@1":0.5}}"#,
        )
        .unwrap();
        let m = ModelManifest::load(d, 32, 128).unwrap();
        assert_eq!(
            (m.kind, m.pooling, m.max_len),
            (ModelKind::Notes, Pooling::Max, 128)
        );
        assert!(!m.is_pretrained() && m.default);
        std::fs::write(d.join(MANIFEST_FILE), r#"{"dim":7}"#).unwrap();
        assert!(matches!(
            ModelManifest::load(d, 32, 128),
            Err(EncoderError::Load { .. })
        ));
    }

    #[test]
    fn unsupported_module_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("modules.json"),
            r#"[{"path":"2_Dense","type":"sentence_transformers.models.Dense"}]"#,
        )
        .unwrap();
        assert!(ModelManifest::load(dir.path(), 32, 128).is_err());
    }
}
