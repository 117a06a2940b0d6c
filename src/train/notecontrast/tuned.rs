//! The note encoder's top layers, fine-tuned with the rest of a NoteContrast run
//! (`encoder_layers` > 0; [`crate::train::notecontrast`]).
//!
//! The lower layers stay frozen, so their output is computed **once**: the token states after
//! layer `L − k` of every window and segment of every note are kept in memory (CodiEsp: ~0.94M
//! tokens × 384 floats ≈ 1.4 GB), and a step runs only the top `k` layers over its notes'
//! windows and segments, then pools exactly as the served encoder does (mean over tokens, unit
//! length; a note's vector is its windows' vectors weighted by body tokens, unit length). The
//! gradient of both losses flows through that pooling into the top layers. Evaluation refreshes
//! the cached features of the notes it scores with the current weights (no dropout), so every
//! dev number is of the encoder as it would be served.

use crate::encoder::tokenize::TextTokenizer;
use crate::notes::segments::{self, SegmentConfig};
use crate::notes::windows::{self, WindowConfig};
use crate::train::common::bert::{pad_batch, TrainBert};
use crate::train::common::checkpoint::progress_bar;
use crate::train::common::ops::{self, Dropout};
use crate::train::notecontrast::data::{Item, NoteFeatures};
use candle_core::{DType, Device, Tensor, Var};
use std::path::Path;
use std::time::Instant;

/// Padded tokens per forward chunk (rows × longest row): bounds the attention tensors.
const CHUNK_TOKENS: usize = 8192;

/// Checkpoint names of the tuned layers carry this prefix (the code encoder's layers have the
/// same names otherwise).
pub(crate) const PARAM_PREFIX: &str = "note_encoder.";

/// One note's sequences: windows (index into the states, body tokens) and segments.
struct NoteSeqs {
    windows: Vec<(usize, f32)>,
    segments: Vec<usize>,
}

/// The note encoder with its top layers trainable and the frozen part's output cached.
pub(crate) struct TunedEncoder {
    /// The whole encoder (only layers `from..` are trained).
    pub(crate) bert: TrainBert,
    from: usize,
    /// Token states after layer `from` of every sequence, (len, H) each.
    states: Vec<Tensor>,
    notes: Vec<NoteSeqs>,
}

/// Differentiable features of a batch of notes.
pub(crate) struct BatchFeatures {
    /// Window-pooled unit note vectors (B, H).
    pub(crate) pooled: Tensor,
    /// Unit segment vectors of every note in order (Ns, H) (a note without segments has its
    /// pooled vector as its one segment).
    pub(crate) segments: Tensor,
    /// Segments per note.
    pub(crate) counts: Vec<usize>,
}

impl TunedEncoder {
    /// Load the base encoder from `base`, keep its top `layers` trainable and cache the states
    /// below them for the notes of `items` that `used` lists (the others get no sequences).
    pub(crate) fn build(
        base: &Path,
        layers: usize,
        tok: &TextTokenizer,
        (wcfg, scfg): (&WindowConfig, &SegmentConfig),
        items: &[Item],
        used: &[usize],
    ) -> anyhow::Result<Self> {
        let bert = TrainBert::load_dir(base)?;
        let n = bert.config.inner.num_hidden_layers;
        anyhow::ensure!(
            (1..=n).contains(&layers),
            "encoder_layers {layers}: the note encoder has {n} layers"
        );
        let from = n - layers;
        let mut seqs: Vec<Vec<u32>> = Vec::new();
        let used: std::collections::HashSet<usize> = used.iter().copied().collect();
        let mut notes = Vec::with_capacity(items.len());
        for (i, it) in items.iter().enumerate() {
            if !used.contains(&i) {
                notes.push(NoteSeqs {
                    windows: Vec::new(),
                    segments: Vec::new(),
                });
                continue;
            }
            let ids = tok.encode(&it.text)?;
            let (w, _) = windows::split(&ids, wcfg);
            let (sw, _) = segments::split(&it.text, tok, scfg)?;
            let mut push = |ids: &[u32]| {
                seqs.push(ids.to_vec());
                seqs.len() - 1
            };
            let windows = w
                .iter()
                .map(|x| (push(&x.ids), x.body.max(1) as f32))
                .collect();
            let segments = sw.iter().map(|x| push(&x.ids)).collect();
            notes.push(NoteSeqs { windows, segments });
        }
        let states = lower_states(&bert, from, &seqs)?;
        Ok(Self {
            bert,
            from,
            states,
            notes,
        })
    }

    /// The trainable parameters, named under [`PARAM_PREFIX`].
    pub(crate) fn params(&self) -> Vec<(String, Var)> {
        self.bert
            .layer_params_from(self.from)
            .into_iter()
            .map(|(k, v)| (format!("{PARAM_PREFIX}{k}"), v))
            .collect()
    }

    /// Features of `batch` (note indices) through the top layers (with `dropout` to train).
    pub(crate) fn features(
        &self,
        batch: &[usize],
        dropout: Option<&mut Dropout>,
    ) -> candle_core::Result<BatchFeatures> {
        // every window of the batch, then every segment
        let wins: Vec<usize> = batch
            .iter()
            .flat_map(|&i| self.notes[i].windows.iter().map(|w| w.0))
            .collect();
        let segs: Vec<usize> = batch
            .iter()
            .flat_map(|&i| self.notes[i].segments.iter().copied())
            .collect();
        let all: Vec<usize> = wins.iter().chain(&segs).copied().collect();
        let rows = self.encode(&all, dropout)?;
        let dev = Device::Cpu;
        // note vector = body-weighted sum of its window vectors, unit length (windows::pool)
        let mut weights = vec![0f32; batch.len() * wins.len()];
        let mut col = 0;
        for (r, &i) in batch.iter().enumerate() {
            for &(_, w) in &self.notes[i].windows {
                weights[r * wins.len() + col] = w;
                col += 1;
            }
        }
        let weights = Tensor::from_vec(weights, (batch.len(), wins.len()), &dev)?;
        let pooled = ops::l2_normalize(&weights.matmul(&rows.narrow(0, 0, wins.len())?)?)?;
        // segments in note order; a note without any takes its pooled vector
        let with_pooled = Tensor::cat(&[&rows, &pooled], 0)?;
        let mut pick = Vec::with_capacity(segs.len() + batch.len());
        let mut counts = Vec::with_capacity(batch.len());
        let mut at = wins.len();
        for (r, &i) in batch.iter().enumerate() {
            let k = self.notes[i].segments.len();
            if k == 0 {
                pick.push((all.len() + r) as u32);
                counts.push(1);
            } else {
                pick.extend((at..at + k).map(|x| x as u32));
                counts.push(k);
                at += k;
            }
        }
        let n = pick.len();
        let segments = with_pooled.index_select(&Tensor::from_vec(pick, n, &dev)?, 0)?;
        Ok(BatchFeatures {
            pooled,
            segments,
            counts,
        })
    }

    /// Unit vectors (N, H) of sequences `idx` through the top layers, in `idx` order: sorted
    /// by length and run in chunks of at most [`CHUNK_TOKENS`] padded tokens.
    fn encode(
        &self,
        idx: &[usize],
        mut dropout: Option<&mut Dropout>,
    ) -> candle_core::Result<Tensor> {
        let len = |i: usize| self.states[i].dims()[0];
        let mut order: Vec<usize> = (0..idx.len()).collect();
        order.sort_by_key(|&p| (len(idx[p]), p));
        let h = self.bert.config.inner.hidden_size;
        let dev = Device::Cpu;
        let mut parts = Vec::new();
        let mut start = 0;
        while start < order.len() {
            // longest last: grow the chunk while rows × its longest stays in budget
            let mut end = start + 1;
            while end < order.len() && (end + 1 - start) * len(idx[order[end]]) <= CHUNK_TOKENS {
                end += 1;
            }
            let group = &order[start..end];
            let l = len(idx[*group.last().expect("non-empty chunk")]);
            let mut rows = Vec::with_capacity(group.len());
            let mut lens = Vec::with_capacity(group.len());
            for &p in group {
                let s = &self.states[idx[p]];
                let k = s.dims()[0];
                lens.push(k);
                rows.push(if k == l {
                    s.clone()
                } else {
                    Tensor::cat(&[s, &Tensor::zeros((l - k, h), DType::F32, &dev)?], 0)?
                });
            }
            let x = Tensor::stack(&rows, 0)?;
            let mut mask = vec![0u32; group.len() * l];
            for (r, &k) in lens.iter().enumerate() {
                mask[r * l..r * l + k].fill(1);
            }
            let mask = Tensor::from_vec(mask, (group.len(), l), &dev)?;
            let out = self
                .bert
                .forward_from(&x, &mask, self.from, dropout.as_deref_mut())?;
            parts.push(ops::l2_normalize(&ops::mean_pool(&out, &mask)?)?);
            start = end;
        }
        let sorted = Tensor::cat(&parts, 0)?;
        let mut inverse = vec![0u32; idx.len()];
        for (pos, &p) in order.iter().enumerate() {
            inverse[p] = pos as u32;
        }
        sorted.index_select(&Tensor::from_vec(inverse, idx.len(), &dev)?, 0)
    }

    /// Recompute the features of notes `idx` in `feats` with the current weights (no dropout).
    pub(crate) fn refresh(&self, idx: &[usize], feats: &mut NoteFeatures) -> anyhow::Result<()> {
        for chunk in idx.chunks(32) {
            let f = self.features(chunk, None)?;
            let pooled: Vec<Vec<f32>> = f.pooled.to_vec2()?;
            let mut segs = f.segments.to_vec2::<f32>()?.into_iter();
            for ((&i, p), &k) in chunk.iter().zip(pooled).zip(&f.counts) {
                feats.pooled[i] = p;
                feats.segments[i] = segs.by_ref().take(k).collect();
            }
        }
        Ok(())
    }
}

/// Token states after the first `from` layers of every sequence (no gradient), unpadded.
fn lower_states(bert: &TrainBert, from: usize, seqs: &[Vec<u32>]) -> anyhow::Result<Vec<Tensor>> {
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    order.sort_by_key(|&i| (seqs[i].len(), i));
    let total: usize = seqs.iter().map(Vec::len).sum();
    let bar = progress_bar(total as u64, "note encoder: states below the tuned layers");
    let t0 = Instant::now();
    let mut out: Vec<Option<Tensor>> = vec![None; seqs.len()];
    let pad = bert.config.inner.pad_token_id as u32;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && (end + 1 - start) * seqs[order[end]].len() <= CHUNK_TOKENS {
            end += 1;
        }
        let group = &order[start..end];
        let refs: Vec<&[u32]> = group.iter().map(|&i| seqs[i].as_slice()).collect();
        let (ids, mask) = pad_batch(&refs, pad)?;
        let states = bert.states_after(&ids, &mask, from)?.detach();
        for (r, &i) in group.iter().enumerate() {
            out[i] = Some(states.get(r)?.narrow(0, 0, seqs[i].len())?.contiguous()?);
            bar.inc(seqs[i].len() as u64);
        }
        start = end;
    }
    bar.finish();
    tracing::info!(
        sequences = seqs.len(),
        tokens = total,
        layers = from,
        tokens_per_s = format!("{:.0}", total as f64 / t0.elapsed().as_secs_f64().max(1e-9)),
        "note encoder states cached below the tuned layers"
    );
    Ok(out
        .into_iter()
        .map(|s| s.expect("every sequence run"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encoder::testing::{write_tiny_bert, TinyBert};
    use crate::encoder::Encoder;
    use crate::train::common::testing::max_abs_diff;
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
}
