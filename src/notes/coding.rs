//! ICD coding of notes with a trained NoteContrast model, and the files that carry it.
//!
//! A trained notes model folder (written by `ontovec train notecontrast`) is an ordinary HF BERT
//! folder (the note encoder, served by the registry as kind `notes`) plus:
//! * `notecontrast.safetensors`: `head.weight` (d×d) and `head.bias` (d), the note projection
//!   applied after window pooling, and `code_vectors` (V×d): the unit-norm embedding of every
//!   code of the vocabulary by the trained code-sequence encoder (the sequence `[CLS] code [SEP]`);
//! * `codes.json`: the V codes (`[{"system","code"}]`) in row order;
//! * `ontovec.json` → `notecontrast`: window settings, the codes model's name, and the decision
//!   threshold tuned on the dev split for set prediction.
//!
//! Ranking is a dot product of the projected, unit-norm note vector with every code vector
//! (brute force: V is a few thousand), optionally restricted to one system.

use super::windows::WindowConfig;
use crate::store::model::ConceptRef;
use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;

/// File with the head and code vectors.
pub const WEIGHTS_FILE: &str = "notecontrast.safetensors";
/// File with the code list.
pub const CODES_FILE: &str = "codes.json";

/// The `notecontrast` section of a notes model's `ontovec.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CodingManifest {
    /// Window settings the model was trained with.
    pub window: WindowConfig,
    /// Name of the code-sequence model folder written next to it (kind `codes`).
    pub codes_model: String,
    /// Cosine above which a code is predicted (tuned on dev for micro-F1).
    pub threshold: f32,
    /// Systems of the code vocabulary.
    pub systems: Vec<String>,
}

/// A loaded coding model.
#[derive(Debug, Clone)]
pub struct CodingModel {
    /// Settings.
    pub manifest: CodingManifest,
    dim: usize,
    head_w: Vec<f32>,
    head_b: Vec<f32>,
    codes: Vec<ConceptRef>,
    vectors: Vec<f32>,
}

/// A code scored for a note.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredCode {
    /// The code.
    pub code: ConceptRef,
    /// Cosine between note and code vectors.
    pub score: f32,
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

impl CodingModel {
    /// Load from a model folder; `Ok(None)` when the folder is not a NoteContrast notes model.
    pub fn load(dir: &Path) -> Result<Option<Self>, String> {
        let mpath = dir.join(crate::encoder::manifest::MANIFEST_FILE);
        let Ok(text) = std::fs::read_to_string(&mpath) else {
            return Ok(None);
        };
        let v: serde_json::Value = serde_json::from_str(&text).map_err(|e| read_err(&mpath, e))?;
        let Some(section) = v.get("notecontrast") else {
            return Ok(None);
        };
        let manifest: CodingManifest =
            serde_json::from_value(section.clone()).map_err(|e| read_err(&mpath, e))?;
        let wpath = dir.join(WEIGHTS_FILE);
        let t = candle_core::safetensors::load(&wpath, &Device::Cpu)
            .map_err(|e| read_err(&wpath, e))?;
        let get = |n: &str| -> Result<Tensor, String> {
            t.get(n)
                .cloned()
                .ok_or_else(|| read_err(&wpath, format!("missing tensor {n}")))
        };
        let (hw, hb, cv) = (get("head.weight")?, get("head.bias")?, get("code_vectors")?);
        let flat = |x: &Tensor| -> Result<Vec<f32>, String> {
            x.flatten_all()
                .and_then(|f| f.to_vec1::<f32>())
                .map_err(|e| read_err(&wpath, e))
        };
        let dims = hw.dims().to_vec();
        let (v_rows, dim) = cv.dims2().map_err(|e| read_err(&wpath, e))?;
        if dims != [dim, dim] || hb.dims() != [dim] {
            return Err(read_err(&wpath, "head and code vectors disagree in size"));
        }
        let cpath = dir.join(CODES_FILE);
        let codes: Vec<ConceptRef> = serde_json::from_str(
            &std::fs::read_to_string(&cpath).map_err(|e| read_err(&cpath, e))?,
        )
        .map_err(|e| read_err(&cpath, e))?;
        if codes.len() != v_rows {
            return Err(read_err(&cpath, "code list and code vectors disagree"));
        }
        Ok(Some(Self {
            manifest,
            dim,
            head_w: flat(&hw)?,
            head_b: flat(&hb)?,
            codes,
            vectors: flat(&cv)?,
        }))
    }

    /// Write the coding files of a model folder (the trainer's side of [`Self::load`]).
    pub fn write(
        dir: &Path,
        head_w: &Tensor,
        head_b: &Tensor,
        codes: &[ConceptRef],
        code_vectors: &Tensor,
    ) -> anyhow::Result<()> {
        let mut m = HashMap::new();
        m.insert("head.weight".to_string(), head_w.clone());
        m.insert("head.bias".to_string(), head_b.clone());
        m.insert("code_vectors".to_string(), code_vectors.clone());
        candle_core::safetensors::save(&m, dir.join(WEIGHTS_FILE))?;
        std::fs::write(dir.join(CODES_FILE), serde_json::to_vec(codes)?)?;
        Ok(())
    }

    /// Vector size.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Codes of the vocabulary.
    pub fn codes(&self) -> &[ConceptRef] {
        &self.codes
    }

    /// Apply the note head to a pooled note vector: `normalise(W x + b)`.
    pub fn project(&self, pooled: &[f32]) -> Vec<f32> {
        project(&self.head_w, &self.head_b, pooled)
    }

    /// Codes ranked for a projected note vector, best first; `system` restricts the vocabulary.
    pub fn rank(&self, note: &[f32], system: Option<&str>, k: usize) -> Vec<ScoredCode> {
        let mut scored: Vec<(usize, f32)> = self
            .vectors
            .chunks_exact(self.dim)
            .enumerate()
            .filter(|(i, _)| system.is_none_or(|s| self.codes[*i].system == s))
            .map(|(i, v)| (i, v.iter().zip(note).map(|(a, b)| a * b).sum()))
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(k);
        scored
            .into_iter()
            .map(|(i, score)| ScoredCode {
                code: self.codes[i].clone(),
                score,
            })
            .collect()
    }
}

/// `normalise(W x + b)` for a row-major d×d `w`.
pub fn project(w: &[f32], b: &[f32], x: &[f32]) -> Vec<f32> {
    let d = b.len();
    let mut out: Vec<f32> = (0..d)
        .map(|r| {
            b[r] + w[r * d..(r + 1) * d]
                .iter()
                .zip(x)
                .map(|(a, c)| a * c)
                .sum::<f32>()
        })
        .collect();
    crate::encoder::pooling::l2_normalize(&mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_round_trip_and_rank() {
        let dir = tempfile::tempdir().unwrap();
        let dev = Device::Cpu;
        let eye = Tensor::eye(2, candle_core::DType::F32, &dev).unwrap();
        let b = Tensor::zeros(2, candle_core::DType::F32, &dev).unwrap();
        let cv = Tensor::new(&[[1f32, 0.], [0., 1.], [0.6, 0.8]], &dev).unwrap();
        let codes = vec![
            ConceptRef::new("ICD10CM", "E11.9"),
            ConceptRef::new("ICD10CM", "I10"),
            ConceptRef::new("ICD9CM", "401.9"),
        ];
        CodingModel::write(dir.path(), &eye, &b, &codes, &cv).unwrap();
        assert!(CodingModel::load(dir.path()).unwrap().is_none());
        let m = CodingManifest {
            window: WindowConfig::for_max_len(128),
            codes_model: "x-codes".into(),
            threshold: 0.5,
            systems: vec!["ICD10CM".into()],
        };
        std::fs::write(
            dir.path().join("ontovec.json"),
            serde_json::json!({"kind": "notes", "notecontrast": m}).to_string(),
        )
        .unwrap();
        let c = CodingModel::load(dir.path()).unwrap().unwrap();
        let v = c.project(&[0.0, 2.0]);
        let r = c.rank(&v, None, 2);
        assert_eq!(r[0].code.code, "I10");
        assert_eq!(r[1].code.code, "401.9");
        let r = c.rank(&v, Some("ICD9CM"), 5);
        assert_eq!(r.len(), 1);
    }
}
