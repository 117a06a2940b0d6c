//! Faults: kill -9 during embedding (the index catch-up that follows each commit), corrupted index
//! files, a corrupted store, a read-only data directory. With tests/kill9.rs (20 kills during
//! ingest) these make 50+ kill -9 cycles. A tiny random BERT keeps the embedding fast.

use ontovec::domain::model::ReleaseState;
use ontovec::ontology::synthetic;
use ontovec::search::vector::VectorIndex;
use ontovec::service::app::{App, AppConfig};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::server::{Server, BIN};
use common::tiny_models;

fn ingest_cmd(data: &Path, models: &Path, release: &str, files: &[PathBuf]) -> Command {
    common::server::ingest(data, models, "umls-rrf", release, files)
}

/// `ingest --format obo --system HPO` of `file` as `release` with the binary `bin` (quiet logs,
/// no colours).
fn hpo_ingest_cmd(bin: &Path, data: &Path, models: &Path, release: &str, file: &Path) -> Command {
    let args = [
        "ingest",
        "--format",
        "obo",
        "--release",
        release,
        "--system",
        "HPO",
    ];
    let mut c = common::server::command(bin, &args, data, models);
    c.arg(file);
    c
}

fn cfg(data: &Path, models: &Path) -> AppConfig {
    common::config(data, models)
}

/// Open the data directory as a restarted server would (store checks, index catch-up), and
/// check: one complete visible release, no leftovers, and a vector index holding exactly the
/// visible release's terms. Returns the visible release label.
fn reopen_and_check(
    data: &Path,
    models: &Path,
    expected: ontovec::domain::model::Counts,
) -> String {
    let (label, term_ids) = {
        let app = App::open(cfg(data, models)).expect("store opens after kill -9");
        app.sync_indexes(None).expect("indexes catch up");
        let sources = app.store.sources().unwrap();
        assert_eq!(sources.len(), 1, "exactly one visible UMLS release");
        let r = &sources[0];
        assert_eq!(r.state, ReleaseState::Active);
        assert_eq!(
            r.counts, expected,
            "visible release {} is complete",
            r.release
        );
        for other in app.store.releases().unwrap() {
            assert_eq!(other.state, ReleaseState::Active, "leftovers purged");
        }
        let ids: Vec<u64> = app
            .store
            .terms_of_release(r.rid)
            .map(|t| t.unwrap().0)
            .collect();
        assert_eq!(ids.len() as u64, expected.terms);
        (r.release.clone(), ids)
    };
    // The App is closed: read the saved vector index as the next start would.
    let idx = VectorIndex::open_or_create(&data.join("indexes/vectors/tiny.usearch"), 32).unwrap();
    assert_eq!(
        idx.len(),
        term_ids.len(),
        "vector index holds exactly the visible terms"
    );
    assert!(
        term_ids.iter().all(|id| idx.contains(*id)),
        "every visible term has its vector"
    );
    label
}

#[test]
fn kill9_during_embedding_never_loses_data_and_indexes_catch_up() {
    let dir = tempfile::tempdir().unwrap();
    let models = tiny_models(dir.path());
    let syn = synthetic::write_umls(&dir.path().join("umls"), 2_000).unwrap();
    let data = dir.path().join("data");
    let t = Instant::now();
    assert!(ingest_cmd(&data, &models, "base", &syn.files)
        .status()
        .unwrap()
        .success());
    let full_ms = t.elapsed().as_millis() as u64;
    let expected = {
        let app = App::open(cfg(&data, &models)).unwrap();
        app.store.sources().unwrap()[0].counts
    };
    assert!(expected.terms > 1_500);
    // Where the embedding starts: a store-only ingest of the same files takes this long.
    let plain = dir.path().join("plain");
    let t = Instant::now();
    assert!(
        ingest_cmd(&plain, &dir.path().join("none"), "x", &syn.files)
            .status()
            .unwrap()
            .success()
    );
    let store_ms = t.elapsed().as_millis() as u64;
    let _ = std::fs::remove_dir_all(&plain);
    assert!(
        full_ms > store_ms,
        "embedding takes time ({full_ms} vs {store_ms} ms)"
    );
    eprintln!("ingest {store_ms} ms, ingest + embedding {full_ms} ms");

    let mut seed: u64 = 11;
    let (mut in_embedding, mut before, mut finished) = (0, 0, 0);
    let cycles = 30;
    // Most kill points fall in the embedding phase (after the store part), some before. Other
    // builds and tests share the machine, so a run's length drifts from the timing runs above:
    // the window is kept as fractions of an estimate of the whole run, and the estimate follows
    // what the kills see — a run that finished before its kill took at most `delay` (the
    // estimate drops below it), a kill that landed before the commit came too early (it grows).
    let store_share = store_ms as f64 / full_ms as f64;
    let mut est = full_ms as f64;
    for i in 0..cycles {
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
        let (lo, hi) = ((est * store_share * 0.8) as u64, (est * 0.9) as u64);
        let delay = lo + (seed >> 33) % (hi.saturating_sub(lo) + 1);
        let release = format!("r{i}");
        let mut child = ingest_cmd(&data, &models, &release, &syn.files)
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(delay));
        let exited = child.try_wait().unwrap().is_some();
        if !exited {
            child.kill().unwrap(); // SIGKILL
        }
        let status = child.wait().unwrap();
        let label = reopen_and_check(&data, &models, expected);
        if exited {
            assert!(status.success());
            finished += 1;
            est = est.min(delay as f64) * 0.85;
            assert_eq!(
                label, release,
                "an acknowledged (exit 0) release is never lost"
            );
        } else if label == release {
            // committed, killed while embedding: the restart caught the index up
            in_embedding += 1;
        } else {
            before += 1;
            est *= 1.25;
        }
    }
    eprintln!(
        "kill -9 cycles: {in_embedding} during embedding (after commit), {before} before the commit, {finished} finished first"
    );
    assert!(
        in_embedding >= 10,
        "most cycles must interrupt the embedding ({in_embedding} of {cycles})"
    );
}

fn vector_search(url: &str, q: &str) -> serde_json::Value {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .post(format!("{url}/v1/search"))
        .header("content-type", "application/json")
        .send(serde_json::json!({"query": q, "mode": "vector", "k": 3}).to_string())
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    r.body_mut().read_json().unwrap()
}

#[test]
fn corrupted_index_files_are_rebuilt_with_a_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let models = tiny_models(dir.path());
    let data = dir.path().join("data");
    let hpo = Path::new(env!("CARGO_MANIFEST_DIR")).join("ontologies/obo/hpo-sample.obo");
    let st = hpo_ingest_cmd(Path::new(BIN), &data, &models, "1", &hpo)
        .status()
        .unwrap();
    assert!(st.success());
    let before = {
        let log = dir.path().join("serve0.log");
        let srv = Server::start_caught_up(&data, &models, log.clone());
        let url = srv.url.clone();
        let v = vector_search(&url, "seizure");
        srv.terminate();
        v["results"].clone()
    };
    assert!(!before.as_array().unwrap().is_empty());
    // Garble the vector index and the lexical index's metadata.
    let vec_file = data.join("indexes/vectors/tiny.usearch");
    let n = std::fs::metadata(&vec_file).unwrap().len() as usize;
    std::fs::write(&vec_file, vec![0xA5u8; n.max(64)]).unwrap();
    std::fs::write(data.join("indexes/lexical/meta.json"), b"{ not json").unwrap();
    let log = dir.path().join("serve1.log");
    let srv = Server::start_caught_up(&data, &models, log.clone());
    let url = srv.url.clone();
    let after = vector_search(&url, "seizure");
    srv.terminate();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("vector index unusable"),
        "a log line names the vector index: {text}"
    );
    assert!(
        text.contains("lexical index unusable"),
        "a log line names the lexical index: {text}"
    );
    // rebuilt from the embedding cache (half-precision values): the same results in the same
    // order, scores within the rounding
    let strip = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r.as_object_mut().unwrap().remove("score");
                r
            })
            .collect()
    };
    assert_eq!(
        strip(&after["results"]),
        strip(&before),
        "rebuilt indexes answer as before"
    );
    for (a, b) in after["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(before.as_array().unwrap())
    {
        let (a, b) = (a["score"].as_f64().unwrap(), b["score"].as_f64().unwrap());
        assert!((a - b).abs() < 1e-3, "score {a} vs {b}");
    }
}

#[test]
fn corrupted_store_is_refused_not_silently_emptied() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hpo = Path::new(env!("CARGO_MANIFEST_DIR")).join("ontologies/obo/hpo-sample.obo");
    let ingest = |data: &Path| {
        hpo_ingest_cmd(Path::new(BIN), data, &dir.path().join("none"), "1", &hpo)
            .output()
            .unwrap()
    };
    assert!(ingest(&data).status.success());
    let db = data.join("store/db");
    let size = std::fs::metadata(&db).unwrap().len();
    let mut refused = 0;
    for (i, frac) in [0.05, 0.3, 0.6, 0.9].iter().enumerate() {
        let copy = dir.path().join(format!("copy{i}"));
        copy_dir(&data, &copy);
        let off = (size as f64 * frac) as u64;
        {
            use std::io::{Seek, SeekFrom, Write};
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .open(copy.join("store/db"))
                .unwrap();
            f.seek(SeekFrom::Start(off)).unwrap();
            f.write_all(&[0x5Au8; 64]).unwrap();
        }
        // `serve` and `ingest` both refuse, naming the problem and the way out.
        let out = ingest(&copy);
        let err = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            assert!(err.contains("damaged"), "clear message: {err}");
            assert!(err.contains("store.commit"), "names the record: {err}");
            refused += 1;
        } else {
            // sled kept the data intact despite the damage: the release must still be there
            // (the ingest then found it and failed with a conflict, so this branch means the
            // store truly had nothing to lose).
            panic!("a damaged store was used as if nothing happened: {err}");
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let out = Command::new(BIN)
            .arg("serve")
            .arg("--data-dir")
            .arg(&copy)
            .arg("--models-dir")
            .arg(dir.path().join("none"))
            .arg("--addr")
            .arg(format!("127.0.0.1:{port}"))
            .env("ONTOVEC_LOG", "info")
            .env("NO_COLOR", "1")
            .output()
            .unwrap();
        assert!(!out.status.success(), "serve refuses a damaged store");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("damaged"), "{err}");
    }
    assert_eq!(refused, 4);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

#[cfg(unix)]
#[test]
fn read_only_data_dir_is_a_clear_error() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let hpo = Path::new(env!("CARGO_MANIFEST_DIR")).join("ontologies/obo/hpo-sample.obo");
    let st = hpo_ingest_cmd(Path::new(BIN), &data, &dir.path().join("none"), "1", &hpo)
        .status()
        .unwrap();
    assert!(st.success());
    // Read-only for everyone; root ignores permission bits, so run the child as `nobody` then.
    let root = unsafe { libc::geteuid() } == 0;
    let mode = |p: &Path, m: u32| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    mode(dir.path(), 0o755).unwrap();
    for e in walk(&data) {
        mode(&e, if e.is_dir() { 0o555 } else { 0o444 }).unwrap();
    }
    // `nobody` may not reach the build's binary or the checkout (e.g. a target dir under
    // /root), so it runs copies placed in the world-readable temp dir.
    let (bin, input) = if root {
        let bin = dir.path().join("ontovec-bin");
        std::fs::copy(BIN, &bin).unwrap();
        mode(&bin, 0o755).unwrap();
        let input = dir.path().join("hpo.obo");
        std::fs::copy(&hpo, &input).unwrap();
        mode(&input, 0o644).unwrap();
        (bin, input)
    } else {
        (PathBuf::from(BIN), hpo.clone())
    };
    let mut cmd = hpo_ingest_cmd(&bin, &data, &dir.path().join("none"), "2", &input);
    if root {
        cmd.uid(65534).gid(65534);
    }
    let out = cmd.output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    for e in walk(&data) {
        mode(&e, if e.is_dir() { 0o755 } else { 0o644 }).unwrap();
    }
    assert!(!out.status.success(), "refused");
    assert!(
        err.contains("ermission denied") || err.contains("ead-only"),
        "says why: {err}"
    );
    assert!(err.contains("store"), "says where: {err}");
}

fn walk(p: &Path) -> Vec<PathBuf> {
    let mut out = vec![p.to_path_buf()];
    if p.is_dir() {
        for e in std::fs::read_dir(p).unwrap() {
            out.extend(walk(&e.unwrap().path()));
        }
    }
    out
}

#[test]
fn http_job_killed_mid_way_reports_failed_or_succeeded_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let models = tiny_models(dir.path());
    let syn = synthetic::write_umls(&dir.path().join("umls"), 2_000).unwrap();
    let data = dir.path().join("data");
    let (ct, body) = common::ingest_upload("umls-rrf", "http", &syn.files);
    let agent = common::server::agent();
    let mut outcomes = Vec::new();
    for (i, delay_ms) in [50u64, 400, 1500].iter().enumerate() {
        let log = dir.path().join(format!("job{i}.log"));
        let srv = Server::start_caught_up(&data, &models, log.clone());
        let url = srv.url.clone();
        let mut r = agent
            .post(format!("{url}/v1/ingest"))
            .header("content-type", &ct)
            .send(&body[..])
            .unwrap();
        let status = r.status().as_u16();
        let v: serde_json::Value = r.body_mut().read_json().unwrap();
        if status == 409 {
            outcomes.push("already loaded".to_string());
            srv.terminate();
            continue;
        }
        assert_eq!(status, 202, "{v}");
        let job = v["job_id"].as_str().unwrap().to_string();
        std::thread::sleep(Duration::from_millis(*delay_ms));
        srv.kill9();
        let log = dir.path().join(format!("job{i}b.log"));
        let srv = Server::start_caught_up(&data, &models, log.clone());
        let url = srv.url.clone();
        let mut r = agent.get(format!("{url}/v1/jobs/{job}")).call().unwrap();
        assert_eq!(r.status().as_u16(), 200, "the job survives the crash");
        let st: serde_json::Value = r.body_mut().read_json().unwrap();
        let state = st["state"].as_str().unwrap().to_string();
        assert!(
            state == "succeeded"
                || (state == "failed"
                    && st["error"]["message"]
                        .as_str()
                        .unwrap()
                        .contains("interrupted")),
            "{st}"
        );
        let mut r = agent.get(format!("{url}/v1/sources")).call().unwrap();
        let src: serde_json::Value = r.body_mut().read_json().unwrap();
        let visible = src["sources"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["release"] == "http");
        // Visible exactly when the job reports success (a commit before the crash is a success
        // whose index catch-up finished at the restart).
        assert_eq!(visible, state == "succeeded", "{st}");
        outcomes.push(format!("{state} (visible: {visible})"));
        srv.terminate();
    }
    eprintln!("HTTP jobs killed: {outcomes:?}");
}
