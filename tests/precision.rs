//! A model served in another precision never mixes its vectors with the earlier ones: the
//! embedding cache and the vector index are keyed by the model's vector id (`tiny` in F32,
//! `tiny@bf16` in BF16), so a precision change builds its own index and cache entries, and
//! switching back finds the F32 ones as they were.

mod common;

use ontovec::encoder::{ModelKind, Precision, PrecisionChoice, PrecisionPolicy};
use ontovec::ontology::Format;
use ontovec::service::app::App;
use ontovec::util::vector::cosine;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn open(data: &Path, models: &Path, precision: PrecisionChoice) -> std::sync::Arc<App> {
    let mut cfg = common::config(data, models);
    cfg.precision = PrecisionPolicy {
        forced: Some(precision),
        default: PrecisionChoice::F32,
    };
    App::open(cfg).unwrap()
}

/// Cached vectors by text for one vector id.
fn cached(data: &Path, vid: &str) -> HashMap<String, Vec<f32>> {
    cached_in(
        &ontovec::store::Store::open(&data.join("store")).unwrap(),
        vid,
    )
}

/// The same, from a store that is open.
fn cached_in(store: &ontovec::store::Store, vid: &str) -> HashMap<String, Vec<f32>> {
    let tree = ontovec::search::engine::embedding_cache(store).unwrap();
    let mut prefix = vid.as_bytes().to_vec();
    prefix.push(0);
    tree.scan_prefix(&prefix)
        .map(|kv| {
            let (k, v) = kv.unwrap();
            let text = String::from_utf8(k[prefix.len()..].to_vec()).unwrap();
            (text, ontovec::search::cache::decode_vector(&v))
        })
        .collect()
}

fn query_vector_top(app: &App, text: &str) -> Vec<u64> {
    let engine = app.search.as_ref().unwrap();
    let handle = engine
        .registry()
        .get(Some("tiny"), ModelKind::Terms)
        .unwrap();
    let q = handle.embed_blocking(&[text]).unwrap().remove(0);
    engine
        .vector_hits("tiny", &q, 5, None)
        .unwrap()
        .iter()
        .map(|h| h.term_id)
        .collect()
}

/// A tiny model under `root/models/tiny`; returns the models dir, the data dir and the data
/// dir's vector index folder.
fn tiny_model_and_dirs(root: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let models = root.join("models");
    ontovec::encoder::testing::write_tiny_bert(
        &models.join("tiny"),
        &ontovec::encoder::testing::TinyBert::default(),
    )
    .unwrap();
    let data = root.join("data");
    let vectors = data.join("indexes/vectors");
    (models, data, vectors)
}

/// The F32 app with the ICD-10-CM sample loaded and every index caught up.
fn loaded_f32(data: &Path, models: &Path) -> std::sync::Arc<App> {
    let app = open(data, models, PrecisionChoice::F32);
    common::load(
        &app,
        Format::Icd10cmXml,
        &["ontologies/icd10cm/icd10cm-tabular-sample.xml"],
    );
    app.sync_indexes(None).unwrap();
    app
}

#[test]
fn a_precision_change_never_mixes_vectors() {
    let tmp = tempfile::tempdir().unwrap();
    let (models, data, vectors) = tiny_model_and_dirs(tmp.path());

    // F32: index and cache under the model's name
    let app = loaded_f32(&data, &models);
    let f32_top = query_vector_top(&app, "diabetes mellitus");
    assert!(!f32_top.is_empty());
    drop(app);
    assert!(vectors.join("tiny.usearch").is_file());
    let f32_cache = cached(&data, "tiny");
    assert!(f32_cache.len() > 10, "{} cached", f32_cache.len());

    // BF16 asked for: where the CPU runs it (and the gate passes), a separate id
    let app = open(&data, &models, PrecisionChoice::Bf16);
    let engine = app.search.clone().unwrap();
    let m = engine
        .registry()
        .get(Some("tiny"), ModelKind::Terms)
        .unwrap()
        .manifest()
        .clone();
    let listed = engine.registry().list()[0].precision;
    assert_eq!(listed, m.precision, "/v1/models shows the served precision");
    if !Precision::Bf16.supported() {
        // the request falls back to F32: same identity, nothing rebuilt
        assert_eq!(
            (m.precision, m.vector_id()),
            (Precision::F32, "tiny".into())
        );
        eprintln!("this CPU has no AVX512_BF16: checked the F32 fallback only");
        return;
    }
    assert_eq!(
        (m.precision, m.vector_id()),
        (Precision::Bf16, "tiny@bf16".into())
    );
    let before = std::fs::metadata(vectors.join("tiny.usearch"))
        .unwrap()
        .modified()
        .unwrap();
    // until the BF16 index is built, searches read the complete F32 one
    let serving = |e: &ontovec::search::engine::SearchEngine| {
        let v = e.models()[0].vectors.clone().unwrap();
        (v.serving.precision, v.building.map(|b| b.precision))
    };
    assert_eq!(serving(&engine), (Precision::F32, Some(Precision::Bf16)));
    assert_eq!(
        query_vector_top(&app, "diabetes mellitus").len(),
        f32_top.len()
    );
    app.sync_indexes(None).unwrap();
    assert_eq!(serving(&engine), (Precision::Bf16, None));
    assert!(vectors.join("tiny@bf16.usearch").is_file());
    assert!(vectors.join("tiny@bf16.state.json").is_file());
    let bf16_top = query_vector_top(&app, "diabetes mellitus");
    assert_eq!(bf16_top.len(), f32_top.len());
    drop((app, engine));
    // the F32 index was not touched by the BF16 catch-up
    let after = std::fs::metadata(vectors.join("tiny.usearch"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after);

    // the cache holds both, for the same texts, computed separately
    let bf16_cache = cached(&data, "tiny@bf16");
    assert_eq!(f32_cache.len(), bf16_cache.len());
    let mut differ = 0;
    for (text, v) in &bf16_cache {
        let f = &f32_cache[text];
        assert!(cosine(v, f) > 0.98, "{text}: {}", cosine(v, f));
        differ += usize::from(v != f);
    }
    assert!(differ > 0, "BF16 vectors are their own computation");
    // the F32 entries were left as they were
    assert_eq!(cached(&data, "tiny"), f32_cache);

    // back to F32: the F32 index is current, so nothing is re-embedded and answers are as before
    let app = open(&data, &models, PrecisionChoice::F32);
    assert_eq!(query_vector_top(&app, "diabetes mellitus"), f32_top);
    assert!(app.search.as_ref().unwrap().behind().unwrap().is_empty());
}

/// With `ONTOVEC_GEMM=portable` (read once per process, so the test re-runs itself in a child
/// with it set) no BF16 or VNNI instruction may run: a forced `bf16` or `int8`, or `auto`, is
/// served in F32, under the F32 identity, and no gate is run.
#[test]
fn forcing_the_portable_path_serves_f32_whatever_is_asked() {
    const NAME: &str = "forcing_the_portable_path_serves_f32_whatever_is_asked";
    if std::env::var("ONTOVEC_GEMM").as_deref() != Ok("portable") {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", NAME, "--nocapture", "--test-threads=1"])
            .env("ONTOVEC_GEMM", "portable")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("1 passed"),
            "child: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        return;
    }
    assert!(!Precision::Bf16.supported() && !Precision::Int8.supported());
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("tiny");
    ontovec::encoder::testing::write_tiny_bert(&dir, &Default::default()).unwrap();
    for asked in [
        PrecisionChoice::Bf16,
        PrecisionChoice::Int8,
        PrecisionChoice::Auto,
    ] {
        let forced = PrecisionPolicy {
            forced: Some(asked),
            default: PrecisionChoice::Auto,
        };
        let e = ontovec::encoder::Encoder::load_with(&dir, forced).unwrap();
        assert_eq!(e.precision(), Precision::F32, "{asked:?}");
        assert_eq!(e.manifest().vector_id(), "tiny");
        assert!(e.gate().is_none());
        let v = e.embed_texts(&["fever"], 1, false).unwrap();
        assert!((v[0].iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4);
    }
}

/// The first serve in a new precision of a data directory embedded in another: until the new
/// precision's index is complete, searches read the complete index of the other precision
/// (never the partial new one, never both mixed), `/v1/models` says which, and they switch
/// when a catch-up completes the new index. The data directory is made BF16-embedded by
/// renaming a complete index to the BF16 vector id, and the model is opened in F32, so the
/// test runs the same on any CPU.
#[test]
fn a_precision_change_serves_the_complete_index_until_the_new_one_is_built() {
    let tmp = tempfile::tempdir().unwrap();
    let (models, data, vectors) = tiny_model_and_dirs(tmp.path());
    let app = open(&data, &models, PrecisionChoice::F32);
    let umls = ontovec::ontology::synthetic::write_umls(&tmp.path().join("umls"), 1_000).unwrap();
    let req = common::ingest_request(Format::UmlsRrf, &umls.files);
    app.ingest(&req, ontovec::util::progress::Progress::new())
        .unwrap();
    app.sync_indexes(None).unwrap();
    let engine = app.search.clone().unwrap();
    let q = engine
        .registry()
        .get(Some("tiny"), ModelKind::Terms)
        .unwrap()
        .embed_blocking(&["diabetes mellitus"])
        .unwrap()
        .remove(0);
    let hits = |e: &ontovec::search::engine::SearchEngine, k| e.vector_hits("tiny", &q, k, None);
    let top = hits(&engine, 10).unwrap();
    let total = hits(&engine, 1000).unwrap().len();
    // more terms than one catch-up chunk (256), so a catch-up can stop half way
    assert!(total > 256, "{total} terms");
    drop((app, engine));
    for suffix in [".usearch", ".usearch.keys", ".usearch.json", ".state.json"] {
        std::fs::rename(
            vectors.join(format!("tiny{suffix}")),
            vectors.join(format!("tiny@bf16{suffix}")),
        )
        .unwrap();
    }
    let bf16_written = || {
        std::fs::metadata(vectors.join("tiny@bf16.usearch"))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before = bf16_written();
    let serving = |e: &ontovec::search::engine::SearchEngine| {
        let v = e.models()[0].vectors.clone().unwrap();
        (v.serving.precision, v.building.map(|b| b.precision))
    };

    // F32 asked for, only a BF16 index complete: it answers, the F32 one is built beside it
    let app = open(&data, &models, PrecisionChoice::F32);
    let engine = app.search.clone().unwrap();
    assert_eq!(serving(&engine), (Precision::Bf16, Some(Precision::F32)));
    assert_eq!(engine.behind().unwrap(), vec!["vectors/tiny".to_string()]);
    assert_eq!(hits(&engine, 10).unwrap(), top);
    // a catch-up stopped after its first chunk: the partial F32 index is not what answers
    let stop = ontovec::util::progress::Progress::new();
    stop.cancel();
    assert!(engine.sync(Some(&stop)).is_err());
    assert_eq!(serving(&engine), (Precision::Bf16, Some(Precision::F32)));
    assert_eq!(hits(&engine, 10).unwrap(), top);
    assert_eq!(hits(&engine, 1000).unwrap().len(), total);
    drop((app, engine));

    // a restart in the middle of the build: the same
    let app = open(&data, &models, PrecisionChoice::F32);
    let engine = app.search.clone().unwrap();
    assert_eq!(serving(&engine), (Precision::Bf16, Some(Precision::F32)));
    assert_eq!(hits(&engine, 1000).unwrap().len(), total);
    // the catch-up that completes the F32 index switches searches to it
    engine.sync(None).unwrap();
    assert_eq!(serving(&engine), (Precision::F32, None));
    assert!(engine.behind().unwrap().is_empty());
    // a graph built anew: a k beyond its size reaches (nearly) every vector, not the 256 of
    // a partial build
    let reached = hits(&engine, 1000).unwrap().len();
    assert!(reached + total / 50 >= total, "{reached} of {total}");
    // rebuilt from the embedding cache, whose values are half precision: the same top hit,
    // its score within the rounding
    let first = hits(&engine, 10).unwrap()[0];
    assert_eq!(first.term_id, top[0].term_id);
    assert!(
        (first.score - top[0].score).abs() < 1e-3,
        "{first:?} vs {:?}",
        top[0]
    );
    drop((app, engine));
    // the BF16 index was only read
    assert_eq!(bf16_written(), before);
    // and the next start serves the F32 index directly
    let app = open(&data, &models, PrecisionChoice::F32);
    assert_eq!(
        serving(app.search.as_ref().unwrap()),
        (Precision::F32, None)
    );
}

/// The vector dtype works like the precision: each dtype has its own index file, the complete
/// index of the old dtype answers until the new one is built (from the embedding cache, nothing
/// is embedded again), and switching back finds the old index as it was.
#[test]
fn a_dtype_change_builds_its_own_index_behind_the_complete_one() {
    use ontovec::search::vector::VectorScalar;
    let tmp = tempfile::tempdir().unwrap();
    let (models, data, vectors) = tiny_model_and_dirs(tmp.path());
    let open_dtype = |dtype| {
        let mut cfg = common::config(&data, &models);
        cfg.vector.dtype = dtype;
        App::open(cfg).unwrap()
    };
    let serving = |app: &App| {
        let v = app.search.as_ref().unwrap().models()[0]
            .vectors
            .clone()
            .unwrap();
        (v.serving.dtype, v.building.map(|b| b.dtype))
    };
    let app = open_dtype(VectorScalar::F32);
    common::load(
        &app,
        Format::Icd10cmXml,
        &["ontologies/icd10cm/icd10cm-tabular-sample.xml"],
    );
    app.sync_indexes(None).unwrap();
    let f32_top = query_vector_top(&app, "diabetes mellitus");
    drop(app);
    let cache_before = cached(&data, "tiny");
    let written = || {
        std::fs::metadata(vectors.join("tiny.usearch"))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before = written();

    let app = open_dtype(VectorScalar::I8);
    assert_eq!(serving(&app), (VectorScalar::F32, Some(VectorScalar::I8)));
    assert_eq!(query_vector_top(&app, "diabetes mellitus"), f32_top);
    app.sync_indexes(None).unwrap();
    assert_eq!(serving(&app), (VectorScalar::I8, None));
    assert!(vectors.join("tiny.i8.usearch").is_file());
    let i8_top = query_vector_top(&app, "diabetes mellitus");
    assert_eq!(i8_top.len(), f32_top.len());
    assert_eq!(i8_top[0], f32_top[0]);
    drop(app);
    assert_eq!(
        cached(&data, "tiny"),
        cache_before,
        "nothing embedded again"
    );
    assert_eq!(written(), before, "the f32 index was only read");

    // a damaged i8 index (it reopens empty though its state says complete): the f32 one
    // answers again while the i8 one is rebuilt
    std::fs::write(vectors.join("tiny.i8.usearch"), b"garbage").unwrap();
    let app = open_dtype(VectorScalar::I8);
    assert_eq!(serving(&app), (VectorScalar::F32, Some(VectorScalar::I8)));
    assert_eq!(query_vector_top(&app, "diabetes mellitus"), f32_top);
    app.sync_indexes(None).unwrap();
    assert_eq!(serving(&app), (VectorScalar::I8, None));
    assert_eq!(query_vector_top(&app, "diabetes mellitus")[0], f32_top[0]);
    drop(app);

    let app = open_dtype(VectorScalar::F32);
    assert_eq!(serving(&app), (VectorScalar::F32, None));
    assert_eq!(query_vector_top(&app, "diabetes mellitus"), f32_top);
}

/// New weights under the same model name: the old vectors are dropped at open and catch-up
/// re-embeds every term with the new weights; the same weights again keep everything.
#[test]
fn new_weights_under_the_same_name_are_re_embedded() {
    let tmp = tempfile::tempdir().unwrap();
    let (models, data, vectors) = tiny_model_and_dirs(tmp.path());
    let app = loaded_f32(&data, &models);
    drop(app);
    let old = cached(&data, "tiny");
    assert!(old.len() > 10);

    // same weights: reopening keeps the cache and the index as they are
    let app = open(&data, &models, PrecisionChoice::F32);
    drop(app);
    assert_eq!(cached(&data, "tiny"), old);
    assert!(vectors.join("tiny.usearch").is_file());

    // retrained into the same folder
    ontovec::encoder::testing::write_tiny_bert(
        &models.join("tiny"),
        &ontovec::encoder::testing::TinyBert {
            seed: 99,
            ..Default::default()
        },
    )
    .unwrap();
    let app = open(&data, &models, PrecisionChoice::F32);
    assert!(
        cached_in(&app.store, "tiny").is_empty(),
        "the old weights' cache entries are gone"
    );
    assert!(!vectors.join("tiny.usearch").is_file(), "and its index");
    app.sync_indexes(None).unwrap();
    let handle = app
        .search
        .as_ref()
        .unwrap()
        .registry()
        .get(Some("tiny"), ModelKind::Terms)
        .unwrap()
        .clone();
    drop(app);
    let new = cached(&data, "tiny");
    assert_eq!(new.len(), old.len(), "every term embedded again");
    let (text, v) = new.iter().next().unwrap();
    let fresh = handle.embed_blocking(&[text.as_str()]).unwrap().remove(0);
    assert!(
        cosine(v, &fresh) > 0.9999,
        "cached = the new weights' vector"
    );
    assert!(cosine(v, &old[text]) < 0.999, "and not the old one");
}
