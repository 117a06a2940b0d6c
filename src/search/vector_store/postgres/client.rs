//! The connection side of the Postgres backend: a small tokio runtime for the async client, a
//! pool of shared connections for queries, one exclusive connection for writes that need a
//! transaction or session settings (bulk COPY, index DDL), error classification (503 vs 500)
//! and the schema check/migration run once per process.

use super::PgOptions;
use crate::search::SearchError;
use parking_lot::Mutex;
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

/// Schema version this binary writes (the number of `migrations/postgres/*.sql` files).
pub const SCHEMA_VERSION: i32 = 1;
const MIGRATIONS: [&str; 1] = [include_str!(
    "../../../../migrations/postgres/0001_vectors.sql"
)];
/// Advisory lock key serialising schema changes between nodes ("ontovec" in ASCII).
const SCHEMA_LOCK: i64 = 0x006f_6e74_6f76_6563;

/// A connection pool to one database, shared by the per-model stores.
pub struct PgClient {
    config: tokio_postgres::Config,
    shown: String,
    pub(super) options: PgOptions,
    slots: Vec<Mutex<Option<Arc<Client>>>>,
    /// The writer's own connection: taken out for the whole of one write, never shared with
    /// a concurrent search (a transaction on a shared connection would swallow its queries).
    writer: Mutex<Option<Client>>,
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
        let shown = super::super::redact(conn);
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
            writer: Mutex::new(None),
            next: AtomicUsize::new(0),
            schema_ready: AtomicBool::new(false),
        }))
    }

    /// The server as shown in messages (password redacted).
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Run `fut` on the client runtime and wait for it, within `timeout`. Safe from any
    /// thread, including one inside another runtime.
    fn run_for<T: Send + 'static>(
        &self,
        timeout: Duration,
        fut: impl Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    ) -> Result<T, SearchError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
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
    pub(super) fn error(&self, e: tokio_postgres::Error) -> SearchError {
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

    /// A new connection with the session settings every query relies on.
    fn connect(&self) -> Result<Client, SearchError> {
        let config = self.config.clone();
        let setup = format!(
            "SET client_min_messages = warning; SET hnsw.ef_search = {}; \
             SET hnsw.iterative_scan = relaxed_order",
            self.options.ef_search.clamp(1, 1000)
        );
        self.run_for(self.options.timeout, async move {
            let (client, conn) = config.connect(NoTls).await?;
            tokio::spawn(async move {
                if let Err(e) = conn.await {
                    tracing::debug!(error = %e, "postgres connection closed");
                }
            });
            client.batch_execute(&setup).await?;
            Ok(client)
        })
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
        let client = Arc::new(self.connect()?);
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Run a query on a pooled connection; a connection that failed is dropped from the pool.
    pub(super) fn with<T: Send + 'static, F>(
        &self,
        f: impl FnOnce(Arc<Client>) -> F,
    ) -> Result<T, SearchError>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>> + Send + 'static,
    {
        let client = self.client()?;
        let r = self.run_for(self.options.timeout, f(client.clone()));
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

    /// Run `f` on the writer's exclusive connection (transactions, `SET LOCAL`, COPY) within
    /// `timeout`. `f` hands the connection back with its result; a connection that timed out
    /// or broke is dropped and reopened by the next call. Writers are serialised.
    pub(super) fn with_writer<T: Send + 'static, F>(
        &self,
        timeout: Duration,
        f: impl FnOnce(Client) -> F,
    ) -> Result<T, SearchError>
    where
        F: Future<Output = (Client, Result<T, tokio_postgres::Error>)> + Send + 'static,
    {
        if !self.schema_ready.load(Ordering::Acquire) {
            self.ensure_schema()?;
        }
        let mut slot = self.writer.lock();
        let client = match slot.take().filter(|c| !c.is_closed()) {
            Some(c) => c,
            None => self.connect()?,
        };
        let fut = f(client);
        let (client, r) = self.run_for(timeout, async move { Ok(fut.await) })?;
        let r = r.map_err(|e| self.error(e));
        if !matches!(r, Err(SearchError::Unavailable(_))) && !client.is_closed() {
            *slot = Some(client);
        }
        r
    }

    /// Create or check the schema (see the module docs) on a connection of its own.
    pub fn ensure_schema(&self) -> Result<(), SearchError> {
        let config = self.config.clone();
        let found = self.run_for(self.options.timeout, async move {
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
