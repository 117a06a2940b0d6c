//! Tests of [`super`]: parity with candle's `BertModel`, chunked embedding, tensor names
//! and the WiSE-FT interpolation.

use super::*;
use crate::train::common::testing::max_abs_diff;
use candle_transformers::models::bert::BertModel;

#[test]
fn forward_equals_candle_bert_model() {
    let cfg = BertConfig::tiny(100, 32, 2, 4);
    let w = random_weights(&cfg, 11).unwrap();
    let ours = TrainBert::from_tensors(cfg.clone(), w.clone()).unwrap();
    let vb = candle_nn::VarBuilder::from_tensors(w, DType::F32, &Device::Cpu);
    let theirs = BertModel::load(vb, &cfg.inner).unwrap();
    let seqs: Vec<Vec<u32>> = vec![
        vec![2, 17, 45, 9, 3],
        vec![2, 88, 3],
        vec![2, 5, 6, 7, 8, 9, 3],
    ];
    let refs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
    let (ids, mask) = pad_batch(&refs, 0).unwrap();
    let a = ours.forward(&ids, &mask, None).unwrap();
    let b = theirs
        .forward(&ids, &ids.zeros_like().unwrap(), Some(&mask))
        .unwrap();
    // compare only real tokens (padded positions are arbitrary in both)
    let m = mask.to_dtype(DType::F32).unwrap().unsqueeze(2).unwrap();
    let d = max_abs_diff(&a.broadcast_mul(&m).unwrap(), &b.broadcast_mul(&m).unwrap());
    assert!(d < 1e-5, "forward differs from BertModel by {d}");
}

#[test]
fn chunked_embedding_equals_one_batch() {
    let cfg = BertConfig::tiny(100, 32, 2, 4);
    let model = TrainBert::from_tensors(cfg, random_weights(&cfg_seed(), 3).unwrap()).unwrap();
    let seqs: Vec<Vec<u32>> = (0..7u32)
        .map(|i| (0..(2 + i * 3 % 9)).map(|j| 2 + (i * 7 + j) % 90).collect())
        .collect();
    let whole = embed_sequences(&model, &seqs, 100, None).unwrap();
    let chunked = embed_sequences(&model, &seqs, 2, None).unwrap();
    assert!(max_abs_diff(&whole, &chunked) < 1e-5);
}

fn cfg_seed() -> BertConfig {
    BertConfig::tiny(100, 32, 2, 4)
}

#[test]
fn tensor_names_round_trip_with_prefix() {
    let cfg = cfg_seed();
    let w: HashMap<String, Tensor> = random_weights(&cfg, 5)
        .unwrap()
        .into_iter()
        .map(|(k, v)| (format!("bert.{k}"), v))
        .collect();
    let model = TrainBert::from_tensors(cfg, w.clone()).unwrap();
    assert_eq!(model.prefix(), "bert.");
    let mut a: Vec<String> = model.tensors().into_keys().collect();
    let mut b: Vec<String> = w.into_keys().collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn interpolation_moves_every_parameter_toward_the_base() {
    let base =
        TrainBert::from_tensors(cfg_seed(), random_weights(&cfg_seed(), 5).unwrap()).unwrap();
    let tuned =
        TrainBert::from_tensors(cfg_seed(), random_weights(&cfg_seed(), 6).unwrap()).unwrap();
    // deep copies: a Var is updated in place, and tensors() shares its storage
    let snapshot = |m: &TrainBert| -> HashMap<String, Tensor> {
        m.tensors()
            .into_iter()
            .map(|(k, t)| (k, t.copy().unwrap()))
            .collect()
    };
    let before = snapshot(&tuned);
    tuned.interpolate_toward(&base, 0.25).unwrap();
    let after = snapshot(&tuned);
    let base_t = base.tensors();
    for (name, _) in tuned.params() {
        let want =
            (&base_t[name] + ((&before[name] - &base_t[name]).unwrap() * 0.25).unwrap()).unwrap();
        assert!(
            crate::train::common::testing::max_abs_diff(&after[name], &want) < 1e-6,
            "{name}"
        );
        let moved = crate::train::common::testing::max_abs_diff(&after[name], &before[name]);
        let apart = crate::train::common::testing::max_abs_diff(&base_t[name], &before[name]);
        assert!(moved > 0.0 || apart == 0.0, "{name}");
    }
    // α = 1 leaves the weights as they are
    tuned.interpolate_toward(&base, 1.0).unwrap();
    for (name, t) in tuned.tensors() {
        assert_eq!(
            crate::train::common::testing::max_abs_diff(&t, &after[&name]),
            0.0
        );
    }
    // another architecture is refused
    let other = TrainBert::from_tensors(
        BertConfig::tiny(100, 16, 2, 4),
        random_weights(&BertConfig::tiny(100, 16, 2, 4), 1).unwrap(),
    )
    .unwrap();
    assert!(tuned.interpolate_toward(&other, 0.5).is_err());
}

#[test]
fn forward_from_cached_states_equals_forward() {
    let cfg = BertConfig::tiny(100, 32, 3, 4);
    let model = TrainBert::from_tensors(cfg.clone(), random_weights(&cfg, 5).unwrap()).unwrap();
    let seqs: Vec<Vec<u32>> = vec![vec![2, 17, 45, 9, 3], vec![2, 88, 3]];
    let refs: Vec<&[u32]> = seqs.iter().map(|s| s.as_slice()).collect();
    let (ids, mask) = pad_batch(&refs, 0).unwrap();
    let whole = model.forward(&ids, &mask, None).unwrap();
    let m = mask.to_dtype(DType::F32).unwrap().unsqueeze(2).unwrap();
    for n in 0..=3 {
        let states = model.states_after(&ids, &mask, n).unwrap();
        let rest = model.forward_from(&states, &mask, n, None).unwrap();
        let d = max_abs_diff(
            &whole.broadcast_mul(&m).unwrap(),
            &rest.broadcast_mul(&m).unwrap(),
        );
        assert!(d < 1e-6, "split after {n} layers differs by {d}");
    }
    // the top layer's parameters only: 8 weight/bias pairs
    let top = model.layer_params_from(2);
    assert_eq!(top.len(), 16);
    assert!(top.iter().all(|(k, _)| k.contains("encoder.layer.2.")));
    assert!(model.layer_params_from(3).is_empty());
}
