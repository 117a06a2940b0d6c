//! Model cards over HTTP (in-process router): a model folder whose card files were written by
//! the trainers' card writer serves them with their content types; names outside the
//! allow-list, traversal attempts, unknown models and missing files are 404 in the error shape.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use ontovec::api::{router, AppState};
use ontovec::service::app::{App, AppConfig};
use ontovec::train::common::card::{write_card, Bars, Card, Curves};
use ontovec::train::common::checkpoint::DevPoint;
use serde_json::Value;
use tower::ServiceExt;

async fn get(r: &axum::Router, uri: &str) -> (StatusCode, String, Vec<u8>) {
    let resp = r
        .clone()
        .oneshot(Request::get(uri).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = resp
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
        .to_vec();
    (status, ct, bytes)
}

fn json(b: &[u8]) -> Value {
    serde_json::from_slice(b).unwrap()
}

/// A tiny model folder with the card a trainer writes (manifest, card, both pictures).
fn trained_model(dir: &std::path::Path) {
    ontovec::encoder::testing::write_tiny_bert(dir, &Default::default()).unwrap();
    let loss: Vec<(u64, f32, f32)> = (1..=30).map(|s| (s, 1.0 / s as f32, 0.5)).collect();
    let dev = vec![
        DevPoint {
            step: 0,
            metrics: [("mean AUC".to_string(), 0.6)].into_iter().collect(),
        },
        DevPoint {
            step: 30,
            metrics: [("mean AUC".to_string(), 0.8)].into_iter().collect(),
        },
    ];
    let curves = Curves::from_logs("carded", ["tree loss", "synonym loss"], &loss, &dev, "dev");
    let bars = Bars {
        title: "eval".into(),
        series: vec!["base".into(), "trained".into()],
        groups: vec![("X · mean AUC".into(), vec![0.6, 0.8])],
    };
    let manifest = serde_json::json!({"name": "carded", "kind": "terms", "trained_by": "ontovec hiprbert test",
        "default": true, "eval": {"mean_auc": {"base": 0.6, "trained": 0.8}}});
    write_card(
        dir,
        &Card {
            manifest: &manifest,
            markdown: "# carded\n\nA test model.\n\n## Data\n".into(),
            curves: Some(&curves),
            bars: Some(&bars),
        },
    )
    .unwrap();
}

#[tokio::test]
async fn model_card_files_are_served_by_allow_list_only() {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    trained_model(&models.join("carded"));
    ontovec::encoder::testing::write_tiny_bert(&models.join("plain"), &Default::default()).unwrap();
    std::fs::write(tmp.path().join("secret.txt"), "not for you").unwrap();
    let mut cfg = AppConfig::new(tmp.path().join("data"));
    cfg.models_dir = models;
    let r = router(AppState::with_app(App::open(cfg).unwrap()));

    let (s, _, b) = get(&r, "/v1/models/carded").await;
    assert_eq!(s, StatusCode::OK);
    let card = json(&b);
    assert_eq!(card["name"], "carded");
    assert_eq!(card["eval"]["mean_auc"]["trained"], 0.8);
    let files: Vec<(String, String)> = card["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["url"].as_str().unwrap().to_string(),
                f["content_type"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        files,
        [
            ("/v1/models/carded/files/curves.svg", "image/svg+xml"),
            ("/v1/models/carded/files/eval.svg", "image/svg+xml"),
            (
                "/v1/models/carded/files/MODEL_CARD.md",
                "text/markdown; charset=utf-8"
            ),
        ]
        .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    for (url, ct) in &files {
        let (s, got_ct, body) = get(&r, url).await;
        assert_eq!(s, StatusCode::OK, "{url}");
        assert_eq!(&got_ct, ct, "{url}");
        let text = String::from_utf8(body).unwrap();
        if ct.starts_with("image/svg") {
            assert!(
                text.starts_with("<svg") && text.trim_end().ends_with("</svg>"),
                "{url}"
            );
        } else {
            assert!(text.contains("![training curves") && text.contains("(eval.svg)"));
        }
    }

    // a model without card files lists none and answers 404 for them
    let (s, _, b) = get(&r, "/v1/models/plain").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json(&b)["files"], serde_json::json!([]));
    let (s, _, b) = get(&r, "/v1/models/plain/files/curves.svg").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(json(&b)["error"]["code"], "not_found");

    // names outside the allow-list, traversal, unknown models
    for (uri, code) in [
        ("/v1/models/carded/files/ontovec.json", "not_found"),
        ("/v1/models/carded/files/model.safetensors", "not_found"),
        ("/v1/models/carded/files/..%2F..%2Fsecret.txt", "not_found"),
        ("/v1/models/carded/files/%2E%2E", "not_found"),
        ("/v1/models/..%2Fcarded/files/curves.svg", "unknown_model"),
        (
            "/v1/models/..%2F..%2Fsecret.txt/files/MODEL_CARD.md",
            "unknown_model",
        ),
        ("/v1/models/..", "unknown_model"),
        ("/v1/models/nope", "unknown_model"),
        ("/v1/models/nope/files/curves.svg", "unknown_model"),
    ] {
        let (s, ct, b) = get(&r, uri).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{uri}");
        assert!(ct.starts_with("application/json"), "{uri}: {ct}");
        let e = json(&b);
        assert_eq!(e["error"]["code"], code, "{uri}: {e}");
        assert!(e["error"]["message"].is_string());
        assert!(!String::from_utf8_lossy(&b).contains("not for you"));
    }

    // the page has a model view
    let (s, ct, _) = get(&r, "/models/carded").await;
    assert_eq!(s, StatusCode::OK);
    assert!(ct.starts_with("text/html"));
}
