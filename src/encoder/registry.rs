//! The model registry: every model folder under `models/`, one engine each, a default per kind.
//!
//! A folder is a model when it holds `config.json` and `model.safetensors`; its name is the
//! folder name. The default model of a kind is the one whose manifest says `default: true`,
//! else one we trained (its `trained_by` is not a pretrained checkpoint), else the first by name.
//! Interactive callers of any of the models pass the registry's one [`Admission`] gate.

use super::admission::Admission;
use super::bert::{Encoder, WEIGHTS_FILE};
use super::engine::{EngineConfig, EngineHandle};
use super::manifest::{ModelInfo, ModelKind};
use super::EncoderError;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// Loaded models by name, with the default model of each kind.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    models: BTreeMap<String, EngineHandle>,
    defaults: HashMap<ModelKind, String>,
    admission: Admission,
}

impl Registry {
    /// Loads every model folder under `models_dir` (a missing directory gives an empty
    /// registry). Folders without `config.json` or weights are skipped with a warning; a model
    /// folder that fails to load is an error, so a broken deployment does not silently serve
    /// another model.
    pub fn load_dir(models_dir: &Path, config: EngineConfig) -> Result<Self, EncoderError> {
        let mut registry = Registry::default();
        let entries = match std::fs::read_dir(models_dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(registry),
            Err(e) => return Err(EncoderError::load(models_dir, e)),
        };
        let mut dirs: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        dirs.sort();
        for dir in dirs {
            if !dir.join("config.json").is_file() || !dir.join(WEIGHTS_FILE).is_file() {
                tracing::warn!(dir = %dir.display(), "skipping folder without config.json and {WEIGHTS_FILE}");
                continue;
            }
            registry.insert(load_model(&dir, config.clone())?);
        }
        Ok(registry)
    }

    /// The same registry behind an admission gate of `max_texts` texts.
    pub fn with_admission(mut self, max_texts: usize) -> Self {
        self.admission = Admission::new(max_texts);
        self
    }

    /// The admission gate interactive callers pass before embedding (429 when it refuses).
    pub fn admission(&self) -> &Admission {
        &self.admission
    }

    /// Adds (or replaces) a running model under its manifest name and recomputes defaults.
    pub fn insert(&mut self, handle: EngineHandle) {
        self.models.insert(handle.manifest().name.clone(), handle);
        self.pick_defaults();
    }

    fn pick_defaults(&mut self) {
        self.defaults.clear();
        for kind in [ModelKind::Terms, ModelKind::Notes, ModelKind::Codes] {
            // BTreeMap iteration is by name, so `find` gives the first alphabetically.
            let of_kind = || self.models.values().filter(|h| h.manifest().kind == kind);
            let pick = of_kind()
                .find(|h| h.manifest().default)
                .or_else(|| of_kind().find(|h| !h.manifest().is_pretrained()))
                .or_else(|| of_kind().next());
            if let Some(h) = pick {
                self.defaults.insert(kind, h.manifest().name.clone());
            }
        }
    }

    /// The model called `name`, or the default model of `kind` when `name` is `None`.
    pub fn get(&self, name: Option<&str>, kind: ModelKind) -> Result<&EngineHandle, EncoderError> {
        match name {
            Some(n) => self
                .models
                .get(n)
                .ok_or_else(|| EncoderError::UnknownModel(n.to_string())),
            None => self
                .defaults
                .get(&kind)
                .and_then(|n| self.models.get(n))
                .ok_or_else(|| EncoderError::UnknownModel(format!("no model of kind `{kind}`"))),
        }
    }

    /// The name of the default model of `kind`, if any.
    pub fn default_name(&self, kind: ModelKind) -> Option<&str> {
        self.defaults.get(&kind).map(String::as_str)
    }

    /// All models, by name, as `/v1/models` shows them.
    pub fn list(&self) -> Vec<ModelInfo> {
        self.models
            .values()
            .map(|h| {
                let m = h.manifest();
                ModelInfo {
                    name: m.name.clone(),
                    dim: m.dim,
                    default: self.defaults.get(&m.kind) == Some(&m.name),
                    kind: m.kind,
                    base: m.base.clone(),
                    trained_by: m.trained_by.clone(),
                    eval: m.eval.clone(),
                    precision: m.precision,
                    own_fusion_weights: m.fusion.is_some(),
                }
            })
            .collect()
    }

    /// Queue depth per model (for `/metrics`).
    pub fn queue_depths(&self) -> Vec<(String, usize)> {
        self.models
            .iter()
            .map(|(n, h)| (n.clone(), h.queue_depth()))
            .collect()
    }

    /// Number of loaded models.
    pub fn len(&self) -> usize {
        self.models.len()
    }

    /// Whether no model is loaded.
    pub fn is_empty(&self) -> bool {
        self.models.is_empty()
    }
}

/// Loads one model folder (`config.json`, weights, tokenizer) and starts its engine, named after
/// the folder, exactly as [`Registry::load_dir`] loads each of its models (so an evaluation of a
/// folder outside the models directory embeds as the server would).
pub fn load_model(dir: &Path, config: EngineConfig) -> Result<EngineHandle, EncoderError> {
    let started = std::time::Instant::now();
    let mut encoder = Encoder::load_with(dir, config.precision)?;
    if let Some(name) = dir.file_name() {
        encoder.set_name(name.to_string_lossy().into_owned());
    }
    tracing::info!(
        model = %encoder.manifest().name,
        kind = %encoder.manifest().kind,
        precision = %encoder.precision(),
        ms = started.elapsed().as_millis() as u64,
        "loaded encoder"
    );
    EngineHandle::spawn(encoder, config)
}
