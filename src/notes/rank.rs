//! The coder-like answer of `/v1/notes/code`: a ranked list diversified across ICD categories,
//! each code with the note text that supports it.
//!
//! **Diversification.** Scores of sibling codes move together (every E11.x matches a sentence
//! about type 2 diabetes almost equally), so a plain top-k can be ten siblings of one category
//! and miss the heart failure two lines below. The list is picked greedily, MMR-style: the next
//! code is the one with the best `score − category × (codes of its 3-character category already
//! picked) − segment × (codes already picked whose best evidence is the same segment)`
//! ([`Diversity`]). The second term is what a coder does: one code per condition mentioned, so
//! a sentence about diabetes does not fill the list with every code its words come near (E11,
//! O24, E08 alike) while the hypertension in the clause before waits. A code still comes in
//! when it beats the alternatives by more than its penalties, so real multi-code categories and
//! sentences that carry two conditions survive ("scores far apart"). The penalties of a trained
//! model are tuned on its dev split and written in its manifest (README: their effect on
//! CodiEsp dev). Reported scores are the raw ones; only the order changes.
//!
//! **Evidence.** A segment-attention code score is a soft maximum over the note's segments
//! ([`super::coding`]), so each segment's share of it is its softmax weight. The evidence of a
//! code is its segments by share, kept while they carry at least [`MIN_SHARE`] and until
//! [`MAX_EVIDENCE`] spans or 90% of the weight is covered; spans are character offsets
//! (Unicode scalar values, end exclusive) into the submitted text.

use super::EmbeddedNote;
use std::collections::HashMap;
use std::ops::Range;

/// Penalty per already-picked code of the same 3-character category (models without their own
/// tuned [`Diversity`], and zero-shot coding).
pub const DEFAULT_PENALTY: f32 = 0.05;

/// How a ranked list is diversified (penalties in score units, per code picked before).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Diversity {
    /// Penalty per picked code of the same 3-character category.
    pub category: f32,
    /// Penalty per picked code whose best evidence is the same note segment.
    #[serde(default)]
    pub segment: f32,
}

impl Default for Diversity {
    fn default() -> Self {
        Self {
            category: DEFAULT_PENALTY,
            segment: 0.0,
        }
    }
}

impl Diversity {
    /// No diversification: the plain order.
    pub const NONE: Diversity = Diversity {
        category: 0.0,
        segment: 0.0,
    };

    fn is_none(&self) -> bool {
        self.category <= 0.0 && self.segment <= 0.0
    }
}

/// "No segment" for [`diversify`]'s `seg` (codes scored without segments share none).
pub const NO_SEGMENT: u32 = u32::MAX;
/// Spans per code at most.
pub const MAX_EVIDENCE: usize = 3;
/// Smallest share of a code's attention a span must carry (the first span always counts).
pub const MIN_SHARE: f32 = 0.1;

/// A span of the note that supports a code.
#[derive(Debug, Clone, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct Evidence {
    /// The note text of the span (a sentence, list item or clause).
    pub segment: String,
    /// First character of the span (Unicode scalar values from the start of the text).
    pub start: usize,
    /// One past the last character.
    pub end: usize,
    /// The span's share of the code's score (attention weight, 0..1), or for zero-shot coding
    /// the cosine between the span and the code name.
    pub score: f32,
}

/// The 3-character category of an ICD code (`E11.9` → `E11`, `428.0` → `428`).
pub fn category(code: &str) -> &str {
    let head = code.split('.').next().unwrap_or(code);
    match head.char_indices().nth(3) {
        Some((i, _)) => &head[..i],
        None => head,
    }
}

/// Pick `k` of `scored` (index, score; any order) greedily by score minus the [`Diversity`]
/// penalties for codes picked before (see the module docs); `cat` names an index's category,
/// `seg` its best-evidence segment ([`NO_SEGMENT`] for none). Returns (index, raw score) in
/// picking order.
pub fn diversify<'a>(
    scored: &[(usize, f32)],
    cat: impl Fn(usize) -> &'a str,
    seg: impl Fn(usize) -> u32,
    k: usize,
    div: Diversity,
) -> Vec<(usize, f32)> {
    let mut pool: Vec<(usize, f32)> = scored.to_vec();
    pool.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    if div.is_none() {
        pool.truncate(k);
        return pool;
    }
    // a code far below the k-th best cannot be picked: keep a generous head of the list
    pool.truncate((k * 16).max(k + 128));
    let mut cats: HashMap<&str, usize> = HashMap::new();
    let mut segs: HashMap<u32, usize> = HashMap::new();
    let penalty = |cats: &HashMap<&str, usize>, segs: &HashMap<u32, usize>, i: usize| {
        let c = cats.get(cat(i)).copied().unwrap_or(0) as f32;
        let s = match seg(i) {
            NO_SEGMENT => 0.0,
            j => segs.get(&j).copied().unwrap_or(0) as f32,
        };
        div.category * c + div.segment * s
    };
    let mut out = Vec::with_capacity(k);
    let mut taken = vec![false; pool.len()];
    while out.len() < k {
        let mut best: Option<(usize, f32)> = None;
        for (p, &(i, s)) in pool.iter().enumerate() {
            if taken[p] {
                continue;
            }
            // the pool is sorted: later codes cannot beat `best` once their raw score is lower
            if best.is_some_and(|(_, b)| s < b) {
                break;
            }
            let adj = s - penalty(&cats, &segs, i);
            if best.is_none_or(|(_, b)| adj > b) {
                best = Some((p, adj));
            }
        }
        let Some((p, _)) = best else { break };
        taken[p] = true;
        let i = pool[p].0;
        *cats.entry(cat(i)).or_insert(0) += 1;
        if seg(i) != NO_SEGMENT {
            *segs.entry(seg(i)).or_insert(0) += 1;
        }
        out.push(pool[p]);
    }
    out
}

/// Every code's score as [`diversify`] ranks it: the top `depth` picked greedily keep their
/// penalised score at the time they were picked, the rest lose the penalties of every picked
/// code. Sorting by these scores gives the diversified order (used to evaluate it with the
/// ordinary ranking metrics).
pub fn diversified_scores<'a>(
    scores: &[f32],
    cat: impl Fn(usize) -> &'a str,
    seg: impl Fn(usize) -> u32,
    depth: usize,
    div: Diversity,
) -> Vec<f32> {
    let scored: Vec<(usize, f32)> = scores.iter().copied().enumerate().collect();
    let picked = diversify(&scored, &cat, &seg, depth, div);
    let mut cats: HashMap<&str, usize> = HashMap::new();
    let mut segs: HashMap<u32, usize> = HashMap::new();
    let penalty = |cats: &HashMap<&str, usize>, segs: &HashMap<u32, usize>, i: usize| {
        let s = match seg(i) {
            NO_SEGMENT => 0.0,
            j => segs.get(&j).copied().unwrap_or(0) as f32,
        };
        div.category * cats.get(cat(i)).copied().unwrap_or(0) as f32 + div.segment * s
    };
    let mut out = vec![f32::NAN; scores.len()];
    for &(i, s) in &picked {
        out[i] = s - penalty(&cats, &segs, i);
        *cats.entry(cat(i)).or_insert(0) += 1;
        if seg(i) != NO_SEGMENT {
            *segs.entry(seg(i)).or_insert(0) += 1;
        }
    }
    // every code after the picks scores below the last pick (they were not picked)
    let floor = picked.last().map_or(f32::INFINITY, |&(i, _)| out[i]);
    for (i, o) in out.iter_mut().enumerate() {
        if o.is_nan() {
            *o = (scores[i] - penalty(&cats, &segs, i)).min(floor - 1e-6);
        }
    }
    out
}

/// The evidence of one code: `shares` are (segment, share of the code's score), `spans` the
/// segments' byte ranges in `text`. Segments with the same span are merged (a long sentence
/// cut into chunks).
pub fn evidence(text: &str, spans: &[Range<usize>], shares: &[(usize, f32)]) -> Vec<Evidence> {
    let mut by_span: Vec<(Range<usize>, f32)> = Vec::new();
    for &(j, a) in shares {
        let Some(r) = spans.get(j) else { continue };
        match by_span.iter_mut().find(|(s, _)| s == r) {
            Some((_, x)) => *x += a,
            None => by_span.push((r.clone(), a)),
        }
    }
    by_span.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.start.cmp(&b.0.start)));
    let mut out = Vec::new();
    let mut covered = 0.0;
    for (r, a) in by_span {
        if out.len() >= MAX_EVIDENCE || covered >= 0.9 || (!out.is_empty() && a < MIN_SHARE) {
            break;
        }
        covered += a;
        out.push(span_evidence(text, r, a));
    }
    out
}

/// A byte range of `text` as evidence with character offsets.
pub fn span_evidence(text: &str, r: Range<usize>, score: f32) -> Evidence {
    let start = text[..r.start].chars().count();
    let segment = text[r].to_string();
    Evidence {
        start,
        end: start + segment.chars().count(),
        segment,
        score,
    }
}

/// Zero-shot evidence of one code: the segments closest to its name vector `code` (cosine),
/// the best one and any within 0.05 of it, at most [`MAX_EVIDENCE`].
pub fn nearest_evidence(text: &str, note: &EmbeddedNote, code: &[f32]) -> Vec<Evidence> {
    let mut cos: Vec<(usize, f32)> = note
        .segments
        .iter()
        .enumerate()
        .map(|(j, s)| (j, s.iter().zip(code).map(|(a, b)| a * b).sum()))
        .collect();
    cos.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    let best = cos.first().map_or(0.0, |x| x.1);
    let mut out: Vec<Evidence> = Vec::new();
    for (j, c) in cos {
        if out.len() >= MAX_EVIDENCE || c < best - 0.05 {
            break;
        }
        let Some(r) = note.spans.get(j) else { continue };
        let e = span_evidence(text, r.clone(), c);
        if !out.iter().any(|o| o.start == e.start && o.end == e.end) {
            out.push(e);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories() {
        assert_eq!(category("E11.9"), "E11");
        assert_eq!(category("I50.813"), "I50");
        assert_eq!(category("428.0"), "428");
        assert_eq!(category("R52"), "R52");
        assert_eq!(category("V4501"), "V45");
    }

    #[test]
    fn siblings_give_way_unless_far_ahead() {
        let codes = ["E11.9", "E11.65", "E11.22", "E11.8", "I50.9", "I10"];
        let scored = vec![
            (0, 0.90),
            (1, 0.89),
            (2, 0.88),
            (3, 0.87),
            (4, 0.84),
            (5, 0.80),
        ];
        let cat = |i: usize| category(codes[i]);
        let none = |_| NO_SEGMENT;
        let plain: Vec<usize> = diversify(&scored, cat, none, 4, Diversity::NONE)
            .iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(plain, [0, 1, 2, 3]);
        let div: Vec<usize> = diversify(&scored, cat, none, 4, Diversity::default())
            .iter()
            .map(|x| x.0)
            .collect();
        // E11.9 0.90; then E11.65 0.84 vs I50.9 0.84 (tie: raw order), ...
        assert!(div.contains(&4) && div.contains(&5), "{div:?}");
        assert_eq!(div[0], 0);
        // raw scores are returned unchanged
        assert!(diversify(&scored, cat, none, 6, Diversity::default()).contains(&(5, 0.80)));
        // a sibling far ahead stays ahead
        let far = vec![(0, 0.95), (1, 0.93), (5, 0.60)];
        let d: Vec<usize> = diversify(&far, cat, none, 2, Diversity::default())
            .iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(d, [0, 1]);
    }

    #[test]
    fn one_code_per_mention_before_the_next_of_the_same_sentence() {
        // the diabetes clause (segment 1) is near many codes of several categories; the
        // hypertension (segment 0) and heart failure (segment 2) clauses score lower
        let codes = ["E11", "O24.1", "E08.8", "E13.9", "I10", "I50.9"];
        let best = [1, 1, 1, 1, 0, 2];
        let scored = vec![
            (0, 0.68),
            (1, 0.64),
            (2, 0.63),
            (3, 0.62),
            (4, 0.55),
            (5, 0.54),
        ];
        let cat = |i: usize| category(codes[i]);
        let by_cat: Vec<usize> = diversify(&scored, cat, |i| best[i], 3, Diversity::default())
            .iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(by_cat, [0, 1, 2], "categories alone do not make room");
        let div = Diversity {
            category: 0.05,
            segment: 0.1,
        };
        let d: Vec<usize> = diversify(&scored, cat, |i| best[i], 3, div)
            .iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(d, [0, 4, 5], "each mention's best code first");
        // no segment: only the categories count
        let n: Vec<usize> = diversify(&scored, cat, |_| NO_SEGMENT, 3, div)
            .iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(n, by_cat);
    }

    #[test]
    fn diversified_scores_sort_like_the_picks() {
        let codes = ["E11.9", "E11.65", "E11.22", "I50.9", "I10"];
        let scores = [0.90, 0.89, 0.88, 0.84, 0.80];
        let cat = |i: usize| category(codes[i]);
        let best = [0, 0, 1, 2, 0];
        let seg = |i: usize| best[i];
        for div in [
            Diversity::default(),
            Diversity {
                category: 0.05,
                segment: 0.1,
            },
        ] {
            let d = diversified_scores(&scores, cat, seg, 3, div);
            let mut order: Vec<usize> = (0..5).collect();
            order.sort_by(|&a, &b| d[b].total_cmp(&d[a]));
            let picks: Vec<(usize, f32)> = scores.iter().copied().enumerate().collect();
            let want: Vec<usize> = diversify(&picks, cat, seg, 3, div)
                .iter()
                .map(|x| x.0)
                .collect();
            assert_eq!(&order[..3], &want[..], "{div:?}");
        }
    }

    #[test]
    fn evidence_spans_are_characters_and_merge_chunks() {
        let text = "Fiebre alta. Dolor torácico agudo. Tos.";
        let spans = vec![0..12, 13..35, 13..35, 36..40];
        let e = evidence(text, &spans, &[(0, 0.05), (1, 0.5), (2, 0.3), (3, 0.15)]);
        assert_eq!(e[0].segment, "Dolor torácico agudo.");
        assert_eq!((e[0].start, e[0].end), (13, 34), "characters, not bytes");
        assert!((e[0].score - 0.8).abs() < 1e-6);
        assert_eq!(e.len(), 2, "0.8 + 0.15 covers 90%: {e:?}");
    }
}
