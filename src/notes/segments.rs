//! Note segments: the units ICD coding attends over.
//!
//! A pooled note vector (see [`super::windows`]) averages every condition of a note together
//! with its negated, resolved and incidental mentions, so one vector has to stand for up to six
//! codes at once and the specific words of a rare condition are diluted. Coding therefore reads a
//! note as a list of short segments — sentences, list items, header lines — each embedded by
//! the note encoder on its own, and scores a code by attending over them (label-wise attention
//! in the spirit of LAAT/PLM-ICD, over sentence vectors instead of token states; see
//! [`super::coding`]).
//!
//! **Splitting.** Boundaries are sentence ends (`.`, `;`, `?`, `!` followed by white space),
//! blank lines, and line breaks that start a list item (`1.`, `-`, `*`, `•`) or a section
//! header (`WORDS:`) or follow a line ending in `.`/`:`/`;`; any other line break is a wrapped
//! line (MIMIC-III notes are hard-wrapped) and reads as a space. Pieces of fewer than
//! [`SegmentConfig::min_words`] words (a bare `1.`, a header such as `PAST MEDICAL HISTORY:`)
//! are joined to the following piece, so a list item keeps its header as context. A segment
//! longer than [`SegmentConfig::max_len`] tokens is cut into consecutive chunks; a note is read
//! up to [`SegmentConfig::max_tokens`] body tokens. Optionally ([`SegmentConfig`]) abbreviations
//! are spelled out and the clauses of affirmative segments are added as segments of their own.

use crate::encoder::tokenize::TextTokenizer;
use crate::encoder::EncoderError;
use crate::search::abbrev;
use serde::{Deserialize, Serialize};

use super::windows::Window;

/// Segment settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentConfig {
    /// Tokens per segment at most, `[CLS]` and `[SEP]` included.
    pub max_len: usize,
    /// Pieces with fewer words are joined to the next piece.
    pub min_words: usize,
    /// Body tokens of a note read at most.
    pub max_tokens: usize,
    /// Spell out clinical abbreviations before embedding ([`crate::search::abbrev`]).
    #[serde(default)]
    pub expand_abbreviations: bool,
    /// Also embed the clauses of an affirmative segment (split at `, ; and for`) as segments of
    /// their own, so a sentence naming three conditions offers each one alone (segments with a
    /// negation or history cue are not split: a clause would lose its cue).
    #[serde(default)]
    pub clauses: bool,
    /// Leave negated, family-history and resolved-history words out of what is embedded
    /// ([`super::negation`]; older models were trained without it).
    #[serde(default)]
    pub negation_scope: bool,
}

impl Default for SegmentConfig {
    fn default() -> Self {
        Self {
            max_len: 64,
            min_words: 4,
            max_tokens: 8192,
            expand_abbreviations: true,
            clauses: true,
            negation_scope: true,
        }
    }
}

fn starts_block(line: &str) -> bool {
    let t = line.trim_start();
    if t.starts_with(['-', '*', '•']) {
        return true;
    }
    let digits = t.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 && t[digits..].starts_with(['.', ')']) {
        return true;
    }
    // a section header: upper-case words up to a colon
    match t.find(':') {
        Some(i) if i > 1 => t[..i]
            .chars()
            .all(|c| c.is_ascii_uppercase() || c == ' ' || c == '/' || c == '&'),
        _ => false,
    }
}

/// The text pieces of a note, before tokenisation (see the module docs).
pub fn pieces(text: &str, min_words: usize) -> Vec<String> {
    let mut raw: Vec<String> = Vec::new();
    let mut cur = String::new();
    let lines: Vec<&str> = text.lines().collect();
    for (li, line) in lines.iter().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            push_piece(&mut raw, &mut cur);
            continue;
        }
        let mut chars = line.char_indices().peekable();
        let mut start = 0;
        while let Some((i, c)) = chars.next() {
            if matches!(c, '.' | ';' | '?' | '!') {
                // a list marker ("1.") or a bare number is no sentence end
                let has_word = line[start..i].chars().any(char::is_alphabetic);
                if let Some(&(_, n)) = chars.peek() {
                    if n.is_whitespace() && has_word {
                        append(&mut cur, &line[start..i + 1]);
                        push_piece(&mut raw, &mut cur);
                        start = i + 1;
                    }
                }
            }
        }
        append(&mut cur, &line[start..]);
        let next_starts = lines
            .get(li + 1)
            .is_none_or(|n| n.trim().is_empty() || starts_block(n));
        if next_starts || line.ends_with(['.', ':', ';']) {
            push_piece(&mut raw, &mut cur);
        }
    }
    push_piece(&mut raw, &mut cur);
    // join short pieces to the next one
    let mut out: Vec<String> = Vec::new();
    let mut carry = String::new();
    for p in raw {
        append(&mut carry, &p);
        if carry.split_whitespace().count() >= min_words {
            out.push(std::mem::take(&mut carry));
        }
    }
    if !carry.is_empty() {
        match out.last_mut() {
            Some(last) => append(last, &carry),
            None => out.push(carry),
        }
    }
    out
}

fn append(cur: &mut String, s: &str) {
    let s = s.trim();
    if s.is_empty() {
        return;
    }
    if !cur.is_empty() {
        cur.push(' ');
    }
    cur.push_str(s);
}

fn push_piece(out: &mut Vec<String>, cur: &mut String) {
    if !cur.trim().is_empty() {
        out.push(std::mem::take(cur));
    }
    cur.clear();
}

/// Tokenised segments of a note (token ids with specials; `body` = body tokens) and whether the
/// note was cut at `max_tokens`. `tok` must not truncate below `max_tokens` (a long-text
/// tokenizer, as for windows).
pub fn split(
    text: &str,
    tok: &TextTokenizer,
    cfg: &SegmentConfig,
) -> Result<(Vec<Window>, bool), EncoderError> {
    let (segs, cut) = split_spans(text, tok, cfg)?;
    Ok((segs.into_iter().map(|s| s.window).collect(), cut))
}

/// A tokenised segment and the bytes of the note it stands for.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Token ids with specials.
    pub window: Window,
    /// Byte range of the note text the segment reads (a sentence, list item or clause; a long
    /// sentence cut into chunks gives every chunk the sentence's range).
    pub span: std::ops::Range<usize>,
}

/// Like [`split`], with each segment's byte range in `text`. With
/// [`SegmentConfig::negation_scope`], negated, family-history and resolved words are left out of
/// what is embedded ([`super::negation`]); a piece with nothing else left is no segment.
pub fn split_spans(
    text: &str,
    tok: &TextTokenizer,
    cfg: &SegmentConfig,
) -> Result<(Vec<Segment>, bool), EncoderError> {
    let per = cfg.max_len.saturating_sub(2).max(1);
    let mut out = Vec::new();
    let mut budget = cfg.max_tokens;
    let prepare = |p: &str| {
        if cfg.expand_abbreviations {
            abbrev::expand(p)
        } else {
            p.to_string()
        }
    };
    let ps = pieces(text, cfg.min_words);
    let spans = piece_spans(text, &ps);
    for (p, span) in ps.iter().zip(spans) {
        let read = if cfg.negation_scope {
            match super::negation::affirmed(p) {
                Some(a) => a,
                None => continue,
            }
        } else {
            p.clone()
        };
        let ids = tok.encode(&prepare(&read))?;
        if ids.len() < 3 {
            continue;
        }
        let (cls, sep) = (ids[0], ids[ids.len() - 1]);
        for chunk in ids[1..ids.len() - 1].chunks(per) {
            if budget == 0 {
                return Ok((out, true));
            }
            let chunk = &chunk[..chunk.len().min(budget)];
            budget -= chunk.len();
            let mut w = Vec::with_capacity(chunk.len() + 2);
            w.push(cls);
            w.extend_from_slice(chunk);
            w.push(sep);
            out.push(Segment {
                window: Window {
                    ids: w,
                    body: chunk.len(),
                },
                span: span.clone(),
            });
        }
        // clauses are extra views of text already read: they do not count against the budget
        if cfg.clauses {
            let mut from = 0;
            for c in clauses(p) {
                let ids = tok.encode(&prepare(&c))?;
                let at = p[from..].find(&c).map(|i| from + i);
                if let Some(i) = at {
                    from = i + c.len();
                }
                if ids.len() >= 3 && ids.len() <= cfg.max_len.max(3) {
                    let body = ids.len() - 2;
                    let span = at
                        .map(|i| map_range(text, &span, p, i..i + c.len()))
                        .unwrap_or_else(|| span.clone());
                    out.push(Segment {
                        window: Window { ids, body },
                        span,
                    });
                }
            }
        }
    }
    Ok((out, false))
}

/// Byte ranges in `text` of the pieces [`pieces`] made of it: a piece is a run of the text's
/// white-space-separated words joined by single spaces, in order.
pub fn piece_spans(text: &str, pieces: &[String]) -> Vec<std::ops::Range<usize>> {
    let words: Vec<std::ops::Range<usize>> = text
        .split_whitespace()
        .map(|w| {
            let start = w.as_ptr() as usize - text.as_ptr() as usize;
            start..start + w.len()
        })
        .collect();
    let mut next = 0;
    pieces
        .iter()
        .map(|p| {
            let n = p.split_whitespace().count().max(1);
            let first = words.get(next).map_or(text.len(), |w| w.start);
            let last = words
                .get((next + n - 1).min(words.len().saturating_sub(1)))
                .map_or(text.len(), |w| w.end);
            next += n;
            first..last.max(first)
        })
        .collect()
}

/// The bytes of `text` that bytes `sub` of `piece` (whose words span `span` of `text`) come
/// from: words are matched in order, so runs of white space in `text` are accounted for.
fn map_range(
    text: &str,
    span: &std::ops::Range<usize>,
    piece: &str,
    sub: std::ops::Range<usize>,
) -> std::ops::Range<usize> {
    let src = &text[span.clone()];
    let offsets = |s: &str| -> Vec<usize> {
        s.split_whitespace()
            .map(|w| w.as_ptr() as usize - s.as_ptr() as usize)
            .collect()
    };
    let (pw, sw) = (offsets(piece), offsets(src));
    let map = |b: usize| -> usize {
        // the word of the piece holding byte b, and b's offset inside it
        let i = pw.partition_point(|&o| o <= b).saturating_sub(1);
        match (pw.get(i), sw.get(i)) {
            (Some(&po), Some(&so)) => span.start + so + (b - po),
            _ => span.end,
        }
    };
    let (a, b) = (map(sub.start), map(sub.end.max(sub.start + 1) - 1) + 1);
    let b = b.min(span.end).max(a);
    let (mut a, mut b) = (a.min(b), b);
    while !text.is_char_boundary(a) {
        a -= 1;
    }
    while !text.is_char_boundary(b) {
        b += 1;
    }
    a..b
}

/// Words that make a segment negated, hypothetical or historical (NegEx-style cues).
const CUES: &[&str] = &[
    "no",
    "not",
    "denies",
    "denied",
    "deny",
    "without",
    "negative",
    "neg",
    "rule",
    "ruled",
    "r/o",
    "history",
    "hx",
    "resolved",
    "doubt",
    "unlikely",
    "suspicion",
    "free",
    "absent",
    "never",
    "prior",
    "remote",
    "previous",
    "family",
];

/// The clauses of an affirmative segment (split at `,` `;` ` and ` ` for `), when there are at
/// least two and the segment carries no cue of [`CUES`]; each clause keeps a word of three
/// letters or more.
pub fn clauses(piece: &str) -> Vec<String> {
    let lower = piece.to_lowercase();
    let has_cue = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '/'))
        .any(|w| CUES.contains(&w));
    if has_cue {
        return Vec::new();
    }
    let mut parts = vec![piece.to_string()];
    for sep in [",", ";", " and ", " for "] {
        parts = parts
            .iter()
            .flat_map(|p| p.split(sep).map(str::to_string).collect::<Vec<_>>())
            .collect();
    }
    let parts: Vec<String> = parts
        .into_iter()
        .map(|p| p.trim().trim_end_matches('.').trim().to_string())
        .filter(|p| {
            p.split(|c: char| !c.is_alphabetic())
                .any(|w| w.chars().count() >= 3)
        })
        .collect();
    if parts.len() < 2 {
        return Vec::new();
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentences_items_and_headers() {
        let text = "CHIEF COMPLAINT: Chest pain\n\nHISTORY: 72 y/o male sent in by the PCP for chest pain. Also reports chronic cough.\n\nPAST MEDICAL HISTORY:\n1. type 2 diabetes mellitus without complications\n- remote history of gout, resolved\n\nREVIEW OF SYSTEMS: No evidence of pneumonia. Denies fever.\n";
        let p = pieces(text, 4);
        assert_eq!(
            p,
            vec![
                "CHIEF COMPLAINT: Chest pain",
                "HISTORY: 72 y/o male sent in by the PCP for chest pain.",
                "Also reports chronic cough.",
                "PAST MEDICAL HISTORY: 1. type 2 diabetes mellitus without complications",
                "- remote history of gout, resolved",
                // a short last piece joins the one before
                "REVIEW OF SYSTEMS: No evidence of pneumonia. Denies fever.",
            ]
        );
    }

    #[test]
    fn affirmative_segments_offer_their_clauses() {
        assert_eq!(
            clauses("72 y/o with HTN and DM2 admitted for acute on chronic CHF."),
            vec!["72 y/o with HTN", "DM2 admitted", "acute on chronic CHF"]
        );
        // a cue keeps the segment whole; one clause is no split
        assert!(clauses("No evidence of pneumonia, DVT or PE.").is_empty());
        assert!(clauses("remote history of gout and CKD").is_empty());
        assert!(clauses("Essential hypertension.").is_empty());
    }

    #[test]
    fn pieces_and_clauses_map_back_to_the_text() {
        let text = "HISTORY:  72 y/o with HTN and\n  DM2 admitted for acute on chronic CHF.\n\nPlan: diuresis.";
        let ps = pieces(text, 4);
        let spans = piece_spans(text, &ps);
        for (p, s) in ps.iter().zip(&spans) {
            let got: Vec<&str> = text[s.clone()].split_whitespace().collect();
            let want: Vec<&str> = p.split_whitespace().collect();
            assert_eq!(got, want);
        }
        let p = &ps[0];
        let c = "DM2 admitted";
        let i = p.find(c).unwrap();
        let r = map_range(text, &spans[0], p, i..i + c.len());
        assert_eq!(&text[r], "DM2 admitted");
    }

    #[test]
    fn wrapped_lines_read_as_one_sentence() {
        let text = "Patient is a 64 year old woman with a history of\nhypertension who presents with\nchest pain. She denies fever.";
        let p = pieces(text, 3);
        assert_eq!(
            p,
            vec![
                "Patient is a 64 year old woman with a history of hypertension who presents with chest pain.",
                "She denies fever.",
            ]
        );
        assert!(pieces("", 4).is_empty());
        assert_eq!(pieces("ok.", 4), vec!["ok."]);
    }
}
