//! Store behaviour: atomic releases, conflicts, replace, crash leftovers, traversal with cycles,
//! crosswalks in both directions, schema versions and migration.

use ontovec::domain::model::{Concept, ConceptRef, Mapping, Relation, Term, TermKind};
use ontovec::ontology::Sink;
use ontovec::store::writer::ReleaseWriter;
use ontovec::store::{migrate, Store, StoreError, SCHEMA_VERSION};

fn rel(from: &str, to: &str) -> Relation {
    Relation {
        from: from.into(),
        rel: "is_a".into(),
        to: to.into(),
    }
}

fn write_small(store: &Store, release: &str, replace: bool) -> Result<u64, StoreError> {
    let mut w = ReleaseWriter::begin(store, "TEST", release, "test", replace)?;
    for (code, name) in [
        ("A", "root"),
        ("B", "middle"),
        ("C", "leaf"),
        ("D", "d"),
        ("E", "e"),
    ] {
        let mut c = Concept::new(code, format!("{name} {release}"));
        c.add_term(Term::new(format!("{name} synonym"), TermKind::Synonym));
        w.concept(c).unwrap();
    }
    for (a, b) in [("B", "A"), ("C", "B"), ("D", "E"), ("E", "D")] {
        w.relation(rel(a, b)).unwrap();
    }
    w.mapping(Mapping {
        from: ConceptRef::new("TEST", "C"),
        to: ConceptRef::new("OTHER", "X1"),
        relation: "maps_to".into(),
        source: "unit".into(),
    })
    .unwrap();
    let info = w.commit()?;
    Ok(info.rid)
}

#[test]
fn release_is_invisible_until_commit_and_replace_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    write_small(&store, "r1", false).unwrap();
    assert_eq!(
        store
            .concept("TEST", "A")
            .unwrap()
            .unwrap()
            .concept
            .preferred_term,
        "root r1"
    );

    let mut w = ReleaseWriter::begin(&store, "TEST", "r2", "test", false).unwrap();
    w.concept(Concept::new("A", "root r2")).unwrap();
    w.concept(Concept::new("NEW", "new")).unwrap();
    // while r2 loads, readers still see r1 only
    assert_eq!(
        store
            .concept("TEST", "A")
            .unwrap()
            .unwrap()
            .concept
            .preferred_term,
        "root r1"
    );
    assert!(store.concept("TEST", "NEW").unwrap().is_none());
    w.commit().unwrap();
    assert_eq!(
        store
            .concept("TEST", "A")
            .unwrap()
            .unwrap()
            .concept
            .preferred_term,
        "root r2"
    );
    assert!(
        store.concept("TEST", "C").unwrap().is_none(),
        "old release fully replaced"
    );
    assert_eq!(store.sources().unwrap().len(), 1);
    // the superseded release's mappings are gone
    assert!(store.mappings("OTHER", "X1", None).unwrap().is_empty());
}

#[test]
fn same_release_twice_conflicts_unless_replace() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    write_small(&store, "r1", false).unwrap();
    match write_small(&store, "r1", false) {
        Err(StoreError::ReleaseExists { .. }) => {}
        other => panic!("expected conflict, got {other:?}"),
    }
    write_small(&store, "r1", true).unwrap();
    assert_eq!(store.sources().unwrap().len(), 1);
}

#[test]
fn aborted_release_leaves_no_trace() {
    // (Crashes are covered by tests/kill9.rs, which kills a real ingesting process.)
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut w = ReleaseWriter::begin(&store, "TEST", "gone", "test", false).unwrap();
    for i in 0..30_000 {
        w.concept(Concept::new(format!("C{i}"), "x")).unwrap(); // forces flushes to sled
    }
    w.relation(rel("C1", "C2")).unwrap();
    let rid = w.rid();
    drop(w); // error path: dropped without commit
    assert!(store.release(rid).unwrap().is_none());
    assert_eq!(store.terms_of_release(rid).count(), 0);
    assert!(store.sources().unwrap().is_empty());
    assert!(store.concept("TEST", "C1").unwrap().is_none());
}

#[test]
fn traversal_depths_cycles_and_mappings_both_ways() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let rid = write_small(&store, "r1", false).unwrap();
    assert_eq!(store.parents("TEST", "C").unwrap(), vec!["B".to_string()]);
    assert_eq!(store.children("TEST", "A").unwrap(), vec!["B".to_string()]);
    assert_eq!(
        store.traverse("TEST", "C", true).unwrap(),
        vec![("B".to_string(), 1), ("A".to_string(), 2)]
    );
    assert_eq!(
        store.traverse("TEST", "A", false).unwrap(),
        vec![("B".to_string(), 1), ("C".to_string(), 2)]
    );
    // the D <-> E cycle terminates and is reported
    assert_eq!(store.traverse("TEST", "D", true).unwrap().len(), 1);
    let info = store.release(rid).unwrap().unwrap();
    assert!(
        info.warnings.iter().any(|w| w.contains("cycle")),
        "{:?}",
        info.warnings
    );
    assert_eq!(info.counts.concepts, 5);
    assert_eq!(info.counts.terms, 10);
    assert_eq!(info.counts.relations, 4);
    assert_eq!(info.counts.mappings, 1);
    let fwd = store.mappings("TEST", "C", Some("OTHER")).unwrap();
    assert_eq!(fwd.len(), 1);
    assert_eq!(fwd[0].direction, "forward");
    let rev = store.mappings("OTHER", "X1", None).unwrap();
    assert_eq!(rev[0].target, ConceptRef::new("TEST", "C"));
    assert_eq!(rev[0].direction, "reverse");
    // term ids of a concept via binary search
    let ids = store.term_ids_of_concept("TEST", "C").unwrap();
    assert_eq!(ids.len(), 2);
    for id in ids {
        assert_eq!(store.term(id).unwrap().unwrap().code, "C");
    }
}

/// Write what schema version 1 stored for one small release (one sled key per record, no
/// reverse mapping index), with raw sled and bincode as that version did.
fn write_version_1_store(dir: &std::path::Path) {
    use ontovec::domain::model::{Counts, ReleaseInfo, ReleaseState};
    use ontovec::store::{MapVal, TermRow};
    let db = sled::open(dir).unwrap();
    let rid: u64 = 5;
    let concepts = db.open_tree("concepts").unwrap();
    let terms = db.open_tree("terms").unwrap();
    let mut n = 0u64;
    for (code, name) in [("A", "root"), ("B", "middle"), ("C", "leaf")] {
        let mut c = Concept::new(code, name);
        c.add_term(Term::new(format!("{name} synonym"), TermKind::Synonym));
        let key = [&rid.to_be_bytes()[..], code.as_bytes()].concat();
        concepts.insert(key, enc(&c)).unwrap();
        for t in &c.terms {
            let row = TermRow {
                code: code.into(),
                text: t.text.clone(),
                kind: t.kind,
            };
            terms
                .insert(((rid << 40) | n).to_be_bytes(), enc(&row))
                .unwrap();
            n += 1;
        }
    }
    let rel = db.open_tree("rel").unwrap();
    let rel_rev = db.open_tree("rel_rev").unwrap();
    for (a, b) in [("B", "A"), ("C", "B")] {
        let k = |x: &str, y: &str| {
            [
                &rid.to_be_bytes()[..],
                x.as_bytes(),
                b"\0is_a\0",
                y.as_bytes(),
            ]
            .concat()
        };
        rel.insert(k(a, b), &[][..]).unwrap();
        rel_rev.insert(k(b, a), &[][..]).unwrap();
    }
    let val = MapVal {
        relation: "maps_to".into(),
        source: "unit".into(),
    };
    let body = b"TEST\0C\0OTHER\0X1".to_vec();
    db.open_tree("map")
        .unwrap()
        .insert([&rid.to_be_bytes()[..], &body].concat(), enc(&val))
        .unwrap();
    db.open_tree("map_idx")
        .unwrap()
        .insert([&body[..], b"\0", &rid.to_be_bytes()].concat(), &[][..])
        .unwrap();
    let info = ReleaseInfo {
        rid,
        system: "TEST".into(),
        release: "r1".into(),
        format: "test".into(),
        state: ReleaseState::Active,
        counts: Counts {
            concepts: 3,
            terms: n,
            relations: 2,
            mappings: 1,
        },
        loaded_at: "2026-11-01T00:00:00Z".into(),
        warnings: vec![],
    };
    db.open_tree("releases")
        .unwrap()
        .insert(rid.to_be_bytes(), enc(&info))
        .unwrap();
    db.open_tree("active")
        .unwrap()
        .insert("TEST", &rid.to_be_bytes())
        .unwrap();
    let meta = db.open_tree("meta").unwrap();
    meta.insert("schema_version", 1u32.to_be_bytes().to_vec())
        .unwrap();
    meta.insert("seq", 1u64.to_be_bytes().to_vec()).unwrap();
    db.flush().unwrap();
}

/// bincode, as the store encodes records.
fn enc<T: serde::Serialize>(v: &T) -> Vec<u8> {
    bincode::serialize(v).unwrap()
}

#[test]
fn migration_upgrades_a_version_1_store() {
    let dir = tempfile::tempdir().unwrap();
    write_version_1_store(dir.path());
    match Store::open(dir.path()) {
        Err(StoreError::NeedsMigration { found: 1, .. }) => {}
        Err(e) => panic!("expected NeedsMigration, got {e}"),
        Ok(_) => panic!("expected NeedsMigration, got a store"),
    }
    let m = migrate::migrate(dir.path()).unwrap();
    assert_eq!((m.from, m.to), (Some(1), SCHEMA_VERSION));
    let store = Store::open(dir.path()).unwrap();
    let c = store.concept("TEST", "C").unwrap().unwrap().concept;
    assert_eq!(c.preferred_term, "leaf");
    assert_eq!(store.parents("TEST", "C").unwrap(), vec!["B".to_string()]);
    assert_eq!(store.children("TEST", "A").unwrap(), vec!["B".to_string()]);
    let anc: Vec<String> = store
        .traverse("TEST", "C", true)
        .unwrap()
        .into_iter()
        .map(|(c, _)| c)
        .collect();
    assert_eq!(anc, vec!["B", "A"]);
    let fwd = store.mappings("TEST", "C", None).unwrap();
    assert_eq!(fwd.len(), 1);
    assert_eq!(fwd[0].target, ConceptRef::new("OTHER", "X1"));
    let rev = store.mappings("OTHER", "X1", None).unwrap();
    assert_eq!(rev.len(), 1, "reverse direction works after the upgrade");
    assert_eq!(rev[0].target, ConceptRef::new("TEST", "C"));
    // term ids survive: the concept's terms are found by id and belong to it
    let ids = store.term_ids_of_concept("TEST", "C").unwrap();
    assert_eq!(ids.len(), 2);
    for id in ids {
        assert_eq!(store.term(id).unwrap().unwrap().code, "C");
    }
    assert_eq!(store.terms_of_release(5).count(), 6);
    // the old per-record trees are gone
    let names: Vec<Vec<u8>> = store.db().tree_names().iter().map(|n| n.to_vec()).collect();
    assert!(!names.contains(&b"concepts".to_vec()));
    assert!(!names.contains(&b"map_idx".to_vec()));
    // migrating again is a no-op
    drop(store);
    let m = migrate::migrate(dir.path()).unwrap();
    assert_eq!((m.from, m.to), (Some(SCHEMA_VERSION), SCHEMA_VERSION));
}

#[test]
fn newer_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", 99u32.to_be_bytes().to_vec())
            .unwrap();
        db.flush().unwrap();
    }
    assert!(matches!(
        Store::open(dir.path()),
        Err(StoreError::SchemaTooNew { found: 99, .. })
    ));
    assert!(migrate::migrate(dir.path()).is_err());
}

#[test]
fn release_ids_stay_small_across_restarts() {
    // sled's generate_id jumps by a million at every restart; release ids used to come from it
    // and passed 2^24 after ~17 restarts, wrapping the term ids (rid << 40 | n) of the release.
    let dir = tempfile::tempdir().unwrap();
    let mut rids = Vec::new();
    for i in 0..20 {
        let store = Store::open(dir.path()).unwrap();
        let rid = write_small(&store, &format!("r{i}"), false).unwrap();
        assert!(rid <= ontovec::store::MAX_RID, "restart {i}: rid {rid}");
        let ids = store.term_ids_of_concept("TEST", "A").unwrap();
        assert_eq!(ids.len(), 2);
        for id in ids {
            let row = store.term(id).unwrap().expect("term of the new release");
            assert_eq!(row.code, "A");
            assert_eq!(id >> 40, rid);
        }
        rids.push(rid);
    }
    let mut distinct = rids.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), rids.len(), "{rids:?}");
}

/// A crash after a release's (or a notes batch's) commit but before the job registry recorded
/// the result: the commit's own record settles the job as succeeded at the next start, so the
/// job never says "nothing was kept" about data that is visible. A job whose data never
/// committed is reported interrupted.
#[test]
fn job_settled_by_its_commit_record_after_a_crash() {
    use ontovec::service::jobs::{JobManager, JobState};
    use ontovec::store::notes::{Note, NoteStore};
    let dir = tempfile::tempdir().unwrap();
    let (release_job, notes_job, lost_job);
    {
        let store = Store::open(dir.path()).unwrap();
        let jobs = JobManager::open(&store).unwrap();
        release_job = jobs.create("ingest").unwrap().0;
        notes_job = jobs.create("ingest").unwrap().0;
        lost_job = jobs.create("ingest").unwrap().0;
        for id in [&release_job, &notes_job, &lost_job] {
            jobs.start(id).unwrap();
        }
        let mut w = ReleaseWriter::begin(&store, "TEST", "r1", "test", false)
            .unwrap()
            .with_job(&release_job);
        w.concept(Concept::new("A", "alpha")).unwrap();
        w.commit().unwrap();
        let notes = NoteStore::open(&store).unwrap();
        let mut batch = notes.begin().unwrap();
        batch.set_job(&notes_job);
        for id in ["n1", "n2"] {
            batch
                .add(Note {
                    id: id.into(),
                    text: "chest pain".into(),
                    codes: vec![],
                    meta_json: String::new(),
                })
                .unwrap();
        }
        batch.commit().unwrap();
        // the process dies here: no job got its result recorded
    }
    let store = Store::open(dir.path()).unwrap();
    let jobs = JobManager::open(&store).unwrap();
    let st = jobs.get(&release_job).unwrap().unwrap();
    assert_eq!(st.state, JobState::Succeeded, "{st:?}");
    let result = st.result.unwrap();
    assert_eq!(result["system"], "TEST");
    assert_eq!(result["concepts"], 1);
    assert!(result["warnings"].to_string().contains("committed"));
    let st = jobs.get(&notes_job).unwrap().unwrap();
    assert_eq!(st.state, JobState::Succeeded, "{st:?}");
    assert_eq!(st.result.unwrap()["notes"], 2);
    let st = jobs.get(&lost_job).unwrap().unwrap();
    assert_eq!(st.state, JobState::Failed, "{st:?}");
    assert!(st.error.unwrap().message.contains("interrupted"));
}
