//! NegEx-style cue scopes over a note segment: which words of a sentence are negated,
//! family history or resolved history, so coding never reads them as present conditions.
//!
//! After NegEx (Chapman et al. 2001) and ConText: a **pre-cue** ("no", "denies", "negative
//! for", "family history of", "remote history of", ...) opens a scope that runs forward to the
//! end of the segment or to a **terminator** (a conjunction that changes the subject: "but",
//! "however", "which", ...; or `;` / `:`); a **post-cue** ("was ruled out", "resolved",
//! "unlikely", ...) scopes backward to the start of the segment or the last terminator. Commas
//! do not end a scope ("no fever, chills or cough" negates all three). Plain "history of" is
//! *not* a cue: coders code chronic conditions named in a personal history (hypertension,
//! diabetes), so only resolved or remote history is suppressed.
//!
//! [`affirmed`] returns the segment with its scoped words removed (the text coding embeds), or
//! `None` when no word of four letters or more is left.

/// Pre-cues (lower case, as word sequences): negation, family history, resolved history.
const PRE: &[&str] = &[
    "no",
    "not",
    "nor",
    "denies",
    "denied",
    "deny",
    "denying",
    "without",
    "negative for",
    "absence of",
    "absent",
    "free of",
    "rule out",
    "ruled out",
    "r/o",
    "never had",
    "no evidence of",
    "no signs of",
    "family history of",
    "family history",
    "familial history of",
    "his mother",
    "her mother",
    "his father",
    "her father",
    "his brother",
    "her brother",
    "his sister",
    "her sister",
    "remote history of",
    "resolved",
];

/// Post-cues: scope backward.
const POST: &[&str] = &[
    "was ruled out",
    "were ruled out",
    "ruled out",
    "was excluded",
    "were excluded",
    "was discarded",
    "were discarded",
    "was negative",
    "were negative",
    "is negative",
    "are negative",
    "resolved",
    "has resolved",
    "unlikely",
];

/// Words that end a scope.
const TERMINATORS: &[&str] = &[
    "but",
    "however",
    "although",
    "though",
    "except",
    "apart",
    "aside",
    "which",
    "who",
    "whose",
    "because",
    "presents",
    "presented",
    "reports",
    "showed",
    "shows",
    "revealed",
    "diagnosed",
];

/// A word of a segment: its lower-case form without edge punctuation.
struct Word {
    norm: String,
    /// The word ends a clause (`;` or `:` after it).
    ends_clause: bool,
}

fn words(text: &str) -> Vec<Word> {
    text.split_whitespace()
        .map(|raw| Word {
            norm: raw
                .trim_matches(|c: char| !(c.is_alphanumeric() || c == '/'))
                .to_lowercase(),
            ends_clause: raw.ends_with([';', ':']),
        })
        .collect()
}

/// Length in words of the cue of `cues` starting at word `i`, if any (longest first).
fn cue_at(w: &[Word], i: usize, cues: &[&str]) -> Option<usize> {
    cues.iter()
        .filter_map(|c| {
            let parts: Vec<&str> = c.split(' ').collect();
            let n = parts.len();
            (i + n <= w.len() && parts.iter().zip(&w[i..i + n]).all(|(p, x)| *p == x.norm))
                .then_some(n)
        })
        .max()
}

/// Per word of `text` (split at white space): whether it lies in a negation, family-history
/// or resolved-history scope (cue words included).
pub fn scoped(text: &str) -> Vec<bool> {
    let w = words(text);
    let mut out = vec![false; w.len()];
    let is_term = |x: &Word| TERMINATORS.contains(&x.norm.as_str());
    let mut i = 0;
    while i < w.len() {
        if let Some(n) = cue_at(&w, i, POST) {
            // backward to the segment start or the last terminator
            let mut j = i;
            while j > 0 && !is_term(&w[j - 1]) && !w[j - 1].ends_clause {
                j -= 1;
            }
            out[j..i + n].iter_mut().for_each(|x| *x = true);
            i += n;
            continue;
        }
        if let Some(n) = cue_at(&w, i, PRE) {
            let mut j = i + n;
            out[i..j].iter_mut().for_each(|x| *x = true);
            if w[j - 1].ends_clause {
                i = j;
                continue;
            }
            while j < w.len() && !is_term(&w[j]) {
                out[j] = true;
                j += 1;
                if w[j - 1].ends_clause {
                    break;
                }
            }
            i = j;
            continue;
        }
        i += 1;
    }
    out
}

/// The segment without its scoped words, or `None` when nothing of substance (a word of four
/// letters or more) is left; the segment itself when it has no cue.
pub fn affirmed(text: &str) -> Option<String> {
    let mask = scoped(text);
    if !mask.iter().any(|&m| m) {
        return Some(text.to_string());
    }
    let kept: Vec<&str> = text
        .split_whitespace()
        .zip(&mask)
        .filter(|(_, &m)| !m)
        .map(|(w, _)| w)
        .collect();
    let substantial = kept
        .iter()
        .any(|w| w.chars().filter(|c| c.is_alphabetic()).count() >= 4);
    substantial.then(|| kept.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negation_scopes_run_to_a_terminator() {
        assert_eq!(affirmed("She had no fever and denied chest pain."), None);
        assert_eq!(
            affirmed("No fever, chills or cough, but productive sputum and dyspnea.").as_deref(),
            Some("but productive sputum and dyspnea.")
        );
        assert_eq!(
            affirmed("Patient with hypertension; denies chest pain.").as_deref(),
            Some("Patient with hypertension;")
        );
        assert_eq!(
            affirmed("Negative for malignancy.").as_deref(),
            None,
            "the whole segment is in scope"
        );
    }

    #[test]
    fn family_and_resolved_history_are_suppressed_personal_history_is_not() {
        assert_eq!(
            affirmed("Family history of colon cancer in the father.").as_deref(),
            None
        );
        assert_eq!(
            affirmed("Her mother had breast cancer; she has asthma.").as_deref(),
            Some("she has asthma.")
        );
        assert_eq!(
            affirmed("Pneumonia in 2015, resolved. Type 2 diabetes.").as_deref(),
            Some("Type 2 diabetes.")
        );
        assert_eq!(
            affirmed("History of hypertension and type 2 diabetes.").as_deref(),
            Some("History of hypertension and type 2 diabetes."),
            "personal history is coded"
        );
        assert_eq!(
            affirmed("Tuberculosis was ruled out. Sarcoidosis was diagnosed.").as_deref(),
            Some("Sarcoidosis was diagnosed.")
        );
    }

    #[test]
    fn masks_align_with_words() {
        let m = scoped("Acute MI without ST elevation");
        assert_eq!(m, vec![false, false, true, true, true]);
        assert!(scoped("").is_empty());
    }
}
