//! The precision gate on the tiny random BERT: BF16 served only where the CPU runs it and only
//! when it agrees with F32; a deliberately broken quantization is refused.

use super::bert::{load_tensors, read_config, WEIGHTS_FILE};
use super::model::Bert;
use super::precision::{Precision, PrecisionChoice, PrecisionPolicy, GATE_MIN};
use super::testing::{write_tiny_bert, TinyBert};
use super::*;
use crate::util::vector::cosine;

const TEXTS: &[&str] = &["type 2 diabetes mellitus", "fever", "fracture of femur"];

fn policy(forced: Option<PrecisionChoice>, default: PrecisionChoice) -> PrecisionPolicy {
    PrecisionPolicy { forced, default }
}

#[test]
fn bf16_is_served_only_where_it_runs_and_agrees_with_f32() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(dir.path(), &TinyBert::default()).unwrap();
    let f32 = Encoder::load(dir.path()).unwrap();
    assert_eq!(f32.precision(), Precision::F32);
    assert!(f32.gate().is_none(), "F32 asked: no gate run");
    let auto = Encoder::load_with(dir.path(), policy(None, PrecisionChoice::Auto)).unwrap();
    if !Precision::Bf16.supported() {
        assert_eq!(auto.precision(), Precision::F32);
        assert_eq!(auto.manifest().vector_id(), auto.manifest().name);
        return;
    }
    let g = auto.gate().expect("gate ran").clone();
    assert!(g.passed && g.texts >= 50, "{g:?}");
    assert_eq!(auto.precision(), Precision::Bf16);
    assert_eq!(auto.manifest().precision, Precision::Bf16);
    assert!(auto.manifest().vector_id().ends_with("@bf16"));
    let (a, b) = (
        f32.embed_texts(TEXTS, 8, false).unwrap(),
        auto.embed_texts(TEXTS, 8, false).unwrap(),
    );
    for (x, y) in a.iter().zip(&b) {
        assert!(
            cosine(x, y) > 0.99 && x != y,
            "BF16 close to F32 but its own"
        );
    }
    // batch == single holds in BF16 too (the rounding is per value, not per batch)
    for (t, v) in TEXTS.iter().zip(&b) {
        let one = auto.embed_texts(&[t], 1, false).unwrap().remove(0);
        assert!(cosine(&one, v) > 0.99999);
    }
}

#[test]
fn the_manifest_asks_and_the_flag_overrides() {
    let dir = tempfile::tempdir().unwrap();
    let opts = TinyBert {
        manifest: Some(serde_json::json!({"precision": "f32", "parity_texts": ["fever", "cough"]})),
        ..TinyBert::default()
    };
    write_tiny_bert(dir.path(), &opts).unwrap();
    // the CLI's default (auto) yields to the manifest's f32
    let e = Encoder::load_with(dir.path(), policy(None, PrecisionChoice::Auto)).unwrap();
    assert_eq!(e.precision(), Precision::F32);
    assert!(e.gate().is_none());
    // a forced bf16 wins over the manifest, and the gate uses the manifest's strings
    let e = Encoder::load_with(
        dir.path(),
        policy(Some(PrecisionChoice::Bf16), PrecisionChoice::F32),
    )
    .unwrap();
    if Precision::Bf16.supported() {
        assert_eq!(e.gate().map(|g| g.texts), Some(2));
        assert_eq!(e.precision(), Precision::Bf16);
    } else {
        assert_eq!(e.precision(), Precision::F32);
    }
    std::fs::write(dir.path().join("ontovec.json"), r#"{"precision": "int8"}"#).unwrap();
    let err = Encoder::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("ontovec.json"), "{err}");
}

#[test]
fn a_broken_quantization_is_refused_and_f32_served() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(dir.path(), &TinyBert::default()).unwrap();
    let cfg = read_config(&dir.path().join("config.json")).unwrap();
    let mut tensors = load_tensors(&dir.path().join(WEIGHTS_FILE)).unwrap();
    let f32 = Encoder::load(dir.path()).unwrap();
    let want = f32.embed_texts(TEXTS, 8, false).unwrap();
    // "quantize" the FFN output weights of layer 0 badly: keep only their signs
    let name = "encoder.layer.0.output.dense.weight";
    let w = tensors[name].clone();
    tensors.insert(name.into(), (w.sign().unwrap() * 0.05).unwrap());
    let tried = if Precision::Bf16.supported() {
        Precision::Bf16
    } else {
        // without BF16 the candidate cannot be built in BF16 at all: the gate is never asked
        let e = f32
            .gated(Precision::Bf16, |p| Ok(Bert::load_with(&tensors, &cfg, p)?))
            .unwrap();
        assert!(e.gate().is_none() && e.precision() == Precision::F32);
        return;
    };
    let e = f32
        .gated(tried, |p| Ok(Bert::load_with(&tensors, &cfg, p)?))
        .unwrap();
    let g = e.gate().expect("gate ran").clone();
    assert!(!g.passed && g.min_cosine < GATE_MIN, "{g:?}");
    assert_eq!(e.precision(), Precision::F32);
    assert_eq!(e.manifest().precision, Precision::F32);
    assert_eq!(
        e.embed_texts(TEXTS, 8, false).unwrap(),
        want,
        "F32 served as before"
    );
}
