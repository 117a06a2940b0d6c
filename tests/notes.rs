//! Notes end to end on the MIMIC-III-layout fixture (`ontologies/notes/mimic/`): ingest through
//! the same code path as the CLI and HTTP, the note endpoints, all-or-nothing loads with
//! file:line errors, then NoteContrast training on the fixture with a tiny model and coding with
//! the trained model served from `models/`.

use axum::http::StatusCode;
use ontovec::api::{router, AppState};
use ontovec::ontology::Format;
use ontovec::service::app::App;
use ontovec::util::progress::Progress;
use serde_json::{json, Value};
use std::path::PathBuf;

mod common;

use common::{ingest_request as req, open_app as open, root};

/// Load the ICD-9-CM fixture (the notes fixture's codes).
fn load_icd9(app: &App) {
    common::load(
        app,
        Format::Icd9cmCsv,
        &["ontologies/icd9cm/icd9dx2015.csv"],
    );
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    common::call(app, common::request(method, uri, body.as_ref())).await
}

fn mimic_files() -> Vec<PathBuf> {
    let d = root().join("ontologies/notes/mimic");
    vec![d.join("NOTEEVENTS.csv"), d.join("DIAGNOSES_ICD.csv")]
}

#[tokio::test]
async fn malformed_notes_fail_with_location_and_leave_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let app = open(&tmp.path().join("data"), &tmp.path().join("none"));
    let f = tmp.path().join("bad.jsonl");
    std::fs::write(
        &f,
        "{\"id\":\"a\",\"text\":\"ok\",\"codes\":[{\"system\":\"ICD9CM\",\"code\":\"4019\"}]}\n\n{\"id\":\"b\",\"text\":\"\"}\n",
    )
    .unwrap();
    let e = app
        .ingest_notes(
            &req(Format::NotesJsonl, std::slice::from_ref(&f)),
            Progress::new(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("bad.jsonl:3:"), "{e}");
    assert!(app.notes.store.is_empty());
    std::fs::write(
        &f,
        "{\"id\":\"a\",\"text\":\"x\"}\n{\"id\":\"a\",\"text\":\"y\"}\n",
    )
    .unwrap();
    let e = app
        .ingest_notes(
            &req(Format::NotesJsonl, std::slice::from_ref(&f)),
            Progress::new(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("bad.jsonl:2:") && e.contains("twice"), "{e}");
    assert!(app.notes.store.is_empty());
    std::fs::write(&f, "{\"id\":\"a\",\"text\":\"first note\"}\n").unwrap();
    app.ingest_notes(&req(Format::NotesJsonl, &[f]), Progress::new())
        .unwrap();
    assert_eq!(app.notes.store.len(), 1);
}

/// The note endpoints check exactly what their OpenAPI schemas state (the contract test,
/// scripts/contract.sh, fuzzes the same rules against a live server).
#[tokio::test]
async fn note_requests_are_checked_as_their_schemas_say() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    ontovec::encoder::testing::write_tiny_bert(&models.join("tiny"), &Default::default()).unwrap();
    let app = open(&tmp.path().join("data"), &models);
    load_icd9(&app);
    let api = router(AppState::with_app(app.clone()));
    let post = |uri: &'static str, body: Value| {
        let api = api.clone();
        async move { call(&api, "POST", uri, Some(body)).await.0 }
    };
    let (ok, bad) = (StatusCode::CREATED, StatusCode::BAD_REQUEST);
    // text: not only white space (U+001C counts as space), 4 Mi characters, 4 MiB of UTF-8
    assert_eq!(
        post("/v1/notes", json!({"text": "\u{1c} \u{3000}"})).await,
        bad
    );
    assert_eq!(
        post("/v1/notes", json!({"text": "x".repeat(4_194_305)})).await,
        bad
    );
    assert_eq!(
        post("/v1/notes", json!({"text": "é".repeat(2_100_000)})).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // ids: 1-256 characters (not bytes), no control characters
    let long_id = "é".repeat(256);
    assert_eq!(
        post("/v1/notes", json!({"id": long_id, "text": "a"})).await,
        ok
    );
    assert_eq!(
        call(
            &api,
            "GET",
            &format!("/v1/notes/{}", "%C3%A9".repeat(256)),
            None
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        post("/v1/notes", json!({"id": "é".repeat(257), "text": "a"})).await,
        bad
    );
    assert_eq!(
        post("/v1/notes", json!({"id": "a\u{85}", "text": "a"})).await,
        bad
    );
    assert_eq!(
        call(&api, "GET", &format!("/v1/notes/{}", "a".repeat(257)), None)
            .await
            .0,
        StatusCode::NOT_FOUND
    );
    // codes: system 1-32 of [A-Za-z0-9_-] as given; code 1-64 characters, not blank
    let code = |system: &str, code: &str| json!({"text": "a", "codes": [{"system": system, "code": code}]});
    assert_eq!(post("/v1/notes", code("icd9cm", &"é".repeat(64))).await, ok);
    assert_eq!(post("/v1/notes", code(" ICD9CM", "4019")).await, bad);
    assert_eq!(
        post(
            "/v1/notes",
            code("ICD9CM", &format!("4019{}", " ".repeat(61)))
        )
        .await,
        bad
    );
    assert_eq!(post("/v1/notes", code("ICD9CM", " \u{2003}")).await, bad);
    assert_eq!(
        post(
            "/v1/notes",
            json!({"text": "a", "codes": [{"system": "X", "code": "1", "extra": 1}]})
        )
        .await,
        bad
    );
    assert_eq!(
        post("/v1/notes", json!({"text": "a", "meta": null})).await,
        ok
    );
    assert_eq!(
        post("/v1/notes", json!({"text": "a", "meta": "x"})).await,
        bad
    );
    // search: no `exact` mode, `k` may be written 5.0, the query follows /v1/search's rules
    let search = |body: Value| post("/v1/notes/search", body);
    assert_eq!(
        search(json!({"query": "a", "k": 5.0, "mode": "lexical"})).await,
        StatusCode::OK
    );
    assert_eq!(search(json!({"query": "a", "mode": "exact"})).await, bad);
    assert_eq!(search(json!({"query": "\u{3000}"})).await, bad);
    assert_eq!(
        search(json!({"query": "é".repeat(4096), "mode": "lexical"})).await,
        StatusCode::OK
    );
    assert_eq!(search(json!({"query": "é".repeat(4097)})).await, bad);
    // coding: systems by their exact names; one that is not loaded is a 404
    let code_req = |body: Value| post("/v1/notes/code", body);
    assert_eq!(
        code_req(json!({"text": "heart failure", "k": 3.0, "system": "ICD9CM"})).await,
        StatusCode::OK
    );
    assert_eq!(
        code_req(json!({"text": "heart failure", "system": "icd9cm"})).await,
        bad
    );
    assert_eq!(
        code_req(json!({"text": "heart failure", "system": "ICD10CM"})).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(code_req(json!({"text": "x", "k": 1001})).await, bad);
}

#[tokio::test]
async fn mimic_fixture_ingest_api_train_and_code() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    let base = models.join("tiny");
    ontovec::encoder::testing::write_tiny_bert(&base, &Default::default()).unwrap();
    let data = tmp.path().join("data");
    let app = open(&data, &models);
    load_icd9(&app);
    let r = app
        .ingest_notes(&req(Format::MimicNotesCsv, &mimic_files()), Progress::new())
        .unwrap();
    assert_eq!(r.notes, 33, "32 discharge summaries + 1 without admission");
    assert!(
        r.warnings.iter().any(|w| w.contains("ISERROR")),
        "{:?}",
        r.warnings
    );
    let r2 = app.ingest_notes(&req(Format::MimicNotesCsv, &mimic_files()), Progress::new());
    assert!(r2.unwrap_err().to_string().contains("already exists"));

    let api = router(AppState::with_app(app.clone()));
    let (s, v) = call(&api, "GET", "/v1/notes/100", None).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let codes: Vec<&str> = v["codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["486", "414.01", "428.0"],
        "ICD-9 dots restored, SEQ_NUM order"
    );
    assert_eq!(v["meta"]["patient"], "1000");
    assert_eq!(
        call(&api, "GET", "/v1/notes/nope", None).await.0,
        StatusCode::NOT_FOUND
    );
    let (s, v) = call(
        &api,
        "POST",
        "/v1/notes/search",
        Some(json!({"query": "pacemaker", "k": 3, "mode": "lexical"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let hits = v["results"].as_array().unwrap();
    assert!(
        !hits.is_empty()
            && hits[0]["snippet"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains("pacemaker"),
        "{v}"
    );
    let (s, _) = call(
        &api,
        "POST",
        "/v1/notes/search",
        Some(json!({"query": "pacemaker", "k": 3})),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = call(&api, "POST", "/v1/notes", Some(json!({"id": "n1", "text": "CHF exacerbation", "codes": [{"system": "icd9cm", "code": "4280"}]}))).await;
    assert_eq!((s, v["id"].as_str()), (StatusCode::CREATED, Some("n1")));
    let (s, v) = call(
        &api,
        "POST",
        "/v1/notes",
        Some(json!({"id": "n1", "text": "again"})),
    )
    .await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::CONFLICT, Some("note_exists"))
    );
    let (s, v) = call(&api, "POST", "/v1/notes", Some(json!({"text": "  "}))).await;
    assert_eq!(
        (s, v["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    let (s, v) = call(&api, "GET", "/v1/notes/n1", None).await;
    assert_eq!(
        (s, v["codes"][0]["code"].as_str()),
        (StatusCode::OK, Some("428.0"))
    );
    let (s, v) = call(
        &api,
        "POST",
        "/v1/notes/code",
        Some(json!({"text": "heart failure", "k": 3})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["method"], "zero_shot");
    let (s, _) = call(
        &api,
        "POST",
        "/v1/notes/code",
        Some(json!({"text": "x", "k": 0})),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    drop(api);
    drop(app);

    // NoteContrast on the fixture, tiny model, a few steps
    let cfg = tmp.path().join("nc.json");
    std::fs::write(
        &cfg,
        json!({"steps": 6, "batch_notes": 8, "negatives": 4, "code_layers": 1, "code_heads": 4,
               "test_permille": 250, "dev_permille": 250, "max_train_secs": null, "checkpoint_every": 3,
               "dev_every": 2})
        .to_string(),
    )
    .unwrap();
    let args = ontovec::train::notecontrast::Args {
        base: base.clone(),
        data_dir: data.clone(),
        out: models.join("nc"),
        preset: ontovec::train::Preset::Quick,
        config: Some(cfg),
        dev_dir: None,
    };
    // killed after 3 steps, then resumed from the checkpoint
    assert!(ontovec::train::notecontrast::train(&args, Some(3)).is_err());
    let r = ontovec::train::notecontrast::train(&args, None).unwrap();
    assert_eq!(r.steps, 6);
    // the dev curve survives the kill: points at steps 0 and 2 came from the first session
    assert_eq!(
        r.dev_log.iter().map(|p| p.step).collect::<Vec<_>>(),
        [0, 2, 4, 6]
    );
    assert!(r
        .dev_log
        .iter()
        .all(|p| p.metrics.contains_key("micro-AUC")));
    assert_eq!(r.loss_log.len(), 6);
    for f in ["curves.svg", "eval.svg"] {
        let svg = std::fs::read_to_string(models.join("nc").join(f)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("<polyline") | svg.contains("<rect"));
    }
    let card = std::fs::read_to_string(models.join("nc/MODEL_CARD.md")).unwrap();
    assert!(
        card.contains("](curves.svg)") && card.contains("](eval.svg)"),
        "{card}"
    );
    for m in ontovec::train::notecontrast::eval::METHODS {
        assert!(r.eval[m].micro_auc.is_finite(), "{m}: {:?}", r.eval[m]);
    }
    // the coder's label space is every code of the store's ICD-9-CM, not only the notes' codes
    let (space, seen) = (
        r.data["label_space"].as_u64().unwrap(),
        r.data["codes"].as_u64().unwrap(),
    );
    assert!(space > seen, "label space {space} vs {seen} codes in notes");
    assert!(r.eval_all_codes["trained"].micro_auc.is_finite());
    assert!(models.join("nc/notecontrast.safetensors").is_file());
    assert!(models.join("nc-codes/tokenizer.json").is_file());
    // the code encoder has a token per training code only (not one per label-space code)
    let tok = tokenizers::Tokenizer::from_file(models.join("nc-codes/tokenizer.json")).unwrap();
    assert_eq!(
        tok.get_vocab_size(false) as u64,
        seen + 3,
        "[PAD] [UNK] [MASK] + codes"
    );
    assert!(r.data["test_gold_unseen_in_training"]["codes"].is_u64());

    let app = open(&data, &models);
    let api = router(AppState::with_app(app.clone()));
    let (_, v) = call(&api, "GET", "/v1/models", None).await;
    let kinds: Vec<(&str, &str)> = v["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["name"].as_str().unwrap(), m["kind"].as_str().unwrap()))
        .collect();
    assert!(
        kinds.contains(&("nc", "notes")) && kinds.contains(&("nc-codes", "codes")),
        "{kinds:?}"
    );
    let (s, v) = call(
        &api,
        "POST",
        "/v1/notes/code",
        Some(json!({"text": "patient with CHF and HTN", "k": 5, "system": "ICD9CM"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["method"], "notecontrast");
    assert_eq!(v["score_kind"], "segment_attention");
    assert_eq!(v["codes"].as_array().unwrap().len(), 5);
    assert!(v["codes"][0]["preferred_term"].is_string());
    let (s, _) = call(
        &api,
        "POST",
        "/v1/notes/code",
        Some(json!({"text": "x", "system": "ICD10CM"})),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND, "the model has no ICD10CM codes");
    // the codes model embeds code sequences through the ordinary embed endpoint
    let (s, v) = call(
        &api,
        "POST",
        "/v1/embed",
        Some(json!({"texts": ["ICD9CM:428.0 ICD9CM:401.9"], "model": "nc-codes"})),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    // notes were embedded with the trained notes model at start-up sync
    app.sync_indexes(None).unwrap();
    let (s, v) = call(
        &api,
        "POST",
        "/v1/notes/search",
        Some(json!({"query": "pneumonia", "mode": "vector", "k": 2})),
    )
    .await;
    assert_eq!(
        (s, v["results"].as_array().map(|r| r.len())),
        (StatusCode::OK, Some(2)),
        "{v}"
    );
}
