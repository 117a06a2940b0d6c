//! The error type of engine operations (its own file so that the engine's helpers, e.g.
//! [`super::serving`], can return it without importing the engine).

use super::SearchError;
use crate::encoder::EncoderError;

/// Failures of engine operations, mapped to HTTP in `api/error.rs`.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Index failure.
    #[error(transparent)]
    Search(#[from] SearchError),
    /// Encoder failure (unknown model, overloaded, ...).
    #[error(transparent)]
    Encoder(#[from] EncoderError),
    /// Store failure.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// Embedding cache failure.
    #[error("embedding cache: {0}")]
    Cache(#[from] sled::Error),
    /// Bad request content.
    #[error("{0}")]
    Invalid(String),
    /// A system named in the request has no loaded release.
    #[error("no release of system {0} is loaded")]
    UnknownSystem(String),
    /// A concept named in the request does not exist.
    #[error("no concept {1} in {0}")]
    UnknownConcept(String, String),
    /// A blocking-pool task failed (a panic; never expected).
    #[error("search worker failed: {0}")]
    Worker(String),
    /// The query (abbreviations spelled out) holds no letter or digit: nothing to search.
    #[error("the query {0:?} has no letter or digit: nothing to search")]
    NothingToSearch(String),
}
