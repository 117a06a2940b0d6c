//! Property tests over the JSON request types, through the in-process router: arbitrary JSON
//! (and arbitrary bytes) sent to every JSON endpoint, and valid requests with one field replaced
//! by arbitrary JSON, never panic a handler and never answer 5xx; every non-2xx answer has the
//! error shape. Runs with a tiny random BERT so the embedding paths are exercised too.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use ontovec::api::{router, AppState};
use ontovec::ontology::{Format, InputFile};
use ontovec::service::app::{App, AppConfig};
use ontovec::service::ingest::IngestRequest;
use ontovec::util::progress::Progress;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use std::sync::OnceLock;
use tower::ServiceExt;

struct Fixture {
    _dir: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
    router: axum::Router,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        ontovec::encoder::testing::write_tiny_bert(
            &models.join("tiny"),
            &ontovec::encoder::testing::TinyBert::default(),
        )
        .unwrap();
        let mut cfg = AppConfig::new(dir.path().join("data"));
        cfg.models_dir = models;
        let app = App::open(cfg).unwrap();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ontologies");
        let req = IngestRequest {
            format: Format::Obo,
            release: "fixture".into(),
            system: Some("HPO".into()),
            files: vec![InputFile::from_path(root.join("obo/hpo-sample.obo"))],
            replace: false,
            hold_out: None,
        };
        app.ingest(&req, Progress::new()).unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        Fixture {
            _dir: dir,
            rt,
            router: router(AppState::with_app(app)),
        }
    })
}

/// Send `body` with a JSON content type; check the answer's invariants.
fn check(uri: &str, body: Vec<u8>) -> Result<(), TestCaseError> {
    let f = fixture();
    let (status, bytes) = f.rt.block_on(async {
        let req = Request::post(uri)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        let resp = f.router.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        (status, resp.into_body().collect().await.unwrap().to_bytes())
    });
    prop_assert!(
        !status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS,
        "{uri}: {status} {}",
        String::from_utf8_lossy(&bytes)
    );
    let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    if !status.is_success() {
        prop_assert!(
            v["error"]["code"].is_string() && v["error"]["message"].is_string(),
            "{uri}: {status} without the error shape: {}",
            String::from_utf8_lossy(&bytes)
        );
    } else {
        prop_assert!(v.is_object(), "{uri}: 2xx without a JSON object");
    }
    Ok(())
}

const ENDPOINTS: &[&str] = &[
    "/v1/search",
    "/v1/normalize",
    "/v1/relatedness",
    "/v1/similar",
    "/v1/embed",
];

/// Field names the request types use, so generated objects often hit real fields.
const KEYS: &[&str] = &[
    "query",
    "k",
    "mode",
    "systems",
    "model",
    "fusion",
    "method",
    "rrf_k",
    "alpha",
    "mentions",
    "min_score",
    "pairs",
    "a",
    "b",
    "text",
    "system",
    "code",
    "texts",
];

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z ]{0,20}",
        Just("HPO".to_string()),
        Just("HP:0001250".to_string()),
        Just("seizure".to_string()),
        Just("tiny".to_string()),
        Just("hybrid".to_string()),
        Just("vector".to_string()),
        Just("rrf".to_string()),
        Just(" \u{1c}\u{3000}".to_string()),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|i| json!(i)),
        (-2.0e3f64..2.0e3).prop_map(|f| json!(f)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        (0u64..2000).prop_map(|i| json!(i)),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![prop::sample::select(KEYS).prop_map(str::to_string), text()],
                    inner
                ),
                0..6
            )
            .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A valid request for each endpoint.
fn valid(uri: &str) -> Value {
    match uri {
        "/v1/search" => {
            json!({"query": "seizure", "k": 5, "mode": "hybrid", "systems": ["HPO"], "fusion": {"method": "rrf", "rrf_k": 60}})
        }
        "/v1/normalize" => json!({"mentions": ["seizure", "fits"], "k": 3, "systems": ["HPO"]}),
        "/v1/relatedness" => {
            json!({"pairs": [{"a": {"text": "seizure"}, "b": {"system": "HPO", "code": "HP:0001250"}}]})
        }
        "/v1/similar" => json!({"system": "HPO", "code": "HP:0001250", "k": 3}),
        "/v1/embed" => json!({"texts": ["seizure"], "model": "tiny"}),
        _ => unreachable!(),
    }
}

/// Replace (or add) the field at a random place of a valid request with arbitrary JSON.
fn mutate(mut v: Value, pick: usize, key: &str, with: Value) -> Value {
    fn walk(v: &mut Value, pick: &mut usize, key: &str, with: &Value) -> bool {
        if let Value::Object(m) = v {
            if *pick == 0 {
                m.insert(key.to_string(), with.clone());
                return true;
            }
            *pick -= 1;
            for child in m.values_mut() {
                if walk(child, pick, key, with) {
                    return true;
                }
            }
        } else if let Value::Array(a) = v {
            for child in a.iter_mut() {
                if walk(child, pick, key, with) {
                    return true;
                }
            }
        }
        false
    }
    let mut p = pick;
    if !walk(&mut v, &mut p, key, &with) {
        v[key] = with;
    }
    v
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_never_breaks_a_handler(
        ep in prop::sample::select(ENDPOINTS),
        v in json_value(),
    ) {
        check(ep, v.to_string().into_bytes())?;
    }

    #[test]
    fn valid_requests_with_one_field_replaced(
        ep in prop::sample::select(ENDPOINTS),
        pick in 0usize..6,
        key in prop::sample::select(KEYS),
        with in json_value(),
    ) {
        let v = mutate(valid(ep), pick, key, with);
        check(ep, v.to_string().into_bytes())?;
    }

    #[test]
    fn arbitrary_bytes_never_break_a_handler(
        ep in prop::sample::select(ENDPOINTS),
        bytes in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        check(ep, bytes)?;
    }
}

#[test]
fn the_valid_requests_are_valid() {
    for ep in ENDPOINTS {
        let f = fixture();
        let status = f.rt.block_on(async {
            let req = Request::post(*ep)
                .header("content-type", "application/json")
                .body(Body::from(valid(ep).to_string()))
                .unwrap();
            f.router.clone().oneshot(req).await.unwrap().status()
        });
        assert_eq!(status, StatusCode::OK, "{ep}");
    }
}
