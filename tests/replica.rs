//! Read replicas: `ontovec snapshot create` on a writer's data directory, `snapshot restore`
//! on another, a `--read-only` node answering the same searches as the writer and refusing
//! writes with 403; corrupt and newer snapshots refused without touching the target. Also with
//! a shared Postgres vector store (the replica needs only the store snapshot).

mod common;
mod pg_harness;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ontovec::api::{router, AppState};
use ontovec::search::vector_store::{Backend, VectorConfig};
use ontovec::service::app::{App, AppConfig};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use tower::ServiceExt;

use common::root;

fn config(data: &Path, models: &Path, store: Option<&str>, read_only: bool) -> AppConfig {
    let mut cfg = AppConfig::new(data);
    cfg.models_dir = models.to_path_buf();
    cfg.vector = VectorConfig {
        backend: Backend::parse(store).unwrap(),
        read_only,
        ..VectorConfig::default()
    };
    cfg.writer_url = read_only.then(|| "http://writer.example:8080".to_string());
    cfg
}

fn ontovec(args: &[&str], data: &Path, models: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ontovec"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("ONTOVEC_MODELS_DIR", models)
        .env("ONTOVEC_LOG", "error")
        // vectors in F32, as the in-process writer and replica embed them
        .env("ONTOVEC_PRECISION", "f32")
        .output()
        .unwrap()
}

async fn post(r: &axum::Router, uri: &str, body: Value) -> (StatusCode, Value) {
    common::call(r, common::post_json(uri, &body)).await
}

/// The answers to a fixed set of searches (every mode, with and without system filters).
async fn answers(app: std::sync::Arc<App>) -> Vec<Value> {
    let r = router(AppState::with_app(app));
    let mut out = Vec::new();
    for q in [
        "heart attack",
        "fits",
        "type 2 diabetes",
        "E11.9",
        "seizure",
    ] {
        for mode in ["lexical", "vector", "hybrid"] {
            for systems in [
                None,
                Some(json!(["HPO"])),
                Some(json!(["ICD10CM", "PHECODE"])),
            ] {
                let mut body = json!({"query": q, "k": 5, "mode": mode});
                if let Some(s) = systems {
                    body["systems"] = s;
                }
                let (s, v) = post(&r, "/v1/search", body.clone()).await;
                assert_eq!(s, StatusCode::OK, "{body}: {v}");
                out.push(json!({"q": body, "results": v["results"]}));
            }
        }
    }
    out
}

async fn open(cfg: AppConfig) -> std::sync::Arc<App> {
    tokio::task::spawn_blocking(move || App::open(cfg).unwrap())
        .await
        .unwrap()
}

async fn replica_matches_writer(store: Option<String>) {
    let tmp = tempfile::tempdir().unwrap();
    let (models, _) = common::models(tmp.path());
    let (writer_dir, replica_dir) = (tmp.path().join("writer"), tmp.path().join("replica"));
    let writer = open(config(&writer_dir, &models, store.as_deref(), false)).await;
    tokio::task::spawn_blocking({
        let w = writer.clone();
        move || common::load_search_fixtures(&w)
    })
    .await
    .unwrap();
    drop(writer); // the CLI takes the store's lock

    let tar = tmp.path().join("snap.tar");
    let mut create = vec!["snapshot", "create", tar.to_str().unwrap()];
    if let Some(url) = &store {
        create.extend(["--vector-store", url]);
    }
    let out = ontovec(&create, &writer_dir, &models);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(summary["store_seq"].as_u64().unwrap() > 0, "{summary}");
    let out = ontovec(
        &["snapshot", "restore", tar.to_str().unwrap()],
        &replica_dir,
        &models,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let writer = open(config(&writer_dir, &models, store.as_deref(), false)).await;
    let replica = open(config(&replica_dir, &models, store.as_deref(), true)).await;
    assert!(replica.index_lag().is_empty(), "{:?}", replica.index_lag());
    let (a, b) = (
        answers(writer.clone()).await,
        answers(replica.clone()).await,
    );
    for (x, y) in a.iter().zip(&b) {
        assert_eq!(x, y, "replica answers differently");
    }
    assert!(a
        .iter()
        .any(|x| !x["results"].as_array().unwrap().is_empty()));

    // writes: 403 with a pointer to the writer, nothing stored
    let r = router(AppState::with_app(replica.clone()));
    let (s, v) = post(&r, "/v1/notes", json!({"id": "n1", "text": "chest pain"})).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "{v}");
    assert_eq!(v["error"]["code"], "read_only");
    assert_eq!(
        v["error"]["details"]["writer"],
        "http://writer.example:8080"
    );
    let req = Request::post("/v1/ingest")
        .header("content-type", "multipart/form-data; boundary=x")
        .body(Body::from("--x--\r\n"))
        .unwrap();
    assert_eq!(
        r.clone().oneshot(req).await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restored_replica_answers_like_the_writer() {
    replica_matches_writer(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_sharing_a_postgres_vector_store_answers_like_the_writer() {
    let pg = pg_harness::Pg::start();
    replica_matches_writer(Some(pg.url())).await;
}

fn tree(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(tree(&p));
        } else {
            out.push((p.clone(), std::fs::read(&p).unwrap()));
        }
    }
    out.sort();
    out
}

#[test]
fn corrupt_or_newer_snapshots_are_refused_and_nothing_is_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("no-models");
    let data = tmp.path().join("data");
    let out = Command::new(env!("CARGO_BIN_EXE_ontovec"))
        .args([
            "ingest",
            "--format",
            "obo",
            "--system",
            "HPO",
            "--release",
            "r1",
        ])
        .arg(root().join("ontologies/obo/hpo-sample.obo"))
        .arg("--data-dir")
        .arg(&data)
        .arg("--models-dir")
        .arg(&models)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snap = tmp.path().join("snap");
    let out = ontovec(
        &["snapshot", "create", snap.to_str().unwrap()],
        &data,
        &models,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // a snapshot into an existing target is refused too
    let out = ontovec(
        &["snapshot", "create", snap.to_str().unwrap()],
        &data,
        &models,
    );
    assert!(!out.status.success());

    let target = tmp.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("keep.txt"), b"old data").unwrap();
    let before = tree(&target);
    let restore = |src: &Path, force: bool| {
        let mut args = vec!["snapshot", "restore", src.to_str().unwrap()];
        if force {
            args.push("--force");
        }
        let out = ontovec(&args, &target, &models);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    // a non-empty target needs --force
    let (ok, err) = restore(&snap, false);
    assert!(!ok && err.contains("--force"), "{err}");

    // one flipped byte in the store
    let bad = tmp.path().join("bad");
    copy_dir(&snap, &bad);
    let victim = tree(&bad.join("store"))
        .into_iter()
        .max_by_key(|(_, b)| b.len())
        .unwrap()
        .0;
    let mut bytes = std::fs::read(&victim).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&victim, bytes).unwrap();
    let (ok, err) = restore(&bad, true);
    assert!(
        !ok && err.contains("corrupt snapshot") && err.contains("checksum"),
        "{err}"
    );
    assert_eq!(tree(&target), before, "target untouched");

    // a truncated tarball
    let tar = tmp.path().join("snap.tar");
    let out = ontovec(
        &["snapshot", "create", tar.to_str().unwrap()],
        &data,
        &models,
    );
    assert!(out.status.success());
    let full = std::fs::read(&tar).unwrap();
    let cut = tmp.path().join("cut.tar");
    std::fs::write(&cut, &full[..full.len() / 3]).unwrap();
    let (ok, err) = restore(&cut, true);
    assert!(!ok && err.contains("corrupt snapshot"), "{err}");
    assert_eq!(tree(&target), before, "target untouched");

    // written by a newer ontovec
    let newer = tmp.path().join("newer");
    copy_dir(&snap, &newer);
    let mpath = newer.join("ontovec-snapshot.json");
    let mut m: Value = serde_json::from_slice(&std::fs::read(&mpath).unwrap()).unwrap();
    m["store_schema"] = json!(99);
    std::fs::write(&mpath, m.to_string()).unwrap();
    let (ok, err) = restore(&newer, true);
    assert!(!ok && err.contains("newer") && err.contains("99"), "{err}");
    assert_eq!(tree(&target), before, "target untouched");

    // the good one, forced: replaces the target
    let (ok, err) = restore(&tar, true);
    assert!(ok, "{err}");
    assert!(!target.join("keep.txt").exists());
    let store = ontovec::store::Store::open(&target.join("store")).unwrap();
    assert!(store.concept("HPO", "HP:0001250").unwrap().is_some());
}

fn copy_dir(from: &Path, to: &Path) {
    for (p, bytes) in tree(from) {
        let dest = to.join(p.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(dest, bytes).unwrap();
    }
}
