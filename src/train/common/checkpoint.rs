//! Training checkpoints: weights, AdamW moments, step and RNG state in one safetensors file,
//! written atomically (temporary file, fsync, rename, fsync of the directory), so a `kill -9`
//! at any moment leaves either the previous checkpoint or the new one, never a torn file.
//!
//! Tensors are stored as `param/<name>`, `adam_m/<name>`, `adam_v/<name>`; the JSON
//! [`TrainState`] rides in the safetensors metadata under `ontovec_train_state`.

use crate::train::common::optim::AdamW;
use crate::util::fs::write_atomic;
use candle_core::{DType, Tensor, Var};
use rand_chacha::ChaCha8Rng;
use safetensors::tensor::{Dtype, TensorView};
use std::collections::HashMap;
use std::path::Path;

/// File name of the checkpoint inside the output folder's `checkpoint/` directory.
pub const CHECKPOINT_FILE: &str = "checkpoint.safetensors";
const STATE_KEY: &str = "ontovec_train_state";

/// The exact position of a ChaCha8 stream (enough to continue it bit for bit).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RngState {
    /// Seed as 64 hex digits.
    pub seed: String,
    /// Stream number.
    pub stream: u64,
    /// Word position (u128 as decimal text: JSON numbers cannot hold it).
    pub word_pos: String,
}

impl RngState {
    /// Capture the state of `rng`.
    pub fn capture(rng: &ChaCha8Rng) -> Self {
        let seed: String = rng.get_seed().iter().map(|b| format!("{b:02x}")).collect();
        Self {
            seed,
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// Rebuild the generator at the captured position.
    pub fn restore(&self) -> anyhow::Result<ChaCha8Rng> {
        use rand::SeedableRng;
        let mut seed = [0u8; 32];
        anyhow::ensure!(self.seed.len() == 64, "bad RNG seed in checkpoint");
        for (i, b) in seed.iter_mut().enumerate() {
            *b = u8::from_str_radix(&self.seed[2 * i..2 * i + 2], 16)?;
        }
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos.parse()?);
        Ok(rng)
    }
}

/// Everything but tensors needed to resume.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct TrainState {
    /// Optimizer steps completed.
    pub step: u64,
    /// Training examples (strings) consumed.
    pub examples: u64,
    /// Real (unpadded) tokens consumed.
    pub tokens: u64,
    /// Training wall time so far, seconds (excluding data building and evaluation).
    pub train_secs: f64,
    /// Data-sampling RNG.
    pub rng: RngState,
    /// Fingerprint of the training configuration; resuming under another config is refused.
    pub config_fingerprint: String,
    /// (step, tree loss, synonym loss) every logged step.
    pub loss_log: Vec<(u64, f32, f32)>,
    /// Dev metrics at every evaluation step (older checkpoints have none).
    #[serde(default)]
    pub dev_log: Vec<DevPoint>,
}

/// Dev metrics measured at one optimizer step during training (the second panel of the
/// model card's `curves.svg`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct DevPoint {
    /// Optimizer steps done when measured.
    pub step: u64,
    /// Metric name → value; metrics not measurable at this step (NaN) are left out.
    pub metrics: std::collections::BTreeMap<String, f64>,
}

/// Resume from the checkpoint in `dir` when there is one (refusing one written under another
/// configuration), else start a fresh state seeded with `seed`. Shared by every trainer.
pub fn resume_or_start(
    dir: &Path,
    params: &[(String, Var)],
    opt: &mut AdamW,
    fingerprint: String,
    seed: u64,
) -> anyhow::Result<TrainState> {
    use rand::SeedableRng;
    match load(dir, params, opt)? {
        Some(s) => {
            anyhow::ensure!(
                s.config_fingerprint == fingerprint,
                "{} holds a checkpoint of another configuration; remove it or use the same config",
                dir.display()
            );
            tracing::info!(step = s.step, "resuming from checkpoint");
            Ok(s)
        }
        None => Ok(TrainState {
            step: 0,
            examples: 0,
            tokens: 0,
            train_secs: 0.0,
            rng: RngState::capture(&ChaCha8Rng::seed_from_u64(seed)),
            config_fingerprint: fingerprint,
            loss_log: Vec::new(),
            dev_log: Vec::new(),
        }),
    }
}

/// The CLI progress bar of training loops: `n` steps labelled `msg`.
pub fn progress_bar(n: u64, msg: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(n);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(msg.to_string());
    bar
}

fn f32_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Write a checkpoint atomically to `dir/checkpoint.safetensors`.
pub fn save(
    dir: &Path,
    params: &[(String, Var)],
    opt: &AdamW,
    state: &TrainState,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut blobs: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    for (i, (name, var)) in params.iter().enumerate() {
        let w: Vec<f32> = var
            .as_tensor()
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1()?;
        let shape = var.dims().to_vec();
        blobs.push((format!("param/{name}"), shape.clone(), f32_bytes(&w)));
        blobs.push((
            format!("adam_m/{name}"),
            shape.clone(),
            f32_bytes(&opt.m[i]),
        ));
        blobs.push((format!("adam_v/{name}"), shape, f32_bytes(&opt.v[i])));
    }
    let views: Vec<(String, TensorView<'_>)> = blobs
        .iter()
        .map(|(n, s, b)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let mut meta = HashMap::new();
    meta.insert(STATE_KEY.to_string(), serde_json::to_string(state)?);
    let bytes = safetensors::serialize(views, &Some(meta))?;
    write_atomic(&dir.join(CHECKPOINT_FILE), &bytes)?;
    Ok(())
}

/// Read the checkpoint in `dir`, if any: sets the parameters and optimizer moments in place
/// and returns the saved state.
pub fn load(
    dir: &Path,
    params: &[(String, Var)],
    opt: &mut AdamW,
) -> anyhow::Result<Option<TrainState>> {
    let path = dir.join(CHECKPOINT_FILE);
    if !path.exists() {
        return Ok(None);
    }
    let bytes = std::fs::read(&path)?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)?;
    let state: TrainState = serde_json::from_str(
        meta.metadata()
            .as_ref()
            .and_then(|m| m.get(STATE_KEY))
            .ok_or_else(|| anyhow::anyhow!("checkpoint without training state"))?,
    )?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let read = |name: &str| -> anyhow::Result<Vec<f32>> {
        let t = st.tensor(name)?;
        anyhow::ensure!(t.dtype() == Dtype::F32, "{name}: not f32");
        Ok(t.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    for (i, (name, var)) in params.iter().enumerate() {
        let w = read(&format!("param/{name}"))?;
        anyhow::ensure!(
            w.len() == var.elem_count(),
            "{name}: shape changed since checkpoint"
        );
        var.set(&Tensor::from_vec(w, var.shape(), var.device())?.to_dtype(var.dtype())?)?;
        opt.m[i] = read(&format!("adam_m/{name}"))?;
        opt.v[i] = read(&format!("adam_v/{name}"))?;
    }
    opt.step = state.step;
    Ok(Some(state))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngCore, SeedableRng};

    #[test]
    fn rng_state_round_trips() {
        let mut rng = ChaCha8Rng::seed_from_u64(99);
        for _ in 0..37 {
            rng.next_u32();
        }
        let s = RngState::capture(&rng);
        let mut back = s.restore().unwrap();
        assert_eq!(rng.next_u64(), back.next_u64());
    }
}
