//! Flags shared by commands that open a data directory.

use crate::encoder::{PrecisionChoice, PrecisionPolicy};
use crate::search::vector::VectorScalar;
use crate::search::vector_store::{postgres::PgOptions, Backend, VectorConfig};
use crate::service::app::AppConfig;
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
    /// Where term vectors live: `usearch` (embedded files under the data dir, the default) or
    /// a PostgreSQL + pgvector connection string (`postgres://user:pass@host:5432/db`).
    #[arg(long, env = "ONTOVEC_VECTOR_STORE")]
    pub vector_store: Option<String>,
    /// Postgres vector store: HNSW `m` of new tables.
    #[arg(long, env = "ONTOVEC_PG_HNSW_M", default_value_t = 16)]
    pub pg_hnsw_m: u32,
    /// Postgres vector store: HNSW `ef_construction` of new tables.
    #[arg(long, env = "ONTOVEC_PG_EF_CONSTRUCTION", default_value_t = 64)]
    pub pg_ef_construction: u32,
    /// Postgres vector store: `hnsw.ef_search` of each connection.
    #[arg(long, env = "ONTOVEC_PG_EF_SEARCH", default_value_t = 100)]
    pub pg_ef_search: u32,
    /// Postgres vector store: keep vectors as `halfvec` (f16, half the space).
    #[arg(long, env = "ONTOVEC_PG_HALFVEC")]
    pub pg_halfvec: bool,
    /// Postgres vector store: `maintenance_work_mem` (MiB) of the HNSW build after a bulk load.
    #[arg(
        long,
        env = "ONTOVEC_PG_MAINTENANCE_WORK_MEM_MB",
        default_value_t = 1024
    )]
    pub pg_maintenance_work_mem_mb: u32,
    /// Postgres vector store: parallel maintenance workers of that build.
    #[arg(long, env = "ONTOVEC_PG_BUILD_WORKERS", default_value_t = 2)]
    pub pg_build_workers: u32,
    /// Postgres vector store: connections per process.
    #[arg(long, env = "ONTOVEC_PG_CONNECTIONS", default_value_t = 8)]
    pub pg_connections: usize,
    /// Precision of every model's matrix products: `auto` (the first of INT8 (AVX512_VNNI) and
    /// BF16 (AVX512_BF16) that the CPU runs and the model passes the parity gate against F32
    /// in, else F32), `f32`, `bf16` or `int8`. Unset: each model's `ontovec.json` `precision`,
    /// else `auto`.
    #[arg(long, env = "ONTOVEC_PRECISION")]
    pub precision: Option<PrecisionChoice>,
    /// Scalar type of the embedded (usearch) term vector indexes: `f32` (default), `f16` (half
    /// the memory) or `i8` (a quarter). Each dtype has its own index file; after a change the
    /// index of the old dtype answers until the new one is built (from the embedding cache).
    /// With a Postgres vector store use `--pg-halfvec` instead.
    #[arg(long, env = "ONTOVEC_VECTOR_DTYPE")]
    pub vector_dtype: Option<VectorScalar>,
}

impl DataArgs {
    /// The application settings these flags give (other settings at their defaults).
    pub fn app_config(&self) -> anyhow::Result<AppConfig> {
        let mut cfg = AppConfig::new(&self.data_dir);
        cfg.models_dir = self.models_dir.clone();
        cfg.precision = self.precision_policy();
        let backend = Backend::parse(self.vector_store.as_deref()).map_err(anyhow::Error::msg)?;
        let dtype = self.vector_dtype.unwrap_or_default();
        if backend != Backend::Embedded && dtype != VectorScalar::F32 {
            anyhow::bail!(
                "--vector-dtype {dtype} applies to the embedded usearch store; with a Postgres vector store use --pg-halfvec"
            );
        }
        cfg.vector = VectorConfig {
            backend,
            dtype,
            postgres: PgOptions {
                m: self.pg_hnsw_m,
                ef_construction: self.pg_ef_construction,
                ef_search: self.pg_ef_search,
                halfvec: self.pg_halfvec,
                connections: self.pg_connections.max(1),
                maintenance_work_mem_mb: self.pg_maintenance_work_mem_mb,
                build_workers: self.pg_build_workers,
                ..PgOptions::default()
            },
            read_only: false,
        };
        Ok(cfg)
    }

    /// How models pick their precision: the flag, else the manifest, else `auto`.
    pub fn precision_policy(&self) -> PrecisionPolicy {
        PrecisionPolicy {
            forced: self.precision,
            default: PrecisionChoice::Auto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        data: DataArgs,
    }

    #[test]
    fn vector_dtype_is_for_the_embedded_store() {
        let parse = |args: &[&str]| Cli::try_parse_from([&["ontovec"], args].concat());
        let ok = parse(&["--vector-dtype", "i8", "--vector-store", "usearch"]).unwrap();
        assert_eq!(ok.data.app_config().unwrap().vector.dtype, VectorScalar::I8);
        let pg = parse(&["--vector-dtype", "f16", "--vector-store", "postgres://h/d"]).unwrap();
        let e = pg.data.app_config().unwrap_err().to_string();
        assert!(e.contains("--pg-halfvec"), "{e}");
        assert!(parse(&["--vector-dtype", "f64"]).is_err());
    }
}
