//! ICD coding of one note for a waiting caller: which method, which systems, which threshold.
//!
//! * With a trained NoteContrast model serving notes ([`Notes::coder`]), its note vector (and,
//!   when it attends over segments, its segment vectors) is scored against its code vectors;
//!   `predicted` marks the codes at or above the model's dev-tuned threshold.
//! * Without one (zero-shot), the note encoder's pooled note vector is searched against the
//!   names of the ICD codes the terms index holds (the ICD systems loaded, or the one asked
//!   for); there is no threshold then.
//!
//! Either way the note takes about one encoder text per 200 bytes of the admission allowance
//! (its windows and segments), refused at once when other requests hold it.

use super::{Notes, NotesError};
use crate::search::engine::{Mode, Query, SearchEngine};
use crate::search::fusion::FusionMethod;
use crate::store::Store;
use std::sync::Arc;

/// ICD systems notes are coded in.
pub const ICD_SYSTEMS: [&str; 2] = ["ICD10CM", "ICD9CM"];

/// An ICD system notes are coded in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, utoipa::ToSchema)]
pub enum IcdSystem {
    /// ICD-10-CM.
    #[serde(rename = "ICD10CM")]
    Icd10cm,
    /// ICD-9-CM.
    #[serde(rename = "ICD9CM")]
    Icd9cm,
}

impl IcdSystem {
    /// The system's name in the store.
    pub fn as_str(self) -> &'static str {
        match self {
            IcdSystem::Icd10cm => "ICD10CM",
            IcdSystem::Icd9cm => "ICD9CM",
        }
    }
}

/// One code predicted for a note.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictedCode {
    /// System.
    pub system: String,
    /// Code.
    pub code: String,
    /// Preferred name (empty when the system is not loaded).
    pub preferred_term: String,
    /// Score of the code for the note.
    pub score: f32,
    /// Whether the score passes the model's threshold (always false for zero-shot).
    pub predicted: bool,
}

/// The codes of a note, with how they were scored.
#[derive(Debug, Clone)]
pub struct CodePrediction {
    /// Codes, best first.
    pub codes: Vec<PredictedCode>,
    /// Model used.
    pub model: String,
    /// `notecontrast` (a trained model) or `zero_shot`.
    pub method: &'static str,
    /// Threshold behind `predicted` (`None` for zero-shot).
    pub threshold: Option<f32>,
    /// `segment_attention` or `cosine`.
    pub score_kind: &'static str,
}

impl Notes {
    /// The `k` best codes of `text`, only of `system` when given (see the module docs).
    /// `store` names the codes; `search` ranks code names for zero-shot coding.
    pub async fn predict_codes(
        self: &Arc<Self>,
        text: String,
        k: usize,
        system: Option<IcdSystem>,
        store: &Store,
        search: &Arc<SearchEngine>,
    ) -> Result<CodePrediction, NotesError> {
        let _admitted = self.registry.admission().try_admit(1 + text.len() / 200)?;
        let model = self.note_model().ok_or(NotesError::NoModel)?;
        let system = system.map(IcdSystem::as_str);
        match self.coder() {
            Some((name, coder)) => {
                if let Some(s) = system {
                    if !coder.manifest.systems.iter().any(|m| m == s) {
                        return Err(NotesError::UnknownSystem {
                            system: s.to_string(),
                            message: format!(
                                "model {name} codes {}; it has no {s} codes",
                                coder.manifest.systems.join(", ")
                            ),
                        });
                    }
                }
                let (v, segments) = self.embed_for_coding(&model, text).await?;
                let score_kind = if coder.segment_config().is_some() && !segments.is_empty() {
                    "segment_attention"
                } else {
                    "cosine"
                };
                let threshold = coder.manifest.threshold;
                let store = store.clone();
                let codes = tokio::task::spawn_blocking(move || {
                    coder
                        .rank(&segments, &v, system, k)
                        .into_iter()
                        .map(|s| {
                            let preferred_term = store
                                .concept(&s.code.system, &s.code.code)?
                                .map(|c| c.concept.preferred_term)
                                .unwrap_or_default();
                            Ok(PredictedCode {
                                system: s.code.system,
                                code: s.code.code,
                                preferred_term,
                                score: s.score,
                                predicted: s.score >= threshold,
                            })
                        })
                        .collect::<Result<Vec<_>, NotesError>>()
                })
                .await
                .map_err(|e| NotesError::Worker(e.to_string()))??;
                Ok(CodePrediction {
                    codes,
                    model: name,
                    method: "notecontrast",
                    threshold: Some(threshold),
                    score_kind,
                })
            }
            None => self.zero_shot(text, k, system, model, store, search).await,
        }
    }

    /// Zero-shot coding: the note encoder's pooled note vector against the code names the
    /// terms index holds.
    async fn zero_shot(
        &self,
        text: String,
        k: usize,
        system: Option<&'static str>,
        model: String,
        store: &Store,
        search: &Arc<SearchEngine>,
    ) -> Result<CodePrediction, NotesError> {
        let v = self.embed(&model, text).await?;
        let systems: Vec<String> = match system {
            Some(s) => vec![s.to_string()],
            None => ICD_SYSTEMS
                .into_iter()
                .filter(|s| store.has_system(s))
                .map(str::to_string)
                .collect(),
        };
        if systems.is_empty() {
            return Err(NotesError::NoIcdSystem);
        }
        let q = Query {
            text: String::new(),
            k,
            mode: Mode::Vector,
            systems: Some(systems),
            model: Some(model.clone()),
            fusion: FusionMethod::Rrf { k: 60.0 },
        };
        let eng = Arc::clone(search);
        let found = tokio::task::spawn_blocking(move || eng.search_with_vector(&q, Some(&v)))
            .await
            .map_err(|e| NotesError::Worker(e.to_string()))??;
        Ok(CodePrediction {
            codes: found
                .into_iter()
                .map(|f| PredictedCode {
                    system: f.system,
                    code: f.code,
                    preferred_term: f.preferred_term,
                    score: f.score,
                    predicted: false,
                })
                .collect(),
            model,
            method: "zero_shot",
            threshold: None,
            score_kind: "cosine",
        })
    }
}
