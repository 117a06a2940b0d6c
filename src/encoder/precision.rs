//! Which number format a model's products run in, and the parity gate a reduced precision must
//! pass before it is served.
//!
//! * [`Precision`] is what a loaded model *runs*: F32, BF16 ([`super::gemm::bf16`]) where the
//!   CPU has AVX512_BF16, or INT8 ([`super::gemm::int8`]) where it has AVX512_VNNI. It is part of the model's identity for everything derived from its
//!   vectors ([`vector_id`]): the sled embedding cache and the vector indexes are keyed by it, so
//!   vectors of two precisions never meet in one index or cache entry.
//! * [`PrecisionChoice`] is what was *asked*: `auto` (the fastest precision that passes the
//!   gate: INT8, then BF16), `f32`, `bf16` or `int8`; from `--precision` / `ONTOVEC_PRECISION`, else the model's
//!   `ontovec.json` field `precision`, else [`PrecisionPolicy::default`].
//! * The gate ([`gate`]): the model's parity strings ([`parity_texts`]: `parity_texts` in
//!   `ontovec.json`, else the built-in medical strings) embedded in F32 and in the candidate
//!   precision must agree to a mean cosine ≥ [`GATE_MEAN`] and a minimum ≥ [`GATE_MIN`];
//!   otherwise the model is served in F32 with a warning saying why.

use serde::{Deserialize, Serialize};

/// Mean cosine to F32 over the parity strings a reduced precision must reach.
pub const GATE_MEAN: f32 = 0.995;
/// Lowest cosine to F32 of any parity string a reduced precision may have.
pub const GATE_MIN: f32 = 0.98;

// Whether this CPU runs a precision: `Precision::supported`, implemented beside the kernels in
// `super::gemm` (so this file does not import them).
/// The number format a loaded model's matrix products run in (everything else is F32).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// F32 weights and inputs.
    #[default]
    F32,
    /// BF16 weights and inputs, F32 accumulation (AVX512_BF16).
    Bf16,
    /// INT8 weights (per output channel) and inputs (per row, quantized per call), INT32
    /// accumulation (AVX512_VNNI).
    Int8,
}

impl Precision {
    /// Every precision a model can run in.
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::Bf16, Precision::Int8];

    /// Lower-case name (`f32`, `bf16`, `int8`).
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::Bf16 => "bf16",
            Precision::Int8 => "int8",
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity of a model's vectors: its name for F32 (what caches and indexes were always
/// keyed by), `name@bf16` / `name@int8` otherwise.
pub fn vector_id(name: &str, precision: Precision) -> String {
    match precision {
        Precision::F32 => name.to_string(),
        p => format!("{name}@{p}"),
    }
}

/// A requested precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PrecisionChoice {
    /// The fastest precision this CPU runs that passes the parity gate (else F32).
    Auto,
    /// F32.
    F32,
    /// BF16 if the CPU runs it and it passes the gate (else F32, with a warning).
    Bf16,
    /// INT8 if the CPU runs it and it passes the gate (else F32, with a warning).
    Int8,
}

impl PrecisionChoice {
    /// The precisions to try, fastest first; F32 (always last) is what remains when none of
    /// them runs here or passes the gate.
    pub fn candidates(self) -> &'static [Precision] {
        match self {
            PrecisionChoice::Auto => &[Precision::Int8, Precision::Bf16],
            PrecisionChoice::Int8 => &[Precision::Int8],
            PrecisionChoice::Bf16 => &[Precision::Bf16],
            PrecisionChoice::F32 => &[],
        }
    }
}

impl std::str::FromStr for PrecisionChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "f32" => Ok(Self::F32),
            "bf16" => Ok(Self::Bf16),
            "int8" => Ok(Self::Int8),
            other => Err(format!(
                "unknown precision `{other}` (auto, f32, bf16 or int8)"
            )),
        }
    }
}

/// How a loader picks a model's [`PrecisionChoice`]: `forced` (the operator's flag) wins over
/// the model's manifest, which wins over `default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrecisionPolicy {
    /// `--precision` / `ONTOVEC_PRECISION`, applied to every model.
    pub forced: Option<PrecisionChoice>,
    /// Used when neither the flag nor the manifest says.
    pub default: PrecisionChoice,
}

impl Default for PrecisionPolicy {
    /// F32 unless asked: the library (tests, trainers, benches) computes exact F32 vectors; the
    /// CLI's serving commands default to [`PrecisionChoice::Auto`].
    fn default() -> Self {
        PrecisionPolicy {
            forced: None,
            default: PrecisionChoice::F32,
        }
    }
}

impl PrecisionPolicy {
    /// The choice for a model whose manifest asks for `manifest` (if anything).
    pub fn resolve(&self, manifest: Option<PrecisionChoice>) -> PrecisionChoice {
        self.forced.or(manifest).unwrap_or(self.default)
    }
}

/// The outcome of the parity gate for one model and one candidate precision.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GateReport {
    /// The candidate precision.
    pub precision: Precision,
    /// Parity strings compared.
    pub texts: usize,
    /// Mean cosine between the F32 and the candidate vectors.
    pub mean_cosine: f32,
    /// Lowest cosine, and the string it was measured on.
    pub min_cosine: f32,
    /// The string with the lowest cosine.
    pub worst: String,
    /// Whether both thresholds hold.
    pub passed: bool,
}

/// Compares `candidate` vectors with the `reference` (F32) ones of the same `texts`.
pub fn gate(
    precision: Precision,
    texts: &[String],
    reference: &[Vec<f32>],
    candidate: &[Vec<f32>],
) -> GateReport {
    let mut sum = 0f64;
    let mut min = (f32::INFINITY, String::new());
    for ((t, a), b) in texts.iter().zip(reference).zip(candidate) {
        let c = crate::util::vector::cosine(a, b);
        // a NaN vector must fail, not slip through comparisons
        let c = if c.is_nan() { -1.0 } else { c };
        sum += c as f64;
        if c < min.0 {
            min = (c, t.clone());
        }
    }
    let n = texts.len().min(reference.len()).min(candidate.len());
    let mean = if n == 0 { 0.0 } else { (sum / n as f64) as f32 };
    GateReport {
        precision,
        texts: n,
        mean_cosine: mean,
        min_cosine: if n == 0 { 0.0 } else { min.0 },
        worst: min.1,
        passed: n > 0 && mean >= GATE_MEAN && min.0 >= GATE_MIN,
    }
}

/// The built-in parity strings: ICD-10-CM, HPO, LOINC and RxNorm names, abbreviations, lay
/// phrases, a note fragment, non-ASCII text.
const BUILTIN_PARITY: &str = include_str!("parity_texts.txt");

/// The strings a model's gate compares: the manifest's own `parity_texts` when it has some,
/// else the built-in list (one per line).
pub fn parity_texts(manifest: Option<&[String]>) -> Vec<String> {
    match manifest {
        Some(t) if !t.is_empty() => t.to_vec(),
        _ => BUILTIN_PARITY
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choices_parse_and_resolve_in_order() {
        assert_eq!("BF16".parse::<PrecisionChoice>(), Ok(PrecisionChoice::Bf16));
        assert_eq!("int8".parse::<PrecisionChoice>(), Ok(PrecisionChoice::Int8));
        assert_eq!(
            PrecisionChoice::Auto.candidates(),
            &[Precision::Int8, Precision::Bf16]
        );
        assert!("f64".parse::<PrecisionChoice>().is_err());
        let p = PrecisionPolicy {
            forced: None,
            default: PrecisionChoice::Auto,
        };
        assert_eq!(p.resolve(None), PrecisionChoice::Auto);
        assert_eq!(p.resolve(Some(PrecisionChoice::F32)), PrecisionChoice::F32);
        let forced = PrecisionPolicy {
            forced: Some(PrecisionChoice::Bf16),
            ..p
        };
        assert_eq!(
            forced.resolve(Some(PrecisionChoice::F32)),
            PrecisionChoice::Bf16
        );
        assert_eq!(
            PrecisionPolicy::default().resolve(None),
            PrecisionChoice::F32
        );
    }

    #[test]
    fn vector_ids_keep_f32_names_and_separate_the_rest() {
        assert_eq!(vector_id("m", Precision::F32), "m");
        assert_eq!(vector_id("m", Precision::Bf16), "m@bf16");
    }

    #[test]
    fn gate_thresholds() {
        let texts: Vec<String> = (0..4).map(|i| i.to_string()).collect();
        let r: Vec<Vec<f32>> = (0..4).map(|i| vec![1.0, i as f32]).collect();
        let same = gate(Precision::Bf16, &texts, &r, &r);
        assert!(same.passed && same.mean_cosine > 0.9999 && same.texts == 4);
        // one string far off: the minimum fails the gate though the mean is high
        let mut off = r.clone();
        off[3] = vec![3.0, 1.0];
        let g = gate(Precision::Bf16, &texts, &r, &off);
        assert!(
            !g.passed && g.min_cosine < GATE_MIN && g.worst == "3",
            "{g:?}"
        );
        let nan = vec![vec![f32::NAN, 0.0]; 4];
        assert!(!gate(Precision::Bf16, &texts, &r, &nan).passed);
        assert!(!gate(Precision::Bf16, &[], &[], &[]).passed);
        assert!(parity_texts(None).len() >= 50);
        assert_eq!(
            parity_texts(Some(&["x".to_string()])),
            vec!["x".to_string()]
        );
    }
}
