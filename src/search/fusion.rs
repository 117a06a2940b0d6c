//! Fusion of a lexical and a vector result list into one ranking.
//!
//! Both inputs are lists of [`Hit`]s ordered best first; a hit's *rank* is its 1-based position.
//! If a term appears more than once in one list, its first (best) occurrence counts.
//!
//! - **RRF** (reciprocal rank fusion): `score = Σ_side 1 / (rrf_k + rank_side)` over the sides the
//!   term appears on. Scale-free; `rrf_k` (typically 60) flattens the head. A negative or
//!   non-finite `rrf_k` is treated as 0 / 60.
//! - **Weighted**: each list's scores are min-max normalised to [0, 1]
//!   (`(s − min) / (max − min)`); a list whose scores are all equal (including a one-element
//!   list) normalises to 1 for every hit. Non-finite scores normalise to 0. Then
//!   `score = alpha · norm_vector + (1 − alpha) · norm_lexical`, a missing side contributing 0.
//!   `alpha` is clamped to [0, 1] (non-finite → 0.5).
//!
//! Output is sorted by score descending, ties broken by `term_id` ascending (deterministic), and
//! cut to `k`. Each fused hit reports its rank on both sides.

use super::Hit;
use std::collections::HashMap;

/// How to combine the two lists.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FusionMethod {
    /// Reciprocal rank fusion with constant `k` (commonly 60).
    Rrf {
        /// The RRF constant added to each rank.
        k: f32,
    },
    /// `alpha · vector + (1 − alpha) · lexical` over min-max normalised scores.
    Weighted {
        /// Weight of the vector side, in [0, 1].
        alpha: f32,
    },
    /// The learned concept-level hybrid of [`super::hybrid`] (run by the engine; [`fuse`]
    /// treats it as RRF k=60).
    Learned {
        /// Follow cross-system bridges (exact matches in any system → their preferred names).
        bridges: bool,
    },
}

impl Default for FusionMethod {
    fn default() -> Self {
        FusionMethod::Rrf { k: 60.0 }
    }
}

/// One fused result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FusedHit {
    /// The term.
    pub term_id: u64,
    /// Fused score (RRF sum, or weighted score in [0, 1]).
    pub score: f32,
    /// 1-based rank in the lexical list, if present there.
    pub lexical_rank: Option<usize>,
    /// 1-based rank in the vector list, if present there.
    pub vector_rank: Option<usize>,
}

#[derive(Default, Clone, Copy)]
struct Entry {
    lexical: Option<(usize, f32)>,
    vector: Option<(usize, f32)>,
}

/// Min-max normalisation of a list's scores, as `(min, max)`; see module docs.
fn range(hits: &[Hit]) -> (f32, f32) {
    let mut lo = f32::INFINITY;
    let mut hi = f32::NEG_INFINITY;
    for h in hits.iter().filter(|h| h.score.is_finite()) {
        lo = lo.min(h.score);
        hi = hi.max(h.score);
    }
    (lo, hi)
}

fn normalise(score: f32, (lo, hi): (f32, f32)) -> f32 {
    if !score.is_finite() {
        return 0.0;
    }
    let span = hi - lo;
    if span.is_finite() && span > 0.0 {
        ((score - lo) / span).clamp(0.0, 1.0)
    } else {
        1.0
    }
}

/// Fuse `lexical` and `vector` (each best first) with `method`, keeping the best `k`.
pub fn fuse(lexical: &[Hit], vector: &[Hit], method: FusionMethod, k: usize) -> Vec<FusedHit> {
    if k == 0 {
        return Vec::new();
    }
    let mut table: HashMap<u64, Entry> = HashMap::with_capacity(lexical.len() + vector.len());
    for (i, h) in lexical.iter().enumerate() {
        let e = table.entry(h.term_id).or_default();
        e.lexical.get_or_insert((i + 1, h.score));
    }
    for (i, h) in vector.iter().enumerate() {
        let e = table.entry(h.term_id).or_default();
        e.vector.get_or_insert((i + 1, h.score));
    }

    let score_of: Box<dyn Fn(&Entry) -> f32> = match method {
        FusionMethod::Learned { .. } => {
            return fuse(lexical, vector, FusionMethod::Rrf { k: 60.0 }, k)
        }
        FusionMethod::Rrf { k: rrf_k } => {
            let c = if rrf_k.is_finite() {
                rrf_k.max(0.0)
            } else {
                60.0
            };
            Box::new(move |e: &Entry| {
                let side =
                    |r: Option<(usize, f32)>| r.map_or(0.0, |(rank, _)| 1.0 / (c + rank as f32));
                side(e.lexical) + side(e.vector)
            })
        }
        FusionMethod::Weighted { alpha } => {
            let a = if alpha.is_finite() {
                alpha.clamp(0.0, 1.0)
            } else {
                0.5
            };
            let (lr, vr) = (range(lexical), range(vector));
            Box::new(move |e: &Entry| {
                let l = e.lexical.map_or(0.0, |(_, s)| normalise(s, lr));
                let v = e.vector.map_or(0.0, |(_, s)| normalise(s, vr));
                a * v + (1.0 - a) * l
            })
        }
    };

    let mut out: Vec<FusedHit> = table
        .iter()
        .map(|(&term_id, e)| FusedHit {
            term_id,
            score: score_of(e),
            lexical_rank: e.lexical.map(|(r, _)| r),
            vector_rank: e.vector.map(|(r, _)| r),
        })
        .collect();
    out.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.term_id.cmp(&b.term_id)));
    out.truncate(k);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hits(v: &[(u64, f32)]) -> Vec<Hit> {
        v.iter()
            .map(|&(term_id, score)| Hit { term_id, score })
            .collect()
    }

    #[test]
    fn rrf_by_hand() {
        // lexical: 1, 2, 3   vector: 3, 1
        let l = hits(&[(1, 9.0), (2, 5.0), (3, 1.0)]);
        let v = hits(&[(3, 0.9), (1, 0.8)]);
        let f = fuse(&l, &v, FusionMethod::Rrf { k: 60.0 }, 10);
        // 1: 1/61 + 1/62 ; 3: 1/63 + 1/61 ; 2: 1/62
        let s1 = 1.0 / 61.0 + 1.0 / 62.0;
        let s3 = 1.0 / 63.0 + 1.0 / 61.0;
        assert_eq!(f.iter().map(|h| h.term_id).collect::<Vec<_>>(), [1, 3, 2]);
        assert!((f[0].score - s1).abs() < 1e-7);
        assert!((f[1].score - s3).abs() < 1e-7);
        assert!((f[2].score - 1.0 / 62.0).abs() < 1e-7);
        assert_eq!((f[1].lexical_rank, f[1].vector_rank), (Some(3), Some(1)));
        assert_eq!((f[2].lexical_rank, f[2].vector_rank), (Some(2), None));
    }

    #[test]
    fn weighted_by_hand() {
        // lexical scores 10, 6, 2 → 1, 0.5, 0 ; vector 0.9, 0.5 → 1, 0
        let l = hits(&[(1, 10.0), (2, 6.0), (3, 2.0)]);
        let v = hits(&[(3, 0.9), (4, 0.5)]);
        let f = fuse(&l, &v, FusionMethod::Weighted { alpha: 0.25 }, 10);
        let got: Vec<(u64, f32)> = f.iter().map(|h| (h.term_id, h.score)).collect();
        // 1: 0.75 ; 2: 0.375 ; 3: 0.25 ; 4: 0
        let want = [(1, 0.75), (2, 0.375), (3, 0.25), (4, 0.0)];
        for ((gi, gs), (wi, ws)) in got.iter().zip(want) {
            assert_eq!(*gi, wi);
            assert!((gs - ws).abs() < 1e-6, "{gi}: {gs} vs {ws}");
        }
    }

    #[test]
    fn single_element_and_ties() {
        let l = hits(&[(7, 3.0)]);
        let f = fuse(&l, &[], FusionMethod::Weighted { alpha: 0.5 }, 5);
        assert_eq!(f.len(), 1);
        assert!((f[0].score - 0.5).abs() < 1e-6);
        // equal RRF scores → ascending term_id
        let l = hits(&[(9, 1.0)]);
        let v = hits(&[(4, 1.0)]);
        let f = fuse(&l, &v, FusionMethod::Rrf { k: 60.0 }, 5);
        assert_eq!(f.iter().map(|h| h.term_id).collect::<Vec<_>>(), [4, 9]);
        assert!(fuse(&l, &v, FusionMethod::Rrf { k: 60.0 }, 0).is_empty());
    }

    #[test]
    fn duplicates_keep_best_rank() {
        let l = hits(&[(1, 5.0), (1, 4.0), (2, 3.0)]);
        let f = fuse(&l, &[], FusionMethod::Rrf { k: 0.0 }, 5);
        assert_eq!(f[0].term_id, 1);
        assert_eq!(f[0].lexical_rank, Some(1));
        assert!((f[0].score - 1.0).abs() < 1e-7);
    }
}
