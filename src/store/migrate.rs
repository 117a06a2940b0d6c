//! Schema migrations. Each step `N` upgrades a store from version `N-1` to `N` and is described by
//! one file in `migrations/` (`000N_name.md`); [`STEPS`] lists them in order and a test checks
//! that the two agree. `ontovec migrate` applies the missing steps; `serve` refuses a store that
//! needs one, and any binary refuses a store newer than itself.

use super::spool::{Spool, SPOOL_BYTES};
use super::table::{Table, TableWriter};
use super::{decode, encode, keys, Store, StoreError, StoreResult, StoredConcept, SCHEMA_VERSION};
use crate::domain::model::{Concept, ReleaseState};

/// A migration step.
pub struct Step {
    /// Version the step produces.
    pub version: u32,
    /// File name in `migrations/`.
    pub file: &'static str,
    /// The upgrade itself; must be idempotent (a crash mid-way re-runs it).
    pub apply: fn(&Store) -> StoreResult<()>,
}

/// All steps, oldest first. The last one's version is [`SCHEMA_VERSION`].
pub const STEPS: &[Step] = &[
    Step {
        version: 1,
        file: "0001_initial.md",
        apply: |_| Ok(()),
    },
    Step {
        version: 2,
        file: "0002_reverse_mapping_index.md",
        apply: build_map_rev,
    },
    Step {
        version: 3,
        file: "0003_release_tables.md",
        apply: to_release_tables,
    },
];

/// Trees of schema versions 1–2 (one sled key per record), replaced by `blocks` in version 3.
const LEGACY_TREES: [&str; 7] = [
    "concepts", "terms", "rel", "rel_rev", "map", "map_idx", "map_rev",
];

/// Version 2: build the reverse mapping index `map_rev` from the forward index `map_idx`, so a
/// crosswalk can be followed from its target side (ICD10CM E11 → UMLS C0011860).
fn build_map_rev(store: &Store) -> StoreResult<()> {
    let map_idx = store.inner.db.open_tree("map_idx")?;
    let map_rev = store.inner.db.open_tree("map_rev")?;
    let mut batch = sled::Batch::default();
    let mut n = 0usize;
    for k in map_idx.iter().keys() {
        let k = k?;
        if k.len() < 9 {
            continue;
        }
        let (body, rid) = k.split_at(k.len() - 8);
        let Some(body) = body.strip_suffix(&[0]) else {
            continue;
        };
        if let Some((fs, fc, ts, tc)) = keys::split4(body) {
            // version-2 key: to_sys 0 to_code 0 from_sys 0 from_code 0 rid
            let mut key = keys::map_body(ts, tc, fs, fc);
            key.push(0);
            key.extend_from_slice(rid);
            batch.insert(key, &[][..]);
            n += 1;
        }
        if n.is_multiple_of(50_000) {
            map_rev.apply_batch(std::mem::take(&mut batch))?;
        }
    }
    map_rev.apply_batch(batch)?;
    Ok(())
}

/// Version 3: rewrite every active release from one sled key per record into sorted release
/// tables (`blocks`), then drop the old trees. Idempotent: a release's blocks are rewritten from
/// scratch on a re-run, and the old trees are dropped only after a marker records that every
/// release was converted and flushed.
fn to_release_tables(store: &Store) -> StoreResult<()> {
    let db = &store.inner.db;
    if store.inner.meta.get("v3_tables_written")?.is_some() {
        return drop_legacy(store);
    }
    let t = |n: &str| db.open_tree(n);
    let (concepts, terms, rel, rel_rev, map) = (
        t("concepts")?,
        t("terms")?,
        t("rel")?,
        t("rel_rev")?,
        t("map")?,
    );
    let tree = store.inner.tables.tree().clone();
    for info in store.releases()? {
        if info.state != ReleaseState::Active {
            continue; // purged at the next open
        }
        let rid = info.rid;
        let prefix = rid.to_be_bytes();
        store.inner.tables.purge(rid)?;
        tracing::info!(rid, system = %info.system, "converting release to release tables");
        let mut w = TableWriter::new(&tree, rid, Table::Concepts);
        let mut n = 0u64;
        for kv in concepts.scan_prefix(prefix) {
            let (k, v) = kv?;
            let c: Concept = decode("concepts", &v)?;
            let first_term = (rid << 40) | n;
            n += c.terms.len() as u64;
            w.push(
                &k[8..],
                &encode(&StoredConcept {
                    first_term,
                    concept: c,
                }),
            )?;
        }
        w.finish()?;
        let mut w = TableWriter::new(&tree, rid, Table::Terms);
        for kv in terms.range((rid << 40).to_be_bytes()..((rid + 1) << 40).to_be_bytes()) {
            let (k, v) = kv?;
            w.push(&k, &v)?;
        }
        w.finish()?;
        for (old, table) in [(&rel, Table::Rel), (&rel_rev, Table::RelRev)] {
            let mut w = TableWriter::new(&tree, rid, table);
            for k in old.scan_prefix(prefix).keys() {
                w.push(&k?[8..], &[])?;
            }
            w.finish()?;
        }
        let staging = store.staging_dir().join(format!("migrate-{rid}"));
        let mut rev = Spool::new(&staging, "map_rev", SPOOL_BYTES);
        let mut systems = std::collections::BTreeSet::new();
        let mut w = TableWriter::new(&tree, rid, Table::Map);
        for kv in map.scan_prefix(prefix) {
            let (k, v) = kv?;
            let Some((fs, fc, ts, tc)) = keys::split4(&k[8..]) else {
                continue;
            };
            systems.insert([b"F", fs.as_bytes()].concat());
            systems.insert([b"T", ts.as_bytes()].concat());
            rev.push(keys::map_body(ts, tc, fs, fc), v.to_vec())?;
            w.push(&k[8..], &v)?;
        }
        w.finish()?;
        let mut w = TableWriter::new(&tree, rid, Table::MapRev);
        let mut m = rev.into_sorted()?;
        while let Some((k, v)) = m.next_record()? {
            w.push(&k, &v)?;
        }
        w.finish()?;
        let _ = std::fs::remove_dir_all(&staging);
        let mut w = TableWriter::new(&tree, rid, Table::MapSystems);
        for s in systems {
            w.push(&s, &[])?;
        }
        w.finish()?;
    }
    db.flush()?;
    store.inner.meta.insert("v3_tables_written", &[1u8][..])?;
    db.flush()?;
    drop_legacy(store)
}

fn drop_legacy(store: &Store) -> StoreResult<()> {
    for name in LEGACY_TREES {
        store.inner.db.drop_tree(name)?;
    }
    store.inner.meta.remove("v3_tables_written")?;
    store.inner.db.flush()?;
    Ok(())
}

/// Outcome of [`migrate`].
#[derive(Debug, PartialEq, Eq)]
pub struct Migrated {
    /// Version before.
    pub from: Option<u32>,
    /// Version after.
    pub to: u32,
}

/// Bring the store in `dir` to [`SCHEMA_VERSION`], one step at a time, flushing after each.
pub fn migrate(dir: &std::path::Path) -> StoreResult<Migrated> {
    let store = Store::open_raw(dir)?;
    let from = store.schema_version()?;
    let mut v = from.unwrap_or(0);
    if v > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            found: v,
            supported: SCHEMA_VERSION,
        });
    }
    if from.is_none() {
        // A new, empty store is created at the current version directly.
        store.set_schema_version(SCHEMA_VERSION)?;
        return Ok(Migrated {
            from,
            to: SCHEMA_VERSION,
        });
    }
    let start = v;
    for step in STEPS.iter().filter(|s| s.version > start) {
        tracing::info!(
            version = step.version,
            file = step.file,
            "applying migration"
        );
        (step.apply)(&store)?;
        store.set_schema_version(step.version)?;
        v = step.version;
    }
    Ok(Migrated { from, to: v })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_match_migration_files() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
        let mut files: Vec<String> = std::fs::read_dir(&dir)
            .expect("migrations/ exists")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".md"))
            .collect();
        files.sort();
        let steps: Vec<&str> = STEPS.iter().map(|s| s.file).collect();
        assert_eq!(files, steps);
        assert_eq!(STEPS.last().map(|s| s.version), Some(SCHEMA_VERSION));
        for (i, s) in STEPS.iter().enumerate() {
            assert_eq!(s.version as usize, i + 1);
        }
    }
}
