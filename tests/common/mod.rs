//! Helpers the integration tests share: fixture paths, an [`App`] over a temporary data
//! directory, ingest requests, a small ICD-10-CM release, in-process HTTP calls (tower
//! `oneshot`) and multipart bodies. [`server`] runs the real binary on a free port.
#![allow(dead_code)] // every test binary compiles this module and uses a part of it

pub mod server;

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use ontovec::domain::model::{Concept, ConceptRef, Mapping, Relation, Term, TermKind};
use ontovec::ontology::{Format, InputFile, Sink};
use ontovec::service::app::{App, AppConfig};
use ontovec::service::ingest::IngestRequest;
use ontovec::store::writer::ReleaseWriter;
use ontovec::util::progress::Progress;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tower::ServiceExt;

/// The repository root (fixtures live in `ontologies/`).
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A models folder under `dir` holding only a tiny random BERT named `tiny` (fast embedding).
pub fn tiny_models(dir: &Path) -> PathBuf {
    let models = dir.join("models");
    ontovec::encoder::testing::write_tiny_bert(
        &models.join("tiny"),
        &ontovec::encoder::testing::TinyBert::default(),
    )
    .unwrap();
    models
}

/// A models folder under `tmp` holding the real all-MiniLM-L6-v2 (symlinked) when it is
/// present, else a tiny random BERT; the flag says which (tests comparing backends or nodes
/// with each other run on either, quality assertions only on the real one).
pub fn models(tmp: &Path) -> (PathBuf, bool) {
    let real = root().join("models/all-MiniLM-L6-v2");
    let dir = tmp.join("models");
    std::fs::create_dir_all(&dir).unwrap();
    if real.join("model.safetensors").is_file() {
        std::os::unix::fs::symlink(&real, dir.join("all-MiniLM-L6-v2")).unwrap();
        (dir, true)
    } else {
        eprintln!("NOTE: models/all-MiniLM-L6-v2 absent; tiny random model: results compared, quality not checked");
        ontovec::encoder::testing::write_tiny_bert(
            &dir.join("tiny"),
            &ontovec::encoder::testing::TinyBert::default(),
        )
        .unwrap();
        (dir, false)
    }
}

/// An ingest of `files` as release `fixture`, all defaults otherwise.
pub fn ingest_request(format: Format, files: &[PathBuf]) -> IngestRequest {
    IngestRequest {
        format,
        release: "fixture".into(),
        system: None,
        files: files.iter().map(InputFile::from_path).collect(),
        replace: false,
        hold_out: None,
    }
}

/// A configuration over `data` whose models come from `models` (a missing folder: no models).
pub fn config(data: &Path, models: &Path) -> AppConfig {
    let mut c = AppConfig::new(data);
    c.models_dir = models.to_path_buf();
    c
}

/// Open an app over `data` with the models in `models`.
pub fn open_app(data: &Path, models: &Path) -> Arc<App> {
    App::open(config(data, models)).unwrap()
}

/// Ingest the fixture files `rel` (paths below the repository root) as release `fixture`.
pub fn load(app: &App, format: Format, rel: &[&str]) {
    let files: Vec<PathBuf> = rel.iter().map(|r| root().join(r)).collect();
    app.ingest(&ingest_request(format, &files), Progress::new())
        .unwrap();
}

/// Ingest the ICD-10-CM, HPO and PheCODE fixtures as release `fixture` (what the vector
/// backend and replica suites search).
pub fn load_search_fixtures(app: &App) {
    for (format, system, file) in [
        (
            Format::Icd10cmXml,
            None,
            "icd10cm/icd10cm-tabular-sample.xml",
        ),
        (Format::Obo, Some("HPO"), "obo/hpo-sample.obo"),
        (
            Format::PhecodeCsv,
            None,
            "phecode/phecode_definitions1.2.csv",
        ),
    ] {
        let mut req = ingest_request(format, &[root().join("ontologies").join(file)]);
        req.system = system.map(str::to_string);
        app.ingest(&req, Progress::new()).unwrap();
    }
}

/// Write the small diabetes release most HTTP tests read: E11 (with an inclusion term), E11.9
/// under it, and E11.9 mapped to PheCODE 250.2. The caller may add concepts, then commits.
pub fn write_diabetes(w: &mut ReleaseWriter) {
    let mut e11 = Concept::new("E11", "Type 2 diabetes mellitus");
    e11.add_term(Term::new("diabetes mellitus type II", TermKind::Inclusion));
    w.concept(e11).unwrap();
    w.concept(Concept::new(
        "E11.9",
        "Type 2 diabetes mellitus without complications",
    ))
    .unwrap();
    w.relation(Relation {
        from: "E11.9".into(),
        rel: "is_a".into(),
        to: "E11".into(),
    })
    .unwrap();
    w.mapping(Mapping {
        from: ConceptRef::new("ICD10CM", "E11.9"),
        to: ConceptRef::new("PHECODE", "250.2"),
        relation: "maps_to".into(),
        source: "phecode map".into(),
    })
    .unwrap();
}

/// Begin the ICD-10-CM release `2026` that [`write_diabetes`] fills.
pub fn icd10_release(app: &App) -> ReleaseWriter {
    ReleaseWriter::begin(&app.store, "ICD10CM", "2026", "icd10cm-xml", false).unwrap()
}

/// Send `req` through the router; status, headers and the body as JSON (`Null` if it is not).
pub async fn send(app: &axum::Router, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
    let resp = app.clone().oneshot(req).await.unwrap();
    let (status, headers) = (resp.status(), resp.headers().clone());
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// [`send`] without the headers.
pub async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let (status, _, v) = send(app, req).await;
    (status, v)
}

/// A `method` request to `uri`, with `body` as JSON when there is one.
pub fn request(method: &str, uri: &str, body: Option<&Value>) -> Request<Body> {
    let b = Request::builder().method(method).uri(uri);
    match body {
        Some(v) => b
            .header("content-type", "application/json")
            .body(Body::from(v.to_string())),
        None => b.body(Body::empty()),
    }
    .unwrap()
}

/// A GET request.
pub fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

/// A POST of JSON.
pub fn post_json(uri: &str, v: &Value) -> Request<Body> {
    Request::post(uri)
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .unwrap()
}

/// A `multipart/form-data` body with text `fields` and `files` (all in the field `file`);
/// returns the content type and the body.
pub fn multipart(fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "XBOUNDARYx42";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    for (name, data) in files {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// [`multipart`] of an ingest: `format`, `release` and the files read from disk.
pub fn ingest_upload(format: &str, release: &str, files: &[PathBuf]) -> (String, Vec<u8>) {
    let contents: Vec<(String, Vec<u8>)> = files
        .iter()
        .map(|f| {
            let name = f.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(f).unwrap())
        })
        .collect();
    let parts: Vec<(&str, &[u8])> = contents
        .iter()
        .map(|(n, b)| (n.as_str(), b.as_slice()))
        .collect();
    multipart(&[("format", format), ("release", release)], &parts)
}
