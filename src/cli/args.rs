//! Flags shared by commands that open a data directory.

use clap::Args;
use std::path::PathBuf;

/// Options shared by commands that open a data directory.
#[derive(Debug, Args, Clone)]
pub struct DataArgs {
    /// Data directory (store, indexes, uploads).
    #[arg(long, env = "ONTOVEC_DATA_DIR", default_value = "data/ontovec")]
    pub data_dir: PathBuf,
    /// Folder of model folders.
    #[arg(long, env = "ONTOVEC_MODELS_DIR", default_value = "models")]
    pub models_dir: PathBuf,
}
