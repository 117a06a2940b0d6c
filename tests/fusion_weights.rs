//! A terms model folder may carry the learned hybrid's weights fitted on its own scores
//! (`fusion_weights.json`, written by `ontovec eval fit-fusion --out`): hybrid searches with
//! that model score with them, `/v1/models` says so, and a file that does not fit this build's
//! features stops the server at start with the model and file named.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use ontovec::api::{router, AppState};
use ontovec::encoder::testing::{write_tiny_bert, TinyBert};
use ontovec::ontology::{Format, InputFile};
use ontovec::search::hybrid::FEATURES;
use ontovec::service::app::{App, AppConfig};
use ontovec::service::ingest::IngestRequest;
use ontovec::util::progress::Progress;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tower::ServiceExt;

/// Weights that score by the lexical side only: `l_rel` 2, every other feature 0.
fn lexical_only() -> Value {
    let w: Vec<f32> = FEATURES
        .iter()
        .map(|f| if *f == "l_rel" { 2.0 } else { 0.0 })
        .collect();
    json!({"features": FEATURES, "w": w, "calib": [1.0, 0.0], "fitted_on": "this test"})
}

fn models_with(tmp: &Path, fusion: &Value) -> PathBuf {
    let dir = tmp.join("models");
    write_tiny_bert(&dir.join("tiny"), &TinyBert::default()).unwrap();
    std::fs::write(
        dir.join("tiny/fusion_weights.json"),
        serde_json::to_vec(fusion).unwrap(),
    )
    .unwrap();
    dir
}

fn open(tmp: &Path, models: PathBuf) -> Result<std::sync::Arc<App>, String> {
    let mut cfg = AppConfig::new(tmp.join("data"));
    cfg.models_dir = models;
    App::open(cfg).map_err(|e| format!("{e:#}"))
}

async fn call(r: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = r.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_folder_brings_its_own_fusion_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let models = models_with(tmp.path(), &lexical_only());
    let app = open(tmp.path(), models).unwrap();
    app.ingest(
        &IngestRequest {
            format: Format::Obo,
            release: "fixture".into(),
            system: Some("HPO".into()),
            files: vec![InputFile::from_path(
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("ontologies/obo/hpo-sample.obo"),
            )],
            replace: false,
            hold_out: None,
        },
        Progress::new(),
    )
    .unwrap();
    let r = router(AppState::with_app(app));

    let (s, v) = call(&r, Request::get("/v1/models").body(Body::empty()).unwrap()).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let tiny = v["models"]
        .as_array()
        .or_else(|| v.as_array())
        .unwrap()
        .iter()
        .find(|m| m["name"] == "tiny")
        .cloned()
        .unwrap();
    assert_eq!(tiny["own_fusion_weights"], true, "{tiny}");

    let body = json!({"query": "abnormal heart", "k": 5, "mode": "hybrid", "explain": true});
    let (s, v) = call(
        &r,
        Request::post("/v1/search")
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let hits = v["results"].as_array().unwrap();
    assert!(!hits.is_empty(), "{v}");
    for hit in hits {
        let e = &hit["explain"];
        let mut l_rel = None;
        for f in e["features"].as_array().unwrap() {
            let (value, contribution) = (
                f["value"].as_f64().unwrap(),
                f["contribution"].as_f64().unwrap(),
            );
            if f["name"] == "l_rel" {
                assert!((contribution - 2.0 * value).abs() < 1e-5, "{f}");
                l_rel = Some(value);
            } else {
                assert_eq!(contribution, 0.0, "the model's weight of {f} is 0");
            }
        }
        // calibration (1, 0): the reported score is σ(rank score)
        let rank = e["rank_score"].as_f64().unwrap();
        assert!((rank - 2.0 * l_rel.unwrap()).abs() < 1e-5, "{e}");
        let score = hit["score"].as_f64().unwrap();
        assert!((score - 1.0 / (1.0 + (-rank).exp())).abs() < 1e-5, "{hit}");
    }
}

#[test]
fn fusion_weights_that_do_not_fit_stop_the_start_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let mut bad = lexical_only();
    bad["features"] = json!(["v_cos", "l_rel"]);
    let err = open(tmp.path(), models_with(tmp.path(), &bad))
        .err()
        .expect("the server must not start with weights for other features");
    assert!(
        err.contains("tiny") && err.contains("fusion_weights.json"),
        "{err}"
    );

    let tmp = tempfile::tempdir().unwrap();
    let models = models_with(tmp.path(), &lexical_only());
    std::fs::write(models.join("tiny/fusion_weights.json"), b"{ not json").unwrap();
    let err = open(tmp.path(), models).err().expect("malformed JSON");
    assert!(err.contains("fusion_weights.json"), "{err}");
}
