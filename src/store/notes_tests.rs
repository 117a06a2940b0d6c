//! Tests of [`super`]: all-or-nothing loads, single inserts beside a load, crash recovery.

use super::*;

fn note(id: &str) -> Note {
    Note {
        id: id.into(),
        text: format!("text of {id}"),
        codes: vec![ConceptRef::new("ICD10CM", "E11.9")],
        meta_json: "{}".into(),
    }
}

/// An empty store's notes (the folder and store kept alive beside them).
fn fresh() -> (tempfile::TempDir, Store, NoteStore) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let ns = NoteStore::open(&store).unwrap();
    (dir, store, ns)
}

#[test]
fn batches_are_all_or_nothing_and_ids_unique() {
    let (_dir, _store, ns) = fresh();
    {
        let mut b = ns.begin().unwrap();
        b.add(note("a")).unwrap();
        assert!(matches!(
            b.add(note("a")),
            Err(InsertError::Conflict(NoteConflict::DuplicateInBatch(_)))
        ));
        // dropped: nothing visible
    }
    assert!(ns.is_empty());
    let mut b = ns.begin().unwrap();
    b.add(note("a")).unwrap();
    b.add(note("b")).unwrap();
    assert_eq!(b.commit().unwrap(), 2);
    assert_eq!(ns.len(), 2);
    assert_eq!(ns.seq().unwrap(), 1);
    assert!(matches!(
        ns.insert(note("b")),
        Err(InsertError::Conflict(NoteConflict::Exists(_)))
    ));
    let c = ns.insert(note("c")).unwrap();
    assert_eq!(c.nid, 2);
    let ids: Vec<String> = ns
        .iter_from(1)
        .map(|n| n.unwrap().note.id)
        .collect::<Vec<_>>();
    assert_eq!(ids, vec!["b", "c"]);
    assert_eq!(ns.get_nid(0).unwrap().unwrap().note.id, "a");
}

#[test]
fn single_inserts_do_not_wait_for_a_load_and_its_nids_move_past_them() {
    let (_dir, _store, ns) = fresh();
    let mut b = ns.begin().unwrap();
    b.add(note("bulk-1")).unwrap();
    b.add(note("bulk-2")).unwrap();
    b.add(note("both")).unwrap();
    // the load is still open (its lock held): a single insert goes through at once
    let t = std::time::Instant::now();
    let s = ns.insert(note("single")).unwrap();
    assert!(t.elapsed() < std::time::Duration::from_secs(1));
    assert_eq!(s.nid, 0);
    assert_eq!(ns.get("single").unwrap().unwrap().nid, 0);
    assert_eq!(b.commit().unwrap(), 3);
    let mut nids: Vec<(u64, String)> = ns
        .iter_from(0)
        .map(|n| n.map(|n| (n.nid, n.note.id)).unwrap())
        .collect();
    nids.sort();
    let want = [(0, "single"), (1, "bulk-1"), (2, "bulk-2"), (3, "both")];
    let want: Vec<(u64, String)> = want.iter().map(|(n, s)| (*n, s.to_string())).collect();
    assert_eq!(nids, want);
    assert_eq!(ns.next_nid().unwrap(), 4);
    // a load whose id was posted meanwhile fails as a whole
    let mut b = ns.begin().unwrap();
    b.add(note("x")).unwrap();
    b.add(note("dup")).unwrap();
    ns.insert(note("dup")).unwrap();
    assert!(b.commit().is_err());
    assert!(ns.get("x").unwrap().is_none());
    assert_eq!(ns.len(), 5);
}

fn ids_by_nid(ns: &NoteStore) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = ns
        .iter_from(0)
        .map(|n| n.map(|n| (n.nid, n.note.id)).unwrap())
        .collect();
    v.sort();
    v
}

fn owned(v: &[(u64, &str)]) -> Vec<(u64, String)> {
    v.iter().map(|(n, s)| (*n, s.to_string())).collect()
}

/// The notes [`load_at_its_move`] and one note posted during the move leave, by nid: the
/// batch after the note posted while it loaded, the note posted during the move after the batch.
const AFTER_THE_LOAD: [(u64, &str); 5] = [
    (0, "first"),
    (1, "during-load"),
    (2, "bulk-1"),
    (3, "bulk-2"),
    (4, "during-commit"),
];

/// A load whose commit has started (marker written, nids reserved) and whose move has not
/// run yet; one note posted before the load, one while it loaded.
fn load_at_its_move(ns: &NoteStore) -> NoteBatch<'_> {
    ns.insert(note("first")).unwrap();
    let mut b = ns.begin().unwrap();
    b.add(note("bulk-1")).unwrap();
    b.add(note("bulk-2")).unwrap();
    ns.insert(note("during-load")).unwrap();
    b.start_commit().unwrap();
    b
}

#[test]
fn single_inserts_do_not_wait_for_a_commit_and_are_indexed_after_its_batch() {
    let (_dir, _store, ns) = fresh();
    let mut b = load_at_its_move(&ns);
    // the move runs without the write lock, so a posted note is taken at once (same
    // thread: this would deadlock if the commit held the lock), past the batch's nids
    assert!(ns.inner.write.try_lock().is_some());
    assert_eq!(ns.next_nid().unwrap(), 4);
    assert_eq!(ns.insert(note("during-commit")).unwrap().nid, 4);
    // an id staged in the committing batch is taken
    assert!(matches!(
        ns.insert(note("bulk-2")),
        Err(InsertError::Conflict(NoteConflict::Exists(_)))
    ));
    // catch-up stops below the batch until its notes are all moved
    assert_eq!(ns.visible_next().unwrap(), 2);
    ns.move_staged().unwrap();
    b.committed = true;
    drop(b);
    assert_eq!(ns.visible_next().unwrap(), 5);
    assert_eq!(ids_by_nid(&ns), owned(&AFTER_THE_LOAD));
    // first, during-load, during-commit, the load
    assert_eq!(ns.seq().unwrap(), 4);
}

#[test]
fn a_commit_cut_during_its_move_keeps_notes_posted_meanwhile() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let ns = NoteStore::open(&store).unwrap();
        let mut b = load_at_its_move(&ns);
        assert_eq!(ns.insert(note("during-commit")).unwrap().nid, 4);
        // the process dies here: staging and marker stay
        b.committed = true;
        drop(b);
        store.db().flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let ns = NoteStore::open(&store).unwrap();
    assert_eq!(ids_by_nid(&ns), owned(&AFTER_THE_LOAD));
    assert_eq!(ns.next_nid().unwrap(), 5);
    assert_eq!(ns.visible_next().unwrap(), 5);
    assert!(ns.inner.meta.get(COMMITTING).unwrap().is_none());
}

#[test]
fn interrupted_commit_rolls_forward_and_stale_staging_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path()).unwrap();
        let ns = NoteStore::open(&store).unwrap();
        let s = StoredNote {
            nid: 0,
            note: note("x"),
        };
        // a commit that died after its marker
        ns.inner.staging.insert("x", encode(&s)).unwrap();
        ns.inner
            .meta
            .insert(COMMITTING, 1u64.to_be_bytes().to_vec())
            .unwrap();
        store.flush().unwrap();
    }
    {
        let store = Store::open(dir.path()).unwrap();
        let ns = NoteStore::open(&store).unwrap();
        assert_eq!(ns.get("x").unwrap().unwrap().nid, 0);
        assert_eq!(ns.next_nid().unwrap(), 1);
        // a load that died before committing
        let s = StoredNote {
            nid: 1,
            note: note("y"),
        };
        ns.inner.staging.insert("y", encode(&s)).unwrap();
        store.flush().unwrap();
    }
    let store = Store::open(dir.path()).unwrap();
    let ns = NoteStore::open(&store).unwrap();
    assert!(ns.get("y").unwrap().is_none());
    assert_eq!(ns.len(), 1);
}
