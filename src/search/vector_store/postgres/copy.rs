//! Upserts by binary COPY: a batch is streamed with `COPY ... FROM STDIN (FORMAT binary)` into
//! a per-connection temporary staging table, then moved with one `INSERT ... SELECT ... ON
//! CONFLICT (term_id) DO UPDATE`, in one transaction on the writer's connection. COPY cannot
//! upsert by itself; the staging step keeps a replayed batch (a resumed catch-up) harmless.

use super::PgStore;
use crate::search::vector::normalized;
use crate::search::SearchError;
use pgvector::{HalfVector, Vector};
use std::collections::HashSet;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::Client;

/// Checked, normalised rows of one batch, the last occurrence of a key winning (as in the
/// embedded index).
pub(super) fn prepare(
    dim: usize,
    items: &[(u64, Vec<f32>)],
) -> Result<Vec<(i64, Vec<f32>)>, SearchError> {
    let mut out: Vec<(i64, Vec<f32>)> = Vec::with_capacity(items.len());
    let mut seen = HashSet::with_capacity(items.len());
    for (key, v) in items.iter().rev() {
        if v.len() != dim {
            return Err(SearchError::InvalidQuery(format!(
                "vector for key {key} has {} dimensions, index has {dim}",
                v.len()
            )));
        }
        let id = i64::try_from(*key)
            .map_err(|_| SearchError::InvalidQuery(format!("key {key} is out of range")))?;
        let n = normalized(v).ok_or_else(|| {
            SearchError::InvalidQuery(format!("vector for key {key} is zero or not finite"))
        })?;
        if seen.insert(id) {
            out.push((id, n));
        }
    }
    Ok(out)
}

/// The vectors of a batch in the table's scalar type.
enum Vecs {
    F32(Vec<Vector>),
    F16(Vec<HalfVector>),
}

impl Vecs {
    fn get(&self, i: usize) -> &(dyn ToSql + Sync) {
        match self {
            Vecs::F32(v) => &v[i],
            Vecs::F16(v) => &v[i],
        }
    }
}

/// One batch: staging table (created once per connection), COPY, upsert, commit.
async fn copy_batch(
    c: &mut Client,
    table: &str,
    scalar: &str,
    dim: usize,
    rows: &[(i64, i64)],
    vecs: &Vecs,
) -> Result<(), tokio_postgres::Error> {
    let stage = format!("stage_{table}");
    let tx = c.transaction().await?;
    tx.batch_execute(&format!(
        "CREATE TEMP TABLE IF NOT EXISTS {stage} (term_id bigint, rid bigint, \
         embedding {scalar}({dim})) ON COMMIT DELETE ROWS"
    ))
    .await?;
    // pgvector's types are an extension's: their oid comes from the server
    let vt = tx.prepare(&format!("SELECT $1::{scalar}")).await?.params()[0].clone();
    let sink = tx
        .copy_in(&format!(
            "COPY {stage} (term_id, rid, embedding) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &[Type::INT8, Type::INT8, vt]);
    let mut writer = std::pin::pin!(writer);
    for (i, (id, rid)) in rows.iter().enumerate() {
        writer.as_mut().write(&[id, rid, vecs.get(i)]).await?;
    }
    writer.finish().await?;
    tx.execute(
        &format!(
            "INSERT INTO {table} (term_id, rid, embedding) \
             SELECT term_id, rid, embedding FROM {stage} \
             ON CONFLICT (term_id) DO UPDATE SET rid = EXCLUDED.rid, embedding = EXCLUDED.embedding"
        ),
        &[],
    )
    .await?;
    tx.commit().await
}

impl PgStore {
    /// Insert or replace `items` by term id through binary COPY (see the module docs).
    pub(super) fn copy_upsert(&self, items: &[(u64, Vec<f32>)]) -> Result<(), SearchError> {
        let prepared = prepare(self.dim, items)?;
        if prepared.is_empty() {
            return Ok(());
        }
        self.ensure_table()?;
        let rows: Vec<(i64, i64)> = prepared
            .iter()
            .map(|(id, _)| (*id, crate::search::rid_of(*id as u64) as i64))
            .collect();
        let vecs = if self.client.options.halfvec {
            Vecs::F16(
                prepared
                    .iter()
                    .map(|(_, v)| HalfVector::from_f32_slice(v))
                    .collect(),
            )
        } else {
            Vecs::F32(prepared.into_iter().map(|(_, v)| Vector::from(v)).collect())
        };
        let (table, scalar, dim) = (self.table.clone(), self.scalar(), self.dim);
        self.client
            .with_writer(self.client.options.timeout, move |mut c| async move {
                let r = copy_batch(&mut c, &table, scalar, dim, &rows, &vecs).await;
                (c, r)
            })
    }
}
