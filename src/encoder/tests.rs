//! Encoder tests on the tiny random BERT (no downloaded weights needed).

use super::testing::{write_tiny_bert, TinyBert};
use super::*;
use crate::util::vector::cosine;
use std::path::Path;

const TEXTS: &[&str] = &[
    "type 2 diabetes mellitus without complications",
    "fever",
    "acute myocardial infarction",
    "chronic kidney disease, stage 3",
    "severe persistent asthma with acute exacerbation of the disease and pain in the left knee",
    "",
    "pneumonia, unspecified",
    "Fracture of RIGHT femur",
];

fn tiny(dir: &Path, opts: TinyBert) -> Encoder {
    write_tiny_bert(dir, &opts).unwrap();
    Encoder::load(dir).unwrap()
}

fn assert_close(a: &[Vec<f32>], b: &[Vec<f32>], tol: f32) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        assert_eq!(x.len(), y.len());
        let d = x
            .iter()
            .zip(y)
            .map(|(p, q)| (p - q).abs())
            .fold(0f32, f32::max);
        assert!(d <= tol, "max |Δ| = {d} > {tol}");
    }
}

fn one_by_one(enc: &Encoder, texts: &[&str]) -> Vec<Vec<f32>> {
    texts
        .iter()
        .map(|t| {
            let ids = enc.tokenizer().encode(t).unwrap();
            enc.embed_ids(&[ids]).unwrap().pop().unwrap()
        })
        .collect()
}

#[test]
fn tiny_model_loads_and_embeds_unit_vectors() {
    let dir = tempfile::tempdir().unwrap();
    let enc = tiny(dir.path(), TinyBert::default());
    assert_eq!(enc.dim(), 32);
    let m = enc.manifest();
    assert_eq!(
        (m.kind, m.pooling, m.max_len),
        (ModelKind::Terms, Pooling::Mean, 64)
    );
    assert_eq!(m.trained_by, manifest::PRETRAINED);
    let v = enc.embed_texts(TEXTS, 3, false).unwrap();
    assert_eq!(v.len(), TEXTS.len());
    for x in &v {
        assert_eq!(x.len(), 32);
        let norm = x.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "norm {norm}");
    }
    // Different texts give different vectors.
    assert!(cosine(&v[0], &v[1]) < 0.9999);
}

#[test]
fn vocab_txt_and_tokenizer_json_agree_and_prefix_is_handled() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let plain = tiny(a.path(), TinyBert::default());
    let prefixed = tiny(
        b.path(),
        TinyBert {
            bert_prefix: true,
            tokenizer_json: true,
            ..TinyBert::default()
        },
    );
    for t in TEXTS {
        assert_eq!(
            plain.tokenizer().encode(t).unwrap(),
            prefixed.tokenizer().encode(t).unwrap(),
            "{t}"
        );
    }
    let ids = plain.tokenizer().encode("type 2 diabetes").unwrap();
    assert_eq!(
        ids,
        vec![2, 5, 6, 7, 3],
        "[CLS] type 2 diabetes [SEP], lower-cased"
    );
    assert_close(
        &plain.embed_texts(TEXTS, 8, false).unwrap(),
        &prefixed.embed_texts(TEXTS, 8, false).unwrap(),
        0.0,
    );
}

#[test]
fn long_text_is_truncated_to_max_len() {
    let dir = tempfile::tempdir().unwrap();
    let enc = tiny(dir.path(), TinyBert::default());
    let long = "acute chronic heart failure ".repeat(100);
    let ids = enc.tokenizer().encode(&long).unwrap();
    assert_eq!(ids.len(), 64);
    assert_eq!((ids[0], ids[63]), (2, 3), "still [CLS] … [SEP]");
    assert_eq!(enc.embed_texts(&[long], 1, false).unwrap()[0].len(), 32);
}

#[test]
fn batch_equals_single_for_every_pooling() {
    for pooling in ["mean", "cls", "max"] {
        let dir = tempfile::tempdir().unwrap();
        let enc = tiny(
            dir.path(),
            TinyBert {
                manifest: Some(serde_json::json!({ "pooling": pooling })),
                ..TinyBert::default()
            },
        );
        assert_eq!(
            serde_json::to_value(enc.manifest().pooling).unwrap(),
            pooling
        );
        let single = one_by_one(&enc, TEXTS);
        assert_close(&enc.embed_texts(TEXTS, 64, false).unwrap(), &single, 1e-5);
        assert_close(&enc.embed_texts(TEXTS, 3, true).unwrap(), &single, 1e-5);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_batches_equal_singles_and_keep_order() {
    let dir = tempfile::tempdir().unwrap();
    let enc = tiny(dir.path(), TinyBert::default());
    let single = one_by_one(&enc, TEXTS);
    let engine = EngineHandle::spawn(
        enc,
        EngineConfig {
            max_batch_seqs: 4,
            max_batch_tokens: 60,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    // Many concurrent requests, each a different rotation of the texts: every answer must come
    // back in its own request's order whatever batches the texts were mixed into.
    let mut tasks = Vec::new();
    for r in 0..24 {
        let e = engine.clone();
        let texts: Vec<String> = (0..TEXTS.len())
            .map(|i| TEXTS[(i + r) % TEXTS.len()].to_string())
            .collect();
        tasks.push(tokio::spawn(async move { (r, e.embed(texts).await) }));
    }
    for t in tasks {
        let (r, got) = t.await.unwrap();
        let want: Vec<Vec<f32>> = (0..TEXTS.len())
            .map(|i| single[(i + r) % TEXTS.len()].clone())
            .collect();
        assert_close(&got.unwrap(), &want, 1e-5);
    }
    let one = engine.embed_one(TEXTS[2]).await.unwrap();
    assert_close(&[one], &single[2..3], 1e-5);
    assert!(engine.embed(vec![]).await.unwrap().is_empty());
    let stats = engine.stats();
    assert_eq!(stats.texts, 24 * TEXTS.len() as u64 + 1);
    assert!(stats.tokens <= stats.padded_tokens);
    assert_eq!(engine.queue_depth(), 0);
}

#[test]
fn embed_blocking_matches_and_sorts_large_batches() {
    let dir = tempfile::tempdir().unwrap();
    let enc = tiny(dir.path(), TinyBert::default());
    let texts: Vec<String> = (0..300)
        .map(|i| {
            let words = TEXTS[i % TEXTS.len()];
            format!("{words} {}", "pain ".repeat(i % 13))
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let single = one_by_one(&enc, &refs);
    let engine = EngineHandle::spawn(enc, EngineConfig::default()).unwrap();
    let got = engine.embed_blocking(&texts).unwrap();
    assert_close(&got, &single, 1e-5);
    let s = engine.stats();
    assert_eq!(s.texts, 300);
    // The same texts cut into batches of 64 in arrival order would pad far more.
    let lens: Vec<u64> = refs
        .iter()
        .map(|t| engine.tokenizer().encode(t).unwrap().len() as u64)
        .collect();
    let unsorted: u64 = lens
        .chunks(64)
        .map(|c| c.iter().max().unwrap() * c.len() as u64)
        .sum();
    assert!(
        (s.padded_tokens as f64) < 0.75 * unsorted as f64,
        "sorted {} vs unsorted {unsorted} padded tokens",
        s.padded_tokens
    );
}

#[tokio::test]
async fn full_queue_is_overloaded_then_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let enc = tiny(dir.path(), TinyBert::default());
    let (open, gate) = std::sync::mpsc::channel();
    let engine = EngineHandle::spawn_gated(
        enc,
        EngineConfig {
            queue_capacity: 4,
            ..EngineConfig::default()
        },
        Some(gate),
    )
    .unwrap();
    let tok = engine.tokenizer().clone();
    let ids =
        |n: usize| -> Vec<Vec<u32>> { (0..n).map(|_| tok.encode("fever").unwrap()).collect() };
    // The model thread is held, so nothing leaves the queue.
    let first = engine.try_submit(ids(3)).unwrap();
    let second = engine.try_submit(ids(1)).unwrap();
    assert_eq!(engine.queue_depth(), 4);
    match engine.try_submit(ids(1)) {
        Err(EncoderError::Overloaded { retry_after_ms }) => assert!(retry_after_ms >= 10),
        other => panic!("expected Overloaded, got {other:?}"),
    }
    assert!(matches!(
        engine.embed(vec!["fever".into()]).await,
        Err(EncoderError::Overloaded { .. })
    ));
    open.send(()).unwrap();
    assert_eq!(first.await.unwrap().unwrap().len(), 3);
    assert_eq!(second.await.unwrap().unwrap().len(), 1);
    assert_eq!(engine.embed(vec!["fever".into()]).await.unwrap().len(), 1);
}

#[test]
fn a_request_larger_than_the_queue_is_admitted_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let enc = tiny(dir.path(), TinyBert::default());
    let engine = EngineHandle::spawn(
        enc,
        EngineConfig {
            queue_capacity: 2,
            ..EngineConfig::default()
        },
    )
    .unwrap();
    assert_eq!(engine.embed_blocking(TEXTS).unwrap().len(), TEXTS.len());
}

#[test]
fn registry_defaults_listing_and_unknown_models() {
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    write_tiny_bert(&r.join("a-base"), &TinyBert::default()).unwrap();
    write_tiny_bert(
        &r.join("b-trained"),
        &TinyBert {
            seed: 8,
            manifest: Some(serde_json::json!({
                "kind": "terms", "base": "a-base", "trained_by": "ontovec train hiprbert",
                "eval": {"acc@1": 0.7}
            })),
            ..TinyBert::default()
        },
    )
    .unwrap();
    write_tiny_bert(
        &r.join("c-notes"),
        &TinyBert {
            seed: 9,
            manifest: Some(
                serde_json::json!({"kind": "notes", "trained_by": "ontovec train notecontrast"}),
            ),
            ..TinyBert::default()
        },
    )
    .unwrap();
    std::fs::create_dir(r.join("not-a-model")).unwrap();
    std::fs::write(r.join("stray.txt"), "x").unwrap();

    let reg = Registry::load_dir(r, EngineConfig::default()).unwrap();
    assert_eq!(reg.len(), 3);
    assert_eq!(reg.default_name(ModelKind::Terms), Some("b-trained"));
    assert_eq!(reg.default_name(ModelKind::Notes), Some("c-notes"));
    assert_eq!(reg.default_name(ModelKind::Codes), None);
    let list = reg.list();
    let names: Vec<_> = list.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a-base", "b-trained", "c-notes"]);
    assert_eq!(list[1].eval["acc@1"], 0.7);
    assert!(list[1].default && !list[0].default && list[2].default);
    assert_eq!((list[0].dim, list[0].base.as_str()), (32, "a-base"));
    assert_eq!(
        reg.get(None, ModelKind::Terms).unwrap().manifest().name,
        "b-trained"
    );
    assert_eq!(
        reg.get(Some("a-base"), ModelKind::Terms)
            .unwrap()
            .manifest()
            .name,
        "a-base"
    );
    assert!(matches!(
        reg.get(Some("nope"), ModelKind::Terms),
        Err(EncoderError::UnknownModel(_))
    ));
    assert!(matches!(
        reg.get(None, ModelKind::Codes),
        Err(EncoderError::UnknownModel(_))
    ));
    let v = reg
        .get(None, ModelKind::Notes)
        .unwrap()
        .embed_blocking(&["fever and cough"])
        .unwrap();
    assert_eq!(v[0].len(), 32);

    // An explicit `default: true` wins over "trained by us".
    std::fs::write(r.join("a-base/ontovec.json"), r#"{"default": true}"#).unwrap();
    let reg = Registry::load_dir(r, EngineConfig::default()).unwrap();
    assert_eq!(reg.default_name(ModelKind::Terms), Some("a-base"));
    assert!(
        Registry::load_dir(&r.join("missing"), EngineConfig::default())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn broken_model_folder_is_a_load_error() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path().join("broken");
    write_tiny_bert(&d, &TinyBert::default()).unwrap();
    std::fs::write(d.join("model.safetensors"), b"not safetensors").unwrap();
    let err = Registry::load_dir(root.path(), EngineConfig::default()).unwrap_err();
    assert!(matches!(err, EncoderError::Load { .. }), "{err}");
}

#[test]
fn fast_forward_equals_candle_transformers_bert_model() {
    use candle_core::{DType, Device, Tensor};
    use candle_transformers::models::bert::BertModel;
    let dir = tempfile::tempdir().unwrap();
    write_tiny_bert(dir.path(), &TinyBert::default()).unwrap();
    let cfg = bert::read_config(&dir.path().join("config.json")).unwrap();
    let tensors = bert::load_tensors(&dir.path().join("model.safetensors")).unwrap();
    let ours = model::Bert::load(&tensors, &cfg).unwrap();
    let vb = candle_nn::VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let reference = BertModel::load(vb, &cfg).unwrap();

    let (n, seq) = (3, 7);
    let lens = [7usize, 4, 2];
    let mut ids = Vec::new();
    let mut mask = Vec::new();
    for (i, &l) in lens.iter().enumerate() {
        for j in 0..seq {
            ids.push(if j < l {
                (5 + i * 7 + j * 3) as u32 % 50
            } else {
                0
            });
            mask.push(u32::from(j < l));
        }
    }
    let ids = Tensor::from_vec(ids, (n, seq), &Device::Cpu).unwrap();
    let mask = Tensor::from_vec(mask, (n, seq), &Device::Cpu).unwrap();
    let tt = Tensor::zeros((n, seq), DType::U32, &Device::Cpu).unwrap();
    let want = reference.forward(&ids, &tt, Some(&mask)).unwrap();
    let seqs: Vec<Vec<u32>> = ids
        .to_vec2::<u32>()
        .unwrap()
        .into_iter()
        .zip(lens)
        .map(|(s, l)| s[..l].to_vec())
        .collect();
    let (flat, offsets) = ours.forward(&seqs).unwrap();
    // Compare the real (unpadded) positions: ours packs them, the reference pads.
    for (i, &l) in lens.iter().enumerate() {
        let a = want.get(i).unwrap().narrow(0, 0, l).unwrap();
        let rows = flat[offsets[i] * 32..offsets[i + 1] * 32].to_vec();
        let b = Tensor::from_vec(rows, (l, 32), &Device::Cpu).unwrap();
        let d: f32 = (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!(d < 1e-5, "sequence {i}: max |Δ| {d}");
    }
}
