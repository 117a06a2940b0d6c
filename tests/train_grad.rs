//! Whole-model gradient check: autograd through the trainer's BERT (differentiable LayerNorm,
//! softmax, GELU, mean pooling, normalisation) and the tree loss agrees with central finite
//! differences, in f64, on a tiny random BERT. No model download, no network.

use candle_core::{DType, Tensor};
use ontovec::train::common::bert::{
    embed_sequences, random_weights, rowwise_cosine, BertConfig, TrainBert,
};
use ontovec::train::hiprbert::loss::{tree_loss, LossConfig};

fn loss_of(model: &TrainBert, seqs: &[Vec<u32>], cats: &[u8]) -> Tensor {
    let emb = embed_sequences(model, seqs, 3, None).unwrap();
    let n = cats.len();
    let sims =
        rowwise_cosine(&emb.narrow(0, 0, n).unwrap(), &emb.narrow(0, n, n).unwrap()).unwrap();
    tree_loss(
        &sims,
        cats,
        &LossConfig {
            tree_scale: 5.0,
            ..Default::default()
        },
    )
    .unwrap()
}

/// 4 tree pairs (8 sequences) of different lengths, so padding and masks are exercised.
fn pair_sequences() -> Vec<Vec<u32>> {
    vec![
        vec![2, 10, 11, 3],
        vec![2, 12, 3],
        vec![2, 13, 14, 15, 3],
        vec![2, 16, 3],
        vec![2, 10, 17, 3],
        vec![2, 12, 18, 19, 20, 3],
        vec![2, 21, 3],
        vec![2, 22, 23, 3],
    ]
}

#[test]
fn model_gradient_matches_finite_differences() {
    let cfg = BertConfig::tiny(100, 32, 2, 4);
    let w = random_weights(&cfg, 21)
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, t.to_dtype(DType::F64).unwrap()))
        .collect();
    let model = TrainBert::from_tensors(cfg, w).unwrap();
    let seqs = pair_sequences();
    let cats = [0u8, 1, 2, 3];
    let loss = loss_of(&model, &seqs, &cats);
    let grads = loss.backward().unwrap();
    let checked = [
        ("embeddings.word_embeddings.weight", 10 * 32 + 3),
        ("embeddings.position_embeddings.weight", 2 * 32 + 7),
        ("embeddings.LayerNorm.weight", 5),
        ("encoder.layer.0.attention.self.query.weight", 77),
        ("encoder.layer.0.attention.self.query.bias", 3),
        ("encoder.layer.1.attention.self.key.weight", 40),
        ("encoder.layer.1.attention.self.value.weight", 200),
        ("encoder.layer.0.attention.output.LayerNorm.weight", 9),
        ("encoder.layer.1.intermediate.dense.weight", 555),
        ("encoder.layer.1.output.dense.bias", 30),
        ("encoder.layer.1.output.LayerNorm.bias", 12),
    ];
    let h = 1e-5;
    for (name, idx) in checked {
        let var = &model.params().iter().find(|(n, _)| n == name).unwrap().1;
        let g: Vec<f64> = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        let orig: Vec<f64> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let eval_at = |delta: f64| {
            let mut v = orig.clone();
            v[idx] += delta;
            var.set(&Tensor::from_vec(v, var.shape(), var.device()).unwrap())
                .unwrap();
            loss_of(&model, &seqs, &cats).to_scalar::<f64>().unwrap()
        };
        let fd = (eval_at(h) - eval_at(-h)) / (2.0 * h);
        var.set(&Tensor::from_vec(orig, var.shape(), var.device()).unwrap())
            .unwrap();
        let err = (fd - g[idx]).abs();
        assert!(g[idx].abs() > 1e-9, "{name}[{idx}]: zero gradient");
        assert!(
            err <= 1e-6 + 1e-4 * fd.abs(),
            "{name}[{idx}]: autograd {} vs finite difference {fd}",
            g[idx]
        );
    }
}

/// The attention key bias adds `q·b_k` to every score of a query row, which softmax ignores:
/// its gradient is zero in exact arithmetic (in PyTorch too). Checked here so the "every
/// parameter gets a gradient" test can exempt it with a reason.
#[test]
fn key_bias_gradient_vanishes_by_softmax_shift_invariance() {
    let cfg = BertConfig::tiny(100, 32, 2, 4);
    let w = random_weights(&cfg, 3)
        .unwrap()
        .into_iter()
        .map(|(k, t)| (k, t.to_dtype(DType::F64).unwrap()))
        .collect();
    let model = TrainBert::from_tensors(cfg, w).unwrap();
    let seqs: Vec<Vec<u32>> = vec![
        vec![2, 10, 11, 3],
        vec![2, 12, 3],
        vec![2, 13, 3],
        vec![2, 16, 17, 18, 3],
    ];
    let loss = loss_of(&model, &seqs, &[0, 2]);
    let grads = loss.backward().unwrap();
    for (name, var) in model.params() {
        let g = grads
            .get(var.as_tensor())
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f64>()
            .unwrap();
        if name.ends_with("attention.self.key.bias") {
            assert!(g < 1e-12, "{name}: {g}");
        } else {
            assert!(g > 1e-9, "{name}: no gradient");
        }
    }
}

/// The data-parallel step (chunk graphs on two threads, the loss differentiated down to the
/// detached embeddings, word-embedding gradients as rows) gives the same gradient as one graph
/// over the whole batch, in F32 with the fused kernels, for every parameter.
#[test]
fn data_parallel_step_equals_one_graph() {
    use ontovec::train::common::ops::DropoutPlan;
    use ontovec::train::common::optim::GradAccumulator;
    use ontovec::train::hiprbert::train::{forward_backward, MicroBatch};
    use ontovec::train::hiprbert::{Preset, TrainConfig};

    let cfg = BertConfig::tiny(100, 32, 2, 4);
    let w = random_weights(&cfg, 5).unwrap();
    let model = TrainBert::from_tensors(cfg, w).unwrap();
    let mut seqs = pair_sequences();
    seqs.extend([
        // synonyms: two concepts, repeated word ids across chunks
        vec![2, 10, 30, 3],
        vec![2, 10, 31, 32, 3],
        vec![2, 40, 3],
        vec![2, 40, 41, 3],
    ]);
    let cats = vec![0u8, 1, 2, 3];
    let labels = vec![0u32, 0, 1, 1];
    let mut tc = TrainConfig::preset(Preset::Quick);
    tc.chunk = 3;
    tc.synonym_weight = 0.7;
    let batch = MicroBatch {
        seqs: seqs.clone(),
        cats: cats.clone(),
        labels: labels.clone(),
    };
    let plan = DropoutPlan {
        seed: 1,
        hidden_p: 0.0,
        attention_p: 0.0,
    };
    let params = model.params().to_vec();
    let out = forward_backward(&model, &batch, &tc, plan, 2).unwrap();
    assert!(out.grads.len() >= 2, "the batch ran in several chunks");
    let mut acc = GradAccumulator::new(&params);
    acc.add_chunks(&params, &out.grads).unwrap();
    let parallel = acc.mean_mut().to_vec();

    // one graph: embed everything at once, the same losses, one backward
    let emb = embed_sequences(&model, &seqs, 64, None).unwrap();
    let n = cats.len();
    let sims =
        rowwise_cosine(&emb.narrow(0, 0, n).unwrap(), &emb.narrow(0, n, n).unwrap()).unwrap();
    let tree = tree_loss(&sims, &cats, &tc.loss).unwrap();
    let (syn, _, _) = ontovec::train::hiprbert::loss::synonym_loss(
        &emb.narrow(0, 2 * n, labels.len()).unwrap(),
        &labels,
        &tc.loss,
    )
    .unwrap();
    let total = (tree + (syn * tc.synonym_weight).unwrap()).unwrap();
    let grads = total.backward().unwrap();
    let mut acc = GradAccumulator::new(&params);
    acc.add(&params, std::slice::from_ref(&grads)).unwrap();
    let whole = acc.mean_mut().to_vec();

    for (((name, _), a), b) in params.iter().zip(&parallel).zip(&whole) {
        let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-6);
        let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        assert!(
            diff <= 1e-4 * scale.max(1.0),
            "{name}: max diff {diff} (max |g| {scale})"
        );
    }
    assert!(
        whole[model.word_param()].iter().any(|x| *x != 0.0),
        "word embeddings get a gradient"
    );
}
