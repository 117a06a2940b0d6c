//! Writing a release: invisible while loading, visible all at once on commit.
//!
//! A [`ReleaseWriter`] is the [`Sink`] loaders write into. It buffers concept fragments (bounded:
//! flushed every [`PENDING_LIMIT`] concepts, merging with what an earlier flush stored), writes
//! relations and mappings in batches, and on [`ReleaseWriter::commit`] assigns term ids, counts,
//! checks the hierarchy for cycles, and flips `active[system]` in one transaction. Dropping the
//! writer without committing (an error, a cancelled job) purges everything it wrote.

use super::keys;
use super::model::{Concept, Counts, Mapping, Relation, ReleaseInfo, ReleaseState, HIERARCHY_RELS};
use super::{decode, encode, MapVal, Store, StoreError, StoreResult, TermRow};
use crate::ontology::{LoadError, Sink};
use crate::progress::Progress;
use sled::transaction::{ConflictableTransactionError, TransactionError};
use sled::Transactional;
use std::collections::HashMap;
use std::sync::Arc;

/// Concepts buffered in memory before a flush to sled.
pub const PENDING_LIMIT: usize = 20_000;
const BATCH_LIMIT: usize = 50_000;

/// Writes one release; see the module docs.
pub struct ReleaseWriter {
    store: Store,
    info: ReleaseInfo,
    replace: bool,
    pending: HashMap<String, Concept>,
    rel_batch: sled::Batch,
    rel_rev_batch: sled::Batch,
    map_batch: sled::Batch,
    idx_batch: sled::Batch,
    rev_batch: sled::Batch,
    batched: usize,
    progress: Option<Arc<Progress>>,
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
        let rid = store.inner.db.generate_id()? + 1;
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
        Ok(Self {
            store: store.clone(),
            info,
            replace,
            pending: HashMap::new(),
            rel_batch: Default::default(),
            rel_rev_batch: Default::default(),
            map_batch: Default::default(),
            idx_batch: Default::default(),
            rev_batch: Default::default(),
            batched: 0,
            progress: None,
            committed: false,
        })
    }

    /// Report progress (bytes, phases) and observe cancellation through `progress`.
    pub fn with_progress(mut self, progress: Arc<Progress>) -> Self {
        self.progress = Some(progress);
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

    fn flush_pending(&mut self) -> StoreResult<()> {
        let tree = &self.store.inner.concepts;
        let mut batch = sled::Batch::default();
        for (code, mut c) in self.pending.drain() {
            let key = keys::concept_key(self.info.rid, &code);
            if let Some(old) = tree.get(&key)? {
                let mut old: Concept = decode("concepts", &old)?;
                old.merge(c);
                c = old;
            }
            batch.insert(key, encode(&c));
        }
        tree.apply_batch(batch)?;
        Ok(())
    }

    fn flush_batches(&mut self) -> StoreResult<()> {
        let i = &self.store.inner;
        i.rel.apply_batch(std::mem::take(&mut self.rel_batch))?;
        i.rel_rev
            .apply_batch(std::mem::take(&mut self.rel_rev_batch))?;
        i.map.apply_batch(std::mem::take(&mut self.map_batch))?;
        i.map_idx.apply_batch(std::mem::take(&mut self.idx_batch))?;
        i.map_rev.apply_batch(std::mem::take(&mut self.rev_batch))?;
        self.batched = 0;
        Ok(())
    }

    fn phase(&self, name: &str, total: u64) {
        if let Some(p) = &self.progress {
            p.phase(name, total);
        }
    }

    /// Finish the release and make it visible atomically. Returns the release as committed.
    pub fn commit(mut self) -> StoreResult<ReleaseInfo> {
        self.flush_pending()?;
        self.flush_batches()?;
        self.finalize_terms()?;
        self.check_cycles()?;
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
        if let Some(old_rid) = old {
            if old_rid != rid {
                self.store.purge_release(old_rid)?;
            }
        }
        Ok(info)
    }

    /// Assign term ids, fix concepts without a preferred term, and count.
    fn finalize_terms(&mut self) -> StoreResult<()> {
        let rid = self.info.rid;
        let i = self.store.inner.clone();
        self.phase("indexing terms", 0);
        let mut n: u64 = 0;
        let mut concepts = 0u64;
        let mut dropped = 0u64;
        let mut term_batch = sled::Batch::default();
        let mut concept_batch = sled::Batch::default();
        let mut in_batch = 0usize;
        for kv in i.concepts.scan_prefix(rid.to_be_bytes()) {
            let (k, v) = kv?;
            let mut c: Concept = decode("concepts", &v)?;
            if c.preferred_term.is_empty() {
                match c.terms.first() {
                    Some(t) => {
                        c.preferred_term = t.text.clone();
                        concept_batch.insert(k.clone(), encode(&c));
                    }
                    None => {
                        concept_batch.remove(k);
                        dropped += 1;
                        continue;
                    }
                }
            }
            concepts += 1;
            for t in &c.terms {
                let id = (rid << 40) | n;
                n += 1;
                let row = TermRow {
                    code: c.code.clone(),
                    text: t.text.clone(),
                    kind: t.kind,
                };
                term_batch.insert(&id.to_be_bytes(), encode(&row));
                in_batch += 1;
            }
            if in_batch >= BATCH_LIMIT {
                i.terms.apply_batch(std::mem::take(&mut term_batch))?;
                i.concepts.apply_batch(std::mem::take(&mut concept_batch))?;
                in_batch = 0;
            }
            if let Some(p) = &self.progress {
                p.set_done(concepts);
            }
        }
        i.terms.apply_batch(term_batch)?;
        i.concepts.apply_batch(concept_batch)?;
        if dropped > 0 {
            self.info.warnings.push(format!(
                "{dropped} codes had attributes (e.g. semantic types) but no names and were not stored"
            ));
        }
        let prefix = rid.to_be_bytes();
        self.info.counts = Counts {
            concepts,
            terms: n,
            relations: i.rel.scan_prefix(prefix).count() as u64,
            mappings: i.map.scan_prefix(prefix).count() as u64,
        };
        Ok(())
    }

    /// Find hierarchy cycles (tolerated, reported as a warning) with an iterative DFS.
    fn check_cycles(&mut self) -> StoreResult<()> {
        self.phase("checking hierarchy", self.info.counts.relations);
        let rid = self.info.rid;
        let tree = self.store.inner.rel.clone();
        let parents_of = |code: &str| -> StoreResult<Vec<String>> {
            let prefix = keys::rel_prefix(rid, code);
            let mut out = Vec::new();
            for k in tree.scan_prefix(&prefix).keys() {
                let k = k?;
                if let Some((rel, to)) = keys::rel_tail(&k[prefix.len()..]) {
                    if HIERARCHY_RELS.contains(&rel) {
                        out.push(to.to_string());
                    }
                }
            }
            Ok(out)
        };
        // state: 1 = on stack, 2 = finished
        let mut state: HashMap<String, u8> = HashMap::new();
        let mut cycles = 0u64;
        let mut examples: Vec<String> = Vec::new();
        let mut last: Option<String> = None;
        for k in tree.scan_prefix(rid.to_be_bytes()).keys() {
            let k = k?;
            let body = &k[8..];
            let Some(pos) = body.iter().position(|&b| b == 0) else {
                continue;
            };
            let from = String::from_utf8_lossy(&body[..pos]).into_owned();
            if last.as_deref() == Some(from.as_str()) || state.contains_key(&from) {
                continue;
            }
            last = Some(from.clone());
            let mut stack: Vec<(String, Vec<String>)> = vec![(from.clone(), parents_of(&from)?)];
            state.insert(from, 1);
            while let Some((node, children)) = stack.last_mut() {
                match children.pop() {
                    Some(next) => match state.get(&next) {
                        Some(1) => {
                            cycles += 1;
                            if examples.len() < 5 {
                                examples.push(format!("{node} -> {next}"));
                            }
                        }
                        Some(_) => {}
                        None => {
                            let ps = parents_of(&next)?;
                            state.insert(next.clone(), 1);
                            stack.push((next, ps));
                        }
                    },
                    None => {
                        let done = node.clone();
                        state.insert(done, 2);
                        stack.pop();
                    }
                }
            }
        }
        if cycles > 0 {
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

impl Drop for ReleaseWriter {
    fn drop(&mut self) {
        if !self.committed {
            if let Err(e) = self.store.purge_release(self.info.rid) {
                tracing::error!(rid = self.info.rid, error = %e, "could not purge aborted release; it will be purged at next start");
            }
        }
    }
}

fn store_err(e: StoreError) -> LoadError {
    LoadError::Store(e.to_string())
}

impl Sink for ReleaseWriter {
    fn concept(&mut self, concept: Concept) -> Result<(), LoadError> {
        if !valid_code(&concept.code) {
            return Err(LoadError::Store(format!(
                "invalid concept code {:?} (empty, too long or with control characters)",
                concept.code
            )));
        }
        match self.pending.get_mut(&concept.code) {
            Some(c) => c.merge(concept),
            None => {
                self.pending.insert(concept.code.clone(), concept);
            }
        }
        if self.pending.len() >= PENDING_LIMIT {
            self.flush_pending().map_err(store_err)?;
        }
        Ok(())
    }

    fn relation(&mut self, r: Relation) -> Result<(), LoadError> {
        if !valid_code(&r.from) || !valid_code(&r.to) || r.rel.contains('\0') {
            return Err(LoadError::Store(format!("invalid relation {r:?}")));
        }
        let rid = self.info.rid;
        self.rel_batch
            .insert(keys::rel_key(rid, &r.from, &r.rel, &r.to), &[][..]);
        self.rel_rev_batch
            .insert(keys::rel_key(rid, &r.to, &r.rel, &r.from), &[][..]);
        self.batched += 1;
        if self.batched >= BATCH_LIMIT {
            self.flush_batches().map_err(store_err)?;
        }
        Ok(())
    }

    fn mapping(&mut self, m: Mapping) -> Result<(), LoadError> {
        for s in [&m.from.system, &m.from.code, &m.to.system, &m.to.code] {
            if !valid_code(s) {
                return Err(LoadError::Store(format!("invalid mapping {m:?}")));
            }
        }
        let rid = self.info.rid;
        let (fs, fc, ts, tc) = (&m.from.system, &m.from.code, &m.to.system, &m.to.code);
        let val = MapVal {
            relation: m.relation,
            source: m.source,
        };
        self.map_batch
            .insert(keys::map_key(rid, fs, fc, ts, tc), encode(&val));
        self.idx_batch
            .insert(keys::map_idx_key(fs, fc, ts, tc, rid), &[][..]);
        self.rev_batch
            .insert(keys::map_idx_key(ts, tc, fs, fc, rid), &[][..]);
        self.batched += 1;
        if self.batched >= BATCH_LIMIT {
            self.flush_batches().map_err(store_err)?;
        }
        Ok(())
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

/// Current time as RFC 3339 (UTC, seconds).
pub fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

fn rfc3339(secs: u64) -> String {
    // Civil-from-days (Howard Hinnant's algorithm, public domain description).
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_known_dates() {
        assert_eq!(super::rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(super::rfc3339(1_795_000_000), "2026-11-18T11:06:40Z");
    }
}
