//! Model cards as the server shows them: a loaded model's manifest numbers plus the card files
//! its trainer wrote into its folder (`curves.svg`, `eval.svg`, `MODEL_CARD.md`; drawn by
//! `train::common::card`). Files are looked up by an allow-list of names inside the folder of a model
//! the registry loaded, so no request can name any other path.

use crate::encoder::manifest::{CARD_FILE, CURVES_FILE, EVAL_FILE};
use crate::encoder::{ModelInfo, Registry};
use serde::Serialize;
use std::path::Path;
use utoipa::ToSchema;

/// The files served from a model folder, with their content types, in display order.
pub const CARD_FILES: [(&str, &str); 3] = [
    (CURVES_FILE, "image/svg+xml"),
    (EVAL_FILE, "image/svg+xml"),
    (CARD_FILE, "text/markdown; charset=utf-8"),
];

/// Failure to show a model card or one of its files.
#[derive(Debug, thiserror::Error)]
pub enum ModelCardError {
    /// No loaded model of that name.
    #[error("unknown model: {0}")]
    UnknownModel(String),
    /// The file name is not one of [`CARD_FILES`].
    #[error("'{0}' is not a model-card file (served: curves.svg, eval.svg, MODEL_CARD.md)")]
    NotServed(String),
    /// The model's trainer wrote no such file (e.g. a pretrained base model).
    #[error("model {model} has no {file}")]
    Missing {
        /// The model.
        model: String,
        /// The file.
        file: &'static str,
    },
    /// The file exists but cannot be read.
    #[error("cannot read {file} of model {model}: {source}")]
    Io {
        /// The model.
        model: String,
        /// The file.
        file: &'static str,
        /// The cause.
        source: std::io::Error,
    },
}

/// One card file of a model.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CardFile {
    /// File name in the model folder.
    pub name: String,
    /// Where the server serves it.
    pub url: String,
    /// Its content type.
    pub content_type: String,
}

/// `GET /v1/models/{name}`: what `/v1/models` shows for the model, and its card files.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ModelCard {
    /// The model as `/v1/models` lists it.
    #[serde(flatten)]
    pub info: ModelInfo,
    /// Card files present in its folder (pictures first), with the URLs that serve them.
    pub files: Vec<CardFile>,
}

/// The folder of a loaded model, refusing names that could leave `models_dir` (the registry
/// names models by folder name, so a real one never does).
fn model_dir(
    registry: &Registry,
    models_dir: &Path,
    name: &str,
) -> Result<(ModelInfo, std::path::PathBuf), ModelCardError> {
    let info = registry
        .list()
        .into_iter()
        .find(|m| m.name == name)
        .filter(|_| !name.is_empty() && name != ".." && !name.contains(['/', '\\']))
        .ok_or_else(|| ModelCardError::UnknownModel(name.to_string()))?;
    Ok((info, models_dir.join(name)))
}

/// The card of the loaded model `name`.
pub fn card(
    registry: &Registry,
    models_dir: &Path,
    name: &str,
) -> Result<ModelCard, ModelCardError> {
    let (info, dir) = model_dir(registry, models_dir, name)?;
    let files = CARD_FILES
        .iter()
        .filter(|(f, _)| dir.join(f).is_file())
        .map(|(f, ct)| CardFile {
            name: f.to_string(),
            url: format!("/v1/models/{name}/files/{f}"),
            content_type: ct.to_string(),
        })
        .collect();
    Ok(ModelCard { info, files })
}

/// The bytes and content type of card file `file` of the loaded model `name`.
pub fn card_file(
    registry: &Registry,
    models_dir: &Path,
    name: &str,
    file: &str,
) -> Result<(Vec<u8>, &'static str), ModelCardError> {
    let (_, dir) = model_dir(registry, models_dir, name)?;
    let (file, content_type) = CARD_FILES
        .iter()
        .find(|(f, _)| *f == file)
        .copied()
        .ok_or_else(|| ModelCardError::NotServed(file.to_string()))?;
    match std::fs::read(dir.join(file)) {
        Ok(b) => Ok((b, content_type)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ModelCardError::Missing {
            model: name.to_string(),
            file,
        }),
        Err(source) => Err(ModelCardError::Io {
            model: name.to_string(),
            file,
            source,
        }),
    }
}
