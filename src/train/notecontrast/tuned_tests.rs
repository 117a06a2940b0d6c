//! Tests of [`super`]: the tuned path against the served encoder, and the memory-bank step
//! against one backward through the whole batch.

use super::*;
use crate::encoder::testing::{write_tiny_bert, TinyBert};
use crate::encoder::Encoder;
use crate::train::common::testing::{max_abs, max_abs_diff};
use crate::train::notecontrast::data::note_features;

/// What a run computes through the tuned layers is what the server computes from the
/// folder the run writes: move the top layer, write the weights, load them as the served
/// encoder does and embed the same notes.
#[test]
fn tuned_features_equal_the_served_encoder_on_the_written_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    write_tiny_bert(&base, &TinyBert::default()).unwrap();
    let long = "the patient , fever and cough . ".repeat(30);
    let items: Vec<Item> = [long.as_str(), "fever .", "pat ient coughing , sepsis ."]
        .iter()
        .map(|t| Item {
            text: t.to_string(),
            codes: vec![],
        })
        .collect();
    let enc = Encoder::load(&base).unwrap();
    let wcfg = WindowConfig::for_max_len(enc.manifest().max_len);
    let scfg = SegmentConfig::default();
    let tok = TextTokenizer::load(&base, 1 << 20).unwrap();
    let t = TunedEncoder::build(&base, 1, &tok, (&wcfg, &scfg), &items, &[0, 1, 2]).unwrap();
    assert_eq!(t.params().len(), 16, "one layer: 8 weight/bias pairs");
    assert!(
        t.notes[0].windows.len() > 1,
        "the long note has several windows"
    );
    // a "trained" top layer: every tuned weight moved
    for (_, v) in t.params() {
        let noise = Tensor::randn(0f32, 0.05, v.shape(), &Device::Cpu).unwrap();
        v.set(&(v.as_tensor() + noise).unwrap()).unwrap();
    }
    let mut feats = note_features(
        &enc,
        &tok,
        &wcfg,
        &scfg,
        &items,
        &tmp.path().join("base-cache.safetensors"),
    )
    .unwrap();
    let before = feats.pooled[0].clone();
    t.refresh(&[0, 1, 2], &mut feats).unwrap();
    // written the way output::write does, loaded the way the server does
    let out = tmp.path().join("tuned");
    crate::train::common::card::copy_base_files(&base, &out).unwrap();
    t.bert.save(&out.join("model.safetensors")).unwrap();
    let served = Encoder::load(&out).unwrap();
    let want = note_features(
        &served,
        &tok,
        &wcfg,
        &scfg,
        &items,
        &tmp.path().join("tuned-cache.safetensors"),
    )
    .unwrap();
    let m = |rows: &[Vec<f32>]| crate::train::notecontrast::model::matrix(rows).unwrap();
    assert!(max_abs_diff(&m(std::slice::from_ref(&before)), &m(&feats.pooled[0..1])) > 1e-3);
    assert!(max_abs_diff(&m(&want.pooled), &m(&feats.pooled)) < 1e-4);
    for i in 0..items.len() {
        assert_eq!(want.segments[i].len(), feats.segments[i].len());
        assert!(max_abs_diff(&m(&want.segments[i]), &m(&feats.segments[i])) < 1e-4);
    }
}

/// With a fresh bank and a budget that covers every sequence, the bank step gives the
/// gradient of one backward through the whole batch; a smaller budget takes the sequences
/// with the largest gradient and refreshes exactly their bank rows.
#[test]
fn bank_backprop_equals_one_backward_at_full_budget() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path().join("base");
    write_tiny_bert(&base, &TinyBert::default()).unwrap();
    let texts = [
        "the patient , fever and cough . ".repeat(12),
        "fever .".to_string(),
        "pat ient coughing , sepsis . no fever .".to_string(),
    ];
    let items: Vec<Item> = texts
        .iter()
        .map(|t| Item {
            text: t.clone(),
            codes: vec![],
        })
        .collect();
    let tok = TextTokenizer::load(&base, 1 << 20).unwrap();
    let wcfg = WindowConfig::for_max_len(64);
    let mut t = TunedEncoder::build(
        &base,
        2,
        &tok,
        (&wcfg, &SegmentConfig::default()),
        &items,
        &[0, 1, 2],
    )
    .unwrap();
    t.chunk_tokens = 40;
    let batch = [2, 0, 1];
    let idx = t.sequences(&batch);
    assert!(t.chunks(&idx).1.len() >= 3, "several chunks");
    let h = t.bert.config.inner.hidden_size;
    let probe = Tensor::randn(0f32, 1.0, (h, 1), &Device::Cpu).unwrap();
    let loss = |f: &BatchFeatures| -> Tensor {
        let a = f
            .pooled
            .matmul(&probe)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        let b = f
            .segments
            .matmul(&probe)
            .unwrap()
            .exp()
            .unwrap()
            .sum_all()
            .unwrap();
        (a + b).unwrap()
    };
    // one graph through every chunk
    let (order, groups) = t.chunks(&idx);
    let parts: Vec<Tensor> = groups
        .iter()
        .map(|g| t.run_chunk(&idx, &order[g.clone()]).unwrap())
        .collect();
    let mut inverse = vec![0u32; idx.len()];
    for (pos, &p) in order.iter().enumerate() {
        inverse[p] = pos as u32;
    }
    let rows = Tensor::cat(&parts, 0)
        .unwrap()
        .index_select(&Tensor::new(inverse, &Device::Cpu).unwrap(), 0)
        .unwrap();
    let whole = loss(&t.assemble(&batch, &rows).unwrap())
        .backward()
        .unwrap();
    // the bank as a leaf, then the layers chunk by chunk
    t.refresh_bank(&idx).unwrap();
    let step = |budget: usize| {
        let leaf = Var::from_tensor(&t.bank_rows(&idx).unwrap()).unwrap();
        let first = loss(&t.assemble(&batch, leaf.as_tensor()).unwrap())
            .backward()
            .unwrap();
        let g = first.get(leaf.as_tensor()).unwrap().clone();
        let (stores, stats) = t.backprop(&idx, &g, budget).unwrap();
        (stores, stats, g)
    };
    let (stores, stats, _) = step(usize::MAX);
    assert_eq!(stats.sequences, idx.len());
    assert!((stats.gradient_share - 1.0).abs() < 1e-6);
    for (name, v) in t.params() {
        let want = whole.get(v.as_tensor()).unwrap();
        let mut got = want.zeros_like().unwrap();
        for s in &stores {
            got = (got + s.get(v.as_tensor()).unwrap()).unwrap();
        }
        let scale = max_abs(want);
        let d = max_abs_diff(want, &got);
        // relative, with an absolute floor: the key bias has no gradient (softmax ignores it)
        assert!(d <= 1e-4 * scale + 1e-5, "{name}: {d} (scale {scale})");
    }
    // move the weights: a small budget refreshes only the largest-gradient sequences
    for (_, v) in t.params() {
        let noise = Tensor::randn(0f32, 0.05, v.shape(), &Device::Cpu).unwrap();
        v.set(&(v.as_tensor() + noise).unwrap()).unwrap();
    }
    let stale = t.bank_rows(&idx).unwrap().to_vec2::<f32>().unwrap();
    let (_, stats, g) = step(20);
    assert!(
        stats.sequences >= 1 && stats.sequences < idx.len(),
        "{stats:?}"
    );
    assert!(stats.tokens <= 20 || stats.sequences == 1, "{stats:?}");
    let fresh = t.rows(&idx).unwrap().to_vec2::<f32>().unwrap();
    let bank = t.bank_rows(&idx).unwrap().to_vec2::<f32>().unwrap();
    let norms: Vec<f32> = g.sqr().unwrap().sum(1).unwrap().to_vec1().unwrap();
    let near = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 1e-5);
    // the refreshed rows: now the current weights' vectors, as many as it ran, and among
    // them a largest-gradient one (the long note repeats a sentence: ties are twins)
    let changed: Vec<usize> = (0..idx.len())
        .filter(|&r| !near(&bank[r], &stale[r]))
        .collect();
    assert_eq!(changed.len(), stats.sequences, "{stats:?}");
    assert!(changed.iter().all(|&r| near(&bank[r], &fresh[r])));
    let max = |rows: &mut dyn Iterator<Item = usize>| rows.map(|r| norms[r]).fold(0f32, f32::max);
    assert_eq!(max(&mut changed.iter().copied()), max(&mut (0..idx.len())));
}
