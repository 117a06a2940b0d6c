//! The precision gate on the tiny random BERT: BF16 and INT8 served only where the CPU runs them
//! and only when they agree with F32; a deliberately broken quantization is refused.

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

/// Loads the tiny model asking for `choice` and checks what a reduced precision `want` must
/// satisfy when served: the gate ran and passed, vectors close to F32 but not identical, the
/// vector id names the precision, batch == single.
fn check_served(choice: PrecisionChoice, want: Precision) {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(dir.path(), &TinyBert::default()).unwrap();
    let f32 = Encoder::load(dir.path()).unwrap();
    assert_eq!(f32.precision(), Precision::F32);
    assert!(f32.gate().is_none(), "F32 asked: no gate run");
    let e = Encoder::load_with(dir.path(), policy(Some(choice), PrecisionChoice::F32)).unwrap();
    if !want.supported() {
        assert_eq!(e.precision(), Precision::F32);
        assert_eq!(e.manifest().vector_id(), e.manifest().name);
        return;
    }
    let g = e.gate().expect("gate ran").clone();
    assert!(g.passed && g.texts >= 50, "{want}: {g:?}");
    assert_eq!(e.precision(), want);
    assert_eq!(e.manifest().precision, want);
    assert!(e.manifest().vector_id().ends_with(&format!("@{want}")));
    let (a, b) = (
        f32.embed_texts(TEXTS, 8, false).unwrap(),
        e.embed_texts(TEXTS, 8, false).unwrap(),
    );
    for (x, y) in a.iter().zip(&b) {
        assert!(
            cosine(x, y) > 0.99 && x != y,
            "{want} close to F32 but its own"
        );
    }
    // batch == single holds in reduced precision too: the rounding is per value (BF16) or per
    // row (INT8's per-token scales), never per batch
    for (t, v) in TEXTS.iter().zip(&b) {
        let one = e.embed_texts(&[t], 1, false).unwrap().remove(0);
        assert!(cosine(&one, v) > 0.99999, "{want}: batch != single");
    }
}

#[test]
fn bf16_is_served_only_where_it_runs_and_agrees_with_f32() {
    check_served(PrecisionChoice::Bf16, Precision::Bf16);
}

#[test]
fn int8_is_served_only_where_it_runs_and_agrees_with_f32() {
    check_served(PrecisionChoice::Int8, Precision::Int8);
}

#[test]
fn auto_takes_the_fastest_precision_that_passes() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(dir.path(), &TinyBert::default()).unwrap();
    let auto = Encoder::load_with(dir.path(), policy(None, PrecisionChoice::Auto)).unwrap();
    let want = [Precision::Int8, Precision::Bf16]
        .into_iter()
        .find(|p| p.supported())
        .unwrap_or(Precision::F32);
    // the tiny model passes both gates (the two tests above), so the first supported one wins
    assert_eq!(auto.precision(), want);
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
    std::fs::write(dir.path().join("ontovec.json"), r#"{"precision": "int4"}"#).unwrap();
    let err = Encoder::load(dir.path()).unwrap_err().to_string();
    assert!(err.contains("ontovec.json"), "{err}");
}

#[test]
fn a_broken_quantization_is_refused_and_f32_served() {
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(dir.path(), &TinyBert::default()).unwrap();
    let cfg = read_config(&dir.path().join("config.json")).unwrap();
    let mut tensors = load_tensors(&dir.path().join(WEIGHTS_FILE)).unwrap();
    let want = Encoder::load(dir.path())
        .unwrap()
        .embed_texts(TEXTS, 8, false)
        .unwrap();
    // "quantize" the FFN output weights of layer 0 badly: keep only their signs
    let name = "encoder.layer.0.output.dense.weight";
    let w = tensors[name].clone();
    tensors.insert(name.into(), (w.sign().unwrap() * 0.05).unwrap());
    for tried in [Precision::Bf16, Precision::Int8] {
        let f32 = Encoder::load(dir.path()).unwrap();
        let e = f32
            .gated(tried, |p| Ok(Bert::load_with(&tensors, &cfg, p)?))
            .unwrap();
        if !tried.supported() {
            // the candidate cannot be built in that precision at all: the gate is never asked
            assert!(e.gate().is_none() && e.precision() == Precision::F32);
            continue;
        }
        let g = e.gate().expect("gate ran").clone();
        assert!(!g.passed && g.min_cosine < GATE_MIN, "{tried}: {g:?}");
        assert_eq!(e.precision(), Precision::F32);
        assert_eq!(e.manifest().precision, Precision::F32);
        assert_eq!(
            e.embed_texts(TEXTS, 8, false).unwrap(),
            want,
            "{tried} refused: F32 served as before"
        );
    }
}
