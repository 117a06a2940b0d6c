//! In-process router tests (tower `oneshot`) for the service and ontology endpoints, plus one
//! real-socket test, and the OpenAPI drift check.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use ontovec::api::{router, AppState};
use ontovec::domain::model::Concept;
use ontovec::ontology::{self, Format, InputFile, LoadOptions, Sink};
use ontovec::service::app::{App, AppConfig};
use ontovec::store::writer::ReleaseWriter;
use serde_json::Value;
use std::sync::Arc;

mod common;

use common::{call, get, multipart};

/// A config without models (these tests cover the store and HTTP layers).
fn cfg(dir: &std::path::Path) -> AppConfig {
    common::config(dir, &dir.join("no-models"))
}

fn app_with_data() -> (tempfile::TempDir, Arc<App>) {
    let dir = tempfile::tempdir().unwrap();
    let app = App::open(cfg(dir.path())).unwrap();
    let mut w = common::icd10_release(&app);
    common::write_diabetes(&mut w);
    w.commit().unwrap();
    (dir, app)
}

#[tokio::test]
async fn health_is_up_before_ready() {
    let r = router(AppState::new(None));
    assert_eq!(call(&r, get("/health")).await.0, StatusCode::OK);
    let (s, v) = call(&r, get("/ready")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(v["error"]["code"], "not_ready");
    let (s, _) = call(&r, get("/v1/sources")).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn browse_concepts_hierarchy_and_mappings() {
    let (_d, app) = app_with_data();
    let r = router(AppState::with_app(app));
    assert_eq!(call(&r, get("/ready")).await.0, StatusCode::OK);
    let (s, v) = call(&r, get("/v1/systems/ICD10CM/concepts/E11.9")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        v["preferred_term"],
        "Type 2 diabetes mellitus without complications"
    );
    assert_eq!(v["parents"][0]["code"], "E11");
    assert_eq!(v["release"], "2026");
    let (_, v) = call(&r, get("/v1/systems/icd10cm/concepts/E11")).await;
    assert_eq!(v["children"][0]["code"], "E11.9");
    assert!(v["terms"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["kind"] == "inclusion"));
    let (_, v) = call(&r, get("/v1/systems/ICD10CM/concepts/E11.9/ancestors")).await;
    assert_eq!(v["concepts"][0]["code"], "E11");
    assert_eq!(v["concepts"][0]["depth"], 1);
    let (_, v) = call(&r, get("/v1/systems/ICD10CM/concepts/E11/descendants")).await;
    assert_eq!(v["concepts"][0]["code"], "E11.9");
    let (s, v) = call(
        &r,
        get("/v1/systems/ICD10CM/concepts/E11.9/mappings?target=PHECODE"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["mappings"][0]["code"], "250.2");
    assert_eq!(v["mappings"][0]["direction"], "forward");
    // the other way round, even though PHECODE itself is not loaded
    let (s, v) = call(&r, get("/v1/systems/PHECODE/concepts/250.2/mappings")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["mappings"][0]["code"], "E11.9");
    let (s, v) = call(&r, get("/v1/sources")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["sources"][0]["system"], "ICD10CM");
    assert_eq!(v["sources"][0]["concepts"], 2);
}

/// A store with the 7th-character ICD-10-CM fixture and the ICD-9-CM fixture loaded through
/// their loaders.
fn app_with_fixtures() -> (tempfile::TempDir, Arc<App>) {
    let dir = tempfile::tempdir().unwrap();
    let app = App::open(cfg(dir.path())).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ontologies");
    for (system, format, file) in [
        (
            "ICD10CM",
            Format::Icd10cmXml,
            "icd10cm/icd10cm-seventh-sample.xml",
        ),
        ("ICD9CM", Format::Icd9cmTxt, "icd9cm/CMS32_DESC_LONG_DX.txt"),
    ] {
        let mut w = ReleaseWriter::begin(&app.store, system, "t", format.name(), false).unwrap();
        let files = [InputFile::from_path(root.join(file))];
        ontology::load(format, &files, &LoadOptions::for_system(system), &mut w).unwrap();
        w.commit().unwrap();
    }
    (dir, app)
}

#[tokio::test]
async fn codes_resolve_as_users_type_them() {
    let (_d, app) = app_with_fixtures();
    let r = router(AppState::with_app(app));
    let concept = |code: &str| get(&format!("/v1/systems/ICD10CM/concepts/{code}"));
    let (s, v) = call(&r, concept("S00.00XA")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["parents"][0]["code"], "S00.00");
    assert!(v.get("requested_code").is_none(), "{v}");
    // Lower case, no dot, blanks, placeholders left out or doubled: the one code they can mean.
    for typed in ["s0000xa", "S0000XA", "S00.00A", "S00.00XXA", "s00.00%20xa"] {
        let (s, v) = call(&r, concept(typed)).await;
        assert_eq!(s, StatusCode::OK, "{typed}: {v}");
        assert_eq!(v["code"], "S00.00XA", "{typed}");
        assert_eq!(
            v["preferred_term"],
            "Unspecified superficial injury of scalp, initial encounter"
        );
        assert!(v["requested_code"].is_string(), "{typed}: {v}");
    }
    for (typed, code) in [
        ("T07A", "T07.XXXA"),
        ("S0600A", "S06.0X0A"),
        ("e113213", "E11.3213"),
    ] {
        let (s, v) = call(&r, concept(typed)).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::OK, Some(code)),
            "{typed}: {v}"
        );
    }
    // Traversals and mappings resolve the same way and say which code they answered for.
    let (s, v) = call(&r, get("/v1/systems/ICD10CM/concepts/s0000xa/ancestors")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        (v["code"].as_str(), v["requested_code"].as_str()),
        (Some("S00.00XA"), Some("s0000xa"))
    );
    assert_eq!(v["concepts"][0]["code"], "S00.00");
    let (s, v) = call(&r, get("/v1/systems/ICD10CM/concepts/t07/descendants")).await;
    assert_eq!(
        (s, v["concepts"].as_array().map(Vec::len)),
        (StatusCode::OK, Some(3)),
        "{v}"
    );
    let (s, v) = call(&r, get("/v1/systems/ICD10CM/concepts/t07xxxa/mappings")).await;
    assert_eq!(
        (s, v["code"].as_str()),
        (StatusCode::OK, Some("T07.XXXA")),
        "{v}"
    );
    // Wrong placeholders and codes that are not there: 404 in the error shape.
    for typed in [
        "S00.0XA",
        "S06.1X7D",
        "S0000XB",
        "E11.3214",
        "XYZ",
        "..",
        "S00.00XA-",
    ] {
        let (s, v) = call(&r, concept(typed)).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{typed}: {v}");
        assert_eq!(v["error"]["code"], "not_found", "{typed}");
    }
    // ICD-9-CM: dots and leading zeros.
    for (typed, code) in [
        ("25000", "250.00"),
        ("e8800", "E880.0"),
        ("41.3", "041.3"),
        ("v5867", "V58.67"),
    ] {
        let (s, v) = call(&r, get(&format!("/v1/systems/ICD9CM/concepts/{typed}"))).await;
        assert_eq!(
            (s, v["code"].as_str()),
            (StatusCode::OK, Some(code)),
            "{typed}: {v}"
        );
    }
}

#[tokio::test]
async fn ambiguous_codes_are_not_guessed() {
    let dir = tempfile::tempdir().unwrap();
    let app = App::open(cfg(dir.path())).unwrap();
    let mut w = ReleaseWriter::begin(&app.store, "ICD10CM", "t", "icd10cm-xml", false).unwrap();
    // Two codes the same characters can spell once the placeholders are left out.
    w.concept(Concept::new("Q12.3XXA", "one")).unwrap();
    w.concept(Concept::new("Q12.X3XA", "other")).unwrap();
    w.commit().unwrap();
    let r = router(AppState::with_app(app));
    let (s, v) = call(&r, get("/v1/systems/ICD10CM/concepts/Q123A")).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
    assert_eq!(v["error"]["code"], "not_found");
    let mut candidates: Vec<_> = v["error"]["details"]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect();
    candidates.sort();
    assert_eq!(candidates, vec!["Q12.3XXA", "Q12.X3XA"]);
    let (s, _) = call(&r, get("/v1/systems/ICD10CM/concepts/q12.3xxa")).await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn unknown_ids_and_bad_input_get_the_error_shape() {
    let (_d, app) = app_with_data();
    let r = router(AppState::with_app(app));
    let (s, v) = call(&r, get("/v1/systems/ICD10CM/concepts/Z99.99")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "not_found");
    let (s, v) = call(&r, get("/v1/systems/NOPE/concepts/X")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "unknown_system");
    let (s, v) = call(&r, get("/v1/jobs/doesnotexist")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert!(v["error"]["message"].is_string());
    let (s, v) = call(&r, get("/v1/no/such/endpoint")).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], "not_found");
    let long = "X".repeat(300);
    let (s, v) = call(&r, get(&format!("/v1/systems/ICD10CM/concepts/{long}"))).await;
    assert_eq!(s, StatusCode::NOT_FOUND, "no code is that long");
    assert_eq!(v["error"]["code"], "not_found");
    // ingest without multipart content type
    let req = Request::post("/v1/ingest")
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .unwrap();
    let (s, v) = call(&r, req).await;
    assert!(s.is_client_error(), "{s}");
    assert!(v["error"]["code"].is_string());
}

#[tokio::test]
async fn ingest_form_is_validated_and_auth_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = cfg(dir.path());
    c.auth_token = Some("s3cret".into());
    let app = App::open(c).unwrap();
    let r = router(AppState::with_app(app));
    let (ct, body) = multipart(&[("format", "obo"), ("release", "1")], &[("x.obo", b"")]);
    let req = Request::post("/v1/ingest")
        .header("content-type", &ct)
        .body(Body::from(body.clone()))
        .unwrap();
    let (s, v) = call(&r, req).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(v["error"]["code"], "unauthorized");
    let auth = |b: Vec<u8>, ct: &str| {
        Request::post("/v1/ingest")
            .header("content-type", ct)
            .header("authorization", "Bearer s3cret")
            .body(Body::from(b))
            .unwrap()
    };
    let (ct2, b2) = multipart(&[("format", "nope"), ("release", "1")], &[("x.obo", b"")]);
    let (s, v) = call(&r, auth(b2, &ct2)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unknown format"));
    let (ct3, b3) = multipart(
        &[("format", "obo"), ("release", "bad label!")],
        &[("x.obo", b"")],
    );
    assert_eq!(call(&r, auth(b3, &ct3)).await.0, StatusCode::BAD_REQUEST);
    let (ct4, b4) = multipart(&[("format", "obo"), ("release", "1")], &[]);
    assert_eq!(call(&r, auth(b4, &ct4)).await.0, StatusCode::BAD_REQUEST);
    let (ct5, b5) = multipart(&[("format", "obo"), ("release", "1"), ("evil", "x")], &[]);
    assert_eq!(call(&r, auth(b5, &ct5)).await.0, StatusCode::BAD_REQUEST);
    // The `system` pattern holds for note formats too, which ignore the field (found by the
    // contract run: an empty system was accepted with mimic-notes-csv).
    for bad in ["", "a b", "x".repeat(33).as_str(), "É"] {
        let (ct6, b6) = multipart(
            &[
                ("format", "mimic-notes-csv"),
                ("release", "1"),
                ("system", bad),
            ],
            &[("NOTEEVENTS.csv", b"")],
        );
        let (s, v) = call(&r, auth(b6, &ct6)).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "system {bad:?}: {v}");
    }
    // `release` is required for note formats too, as the schema says.
    let (ct7, b7) = multipart(&[("format", "notes-jsonl")], &[("notes.jsonl", b"")]);
    let (s, v) = call(&r, auth(b7, &ct7)).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("release"));
}

#[tokio::test]
async fn writes_are_open_without_a_token() {
    // As README starts the server: no --auth-token, no 401 (and the served document says so,
    // see served_document_matches_the_auth_configuration).
    let dir = tempfile::tempdir().unwrap();
    let r = router(AppState::with_app(App::open(cfg(dir.path())).unwrap()));
    let req = Request::post("/v1/notes")
        .header("content-type", "application/json")
        .body(Body::from(r#"{"id": "n1", "text": "chest pain"}"#))
        .unwrap();
    let (s, v) = call(&r, req).await;
    assert_eq!(s, StatusCode::CREATED, "{v}");
    let (ct, body) = multipart(&[("format", "obo"), ("release", "1")], &[("x.obo", b"")]);
    let req = Request::post("/v1/ingest")
        .header("content-type", &ct)
        .body(Body::from(body))
        .unwrap();
    let (s, v) = call(&r, req).await;
    assert_ne!(s, StatusCode::UNAUTHORIZED, "{v}");
}

#[test]
fn upload_names_cannot_traverse() {
    use ontovec::api::ingest::safe_file_name;
    assert_eq!(
        safe_file_name("../../etc/passwd").as_deref(),
        Some("passwd")
    );
    assert_eq!(
        safe_file_name("..\\..\\MRCONSO.RRF").as_deref(),
        Some("MRCONSO.RRF")
    );
    assert_eq!(safe_file_name("..").as_deref(), None);
    assert_eq!(safe_file_name("/").as_deref(), None);
    assert_eq!(safe_file_name("a b$c.csv").as_deref(), Some("abc.csv"));
}

#[test]
fn openapi_operation_ids_are_unique() {
    // Generators key clients by operationId: a duplicate silently merges two endpoints.
    let doc: Value =
        serde_json::to_value(<ontovec::api::openapi::ApiDoc as utoipa::OpenApi>::openapi())
            .unwrap();
    let mut seen = std::collections::BTreeMap::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if let Some(id) = op["operationId"].as_str() {
                if let Some(prev) = seen.insert(id.to_string(), format!("{method} {path}")) {
                    panic!("operationId {id} used by {prev} and {method} {path}");
                }
            }
        }
    }
    assert!(seen.len() >= 16);
}

#[tokio::test]
async fn served_document_matches_the_auth_configuration() {
    // With a token the writes declare bearer auth and may answer 401 (the committed
    // openapi.yaml); without one a generated client must not be told to authenticate.
    let writes = [("/v1/ingest", "post"), ("/v1/notes", "post")];
    for (token, secured) in [(Some("s3cret".to_string()), true), (None, false)] {
        let r = router(AppState::new(token));
        let (s, doc) = call(&r, get("/openapi.json")).await;
        assert_eq!(s, StatusCode::OK);
        for (path, method) in writes {
            let op = &doc["paths"][path][method];
            assert!(op.is_object(), "{path}");
            assert_eq!(op["security"].is_array(), secured, "{path}: {op}");
            assert_eq!(op["responses"]["401"].is_object(), secured, "{path}");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["bearer"].is_object(),
            secured
        );
        // Reads never need the token.
        assert!(doc["paths"]["/v1/search"]["post"]["security"].is_null());
    }
    let committed: Value = serde_json::to_value(ontovec::api::openapi::document(true)).unwrap();
    let yaml = ontovec::api::openapi::yaml();
    assert!(
        yaml.contains("securitySchemes"),
        "openapi.yaml is the token variant"
    );
    assert!(committed["paths"]["/v1/ingest"]["post"]["security"].is_array());
}

#[test]
fn openapi_yaml_matches_the_code() {
    let committed = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.yaml"))
        .expect("openapi.yaml at the repo root");
    let generated = ontovec::api::openapi::yaml();
    assert!(
        committed == generated,
        "openapi.yaml is stale: run `cargo run -- openapi > openapi.yaml`"
    );
}

#[tokio::test]
async fn real_socket_serves_health_and_docs() {
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ontovec::api::server::serve_listener(
        cfg(dir.path()),
        listener,
        async move {
            let _ = rx.await;
        },
    ));
    let client = reqwest::Client::new();
    let base = format!("http://{addr}");
    let mut ready = false;
    for _ in 0..100 {
        if let Ok(r) = client.get(format!("{base}/ready")).send().await {
            if r.status() == 200 {
                ready = true;
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(ready, "server became ready");
    let r = client
        .get(format!("{base}/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let spec: Value = r.json().await.unwrap();
    assert!(spec["paths"]["/v1/sources"].is_object());
    let r = client.get(format!("{base}/docs/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let r = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("ontovec_http_requests_total"));
    let id = client.get(format!("{base}/health")).send().await.unwrap();
    assert!(id.headers().contains_key("x-request-id"));
    tx.send(()).unwrap();
    server.await.unwrap().unwrap();
}
