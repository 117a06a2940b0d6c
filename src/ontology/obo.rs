//! Loader for the obo format (being written).

use super::{InputFile, LoadError, LoadOptions, Sink};

/// Load a release from `files` into `sink`.
pub fn load(
    _files: &[InputFile],
    _opts: &LoadOptions,
    _sink: &mut dyn Sink,
) -> Result<(), LoadError> {
    Err(LoadError::Files(
        "the obo loader is not implemented yet".into(),
    ))
}

/// The `ontology:` header of an OBO file, upper-cased, without extension.
pub fn sniff_ontology(_file: &InputFile) -> Result<Option<String>, LoadError> {
    Ok(None)
}
