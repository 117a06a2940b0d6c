//! AdamW (decoupled weight decay, Loshchilov & Hutter 2019) with linear warm-up and linear
//! decay, global-norm gradient clipping and gradient accumulation.
//!
//! Moments live in plain `Vec<f32>`s rather than tensors: the update is one fused loop per
//! parameter (no temporaries), and the state is trivially written to and read from checkpoints.
//! As in BERT fine-tuning practice, biases and LayerNorm weights are not decayed.

use candle_core::backprop::GradStore;
use candle_core::{DType, Result, Tensor, Var};

/// AdamW hyper-parameters.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct AdamWConfig {
    /// Peak learning rate (reached at the end of warm-up).
    pub lr: f64,
    /// First-moment decay.
    pub beta1: f64,
    /// Second-moment decay.
    pub beta2: f64,
    /// Denominator epsilon.
    pub eps: f64,
    /// Decoupled weight decay.
    pub weight_decay: f64,
}

impl Default for AdamWConfig {
    fn default() -> Self {
        // HiPrBERT: AdamW, lr 2e-5, weight decay 0.01 (arXiv 2307.00266).
        Self {
            lr: 2e-5,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
        }
    }
}

/// Learning rate at optimizer step `step` (0-based): linear warm-up over `warmup` steps to
/// `peak`, then linear decay to 0 at `total`.
pub fn lr_at(step: u64, peak: f64, warmup: u64, total: u64) -> f64 {
    if warmup > 0 && step < warmup {
        return peak * (step + 1) as f64 / warmup as f64;
    }
    let rest = total.saturating_sub(warmup).max(1);
    let done = step.saturating_sub(warmup);
    peak * (1.0 - done as f64 / rest as f64).max(0.0)
}

/// Whether a parameter is weight-decayed (not biases, not LayerNorm).
pub fn decays(name: &str) -> bool {
    !(name.ends_with(".bias") || name.contains("LayerNorm"))
}

/// Sums gradients over micro-batches, then hands out their mean.
pub struct GradAccumulator {
    sums: Vec<Vec<f32>>,
    count: usize,
}

impl GradAccumulator {
    /// An empty accumulator for `params`.
    pub fn new(params: &[(String, Var)]) -> Self {
        Self {
            sums: params
                .iter()
                .map(|(_, v)| vec![0.0; v.elem_count()])
                .collect(),
            count: 0,
        }
    }

    /// Add one micro-batch's gradients (parameters without gradient add zeros).
    pub fn add(&mut self, params: &[(String, Var)], grads: &GradStore) -> Result<()> {
        for ((_, var), sum) in params.iter().zip(self.sums.iter_mut()) {
            if let Some(g) = grads.get(var.as_tensor()) {
                let g: Vec<f32> = g.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?;
                for (s, x) in sum.iter_mut().zip(g) {
                    *s += x;
                }
            }
        }
        self.count += 1;
        Ok(())
    }

    /// Micro-batches added since the last [`Self::take_mean`].
    pub fn count(&self) -> usize {
        self.count
    }

    /// The mean gradient per parameter; resets the accumulator.
    pub fn take_mean(&mut self) -> Vec<Vec<f32>> {
        let n = self.count.max(1) as f32;
        self.count = 0;
        self.sums
            .iter_mut()
            .map(|s| {
                let out: Vec<f32> = s.iter().map(|x| x / n).collect();
                s.iter_mut().for_each(|x| *x = 0.0);
                out
            })
            .collect()
    }
}

/// Scale gradients so their global L2 norm is at most `max_norm`; returns the norm before.
pub fn clip_global_norm(grads: &mut [Vec<f32>], max_norm: f64) -> f64 {
    let norm = grads
        .iter()
        .flat_map(|g| g.iter())
        .map(|x| (*x as f64) * (*x as f64))
        .sum::<f64>()
        .sqrt();
    if max_norm > 0.0 && norm > max_norm {
        let s = (max_norm / (norm + 1e-6)) as f32;
        grads
            .iter_mut()
            .flat_map(|g| g.iter_mut())
            .for_each(|x| *x *= s);
    }
    norm
}

/// AdamW state: step count and both moments of every parameter.
pub struct AdamW {
    /// Hyper-parameters.
    pub config: AdamWConfig,
    /// Updates applied so far.
    pub step: u64,
    /// First moments, one per parameter (same order as the parameter list).
    pub m: Vec<Vec<f32>>,
    /// Second moments.
    pub v: Vec<Vec<f32>>,
}

impl AdamW {
    /// Fresh state for `params`.
    pub fn new(config: AdamWConfig, params: &[(String, Var)]) -> Self {
        Self {
            config,
            step: 0,
            m: params
                .iter()
                .map(|(_, v)| vec![0.0; v.elem_count()])
                .collect(),
            v: params
                .iter()
                .map(|(_, v)| vec![0.0; v.elem_count()])
                .collect(),
        }
    }

    /// Apply one update with learning rate `lr` and (already averaged, clipped) `grads`.
    pub fn update(&mut self, params: &[(String, Var)], grads: &[Vec<f32>], lr: f64) -> Result<()> {
        self.step += 1;
        let c = &self.config;
        let t = self.step as i32;
        let bc1 = 1.0 - c.beta1.powi(t);
        let bc2 = 1.0 - c.beta2.powi(t);
        let (b1, b2) = (c.beta1 as f32, c.beta2 as f32);
        let step_size = (lr / bc1) as f32;
        let inv_bc2 = (1.0 / bc2) as f32;
        let eps = c.eps as f32;
        for (i, (name, var)) in params.iter().enumerate() {
            let dt = var.dtype();
            let mut w: Vec<f32> = var
                .as_tensor()
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1()?;
            let decay = if decays(name) {
                (lr * c.weight_decay) as f32
            } else {
                0.0
            };
            let (m, v, g) = (&mut self.m[i], &mut self.v[i], &grads[i]);
            for (((w, m), v), &g) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
                *m = b1 * *m + (1.0 - b1) * g;
                *v = b2 * *v + (1.0 - b2) * g * g;
                let denom = (*v * inv_bc2).sqrt() + eps;
                *w -= step_size * *m / denom + decay * *w;
            }
            let t = Tensor::from_vec(w, var.shape(), var.device())?.to_dtype(dt)?;
            var.set(&t)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn schedule_warms_up_then_decays_to_zero() {
        assert!((lr_at(0, 1.0, 10, 100) - 0.1).abs() < 1e-12);
        assert!((lr_at(9, 1.0, 10, 100) - 1.0).abs() < 1e-12);
        assert!(lr_at(55, 1.0, 10, 100) < 1.0);
        assert_eq!(lr_at(100, 1.0, 10, 100), 0.0);
    }

    #[test]
    fn clipping_bounds_the_global_norm() {
        let mut g = vec![vec![3.0f32], vec![4.0]];
        assert!((clip_global_norm(&mut g, 1.0) - 5.0).abs() < 1e-9);
        let n: f32 = (g[0][0].powi(2) + g[1][0].powi(2)).sqrt();
        assert!((n - 1.0).abs() < 1e-4);
    }

    #[test]
    fn adamw_minimises_a_quadratic() {
        let x = Var::from_vec(vec![3.0f32, -2.0], 2, &Device::Cpu).unwrap();
        let params = vec![("w".to_string(), x.clone())];
        let cfg = AdamWConfig {
            lr: 0.1,
            weight_decay: 0.0,
            ..Default::default()
        };
        let mut opt = AdamW::new(cfg, &params);
        let mut acc = GradAccumulator::new(&params);
        for _ in 0..300 {
            let loss = x.as_tensor().sqr().unwrap().sum_all().unwrap();
            acc.add(&params, &loss.backward().unwrap()).unwrap();
            let g = acc.take_mean();
            opt.update(&params, &g, 0.1).unwrap();
        }
        let v: Vec<f32> = x.as_tensor().to_vec1().unwrap();
        assert!(v.iter().all(|x| x.abs() < 0.05), "{v:?}");
    }
}
