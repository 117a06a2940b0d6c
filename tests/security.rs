//! Security and limits at the HTTP layer (in-process router, `oneshot`): path traversal through
//! every path parameter, model name and upload file name; the staged-upload cap; bearer-token
//! details; CORS; the per-request deadline; the encoder admission limit (429).

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use ontovec::api::{router, AppState};
use ontovec::domain::model::{Concept, Term, TermKind};
use ontovec::ontology::Sink;
use ontovec::service::app::{App, AppConfig};
use ontovec::store::writer::ReleaseWriter;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

fn cfg(dir: &Path) -> AppConfig {
    common::config(&dir.join("data"), &dir.join("no-models"))
}

fn open(c: AppConfig) -> Arc<App> {
    let app = App::open(c).unwrap();
    let mut w = ReleaseWriter::begin(&app.store, "ICD10CM", "2026", "icd10cm-xml", false).unwrap();
    let mut e11 = Concept::new("E11.9", "Type 2 diabetes mellitus without complications");
    e11.add_term(Term::new("diabetes type 2", TermKind::Synonym));
    w.concept(e11).unwrap();
    w.commit().unwrap();
    app.sync_indexes(None).unwrap();
    app
}

mod common;

use common::{get, send};

fn post_json(uri: &str, v: Value) -> Request<Body> {
    common::post_json(uri, &v)
}

fn multipart(fields: &[(&str, &str)], files: &[(&str, Vec<u8>)]) -> (String, Vec<u8>) {
    let parts: Vec<(&str, &[u8])> = files.iter().map(|(n, b)| (*n, b.as_slice())).collect();
    common::multipart(fields, &parts)
}

/// Every file below `root`, relative.
fn files_under(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

const TRAVERSALS: &[&str] = &[
    "..",
    "../..",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2E%2E%2F%2E%2E%2Fstore",
    "..%5C..%5Cstore",
    "%2Fetc%2Fpasswd",
    "....%2F%2F....%2F%2Fetc",
    "%00",
    "store%00.json",
    "..%252F..%252Fetc",
];

#[tokio::test]
async fn path_parameters_and_model_names_cannot_traverse() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(cfg(dir.path()));
    let r = router(AppState::with_app(app.clone()));
    let before = files_under(dir.path());
    for t in TRAVERSALS {
        for uri in [
            format!("/v1/systems/{t}/concepts/E11.9"),
            format!("/v1/systems/ICD10CM/concepts/{t}"),
            format!("/v1/systems/{t}/concepts/{t}/ancestors"),
            format!("/v1/systems/ICD10CM/concepts/{t}/descendants"),
            format!("/v1/systems/ICD10CM/concepts/E11.9/mappings?target={t}"),
            format!("/v1/jobs/{t}"),
            format!("/docs/{t}"),
            format!("/{t}/openapi.json"),
        ] {
            let (s, _, v) = send(&r, get(&uri)).await;
            // Never a file's content, never a 5xx: a 404/400 in the error shape, or (docs,
            // mappings of a real concept filtered by a nonsense system) an empty, normal answer.
            assert!(s.as_u16() < 500, "{uri}: {s}");
            if s != StatusCode::OK {
                assert!(
                    v["error"]["code"].is_string() || uri.starts_with("/docs"),
                    "{uri}: {v}"
                );
            } else {
                assert!(
                    v["mappings"] == json!([]) || uri.starts_with("/docs"),
                    "{uri}: {v}"
                );
            }
        }
        let raw = t.replace("%2F", "/").replace("%2E", ".");
        for (uri, body) in [
            ("/v1/search", json!({"query": "diabetes", "model": raw})),
            ("/v1/embed", json!({"texts": ["x"], "model": raw})),
            (
                "/v1/similar",
                json!({"system": raw, "code": raw, "model": raw}),
            ),
            (
                "/v1/relatedness",
                json!({"pairs": [{"a": {"system": raw, "code": raw}, "b": {"text": "x"}}]}),
            ),
        ] {
            let (s, _, v) = send(&r, post_json(uri, body)).await;
            assert!(
                s == StatusCode::NOT_FOUND || s == StatusCode::BAD_REQUEST,
                "{uri} {raw}: {s} {v}"
            );
            assert!(v["error"]["code"].is_string());
        }
    }
    assert_eq!(
        before,
        files_under(dir.path()),
        "no file appeared or vanished"
    );
}

#[tokio::test]
async fn upload_file_names_stay_in_the_staging_directory() {
    let dir = tempfile::tempdir().unwrap();
    let app = open(cfg(dir.path()));
    let r = router(AppState::with_app(app.clone()));
    let obo = b"format-version: 1.2\nontology: evil\n\n[Term]\nid: EV:1\nname: thing\n".to_vec();
    for (i, name) in [
        "../../../escaped.obo",
        "..\\..\\escaped.obo",
        "/tmp/escaped.obo",
        "....//....//escaped.obo",
        "%2e%2e%2fescaped.obo",
        "escaped.obo\u{0}.txt",
        ".hidden",
    ]
    .iter()
    .enumerate()
    {
        let (ct, body) = multipart(
            &[
                ("format", "obo"),
                ("release", &format!("r{i}")),
                ("system", "EVIL"),
            ],
            &[(name, obo.clone())],
        );
        let req = Request::post("/v1/ingest")
            .header("content-type", ct)
            .body(Body::from(body))
            .unwrap();
        let (s, _, v) = send(&r, req).await;
        assert!(
            s == StatusCode::ACCEPTED || s == StatusCode::BAD_REQUEST,
            "{name}: {s} {v}"
        );
        if s == StatusCode::ACCEPTED {
            let id = v["job_id"].as_str().unwrap().to_string();
            for _ in 0..200 {
                let (_, _, j) = send(&r, get(&format!("/v1/jobs/{id}"))).await;
                if j["state"] == "succeeded" || j["state"] == "failed" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    let parent = dir.path().parent().unwrap();
    let escaped: Vec<_> = files_under(parent)
        .into_iter()
        .filter(|f| f.contains("escaped"))
        .collect();
    assert!(
        escaped.is_empty(),
        "files escaped the staging area: {escaped:?}"
    );
    assert!(!Path::new("/tmp/escaped.obo").exists());
    assert!(
        files_under(&dir.path().join("data/uploads")).is_empty(),
        "staged uploads are removed when their jobs end"
    );
}

#[tokio::test]
async fn staged_uploads_are_capped_and_released() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.max_staged_bytes = 4096;
    let app = open(c);
    let state = AppState::with_app(app.clone());
    let r = router(state);
    let big = vec![b'x'; 10_000];
    let (ct, body) = multipart(
        &[("format", "obo"), ("release", "big"), ("system", "BIG")],
        &[("big.obo", big)],
    );
    let req = Request::post("/v1/ingest")
        .header("content-type", ct)
        .body(Body::from(body))
        .unwrap();
    let (s, h, v) = send(&r, req).await;
    assert_eq!(s, StatusCode::INSUFFICIENT_STORAGE, "{v}");
    assert_eq!(v["error"]["code"], "insufficient_storage");
    assert!(h.contains_key("retry-after"));
    assert!(files_under(&dir.path().join("data/uploads")).is_empty());
    // The budget came back: a small upload fits again.
    let small = b"format-version: 1.2\n\n[Term]\nid: S:1\nname: small\n".to_vec();
    let (ct, body) = multipart(
        &[("format", "obo"), ("release", "small"), ("system", "SMALL")],
        &[("small.obo", small)],
    );
    let req = Request::post("/v1/ingest")
        .header("content-type", ct)
        .body(Body::from(body))
        .unwrap();
    let (s, _, v) = send(&r, req).await;
    assert_eq!(s, StatusCode::ACCEPTED, "{v}");
}

#[tokio::test]
async fn bearer_token_scheme_and_header() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.auth_token = Some("t0ken".into());
    let r = router(AppState::with_app(open(c)));
    let (ct, body) = multipart(
        &[("format", "nope"), ("release", "1")],
        &[("x.obo", vec![])],
    );
    for (auth, want) in [
        (None, StatusCode::UNAUTHORIZED),
        (Some("Bearer wrong"), StatusCode::UNAUTHORIZED),
        (Some("Bearer t0ken0"), StatusCode::UNAUTHORIZED),
        (Some("Basic dDBrZW4="), StatusCode::UNAUTHORIZED),
        (Some("t0ken"), StatusCode::UNAUTHORIZED),
        // right token: the form is then validated (bad format: 400)
        (Some("Bearer t0ken"), StatusCode::BAD_REQUEST),
        (Some("bearer t0ken"), StatusCode::BAD_REQUEST),
    ] {
        let mut req = Request::post("/v1/ingest").header("content-type", &ct);
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let (s, h, v) = send(&r, req.body(Body::from(body.clone())).unwrap()).await;
        assert_eq!(s, want, "{auth:?}: {v}");
        if s == StatusCode::UNAUTHORIZED {
            assert_eq!(v["error"]["code"], "unauthorized");
            assert!(h.contains_key("www-authenticate"));
        }
    }
    // reads stay open
    let (s, _, _) = send(&r, get("/v1/sources")).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn cors_is_off_by_default_and_configurable() {
    let dir = tempfile::tempdir().unwrap();
    let preflight = |origin: &str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/v1/search")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .body(Body::empty())
            .unwrap()
    };
    let r = router(AppState::with_app(open(cfg(dir.path()))));
    let (_, h, _) = send(&r, preflight("https://app.example.org")).await;
    assert!(!h.contains_key("access-control-allow-origin"));

    let dir2 = tempfile::tempdir().unwrap();
    let mut c = cfg(dir2.path());
    c.cors_origins = vec!["https://app.example.org".into()];
    let r = router(AppState::with_app(open(c)));
    let (s, h, _) = send(&r, preflight("https://app.example.org")).await;
    assert!(s.is_success(), "{s}");
    assert_eq!(
        h["access-control-allow-origin"], "https://app.example.org",
        "allowed origin"
    );
    assert!(h["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("POST"));
    let (_, h, _) = send(&r, preflight("https://evil.example.com")).await;
    assert!(!h.contains_key("access-control-allow-origin"));
    // a simple request carries the header and exposes the request id
    let req = Request::get("/v1/sources")
        .header("origin", "https://app.example.org")
        .body(Body::empty())
        .unwrap();
    let (_, h, _) = send(&r, req).await;
    assert_eq!(h["access-control-allow-origin"], "https://app.example.org");
    assert!(h["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .contains("x-request-id"));

    assert!(ontovec::api::cors_layer(&["ftp://x".into()]).is_err());
    assert!(ontovec::api::cors_layer(&["*".into()]).unwrap().is_some());
    assert!(ontovec::api::cors_layer(&[]).unwrap().is_none());
}

#[tokio::test]
async fn requests_past_their_deadline_get_503() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    // 1024 lexical searches on the blocking pool take far longer than a millisecond.
    c.request_timeout = Duration::from_millis(1);
    let r = router(AppState::with_app(open(c)));
    let mentions: Vec<String> = (0..1024).map(|i| format!("diabetes type {i}")).collect();
    let (s, h, v) = send(
        &r,
        post_json(
            "/v1/normalize",
            json!({"mentions": mentions, "mode": "lexical"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{v}");
    assert_eq!(v["error"]["code"], "deadline_exceeded");
    assert!(h.contains_key("retry-after"));
    // answers that need no waiting still come back
    assert_eq!(send(&r, get("/health")).await.0, StatusCode::OK);
}

#[tokio::test]
async fn encoder_admission_answers_429_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.models_dir = dir.path().join("models");
    ontovec::encoder::testing::write_tiny_bert(
        &c.models_dir.join("tiny"),
        &ontovec::encoder::testing::TinyBert::default(),
    )
    .unwrap();
    c.max_inflight_texts = 4;
    let app = open(c);
    let gate = app.search.as_ref().unwrap().registry().admission().clone();
    let r = router(AppState::with_app(app.clone()));
    // Another caller (a CLI command, another request) holds the whole allowance: a batch is
    // refused, a single query still gets in through the small requests' reserve.
    // (a request of 5 texts: one of at most 4 would take the reserve first)
    let held = gate.try_admit(5).unwrap();
    assert_eq!(gate.in_flight(), 4, "clamped to the allowance");
    let texts: Vec<String> = (0..5).map(|i| format!("text {i}")).collect();
    let (s, _, v) = send(&r, post_json("/v1/embed", json!({"texts": texts}))).await;
    assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{v}");
    let (s, _, v) = send(&r, post_json("/v1/search", json!({"query": "diabetes"}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // ... until other small requests hold the reserve too
    let reserve: Vec<_> = (0..gate.reserved())
        .map(|_| gate.try_admit(1).unwrap())
        .collect();
    for (uri, body) in [
        ("/v1/embed", json!({"texts": ["diabetes"]})),
        ("/v1/search", json!({"query": "diabetes"})),
        (
            "/v1/normalize",
            json!({"mentions": ["diabetes", "diabetes"]}),
        ),
        (
            "/v1/relatedness",
            json!({"pairs": [{"a": {"text": "diabetes"}, "b": {"text": "seizure"}}]}),
        ),
        ("/v1/notes/search", json!({"query": "diabetes"})),
        ("/v1/notes/code", json!({"text": "diabetes"})),
    ] {
        let (s, h, v) = send(&r, post_json(uri, body)).await;
        assert_eq!(s, StatusCode::TOO_MANY_REQUESTS, "{uri}: {v}");
        assert_eq!(v["error"]["code"], "overloaded", "{uri}");
        assert_eq!(h.get("retry-after").unwrap(), "1", "{uri}");
    }
    // Work that needs no encoder is not gated.
    let (s, _, v) = send(
        &r,
        post_json(
            "/v1/search",
            json!({"query": "diabetes", "mode": "lexical"}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    drop((held, reserve));
    assert_eq!(gate.in_flight(), 0);
    let (s, _, v) = send(&r, post_json("/v1/embed", json!({"texts": ["diabetes"]}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // A request larger than the allowance still runs when nothing else waits.
    let texts: Vec<String> = (0..10).map(|i| format!("text {i}")).collect();
    let (s, _, v) = send(&r, post_json("/v1/embed", json!({"texts": texts}))).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        gate.in_flight(),
        0,
        "permits go back when the vectors are back"
    );
}

#[tokio::test]
async fn metrics_export_encoder_histograms() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.models_dir = dir.path().join("models");
    ontovec::encoder::testing::write_tiny_bert(
        &c.models_dir.join("tiny"),
        &ontovec::encoder::testing::TinyBert::default(),
    )
    .unwrap();
    let r = router(AppState::with_app(open(c)));
    let (s, _, v) = send(
        &r,
        post_json(
            "/v1/embed",
            json!({"texts": ["diabetes", "heart attack", "seizure"]}),
        ),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let resp = r.clone().oneshot(get("/metrics")).await.unwrap();
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    for want in [
        "ontovec_encoder_queue_wait_seconds_bucket{model=\"tiny\"",
        "ontovec_encoder_inference_seconds_bucket{model=\"tiny\"",
        "ontovec_encoder_batch_size_bucket{model=\"tiny\",le=\"4\"}",
        "ontovec_encoder_batch_tokens_bucket{model=\"tiny\",le=\"16384\"}",
        "ontovec_encoder_queue_depth{model=\"tiny\"} 0",
        "ontovec_encoder_admitted_texts 0",
    ] {
        assert!(text.contains(want), "/metrics lacks {want}:\n{text}");
    }
}
