//! Fused LayerNorm, softmax and GELU for F32 training, each one pass forward and one pass
//! backward with the derivative written out by hand.
//!
//! The composed versions in [`super::ops`] are the specification: built from elementary candle
//! ops, they are differentiated by candle's autograd and checked against finite differences in
//! F64 (`tests/train_grad.rs`). Composed, a LayerNorm is 8 ops forward and ~20 backward, each a
//! full pass over the activations with a fresh allocation. The fused ops here compute the same
//! values and gradients (unit tests compare both against the composed versions) in one
//! read and one write per pass. [`super::ops`] dispatches to them for contiguous F32 inputs.
//!
//! Derivatives used (per row, `h` features):
//! * LayerNorm, `x̂ = (x − μ)·r` with `r = 1/√(σ² + ε)`, `y = x̂·w + b`:
//!   `∂x = r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))` with `ĝ = ∂y·w`; `∂w = Σ ∂y·x̂`; `∂b = Σ ∂y`.
//! * Softmax `y = eˣ/Σeˣ`: `∂x = y·(∂y − Σ ∂y·y)`.
//! * GELU `y = x·Φ(x)`: `∂x = ∂y·(Φ(x) + x·φ(x))`, `φ` the standard normal density.

use candle_core::{CpuStorage, CustomOp1, CustomOp3, DType, Layout, Result, Shape, Tensor};

/// The contiguous F32 data of `storage` under `layout`.
fn f32s<'a>(storage: &'a CpuStorage, layout: &Layout) -> Result<&'a [f32]> {
    let CpuStorage::F32(all) = storage else {
        candle_core::bail!("fused op: expected F32 data");
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        candle_core::bail!("fused op: expected a contiguous input");
    };
    Ok(&all[start..end])
}

/// A tensor's data as a contiguous F32 vector (for the backward passes).
fn data(t: &Tensor) -> Result<Vec<f32>> {
    t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

/// Whether the fused kernels can take `x` (F32 on the CPU).
pub fn supports(x: &Tensor) -> bool {
    x.dtype() == DType::F32 && x.device().is_cpu()
}

/// Mean and reciprocal standard deviation of a row.
fn moments(row: &[f32], eps: f32) -> (f32, f32) {
    let h = row.len() as f32;
    let mean = row.iter().sum::<f32>() / h;
    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h;
    (mean, 1.0 / (var + eps).sqrt())
}

struct LayerNorm {
    eps: f32,
}

impl CustomOp3 for LayerNorm {
    fn name(&self) -> &'static str {
        "fused-layer-norm"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
        s3: &CpuStorage,
        l3: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let (x, w, b) = (f32s(s1, l1)?, f32s(s2, l2)?, f32s(s3, l3)?);
        let h = w.len();
        if h == 0 || b.len() != h || x.len() % h != 0 {
            candle_core::bail!("layer norm: weight/bias of {h} do not divide {}", x.len());
        }
        let mut y = vec![0f32; x.len()];
        for (xr, yr) in x.chunks_exact(h).zip(y.chunks_exact_mut(h)) {
            let (mean, r) = moments(xr, self.eps);
            for (((o, &v), &wi), &bi) in yr.iter_mut().zip(xr).zip(w).zip(b) {
                *o = (v - mean) * r * wi + bi;
            }
        }
        Ok((CpuStorage::F32(y), l1.shape().clone()))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        _y: &Tensor,
        gy: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let (xv, wv, gv) = (data(x)?, data(w)?, data(gy)?);
        let h = wv.len();
        let mut gx = vec![0f32; xv.len()];
        let (mut gw, mut gb) = (vec![0f32; h], vec![0f32; h]);
        let mut xhat = vec![0f32; h];
        let mut ghat = vec![0f32; h];
        for ((xr, gr), gxr) in xv
            .chunks_exact(h)
            .zip(gv.chunks_exact(h))
            .zip(gx.chunks_exact_mut(h))
        {
            let (mean, r) = moments(xr, self.eps);
            let (mut sum_g, mut sum_gx) = (0f32, 0f32);
            for i in 0..h {
                xhat[i] = (xr[i] - mean) * r;
                ghat[i] = gr[i] * wv[i];
                sum_g += ghat[i];
                sum_gx += ghat[i] * xhat[i];
                gw[i] += gr[i] * xhat[i];
                gb[i] += gr[i];
            }
            let (mg, mgx) = (sum_g / h as f32, sum_gx / h as f32);
            for i in 0..h {
                gxr[i] = r * (ghat[i] - mg - xhat[i] * mgx);
            }
        }
        let dev = x.device();
        Ok((
            Some(Tensor::from_vec(gx, x.shape(), dev)?),
            Some(Tensor::from_vec(gw, w.shape(), dev)?),
            Some(Tensor::from_vec(gb, w.shape(), dev)?),
        ))
    }
}

/// Layer normalisation over the last dimension (biased variance, as in BERT).
pub fn layer_norm(x: &Tensor, w: &Tensor, b: &Tensor, eps: f64) -> Result<Tensor> {
    x.contiguous()?.apply_op3(
        &w.contiguous()?,
        &b.contiguous()?,
        LayerNorm { eps: eps as f32 },
    )
}

struct Softmax;

impl CustomOp1 for Softmax {
    fn name(&self) -> &'static str {
        "fused-softmax"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let x = f32s(s, l)?;
        let n = l.shape().dims().last().copied().unwrap_or(1).max(1);
        let mut y = vec![0f32; x.len()];
        for (xr, yr) in x.chunks_exact(n).zip(y.chunks_exact_mut(n)) {
            let max = xr.iter().copied().fold(f32::NEG_INFINITY, f32::max);
            let mut sum = 0f32;
            for (o, &v) in yr.iter_mut().zip(xr) {
                *o = (v - max).exp();
                sum += *o;
            }
            let inv = 1.0 / sum;
            yr.iter_mut().for_each(|o| *o *= inv);
        }
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, y: &Tensor, gy: &Tensor) -> Result<Option<Tensor>> {
        let (yv, gv) = (data(y)?, data(gy)?);
        let n = x.dims().last().copied().unwrap_or(1).max(1);
        let mut gx = vec![0f32; yv.len()];
        for ((yr, gr), o) in yv
            .chunks_exact(n)
            .zip(gv.chunks_exact(n))
            .zip(gx.chunks_exact_mut(n))
        {
            let dot: f32 = yr.iter().zip(gr).map(|(a, b)| a * b).sum();
            for ((o, &yi), &gi) in o.iter_mut().zip(yr).zip(gr) {
                *o = yi * (gi - dot);
            }
        }
        Ok(Some(Tensor::from_vec(gx, x.shape(), x.device())?))
    }
}

/// Softmax over the last dimension.
pub fn softmax_last_dim(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Softmax)
}

/// `erf(z)` for `z ≥ 0` given `e = exp(−z²)`: Abramowitz & Stegun 7.1.26 (Handbook of
/// Mathematical Functions, 1964), absolute error ≤ 1.5e-7, about one F32 ulp near 1.
fn erf_pos(z: f32, e: f32) -> f32 {
    let t = 1.0 / (1.0 + 0.327_591_1 * z);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152 + t * 1.061_405_4))));
    1.0 - poly * e
}

/// Φ(x) (standard normal CDF) and φ(x) (its density), sharing one `exp`.
fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    let e = (-0.5 * x * x).exp();
    let z = x.abs() * std::f32::consts::FRAC_1_SQRT_2;
    let erf = erf_pos(z, e).copysign(x);
    (0.5 * (1.0 + erf), e * 0.398_942_3)
}

struct Gelu;

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        "fused-gelu-erf"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> Result<(CpuStorage, Shape)> {
        let y = f32s(s, l)?
            .iter()
            .map(|&x| x * normal_cdf_pdf(x).0)
            .collect();
        Ok((CpuStorage::F32(y), l.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, gy: &Tensor) -> Result<Option<Tensor>> {
        let (xv, gv) = (data(x)?, data(gy)?);
        let gx = xv
            .iter()
            .zip(&gv)
            .map(|(&x, &g)| {
                let (cdf, pdf) = normal_cdf_pdf(x);
                g * (cdf + x * pdf)
            })
            .collect();
        Ok(Some(Tensor::from_vec(gx, x.shape(), x.device())?))
    }
}

/// GELU with the exact (erf) form, as BERT uses.
pub fn gelu_erf(x: &Tensor) -> Result<Tensor> {
    x.contiguous()?.apply_op1(Gelu)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::common::ops;
    use crate::train::common::testing::{max_abs_diff as max_diff, randn};
    use candle_core::Var;

    /// Value and gradients of `f(inputs) · probe` for both implementations.
    fn compare(
        inputs: &[Tensor],
        probe: &Tensor,
        fused: impl Fn(&[Tensor]) -> Tensor,
        composed: impl Fn(&[Tensor]) -> Tensor,
        tol: f32,
    ) {
        let run = |f: &dyn Fn(&[Tensor]) -> Tensor| {
            let vars: Vec<Var> = inputs
                .iter()
                .map(|t| Var::from_tensor(t).unwrap())
                .collect();
            let ts: Vec<Tensor> = vars.iter().map(|v| v.as_tensor().clone()).collect();
            let y = f(&ts);
            let g = (&y * probe).unwrap().sum_all().unwrap().backward().unwrap();
            let grads: Vec<Tensor> = vars.iter().map(|v| g.get(v).unwrap().clone()).collect();
            (y, grads)
        };
        let (ya, ga) = run(&fused);
        let (yb, gb) = run(&composed);
        assert!(
            max_diff(&ya, &yb) < tol,
            "values differ by {}",
            max_diff(&ya, &yb)
        );
        for (k, (a, b)) in ga.iter().zip(&gb).enumerate() {
            let d = max_diff(a, b);
            assert!(d < tol, "gradient {k} differs by {d}");
        }
    }

    #[test]
    fn layer_norm_matches_composed_value_and_gradients() {
        let x = randn(1, &[3, 5, 48], 3.0);
        let w = randn(2, &[48], 1.0);
        let b = randn(3, &[48], 1.0);
        let probe = randn(4, &[3, 5, 48], 1.0);
        compare(
            &[x, w, b],
            &probe,
            |t| layer_norm(&t[0], &t[1], &t[2], 1e-12).unwrap(),
            |t| ops::layer_norm_composed(&t[0], &t[1], &t[2], 1e-12).unwrap(),
            2e-4,
        );
    }

    #[test]
    fn softmax_matches_composed_value_and_gradient() {
        let x = randn(5, &[2, 3, 4, 9], 6.0);
        let probe = randn(6, &[2, 3, 4, 9], 1.0);
        compare(
            &[x],
            &probe,
            |t| softmax_last_dim(&t[0]).unwrap(),
            |t| ops::softmax_composed(&t[0]).unwrap(),
            1e-5,
        );
    }

    #[test]
    fn gelu_matches_candle_value_and_gradient() {
        let x = randn(7, &[4, 300], 6.0);
        let probe = randn(8, &[4, 300], 1.0);
        compare(
            &[x],
            &probe,
            |t| gelu_erf(&t[0]).unwrap(),
            |t| t[0].gelu_erf().unwrap(),
            2e-6,
        );
    }

    #[test]
    fn non_contiguous_inputs_are_handled() {
        let x = randn(9, &[6, 8], 2.0).t().unwrap();
        let a = softmax_last_dim(&x).unwrap();
        let b = ops::softmax_composed(&x).unwrap();
        assert!(max_diff(&a, &b) < 1e-6);
    }
}
