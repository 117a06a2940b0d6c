//! Writing a release: staged off to the side while loading, visible all at once on commit.
//!
//! A [`ReleaseWriter`] is the [`Sink`] loaders write into. Nothing goes to sled while a source is
//! parsed: concepts, relations and mappings are appended to [`Spool`]s — external sorts with a
//! fixed memory budget that spill sorted runs under `<store>/staging/<rid>/`. On
//! [`ReleaseWriter::commit`] each spool is merged into one sorted stream and written as a
//! release table ([`super::table`]) in large sequential batches: concept fragments with the same
//! code are merged, term ids are assigned in code order, duplicates are dropped, the hierarchy is
//! checked for cycles, and `active[system]` is flipped in one transaction. Memory stays bounded
//! by the spool budgets whatever the size of the input, and sled receives a few big sorted blocks
//! instead of millions of small random inserts. Dropping the writer without committing (an
//! error, a cancelled job) removes everything it staged or wrote.

use super::graph::{code_hash, split_rel, Graph};
use super::keys;
use super::spool::{Merged, Spool, SPOOL_BYTES};
use super::table::{Table, TableWriter};
use super::{decode, encode, MapVal, Store, StoreError, StoreResult, StoredConcept, TermRow};
use crate::domain::model::{
    Concept, Counts, Mapping, Relation, ReleaseInfo, ReleaseState, HIERARCHY_RELS,
};
use crate::domain::sink::{LoadError, Sink};
use crate::util::progress::Progress;
use crate::util::time::now_rfc3339;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

/// Writes one release; see the module docs.
pub struct ReleaseWriter {
    store: Store,
    info: ReleaseInfo,
    replace: bool,
    staging: PathBuf,
    concepts: Spool,
    rel: Spool,
    rel_rev: Spool,
    map: Spool,
    map_rev: Spool,
    map_systems: BTreeSet<Vec<u8>>,
    progress: Option<Arc<Progress>>,
    job: Option<String>,
    committed: bool,
}

fn valid_code(code: &str) -> bool {
    !code.is_empty() && code.len() <= 256 && !code.chars().any(|c| c.is_control())
}

impl ReleaseWriter {
    /// Start writing release `release` of `system`. Fails with
    /// [`StoreError::ReleaseExists`] when that (system, release) is active and `replace` is false.
    pub fn begin(
        store: &Store,
        system: &str,
        release: &str,
        format: &str,
        replace: bool,
    ) -> StoreResult<Self> {
        if !valid_code(system) || system.contains('\0') {
            return Err(StoreError::Aborted(format!(
                "invalid system name '{system}'"
            )));
        }
        if !replace {
            check_not_exists(store, system, release)?;
        }
        let rid = store.allocate_rid()?;
        let info = ReleaseInfo {
            rid,
            system: system.to_string(),
            release: release.to_string(),
            format: format.to_string(),
            state: ReleaseState::Loading,
            counts: Counts::default(),
            loaded_at: now_rfc3339(),
            warnings: Vec::new(),
        };
        store
            .inner
            .releases
            .insert(rid.to_be_bytes(), encode(&info))?;
        store.inner.db.flush()?;
        let staging = store.staging_dir().join(rid.to_string());
        let spool = |name: &'static str, share: usize| {
            Spool::new(&staging, name, share).guarded(&store.inner.disk)
        };
        Ok(Self {
            store: store.clone(),
            info,
            replace,
            concepts: spool("concepts", SPOOL_BYTES),
            rel: spool("rel", SPOOL_BYTES / 2),
            rel_rev: spool("rel_rev", SPOOL_BYTES / 2),
            map: spool("map", SPOOL_BYTES / 2),
            map_rev: spool("map_rev", SPOOL_BYTES / 2),
            staging,
            map_systems: BTreeSet::new(),
            progress: None,
            job: None,
            committed: false,
        })
    }

    /// Report progress (bytes, phases) and observe cancellation through `progress`.
    pub fn with_progress(mut self, progress: Arc<Progress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Record, in the commit's own transaction, that job `id` committed this release, so a
    /// crash right after the commit cannot leave the job reported as lost while its release is
    /// visible ([`Store::committed_job`]).
    pub fn with_job(mut self, id: &str) -> Self {
        self.job = Some(id.to_string());
        self
    }

    /// Release id being written.
    pub fn rid(&self) -> u64 {
        self.info.rid
    }

    /// System being written.
    pub fn system(&self) -> &str {
        &self.info.system
    }

    fn phase(&self, name: &str, total: u64) {
        if let Some(p) = &self.progress {
            p.phase(name, total);
        }
    }

    fn done(&self, n: u64) -> StoreResult<()> {
        if let Some(p) = &self.progress {
            p.set_done(n);
            if p.is_cancelled() {
                return Err(StoreError::Aborted("cancelled".into()));
            }
        }
        Ok(())
    }

    /// Finish the release and make it visible atomically. Returns the release as committed.
    pub fn commit(mut self) -> StoreResult<ReleaseInfo> {
        self.write_concepts()?;
        let graph = self.write_relations()?;
        self.write_mappings()?;
        self.check_cycles(graph)?;
        self.phase("committing", 0);
        let rid = self.info.rid;
        let i = self.store.inner.clone();
        let _g = i.commit_lock.lock();
        // Flush all staged data before the flip so the flip never points at missing data.
        i.db.flush()?;
        let mut info = self.info.clone();
        info.state = ReleaseState::Active;
        info.loaded_at = now_rfc3339();
        let system = info.system.clone();
        let replace = self.replace;
        let job_key = self.job.as_deref().map(super::job_key);
        let res: Result<Option<u64>, TransactionError<StoreError>> =
            (&i.releases, &i.active, &i.meta).transaction(|(releases, active, meta)| {
                let old = active.get(system.as_bytes())?.map(|v| keys::read_u64(&v));
                if let Some(old_rid) = old {
                    if let Some(v) = releases.get(old_rid.to_be_bytes())? {
                        let mut old_info: ReleaseInfo =
                            decode("releases", &v).map_err(ConflictableTransactionError::Abort)?;
                        if old_info.release == info.release && !replace {
                            return Err(ConflictableTransactionError::Abort(
                                StoreError::ReleaseExists {
                                    system: system.clone(),
                                    release: info.release.clone(),
                                },
                            ));
                        }
                        old_info.state = ReleaseState::Superseded;
                        releases.insert(&old_rid.to_be_bytes(), encode(&old_info))?;
                    }
                }
                releases.insert(&rid.to_be_bytes(), encode(&info))?;
                active.insert(system.as_bytes(), &rid.to_be_bytes())?;
                let seq = meta.get("seq")?.map(|v| keys::read_u64(&v)).unwrap_or(0) + 1;
                meta.insert("seq", &seq.to_be_bytes())?;
                if let Some(k) = &job_key {
                    meta.insert(k.as_bytes(), &rid.to_be_bytes())?;
                }
                Ok(old)
            });
        let old = match res {
            Ok(old) => old,
            Err(TransactionError::Abort(e)) => return Err(e),
            Err(TransactionError::Storage(e)) => return Err(e.into()),
        };
        i.db.flush()?;
        i.active_cache.write().insert(system, rid);
        self.committed = true;
        self.info = info.clone();
        drop(_g);
        let _ = std::fs::remove_dir_all(&self.staging);
        if let Some(old_rid) = old {
            if old_rid != rid {
                self.store.purge_release(old_rid)?;
            }
        }
        Ok(info)
    }

    /// Merge concept fragments, assign term ids in code order, write the concept and term tables.
    fn write_concepts(&mut self) -> StoreResult<()> {
        let rid = self.info.rid;
        let spool = self.concepts.take();
        self.phase("writing concepts", spool.pushed);
        let mut merged = spool.into_sorted()?;
        let tree = self.store.inner.tables.tree().clone();
        let disk = &self.store.inner.disk;
        let mut concepts_w = TableWriter::new(&tree, rid, Table::Concepts).guarded(disk);
        let mut terms_w = TableWriter::new(&tree, rid, Table::Terms).guarded(disk);
        let mut n: u64 = 0;
        let (mut concepts, mut dropped, mut fragments) = (0u64, 0u64, 0u64);
        while let Some((key, val)) = merged.next_record()? {
            let mut c: Concept = decode("staging", &val)?;
            fragments += 1;
            while merged.peek_key() == Some(key.as_slice()) {
                if let Some((_, v)) = merged.next_record()? {
                    c.merge(decode("staging", &v)?);
                    fragments += 1;
                }
            }
            if c.preferred_term.is_empty() {
                match c.terms.first() {
                    Some(t) => c.preferred_term = t.text.clone(),
                    None => {
                        dropped += 1;
                        continue;
                    }
                }
            }
            let stored = StoredConcept {
                first_term: (rid << 40) | n,
                concept: c,
            };
            concepts_w.push(&key, &encode(&stored))?;
            for t in &stored.concept.terms {
                let id = (rid << 40) | n;
                n += 1;
                let row = TermRow {
                    code: stored.concept.code.clone(),
                    text: t.text.clone(),
                    kind: t.kind,
                };
                terms_w.push(&id.to_be_bytes(), &encode(&row))?;
            }
            concepts += 1;
            if concepts.is_multiple_of(4096) {
                self.done(fragments)?;
            }
        }
        concepts_w.finish()?;
        terms_w.finish()?;
        if dropped > 0 {
            self.info.warnings.push(format!(
                "{dropped} codes had attributes (e.g. semantic types) but no names and were not stored"
            ));
        }
        self.info.counts.concepts = concepts;
        self.info.counts.terms = n;
        Ok(())
    }

    /// Write the relation tables (duplicates dropped); returns the hierarchy for the cycle check.
    fn write_relations(&mut self) -> StoreResult<Graph> {
        let (fwd, rev) = (self.rel.take(), self.rel_rev.take());
        self.phase("writing relations", fwd.pushed + rev.pushed);
        let mut graph = Graph::default();
        let mut done = 0u64;
        let relations = self.write_table(fwd, Table::Rel, &mut done, |k| {
            if let Some((from, rel, to)) = split_rel(k) {
                if HIERARCHY_RELS.contains(&rel) {
                    graph.edge(from, to);
                }
            }
        })?;
        self.info.counts.relations = relations;
        self.write_table(rev, Table::RelRev, &mut done, |_| {})?;
        Ok(graph)
    }

    /// Write the mapping tables (duplicates dropped, the first value wins).
    fn write_mappings(&mut self) -> StoreResult<()> {
        let (fwd, rev) = (self.map.take(), self.map_rev.take());
        self.phase("writing mappings", fwd.pushed + rev.pushed);
        let mut done = 0u64;
        self.info.counts.mappings = self.write_table(fwd, Table::Map, &mut done, |_| {})?;
        self.write_table(rev, Table::MapRev, &mut done, |_| {})?;
        let tree = self.store.inner.tables.tree();
        let mut w = TableWriter::new(tree, self.info.rid, Table::MapSystems)
            .guarded(&self.store.inner.disk);
        for s in &self.map_systems {
            w.push(s, &[])?;
        }
        w.finish()?;
        Ok(())
    }

    /// Write the distinct records of `spool` (the first of equal keys wins) as `table`, calling
    /// `each` on every key and counting progress in `done`. Returns the entries written.
    fn write_table(
        &self,
        spool: Spool,
        table: Table,
        done: &mut u64,
        mut each: impl FnMut(&[u8]),
    ) -> StoreResult<u64> {
        let mut w = TableWriter::new(self.store.inner.tables.tree(), self.info.rid, table)
            .guarded(&self.store.inner.disk);
        let mut m = spool.into_sorted()?;
        while let Some((k, v)) = next_distinct(&mut m)? {
            each(&k);
            w.push(&k, &v)?;
            *done += 1;
            if done.is_multiple_of(65_536) {
                self.done(*done)?;
            }
        }
        w.finish()
    }

    /// Find hierarchy cycles (tolerated, reported as a warning) with an iterative DFS.
    fn check_cycles(&mut self, mut graph: Graph) -> StoreResult<()> {
        self.phase("checking hierarchy", graph.edges.len() as u64);
        let (cycles, pairs) = graph.cycles();
        drop(graph);
        if cycles > 0 {
            // Name the example edges: one pass over the relation table.
            let mut examples = Vec::new();
            let scan = self
                .store
                .inner
                .tables
                .scan(self.info.rid, Table::Rel, b"")?;
            for kv in scan {
                let (k, _) = kv?;
                if let Some((from, rel, to)) = split_rel(&k) {
                    if HIERARCHY_RELS.contains(&rel)
                        && pairs.contains(&(code_hash(from), code_hash(to)))
                    {
                        examples.push(format!(
                            "{} -> {}",
                            String::from_utf8_lossy(from),
                            String::from_utf8_lossy(to)
                        ));
                    }
                }
                if examples.len() >= pairs.len() {
                    break;
                }
            }
            self.info.warnings.push(format!(
                "hierarchy has {cycles} cycle edge(s) (tolerated; traversals stop at visited nodes), e.g. {}",
                examples.join(", ")
            ));
        }
        Ok(())
    }

    /// Record a warning on the release.
    pub fn add_warning(&mut self, w: String) {
        if self.info.warnings.len() < 100 {
            self.info.warnings.push(w);
        }
    }
}

/// Next record whose key differs from the previous one (the first of equal keys wins).
fn next_distinct(m: &mut Merged) -> StoreResult<Option<(Vec<u8>, Vec<u8>)>> {
    let Some((k, v)) = m.next_record()? else {
        return Ok(None);
    };
    while m.peek_key() == Some(k.as_slice()) {
        m.next_record()?;
    }
    Ok(Some((k, v)))
}

impl Drop for ReleaseWriter {
    fn drop(&mut self) {
        if !self.committed {
            let _ = std::fs::remove_dir_all(&self.staging);
            if let Err(e) = self.store.purge_release(self.info.rid) {
                tracing::error!(rid = self.info.rid, error = %e, "could not purge aborted release; it will be purged at next start");
            }
        }
    }
}

impl Sink for ReleaseWriter {
    fn concept(&mut self, concept: Concept) -> Result<(), LoadError> {
        if !valid_code(&concept.code) {
            return Err(LoadError::Store(format!(
                "invalid concept code {:?} (empty, too long or with control characters)",
                concept.code
            )));
        }
        let key = concept.code.as_bytes().to_vec();
        self.concepts
            .push(key, encode(&concept))
            .map_err(StoreError::into_load_error)
    }

    fn relation(&mut self, r: Relation) -> Result<(), LoadError> {
        if !valid_code(&r.from) || !valid_code(&r.to) || r.rel.contains('\0') || r.rel.is_empty() {
            return Err(LoadError::Store(format!("invalid relation {r:?}")));
        }
        self.rel
            .push(keys::rel_body(&r.from, &r.rel, &r.to), Vec::new())
            .map_err(StoreError::into_load_error)?;
        self.rel_rev
            .push(keys::rel_body(&r.to, &r.rel, &r.from), Vec::new())
            .map_err(StoreError::into_load_error)
    }

    fn mapping(&mut self, m: Mapping) -> Result<(), LoadError> {
        for s in [&m.from.system, &m.from.code, &m.to.system, &m.to.code] {
            if !valid_code(s) {
                return Err(LoadError::Store(format!("invalid mapping {m:?}")));
            }
        }
        let (fs, fc, ts, tc) = (&m.from.system, &m.from.code, &m.to.system, &m.to.code);
        let val = encode(&MapVal {
            relation: m.relation,
            source: m.source,
        });
        for (side, sys) in [(b'F', fs), (b'T', ts)] {
            if !self
                .map_systems
                .iter()
                .any(|s| s[0] == side && &s[1..] == sys.as_bytes())
            {
                let mut k = vec![side];
                k.extend_from_slice(sys.as_bytes());
                self.map_systems.insert(k);
            }
        }
        self.map
            .push(keys::map_body(fs, fc, ts, tc), val.clone())
            .map_err(StoreError::into_load_error)?;
        self.map_rev
            .push(keys::map_body(ts, tc, fs, fc), val)
            .map_err(StoreError::into_load_error)
    }

    fn warning(&mut self, message: String) {
        self.add_warning(message);
    }

    fn progress(&mut self, bytes_done: u64) -> Result<(), LoadError> {
        if let Some(p) = &self.progress {
            p.set_done(bytes_done);
            if p.is_cancelled() {
                return Err(LoadError::Cancelled);
            }
        }
        Ok(())
    }
}

/// Fail when `system`/`release` is already the active release.
pub fn check_not_exists(store: &Store, system: &str, release: &str) -> StoreResult<()> {
    if let Some(rid) = store.active_rid(system) {
        if let Some(info) = store.release(rid)? {
            if info.release == release {
                return Err(StoreError::ReleaseExists {
                    system: system.to_string(),
                    release: release.to_string(),
                });
            }
        }
    }
    Ok(())
}
