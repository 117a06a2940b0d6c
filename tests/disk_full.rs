//! A data directory that fills up, on a real file system: the server runs in its own user and
//! mount namespace (`unshare -Urm`, no root needed where user namespaces are enabled) over a
//! 64 MiB tmpfs, so the kernel answers ENOSPC exactly as a full disk does.
//!
//! Checked, with the store's free-space reserve at 24 MiB (`ONTOVEC_MIN_FREE_MB`): an upload
//! that does not fit gets 507 and is discarded; an ingest whose upload fits but whose release
//! does not ends as a failed job that says why (before this guard, sled met ENOSPC and the
//! job's status update hung in a flush forever, and every write after it); reads, earlier
//! releases and acknowledged notes stay, and writes work again once the upload is gone. A
//! server whose disk is below the reserve answers every write 507 and every read 200; and
//! after each restart nothing acknowledged is lost and nothing partial is visible.

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::server::{agent, http_get, http_post, BIN};

/// The namespace's script: three servers one after the other on the same data directory and
/// address, each started when the one before has exited: on a 64 MiB tmpfs with a 24 MiB
/// reserve; on the tmpfs grown to 256 MiB with a reserve larger than that (every write
/// refused); on 256 MiB with 24 MiB (the disk "freed"). The reserve is larger than sled's
/// write buffer (8 MiB), which reaches the disk after the check that let it in.
const SCRIPT: &str = r#"
set -e
mount -t tmpfs -o size=64m tmpfs "$DATA"
ONTOVEC_MIN_FREE_MB=24 "$BIN" serve --data-dir "$DATA" --models-dir "$MODELS" --addr "$ADDR" || true
mount -o remount,size=256m "$DATA"
ONTOVEC_MIN_FREE_MB=1000 "$BIN" serve --data-dir "$DATA" --models-dir "$MODELS" --addr "$ADDR" || true
exec env ONTOVEC_MIN_FREE_MB=24 "$BIN" serve --data-dir "$DATA" --models-dir "$MODELS" --addr "$ADDR"
"#;

fn wait_ready(url: &str, log: &Path) {
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(60) {
        if let Ok(mut r) = agent().get(format!("{url}/ready")).call() {
            if r.status().as_u16() == 200 {
                let _ = r.body_mut().read_to_string();
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "no server on {url}: {}",
        std::fs::read_to_string(log).unwrap_or_default()
    );
}

/// POST a multipart ingest; status and JSON body.
fn upload(
    url: &str,
    system: &str,
    release: &str,
    name: &str,
    data: &[u8],
) -> (u16, serde_json::Value) {
    let (ct, body) = common::multipart(
        &[("format", "obo"), ("release", release), ("system", system)],
        &[(name, data)],
    );
    let mut r = agent()
        .post(format!("{url}/v1/ingest"))
        .header("content-type", &ct)
        .send(&body[..])
        .unwrap();
    let s = r.status().as_u16();
    (s, r.body_mut().read_json().unwrap_or_default())
}

/// POST a note: status and JSON body.
fn post_note(url: &str, id: &str, text: &str) -> (u16, serde_json::Value) {
    http_post(
        &format!("{url}/v1/notes"),
        &serde_json::json!({"id": id, "text": text}),
    )
}

/// Poll a job until it is neither queued nor running (60 s at most).
fn finished_job(url: &str, id: &str) -> serde_json::Value {
    let t = Instant::now();
    loop {
        let (s, v) = http_get(&format!("{url}/v1/jobs/{id}"));
        assert_eq!(s, 200, "{v}");
        if v["state"] != "queued" && v["state"] != "running" {
            return v;
        }
        assert!(t.elapsed() < Duration::from_secs(60), "job still {v}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn releases(url: &str) -> Vec<String> {
    let (s, v) = http_get(&format!("{url}/v1/sources"));
    assert_eq!(s, 200, "{v}");
    v["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["release"].as_str().unwrap().to_string())
        .collect()
}

/// An OBO file of `n` made-up terms (about 400 bytes each) under one root.
fn big_obo(n: usize) -> Vec<u8> {
    let words = [
        "acute",
        "chronic",
        "bone",
        "renal",
        "hepatic",
        "cardiac",
        "hypoplasia",
        "aplasia",
        "abnormal",
        "morphology",
        "limb",
        "muscle",
        "nerve",
        "lesion",
        "defect",
    ];
    let mut out = b"format-version: 1.2\nontology: gen\n\n".to_vec();
    for i in 1..=n {
        let name: Vec<&str> = (0..6)
            .map(|k| words[(i * 7 + k * 5 + k * k) % words.len()])
            .collect();
        let name = name.join(" ");
        write!(
            out,
            "[Term]\nid: GEN:{i:07}\nname: {name} {i}\ndef: \"{name} {name} {name} {name}\" []\n\
             synonym: \"{name} variant {i}\" EXACT []\nsynonym: \"{name} other {i}\" RELATED []\n"
        )
        .unwrap();
        if i > 1 {
            writeln!(out, "is_a: GEN:{:07}", (i * 31) % (i - 1) + 1).unwrap();
        }
        out.push(b'\n');
    }
    out
}

/// The server process of the first stage: the script's child.
fn child_of(pid: u32) -> Option<i32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

struct Namespace(Child);

impl Drop for Namespace {
    fn drop(&mut self) {
        if let Some(c) = child_of(self.0.id()) {
            unsafe { libc::kill(c, libc::SIGKILL) };
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_full_data_directory_fails_writes_cleanly_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let models = common::tiny_models(dir.path());
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let log = dir.path().join("server.log");
    let ns = Command::new("unshare")
        .args(["-Urm", "sh", "-c", SCRIPT])
        .env("DATA", &data)
        .env("MODELS", &models)
        .env("BIN", BIN)
        .env("ADDR", format!("127.0.0.1:{port}"))
        .env("ONTOVEC_LOG", "info,tantivy=warn")
        .env("NO_COLOR", "1")
        .env("ONTOVEC_PRECISION", "f32")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("unshare (util-linux) runs the server in its own mount namespace");
    let ns = Namespace(ns);
    wait_ready(&url, &log);

    // acknowledged writes before the disk fills: a release and a note
    let sample = std::fs::read(common::root().join("ontologies/obo/hpo-sample.obo")).unwrap();
    let (s, v) = upload(&url, "HPO", "r1", "hpo-sample.obo", &sample);
    assert_eq!(s, 202, "{v}");
    let job = finished_job(&url, v["job_id"].as_str().unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");
    let (s, v) = post_note(&url, "kept", "Patient with short stature and seizures.");
    assert!(s == 200 || s == 201, "{s} {v}");

    // 1. an upload larger than the free space: 507, discarded
    let (s, v) = upload(&url, "BIG", "b1", "big.obo", &vec![b'x'; 80 << 20]);
    assert_eq!(s, 507, "{v}");
    assert_eq!(v["error"]["code"], "insufficient_storage", "{v}");

    // 2. an upload that fits, whose release does not: the job fails and says why
    let gen = big_obo(60_000);
    assert!(
        gen.len() > 22 << 20 && gen.len() < 30 << 20,
        "{}",
        gen.len()
    );
    let (s, v) = upload(&url, "GEN", "g1", "gen.obo", &gen);
    assert_eq!(s, 202, "the upload fits: {v}");
    let failed_job = v["job_id"].as_str().unwrap().to_string();
    let job = finished_job(&url, &failed_job);
    assert_eq!(job["state"], "failed", "{job}");
    assert_ne!(job["phase"], "queued", "the phase it failed in: {job}");
    let message = job["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("reserve") && message.contains("nothing of this job was kept"),
        "{message}"
    );

    // 3. reads and acknowledged data stay; with the upload gone, writes work again
    assert_eq!(releases(&url), vec!["r1".to_string()]);
    let (s, v) = http_get(&format!("{url}/v1/notes/kept"));
    assert_eq!(s, 200, "{v}");
    let (s, v) = post_note(&url, "after-full", "Fever.");
    assert!(s == 200 || s == 201, "{s} {v}");
    let (s, v) = upload(&url, "HPO2", "r2", "hpo-sample.obo", &sample);
    assert_eq!(s, 202, "{v}");
    let job = finished_job(&url, v["job_id"].as_str().unwrap());
    assert_eq!(job["state"], "succeeded", "{job}");

    // 4. restarted below its reserve: every write 507 with the reason, every read 200, and
    // readiness says so
    next_server(&ns, &url, &log);
    let (s, v) = http_get(&format!("{url}/ready"));
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["disk"]["writes_accepted"], false, "{v}");
    assert_eq!(v["disk"]["reserve_bytes"], 1000u64 << 20, "{v}");
    assert!(
        v["disk"]["available_bytes"].as_u64().unwrap() < 256 << 20,
        "{v}"
    );
    let want = ["r1".to_string(), "r2".to_string()];
    assert_eq!(releases(&url), want);
    assert_eq!(finished_job(&url, &failed_job)["state"], "failed");
    let (s, v) = post_note(&url, "refused", "Fever.");
    assert_eq!(s, 507, "{v}");
    assert!(
        v["error"]["message"].as_str().unwrap().contains("reserve"),
        "{v}"
    );
    let (s, v) = upload(&url, "HPO3", "r3", "hpo-sample.obo", &sample);
    assert_eq!(s, 507, "{v}");
    for id in ["kept", "after-full"] {
        let (s, v) = http_get(&format!("{url}/v1/notes/{id}"));
        assert_eq!(s, 200, "{v}");
    }
    let (s, v) = http_post(
        &format!("{url}/v1/search"),
        &serde_json::json!({"query": "seizure", "mode": "lexical", "k": 3}),
    );
    assert_eq!(s, 200, "{v}");

    // 5. restarted with room: nothing lost, nothing partial, writes work
    next_server(&ns, &url, &log);
    let (_, v) = http_get(&format!("{url}/ready"));
    assert_eq!(v["disk"]["writes_accepted"], true, "{v}");
    assert_eq!(releases(&url), want);
    let (s, v) = http_get(&format!("{url}/v1/notes/refused"));
    assert_eq!(s, 404, "a refused write is not there: {v}");
    let (s, v) = post_note(&url, "refused", "Fever.");
    assert!(s == 200 || s == 201, "{s} {v}");
    drop(ns);
}

/// Stop the namespace's current server (SIGTERM) and wait for the next one the script starts.
fn next_server(ns: &Namespace, url: &str, log: &Path) {
    let pid = child_of(ns.0.id()).expect("a server runs under the script");
    unsafe { libc::kill(pid, libc::SIGTERM) };
    let t = Instant::now();
    while Path::new(&format!("/proc/{pid}")).exists() {
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    wait_ready(url, log);
}
