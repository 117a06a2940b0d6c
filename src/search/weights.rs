//! The learned hybrid's model: a linear score over [`FEATURES`] and its calibration, loaded
//! from `fusion_weights.json` (written by `ontovec eval fit-fusion`, [`crate::eval::learn`]),
//! and a result's explanation (each feature's contribution to the score).

use serde::{Deserialize, Serialize};
use std::sync::OnceLock;

/// Feature names, in the order of [`super::hybrid::Candidate::x`].
pub const FEATURES: &[&str] = &[
    "v_cos",
    "v_gap",
    "v_rr",
    "l_rel",
    "l_rr",
    "exact",
    "exact_pref",
    "code",
    "overlap_f1",
    "v_pref",
    "v_related_kind",
    "both",
    "both_first",
    "bridge_cos",
    "bridge_exact",
    "grouping",
    "bridge_overlap",
];
/// Number of features.
pub const NF: usize = 17;

/// A fitted linear model over [`FEATURES`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Weights {
    /// Feature names (must equal [`FEATURES`]).
    pub features: Vec<String>,
    /// Ranking weights.
    pub w: Vec<f32>,
    /// Calibration `(a, c)`: probability = σ(a·s + c).
    pub calib: (f32, f32),
    /// What the weights were fitted on (free text).
    #[serde(default)]
    pub fitted_on: String,
}

impl Weights {
    /// The ranking score of a feature vector.
    pub fn rank_score(&self, x: &[f32; NF]) -> f32 {
        self.w.iter().zip(x).map(|(w, x)| w * x).sum()
    }

    /// Calibrated probability of a ranking score.
    pub fn probability(&self, s: f32) -> f32 {
        let z = self.calib.0 * s + self.calib.1;
        1.0 / (1.0 + (-z).exp())
    }

    /// Weights from JSON, checked: the feature names must be [`FEATURES`] in order, with one
    /// weight each.
    pub fn from_json(v: serde_json::Value) -> Result<Self, String> {
        let w: Weights = serde_json::from_value(v).map_err(|e| e.to_string())?;
        if w.features != FEATURES {
            return Err(format!(
                "features {:?} differ from this build's {FEATURES:?}",
                w.features
            ));
        }
        if w.w.len() != NF {
            return Err(format!("{} weights for {NF} features", w.w.len()));
        }
        Ok(w)
    }
}

/// Environment variable naming a weights file to use instead of the shipped one and every
/// model folder's own (to evaluate a fit before it is shipped; read once per process).
pub const WEIGHTS_ENV: &str = "ONTOVEC_FUSION_WEIGHTS";

/// The override file [`WEIGHTS_ENV`] names, if set. A bad override file stops the process at
/// the first hybrid query with a message, rather than silently using other weights.
pub fn override_weights() -> Option<&'static Weights> {
    static W: OnceLock<Option<Weights>> = OnceLock::new();
    W.get_or_init(|| {
        let p = std::env::var_os(WEIGHTS_ENV)?;
        let read = || -> Result<Weights, String> {
            let text = std::fs::read_to_string(&p).map_err(|e| e.to_string())?;
            Weights::from_json(serde_json::from_str(&text).map_err(|e| e.to_string())?)
        };
        Some(read().unwrap_or_else(|e| panic!("{WEIGHTS_ENV}={}: {e}", p.to_string_lossy())))
    })
    .as_ref()
}

/// The weights compiled in (`src/search/fusion_weights.json`), fitted on the base model's
/// scores; or the [`WEIGHTS_ENV`] override.
pub fn shipped_weights() -> &'static Weights {
    static W: OnceLock<Weights> = OnceLock::new();
    override_weights().unwrap_or_else(|| {
        W.get_or_init(|| {
            let v = serde_json::from_str(include_str!("fusion_weights.json"))
                .expect("shipped fusion weights are valid JSON");
            Weights::from_json(v).expect("shipped fusion weights match FEATURES")
        })
    })
}

/// The features of a candidate with their weighted contributions.
pub fn explanation(w: &Weights, x: &[f32; NF]) -> Explanation {
    Explanation {
        rank_score: w.rank_score(x),
        features: FEATURES
            .iter()
            .zip(x)
            .zip(&w.w)
            .map(|((name, v), wi)| FeatureContribution {
                name: (*name).to_string(),
                value: *v,
                contribution: wi * v,
            })
            .collect(),
    }
}

/// A learned-hybrid result taken apart: the ranking score is the sum of the contributions.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Explanation {
    /// Ranking score `w · x` (the reported score is its calibrated probability).
    pub rank_score: f32,
    /// Every feature: its value and its weight times its value.
    pub features: Vec<FeatureContribution>,
}

/// One feature of a candidate concept.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct FeatureContribution {
    /// Feature name (README lists what each measures).
    pub name: String,
    /// Its value for this concept.
    pub value: f32,
    /// Weight × value.
    pub contribution: f32,
}
