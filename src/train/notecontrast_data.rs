//! Data for NoteContrast training ([`super::notecontrast`]): notes from the store with their
//! codes mapped to the code vocabulary, the patient-level train/dev/test split, and the note
//! window embeddings (computed once with the frozen encoder and cached).

use super::checkpoint::progress_bar;
use super::notecontrast::NoteContrastConfig;
use crate::encoder::tokenize::TextTokenizer;
use crate::encoder::Encoder;
use crate::notes::windows::{self, WindowConfig};
use crate::store::model::ConceptRef;
use crate::store::notes::NoteStore;
use crate::store::Store;
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
    pub(crate) items: Vec<Item>,
    pub(crate) train: Vec<usize>,
    pub(crate) dev: Vec<usize>,
    pub(crate) test: Vec<usize>,
    pub(crate) vocab: Vec<ConceptRef>,
    pub(crate) descriptions: Vec<String>,
    pub(crate) rare: HashSet<usize>,
}

pub(crate) fn load_data(store: &Store, cfg: &NoteContrastConfig) -> anyhow::Result<Data> {
    let notes = NoteStore::open(store)?;
    let mut items = Vec::new();
    let mut keys = Vec::new();
    let mut vocab_idx: BTreeMap<ConceptRef, usize> = BTreeMap::new();
    let mut raw: Vec<Vec<ConceptRef>> = Vec::new();
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
        let key = n
            .meta()
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
    anyhow::ensure!(
        items.len() >= 10,
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
    for (i, k) in keys.iter().enumerate() {
        let h = (super::data::fnv1a64(k.as_bytes()) % 1000) as u32;
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
    let descriptions = vocab
        .iter()
        .map(|c| {
            Ok(store
                .concept(&c.system, &c.code)?
                .map(|r| r.concept.preferred_term)
                .unwrap_or_else(|| c.code.clone()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(Data {
        items,
        train,
        dev,
        test,
        vocab,
        descriptions,
        rare,
    })
}

/// Pooled window embeddings of every note (cached in `cache` between sessions).
pub(crate) fn note_vectors(
    enc: &Encoder,
    tok: &TextTokenizer,
    wcfg: &WindowConfig,
    items: &[Item],
    cache: &Path,
) -> anyhow::Result<Vec<Vec<f32>>> {
    if let Ok(t) = candle_core::safetensors::load(cache, &Device::Cpu) {
        if let Some(v) = t.get("note_vectors") {
            if v.dims()[0] == items.len() {
                return Ok(v.to_vec2()?);
            }
        }
    }
    let bar = progress_bar(items.len() as u64, "embedding note windows");
    let t0 = Instant::now();
    let mut out = Vec::with_capacity(items.len());
    let (mut wins, mut tokens) = (0usize, 0usize);
    for it in items {
        let ids = tok.encode(&it.text)?;
        let (w, _) = windows::split(&ids, wcfg);
        let mut vecs = Vec::with_capacity(w.len());
        for chunk in w.chunks(16) {
            let b: Vec<&[u32]> = chunk.iter().map(|x| x.ids.as_slice()).collect();
            vecs.extend(enc.embed_ids(&b)?);
        }
        wins += w.len();
        tokens += w.iter().map(|x| x.ids.len()).sum::<usize>();
        let weights: Vec<usize> = w.iter().map(|x| x.body).collect();
        out.push(windows::pool(&vecs, &weights));
        bar.inc(1);
        if bar.position().is_multiple_of(250) {
            tracing::info!(
                notes = bar.position(),
                windows = wins,
                tokens_per_s = format!(
                    "{:.0}",
                    tokens as f64 / t0.elapsed().as_secs_f64().max(1e-9)
                ),
                "embedding note windows"
            );
        }
        bar.set_message(format!(
            "{wins} windows, {:.0} tokens/s",
            tokens as f64 / t0.elapsed().as_secs_f64().max(1e-9)
        ));
    }
    bar.finish();
    let d = out.first().map(|v| v.len()).unwrap_or(0);
    let flat: Vec<f32> = out.iter().flatten().copied().collect();
    let mut m = HashMap::new();
    m.insert(
        "note_vectors".to_string(),
        Tensor::from_vec(flat, (out.len(), d), &Device::Cpu)?,
    );
    candle_core::safetensors::save(&m, cache)?;
    tracing::info!(
        notes = items.len(),
        windows = wins,
        tokens,
        secs = format!("{:.0}", t0.elapsed().as_secs_f64()),
        "note windows embedded"
    );
    Ok(out)
}
