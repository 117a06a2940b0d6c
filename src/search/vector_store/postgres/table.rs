//! DDL of one model's table: its name, creation (or rebuild when the dimension or scalar kind
//! changed), size, dropping, and the HNSW index's life cycle around bulk loads.

use super::PgStore;
use crate::search::SearchError;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Deadline of an HNSW build (a long statement on purpose: 15M vectors take hours).
const INDEX_BUILD_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// The table of `model`: a SQL-safe name from the model's, plus a hash of the exact name so
/// two names that sanitise alike do not share a table.
pub fn table_name(model: &str) -> String {
    let clean: String = model
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(32)
        .collect();
    let h = crate::util::hash::fnv1a64(model.as_bytes()) as u32;
    format!("ontovec_vec_{clean}_{h:08x}")
}

impl PgStore {
    pub(super) fn scalar(&self) -> &'static str {
        if self.client.options.halfvec {
            "halfvec"
        } else {
            "vector"
        }
    }

    /// `CREATE INDEX IF NOT EXISTS` of the model's HNSW index.
    fn hnsw_ddl(&self) -> String {
        let (t, o) = (&self.table, self.client.options);
        format!(
            "CREATE INDEX IF NOT EXISTS {t}_hnsw ON {t} USING hnsw (embedding {}_cosine_ops) \
             WITH (m = {}, ef_construction = {})",
            self.scalar(),
            o.m.clamp(2, 100),
            o.ef_construction.clamp(4, 1000)
        )
    }

    /// Create the model's table and indexes, or rebuild them when the dimension or scalar
    /// kind recorded for the model differs. An existing table's HNSW index is left as it is
    /// (a bulk load in progress has dropped it on purpose; its catch-up builds it).
    pub fn ensure_table(&self) -> Result<(), SearchError> {
        if self.table_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let (t, dim, scalar) = (self.table.clone(), self.dim as i32, self.scalar());
        let model = self.model.clone();
        let hnsw = self.hnsw_ddl();
        let reset = self.client.with(move |c| async move {
            let row = c
                .query_opt(
                    "SELECT dim, scalar, table_name FROM ontovec_vector_models WHERE model = $1",
                    &[&model],
                )
                .await?;
            let same = row.as_ref().is_some_and(|r| {
                r.get::<_, i32>(0) == dim
                    && r.get::<_, String>(1) == scalar
                    && r.get::<_, String>(2) == t
            });
            if !same {
                c.batch_execute(&format!("DROP TABLE IF EXISTS {t}"))
                    .await?;
            }
            let exists: bool = c
                .query_one("SELECT to_regclass($1) IS NOT NULL", &[&t])
                .await?
                .get(0);
            if !exists {
                c.batch_execute(&format!(
                    "CREATE TABLE IF NOT EXISTS {t} (term_id bigint PRIMARY KEY, \
                     rid bigint NOT NULL, embedding {scalar}({dim}) NOT NULL);
                     CREATE INDEX IF NOT EXISTS {t}_rid ON {t} (rid);
                     {hnsw};"
                ))
                .await?;
            }
            if !same {
                c.execute(
                    "INSERT INTO ontovec_vector_models (model, table_name, dim, scalar) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (model) DO UPDATE SET \
                     table_name = EXCLUDED.table_name, dim = EXCLUDED.dim, \
                     scalar = EXCLUDED.scalar, seq = 0, rids = '{}'",
                    &[&model, &t, &dim, &scalar],
                )
                .await?;
            }
            Ok(!same && row.is_some())
        })?;
        if reset {
            tracing::warn!(model = %self.model, "vector table's dimension or scalar changed; rebuilt empty");
        }
        self.table_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Whether the model's HNSW index exists.
    pub(super) fn has_hnsw(&self) -> Result<bool, SearchError> {
        let name = format!("{}_hnsw", self.table);
        self.client.with(move |c| async move {
            Ok(c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&name])
                .await?
                .get(0))
        })
    }

    /// Drop the HNSW index before a bulk load (rows then go in without graph insertion;
    /// searches meanwhile are exact scans).
    pub(super) fn drop_hnsw(&self) -> Result<(), SearchError> {
        let sql = format!("DROP INDEX IF EXISTS {}_hnsw", self.table);
        self.client
            .with_writer(self.client.options.timeout, move |c| async move {
                let r = c.batch_execute(&sql).await;
                (c, r)
            })
    }

    /// Build the HNSW index if it is missing, with `maintenance_work_mem` and parallel
    /// maintenance workers from the options, set for this statement only.
    pub(super) fn build_hnsw(&self) -> Result<(), SearchError> {
        if self.has_hnsw()? {
            return Ok(());
        }
        let o = self.client.options;
        let sql = format!(
            "SET LOCAL maintenance_work_mem = '{}MB'; \
             SET LOCAL max_parallel_maintenance_workers = {}; {};",
            o.maintenance_work_mem_mb.clamp(64, 1 << 20),
            o.build_workers.min(64),
            self.hnsw_ddl()
        );
        let started = Instant::now();
        self.client
            .with_writer(INDEX_BUILD_TIMEOUT, move |mut c| async move {
                // a failed statement rolls the transaction back when it is dropped
                let r = async {
                    let tx = c.transaction().await?;
                    tx.batch_execute(&sql).await?;
                    tx.commit().await
                }
                .await;
                (c, r)
            })?;
        tracing::info!(model = %self.model, secs = format!("{:.1}", started.elapsed().as_secs_f64()), "HNSW index built");
        // fresh statistics of `rid` for the exact path of small filters (see `EXACT_MAX`)
        let analyze = format!("ANALYZE {}", self.table);
        self.client
            .with_writer(self.client.options.timeout, move |c| async move {
                let r = c.batch_execute(&analyze).await;
                (c, r)
            })?;
        *self.rid_rows.lock() = None;
        Ok(())
    }

    /// Bytes of the model's table with its indexes (`pg_total_relation_size`).
    pub fn table_bytes(&self) -> Result<u64, SearchError> {
        self.ensure_table()?;
        let t = self.table.clone();
        self.client.with(move |c| async move {
            let n: i64 = c
                .query_one(&format!("SELECT pg_total_relation_size('{t}')"), &[])
                .await?
                .get(0);
            Ok(n as u64)
        })
    }

    /// Drop the model's table and its state row (benchmarks clean up with it).
    pub fn drop_table(&self) -> Result<(), SearchError> {
        let (t, model) = (self.table.clone(), self.model.clone());
        self.table_ready.store(false, Ordering::Release);
        self.client.with(move |c| async move {
            c.batch_execute(&format!("DROP TABLE IF EXISTS {t}"))
                .await?;
            c.execute(
                "DELETE FROM ontovec_vector_models WHERE model = $1",
                &[&model],
            )
            .await
            .map(|_| ())
        })
    }
}
