//! Differentiable building blocks the trainer needs and candle's fused CPU kernels lack.
//!
//! `candle_nn::LayerNorm` and `candle_nn::ops::softmax_last_dim` run fused kernels whose
//! backward pass is not implemented: gradients through them are silently cut. The `*_composed`
//! functions here are built from elementary tensor ops (mean, broadcast, exp, sum, sqrt) that
//! candle's autograd differentiates — the specification; [`layer_norm`], [`softmax_last_dim`]
//! and [`gelu_erf`] run our own fused kernels with hand-written backward ([`super::fused`])
//! for F32 and the composed forms otherwise. Dropout draws its masks from our own seeded ChaCha RNG because candle's CPU
//! RNG cannot be seeded.

use candle_core::{DType, Result, Tensor, D};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Layer normalisation over the last dimension: `(x - mean) / sqrt(var + eps) * w + b`,
/// with the biased variance as in PyTorch/HF BERT. F32 runs the fused kernel
/// ([`super::fused::layer_norm`]), other types the composed specification.
pub fn layer_norm(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    if super::fused::supports(x) {
        super::fused::layer_norm(x, weight, bias, eps)
    } else {
        layer_norm_composed(x, weight, bias, eps)
    }
}

/// [`layer_norm`] composed from elementary ops (the specification the fused kernel is tested
/// against; used for F64 gradient checks).
pub fn layer_norm_composed(x: &Tensor, weight: &Tensor, bias: &Tensor, eps: f64) -> Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centred = x.broadcast_sub(&mean)?;
    let var = centred.sqr()?.mean_keepdim(D::Minus1)?;
    let inv_std = (var + eps)?.sqrt()?.recip()?;
    centred
        .broadcast_mul(&inv_std)?
        .broadcast_mul(weight)?
        .broadcast_add(bias)
}

/// Softmax over the last dimension (fused kernel for F32, else [`softmax_composed`]).
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    if super::fused::supports(x) {
        super::fused::softmax_last_dim(x)
    } else {
        softmax_composed(x)
    }
}

/// GELU, erf form (fused kernel for F32, else candle's differentiable `gelu_erf`).
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    if super::fused::supports(x) {
        super::fused::gelu_erf(x)
    } else {
        x.gelu_erf()
    }
}

/// Softmax composed from elementary ops. The row maximum is subtracted for stability and
/// detached: softmax is shift-invariant, so the detached shift changes neither value nor gradient.
pub fn softmax_composed(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let sum = e.sum_keepdim(D::Minus1)?;
    e.broadcast_div(&sum)
}

/// Mean of token states over the attention mask: `states` (B, L, H), `mask` (B, L) in {0, 1}.
pub fn mean_pool(states: &Tensor, mask: &Tensor) -> Result<Tensor> {
    let m = mask.to_dtype(states.dtype())?.unsqueeze(2)?;
    let summed = states.broadcast_mul(&m)?.sum(1)?;
    let counts = m.sum(1)?.clamp(1e-9, f64::INFINITY)?;
    summed.broadcast_div(&counts)
}

/// Scale each row of a (N, H) matrix to unit L2 norm (rows of zeros stay near zero).
pub fn l2_normalize(x: &Tensor) -> Result<Tensor> {
    let norm = x.sqr()?.sum_keepdim(D::Minus1)?.sqrt()?;
    x.broadcast_div(&(norm + 1e-12)?)
}

/// Inverted dropout with masks drawn from a seeded ChaCha8 stream. `p = 0` (or evaluation,
/// where no `Dropout` is passed to the forward) is the identity.
pub struct Dropout {
    rng: ChaCha8Rng,
    /// Probability of zeroing an element of hidden states.
    pub hidden_p: f32,
    /// Probability of zeroing an attention probability.
    pub attention_p: f32,
}

impl Dropout {
    /// Dropout for one training step, seeded from the trainer's RNG so runs replay exactly.
    pub fn new(seed: u64, hidden_p: f32, attention_p: f32) -> Self {
        Self {
            rng: ChaCha8Rng::seed_from_u64(seed),
            hidden_p,
            attention_p,
        }
    }

    fn apply(&mut self, x: &Tensor, p: f32) -> Result<Tensor> {
        if p <= 0.0 {
            return Ok(x.clone());
        }
        let keep = 1.0 - p;
        let scale = 1.0 / keep;
        let n = x.elem_count();
        let mut mask = Vec::with_capacity(n);
        for _ in 0..n {
            mask.push(if self.rng.gen::<f32>() < keep {
                scale
            } else {
                0.0
            });
        }
        let mask = Tensor::from_vec(mask, x.shape(), x.device())?.to_dtype(x.dtype())?;
        x.mul(&mask)
    }

    /// Dropout on hidden states.
    pub fn hidden(&mut self, x: &Tensor) -> Result<Tensor> {
        let p = self.hidden_p;
        self.apply(x, p)
    }

    /// Dropout on attention probabilities.
    pub fn attention(&mut self, x: &Tensor) -> Result<Tensor> {
        let p = self.attention_p;
        self.apply(x, p)
    }
}

/// Dropout for a step run in chunks: every chunk draws its own mask stream from the step seed
/// and its chunk index, so a step replays exactly whichever thread runs which chunk.
#[derive(Debug, Clone, Copy)]
pub struct DropoutPlan {
    /// The step's seed.
    pub seed: u64,
    /// Probability of zeroing an element of hidden states.
    pub hidden_p: f32,
    /// Probability of zeroing an attention probability.
    pub attention_p: f32,
}

impl DropoutPlan {
    /// The dropout of chunk `c`.
    pub fn for_chunk(&self, c: usize) -> Dropout {
        let mix = (c as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Dropout::new(self.seed ^ mix, self.hidden_p, self.attention_p)
    }
}

/// Additive attention mask (B, 1, 1, L): 0 where `mask` is 1, a large negative number where 0.
pub fn additive_mask(mask: &Tensor, dtype: DType) -> Result<Tensor> {
    let m = mask.to_dtype(dtype)?;
    ((m.ones_like()? - m)? * -1e9f64)?
        .unsqueeze(1)?
        .unsqueeze(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::common::testing::max_abs_diff;
    use candle_core::{Device, Var};

    fn randn(seed: u64, shape: &[usize]) -> Tensor {
        crate::train::common::testing::randn(seed, shape, 1.0)
    }

    #[test]
    fn layer_norm_matches_candle_fused_kernel() {
        let x = randn(1, &[3, 5, 8]);
        let w = randn(2, &[8]);
        let b = randn(3, &[8]);
        let ours = layer_norm(&x, &w, &b, 1e-12).unwrap();
        let fused = candle_nn::LayerNorm::new(w, b, 1e-12);
        let theirs = candle_core::Module::forward(&fused, &x).unwrap();
        let d = max_abs_diff(&ours, &theirs);
        assert!(d < 1e-5, "max diff {d}");
    }

    #[test]
    fn softmax_matches_and_has_gradient() {
        let x = Var::from_tensor(&randn(4, &[2, 3, 7])).unwrap();
        let ours = softmax_last_dim(x.as_tensor()).unwrap();
        let theirs = candle_nn::ops::softmax_last_dim(x.as_tensor()).unwrap();
        let d = max_abs_diff(&ours, &theirs);
        assert!(d < 1e-6);
        let w = randn(5, &[2, 3, 7]);
        let loss = (ours * w).unwrap().sum_all().unwrap();
        let g = loss.backward().unwrap();
        let gx = g.get(x.as_tensor()).expect("gradient reaches the input");
        let s = gx
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(s > 0.0);
    }

    #[test]
    fn dropout_is_seeded_and_scaled() {
        let x = Tensor::ones((4, 1000), DType::F32, &Device::Cpu).unwrap();
        let a = Dropout::new(7, 0.25, 0.0).hidden(&x).unwrap();
        let b = Dropout::new(7, 0.25, 0.0).hidden(&x).unwrap();
        let va: Vec<f32> = a.flatten_all().unwrap().to_vec1().unwrap();
        let vb: Vec<f32> = b.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(va, vb);
        let zeros = va.iter().filter(|v| **v == 0.0).count() as f32 / va.len() as f32;
        assert!((zeros - 0.25).abs() < 0.03, "drop rate {zeros}");
        let mean: f32 = va.iter().sum::<f32>() / va.len() as f32;
        assert!((mean - 1.0).abs() < 0.05);
    }
}
