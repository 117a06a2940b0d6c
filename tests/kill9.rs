//! Crash safety: kill -9 an ingesting `ontovec` process at pseudo-random points, 20 times. After
//! every kill the store must open, the acknowledged (last committed) release must be complete,
//! and no partial release may ever be visible.

use ontovec::domain::model::ReleaseState;
use ontovec::ontology::synthetic;
use ontovec::store::Store;
use std::process::Command;
use std::time::Duration;

mod common;

/// Store only: the crash properties are about releases, not embeddings.
fn ingest_cmd(data: &std::path::Path, release: &str, files: &[std::path::PathBuf]) -> Command {
    common::server::ingest(data, &data.join("no-models"), "umls-rrf", release, files)
}

#[test]
fn kill9_during_ingest_never_loses_or_exposes_partial_releases() {
    let dir = tempfile::tempdir().unwrap();
    let syn = synthetic::write_umls(&dir.path().join("umls"), 20_000).unwrap();
    let data = dir.path().join("data");
    let t = std::time::Instant::now();
    let status = ingest_cmd(&data, "base", &syn.files).status().unwrap();
    // Kill points spread over the whole ingest, commit included (and a little past it).
    let span_ms = (t.elapsed().as_millis() as u64 * 13 / 10).max(200);
    assert!(status.success(), "baseline ingest");
    let expected = {
        let store = Store::open(&data.join("store")).unwrap();
        let s = store.sources().unwrap();
        assert_eq!(s.len(), 1);
        s[0].counts
    };
    assert!(expected.concepts > 1000 && expected.relations > 1000);

    let mut seed: u64 = 7;
    let (mut killed, mut finished) = (0, 0);
    for i in 0..20 {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let delay_ms = 20 + (seed >> 33) % span_ms;
        let mut child = ingest_cmd(&data, &format!("r{i}"), &syn.files)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        match child.try_wait().unwrap() {
            Some(_) => finished += 1,
            None => {
                child.kill().unwrap(); // SIGKILL on unix
                killed += 1;
            }
        }
        child.wait().unwrap();

        let store = Store::open(&data.join("store")).expect("store opens after kill -9");
        let sources = store.sources().unwrap();
        assert_eq!(sources.len(), 1, "exactly one visible UMLS release");
        let r = &sources[0];
        assert_eq!(r.state, ReleaseState::Active);
        assert_eq!(
            r.counts, expected,
            "visible release {} is complete",
            r.release
        );
        let terms = store.terms_of_release(r.rid).count() as u64;
        assert_eq!(
            terms, expected.terms,
            "every term of the visible release is stored"
        );
        assert!(store.concept("UMLS", "C0000001").unwrap().is_some());
        for other in store.releases().unwrap() {
            assert_eq!(
                other.state,
                ReleaseState::Active,
                "leftovers purged at open"
            );
        }
    }
    eprintln!("kill -9 cycles: {killed} killed mid-ingest, {finished} finished before the kill");
    assert!(
        killed >= 10,
        "most cycles must really interrupt an ingest ({killed})"
    );
}
