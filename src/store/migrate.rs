//! Schema migrations. Each step `N` upgrades a store from version `N-1` to `N` and is described by
//! one file in `migrations/` (`000N_name.md`); [`STEPS`] lists them in order and a test checks
//! that the two agree. `ontovec migrate` applies the missing steps; `serve` refuses a store that
//! needs one, and any binary refuses a store newer than itself.

use super::{keys, Store, StoreError, StoreResult, SCHEMA_VERSION};

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
];

/// Version 2: build the reverse mapping index `map_rev` from the forward index `map_idx`, so a
/// crosswalk can be followed from its target side (ICD10CM E11 → UMLS C0011860).
fn build_map_rev(store: &Store) -> StoreResult<()> {
    let i = &store.inner;
    let mut batch = sled::Batch::default();
    let mut n = 0usize;
    for k in i.map_idx.iter().keys() {
        let k = k?;
        if k.len() < 9 {
            continue;
        }
        let (body, rid) = k.split_at(k.len() - 8);
        let Some(body) = body.strip_suffix(&[0]) else {
            continue;
        };
        if let Some((fs, fc, ts, tc)) = keys::split4(body) {
            batch.insert(
                keys::map_idx_key(ts, tc, fs, fc, keys::read_u64(rid)),
                &[][..],
            );
            n += 1;
        }
        if n.is_multiple_of(50_000) {
            i.map_rev.apply_batch(std::mem::take(&mut batch))?;
        }
    }
    i.map_rev.apply_batch(batch)?;
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
