//! Training-step benchmark (ignored by default: needs the real base model and a data dir).
//!
//! ```text
//! ONTOVEC_BENCH_BASE=models/all-MiniLM-L6-v2 ONTOVEC_BENCH_DATA=data/ontovec \
//!   cargo test --release --test train_bench -- --ignored --nocapture
//! python3 scripts/bench_train_reference.py target/train_bench_workload.json models/all-MiniLM-L6-v2
//! ```
//! Writes the exact workload (token ids, categories, labels per micro-batch) so the PyTorch
//! reference runs the same step on the same inputs, and prints examples/s and tokens/s of the
//! full step: forward (length-sorted chunks of 32, dropout 0.1), both losses, backward,
//! clipping, AdamW. Tokenisation is excluded on both sides.

use ontovec::store::Store;
use ontovec::train::common::bert::{embed_sequences, rowwise_cosine, TrainBert};
use ontovec::train::common::embed::TermTokenizer;
use ontovec::train::common::ops::Dropout;
use ontovec::train::common::optim::{clip_global_norm, AdamW, AdamWConfig, GradAccumulator};
use ontovec::train::hiprbert::data::{load_hierarchies, Corpus};
use ontovec::train::hiprbert::loss::{synonym_loss, tree_loss, LossConfig};
use rand::{Rng, SeedableRng};
use std::path::PathBuf;
use std::time::Instant;

#[test]
#[ignore]
fn bench_training_step() {
    let base = PathBuf::from(
        std::env::var("ONTOVEC_BENCH_BASE").unwrap_or_else(|_| "models/all-MiniLM-L6-v2".into()),
    );
    let data = PathBuf::from(
        std::env::var("ONTOVEC_BENCH_DATA").unwrap_or_else(|_| "data/ontovec".into()),
    );
    let out = PathBuf::from(
        std::env::var("ONTOVEC_BENCH_OUT")
            .unwrap_or_else(|_| "target/train_bench_workload.json".into()),
    );
    let steps: usize = std::env::var("ONTOVEC_BENCH_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10);
    let warmup = 2;
    if !base.join("model.safetensors").exists() || !data.join("store").exists() {
        eprintln!("skipping: set ONTOVEC_BENCH_BASE and ONTOVEC_BENCH_DATA");
        return;
    }
    let store = Store::open(&data.join("store")).unwrap();
    let corpus = Corpus::new(load_hierarchies(&store, 100, 0).unwrap());
    drop(store);
    let tok = TermTokenizer::load(&base.join("tokenizer.json"), 48).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let mut batches = Vec::new();
    for _ in 0..warmup + steps {
        let hi = corpus.pick_hierarchy(&mut rng).unwrap();
        let tree = corpus.tree_batch(hi, 32, &mut rng);
        let syn = corpus.synonym_batch(16, &mut rng);
        let mut texts: Vec<String> = tree.iter().map(|p| p.0.clone()).collect();
        texts.extend(tree.iter().map(|p| p.1.clone()));
        texts.extend(syn.iter().map(|s| s.0.clone()));
        let ids = tok.encode(&texts).unwrap();
        let cats: Vec<u8> = tree.iter().map(|p| p.2).collect();
        let labels: Vec<u32> = syn.iter().map(|s| s.1).collect();
        batches.push((ids, cats, labels));
    }
    let json = serde_json::json!({
        "warmup": warmup, "chunk": 32, "dropout": 0.1, "lr": 5e-5,
        "batches": batches.iter().map(|(ids, cats, labels)| serde_json::json!({"ids": ids, "cats": cats, "labels": labels})).collect::<Vec<_>>(),
    });
    std::fs::create_dir_all(out.parent().unwrap()).ok();
    std::fs::write(&out, json.to_string()).unwrap();

    let model = TrainBert::load_dir(&base).unwrap();
    let params = model.params().to_vec();
    let mut opt = AdamW::new(
        AdamWConfig {
            lr: 5e-5,
            ..Default::default()
        },
        &params,
    );
    let mut acc = GradAccumulator::new(&params);
    let cfg = LossConfig::default();
    let (mut ex, mut tokens, mut secs) = (0usize, 0usize, 0f64);
    let mut phases = [0f64; 3];
    for (k, (ids, cats, labels)) in batches.iter().enumerate() {
        let t0 = Instant::now();
        let mut drop = Dropout::new(rng.gen(), 0.1, 0.1);
        let emb = embed_sequences(&model, ids, 32, Some(&mut drop)).unwrap();
        let n = cats.len();
        let sims =
            rowwise_cosine(&emb.narrow(0, 0, n).unwrap(), &emb.narrow(0, n, n).unwrap()).unwrap();
        let (sl, _, _) =
            synonym_loss(&emb.narrow(0, 2 * n, labels.len()).unwrap(), labels, &cfg).unwrap();
        let loss = (tree_loss(&sims, cats, &cfg).unwrap() + sl).unwrap();
        let t1 = Instant::now();
        let grads = loss.backward().unwrap();
        let t2 = Instant::now();
        acc.add(&params, &grads).unwrap();
        let mut g = acc.take_mean();
        clip_global_norm(&mut g, 1.0);
        opt.update(&params, &g, 5e-5).unwrap();
        let t3 = Instant::now();
        if k >= warmup {
            secs += t3.duration_since(t0).as_secs_f64();
            ex += ids.len();
            tokens += ids.iter().map(|s| s.len()).sum::<usize>();
            phases[0] += t1.duration_since(t0).as_secs_f64();
            phases[1] += t2.duration_since(t1).as_secs_f64();
            phases[2] += t3.duration_since(t2).as_secs_f64();
        }
    }
    println!(
        "{}",
        serde_json::json!({
            "impl": "candle 0.11 (ontovec train)",
            "steps": steps, "examples": ex, "tokens": tokens, "seconds": secs,
            "examples_per_sec": ex as f64 / secs, "tokens_per_sec": tokens as f64 / secs,
            "forward_s": phases[0], "backward_s": phases[1], "optimizer_s": phases[2],
            "workload": out,
        })
    );
}

/// Forward-only timings on one workload batch: candle's BertModel (inference), the trainer's
/// forward without and with dropout, and with autograd (for locating the training overhead).
#[test]
#[ignore]
fn bench_forward_variants() {
    let base = PathBuf::from(
        std::env::var("ONTOVEC_BENCH_BASE").unwrap_or_else(|_| "models/all-MiniLM-L6-v2".into()),
    );
    let wl = PathBuf::from(
        std::env::var("ONTOVEC_BENCH_OUT")
            .unwrap_or_else(|_| "target/train_bench_workload.json".into()),
    );
    if !base.join("model.safetensors").exists() || !wl.exists() {
        eprintln!("skipping: run bench_training_step first");
        return;
    }
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&wl).unwrap()).unwrap();
    let ids: Vec<Vec<u32>> = serde_json::from_value(v["batches"][0]["ids"].clone()).unwrap();
    let model = TrainBert::load_dir(&base).unwrap();
    let enc = ontovec::train::common::embed::InferenceEncoder::from_tensors(
        &model.config,
        model.tensors(),
    )
    .unwrap();
    let time = |name: &str, f: &dyn Fn()| {
        f();
        let t = Instant::now();
        for _ in 0..3 {
            f();
        }
        println!(
            "{name}: {:.3} s per batch of {}",
            t.elapsed().as_secs_f64() / 3.0,
            ids.len()
        );
    };
    time("BertModel inference (chunks of 64)", &|| {
        enc.embed_ids(&ids).unwrap();
    });
    time("trainer forward, no dropout", &|| {
        embed_sequences(&model, &ids, 32, None).unwrap();
    });
    time("trainer forward, dropout", &|| {
        let mut d = Dropout::new(1, 0.1, 0.1);
        embed_sequences(&model, &ids, 32, Some(&mut d)).unwrap();
    });
    time("trainer forward + backward", &|| {
        let e = embed_sequences(&model, &ids, 32, None).unwrap();
        e.sum_all().unwrap().backward().unwrap();
    });
}
