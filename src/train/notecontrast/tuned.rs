//! The note encoder's top layers, fine-tuned with the rest of a NoteContrast run
//! (`encoder_layers` > 0; [`crate::train::notecontrast`]).
//!
//! The lower layers stay frozen, so their output is computed **once**: the token states after
//! layer `L − k` of every window and segment of every note the run uses are kept in memory
//! (CodiEsp: ~0.94M tokens × 384 floats ≈ 1.4 GB). Above them, pooling is exactly the served
//! encoder's (mean over tokens, unit length; a note's vector is its windows' vectors weighted
//! by body tokens, unit length).
//!
//! Running even one layer forward and backward over every token of a 64-case batch (~80k
//! tokens) took over 30 s a step on 2 cores (measured: the exact two-pass gradient caching of
//! Gao et al. 2021, arXiv 2101.06983, with one chunk's graph in memory at a time). So a step
//! reads its sequences' vectors from a **memory bank** (Wu et al. 2018, arXiv 1805.01978: each
//! sequence's vector as of its last refresh), computes the losses and their gradient with
//! respect to those vectors, then runs through the top layers, with the current weights and a
//! graph, only the sequences with the largest gradient up to `encoder_tokens` tokens,
//! backpropagates `Σ v · g` into the layers and refreshes those sequences' bank rows. Under segment attention the
//! gradient is concentrated in few segments (the train log reports the share the chosen ones
//! carry). The whole bank is refreshed every `encoder_refresh_every` steps and evaluation
//! recomputes the dev and test features with the current weights, so every reported number is
//! of the encoder as it would be served.

use crate::encoder::tokenize::TextTokenizer;
use crate::notes::segments::{self, SegmentConfig};
use crate::notes::windows::{self, WindowConfig};
use crate::train::common::bert::{pad_batch, TrainBert};
use crate::train::common::checkpoint::progress_bar;
use crate::train::common::ops;
use crate::train::notecontrast::data::{Item, NoteFeatures};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor, Var};
use std::cell::RefCell;
use std::path::Path;
use std::time::Instant;

/// Padded tokens per forward chunk (rows × longest row): bounds the attention tensors.
const CHUNK_TOKENS: usize = 8192;

/// Checkpoint names of the tuned layers carry this prefix (the code encoder's layers have the
/// same names otherwise).
pub(crate) const PARAM_PREFIX: &str = "note_encoder.";

/// A sequence's first token in the states buffer, and its length.
type Span = (usize, usize);

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
    /// Token states after layer `from` of every sequence, one after another (tokens × H).
    states: Vec<f32>,
    /// Where each sequence's states start (in tokens), and its length; see [`lower_states`].
    spans: Vec<Span>,
    notes: Vec<NoteSeqs>,
    /// Padded tokens per chunk of [`Self::rows`] and [`Self::backprop`].
    chunk_tokens: usize,
    /// Every sequence's unit vector through the top layers as of its last refresh (N × H).
    bank: RefCell<Vec<f32>>,
}

/// What one [`TunedEncoder::backprop`] covered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BackpropStats {
    /// Sequences run through the top layers with their graph.
    pub(crate) sequences: usize,
    /// Their tokens.
    pub(crate) tokens: usize,
    /// Their share of the squared gradient norm over the batch's sequences.
    pub(crate) gradient_share: f32,
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
        let (states, spans) = lower_states(&bert, from, &seqs)?;
        let h = bert.config.inner.hidden_size;
        let count = spans.len();
        Ok(Self {
            bank: RefCell::new(vec![0f32; count * h]),
            bert,
            from,
            states,
            spans,
            notes,
            chunk_tokens: CHUNK_TOKENS,
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

    /// The sequences of `batch` (note indices): every window, then every segment.
    pub(crate) fn sequences(&self, batch: &[usize]) -> Vec<usize> {
        let wins = batch
            .iter()
            .flat_map(|&i| self.notes[i].windows.iter().map(|w| w.0));
        let segs = batch
            .iter()
            .flat_map(|&i| self.notes[i].segments.iter().copied());
        wins.chain(segs).collect()
    }

    /// Note features of `batch` from `rows`, the unit vectors of [`Self::sequences`]`(batch)`
    /// in order; differentiable in `rows`.
    pub(crate) fn assemble(
        &self,
        batch: &[usize],
        rows: &Tensor,
    ) -> candle_core::Result<BatchFeatures> {
        let dev = Device::Cpu;
        let nw: usize = batch.iter().map(|&i| self.notes[i].windows.len()).sum();
        let n_rows = rows.dims()[0];
        // note vector = body-weighted sum of its window vectors, unit length (windows::pool)
        let mut weights = vec![0f32; batch.len() * nw];
        let mut col = 0;
        for (r, &i) in batch.iter().enumerate() {
            for &(_, w) in &self.notes[i].windows {
                weights[r * nw + col] = w;
                col += 1;
            }
        }
        let weights = Tensor::from_vec(weights, (batch.len(), nw), &dev)?;
        let pooled = ops::l2_normalize(&weights.matmul(&rows.narrow(0, 0, nw)?)?)?;
        // segments in note order; a note without any takes its pooled vector
        let with_pooled = Tensor::cat(&[rows, &pooled], 0)?;
        let mut pick = Vec::with_capacity(n_rows - nw + batch.len());
        let mut counts = Vec::with_capacity(batch.len());
        let mut at = nw;
        for (r, &i) in batch.iter().enumerate() {
            let k = self.notes[i].segments.len();
            if k == 0 {
                pick.push((n_rows + r) as u32);
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

    /// Unit vectors (N, H) of sequences `idx` through the top layers with the current weights,
    /// in `idx` order, without a graph (each chunk's graph is dropped as soon as its rows are
    /// out).
    pub(crate) fn rows(&self, idx: &[usize]) -> candle_core::Result<Tensor> {
        let (order, groups) = self.chunks(idx);
        let mut parts = Vec::with_capacity(groups.len());
        for g in &groups {
            parts.push(self.run_chunk(idx, &order[g.clone()])?.detach());
        }
        let sorted = Tensor::cat(&parts, 0)?;
        let mut inverse = vec![0u32; idx.len()];
        for (pos, &p) in order.iter().enumerate() {
            inverse[p] = pos as u32;
        }
        sorted.index_select(&Tensor::from_vec(inverse, idx.len(), &Device::Cpu)?, 0)
    }

    /// Recompute the bank rows of sequences `idx` with the current weights (the bank starts
    /// empty: fill it before the first step reads it).
    pub(crate) fn refresh_bank(&self, idx: &[usize]) -> candle_core::Result<()> {
        let h = self.bert.config.inner.hidden_size;
        for part in idx.chunks(4096) {
            let rows: Vec<f32> = self.rows(part)?.flatten_all()?.to_vec1()?;
            let mut bank = self.bank.borrow_mut();
            for (r, &i) in part.iter().enumerate() {
                bank[i * h..(i + 1) * h].copy_from_slice(&rows[r * h..(r + 1) * h]);
            }
        }
        Ok(())
    }

    /// The bank rows (N, H) of sequences `idx`: their vectors as of their last refresh.
    pub(crate) fn bank_rows(&self, idx: &[usize]) -> candle_core::Result<Tensor> {
        let h = self.bert.config.inner.hidden_size;
        let bank = self.bank.borrow();
        let mut out = Vec::with_capacity(idx.len() * h);
        for &i in idx {
            out.extend_from_slice(&bank[i * h..(i + 1) * h]);
        }
        Tensor::from_vec(out, (idx.len(), h), &Device::Cpu)
    }

    /// The top layers' gradient from the loss gradient `grad` (N, H) of the bank rows of
    /// sequences `idx`: the sequences with the largest gradient, up to `budget` tokens, are run
    /// through the top layers with the current weights and their graph, `Σ rows · grad` is
    /// backpropagated a chunk at a time, and their bank rows are refreshed. The others keep
    /// their bank rows and pass no gradient this step (see the module docs).
    pub(crate) fn backprop(
        &self,
        idx: &[usize],
        grad: &Tensor,
        budget: usize,
    ) -> candle_core::Result<(Vec<GradStore>, BackpropStats)> {
        let norms: Vec<f32> = grad.sqr()?.sum(1)?.to_vec1()?;
        let mut by_norm: Vec<usize> = (0..idx.len()).collect();
        by_norm.sort_by(|&a, &b| norms[b].total_cmp(&norms[a]));
        let (mut picked, mut tokens) = (Vec::new(), 0);
        for p in by_norm {
            let k = self.spans[idx[p]].1;
            if tokens + k > budget && !picked.is_empty() {
                continue;
            }
            tokens += k;
            picked.push(p);
        }
        let total: f32 = norms.iter().sum();
        let stats = BackpropStats {
            sequences: picked.len(),
            tokens,
            gradient_share: if total > 0.0 {
                picked.iter().map(|&p| norms[p]).sum::<f32>() / total
            } else {
                1.0
            },
        };
        let sel: Vec<usize> = picked.iter().map(|&p| idx[p]).collect();
        let (order, groups) = self.chunks(&sel);
        let h = self.bert.config.inner.hidden_size;
        let mut stores = Vec::with_capacity(groups.len());
        for g in &groups {
            let group = &order[g.clone()];
            let rows = self.run_chunk(&sel, group)?;
            let pick: Vec<u32> = group.iter().map(|&q| picked[q] as u32).collect();
            let n = pick.len();
            let gr = grad.index_select(&Tensor::from_vec(pick, n, &Device::Cpu)?, 0)?;
            stores.push((&rows * gr)?.sum_all()?.backward()?);
            let fresh: Vec<f32> = rows.detach().flatten_all()?.to_vec1()?;
            let mut bank = self.bank.borrow_mut();
            for (r, &q) in group.iter().enumerate() {
                let i = sel[q];
                bank[i * h..(i + 1) * h].copy_from_slice(&fresh[r * h..(r + 1) * h]);
            }
        }
        Ok((stores, stats))
    }

    /// Features of `batch` with the current weights, no dropout, no graph (evaluation).
    pub(crate) fn features(&self, batch: &[usize]) -> candle_core::Result<BatchFeatures> {
        let rows = self.rows(&self.sequences(batch))?;
        self.assemble(batch, &rows)
    }

    /// Positions of `idx` sorted by length, and the chunks of that order: each at most
    /// `chunk_tokens` padded tokens (rows × the longest).
    fn chunks(&self, idx: &[usize]) -> (Vec<usize>, Vec<std::ops::Range<usize>>) {
        let len = |p: usize| self.spans[idx[p]].1;
        let mut order: Vec<usize> = (0..idx.len()).collect();
        order.sort_by_key(|&p| (len(p), p));
        let mut groups = Vec::new();
        let mut start = 0;
        while start < order.len() {
            let mut end = start + 1;
            while end < order.len() && (end + 1 - start) * len(order[end]) <= self.chunk_tokens {
                end += 1;
            }
            groups.push(start..end);
            start = end;
        }
        (order, groups)
    }

    /// Unit vectors of the sequences `idx[p]` for `p` in `group` (sorted by length) through
    /// the top layers, with their graph.
    fn run_chunk(&self, idx: &[usize], group: &[usize]) -> candle_core::Result<Tensor> {
        let h = self.bert.config.inner.hidden_size;
        let dev = Device::Cpu;
        let l = group
            .iter()
            .map(|&p| self.spans[idx[p]].1)
            .max()
            .unwrap_or(1);
        let mut x = vec![0f32; group.len() * l * h];
        let mut mask = vec![0u32; group.len() * l];
        for (r, &p) in group.iter().enumerate() {
            let (at, k) = self.spans[idx[p]];
            x[r * l * h..(r * l + k) * h].copy_from_slice(&self.states[at * h..(at + k) * h]);
            mask[r * l..r * l + k].fill(1);
        }
        let x = Tensor::from_vec(x, (group.len(), l, h), &dev)?;
        let mask = Tensor::from_vec(mask, (group.len(), l), &dev)?;
        let out = self.bert.forward_from(&x, &mask, self.from, None)?;
        ops::l2_normalize(&ops::mean_pool(&out, &mask)?)
    }

    /// Recompute the features of notes `idx` in `feats` with the current weights (no dropout).
    pub(crate) fn refresh(&self, idx: &[usize], feats: &mut NoteFeatures) -> anyhow::Result<()> {
        for chunk in idx.chunks(32) {
            let f = self.features(chunk)?;
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

/// Token states after the first `from` layers of every sequence (no gradient), unpadded, in
/// one buffer allocated up front, with each sequence's (start, length) in tokens. One buffer
/// rather than a tensor per sequence: kept chunk outputs interleaved with the freed activations
/// of the next chunk left training's allocator (which keeps freed pages, see `main.rs`) at
/// 19 GB resident on CodiEsp, against 1.4 GB of states.
fn lower_states(
    bert: &TrainBert,
    from: usize,
    seqs: &[Vec<u32>],
) -> anyhow::Result<(Vec<f32>, Vec<Span>)> {
    let h = bert.config.inner.hidden_size;
    let mut spans = Vec::with_capacity(seqs.len());
    let mut total = 0;
    for s in seqs {
        spans.push((total, s.len()));
        total += s.len();
    }
    let mut buf = vec![0f32; total * h];
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    order.sort_by_key(|&i| (seqs[i].len(), i));
    let bar = progress_bar(total as u64, "note encoder: states below the tuned layers");
    let t0 = Instant::now();
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
        let l = states.dims()[1];
        let flat: Vec<f32> = states.flatten_all()?.to_vec1()?;
        for (r, &i) in group.iter().enumerate() {
            let (at, k) = spans[i];
            buf[at * h..(at + k) * h].copy_from_slice(&flat[r * l * h..(r * l + k) * h]);
            bar.inc(k as u64);
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
    Ok((buf, spans))
}

#[cfg(test)]
#[path = "tuned_tests.rs"]
mod tests;
