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
//! Two scorings, picked by the manifest:
//! * **segments** (models that carry `seg.*` and `gate.*` tensors and a `segments` setting):
//!   the note is cut into segments ([`super::segments`]), each segment vector `s_j` gets its own
//!   projection `z_j = normalise(W_s s_j + b_s)` and a gate `g_j = log σ(w_g · s_j + b_g)` (the
//!   model learns to silence negated, resolved and incidental mentions), and code `c` scores
//!   `τ · log Σ_j exp((z_j · u_c + g_j) / τ)` — a soft maximum over the segments (label-wise
//!   attention; τ from the manifest);
//! * **pooled** (older models): the projected, unit-norm pooled note vector against every code
//!   vector.
//!
//! Both are brute force over the code vectors (V up to ~100k), optionally restricted to one
//! system.
//!
//! **Blending in the descriptions** (models that carry `desc_vectors` and `blend`): a code seen in
//! few training notes has a code vector trained on little, while its description embedding is
//! what zero-shot coding ranks well. Such a model scores a segment against code `c` by
//! `(1 − w_c) · z_j·u_c + w_c · s_j·d_c`, the trained cosine blended with the cosine between the
//! unprojected segment `s_j` and the code's description embedding `d_c`, with a per-code weight
//! `w_c = w · h / (h + n_c)` that fades with the code's training notes `n_c` (the trainer tunes
//! `w` on the dev split; `h` is the rare-code bound). The blend is inside the soft maximum, so
//! one segment has to support both views, and the evidence shares stay one softmax.

use super::rank::{Diversity, NO_SEGMENT};
use super::segments::SegmentConfig;
use super::windows::WindowConfig;
use crate::domain::model::ConceptRef;
use crate::util::fs::{write_atomic, write_atomic_with};
use crate::util::vector::dot;
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
    /// Segment settings when the model scores codes by attending over segments.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segments: Option<SegmentConfig>,
    /// Temperature τ of the soft maximum over segments.
    #[serde(default = "default_attn_temperature")]
    pub attn_temperature: f32,
    /// How the served list is diversified (tuned on the dev split; older models: categories
    /// only, [`super::rank::DEFAULT_PENALTY`]).
    #[serde(default)]
    pub diversity: Diversity,
    /// The description blend weight `w` (0: none; the per-code weights are in the weights file).
    #[serde(default)]
    pub blend: f32,
}

fn default_attn_temperature() -> f32 {
    0.05
}

/// The segment side of a coding model: per-segment projection and gate.
#[derive(Debug, Clone)]
pub struct SegmentHead {
    w: Vec<f32>,
    b: Vec<f32>,
    gate_w: Vec<f32>,
    gate_b: f32,
}

/// The tensors of a coding model, as the trainer hands them over.
pub struct CodingTensors<'a> {
    /// Note projection (d×d) and bias (d).
    pub head: (&'a Tensor, &'a Tensor),
    /// Unit code vectors (V×d).
    pub code_vectors: &'a Tensor,
    /// Segment projection (d×d), bias (d), gate weight (d), gate bias (1).
    pub segments: Option<[&'a Tensor; 4]>,
    /// Unit description embeddings of the codes (V×d) and each code's blend weight (V).
    pub blend: Option<(&'a Tensor, &'a Tensor)>,
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
    /// The code vectors transposed (d × V), for the segment × code product.
    vectors_t: Tensor,
    segment_head: Option<SegmentHead>,
    /// Description embeddings transposed (d × V) and per-code blend weights (module docs).
    blend: Option<(Tensor, Vec<f32>)>,
}

fn transposed(vectors: &[f32], dim: usize) -> candle_core::Result<Tensor> {
    Tensor::from_slice(vectors, (vectors.len() / dim.max(1), dim), &Device::Cpu)?
        .t()?
        .contiguous()
}

/// A code scored for a note.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoredCode {
    /// Row of the code in the model's vocabulary.
    pub index: usize,
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
        let seg = match manifest.segments {
            None => None,
            Some(_) => {
                let seg = [
                    get("seg.weight")?,
                    get("seg.bias")?,
                    get("gate.weight")?,
                    get("gate.bias")?,
                ];
                if seg[0].dims() != [dim, dim] || seg[1].dims() != [dim] || seg[2].dims() != [dim] {
                    return Err(read_err(&wpath, "segment head and code vectors disagree"));
                }
                Some(seg)
            }
        };
        let blend = match (t.get("desc_vectors"), t.get("blend")) {
            (Some(dv), Some(w)) => {
                if dv.dims() != [v_rows, dim] || w.dims() != [v_rows] {
                    return Err(read_err(&wpath, "description vectors and codes disagree"));
                }
                Some((dv.clone(), w.clone()))
            }
            _ => None,
        };
        let t = CodingTensors {
            head: (&hw, &hb),
            code_vectors: &cv,
            segments: seg.as_ref().map(|[a, b, c, d]| [a, b, c, d]),
            blend: blend.as_ref().map(|(a, b)| (a, b)),
        };
        Self::from_tensors(manifest, codes, &t)
            .map(Some)
            .map_err(|e| read_err(&wpath, e))
    }

    /// Build from tensors in memory (the trainer evaluates exactly what it will write).
    pub fn from_tensors(
        manifest: CodingManifest,
        codes: Vec<ConceptRef>,
        t: &CodingTensors<'_>,
    ) -> anyhow::Result<Self> {
        let flat = |x: &Tensor| -> anyhow::Result<Vec<f32>> { Ok(x.flatten_all()?.to_vec1()?) };
        let (_, dim) = t.code_vectors.dims2()?;
        let segment_head = match (&manifest.segments, t.segments) {
            (Some(_), Some([sw, sb, gw, gb])) => Some(SegmentHead {
                w: flat(sw)?,
                b: flat(sb)?,
                gate_w: flat(gw)?,
                gate_b: flat(gb)?.first().copied().unwrap_or(0.0),
            }),
            (None, _) => None,
            (Some(_), None) => anyhow::bail!("segment scoring without segment tensors"),
        };
        let vectors = flat(t.code_vectors)?;
        let blend = match t.blend {
            Some((dv, w)) if segment_head.is_some() => {
                anyhow::ensure!(
                    dv.dims2()? == t.code_vectors.dims2()?,
                    "description and code vectors disagree in shape"
                );
                Some((dv.t()?.contiguous()?, flat(w)?))
            }
            _ => None,
        };
        Ok(Self {
            blend,
            manifest,
            dim,
            head_w: flat(t.head.0)?,
            head_b: flat(t.head.1)?,
            codes,
            vectors_t: transposed(&vectors, dim)?,
            vectors,
            segment_head,
        })
    }

    /// Write the coding files of a model folder (the trainer's side of [`Self::load`]).
    pub fn write(dir: &Path, codes: &[ConceptRef], t: &CodingTensors<'_>) -> anyhow::Result<()> {
        let mut m = HashMap::new();
        m.insert("head.weight".to_string(), t.head.0.clone());
        m.insert("head.bias".to_string(), t.head.1.clone());
        m.insert("code_vectors".to_string(), t.code_vectors.clone());
        if let Some([sw, sb, gw, gb]) = t.segments {
            m.insert("seg.weight".to_string(), sw.clone());
            m.insert("seg.bias".to_string(), sb.clone());
            m.insert("gate.weight".to_string(), gw.clone());
            m.insert("gate.bias".to_string(), gb.clone());
        }
        if let Some((dv, w)) = t.blend {
            m.insert("desc_vectors".to_string(), dv.clone());
            m.insert("blend".to_string(), w.clone());
        }
        write_atomic_with(&dir.join(WEIGHTS_FILE), |tmp| {
            candle_core::safetensors::save(&m, tmp)
        })?;
        write_atomic(&dir.join(CODES_FILE), &serde_json::to_vec(codes)?)?;
        Ok(())
    }

    /// Segment settings when this model scores by attending over segments.
    pub fn segment_config(&self) -> Option<SegmentConfig> {
        self.segment_head.as_ref().and(self.manifest.segments)
    }

    /// Scores of every code for a note given its unit segment vectors (segment scoring; see
    /// the module docs). Falls back to `pooled` (already projected) when the model has no
    /// segment head or the note has no segments.
    pub fn score_all(&self, segments: &[Vec<f32>], pooled: &[f32]) -> Vec<f32> {
        self.score_best(segments, pooled).0
    }

    /// [`Self::score_all`], with each code's best segment (the one its soft maximum leans on
    /// most; [`NO_SEGMENT`] when scored by the pooled vector).
    pub fn score_best(&self, segments: &[Vec<f32>], pooled: &[f32]) -> (Vec<f32>, Vec<u32>) {
        let d = self.dim;
        let v = self.codes.len();
        let Some(h) = self.segment_head.as_ref().filter(|_| !segments.is_empty()) else {
            let s = self
                .vectors
                .chunks_exact(d)
                .map(|c| dot(c, pooled))
                .collect();
            return (s, vec![NO_SEGMENT; v]);
        };
        let tau = self.manifest.attn_temperature.max(1e-4);
        let (z, g) = seg_features(h, segments);
        let n = segments.len();
        // segment × code cosines in one matrix product (V is up to ~100k codes)
        let product = |rows: Vec<f32>, t: &Tensor| -> Vec<f32> {
            Tensor::from_vec(rows, (n, d), &Device::Cpu)
                .and_then(|m| m.matmul(t))
                .and_then(|m| m.flatten_all())
                .and_then(|m| m.to_vec1::<f32>())
                // cannot fail: rows is n × d by construction and t is d × V
                .unwrap_or_default()
        };
        let mut sims = product(z, &self.vectors_t);
        if let Some((desc_t, w)) = &self.blend {
            let raw = product(segments.iter().flatten().copied().collect(), desc_t);
            for (row, raw_row) in sims.chunks_exact_mut(v).zip(raw.chunks_exact(v)) {
                for ((x, r), wc) in row.iter_mut().zip(raw_row).zip(w) {
                    *x = (1.0 - wc) * *x + wc * r;
                }
            }
        }
        let mut best = vec![f32::NEG_INFINITY; v];
        let mut arg = vec![0u32; v];
        for (j, (row, gj)) in sims.chunks_exact(v).zip(&g).enumerate() {
            for ((b, a), x) in best.iter_mut().zip(arg.iter_mut()).zip(row) {
                let l = (x + gj) / tau;
                if l > *b {
                    *b = l;
                    *a = j as u32;
                }
            }
        }
        let mut sum = vec![0f32; v];
        for (row, gj) in sims.chunks_exact(v).zip(&g) {
            for ((s, x), b) in sum.iter_mut().zip(row).zip(&best) {
                *s += ((x + gj) / tau - b).exp();
            }
        }
        let scores = best
            .iter()
            .zip(&sum)
            .map(|(b, s)| tau * (b + s.ln()))
            .collect();
        (scores, arg)
    }

    /// Codes ranked for a note, best first, from its segment vectors and projected note vector
    /// (see [`Self::score_all`]); `system` restricts the vocabulary.
    pub fn rank(
        &self,
        segments: &[Vec<f32>],
        pooled: &[f32],
        system: Option<&str>,
        k: usize,
    ) -> Vec<ScoredCode> {
        self.rank_diverse(segments, pooled, system, k, Diversity::NONE)
    }

    /// Like [`Self::rank`], the list diversified across 3-character categories and best
    /// segments ([`super::rank::diversify`]).
    pub fn rank_diverse(
        &self,
        segments: &[Vec<f32>],
        pooled: &[f32],
        system: Option<&str>,
        k: usize,
        div: Diversity,
    ) -> Vec<ScoredCode> {
        let (scores, best) = self.score_best(segments, pooled);
        let scored: Vec<(usize, f32)> = scores
            .into_iter()
            .enumerate()
            .filter(|(i, _)| system.is_none_or(|s| self.codes[*i].system == s))
            .collect();
        let cat = |i: usize| super::rank::category(&self.codes[i].code);
        super::rank::diversify(&scored, cat, |i| best[i], k, div)
            .into_iter()
            .map(|(i, score)| ScoredCode {
                index: i,
                code: self.codes[i].clone(),
                score,
            })
            .collect()
    }

    /// For each code row of `codes`, every segment's share of its score (the softmax weights of
    /// the gated soft maximum, summing to 1); empty without segment scoring or segments.
    pub fn shares(&self, segments: &[Vec<f32>], codes: &[usize]) -> Vec<Vec<(usize, f32)>> {
        let Some(h) = self.segment_head.as_ref().filter(|_| !segments.is_empty()) else {
            return vec![Vec::new(); codes.len()];
        };
        let (d, tau) = (self.dim, self.manifest.attn_temperature.max(1e-4));
        let (z, g) = seg_features(h, segments);
        codes
            .iter()
            .map(|&c| {
                let u = &self.vectors[c * d..(c + 1) * d];
                // the description side of a blended score (module docs)
                let desc = self.blend.as_ref().and_then(|(dt, w)| {
                    let col = dt.narrow(1, c, 1).and_then(|x| x.flatten_all());
                    Some((col.and_then(|x| x.to_vec1::<f32>()).ok()?, w[c]))
                });
                let l: Vec<f32> = z
                    .chunks_exact(d)
                    .zip(segments)
                    .zip(&g)
                    .map(|((zj, sj), gj)| {
                        let x = match &desc {
                            Some((dc, wc)) => (1.0 - wc) * dot(zj, u) + wc * dot(sj, dc),
                            None => dot(zj, u),
                        };
                        (x + gj) / tau
                    })
                    .collect();
                let m = l.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = l.iter().map(|x| (x - m).exp()).collect();
                let sum: f32 = e.iter().sum::<f32>().max(f32::MIN_POSITIVE);
                e.into_iter()
                    .enumerate()
                    .map(|(j, x)| (j, x / sum))
                    .collect()
            })
            .collect()
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
}

/// Projected unit segment vectors (flat, segments × d) and gates `log σ(w·s + b)`.
fn seg_features(h: &SegmentHead, segments: &[Vec<f32>]) -> (Vec<f32>, Vec<f32>) {
    let z = segments
        .iter()
        .flat_map(|s| project(&h.w, &h.b, s))
        .collect();
    let g = segments
        .iter()
        .map(|s| log_sigmoid(dot(&h.gate_w, s) + h.gate_b))
        .collect();
    (z, g)
}

/// `log σ(x)`, stable for large |x|.
pub fn log_sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        -(-x).exp().ln_1p()
    } else {
        x - x.exp().ln_1p()
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

/// A code of a coding answer with the spans that support it.
#[derive(Debug, Clone)]
pub struct Coded {
    /// The code and its raw score.
    pub code: ScoredCode,
    /// Supporting spans, strongest first.
    pub evidence: Vec<super::rank::Evidence>,
}

/// Code a note with a trained model: the list diversified per `div`, each code with its
/// evidence. `text` is the submitted text (the spans of `note` index it). A model that reads
/// segments codes nothing when no segment is left (every statement negated, family or
/// resolved history): the caller says so.
pub fn code_note(
    coder: &CodingModel,
    text: &str,
    note: &super::EmbeddedNote,
    system: Option<&str>,
    k: usize,
    div: Diversity,
) -> Vec<Coded> {
    if coder.segment_config().is_some() && note.segments.is_empty() {
        return Vec::new();
    }
    let ranked = coder.rank_diverse(&note.segments, &note.pooled, system, k, div);
    let idx: Vec<usize> = ranked.iter().map(|c| c.index).collect();
    let shares = coder.shares(&note.segments, &idx);
    ranked
        .into_iter()
        .zip(shares)
        .map(|(code, sh)| Coded {
            evidence: super::rank::evidence(text, &note.spans, &sh),
            code,
        })
        .collect()
}

#[cfg(test)]
#[path = "coding_tests.rs"]
mod tests;
