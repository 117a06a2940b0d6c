//! Background work never blocks the foreground (issue 19). A catch-up made long on purpose —
//! hundreds of stored notes and a new notes model (as `train notecontrast` writes one) that
//! must re-embed them all; a terms ingest whose embedding phase runs with a slow model; a
//! `reindex` — and, while it runs: note writes are acknowledged within 1 s and readable at
//! once, search p99 stays within 3× its idle p99, SIGTERM stops the process within 5 s, and the
//! next start resumes and finishes with every item indexed once (nothing done is re-embedded).
//!
//! Sizes are for the debug build on a shared 2-core machine, where the slow model embeds about
//! 10 notes of 30 words, or 50 terms, per second (measured with `ontovec reindex` at load 9–15):
//! each catch-up outlasts its measurements several times over, and each test takes 1–3 minutes.

use ontovec::encoder::testing::{write_tiny_bert, TinyBert};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::server::{agent, http_get as get, Server};

fn post(url: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    common::server::http_post(url, &body)
}

/// Words the tiny tokenizer knows, for note texts and queries.
const WORDS: &str = "type diabetes mellitus without with complications acute chronic myocardial infarction heart failure kidney disease stage essential hypertension pneumonia unspecified fracture of left right femur asthma mild severe persistent pain in knee fever cough";

/// The `i`-th word of [`WORDS`] (cycling).
fn word(i: usize) -> &'static str {
    let all: Vec<&'static str> = WORDS.split(' ').collect();
    all[i % all.len()]
}

/// A slow model (the catch-up must take a while): `kind` terms or notes.
pub fn slow_model(dir: &Path, kind: &str) {
    write_tiny_bert(
        dir,
        &TinyBert {
            layers: 4,
            hidden: 128,
            heads: 4,
            intermediate: 512,
            max_positions: 128,
            seed: 11,
            manifest: Some(serde_json::json!({"kind": kind, "trained_by": "test"})),
            ..TinyBert::default()
        },
    )
    .unwrap();
}

fn note_text(i: usize, words: usize) -> String {
    let mut x = i as u64 * 2654435761 + 7;
    (0..words)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            word((x >> 33) as usize)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Run the CLI to completion; panics with its log if it fails.
fn cli(args: &[&str], data: &Path, models: &Path) -> std::process::Output {
    let out = common::server::cli(args, data, models)
        .env("ONTOVEC_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A data dir with a synthetic UMLS release of `rows` MRCONSO rows (embedded with the fast
/// `tiny` model) and `notes` notes of `words` words stored but not indexed.
pub fn setup(dir: &Path, rows: u64, notes: usize, words: usize) -> (PathBuf, PathBuf) {
    let models = dir.join("models");
    write_tiny_bert(&models.join("tiny"), &TinyBert::default()).unwrap();
    let data = dir.join("data");
    let syn = ontovec::ontology::synthetic::write_umls(&dir.join("umls"), rows).unwrap();
    let mut args = vec!["ingest", "--format", "umls-rrf", "--release", "base"];
    let files: Vec<String> = syn.files.iter().map(|f| f.display().to_string()).collect();
    args.extend(files.iter().map(String::as_str));
    cli(&args, &data, &models);
    let jsonl = dir.join("notes.jsonl");
    let lines: Vec<String> = (0..notes)
        .map(|i| {
            serde_json::json!({"id": format!("n{i}"), "text": note_text(i, words)}).to_string()
        })
        .collect();
    std::fs::write(&jsonl, lines.join("\n")).unwrap();
    let j = jsonl.display().to_string();
    cli(
        &[
            "ingest",
            "--format",
            "notes-jsonl",
            "--release",
            "1",
            "--skip-index",
            &j,
        ],
        &data,
        &models,
    );
    (data, models)
}

/// Latency percentile (0..=100) of `samples`.
fn pct(samples: &mut [Duration], p: usize) -> Duration {
    samples.sort();
    samples[(samples.len() - 1) * p / 100]
}

/// p99 of `n` searches and note searches (alternating); each must answer 200.
fn search_p99(url: &str, n: usize) -> (Duration, Duration) {
    let (mut terms, mut notes) = (Vec::new(), Vec::new());
    for i in 0..n {
        let q = format!("{} {}", word(i), word(i * 7 + 3));
        let t = Instant::now();
        let (s, v) = post(
            &format!("{url}/v1/search"),
            serde_json::json!({"query": q, "k": 10}),
        );
        terms.push(t.elapsed());
        assert_eq!(s, 200, "{v}");
        let t = Instant::now();
        let (s, v) = post(
            &format!("{url}/v1/notes/search"),
            serde_json::json!({"query": q, "k": 10}),
        );
        notes.push(t.elapsed());
        assert_eq!(s, 200, "{v}");
    }
    (pct(&mut terms, 99), pct(&mut notes, 99))
}

/// 20 note writes: each acknowledged (201) within 1 s and readable by GET at once.
fn twenty_writes(url: &str, tag: &str) -> (Duration, usize) {
    let mut worst = Duration::ZERO;
    let mut unindexed = 0;
    for i in 0..20 {
        let id = format!("{tag}-{i}");
        let text = format!("posted {tag} note {i}: {}", note_text(10_000 + i, 40));
        let t = Instant::now();
        let (s, v) = post(
            &format!("{url}/v1/notes"),
            serde_json::json!({"id": id, "text": text}),
        );
        let took = t.elapsed();
        assert_eq!(s, 201, "{v}");
        assert!(
            took < Duration::from_secs(1),
            "write {i} acknowledged after {took:?}"
        );
        worst = worst.max(took);
        unindexed += usize::from(v["indexed"] == false);
        let (s, g) = get(&format!("{url}/v1/notes/{id}"));
        assert_eq!(s, 200, "note {id} readable at once: {g}");
        assert_eq!(g["text"], text);
        assert!(g["indexed"].is_boolean());
    }
    (worst, unindexed)
}

/// The number of field `key` in a log line (`key=123`).
fn number_after(line: &str, key: &str) -> Option<u64> {
    let pat = format!(" {key}=");
    let rest = &line[line.find(&pat)? + pat.len()..];
    rest.trim_start_matches('"')
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

#[test]
fn note_catch_up_with_a_new_model_never_blocks_writes_reads_or_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let notes = 400;
    let (data, models) = setup(dir.path(), 1_000, notes, 30);
    // a new notes model appears (as `train notecontrast` writes one): every note is re-embedded
    slow_model(&models.join("notes-new"), "notes");

    let srv = Server::start(&data, &models, dir.path().join("run1.log"));
    let behind = srv.behind();
    assert!(behind.iter().any(|b| b["index"] == "notes"), "{behind:?}");
    // the catch-up job is listed with its progress
    let t = Instant::now();
    let (_, total, _) = loop {
        if let Some(j) = srv
            .running("catch-up")
            .filter(|j| j.2.starts_with("embedding"))
        {
            break j;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "no catch-up job: {}",
            srv.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(total, notes as u64);

    let (worst_write, unindexed) = twenty_writes(&srv.url, "bar");
    let (busy_terms, busy_notes) = search_p99(&srv.url, 100);
    // SIGTERM once some notes are embedded (the restart must have progress to resume from)
    let done = srv.progressed("catch-up", Duration::from_secs(60));
    assert!(done < notes as u64);
    assert!(
        unindexed > 0,
        "posted notes are not indexed while the catch-up runs"
    );
    let (exit, log1) = srv.terminate();
    assert!(
        exit < Duration::from_secs(5),
        "SIGTERM → exit in {exit:?}\n{log1}"
    );
    let upto = log1
        .lines()
        .filter(|l| l.contains("embedded notes"))
        .find_map(|l| number_after(l, "upto"))
        .unwrap_or_else(|| panic!("no saved progress logged:\n{log1}"));
    assert!(upto > 0, "progress before SIGTERM is saved");

    // restart: resumes from the saved note, finishes, every note indexed once
    let srv = Server::start(&data, &models, dir.path().join("run2.log"));
    srv.wait_caught_up(Duration::from_secs(240));
    let (idle_terms, idle_notes) = search_p99(&srv.url, 100);
    let (s, g) = get(&format!("{}/v1/notes/bar-3", srv.url));
    assert_eq!((s, &g["indexed"]), (200, &serde_json::json!(true)), "{g}");
    let (exit2, log2) = srv.terminate();
    assert!(exit2 < Duration::from_secs(5));
    let resumed = log2
        .lines()
        .find(|l| l.contains("resuming note embedding"))
        .and_then(|l| number_after(l, "from"))
        .unwrap_or_else(|| panic!("no resume:\n{log2}"));
    assert_eq!(
        resumed, upto,
        "the restart goes on where the saved progress ends"
    );
    let embedded2: u64 = log2
        .lines()
        .filter(|l| l.contains("embedded notes"))
        .filter_map(|l| number_after(l, "notes"))
        .sum();
    let all = notes as u64 + 20;
    assert_eq!(
        upto + embedded2,
        all,
        "every note embedded once over both runs"
    );
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data.join("indexes/notes/notes-new.usearch.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["count"], all);
    assert_eq!(meta["seq"], all);

    let ratio = |busy: Duration, idle: Duration| busy.as_secs_f64() / idle.as_secs_f64();
    eprintln!(
        "notes catch-up: writes worst {worst_write:?}; search p99 {busy_terms:?} busy vs {idle_terms:?} idle ({:.2}×), note search p99 {busy_notes:?} vs {idle_notes:?} ({:.2}×); SIGTERM exit {exit:?} at {upto}/{notes}, restart exit {exit2:?}",
        ratio(busy_terms, idle_terms),
        ratio(busy_notes, idle_notes)
    );
    // 3× the idle p99, plus 5 ms for timer and scheduling noise on a shared 2-core machine
    let slack = Duration::from_millis(5);
    assert!(
        busy_terms <= idle_terms * 3 + slack,
        "search p99 {busy_terms:?} vs idle {idle_terms:?}"
    );
    assert!(
        busy_notes <= idle_notes * 3 + slack,
        "note search p99 {busy_notes:?} vs idle {idle_notes:?}"
    );
}

/// Multipart body of a UMLS ingest.
fn umls_upload(files: &[PathBuf], release: &str) -> (String, Vec<u8>) {
    common::ingest_upload("umls-rrf", release, files)
}

/// Texts the encoder embedded for `model` (cache misses) per the "embedded terms" log lines.
fn terms_embedded(log: &str, model: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("embedded terms") || l.contains("term embedding interrupted"))
        .filter(|l| l.contains(&format!("model={model}")))
        .filter_map(|l| number_after(l, "embedded"))
        .sum()
}

#[test]
fn ingest_embedding_phase_never_blocks_writes_reads_or_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let (data, models) = setup(dir.path(), 300, 50, 20);
    // a second, slow terms model (the default: trained): the next release is embedded by both
    slow_model(&models.join("terms-slow"), "terms");
    // this first start embeds the base release with it: let it finish, then measure idle
    let srv = Server::start(&data, &models, dir.path().join("run0.log"));
    srv.wait_caught_up(Duration::from_secs(120));
    let (idle_terms, _) = search_p99(&srv.url, 60);
    let syn = ontovec::ontology::synthetic::write_umls(&dir.path().join("umls2"), 3_000).unwrap();
    let (ct, body) = umls_upload(&syn.files, "second");
    let mut r = agent()
        .post(format!("{}/v1/ingest", srv.url))
        .header("content-type", ct)
        .send(&body[..])
        .unwrap();
    assert_eq!(r.status().as_u16(), 202);
    let job = r.body_mut().read_json::<serde_json::Value>().unwrap()["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    let t = Instant::now();
    let total = loop {
        if let Some((_, total, phase)) = srv.running("ingest") {
            if phase.starts_with("embedding") && phase.contains("terms-slow") {
                break total;
            }
        }
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "no embedding phase: {}",
            srv.log_text()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let (worst_write, _) = twenty_writes(&srv.url, "ing");
    let (busy_terms, _) = search_p99(&srv.url, 60);
    let (done, _, phase) = srv
        .running("ingest")
        .expect("still embedding: measured during the phase");
    assert!(
        phase.contains("terms-slow") && done < total,
        "{phase} {done}/{total}"
    );
    let (exit, log1) = srv.terminate();
    assert!(
        exit < Duration::from_secs(5),
        "SIGTERM → exit in {exit:?}\n{log1}"
    );
    let first = terms_embedded(&log1, "terms-slow");

    let srv = Server::start(&data, &models, dir.path().join("run2.log"));
    let (s, st) = get(&format!("{}/v1/jobs/{job}", srv.url));
    assert_eq!((s, st["state"].as_str()), (200, Some("succeeded")), "{st}");
    srv.wait_caught_up(Duration::from_secs(240));
    let (exit2, log2) = srv.terminate();
    assert!(exit2 < Duration::from_secs(5));
    let second = terms_embedded(&log2, "terms-slow");
    // the release's terms were embedded once across both runs (the cache kept the first's)
    let release_terms: u64 = log2
        .lines()
        .filter(|l| l.contains("embedded terms") && l.contains("model=terms-slow"))
        .filter_map(|l| number_after(l, "terms"))
        .sum();
    assert!(first > 0 && second > 0, "{first} then {second}");
    assert!(
        first + second <= release_terms,
        "{first} + {second} embedded for {release_terms} terms"
    );
    let meta: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data.join("indexes/vectors/terms-slow.usearch.json")).unwrap(),
    )
    .unwrap();
    let tiny: serde_json::Value = serde_json::from_slice(
        &std::fs::read(data.join("indexes/vectors/tiny.usearch.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["count"], tiny["count"], "both models index every term");
    eprintln!(
        "ingest embedding: writes worst {worst_write:?}; search p99 {busy_terms:?} busy vs {idle_terms:?} idle ({:.2}×); SIGTERM exit {exit:?} at {done}/{total}; embedded {first} + {second}",
        busy_terms.as_secs_f64() / idle_terms.as_secs_f64()
    );
    assert!(
        busy_terms <= idle_terms * 3 + Duration::from_millis(5),
        "search p99 {busy_terms:?} vs idle {idle_terms:?}"
    );
}

/// `ontovec reindex` with info logs (the test reads its progress lines).
fn reindex(data: &Path, models: &Path) -> Command {
    let mut c = common::server::cli(&["reindex"], data, models);
    c.env("ONTOVEC_LOG", "info,tantivy=warn,sled=warn");
    c
}

#[test]
fn reindex_stops_within_5_s_of_sigterm_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let notes = 300;
    let (data, models) = setup(dir.path(), 300, notes, 30);
    slow_model(&models.join("notes-new"), "notes");
    let log = dir.path().join("reindex1.log");
    let mut child = reindex(&data, &models)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    // SIGTERM once the catch-up has saved some progress (it saves every few seconds)
    let saved = data.join("indexes/notes/notes-new.usearch.json");
    let t = Instant::now();
    loop {
        let seq = std::fs::read(&saved)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|m| m["seq"].as_u64());
        if seq.is_some_and(|s| s > 0) {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(90) && child.try_wait().unwrap().is_none(),
            "no saved progress: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        child.try_wait().unwrap().is_none(),
        "reindex still runs when signalled"
    );
    let t = Instant::now();
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = child.wait().unwrap();
    let exit = t.elapsed();
    let log1 = std::fs::read_to_string(&log).unwrap();
    assert!(exit < Duration::from_secs(5), "exit after {exit:?}\n{log1}");
    assert!(!status.success() && log1.contains("interrupted"), "{log1}");
    let upto = log1
        .lines()
        .filter(|l| l.contains("embedded notes"))
        .find_map(|l| number_after(l, "upto"))
        .unwrap_or_else(|| panic!("{log1}"));
    assert!(upto > 0 && upto < notes as u64, "{upto}");
    let out = reindex(&data, &models).output().unwrap();
    let log2 = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log2}");
    let resumed = log2
        .lines()
        .find(|l| l.contains("resuming note embedding"))
        .and_then(|l| number_after(l, "from"));
    assert_eq!(resumed, Some(upto), "{log2}");
    let second: u64 = log2
        .lines()
        .filter(|l| l.contains("embedded notes"))
        .filter_map(|l| number_after(l, "notes"))
        .sum();
    assert_eq!(upto + second, notes as u64, "every note embedded once");
    eprintln!("reindex: SIGTERM exit {exit:?} at {upto}/{notes}; resumed and embedded {second}");
}
