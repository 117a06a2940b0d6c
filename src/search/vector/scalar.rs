//! The scalar types an index stores its vectors in, and the i8 quantization ontovec does
//! itself (see [`to_i8`]).

use serde::{Deserialize, Serialize};
use usearch::ScalarKind;

/// Scalar type the vectors are stored as (`--vector-dtype`, `ONTOVEC_VECTOR_DTYPE`). Distances
/// run on usearch's SIMD kernels (NumKong, dispatched at run time) in every type; README
/// (Search engine → compact vectors) has recall, bytes per vector and latency of each.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum VectorScalar {
    /// 32-bit floats (the default; the reference the others are measured against).
    #[default]
    F32,
    /// 16-bit floats: half the vector memory.
    F16,
    /// 8-bit integers, a quarter of the vector memory: each unit vector scaled so its largest
    /// component is ±127 and rounded ([`to_i8`]; cosine does not see the scale).
    I8,
}

impl VectorScalar {
    /// Every scalar type.
    pub const ALL: [VectorScalar; 3] = [VectorScalar::F32, VectorScalar::F16, VectorScalar::I8];

    /// The usearch scalar kind.
    pub(crate) fn usearch(self) -> ScalarKind {
        match self {
            VectorScalar::F32 => ScalarKind::F32,
            VectorScalar::F16 => ScalarKind::F16,
            VectorScalar::I8 => ScalarKind::I8,
        }
    }

    /// Lower-case name (`f32`, `f16`, `i8`).
    pub fn as_str(self) -> &'static str {
        match self {
            VectorScalar::F32 => "f32",
            VectorScalar::F16 => "f16",
            VectorScalar::I8 => "i8",
        }
    }
}

impl std::fmt::Display for VectorScalar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for VectorScalar {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "f32" => Ok(VectorScalar::F32),
            "f16" => Ok(VectorScalar::F16),
            "i8" => Ok(VectorScalar::I8),
            other => Err(format!("unknown vector dtype `{other}` (f32, f16 or i8)")),
        }
    }
}

/// A unit vector as i8 with its largest component at ±127, rounded. usearch's own f32 → i8
/// cast scales by the L2 norm (so a 384-d unit vector's components, ~±0.05, use ±6 of the
/// ±127 range) and truncates; scaling by the largest component instead uses the whole range,
/// and the cosine metric is blind to the scale.
pub fn to_i8(v: &[f32]) -> Vec<i8> {
    let max = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    if max == 0.0 || !max.is_finite() {
        return vec![0; v.len()];
    }
    v.iter()
        .map(|x| (x * 127.0 / max).round().clamp(-127.0, 127.0) as i8)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtypes_parse_and_i8_uses_the_whole_range() {
        assert_eq!("I8".parse::<VectorScalar>(), Ok(VectorScalar::I8));
        assert!("f64"
            .parse::<VectorScalar>()
            .unwrap_err()
            .contains("f32, f16 or i8"));
        for s in VectorScalar::ALL {
            assert_eq!(s.as_str().parse::<VectorScalar>(), Ok(s));
        }
        assert_eq!(to_i8(&[0.05, -0.1, 0.0251]), vec![64, -127, 32]);
        assert_eq!(to_i8(&[0.0, 0.0]), vec![0, 0]);
    }
}
