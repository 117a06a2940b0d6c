//! The vector-index backend seam: what the search engine needs from "the place term vectors
//! live", with two implementations that give the same answers.
//!
//! - [`usearch::EmbeddedStore`] (the default): the in-process usearch HNSW of
//!   [`crate::search::vector`], files under `<data-dir>/indexes/vectors/`, its catch-up state in
//!   `<model>.state.json` beside it. Behaviour unchanged from before the seam existed.
//! - [`postgres::PgStore`]: PostgreSQL + pgvector, one table per model with an HNSW index, the
//!   catch-up state in a table of the same database (so API nodes sharing the database share it).
//!
//! ## Catch-up contract (both backends)
//! The engine diffs the store's active releases against [`VectorStore::begin_catch_up`]'s
//! state, calls [`VectorStore::remove_release`] for releases gone and [`VectorStore::upsert`]
//! for every term of releases new, then [`VectorStore::commit`] with the store sequence and
//! release set it now reflects. Upserts replace by term id and removals are by release, so
//! re-running a partly done catch-up (after a crash or kill -9 in the middle) converges to the
//! same content without duplicates; the state only advances at `commit`.

pub mod postgres;
pub mod usearch;

use super::{Hit, SearchError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashSet};

/// The store sequence and the releases a vector index reflects.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IndexState {
    /// Store sequence at the last completed catch-up.
    pub seq: u64,
    /// Release ids whose terms are all indexed.
    pub rids: BTreeSet<u64>,
}

/// Where the vectors of one terms model live (see the module docs).
pub trait VectorStore: Send + Sync {
    /// `usearch` or `postgres`.
    fn backend(&self) -> &'static str;

    /// The recorded state, read-only (for `/ready`'s lag); an unreachable backend is an error.
    fn state(&self) -> Result<IndexState, SearchError>;

    /// The state a catch-up starts from. `terms` holds each active release's term count: a
    /// backend that can cheaply tell that a release it records as done lacks vectors (a
    /// truncated table, a restored database) drops it from the state so it is indexed again.
    /// A backend whose files disagree with its state resets itself here.
    fn begin_catch_up(&self, terms: &BTreeMap<u64, u64>) -> Result<IndexState, SearchError>;

    /// Insert or replace vectors by term id (finite, non-zero, of the model's dimension).
    fn upsert(&self, items: &[(u64, Vec<f32>)]) -> Result<(), SearchError>;

    /// Remove every vector of release `rid`.
    fn remove_release(&self, rid: u64) -> Result<(), SearchError>;

    /// Make what was written durable and record `state` as reflected.
    fn commit(&self, state: &IndexState) -> Result<(), SearchError>;

    /// The `k` nearest term ids to `query` (cosine, best first), only from releases in
    /// `allowed` when given (without recall loss).
    fn search(
        &self,
        query: &[f32],
        k: usize,
        allowed: Option<&HashSet<u64>>,
    ) -> Result<Vec<Hit>, SearchError>;

    /// Number of vectors stored.
    fn count(&self) -> Result<u64, SearchError>;
}

/// How the engine opens its vector stores.
#[derive(Debug, Clone, Default)]
pub struct VectorConfig {
    /// Embedded usearch or Postgres.
    pub backend: Backend,
    /// Postgres tuning (ignored by the embedded backend).
    pub postgres: postgres::PgOptions,
    /// A read-only node: a shared (Postgres) store is never written, the writer keeps it.
    pub read_only: bool,
    /// The scalar type embedded (usearch) indexes store vectors as (`--vector-dtype`).
    pub dtype: super::vector::VectorScalar,
}

/// Which backend the engine opens for its terms models.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Backend {
    /// usearch files under the data directory.
    #[default]
    Embedded,
    /// PostgreSQL + pgvector at this connection string (`postgres://user:pass@host:port/db`
    /// or `host=... user=...`).
    Postgres(String),
}

impl Backend {
    /// From the `--vector-store` value: absent, empty or `usearch` → embedded; a
    /// `postgres://` / `postgresql://` URL or a `key=value` connection string → Postgres.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(str::trim) {
            None | Some("") | Some("usearch") | Some("embedded") => Ok(Backend::Embedded),
            Some(v)
                if v.starts_with("postgres://")
                    || v.starts_with("postgresql://")
                    || v.contains('=') =>
            {
                Ok(Backend::Postgres(v.to_string()))
            }
            Some(v) => Err(format!(
                "--vector-store {:?}: expected `usearch` or a postgres:// URL",
                redact(v)
            )),
        }
    }
}

/// A connection string with its password replaced by `***` (URL or `key=value` form), for
/// logs and error messages.
pub fn redact(conn: &str) -> String {
    if let Some(scheme_end) = conn.find("://") {
        let rest = &conn[scheme_end + 3..];
        let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
        let mut out = conn[..scheme_end + 3].to_string();
        let authority = &rest[..authority_end];
        match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                match userinfo.find(':') {
                    Some(c) => {
                        out.push_str(&userinfo[..c]);
                        out.push_str(":***");
                    }
                    None => out.push_str(userinfo),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        let tail = &rest[authority_end..];
        out.push_str(&redact_query_password(tail));
        return out;
    }
    conn.split_whitespace()
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn redact_query_password(tail: &str) -> String {
    let Some(q) = tail.find('?') else {
        return tail.to_string();
    };
    let params = tail[q + 1..]
        .split('&')
        .map(|kv| match kv.split_once('=') {
            Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
            _ => kv.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&");
    format!("{}?{params}", &tail[..q])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords_in_every_form() {
        assert_eq!(
            redact("postgres://ov:s3cret@db.example:5432/ontovec"),
            "postgres://ov:***@db.example:5432/ontovec"
        );
        assert_eq!(
            redact("postgresql://ov@db/x?sslmode=disable&password=pw"),
            "postgresql://ov@db/x?sslmode=disable&password=***"
        );
        assert_eq!(redact("postgres://db/x"), "postgres://db/x");
        assert_eq!(
            redact("host=db user=ov password=pw dbname=x"),
            "host=db user=ov password=*** dbname=x"
        );
        assert!(!redact("postgres://a:p%40ss@h/d").contains("p%40ss"));
    }

    #[test]
    fn parses_the_flag() {
        assert_eq!(Backend::parse(None).unwrap(), Backend::Embedded);
        assert_eq!(Backend::parse(Some("usearch")).unwrap(), Backend::Embedded);
        assert!(matches!(
            Backend::parse(Some("postgres://h/d")).unwrap(),
            Backend::Postgres(_)
        ));
        let e = Backend::parse(Some("mysql://u:pw@h/d")).unwrap_err();
        assert!(!e.contains("pw@"), "{e}");
    }
}
