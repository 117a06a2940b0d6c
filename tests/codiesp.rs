//! CodiEsp layout (`ontologies/notes/codiesp/`, hand-written cases in the corpus's layout):
//! the loader's counts, meta and missing-code report, its all-or-nothing errors with file:line,
//! NoteContrast training on the notes' own train/dev split, and `/v1/notes/code` answers —
//! evidence spans for every code, suppressed negated statements, and bad input.

use axum::body::Body;
use axum::http::StatusCode;
use ontovec::api::{router, AppState};
use ontovec::ontology::Format;
use ontovec::service::app::App;
use ontovec::util::progress::Progress;
use serde_json::{json, Value};
use std::path::PathBuf;

mod common;

use common::{ingest_request as req, open_app as open, root};

fn fixture() -> PathBuf {
    root().join("ontologies/notes/codiesp")
}

fn load_icd10(app: &App) {
    common::load(
        app,
        Format::Icd10cmXml,
        &["ontologies/icd10cm/icd10cm-tabular-sample.xml"],
    );
}

async fn code(app: &axum::Router, body: Value) -> (StatusCode, Value) {
    common::call(app, common::post_json("/v1/notes/code", &body)).await
}

#[test]
fn malformed_codiesp_fails_with_location_and_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let app = open(&tmp.path().join("data"), &tmp.path().join("none"));
    let dir = tmp.path().join("train");
    std::fs::create_dir_all(dir.join("text_files_en")).unwrap();
    std::fs::write(dir.join("text_files_en/a.txt"), "Fever and cough.").unwrap();
    std::fs::write(dir.join("trainD.tsv"), "a\tr50.9\na\tr05\textra\n").unwrap();
    let e = app
        .ingest_notes(
            &req(Format::Codiesp, std::slice::from_ref(&dir)),
            Progress::new(),
        )
        .unwrap_err()
        .to_string();
    assert!(
        e.starts_with("trainD.tsv:2:") && e.contains("2 tab-separated"),
        "{e}"
    );
    // a coded document without its text file
    std::fs::write(dir.join("trainD.tsv"), "a\tr50.9\nb\tr05\n").unwrap();
    let e = app
        .ingest_notes(
            &req(Format::Codiesp, std::slice::from_ref(&dir)),
            Progress::new(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("trainD.tsv:2:") && e.contains("b.txt"), "{e}");
    // a text file that is not UTF-8
    std::fs::write(dir.join("trainD.tsv"), "a\tr50.9\n").unwrap();
    std::fs::write(dir.join("text_files_en/a.txt"), b"Fever\n\xff\xfe cough").unwrap();
    let e = app
        .ingest_notes(
            &req(Format::Codiesp, std::slice::from_ref(&dir)),
            Progress::new(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("a.txt:2:") && e.contains("UTF-8"), "{e}");
    assert!(app.notes.store.is_empty());
    std::fs::write(dir.join("text_files_en/a.txt"), "Fever and cough.").unwrap();
    let r = app
        .ingest_notes(&req(Format::Codiesp, &[dir]), Progress::new())
        .unwrap();
    assert_eq!(r.notes, 1);
    assert!(
        r.warnings.iter().any(|w| w.contains("not checked")),
        "no ICD-10-CM loaded: {:?}",
        r.warnings
    );
}

/// A data dir with the ICD-10-CM sample and the CodiEsp fixture (train + dev) loaded, and a tiny
/// base encoder under `models/tiny`.
struct Loaded {
    _tmp: tempfile::TempDir,
    models: PathBuf,
    base: PathBuf,
    data: PathBuf,
    app: std::sync::Arc<App>,
    report: ontovec::notes::ingest::NotesLoadResult,
}

fn load_fixture() -> Loaded {
    let tmp = tempfile::tempdir().unwrap();
    let models = tmp.path().join("models");
    let base = models.join("tiny");
    ontovec::encoder::testing::write_tiny_bert(&base, &Default::default()).unwrap();
    let data = tmp.path().join("data");
    let app = open(&data, &models);
    load_icd10(&app);
    let report = app
        .ingest_notes(
            &req(
                Format::Codiesp,
                &[fixture().join("train"), fixture().join("dev")],
            ),
            Progress::new(),
        )
        .unwrap();
    Loaded {
        _tmp: tmp,
        models,
        base,
        data,
        app,
        report,
    }
}

#[tokio::test]
async fn codiesp_fixture_load_train_and_code_with_evidence() {
    let Loaded {
        _tmp,
        models,
        base,
        data,
        app,
        report: r,
    } = load_fixture();
    assert_eq!((r.notes, r.codes), (4, 8), "a duplicate row is dropped");
    let w = r.warnings.join(" ");
    // S72.001A is in the store (the fixture's 7th characters are expanded); R52 is not
    assert!(w.contains("1 of 8 gold code assignments"), "{w}");
    assert!(!w.contains("S72.001A"), "{w}");
    assert!(w.contains("R52"), "{w}");
    let n = app
        .notes
        .store
        .get("S0000-fixture-0001-1")
        .unwrap()
        .unwrap()
        .note;
    let codes: Vec<&str> = n.codes.iter().map(|c| c.code.as_str()).collect();
    assert_eq!(codes, ["E11.9", "I21.9"], "upper-cased, in file order");
    assert_eq!(n.meta()["split"], "train");
    let d = app
        .notes
        .store
        .get("S0000-fixture-0004-1")
        .unwrap()
        .unwrap()
        .note;
    assert_eq!(
        (d.meta()["split"].as_str(), d.meta()["corpus"].as_str()),
        (Some("dev"), Some("codiesp"))
    );
    drop(app);

    // NoteContrast on the notes' own split: dev is also the reported split (no test loaded)
    let cfg = data.with_file_name("nc.json");
    std::fs::write(
        &cfg,
        json!({"steps": 3, "batch_notes": 4, "negatives": 4, "code_layers": 1, "code_heads": 4,
               "max_train_secs": null, "checkpoint_every": 0, "rare_max_train": 5})
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
    let r = ontovec::train::notecontrast::train(&args, None).unwrap();
    assert_eq!(
        (
            r.data["train"].as_u64(),
            r.data["dev"].as_u64(),
            r.data["test"].as_u64()
        ),
        (Some(3), Some(1), Some(1)),
        "{}",
        r.data
    );
    assert!(r.data["split"].as_str().unwrap().contains("meta.split"));
    assert!(
        r.eval["trained"].map.is_finite() && r.eval["bm25"].map > 0.0,
        "{:?}",
        r.eval
    );
    // the serving options were tried on dev and the choice written into the manifest
    let tried: Vec<&str> = r.tuning.iter().map(|(k, _)| k.as_str()).collect();
    assert!(
        tried.contains(&"blend=0") && tried.contains(&"segment=0") && tried.len() >= 4,
        "{tried:?}"
    );
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(models.join("nc").join("ontovec.json")).unwrap(),
    )
    .unwrap();
    let nc = &manifest["notecontrast"];
    assert_eq!(nc["blend"], r.serving["blend"], "{nc}");
    assert_eq!(nc["diversity"], r.serving["diversity"], "{nc}");
    assert!(nc["diversity"]["category"].as_f64().unwrap() > 0.0);

    let app = open(&data, &models);
    let api = router(AppState::with_app(app.clone()));
    let text = "72 y/o with HTN and DM2 admitted for acute on chronic CHF.\nNo fever.\nFamily history of epilepsy in her father.";
    let (s, v) = code(&api, json!({"text": text, "k": 5})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["method"], "notecontrast");
    let codes = v["codes"].as_array().unwrap();
    assert_eq!(codes.len(), 5, "{v}");
    let chars: Vec<char> = text.chars().collect();
    for c in codes {
        let ev = c["evidence"].as_array().unwrap();
        assert!(!ev.is_empty(), "every code has evidence: {c}");
        for e in ev {
            let (a, b) = (
                e["start"].as_u64().unwrap() as usize,
                e["end"].as_u64().unwrap() as usize,
            );
            let span: String = chars[a..b].iter().collect();
            assert_eq!(
                span,
                e["segment"].as_str().unwrap(),
                "offsets are characters of the text"
            );
            assert!(
                !span.contains("fever") && !span.contains("Family"),
                "negated and family-history statements are not read: {span}"
            );
        }
    }
    // nothing affirmed: no codes, a warning
    let (s, v) = code(&api, json!({"text": "No fever. Denies chest pain."})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["codes"].as_array().unwrap().is_empty(), "{v}");
    assert!(
        v["warnings"][0]
            .as_str()
            .unwrap()
            .contains("no affirmed statement"),
        "{v}"
    );

    // bad input: a clear 4xx or a 200 with warnings, never a 5xx
    for (body, want) in [
        (json!({"text": ""}), StatusCode::BAD_REQUEST),
        (json!({"text": " \n\t "}), StatusCode::BAD_REQUEST),
        (
            json!({"text": "\u{0}\u{1}\u{2}<br/>"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"text": "a".repeat((4 << 20) + 1)}),
            StatusCode::PAYLOAD_TOO_LARGE,
        ),
    ] {
        let (s, v) = code(&api, body).await;
        assert_eq!(s, want, "{v}");
        assert!(v["error"]["message"].is_string(), "{v}");
    }
    let raw = axum::http::Request::post("/v1/notes/code")
        .header("content-type", "application/json")
        .body(Body::from(b"{\"text\": \"fever \xff\"}".to_vec()))
        .unwrap();
    let (s, v) = common::call(&api, raw).await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "non-UTF-8 body: {v}");
    let html = "<html><body><p>Diagnosis: <b>acute myocardial infarction</b></p></body></html>";
    let (s, v) = code(&api, json!({"text": html, "k": 3})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(v["warnings"][0].as_str().unwrap().contains("HTML"), "{v}");
    let seg = v["codes"][0]["evidence"][0]["segment"].as_str().unwrap();
    assert!(seg.contains("myocardial"), "{seg}");
    let es = "Varón de 64 años con diabetes mellitus tipo 2 que acude a urgencias por dolor torácico opresivo de dos horas de evolución y elevación del segmento ST.";
    let (s, v) = code(&api, json!({"text": es, "k": 3})).await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert!(
        v["warnings"][0].as_str().unwrap().contains("Spanish"),
        "{v}"
    );
    assert_eq!(v["codes"].as_array().unwrap().len(), 3, "coded anyway: {v}");
    let bin: String = (0u8..=255).map(|b| b as char).collect();
    let (s, v) = code(&api, json!({"text": bin, "k": 3})).await;
    assert!(
        s.is_success() || s.is_client_error(),
        "binary-looking text: {s} {v}"
    );
}

/// `encoder_layers: 1`: the note encoder's top layer trains with the heads, the notes folder
/// carries the tuned weights (the layers below and the embeddings unchanged), and the server
/// codes with them.
#[tokio::test]
async fn notecontrast_tunes_the_note_encoders_top_layer_and_serves_it() {
    let fx = load_fixture();
    drop(fx.app);
    let (models, base, data) = (&fx.models, &fx.base, &fx.data);
    let cfg = data.with_file_name("nc.json");
    std::fs::write(
        &cfg,
        json!({"steps": 4, "batch_notes": 3, "negatives": 4, "code_layers": 1, "code_heads": 4,
               "max_train_secs": null, "checkpoint_every": 0, "warmup_frac": 0.0,
               "encoder_layers": 1, "encoder_lr": 1e-2})
        .to_string(),
    )
    .unwrap();
    let out = models.join("nc-tuned");
    let args = ontovec::train::notecontrast::Args {
        base: base.clone(),
        data_dir: data.clone(),
        out: out.clone(),
        preset: ontovec::train::Preset::Quick,
        config: Some(cfg),
        dev_dir: None,
    };
    let r = ontovec::train::notecontrast::train(&args, None).unwrap();
    assert!(
        r.data["note_encoder"]
            .as_str()
            .unwrap()
            .starts_with("top 1 layer"),
        "{}",
        r.data
    );
    assert!(r.eval["trained"].map.is_finite(), "{:?}", r.eval);
    let load = |p: PathBuf| {
        candle_core::safetensors::load(p.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap()
    };
    let (before, after) = (load(base.clone()), load(out.clone()));
    assert_eq!(before.len(), after.len(), "same tensors, same names");
    let (mut moved, mut kept) = (0, 0);
    for (name, b) in &before {
        let a = &after[name];
        let f32 = |t: &candle_core::Tensor| t.to_dtype(candle_core::DType::F32).unwrap();
        let diff = ontovec::train::common::testing::max_abs_diff(&f32(a), &f32(b));
        // the tiny model has two layers: layer 1 is the top one
        if name.contains("encoder.layer.1.") {
            moved += usize::from(diff > 0.0);
        } else {
            assert_eq!(
                diff, 0.0,
                "{name} is below the tuned layer and must not move"
            );
            kept += 1;
        }
    }
    assert!(moved >= 8 && kept > 0, "moved {moved}, kept {kept}");

    let app = open(data, models);
    let api = router(AppState::with_app(app.clone()));
    let (s, v) = code(
        &api,
        json!({"text": "Acute myocardial infarction. Type 2 diabetes.", "k": 3}),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    assert_eq!(v["model"], "nc-tuned", "{v}");
    assert!(
        v["codes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| !c["evidence"].as_array().unwrap().is_empty()),
        "{v}"
    );
}
