//! Store behaviour: atomic releases, conflicts, replace, crash leftovers, traversal with cycles,
//! crosswalks in both directions, schema versions and migration.

use ontovec::ontology::Sink;
use ontovec::store::model::{Concept, ConceptRef, Mapping, Relation, Term, TermKind};
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

#[test]
fn migration_upgrades_a_version_1_store() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        write_small(&store, "r1", false).unwrap();
    }
    // Make it what version 1 wrote: no reverse mapping index.
    {
        let db = sled::open(dir.path()).unwrap();
        db.open_tree("map_rev").unwrap().clear().unwrap();
        db.open_tree("meta")
            .unwrap()
            .insert("schema_version", 1u32.to_be_bytes().to_vec())
            .unwrap();
        db.flush().unwrap();
    }
    match Store::open(dir.path()) {
        Err(StoreError::NeedsMigration { found: 1, .. }) => {}
        Err(e) => panic!("expected NeedsMigration, got {e}"),
        Ok(_) => panic!("expected NeedsMigration, got a store"),
    }
    let m = migrate::migrate(dir.path()).unwrap();
    assert_eq!((m.from, m.to), (Some(1), SCHEMA_VERSION));
    let store = Store::open(dir.path()).unwrap();
    let rev = store.mappings("OTHER", "X1", None).unwrap();
    assert_eq!(rev.len(), 1, "reverse index rebuilt by the migration");
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
