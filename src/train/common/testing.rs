//! Helpers the trainer's tests share (unit and integration tests).

use candle_core::{Device, Tensor};
use rand::{Rng, SeedableRng};

/// A seeded F32 tensor with entries uniform in (−scale, scale).
pub fn randn(seed: u64, shape: &[usize], scale: f32) -> Tensor {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.gen_range(-scale..scale)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// Largest absolute elementwise difference of two same-shape F32 tensors.
pub fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    max_abs(&(a - b).unwrap())
}

/// Largest absolute element of an F32 tensor.
pub fn max_abs(t: &Tensor) -> f32 {
    t.abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar::<f32>()
        .unwrap()
}
