//! The PostgreSQL + pgvector backend.
//!
//! ## Schema
//! Owned by ontovec: `migrations/postgres/*.sql`, applied on first use inside a transaction
//! holding an advisory lock (several API nodes may start at once), recorded in
//! `ontovec_schema`. A database at a newer version than this binary knows is refused. Each
//! terms model gets a table `ontovec_vec_<name>_<hash>` (`term_id` primary key, `rid`,
//! `embedding` as `vector(dim)` or `halfvec(dim)`), a b-tree on `rid` and an HNSW index
//! (`vector_cosine_ops`, `m`/`ef_construction` from [`PgOptions`]); its catch-up state is its
//! row of `ontovec_vector_models`. A model whose dimension or scalar kind changed gets its
//! table dropped and rebuilt.
//!
//! ## Queries
//! Every connection runs with `hnsw.iterative_scan = relaxed_order` (pgvector ≥ 0.8): a
//! filtered search (`WHERE rid = ANY(...)`) keeps walking the graph until it has `k` rows that
//! pass, instead of filtering a fixed candidate list (which loses recall for small systems);
//! the rows are re-sorted by distance outside the index scan. Upserts are
//! `INSERT ... SELECT FROM unnest(...) ON CONFLICT (term_id) DO UPDATE`, so replaying a batch
//! is harmless; vectors go in binary (the `pgvector` crate's types).
//!
//! ## Failures
//! The client runs on its own small tokio runtime (callers are synchronous: the blocking pool
//! and background threads) with a pool of connections opened lazily. A connection that breaks
//! is dropped and reopened by the next call; until the server answers again every call fails
//! with [`SearchError::Unavailable`] (503 over HTTP), naming the server with its password
//! redacted. Nothing here ever needs an ontovec restart.

use super::{redact, IndexState, VectorStore};
use crate::search::vector::{checked_query, normalized};
use crate::search::{Hit, SearchError};
use parking_lot::Mutex;
use pgvector::{HalfVector, Vector};
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

/// Schema version this binary writes (the number of `migrations/postgres/*.sql` files).
pub const SCHEMA_VERSION: i32 = 1;
const MIGRATIONS: [&str; 1] = [include_str!(
    "../../../migrations/postgres/0001_vectors.sql"
)];
/// Advisory lock key serialising schema changes between nodes ("ontovec" in ASCII).
const SCHEMA_LOCK: i64 = 0x006f_6e74_6f76_6563;

/// Tuning of the Postgres backend.
#[derive(Debug, Clone, Copy)]
pub struct PgOptions {
    /// HNSW `m` (links per node).
    pub m: u32,
    /// HNSW `ef_construction`.
    pub ef_construction: u32,
    /// `hnsw.ef_search` of every connection (iterative scans go further when `k` needs it).
    pub ef_search: u32,
    /// Store vectors as `halfvec` (f16, half the space) instead of `vector` (f32).
    pub halfvec: bool,
    /// Connections in the pool.
    pub connections: usize,
    /// Deadline of one call; past it the call is `Unavailable`. Generous because a batch
    /// upsert's HNSW insertion can take many seconds on a busy server; an HTTP search is cut
    /// sooner by the request deadline (503 `deadline_exceeded`). Connecting has its own 5 s.
    pub timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            m: 16,
            ef_construction: 64,
            ef_search: 100,
            halfvec: false,
            connections: 4,
            timeout: Duration::from_secs(120),
        }
    }
}

/// A connection pool to one database, shared by the per-model stores.
pub struct PgClient {
    config: tokio_postgres::Config,
    shown: String,
    options: PgOptions,
    slots: Vec<Mutex<Option<Arc<Client>>>>,
    next: AtomicUsize,
    schema_ready: AtomicBool,
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pg-client")
            .enable_all()
            .build()
            .expect("cannot start the Postgres client runtime")
    })
}

impl PgClient {
    /// A pool for `conn` (nothing is connected yet); a malformed string is an error naming it
    /// with the password redacted.
    pub fn new(conn: &str, options: PgOptions) -> Result<Arc<Self>, SearchError> {
        let shown = redact(conn);
        let mut config = tokio_postgres::Config::from_str(conn).map_err(|e| {
            SearchError::Index(format!("vector store {shown}: bad connection string: {e}"))
        })?;
        config.connect_timeout(options.timeout.min(Duration::from_secs(5)));
        config.application_name("ontovec");
        let slots = (0..options.connections.max(1))
            .map(|_| Mutex::new(None))
            .collect();
        Ok(Arc::new(Self {
            config,
            shown,
            options,
            slots,
            next: AtomicUsize::new(0),
            schema_ready: AtomicBool::new(false),
        }))
    }

    /// The server as shown in messages (password redacted).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Run `fut` on the client runtime and wait for it, within the call deadline. Safe from
    /// any thread, including one inside another runtime.
    fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    ) -> Result<T, SearchError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let timeout = self.options.timeout;
        runtime().spawn(async move {
            let _ = tx.send(tokio::time::timeout(timeout, fut).await);
        });
        match rx.recv() {
            Ok(Ok(r)) => r.map_err(|e| self.error(e)),
            Ok(Err(_)) => Err(SearchError::Unavailable(format!(
                "vector store {} did not answer within {timeout:?}",
                self.shown
            ))),
            Err(_) => Err(SearchError::Index("postgres client task failed".into())),
        }
    }

    /// A database error is a bug or a schema problem (500); anything else (refused, reset,
    /// closed, shutting down) means the server is unreachable for now (503).
    fn error(&self, e: tokio_postgres::Error) -> SearchError {
        use tokio_postgres::error::SqlState;
        let down = match e.code() {
            None => true,
            Some(c) => {
                *c == SqlState::ADMIN_SHUTDOWN
                    || *c == SqlState::CRASH_SHUTDOWN
                    || *c == SqlState::CANNOT_CONNECT_NOW
                    || c.code().starts_with("08")
            }
        };
        let detail = match e.as_db_error() {
            Some(db) => db.message().to_string(),
            None => format!("{e}"),
        };
        if down {
            SearchError::Unavailable(format!("vector store {} unreachable: {detail}", self.shown))
        } else {
            SearchError::Index(format!("vector store {}: {detail}", self.shown))
        }
    }

    /// A live connection from the pool (reconnecting a broken slot), schema ensured.
    fn client(&self) -> Result<Arc<Client>, SearchError> {
        if !self.schema_ready.load(Ordering::Acquire) {
            self.ensure_schema()?;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.slots.len();
        let mut slot = self.slots[i].lock();
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        *slot = None;
        let config = self.config.clone();
        let setup = format!(
            "SET client_min_messages = warning; SET hnsw.ef_search = {}; \
             SET hnsw.iterative_scan = relaxed_order",
            self.options.ef_search.clamp(1, 1000)
        );
        let client = self.run(async move {
            let (client, conn) = config.connect(NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "postgres connection closed");
                }
            });
            client.batch_execute(&setup).await?;
            Ok(client)
        })?;
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Run a query on a pooled connection; a connection that failed is dropped from the pool.
    fn with<T: Send + 'static, F>(&self, f: impl FnOnce(Arc<Client>) -> F) -> Result<T, SearchError>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    {
        let client = self.client()?;
        let r = self.run(f(client.clone()));
        if matches!(r, Err(SearchError::Unavailable(_))) {
            for slot in &self.slots {
                let mut s = slot.lock();
                if s.as_ref()
                    .is_some_and(|c| Arc::ptr_eq(c, &client) || c.is_closed())
                {
                    *s = None;
                }
            }
        }
        r
    }

    /// Create or check the schema (see the module docs) on a connection of its own.
    pub fn ensure_schema(&self) -> Result<(), SearchError> {
        let config = self.config.clone();
        let found = self.run(async move {
            let (mut client, conn) = config.connect(NoTls).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            client
                .batch_execute("SET client_min_messages = warning")
                .await?;
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
                .await?;
            let exists: bool = tx
                .query_one("SELECT to_regclass('ontovec_schema') IS NOT NULL", &[])
                .await?
                .get(0);
            let mut version = 0i32;
            if exists {
                if let Some(row) = tx
                    .query_opt(
                        "SELECT version FROM ontovec_schema WHERE component = 'vectors'",
                        &[],
                    )
                    .await?
                {
                    version = row.get(0);
                }
            }
            if version > SCHEMA_VERSION {
                return Ok(version);
            }
            for sql in MIGRATIONS.iter().skip(version.max(0) as usize) {
                tx.batch_execute(sql).await?;
            }
            if version < SCHEMA_VERSION {
                tx.execute(
                    "INSERT INTO ontovec_schema (component, version) VALUES ('vectors', $1)
                     ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
                    &[&SCHEMA_VERSION],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(version)
        })?;
        if found > SCHEMA_VERSION {
            return Err(SearchError::Index(format!(
                "vector store {}: its ontovec schema is version {found}, newer than this \
                 binary's {SCHEMA_VERSION}; upgrade ontovec",
                self.shown
            )));
        }
        self.schema_ready.store(true, Ordering::Release);
        Ok(())
    }
}

/// The vectors of one terms model in Postgres (see the module docs).
pub struct PgStore {
    client: Arc<PgClient>,
    model: String,
    table: String,
    dim: usize,
    table_ready: AtomicBool,
}

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

fn prepare(dim: usize, items: &[(u64, Vec<f32>)]) -> Result<Vec<(i64, Vec<f32>)>, SearchError> {
    let mut out: Vec<(i64, Vec<f32>)> = Vec::with_capacity(items.len());
    let mut seen = HashSet::with_capacity(items.len());
    // the last occurrence of a key in the batch wins (as in the embedded index)
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

impl PgStore {
    /// The store of `model` (dimension `dim`) in the database of `client`. Connects lazily:
    /// an unreachable server is reported by the first call, not here.
    pub fn new(client: Arc<PgClient>, model: &str, dim: usize) -> Self {
        Self {
            client,
            model: model.to_string(),
            table: table_name(model),
            dim,
            table_ready: AtomicBool::new(false),
        }
    }

    fn scalar(&self) -> &'static str {
        if self.client.options.halfvec {
            "halfvec"
        } else {
            "vector"
        }
    }

    /// Create the model's table and indexes, or rebuild them when the dimension or scalar
    /// kind recorded for the model differs.
    pub fn ensure_table(&self) -> Result<(), SearchError> {
        if self.table_ready.load(Ordering::Acquire) {
            return Ok(());
        }
        let (t, dim, scalar, o) = (
            self.table.clone(),
            self.dim as i32,
            self.scalar(),
            self.client.options,
        );
        let model = self.model.clone();
        let ops = format!("{scalar}_cosine_ops");
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
            c.batch_execute(&format!(
                "CREATE TABLE IF NOT EXISTS {t} (term_id bigint PRIMARY KEY, rid bigint NOT NULL, \
                 embedding {scalar}({dim}) NOT NULL);
                 CREATE INDEX IF NOT EXISTS {t}_rid ON {t} (rid);
                 CREATE INDEX IF NOT EXISTS {t}_hnsw ON {t} USING hnsw (embedding {ops}) \
                 WITH (m = {}, ef_construction = {});",
                o.m.clamp(2, 100),
                o.ef_construction.clamp(4, 1000)
            ))
            .await?;
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

    fn read_state(&self) -> Result<IndexState, SearchError> {
        self.ensure_table()?;
        let model = self.model.clone();
        self.client.with(move |c| async move {
            let row = c
                .query_opt(
                    "SELECT seq, rids FROM ontovec_vector_models WHERE model = $1",
                    &[&model],
                )
                .await?;
            Ok(row
                .map(|r| IndexState {
                    seq: r.get::<_, i64>(0) as u64,
                    rids: r
                        .get::<_, Vec<i64>>(1)
                        .into_iter()
                        .map(|x| x as u64)
                        .collect(),
                })
                .unwrap_or_default())
        })
    }
}

impl VectorStore for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn state(&self) -> Result<IndexState, SearchError> {
        self.read_state()
    }

    fn begin_catch_up(&self, terms: &BTreeMap<u64, u64>) -> Result<IndexState, SearchError> {
        let mut st = self.read_state()?;
        let t = self.table.clone();
        let counts: Vec<(i64, i64)> = self.client.with(move |c| async move {
            let rows = c
                .query(
                    &format!("SELECT rid, count(*) FROM {t} GROUP BY rid ORDER BY rid"),
                    &[],
                )
                .await?;
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })?;
        let counts: BTreeMap<u64, u64> = counts
            .into_iter()
            .map(|(r, n)| (r as u64, n as u64))
            .collect();
        // a release recorded as done whose rows are not all there is indexed again
        let short: Vec<u64> = st
            .rids
            .iter()
            .copied()
            .filter(|r| {
                terms
                    .get(r)
                    .is_some_and(|n| counts.get(r).copied().unwrap_or(0) != *n)
            })
            .collect();
        for r in short {
            tracing::warn!(model = %self.model, rid = r, "vectors missing in Postgres; indexing the release again");
            st.rids.remove(&r);
        }
        // rows of a release no longer active (an interrupted catch-up of a release replaced
        // since) are listed so the engine removes them
        for r in counts.keys() {
            if !terms.contains_key(r) {
                st.rids.insert(*r);
            }
        }
        Ok(st)
    }

    fn upsert(&self, items: &[(u64, Vec<f32>)]) -> Result<(), SearchError> {
        let prepared = prepare(self.dim, items)?;
        if prepared.is_empty() {
            return Ok(());
        }
        self.ensure_table()?;
        let ids: Vec<i64> = prepared.iter().map(|(id, _)| *id).collect();
        let rids: Vec<i64> = ids
            .iter()
            .map(|id| crate::search::rid_of(*id as u64) as i64)
            .collect();
        let (t, scalar) = (self.table.clone(), self.scalar());
        let sql = format!(
            "INSERT INTO {t} (term_id, rid, embedding) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::{scalar}[]) \
             ON CONFLICT (term_id) DO UPDATE SET rid = EXCLUDED.rid, embedding = EXCLUDED.embedding"
        );
        if self.client.options.halfvec {
            let vecs: Vec<HalfVector> = prepared
                .into_iter()
                .map(|(_, v)| HalfVector::from_f32_slice(&v))
                .collect();
            self.client.with(move |c| async move {
                c.execute(&sql, &[&ids, &rids, &vecs]).await.map(|_| ())
            })
        } else {
            let vecs: Vec<Vector> = prepared.into_iter().map(|(_, v)| Vector::from(v)).collect();
            self.client.with(move |c| async move {
                c.execute(&sql, &[&ids, &rids, &vecs]).await.map(|_| ())
            })
        }
    }

    fn remove_release(&self, rid: u64) -> Result<(), SearchError> {
        self.ensure_table()?;
        let t = self.table.clone();
        let rid = rid as i64;
        self.client.with(move |c| async move {
            c.execute(&format!("DELETE FROM {t} WHERE rid = $1"), &[&rid])
                .await
                .map(|_| ())
        })
    }

    fn commit(&self, state: &IndexState) -> Result<(), SearchError> {
        self.ensure_table()?;
        let model = self.model.clone();
        let seq = state.seq as i64;
        let rids: Vec<i64> = state.rids.iter().map(|r| *r as i64).collect();
        self.client.with(move |c| async move {
            c.execute(
                "UPDATE ontovec_vector_models SET seq = $2, rids = $3 WHERE model = $1",
                &[&model, &seq, &rids],
            )
            .await
            .map(|_| ())
        })
    }

    fn search(
        &self,
        query: &[f32],
        k: usize,
        allowed: Option<&HashSet<u64>>,
    ) -> Result<Vec<Hit>, SearchError> {
        let q = checked_query(query, self.dim)?;
        let k = k.min(crate::search::vector::MAX_K) as i64;
        if k == 0 {
            return Ok(Vec::new());
        }
        self.ensure_table()?;
        let (t, scalar) = (self.table.clone(), self.scalar());
        let filter = if allowed.is_some() {
            "WHERE rid = ANY($3)"
        } else {
            ""
        };
        let sql = format!(
            "WITH hits AS MATERIALIZED (SELECT term_id, embedding <=> $1::{scalar} AS d FROM {t} \
             {filter} ORDER BY d LIMIT $2) SELECT term_id, d FROM hits ORDER BY d + 0, term_id"
        );
        let allowed: Vec<i64> = allowed
            .map(|a| a.iter().map(|r| *r as i64).collect())
            .unwrap_or_default();
        let filtered = !filter.is_empty();
        let halfvec = self.client.options.halfvec;
        let rows: Vec<(i64, f64)> = self.client.with(move |c| async move {
            let qv: Box<dyn tokio_postgres::types::ToSql + Sync + Send> = if halfvec {
                Box::new(HalfVector::from_f32_slice(&q))
            } else {
                Box::new(Vector::from(q))
            };
            let rows = if filtered {
                c.query(&sql, &[qv.as_ref(), &k, &allowed]).await?
            } else {
                c.query(&sql, &[qv.as_ref(), &k]).await?
            };
            Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
        })?;
        Ok(rows
            .into_iter()
            .map(|(id, d)| Hit {
                term_id: id as u64,
                score: (1.0 - d as f32).clamp(-1.0, 1.0),
            })
            .collect())
    }

    fn count(&self) -> Result<u64, SearchError> {
        self.ensure_table()?;
        let t = self.table.clone();
        self.client.with(move |c| async move {
            let n: i64 = c
                .query_one(&format!("SELECT count(*) FROM {t}"), &[])
                .await?
                .get(0);
            Ok(n as u64)
        })
    }
}
