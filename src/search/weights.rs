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
}

/// Environment variable naming a weights file to use instead of the shipped one (to evaluate
/// a fit before it is shipped; read once per process).
pub const WEIGHTS_ENV: &str = "ONTOVEC_FUSION_WEIGHTS";

/// The weights in use: the file [`WEIGHTS_ENV`] names, else the shipped ones
/// (`src/search/fusion_weights.json`, compiled in). A bad override file stops the process at
/// the first hybrid query with a message, rather than silently using other weights.
pub fn shipped_weights() -> &'static Weights {
    static W: OnceLock<Weights> = OnceLock::new();
    W.get_or_init(|| {
        let text = match std::env::var_os(WEIGHTS_ENV) {
            Some(p) => std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("{WEIGHTS_ENV}={}: {e}", p.to_string_lossy())),
            None => include_str!("fusion_weights.json").to_string(),
        };
        let w: Weights = serde_json::from_str(&text).expect("fusion weights are valid JSON");
        assert_eq!(w.features, FEATURES, "fusion_weights.json features");
        assert_eq!(w.w.len(), NF);
        w
    })
}

/// The features of a candidate with their weighted contributions.
pub fn explanation(w: &Weights, x: &[f32; NF]) -> super::engine::Explanation {
    super::engine::Explanation {
        rank_score: w.rank_score(x),
        features: FEATURES
            .iter()
            .zip(x)
            .zip(&w.w)
            .map(|((name, v), wi)| super::engine::FeatureContribution {
                name: (*name).to_string(),
                value: *v,
                contribution: wi * v,
            })
            .collect(),
    }
}
