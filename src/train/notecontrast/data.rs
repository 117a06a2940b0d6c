//! Data for NoteContrast training ([`crate::train::notecontrast`]): notes from the store, the
//! patient-level train/dev/test split, the code vocabulary (the codes of the **training** notes
//! only: no dev or test label shapes a token, the random negatives or the vocabulary-only
//! candidate set), every note's codes as indices, and the note features: window-pooled and
//! segment embeddings, computed once with the frozen encoder and cached.

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
use std::collections::{HashMap, HashSet};
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
    /// The codes of the training notes (sorted): the code encoder's tokens, and the first
    /// columns of every score vector.
    pub(crate) vocab: Vec<ConceptRef>,
    pub(crate) descriptions: Vec<String>,
    pub(crate) rare: HashSet<usize>,
    /// Codes of the same systems that no training note carries (when the label space is the
    /// store's systems; codes only dev or test notes carry are among them), with their
    /// descriptions; coded through the code encoder from their
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

/// Where each note's codes point once the vocabulary is fixed: `vocab` (the codes of the
/// training notes, sorted) comes first in every score vector, then `extra`; a code of a dev or
/// test note in neither (the label space is the notes' codes, or the store lacks the code)
/// gets an index past both, which no score vector has: it can only be missed.
pub(crate) struct CodeIndex {
    /// Codes of the training notes, sorted: the code encoder's tokens.
    pub(crate) vocab: Vec<ConceptRef>,
    /// Every note's codes as indices (order kept, duplicates dropped).
    pub(crate) codes: Vec<Vec<usize>>,
}

/// The code vocabulary from the training notes only (`raw[i]` the codes of note `i`), and
/// every note's codes as indices into `vocab ++ extra ++ (codes in neither)`. Codes that only
/// dev or test notes carry get no token: they are scored, if at all, through `extra` (their
/// description embedding), exactly as codes no note carries.
pub(crate) fn index_codes(
    raw: &[Vec<ConceptRef>],
    train: &[usize],
    extra: &[ConceptRef],
) -> CodeIndex {
    let vocab: Vec<ConceptRef> = train
        .iter()
        .flat_map(|&i| raw[i].iter().cloned())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut pos: HashMap<&ConceptRef, usize> = vocab
        .iter()
        .chain(extra)
        .enumerate()
        .map(|(i, c)| (c, i))
        .collect();
    let mut next = vocab.len() + extra.len();
    let codes = raw
        .iter()
        .map(|codes| {
            let mut seen = HashSet::new();
            codes
                .iter()
                .map(|c| {
                    *pos.entry(c).or_insert_with(|| {
                        next += 1;
                        next - 1
                    })
                })
                .filter(|i| seen.insert(*i))
                .collect()
        })
        .collect();
    CodeIndex { vocab, codes }
}

/// The train/dev/test split, and the rule that made it (for the model card). Notes that carry
/// their own split (`meta.split`, as CodiEsp's do) keep it; otherwise by key (patient, else note
/// id): `fnv1a64 % 1000` below `test_permille` → test, the next `dev_permille` → dev, the rest
/// train.
fn split(
    keys: &[String],
    given: &[Option<String>],
    cfg: &NoteContrastConfig,
) -> ([Vec<usize>; 3], String) {
    let (mut train, mut dev, mut test) = (Vec::new(), Vec::new(), Vec::new());
    if given.iter().any(Option::is_some) {
        // the notes' own splits (CodiEsp's); notes without one are augmentation (train) or left out
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
        let rule = format!(
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
        return ([train, dev, test], rule);
    }
    for (i, k) in keys.iter().enumerate() {
        let h = (crate::util::hash::fnv1a64(k.as_bytes()) % 1000) as u32;
        if h < cfg.test_permille {
            test.push(i);
        } else if h < cfg.test_permille + cfg.dev_permille {
            dev.push(i);
        } else {
            train.push(i);
        }
    }
    let rule = "by meta.patient (else note id): fnv1a64 % 1000 < test_permille → test, next dev_permille → dev";
    ([train, dev, test], rule.to_string())
}

pub(crate) fn load_data(store: &Store, cfg: &NoteContrastConfig) -> anyhow::Result<Data> {
    let notes = NoteStore::open(store)?;
    let mut items = Vec::new();
    let mut keys = Vec::new();
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
        let meta = n.meta();
        given.push(
            meta.get("split")
                .and_then(|s| s.as_str())
                .filter(|s| matches!(*s, "train" | "dev" | "test"))
                .map(str::to_string),
        );
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
    let ([train, dev, test], split_rule) = split(&keys, &given, cfg);
    anyhow::ensure!(
        !train.is_empty() && !dev.is_empty() && !test.is_empty(),
        "too few notes for a train/dev/test split"
    );
    // the vocabulary (trained tokens) from the training notes only
    let vocab = index_codes(&raw, &train, &[]).vocab;
    let in_vocab: HashSet<&ConceptRef> = vocab.iter().collect();
    let (mut extra, mut extra_descriptions, mut extra_docs) = (Vec::new(), Vec::new(), Vec::new());
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
                if in_vocab.contains(&r) || c.code.contains('-') {
                    continue;
                }
                extra_descriptions.push(c.preferred_term.clone());
                extra_docs.push(bm25_doc(&c));
                extra.push(r);
            }
        }
    }
    let idx = index_codes(&raw, &train, &extra);
    for (it, codes) in items.iter_mut().zip(idx.codes) {
        it.codes = codes;
    }
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
    let mut bm25_docs = Vec::with_capacity(vocab.len() + extra.len());
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
    bm25_docs.extend(extra_docs);
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

impl Data {
    /// Gold codes of `idx` notes outside the training vocabulary (no token; scored through
    /// their description embedding in the whole-label-space table, unreachable in the
    /// vocabulary-only table): (distinct codes, occurrences).
    pub(crate) fn unseen_gold(&self, idx: &[usize]) -> (usize, usize) {
        let v = self.vocab.len();
        let occ: Vec<usize> = idx
            .iter()
            .flat_map(|&i| self.items[i].codes.iter().copied())
            .filter(|&c| c >= v)
            .collect();
        (occ.iter().collect::<HashSet<_>>().len(), occ.len())
    }
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
    let out = embed_through_cache(
        &cache,
        store.disk(),
        model,
        &refs,
        Some(enc.dim()),
        |todo| {
            embedded = todo.len();
            let bar = progress_bar(todo.len() as u64, "embedding code descriptions");
            let mut out = Vec::with_capacity(todo.len());
            for chunk in todo.chunks(1024) {
                out.extend(enc.embed_texts(chunk, 64, true)?);
                bar.inc(chunk.len() as u64);
            }
            bar.finish();
            Ok::<_, anyhow::Error>(out)
        },
    )?;
    tracing::info!(
        texts = texts.len(),
        cached = texts.len() - embedded,
        model,
        "code description embeddings"
    );
    Ok(out)
}

/// What the note encoder makes of every note: the pooled window vector (the note vector of
/// search and of the sequence loss) and the unit vectors of its segments (what coding attends
/// over).
#[derive(Clone)]
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
    // atomic: a session killed while writing must not leave a cache the next one trusts
    crate::util::fs::write_atomic_with(cache, |tmp| candle_core::safetensors::save(&m, tmp))?;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::notes::Note;

    fn icd(code: &str) -> ConceptRef {
        ConceptRef::new("ICD10CM", code)
    }

    #[test]
    fn only_training_codes_get_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("store")).unwrap();
        let notes = NoteStore::open(&store).unwrap();
        // 40 patients: a shared code and one of their own each
        for p in 0..40 {
            notes
                .insert(Note {
                    id: format!("n{p}"),
                    text: format!("note of patient {p}"),
                    codes: vec![icd("I10"), icd(&format!("U{p:02}"))],
                    meta_json: format!("{{\"patient\": \"p{p}\"}}"),
                })
                .unwrap();
        }
        drop(notes);
        let mut cfg = NoteContrastConfig::preset(crate::train::common::config::Preset::Quick);
        cfg.test_permille = 300;
        cfg.dev_permille = 300;
        let d = load_data(&store, &cfg).unwrap();
        assert!(!d.test.is_empty() && !d.dev.is_empty() && !d.train.is_empty());
        let own = |i: usize| icd(&format!("U{:02}", i));
        let vocab: HashSet<&ConceptRef> = d.vocab.iter().collect();
        for &i in d.test.iter().chain(&d.dev) {
            assert!(
                !vocab.contains(&own(i)),
                "held-out-only code {:?} got a trained token",
                own(i)
            );
            assert!(d.items[i].codes.iter().any(|&c| c >= d.vocab.len()));
        }
        for &i in &d.train {
            assert!(
                vocab.contains(&own(i)),
                "training code {:?} has no token",
                own(i)
            );
            assert!(d.items[i].codes.iter().all(|&c| c < d.vocab.len()));
        }
        assert_eq!(
            d.vocab.len(),
            d.train.len() + 1,
            "I10 + one code per training note"
        );
        assert_eq!(d.unseen_gold(&d.test), (d.test.len(), d.test.len()));
        assert_eq!(d.unseen_gold(&d.train), (0, 0));
    }

    #[test]
    fn held_out_codes_point_into_extra_when_the_label_space_has_them() {
        let raw = vec![
            vec![icd("A"), icd("B")],
            vec![icd("C"), icd("A")],
            vec![icd("D")],
        ];
        let idx = index_codes(&raw, &[0], &[icd("C")]);
        assert_eq!(idx.vocab, [icd("A"), icd("B")]);
        // C is extra (index 2), D is in neither (index 3)
        assert_eq!(idx.codes, [vec![0, 1], vec![2, 0], vec![3]]);
    }
}
