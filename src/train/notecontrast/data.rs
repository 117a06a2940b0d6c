//! Data for NoteContrast training ([`crate::train::notecontrast`]): notes from the store with their
//! codes mapped to the code vocabulary, the patient-level train/dev/test split, and the note
//! note features: window-pooled and segment embeddings, computed once with the frozen encoder
//! and cached.

use crate::domain::model::ConceptRef;
use crate::encoder::tokenize::TextTokenizer;
use crate::encoder::Encoder;
use crate::notes::segments::{self, SegmentConfig};
use crate::notes::windows::{self, WindowConfig};
use crate::store::notes::NoteStore;
use crate::store::Store;
use crate::train::common::checkpoint::progress_bar;
use crate::train::notecontrast::NoteContrastConfig;
use candle_core::{Device, Tensor};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::Instant;

/// A note prepared for training.
pub(crate) struct Item {
    pub(crate) text: String,
    pub(crate) codes: Vec<usize>,
}

/// Data of a run.
pub(crate) struct Data {
    /// How the notes were split (for the report).
    pub(crate) split_rule: String,
    pub(crate) items: Vec<Item>,
    pub(crate) train: Vec<usize>,
    pub(crate) dev: Vec<usize>,
    pub(crate) test: Vec<usize>,
    pub(crate) vocab: Vec<ConceptRef>,
    pub(crate) descriptions: Vec<String>,
    pub(crate) rare: HashSet<usize>,
    /// Codes of the same systems that no note carries (when the label space is the store's
    /// systems), with their descriptions; coded through the code encoder from their
    /// description embeddings, after `vocab` in every score vector.
    pub(crate) extra: Vec<ConceptRef>,
    pub(crate) extra_descriptions: Vec<String>,
    /// BM25 document of every code (`vocab` then `extra`): description, equivalent names and
    /// inclusion terms.
    pub(crate) bm25_docs: Vec<String>,
}

fn bm25_doc(c: &crate::domain::model::Concept) -> String {
    let mut s = c.preferred_term.clone();
    for t in c
        .terms
        .iter()
        .filter(|t| t.kind.is_equivalent() || t.kind == crate::domain::model::TermKind::Inclusion)
    {
        s.push_str(" ; ");
        s.push_str(&t.text);
    }
    s
}

pub(crate) fn load_data(store: &Store, cfg: &NoteContrastConfig) -> anyhow::Result<Data> {
    let notes = NoteStore::open(store)?;
    let mut items = Vec::new();
    let mut keys = Vec::new();
    let mut vocab_idx: BTreeMap<ConceptRef, usize> = BTreeMap::new();
    let mut raw: Vec<Vec<ConceptRef>> = Vec::new();
    // a note's own split (`meta.split`: train, dev or test — CodiEsp's), when it has one
    let mut given: Vec<Option<String>> = Vec::new();
    for n in notes.iter_from(0) {
        let n = n?.note;
        let codes: Vec<ConceptRef> = n
            .codes
            .iter()
            .filter(|c| c.system == "ICD10CM" || c.system == "ICD9CM")
            .cloned()
            .collect();
        if codes.is_empty() {
            continue;
        }
        for c in &codes {
            let l = vocab_idx.len();
            vocab_idx.entry(c.clone()).or_insert(l);
        }
        let meta = n.meta();
        let split = meta
            .get("split")
            .and_then(|s| s.as_str())
            .filter(|s| matches!(*s, "train" | "dev" | "test"))
            .map(str::to_string);
        given.push(split);
        let key = meta
            .get("patient")
            .and_then(|p| p.as_str().map(str::to_string))
            .unwrap_or_else(|| n.id.clone());
        keys.push(key);
        raw.push(codes);
        items.push(Item {
            text: n.text,
            codes: Vec::new(),
        });
        if cfg.max_notes > 0 && items.len() >= cfg.max_notes {
            break;
        }
    }
    // a hashed split needs a few notes; notes with their own split need one per split
    anyhow::ensure!(
        items.len() >= 10 || (!items.is_empty() && given.iter().any(Option::is_some)),
        "the store holds {} notes with ICD codes; load notes first (ontovec synth-notes, ingest --format notes-jsonl)",
        items.len()
    );
    // vocabulary in sorted order
    let vocab: Vec<ConceptRef> = vocab_idx.keys().cloned().collect();
    let pos: HashMap<&ConceptRef, usize> = vocab.iter().enumerate().map(|(i, c)| (c, i)).collect();
    for (it, codes) in items.iter_mut().zip(&raw) {
        let mut seen = HashSet::new();
        it.codes = codes
            .iter()
            .map(|c| pos[c])
            .filter(|i| seen.insert(*i))
            .collect();
    }
    let (mut train, mut dev, mut test) = (Vec::new(), Vec::new(), Vec::new());
    let any_given = given.iter().any(Option::is_some);
    let mut split_rule = "by meta.patient (else note id): fnv1a64 % 1000 < test_permille → test, next dev_permille → dev".to_string();
    if any_given {
        // the notes' own splits; notes without one are augmentation (train) or left out
        let has_test = given.iter().any(|g| g.as_deref() == Some("test"));
        for (i, g) in given.iter().enumerate() {
            match g.as_deref() {
                Some("dev") => {
                    dev.push(i);
                    if !has_test {
                        test.push(i);
                    }
                }
                Some("test") => test.push(i),
                Some(_) => train.push(i),
                None if cfg.augment => train.push(i),
                None => {}
            }
        }
        split_rule = format!(
            "meta.split of the notes (train / dev{}); notes without one {}",
            if has_test {
                " / test"
            } else {
                "; no test split is loaded, so the reported split is dev itself and the F1 threshold is tuned on the notes it is reported on"
            },
            if cfg.augment {
                "train (augmentation)"
            } else {
                "left out"
            }
        );
    }
    for (i, k) in keys.iter().enumerate() {
        if any_given {
            break;
        }
        let h = (crate::train::hiprbert::data::fnv1a64(k.as_bytes()) % 1000) as u32;
        if h < cfg.test_permille {
            test.push(i);
        } else if h < cfg.test_permille + cfg.dev_permille {
            dev.push(i);
        } else {
            train.push(i);
        }
    }
    anyhow::ensure!(
        !train.is_empty() && !dev.is_empty() && !test.is_empty(),
        "too few notes for a train/dev/test split"
    );
    let mut counts = vec![0usize; vocab.len()];
    for &i in &train {
        for &c in &items[i].codes {
            counts[c] += 1;
        }
    }
    let rare = (0..vocab.len())
        .filter(|&c| (1..=cfg.rare_max_train).contains(&counts[c]))
        .collect();
    let mut descriptions = Vec::with_capacity(vocab.len());
    let mut bm25_docs = Vec::with_capacity(vocab.len());
    for c in &vocab {
        match store.concept(&c.system, &c.code)? {
            Some(r) => {
                descriptions.push(r.concept.preferred_term.clone());
                bm25_docs.push(bm25_doc(&r.concept));
            }
            None => {
                descriptions.push(c.code.clone());
                bm25_docs.push(c.code.clone());
            }
        }
    }
    let (mut extra, mut extra_descriptions) = (Vec::new(), Vec::new());
    if cfg.all_codes {
        let mut systems: Vec<&str> = vocab.iter().map(|c| c.system.as_str()).collect();
        systems.dedup();
        for system in systems {
            let Some(rid) = store.active_rid(system) else {
                continue;
            };
            for c in store.concepts_of_release(rid)? {
                let c = c?;
                let r = ConceptRef::new(system, &c.code);
                // chapter and block ranges ("H25-H28") are hierarchy nodes, not codes
                if pos.contains_key(&r) || c.code.contains('-') {
                    continue;
                }
                extra_descriptions.push(c.preferred_term.clone());
                bm25_docs.push(bm25_doc(&c));
                extra.push(r);
            }
        }
    }
    Ok(Data {
        split_rule,
        items,
        train,
        dev,
        test,
        vocab,
        descriptions,
        rare,
        extra,
        extra_descriptions,
        bm25_docs,
    })
}

/// Embeddings of `texts` by `enc` (served under the name `model`): from the search engine's
/// embedding cache where it holds them (a served terms model has embedded every code name of
/// the store), the rest embedded here (progress bar) and added to the cache.
pub(crate) fn description_vectors(
    store: &Store,
    model: &str,
    enc: &Encoder,
    texts: &[String],
) -> anyhow::Result<Vec<Vec<f32>>> {
    use crate::search::engine::{embed_through_cache, embedding_cache};
    let cache = embedding_cache(store)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let mut embedded = 0;
    let out = embed_through_cache(&cache, model, &refs, Some(enc.dim()), |todo| {
        embedded = todo.len();
        let bar = progress_bar(todo.len() as u64, "embedding code descriptions");
        let mut out = Vec::with_capacity(todo.len());
        for chunk in todo.chunks(1024) {
            out.extend(enc.embed_texts(chunk, 64, true)?);
            bar.inc(chunk.len() as u64);
        }
        bar.finish();
        Ok::<_, anyhow::Error>(out)
    })?;
    tracing::info!(
        texts = texts.len(),
        cached = texts.len() - embedded,
        model,
        "code description embeddings"
    );
    Ok(out)
}

/// What the frozen note encoder makes of every note: the pooled window vector (the note
/// vector of search and of the sequence loss) and the unit vectors of its segments (what coding
/// attends over).
pub(crate) struct NoteFeatures {
    /// Pooled window vector per note.
    pub(crate) pooled: Vec<Vec<f32>>,
    /// Segment vectors per note (at least one: a note without segments gets its pooled vector).
    pub(crate) segments: Vec<Vec<Vec<f32>>>,
}

const CACHE_KEYS: [&str; 3] = ["note_vectors", "segment_vectors", "segment_counts"];

fn load_cache(cache: &Path, n: usize) -> Option<NoteFeatures> {
    let t = candle_core::safetensors::load(cache, &Device::Cpu).ok()?;
    let [p, s, c] = CACHE_KEYS.map(|k| t.get(k));
    let (p, s, c) = (p?, s?, c?);
    if p.dims()[0] != n {
        return None;
    }
    let pooled: Vec<Vec<f32>> = p.to_vec2().ok()?;
    let counts: Vec<u32> = c.to_vec1().ok()?;
    let mut rows = s.to_vec2::<f32>().ok()?.into_iter();
    let segments = counts
        .iter()
        .map(|&k| rows.by_ref().take(k as usize).collect())
        .collect();
    Some(NoteFeatures { pooled, segments })
}

fn save_cache(cache: &Path, f: &NoteFeatures) -> anyhow::Result<()> {
    let d = f.pooled.first().map(|v| v.len()).unwrap_or(0);
    let flat = |rows: &mut dyn Iterator<Item = &Vec<f32>>| -> (Vec<f32>, usize) {
        let mut n = 0;
        let v = rows
            .inspect(|_| n += 1)
            .flat_map(|r| r.iter().copied())
            .collect();
        (v, n)
    };
    let (p, np) = flat(&mut f.pooled.iter());
    let (s, ns) = flat(&mut f.segments.iter().flatten());
    let counts: Vec<u32> = f.segments.iter().map(|s| s.len() as u32).collect();
    let nc = counts.len();
    let mut m = HashMap::new();
    m.insert(
        CACHE_KEYS[0].to_string(),
        Tensor::from_vec(p, (np, d), &Device::Cpu)?,
    );
    m.insert(
        CACHE_KEYS[1].to_string(),
        Tensor::from_vec(s, (ns, d), &Device::Cpu)?,
    );
    m.insert(
        CACHE_KEYS[2].to_string(),
        Tensor::from_vec(counts, nc, &Device::Cpu)?,
    );
    candle_core::safetensors::save(&m, cache)?;
    Ok(())
}

/// Window-pooled and segment embeddings of every note (cached in `cache` between sessions).
pub(crate) fn note_features(
    enc: &Encoder,
    tok: &TextTokenizer,
    wcfg: &WindowConfig,
    scfg: &SegmentConfig,
    items: &[Item],
    cache: &Path,
) -> anyhow::Result<NoteFeatures> {
    if let Some(f) = load_cache(cache, items.len()) {
        return Ok(f);
    }
    let bar = progress_bar(items.len() as u64, "embedding notes");
    let t0 = Instant::now();
    let mut out = NoteFeatures {
        pooled: Vec::with_capacity(items.len()),
        segments: Vec::with_capacity(items.len()),
    };
    let (mut wins, mut segs, mut tokens) = (0usize, 0usize, 0usize);
    let embed = |w: &[windows::Window]| -> anyhow::Result<Vec<Vec<f32>>> {
        let mut vecs = Vec::with_capacity(w.len());
        for chunk in w.chunks(32) {
            let b: Vec<&[u32]> = chunk.iter().map(|x| x.ids.as_slice()).collect();
            vecs.extend(enc.embed_ids(&b)?);
        }
        Ok(vecs)
    };
    for it in items {
        let ids = tok.encode(&it.text)?;
        let (w, _) = windows::split(&ids, wcfg);
        let vecs = embed(&w)?;
        let weights: Vec<usize> = w.iter().map(|x| x.body).collect();
        let pooled = windows::pool(&vecs, &weights);
        let (sw, _) = segments::split(&it.text, tok, scfg)?;
        let mut sv = embed(&sw)?;
        if sv.is_empty() {
            sv.push(pooled.clone());
        }
        wins += w.len();
        segs += sw.len();
        tokens += w.iter().chain(&sw).map(|x| x.ids.len()).sum::<usize>();
        out.pooled.push(pooled);
        out.segments.push(sv);
        bar.inc(1);
        let rate = tokens as f64 / t0.elapsed().as_secs_f64().max(1e-9);
        if bar.position().is_multiple_of(250) {
            tracing::info!(
                notes = bar.position(),
                windows = wins,
                segments = segs,
                tokens_per_s = format!("{rate:.0}"),
                "embedding notes"
            );
        }
        bar.set_message(format!(
            "{wins} windows, {segs} segments, {rate:.0} tokens/s"
        ));
    }
    bar.finish();
    save_cache(cache, &out)?;
    tracing::info!(
        notes = items.len(),
        windows = wins,
        segments = segs,
        tokens,
        secs = format!("{:.0}", t0.elapsed().as_secs_f64()),
        "notes embedded"
    );
    Ok(out)
}
