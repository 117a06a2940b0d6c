//! Long-note encoding with a short-context encoder: overlapping windows and pooling.
//!
//! NoteContrast encodes notes of up to 8,192 tokens with BigBird. Our encoders are BERTs with a
//! 256–512-token limit, so a note is tokenised whole (no truncation), cut into windows of the
//! encoder's `max_len` (special tokens included) that overlap by [`WindowConfig::overlap`] tokens,
//! each window is embedded as one text (`[CLS] … [SEP]`, mean pooling, unit norm — exactly
//! what the terms encoder does to a term), and the window vectors are pooled:
//!
//! **Pooling.** `v = normalise(Σ_w n_w · e_w)`, the mean of the unit window vectors `e_w`
//! weighted by their number of body tokens `n_w` (a short last window counts for less), then
//! renormalised to unit length. Every token thus contributes about equally, as in the
//! sentence-transformers mean pooling the windows themselves use; a trained note model applies
//! its learned projection after this pooling (see [`super::coding`]). Max pooling was the
//! alternative; a weighted mean keeps a note's vector stable when a window boundary moves and is
//! what training optimises.
//!
//! Notes longer than [`WindowConfig::max_tokens`] (default 8,192 body tokens) are cut there, and
//! the cut is reported.

use serde::{Deserialize, Serialize};

/// Window settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowConfig {
    /// Tokens per window including `[CLS]` and `[SEP]` (the encoder's `max_len`).
    pub window: usize,
    /// Body tokens shared by consecutive windows.
    pub overlap: usize,
    /// Body tokens of a note encoded at most (the rest is ignored).
    pub max_tokens: usize,
}

impl WindowConfig {
    /// Windows of the encoder's `max_len`, overlapping by an eighth, up to 8,192 tokens.
    pub fn for_max_len(max_len: usize) -> Self {
        let window = max_len.max(8);
        Self {
            window,
            overlap: (window - 2) / 8,
            max_tokens: 8192,
        }
    }
}

/// One window: token ids with specials, and its number of body tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// `[CLS] body… [SEP]`.
    pub ids: Vec<u32>,
    /// Body tokens (the pooling weight).
    pub body: usize,
}

/// Cut a tokenised note into windows. `encoded` is the whole note as the tokenizer makes it,
/// `[CLS] … [SEP]` included (its first and last ids are taken as the specials). Returns the
/// windows and whether the note was cut at `max_tokens`.
pub fn split(encoded: &[u32], cfg: &WindowConfig) -> (Vec<Window>, bool) {
    if encoded.len() < 2 {
        return (Vec::new(), false);
    }
    let (cls, sep) = (encoded[0], encoded[encoded.len() - 1]);
    let body_all = &encoded[1..encoded.len() - 1];
    let cut = body_all.len() > cfg.max_tokens;
    let body = &body_all[..body_all.len().min(cfg.max_tokens)];
    let per = cfg.window.saturating_sub(2).max(1);
    let stride = per.saturating_sub(cfg.overlap).max(1);
    let mut out = Vec::new();
    if body.is_empty() {
        out.push(Window {
            ids: vec![cls, sep],
            body: 0,
        });
        return (out, cut);
    }
    let mut start = 0;
    loop {
        let end = (start + per).min(body.len());
        let mut ids = Vec::with_capacity(end - start + 2);
        ids.push(cls);
        ids.extend_from_slice(&body[start..end]);
        ids.push(sep);
        out.push(Window {
            ids,
            body: end - start,
        });
        if end == body.len() {
            break;
        }
        start += stride;
    }
    (out, cut)
}

/// Pool window vectors (see module docs): token-weighted mean, unit length.
pub fn pool(vectors: &[Vec<f32>], weights: &[usize]) -> Vec<f32> {
    let dim = vectors.first().map(|v| v.len()).unwrap_or(0);
    let mut acc = vec![0f32; dim];
    for (v, &w) in vectors.iter().zip(weights) {
        let w = w.max(1) as f32;
        for (a, x) in acc.iter_mut().zip(v) {
            *a += w * x;
        }
    }
    crate::encoder::pooling::l2_normalize(&mut acc);
    acc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_overlap_and_cover_the_note() {
        let enc: Vec<u32> = std::iter::once(101)
            .chain(1..=20)
            .chain(std::iter::once(102))
            .collect();
        let cfg = WindowConfig {
            window: 10,
            overlap: 2,
            max_tokens: 8192,
        };
        let (w, cut) = split(&enc, &cfg);
        assert!(!cut);
        // 8 body tokens per window, stride 6: [1..8], [7..14], [13..20]
        assert_eq!(w.len(), 3);
        assert_eq!(w[0].ids, vec![101, 1, 2, 3, 4, 5, 6, 7, 8, 102]);
        assert_eq!(w[1].ids[1], 7);
        assert_eq!(*w[2].ids.last().unwrap(), 102);
        assert_eq!(w[2].ids[w[2].ids.len() - 2], 20);
        let short = WindowConfig {
            max_tokens: 5,
            ..cfg
        };
        let (w, cut) = split(&enc, &short);
        assert!(cut);
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].body, 5);
    }

    #[test]
    fn pooling_is_weighted_and_unit() {
        let v = pool(&[vec![1.0, 0.0], vec![0.0, 1.0]], &[3, 1]);
        assert!((v[0] / v[1] - 3.0).abs() < 1e-5);
        assert!(((v[0] * v[0] + v[1] * v[1]) - 1.0).abs() < 1e-5);
    }
}
