//! Flags shared by commands that open a data directory.

use crate::encoder::{PrecisionChoice, PrecisionPolicy};
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
    /// Precision of every model's matrix products: `auto` (BF16 where the CPU has AVX512_BF16
    /// and the model passes the parity gate against F32, else F32), `f32` or `bf16`. Unset:
    /// each model's `ontovec.json` `precision`, else `auto`.
    #[arg(long, env = "ONTOVEC_PRECISION")]
    pub precision: Option<PrecisionChoice>,
}

impl DataArgs {
    /// How models pick their precision: the flag, else the manifest, else `auto`.
    pub fn precision_policy(&self) -> PrecisionPolicy {
        PrecisionPolicy {
            forced: self.precision,
            default: PrecisionChoice::Auto,
        }
    }
}
