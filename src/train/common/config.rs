//! Run configurations: a preset, overridden field by field by a `--config` JSON file. Shared
//! by both trainers.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// Named training configurations; what each sets is in each trainer's config
/// (`TrainConfig::preset`, `NoteContrastConfig::preset`) and its README section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// A short run for checking the machinery and a first model (≤ 20 min on 2 cores).
    Quick,
    /// The recommended run on a small machine: ≤ 2 h on 2 cores (HiPrBERT: 2,400 steps of
    /// 2 × 96 strings; NoteContrast: 2,000 steps over every training note).
    Standard,
    /// The paper's scale, for a bigger machine (HiPrBERT: 2,000 steps of 4 × 96 strings, about
    /// the paper's batch of 256, and large evaluations; NoteContrast: 4,000 steps, a deeper code
    /// encoder). README says how long it takes on 2 cores.
    Full,
}

impl std::str::FromStr for Preset {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "quick" => Ok(Preset::Quick),
            "standard" => Ok(Preset::Standard),
            "full" => Ok(Preset::Full),
            _ => anyhow::bail!("unknown preset '{s}' (quick|standard|full)"),
        }
    }
}

/// What one training run is given (clap-free; the CLI fills it): the same for both trainers.
#[derive(Debug, Clone)]
pub struct RunArgs {
    /// Base model folder (HF BERT layout); NoteContrast's note encoder starts from it.
    pub base: PathBuf,
    /// ontovec data dir (the store is `DATA_DIR/store`) with what the run trains on.
    pub data_dir: PathBuf,
    /// Output model folder, e.g. `models/NAME` (NoteContrast writes its codes model to
    /// `<out>-codes`); a checkpoint there is resumed.
    pub out: PathBuf,
    /// Preset.
    pub preset: Preset,
    /// JSON file overriding preset fields.
    pub config: Option<PathBuf>,
}

/// `preset` with the fields of the JSON object in `file` (if any) merged over it: objects merge
/// key by key, any other value replaces.
pub fn with_overrides<T>(preset: T, file: Option<&Path>) -> anyhow::Result<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut v = serde_json::to_value(preset)?;
    if let Some(f) = file {
        let o: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        )
        .with_context(|| format!("parsing {}", f.display()))?;
        merge(&mut v, o);
    }
    Ok(serde_json::from_value(v)?)
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}
