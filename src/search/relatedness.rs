//! Relatedness: the cosine of two sides, each a free text (embedded for the caller) or a concept
//! (the mean vector of its equivalent terms, [`SearchEngine::concept_vector`]).

use super::engine::{EngineError, SearchEngine};
use super::query::on_blocking_pool;
use crate::util::vector::cosine;
use std::sync::Arc;

/// One side of a relatedness pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Side {
    /// Free text.
    Text(String),
    /// A concept.
    Concept {
        /// Its system.
        system: String,
        /// Its code.
        code: String,
    },
}

/// Scores of a relatedness call.
#[derive(Debug, Clone)]
pub struct Relatedness {
    /// The terms model that embedded both sides.
    pub model: String,
    /// Cosine per pair, in the caller's order.
    pub scores: Vec<f32>,
}

impl SearchEngine {
    /// The cosine of each pair with a terms `model` (the default one when `None`). The texts of
    /// all pairs are embedded in one admitted request; concept vectors come from the embedding
    /// cache (on the blocking pool).
    pub async fn relatedness(
        self: &Arc<Self>,
        pairs: Vec<(Side, Side)>,
        model: Option<&str>,
    ) -> Result<Relatedness, EngineError> {
        let model = self.terms_model(model)?;
        let sides: Vec<Side> = pairs.into_iter().flat_map(|(a, b)| [a, b]).collect();
        let texts: Vec<String> = sides
            .iter()
            .filter_map(|s| match s {
                Side::Text(t) => Some(t.clone()),
                Side::Concept { .. } => None,
            })
            .collect();
        let text_vecs = if texts.is_empty() {
            Vec::new()
        } else {
            self.embed_texts(Some(&model), texts).await?.vectors
        };
        let eng = Arc::clone(self);
        let m = model.clone();
        let scores = on_blocking_pool(move || {
            let mut text_vecs = text_vecs.into_iter();
            let mut vecs = Vec::with_capacity(sides.len());
            for side in &sides {
                vecs.push(match side {
                    Side::Text(_) => text_vecs.next().unwrap_or_default(),
                    Side::Concept { system, code } => eng.concept_vector(&m, system, code)?,
                });
            }
            Ok(vecs.chunks(2).map(|c| cosine(&c[0], &c[1])).collect())
        })
        .await?;
        Ok(Relatedness { model, scores })
    }
}
