//! ICD coding of one note for a waiting caller: which method, which systems, which threshold.
//!
//! * With a trained NoteContrast model serving notes ([`Notes::coder`]), its note vector (and,
//!   when it attends over segments, its segment vectors) is scored against its code vectors;
//!   `predicted` marks the codes at or above the model's dev-tuned threshold.
//! * Without one (zero-shot), the note encoder's pooled note vector is searched against the
//!   names of the ICD codes the terms index holds (the ICD systems loaded, or the one asked
//!   for); there is no threshold then.
//!
//! Either way the text is screened first ([`super::screen`]: markup and control characters
//! blanked, a note with no word refused, a warning for a note that does not read as English),
//! negated, family and resolved-history statements are left unread ([`super::negation`]), the
//! list is diversified across 3-character categories (and, with a trained model, across the
//! segments codes rest on: its tuned [`rank::Diversity`]) and every code carries the spans of the
//! note that support it ([`super::rank`]). The note takes about one encoder text per 200 bytes of
//! the admission allowance (its windows and segments), refused at once when other requests hold
//! it.

use super::rank::{self, Evidence};
use super::segments::SegmentConfig;
use super::{Notes, NotesError};
use crate::search::engine::{Mode, Query, SearchEngine};
use crate::search::fusion::FusionMethod;
use crate::search::query::MAX_K;
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
    /// The spans of the note that support the code, strongest first.
    pub evidence: Vec<Evidence>,
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
    /// What the caller should know about how the note was read.
    pub warnings: Vec<String>,
}

/// Codes asked of the code-name search per code returned by zero-shot coding (room for the
/// category diversification to pick from; at most 1,000 in all).
const ZERO_SHOT_POOL: usize = 4;

/// The warning of a note whose every statement is negated, family or resolved history.
fn nothing_affirmed(text: &str) -> String {
    let n = text.chars().count();
    format!("no affirmed statement in the note ({n} characters): every sentence is negated, family history or resolved history, or too short to read; nothing is coded from it")
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
        let screened = super::screen::screen(&text);
        if !screened.has_words {
            return Err(NotesError::NothingToCode(
                "'text' has nothing to code: no letter or digit outside markup and control characters".into(),
            ));
        }
        let _admitted = self.registry.admission().try_admit(1 + text.len() / 200)?;
        let model = self.note_model().ok_or(NotesError::NoModel)?;
        let system = system.map(IcdSystem::as_str);
        let mut warnings = screened.warnings;
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
                let note = self.embed_for_coding(&model, screened.text, None).await?;
                let score_kind = if coder.segment_config().is_some() {
                    "segment_attention"
                } else {
                    "cosine"
                };
                let threshold = coder.manifest.threshold;
                let diversity = coder.manifest.diversity;
                let store = store.clone();
                let (codes, text) = tokio::task::spawn_blocking(move || {
                    let coded =
                        super::coding::code_note(&coder, &text, &note, system, k, diversity);
                    let codes = coded
                        .into_iter()
                        .map(|c| {
                            let preferred_term = store
                                .concept(&c.code.code.system, &c.code.code.code)?
                                .map(|x| x.concept.preferred_term)
                                .unwrap_or_default();
                            Ok(PredictedCode {
                                system: c.code.code.system,
                                code: c.code.code.code,
                                preferred_term,
                                score: c.code.score,
                                predicted: c.code.score >= threshold,
                                evidence: c.evidence,
                            })
                        })
                        .collect::<Result<Vec<_>, NotesError>>()?;
                    Ok::<_, NotesError>((codes, text))
                })
                .await
                .map_err(|e| NotesError::Worker(e.to_string()))??;
                if codes.is_empty() {
                    warnings.push(nothing_affirmed(&text));
                }
                Ok(CodePrediction {
                    codes,
                    model: name,
                    method: "notecontrast",
                    threshold: Some(threshold),
                    score_kind,
                    warnings,
                })
            }
            None => {
                let note = self
                    .embed_for_coding(&model, screened.text, Some(SegmentConfig::default()))
                    .await?;
                self.zero_shot(&text, &note, k, system, model, store, search, warnings)
                    .await
            }
        }
    }

    /// Zero-shot coding: the note encoder's pooled note vector against the code names the
    /// terms index holds, the list diversified across categories; a code's evidence is the
    /// segments nearest its matched name.
    #[allow(clippy::too_many_arguments)]
    async fn zero_shot(
        &self,
        text: &str,
        note: &super::EmbeddedNote,
        k: usize,
        system: Option<&'static str>,
        model: String,
        store: &Store,
        search: &Arc<SearchEngine>,
        mut warnings: Vec<String>,
    ) -> Result<CodePrediction, NotesError> {
        let answer = |codes, warnings| CodePrediction {
            codes,
            model: model.clone(),
            method: "zero_shot",
            threshold: None,
            score_kind: "cosine",
            warnings,
        };
        if note.segments.is_empty() {
            warnings.push(nothing_affirmed(text));
            return Ok(answer(Vec::new(), warnings));
        }
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
            k: (k * ZERO_SHOT_POOL).min(MAX_K),
            mode: Mode::Vector,
            systems: Some(systems),
            model: Some(model.clone()),
            fusion: FusionMethod::Rrf { k: 60.0 },
            explain: false,
            include_inactive: false,
        };
        let eng = Arc::clone(search);
        let v = note.pooled.clone();
        let found = tokio::task::spawn_blocking(move || eng.search_with_vector(&q, Some(&v)))
            .await
            .map_err(|e| NotesError::Worker(e.to_string()))??;
        let scored: Vec<(usize, f32)> = found.iter().map(|f| f.score).enumerate().collect();
        let picked = rank::diversify(
            &scored,
            |i| rank::category(&found[i].code),
            |_| rank::NO_SEGMENT,
            k,
            rank::Diversity::default(),
        );
        let names: Vec<String> = picked
            .iter()
            .map(|&(i, _)| found[i].matched_term.clone())
            .collect();
        let name_vecs = self.embed_texts(&model, names).await?;
        let codes = picked
            .iter()
            .enumerate()
            .map(|(p, &(i, score))| PredictedCode {
                system: found[i].system.clone(),
                code: found[i].code.clone(),
                preferred_term: found[i].preferred_term.clone(),
                score,
                predicted: false,
                evidence: name_vecs
                    .get(p)
                    .map(|c| rank::nearest_evidence(text, note, c))
                    .unwrap_or_default(),
            })
            .collect();
        Ok(answer(codes, warnings))
    }
}
