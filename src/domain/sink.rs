//! The contract between loaders and the store: a loader pushes what it reads into a [`Sink`]
//! and fails with a [`LoadError`] that names the file and line. Both sides (ontology/ loaders,
//! store/ writer) import this module; neither imports the other.

use super::model::{Concept, Mapping, Relation};

/// A loader failure, always tied to a place in an input file when there is one.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The content of a file is not what the format requires.
    #[error("{file}:{line}: {message}")]
    Malformed {
        /// File name (as given by the user, without directories of the upload area).
        file: String,
        /// 1-based line number (0 when the problem is the file as a whole).
        line: u64,
        /// What is wrong, naming the field/column where it helps.
        message: String,
    },
    /// A required file of the release is missing, or a file is not recognised.
    #[error("{0}")]
    Files(String),
    /// Reading a file failed.
    #[error("{file}: {source}")]
    Io {
        /// File name.
        file: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The store refused a write.
    #[error("store: {0}")]
    Store(String),
    /// The store's disk is full or down to the free space the store keeps in reserve.
    #[error("{message}")]
    StorageFull {
        /// The store's error.
        message: String,
        /// Whether the store itself met the full disk (it then writes again only after a
        /// restart), rather than refusing the write at its reserve.
        store_stopped: bool,
    },
    /// The job was cancelled.
    #[error("cancelled")]
    Cancelled,
}

impl LoadError {
    /// Shorthand for a malformed-content error.
    pub fn malformed(file: &str, line: u64, message: impl Into<String>) -> Self {
        LoadError::Malformed {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }

    /// (file, line) when the error points into a file.
    pub fn location(&self) -> Option<(&str, u64)> {
        match self {
            LoadError::Malformed { file, line, .. } => Some((file, *line)),
            LoadError::Io { file, .. } => Some((file, 0)),
            _ => None,
        }
    }
}

/// Where loaders put what they read. Implemented by the store's release writer and by test
/// collectors. Concepts with the same code may be pushed several times: the sink merges them.
pub trait Sink {
    /// Add (or merge into) a concept of the release's system.
    fn concept(&mut self, concept: Concept) -> Result<(), LoadError>;
    /// Add a relation between two concepts of the release's system.
    fn relation(&mut self, relation: Relation) -> Result<(), LoadError>;
    /// Add a crosswalk mapping (either side may be another system).
    fn mapping(&mut self, mapping: Mapping) -> Result<(), LoadError>;
    /// Record a non-fatal finding (shown in the job result and the release's warnings).
    fn warning(&mut self, message: String);
    /// Report progress in bytes of input consumed so far (over all files) and check for
    /// cancellation.
    fn progress(&mut self, bytes_done: u64) -> Result<(), LoadError>;
}
