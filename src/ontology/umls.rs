//! Loader for the umls format (being written).

use super::{InputFile, LoadError, LoadOptions, Sink};

/// Load a release from `files` into `sink`.
pub fn load(
    _files: &[InputFile],
    _opts: &LoadOptions,
    _sink: &mut dyn Sink,
) -> Result<(), LoadError> {
    Err(LoadError::Files(
        "the umls loader is not implemented yet".into(),
    ))
}
