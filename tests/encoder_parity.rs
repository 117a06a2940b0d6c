//! Parity of the candle encoder with sentence-transformers (PyTorch) on all-MiniLM-L6-v2.
//!
//! The reference vectors in `tests/fixtures/parity/` were made by
//! `scripts/make_parity_fixture.py`. These tests need the real weights at
//! `models/all-MiniLM-L6-v2/` (placed by `scripts/fetch-data.sh`); without them they print why
//! and pass, so a plain `cargo test` works offline.

use ontovec::encoder::{Encoder, EngineConfig, EngineHandle, ModelKind, Registry};
use ontovec::util::vector::cosine;
use std::path::{Path, PathBuf};

fn model_dir() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/all-MiniLM-L6-v2");
    if dir.join("model.safetensors").is_file() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {} is absent; run scripts/fetch-data.sh to fetch all-MiniLM-L6-v2",
            dir.join("model.safetensors").display()
        );
        None
    }
}

struct Fixture {
    texts: Vec<String>,
    lengths: Vec<usize>,
    embeddings: Vec<Vec<f32>>,
}

fn fixture() -> Fixture {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parity/all-MiniLM-L6-v2.json");
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("parity fixture")).unwrap();
    let texts = serde_json::from_value(v["texts"].clone()).unwrap();
    let lengths = serde_json::from_value(v["token_lengths"].clone()).unwrap();
    let embeddings = serde_json::from_value(v["embeddings"].clone()).unwrap();
    Fixture {
        texts,
        lengths,
        embeddings,
    }
}

#[test]
fn candle_matches_sentence_transformers() {
    let Some(dir) = model_dir() else { return };
    let fx = fixture();
    assert!(fx.texts.len() >= 20);
    let enc = Encoder::load(&dir).unwrap();
    assert_eq!(enc.dim(), 384);
    for (t, &len) in fx.texts.iter().zip(&fx.lengths) {
        assert_eq!(
            enc.tokenizer().encode(t).unwrap().len(),
            len,
            "token count of {t:?}"
        );
    }
    let ours = enc.embed_texts(&fx.texts, 8, false).unwrap();
    let mut worst = (1.0f32, 0.0f32, String::new());
    for ((t, a), b) in fx.texts.iter().zip(&ours).zip(&fx.embeddings) {
        let c = cosine(a, b);
        let d = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        if c < worst.0 {
            worst = (c, d, t.clone());
        }
        assert!(c >= 0.9999, "cosine {c} for {t:?}");
        let norm = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
    eprintln!(
        "parity: {} strings, min cosine {:.7} (max |Δ| {:.2e}) on {:?}",
        fx.texts.len(),
        worst.0,
        worst.1,
        worst.2
    );
}

#[test]
fn real_model_batch_equals_single_and_engine_matches() {
    let Some(dir) = model_dir() else { return };
    let fx = fixture();
    let enc = Encoder::load(&dir).unwrap();
    let single: Vec<Vec<f32>> = fx
        .texts
        .iter()
        .map(|t| enc.embed_texts(&[t], 1, false).unwrap().pop().unwrap())
        .collect();
    let batched = enc.embed_texts(&fx.texts, 64, false).unwrap();
    let mut max_d = 0f32;
    for (a, b) in single.iter().zip(&batched) {
        let d = a
            .iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f32, f32::max);
        max_d = max_d.max(d);
    }
    eprintln!("batch vs single: max |Δ| {max_d:.2e}");
    assert!(max_d <= 1e-5, "max |Δ| {max_d}");

    let engine = EngineHandle::spawn(enc, EngineConfig::default()).unwrap();
    let via_engine = engine.embed_blocking(&fx.texts).unwrap();
    for (a, b) in via_engine.iter().zip(&single) {
        assert!(cosine(a, b) > 0.99999);
    }
}

#[test]
fn registry_serves_the_base_model() {
    let Some(dir) = model_dir() else { return };
    let models = dir.parent().unwrap();
    let reg = Registry::load_dir(models, EngineConfig::default()).unwrap();
    let info = reg
        .list()
        .into_iter()
        .find(|m| m.name == "all-MiniLM-L6-v2")
        .expect("listed");
    assert_eq!((info.dim, info.kind), (384, ModelKind::Terms));
    assert!(info.trained_by.contains("pretrained"));
    let h = reg.get(Some("all-MiniLM-L6-v2"), ModelKind::Terms).unwrap();
    assert_eq!(h.manifest().max_len, 256);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let v = rt
        .block_on(h.embed(vec![
            "heart attack".into(),
            "myocardial infarction".into(),
            "fracture of femur".into(),
        ]))
        .unwrap();
    assert!(
        cosine(&v[0], &v[1]) > cosine(&v[0], &v[2]),
        "a synonym is nearer than an unrelated term"
    );
}
