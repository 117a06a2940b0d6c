//! Note search for a waiting caller: the query is embedded with the note encoder (through the
//! encoder's admission gate) when the mode needs it, then BM25 and cosine are fused on the
//! blocking pool ([`Notes::search`]).

use super::{NoteHit, Notes, NotesError};
use std::sync::Arc;

/// How note search ranks (no `exact` mode for notes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NoteSearchMode {
    /// BM25 and the note encoder's cosine, fused.
    #[default]
    Hybrid,
    /// BM25 only.
    Lexical,
    /// The note encoder's cosine only.
    Vector,
}

impl Notes {
    /// The `k` notes best matching `query` in `mode`. Without a note encoder a hybrid search
    /// ranks by BM25 alone and a vector search is [`NotesError::Invalid`].
    pub async fn search_query(
        self: &Arc<Self>,
        query: String,
        k: usize,
        mode: NoteSearchMode,
    ) -> Result<Vec<NoteHit>, NotesError> {
        let qvec = match (mode, self.note_model()) {
            (NoteSearchMode::Lexical, _) => None,
            (_, Some(m)) => {
                // the query is one text of the admission allowance (refused when it is spent)
                let _admitted = self.registry.admission().try_admit(1)?;
                Some(self.embed(&m, query.clone()).await?)
            }
            (NoteSearchMode::Vector, None) => {
                return Err(NotesError::Invalid(
                    "vector search needs a notes or terms model; none is loaded".into(),
                ))
            }
            (NoteSearchMode::Hybrid, None) => None,
        };
        let notes = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let lexical_query = if mode == NoteSearchMode::Vector {
                ""
            } else {
                &query
            };
            notes.search(lexical_query, &query, k, qvec.as_deref())
        })
        .await
        .map_err(|e| NotesError::Worker(e.to_string()))?
    }
}
