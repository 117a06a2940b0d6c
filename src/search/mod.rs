//! Search engine pieces: a lexical index (tantivy), a vector index per embedding model
//! (usearch HNSW) and rank fusion of the two.
//!
//! These indexes are *derived* from the store: each records the store sequence number it
//! reflects ([`LexicalIndex::seq`], [`VectorIndex::seq`]) so that start-up can catch it up or
//! rebuild it. Documents are *terms* (one surface string of one concept), identified by a stable
//! `term_id` assigned by the store whose high bits (`term_id >> 40`) are the release id; that is
//! what lets both indexes drop a whole release at once.
//!
//! - [`analyzer`]: the text normalisation shared by indexing and querying (folding, word
//!   splitting that keeps codes like `E11.9` and `HbA1c` whole, trigrams, exact and code keys).
//! - [`lexical`]: BM25 over words + trigram field + exact-string and code boosts, fuzzy fallback,
//!   system filter; queries are built programmatically, never parsed.
//! - [`vector`]: cosine HNSW with upsert, release removal, filtered search and atomic saves.
//! - [`vector_store`]: the backend seam for term vectors: the embedded usearch index (default)
//!   or PostgreSQL + pgvector.
//! - [`fusion`]: reciprocal-rank and weighted (min-max normalised) fusion.
//! - [`engine`]: [`engine::SearchEngine`], the indexes kept in step with the store, ranking.
//! - [`query`]: what callers ask the engine (search, normalize, similar, embed): it embeds the
//!   query itself, through the encoder's admission gate, then ranks on the blocking pool.
//! - [`relatedness`]: cosine of text/concept pairs.
//! - [`identity`]: a terms model's vectors are dropped (and re-embedded) when the weights under
//!   its name change.
//! - [`serving`]: which precision's vector index a terms model's searches read (the complete
//!   one of another precision while the model's own is built after a precision change).
//! - [`hybrid`]: the learned concept-level hybrid (features, bridges, calibrated scores); its
//!   weights are fitted by [`crate::eval::learn`].
//! - [`abbrev`]: the abbreviation and shorthand table shared by queries and notes.

pub mod abbrev;
pub mod analyzer;
pub mod cache;
pub mod catchup;
pub mod commits;
pub mod engine;
pub mod error;
pub mod exact;
pub mod fusion;
pub mod hybrid;
pub mod identity;
pub mod keyset;
pub mod lexical;
pub mod query;
pub mod ranking;
pub mod relatedness;
pub mod serving;
pub mod switch;
pub mod vector;
pub mod vector_store;
pub mod weights;

pub use fusion::{fuse, FusedHit, FusionMethod};
pub use lexical::LexicalIndex;
pub use vector::{VectorIndex, VectorOptions};

use crate::domain::model::TermKind;

/// Number of low bits of a `term_id` that number terms inside a release; the bits above are the
/// release id (`term_id >> RID_SHIFT == rid`).
pub const RID_SHIFT: u32 = 40;

/// The release id encoded in a term id.
pub fn rid_of(term_id: u64) -> u64 {
    term_id >> RID_SHIFT
}

/// The half-open range of term ids belonging to release `rid`.
pub fn release_range(rid: u64) -> std::ops::Range<u64> {
    let lo = rid.checked_shl(RID_SHIFT).unwrap_or(u64::MAX);
    let hi = rid
        .checked_add(1)
        .and_then(|r| r.checked_shl(RID_SHIFT))
        .filter(|h| *h > lo)
        .unwrap_or(u64::MAX);
    lo..hi
}

/// A term to index.
#[derive(Debug, Clone, PartialEq)]
pub struct TermDoc {
    /// Stable id assigned by the store; `term_id >> 40` is the release id.
    pub term_id: u64,
    /// Terminology system, upper-case (`ICD10CM`, `HPO`, ...).
    pub system: String,
    /// The concept's code in that system (`E11.9`, `HP:0001250`).
    pub code: String,
    /// The term's text as published.
    pub text: String,
    /// The term's role for its concept.
    pub kind: TermKind,
}

/// One search result: a term and its score. Lists of hits are ordered best first.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Hit {
    /// The term found.
    pub term_id: u64,
    /// Lexical: BM25-style relevance (≥ 0, unbounded). Vector: cosine similarity in [-1, 1].
    pub score: f32,
}

/// Failures of index operations.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    /// The index engine failed (tantivy/usearch error, corrupt data, lock busy, ...).
    #[error("index error: {0}")]
    Index(String),
    /// The query cannot be run (empty, too long, wrong dimension, non-finite vector).
    #[error("invalid query: {0}")]
    InvalidQuery(String),
    /// A file-system operation failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// An external index (the Postgres vector store) cannot be reached now; retrying later
    /// may succeed (503).
    #[error("{0}")]
    Unavailable(String),
}

impl From<tantivy::TantivyError> for SearchError {
    fn from(e: tantivy::TantivyError) -> Self {
        SearchError::Index(e.to_string())
    }
}

impl From<tantivy::directory::error::OpenDirectoryError> for SearchError {
    fn from(e: tantivy::directory::error::OpenDirectoryError) -> Self {
        SearchError::Index(e.to_string())
    }
}

/// Wrap any displayable engine error (usearch's `cxx::Exception`, ...) as [`SearchError::Index`].
pub(crate) fn index_err(e: impl std::fmt::Display) -> SearchError {
    SearchError::Index(e.to_string())
}
