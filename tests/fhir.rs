//! FHIR R4 terminology endpoints and the browser page, in process (tower `oneshot`) over a
//! small store: resource shapes, operation answers and `OperationOutcome` errors (unknown
//! system / code, bad parameters, too large `count`). Conformance against the R4
//! specification is checked by independent validators in `scripts/fhir.sh`.

use axum::body::Body;
use axum::http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use ontovec::api::{router, AppState};
use ontovec::domain::model::{Concept, Relation};
use ontovec::ontology::Sink;
use ontovec::service::app::App;
use serde_json::{json, Value};
use tower::ServiceExt;

const ICD10: &str = "http://hl7.org/fhir/sid/icd-10-cm";

mod common;

fn app() -> (tempfile::TempDir, axum::Router) {
    let dir = tempfile::tempdir().unwrap();
    let app = App::open(common::config(dir.path(), &dir.path().join("no-models"))).unwrap();
    let mut w = common::icd10_release(&app);
    common::write_diabetes(&mut w);
    w.concept(Concept::new(
        "E11.65",
        "Type 2 diabetes mellitus with hyperglycemia",
    ))
    .unwrap();
    w.concept(Concept::new("I21", "Acute myocardial infarction"))
        .unwrap();
    w.relation(Relation {
        from: "E11.65".into(),
        rel: "is_a".into(),
        to: "E11".into(),
    })
    .unwrap();
    w.commit().unwrap();
    if let Some(s) = &app.search {
        s.sync(None).unwrap();
    }
    (dir, router(AppState::with_app(app)))
}

async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, Value) {
    let (status, headers, v) = common::send(app, req).await;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap());
    assert_eq!(ct, Some("application/fhir+json"), "{v}");
    (status, v)
}

async fn get(app: &axum::Router, uri: &str) -> (StatusCode, Value) {
    call(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

async fn post(app: &axum::Router, uri: &str, body: &Value) -> (StatusCode, Value) {
    let req = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/fhir+json")
        .body(Body::from(body.to_string()))
        .unwrap();
    call(app, req).await
}

/// The value of the first parameter named `name`.
fn pval<'a>(p: &'a Value, name: &str) -> &'a Value {
    let part = p["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == name)
        .unwrap_or_else(|| panic!("no parameter {name} in {p}"));
    part.as_object()
        .unwrap()
        .iter()
        .find(|(k, _)| k.starts_with("value"))
        .map(|(_, v)| v)
        .unwrap_or(part)
}

fn issue(v: &Value) -> &str {
    assert_eq!(v["resourceType"], "OperationOutcome", "{v}");
    v["issue"][0]["code"].as_str().unwrap()
}

#[tokio::test]
async fn conformance_resources() {
    let (_d, app) = app();
    let (s, v) = get(&app, "/fhir/metadata").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["resourceType"], "CapabilityStatement");
    assert_eq!(v["fhirVersion"], "4.0.1");
    let (_, v) = get(&app, "/fhir/metadata?mode=terminology").await;
    assert_eq!(v["resourceType"], "TerminologyCapabilities");
    assert_eq!(v["codeSystem"][0]["uri"], ICD10);
    assert_eq!(v["codeSystem"][0]["version"][0]["code"], "2026");
    assert!(v["expansion"]["textFilter"]
        .as_str()
        .unwrap()
        .contains("filterMode"));
    let (s, v) = get(&app, "/fhir/metadata?mode=bogus").await;
    assert_eq!((s, issue(&v)), (StatusCode::BAD_REQUEST, "invalid"));

    let (_, v) = get(&app, "/fhir/CodeSystem").await;
    assert_eq!(v["resourceType"], "Bundle");
    assert_eq!(v["total"], 1);
    assert_eq!(v["entry"][0]["resource"]["url"], ICD10);
    let (_, v) = get(&app, &format!("/fhir/CodeSystem?url={ICD10}")).await;
    assert_eq!(v["total"], 1);
    let (_, v) = get(&app, "/fhir/CodeSystem?url=http://loinc.org").await;
    assert_eq!(v["total"], 0);
    assert!(
        v.get("entry").is_none(),
        "no empty arrays in FHIR JSON: {v}"
    );
    let (s, v) = get(&app, "/fhir/CodeSystem/ICD10CM").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        (v["content"].as_str(), v["count"].as_u64()),
        (Some("not-present"), Some(4))
    );
    let (s, v) = get(&app, "/fhir/CodeSystem/NOPE").await;
    assert_eq!((s, issue(&v)), (StatusCode::NOT_FOUND, "not-found"));
    let (s, v) = get(&app, "/fhir/Patient/1").await;
    assert_eq!((s, issue(&v)), (StatusCode::NOT_FOUND, "not-found"));
}

#[tokio::test]
async fn lookup_validate_subsumes() {
    let (_d, app) = app();
    let (s, v) = get(
        &app,
        &format!("/fhir/CodeSystem/$lookup?system={ICD10}&code=E11.9"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(
        pval(&v, "display"),
        "Type 2 diabetes mellitus without complications"
    );
    assert_eq!(pval(&v, "version"), "2026");
    let props: Vec<&Value> = v["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "property")
        .collect();
    assert!(props
        .iter()
        .any(|p| p["part"][0]["valueCode"] == "parent" && p["part"][1]["valueCode"] == "E11"));
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "coding", "valueCoding": {"system": ICD10, "code": "E11"}}]});
    let (s, v) = post(&app, "/fhir/CodeSystem/$lookup", &body).await;
    assert_eq!(s, StatusCode::OK);
    let designations = v["parameter"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "designation")
        .count();
    assert_eq!(designations, 2, "{v}");

    // Unknown system, unknown code, unknown version, missing and unknown parameters.
    let (s, v) = get(
        &app,
        "/fhir/CodeSystem/$lookup?system=http://example.org/x&code=1",
    )
    .await;
    assert_eq!((s, issue(&v)), (StatusCode::NOT_FOUND, "not-found"));
    let (s, v) = get(
        &app,
        "/fhir/CodeSystem/$lookup?system=http://loinc.org&code=1-8",
    )
    .await;
    assert_eq!((s, issue(&v)), (StatusCode::NOT_FOUND, "not-found"));
    let (s, v) = get(
        &app,
        &format!("/fhir/CodeSystem/$lookup?system={ICD10}&code=Z99.999"),
    )
    .await;
    assert_eq!((s, issue(&v)), (StatusCode::NOT_FOUND, "not-found"));
    let (s, v) = get(
        &app,
        &format!("/fhir/CodeSystem/$lookup?system={ICD10}&code=E11&version=1999"),
    )
    .await;
    assert_eq!((s, issue(&v)), (StatusCode::NOT_FOUND, "not-found"));
    let (s, v) = get(&app, "/fhir/CodeSystem/$lookup?code=E11").await;
    assert_eq!((s, issue(&v)), (StatusCode::BAD_REQUEST, "required"));
    let (s, v) = get(
        &app,
        &format!("/fhir/CodeSystem/$lookup?system={ICD10}&code=E11&colour=red"),
    )
    .await;
    assert_eq!((s, issue(&v)), (StatusCode::BAD_REQUEST, "not-supported"));
    let (s, v) = post(
        &app,
        "/fhir/CodeSystem/$lookup",
        &json!({"resourceType": "Patient"}),
    )
    .await;
    assert_eq!((s, issue(&v)), (StatusCode::BAD_REQUEST, "structure"));

    let (s, v) = get(
        &app,
        &format!("/fhir/CodeSystem/$validate-code?url={ICD10}&code=E11.9"),
    )
    .await;
    assert_eq!((s, pval(&v, "result")), (StatusCode::OK, &json!(true)));
    let (_, v) = get(
        &app,
        &format!("/fhir/CodeSystem/$validate-code?url={ICD10}&code=E11.999"),
    )
    .await;
    assert_eq!(pval(&v, "result"), &json!(false));
    assert!(pval(&v, "message")
        .as_str()
        .unwrap()
        .contains("Unknown code"));
    let (_, v) = get(&app, &format!("/fhir/CodeSystem/$validate-code?url={ICD10}&code=E11&display=diabetes%20mellitus%20type%20II")).await;
    assert_eq!(pval(&v, "result"), &json!(true));
    let (_, v) = get(
        &app,
        &format!("/fhir/CodeSystem/$validate-code?url={ICD10}&code=E11&display=asthma"),
    )
    .await;
    assert_eq!(pval(&v, "result"), &json!(false));

    for (a, b, want) in [
        ("E11", "E11.9", "subsumes"),
        ("E11.9", "E11", "subsumed-by"),
        ("E11", "E11", "equivalent"),
        ("E11.9", "I21", "not-subsumed"),
    ] {
        let (s, v) = get(
            &app,
            &format!("/fhir/CodeSystem/$subsumes?system={ICD10}&codeA={a}&codeB={b}"),
        )
        .await;
        assert_eq!(
            (s, pval(&v, "outcome")),
            (StatusCode::OK, &json!(want)),
            "{a} {b}"
        );
    }
    let (s, v) = get(
        &app,
        &format!("/fhir/CodeSystem/$subsumes?system={ICD10}&codeA=E11&codeB=NOPE"),
    )
    .await;
    assert_eq!((s, issue(&v)), (StatusCode::NOT_FOUND, "not-found"));
}

#[tokio::test]
async fn translate_and_expand() {
    let (_d, app) = app();
    let (s, v) = get(
        &app,
        &format!("/fhir/ConceptMap/$translate?system={ICD10}&code=E11.9"),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(pval(&v, "result"), &json!(true));
    let m = pval(&v, "match");
    assert_eq!(m["part"][0]["valueCode"], "wider");
    assert_eq!(m["part"][1]["valueCoding"]["code"], "250.2");
    assert_eq!(
        m["part"][1]["valueCoding"]["system"],
        "https://phewascatalog.org/phecodes"
    );
    let (_, v) = get(
        &app,
        &format!("/fhir/ConceptMap/$translate?system={ICD10}&code=I21"),
    )
    .await;
    assert_eq!(pval(&v, "result"), &json!(false));
    let (s, v) = get(
        &app,
        &format!(
            "/fhir/ConceptMap/$translate?system={ICD10}&code=E11.9&targetsystem=http://loinc.org"
        ),
    )
    .await;
    assert_eq!((s, issue(&v)), (StatusCode::NOT_FOUND, "not-found"));

    let isa = |q: &str| format!("/fhir/ValueSet/$expand?url={ICD10}?fhir_vs=isa/E11{q}");
    let (s, v) = get(&app, &isa("")).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["expansion"]["total"], 3);
    let codes: Vec<&str> = v["expansion"]["contains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["E11", "E11.65", "E11.9"]);
    let (_, v) = get(&app, &isa("&count=1&offset=1")).await;
    assert_eq!(v["expansion"]["contains"][0]["code"], "E11.65");
    assert_eq!(v["expansion"]["contains"].as_array().unwrap().len(), 1);
    let (_, v) = get(
        &app,
        &format!("/fhir/ValueSet/$expand?url={ICD10}?fhir_vs&count=2&offset=3"),
    )
    .await;
    assert_eq!(v["expansion"]["total"], 4);
    assert_eq!(v["expansion"]["contains"].as_array().unwrap().len(), 1);
    // A text filter is a (here lexical: no model) search, with the score and side ranks.
    let body = json!({"resourceType": "Parameters", "parameter": [
        {"name": "url", "valueUri": format!("{ICD10}?fhir_vs")},
        {"name": "filter", "valueString": "myocardial infarction"},
        {"name": "filterMode", "valueString": "lexical"},
        {"name": "count", "valueInteger": 5}]});
    let (s, v) = post(&app, "/fhir/ValueSet/$expand", &body).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    let first = &v["expansion"]["contains"][0];
    assert_eq!(first["code"], "I21", "{v}");
    let ext = first["extension"].as_array().unwrap();
    assert!(ext
        .iter()
        .any(|e| e["url"] == "urn:ontovec:extension:lexical-rank" && e["valueInteger"] == 1));

    for (q, status, code) in [
        ("&count=5000", StatusCode::BAD_REQUEST, "too-costly"),
        ("&count=-1", StatusCode::BAD_REQUEST, "invalid"),
        ("&count=ten", StatusCode::BAD_REQUEST, "invalid"),
        ("&offset=-3", StatusCode::BAD_REQUEST, "invalid"),
        (
            "&filter=x&filterMode=psychic",
            StatusCode::BAD_REQUEST,
            "invalid",
        ),
        (
            "&filter=x&offset=990&count=20",
            StatusCode::BAD_REQUEST,
            "too-costly",
        ),
        ("&sort=code", StatusCode::BAD_REQUEST, "not-supported"),
    ] {
        let (s, v) = get(&app, &isa(q)).await;
        assert_eq!((s, issue(&v)), (status, code), "{q}");
    }
    for (url, status, code) in [
        (ICD10.to_string(), StatusCode::NOT_FOUND, "not-found"),
        (
            format!("{ICD10}?fhir_vs=refset/1"),
            StatusCode::BAD_REQUEST,
            "not-supported",
        ),
        (
            format!("{ICD10}?fhir_vs=isa/NOPE"),
            StatusCode::NOT_FOUND,
            "not-found",
        ),
        (
            "http://loinc.org?fhir_vs".to_string(),
            StatusCode::NOT_FOUND,
            "not-found",
        ),
    ] {
        let (s, v) = get(&app, &format!("/fhir/ValueSet/$expand?url={url}")).await;
        assert_eq!((s, issue(&v)), (status, code), "{url}");
    }
    let (s, v) = get(&app, "/fhir/ValueSet/$expand").await;
    assert_eq!((s, issue(&v)), (StatusCode::BAD_REQUEST, "required"));
}

#[tokio::test]
async fn browser_page_is_served_from_the_binary() {
    let (_d, app) = app();
    for (uri, ct) in [
        ("/", "text/html; charset=utf-8"),
        ("/concept/ICD10CM/E11.9", "text/html; charset=utf-8"),
        ("/ui/app.js", "text/javascript; charset=utf-8"),
        ("/ui/app.css", "text/css; charset=utf-8"),
    ] {
        let resp = app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{uri}");
        assert_eq!(resp.headers()[header::CONTENT_TYPE], ct, "{uri}");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        let text = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            !text.contains("https://"),
            "{uri} must not load anything from elsewhere"
        );
    }
}
