//! One table of clinical abbreviations and shorthand, used by search queries and by notes.
//!
//! A sentence encoder trained on general text reads "HTN" or "DM2" as noise, and the
//! vocabularies spell conditions out ("Essential (primary) hypertension"), so neither side of
//! hybrid search meets a query written the way clinicians write.
//!
//! - **Notes** ([`expand`]): each listed abbreviation that stands as a whole word, in the listed
//!   case, is followed by its expansion in parentheses ("HTN (hypertension)"), so the text keeps
//!   what was written and gains the words the encoder knows.
//! - **Queries** ([`expand_query`]): the same table, plus query shorthand (`s/p`, `h/o`, `w/`,
//!   `w/o`, `hx`, `fx`, laterality `lt`/`rt`/`L`/`R`/`bilat`/`b/l`), numbers written as words or
//!   roman numerals after `type`/`stage`/`grade`/`class`/`phase` ("type two", "stage III" →
//!   "type 2", "stage 3") and ordinal digits before `degree` ("2nd degree" → "second degree").
//!   Abbreviations are *replaced* by their first expansion (a query is short; the expansion is
//!   what both indexes can match). In queries an abbreviation also matches in lower case unless
//!   its lower-case form is an English word (`cap`, `pad`, `sob`, ...).
//!
//! The list holds common abbreviations of diagnoses whose reading is not ambiguous in a
//! problem list; ambiguous ones (PE: physical exam or pulmonary embolism, RA: room air or
//! rheumatoid arthritis, CA, HA, CD) are left alone. An unknown abbreviation is searched as
//! written.

/// `(abbreviation, expansion)`, written for this project.
const LIST: &[(&str, &str)] = &[
    ("HTN", "hypertension"),
    ("DM", "diabetes mellitus"),
    ("DM2", "type 2 diabetes mellitus"),
    ("T2DM", "type 2 diabetes mellitus"),
    ("NIDDM", "type 2 diabetes mellitus"),
    ("DM1", "type 1 diabetes mellitus"),
    ("T1DM", "type 1 diabetes mellitus"),
    ("IDDM", "type 1 diabetes mellitus"),
    ("DKA", "diabetic ketoacidosis"),
    ("CHF", "congestive heart failure"),
    (
        "HFrEF",
        "heart failure with reduced ejection fraction, systolic heart failure",
    ),
    (
        "HFpEF",
        "heart failure with preserved ejection fraction, diastolic heart failure",
    ),
    (
        "CAD",
        "coronary artery disease, atherosclerotic heart disease",
    ),
    ("ACS", "acute coronary syndrome"),
    ("MI", "myocardial infarction"),
    ("STEMI", "ST elevation myocardial infarction"),
    ("NSTEMI", "non-ST elevation myocardial infarction"),
    ("AFib", "atrial fibrillation"),
    ("Afib", "atrial fibrillation"),
    ("afib", "atrial fibrillation"),
    ("PAD", "peripheral arterial disease"),
    ("PVD", "peripheral vascular disease"),
    ("DVT", "deep vein thrombosis"),
    ("HLD", "hyperlipidemia"),
    ("CVA", "stroke, cerebral infarction"),
    ("TIA", "transient ischemic attack"),
    ("ICH", "intracranial hemorrhage"),
    ("SAH", "subarachnoid hemorrhage"),
    ("SDH", "subdural hemorrhage"),
    ("COPD", "chronic obstructive pulmonary disease"),
    ("OSA", "obstructive sleep apnea"),
    ("ARDS", "acute respiratory distress syndrome"),
    ("PNA", "pneumonia"),
    ("CAP", "community acquired pneumonia"),
    ("HAP", "hospital acquired pneumonia"),
    ("SOB", "shortness of breath"),
    ("CKD", "chronic kidney disease"),
    ("ESRD", "end stage renal disease"),
    ("AKI", "acute kidney injury, acute kidney failure"),
    ("ARF", "acute renal failure"),
    ("UTI", "urinary tract infection"),
    ("BPH", "benign prostatic hyperplasia"),
    ("GERD", "gastro-esophageal reflux disease"),
    ("GIB", "gastrointestinal hemorrhage"),
    ("UGIB", "upper gastrointestinal hemorrhage"),
    ("LGIB", "lower gastrointestinal hemorrhage"),
    ("SBO", "small bowel obstruction"),
    ("IBD", "inflammatory bowel disease"),
    ("IBS", "irritable bowel syndrome"),
    ("NASH", "nonalcoholic steatohepatitis"),
    ("ESLD", "end stage liver disease, cirrhosis"),
    ("HCV", "hepatitis C"),
    ("HBV", "hepatitis B"),
    ("MDD", "major depressive disorder"),
    ("PTSD", "post-traumatic stress disorder"),
    ("ADHD", "attention deficit hyperactivity disorder"),
    ("OUD", "opioid use disorder"),
    ("AUD", "alcohol use disorder"),
    ("EtOH", "alcohol"),
    ("OA", "osteoarthritis"),
    ("DJD", "degenerative joint disease, osteoarthritis"),
    ("LBP", "low back pain"),
    ("TB", "tuberculosis"),
];

/// The expansion of a whole-word abbreviation, if listed.
pub fn expansion(word: &str) -> Option<&'static str> {
    LIST.iter().find(|(a, _)| *a == word).map(|(_, e)| *e)
}

/// `text` with every listed abbreviation followed by its expansion in parentheses (once per
/// occurrence; an abbreviation already followed by an opening parenthesis is left alone).
pub fn expand(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 32);
    let mut word_start: Option<usize> = None;
    let flush = |out: &mut String, word: &str, next: Option<char>| {
        out.push_str(word);
        if let Some(e) = expansion(word) {
            if next != Some('(') {
                out.push_str(" (");
                out.push_str(e);
                out.push(')');
            }
        }
    };
    let mut last = 0;
    for (i, c) in text.char_indices() {
        let is_word = c.is_alphanumeric();
        match (word_start, is_word) {
            (None, true) => {
                out.push_str(&text[last..i]);
                word_start = Some(i);
            }
            (Some(s), false) => {
                let next = text[i..].trim_start().chars().next();
                flush(&mut out, &text[s..i], next);
                word_start = None;
                last = i;
            }
            _ => {}
        }
    }
    match word_start {
        Some(s) => flush(&mut out, &text[s..], None),
        None => out.push_str(&text[last..]),
    }
    out
}

/// Lower-case forms of listed abbreviations that are English words or too short to trust in
/// lower case: in queries these match only in the listed case.
const LOWER_CASE_UNSAFE: &[&str] = &[
    "dm", "mi", "cap", "pad", "sob", "hap", "aud", "ich", "cad", "acs", "oa", "tb", "oud", "ibs",
    "ibd", "sah", "sdh", "gib", "etoh",
];

/// Query shorthand: `(written form, lower-cased, replacement)`; matched case-insensitively as a
/// whole word (slashes belong to the word).
const SHORTHAND: &[(&str, &str)] = &[
    ("s/p", "status post"),
    ("h/o", "history of"),
    ("w/o", "without"),
    ("w/", "with"),
    ("hx", "history of"),
    ("fx", "fracture"),
    ("lt", "left"),
    ("rt", "right"),
    ("bilat", "bilateral"),
    ("b/l", "bilateral"),
];

/// Words after which a number written as a word or roman numeral becomes digits.
const NUMBERED: &[&str] = &[
    "type", "stage", "grade", "class", "phase", "level", "category",
];

fn number_word(w: &str) -> Option<&'static str> {
    const WORDS: &[(&str, &str)] = &[
        ("one", "1"),
        ("two", "2"),
        ("three", "3"),
        ("four", "4"),
        ("five", "5"),
        ("six", "6"),
        ("i", "1"),
        ("ii", "2"),
        ("iii", "3"),
        ("iv", "4"),
        ("v", "5"),
        ("vi", "6"),
        ("1", "1"),
        ("2", "2"),
        ("3", "3"),
        ("4", "4"),
        ("5", "5"),
        ("6", "6"),
    ];
    let l = w.to_ascii_lowercase();
    WORDS.iter().find(|(a, _)| *a == l).map(|(_, d)| *d)
}

fn ordinal(w: &str) -> Option<&'static str> {
    match w.to_ascii_lowercase().as_str() {
        "1st" => Some("first"),
        "2nd" => Some("second"),
        "3rd" => Some("third"),
        "4th" => Some("fourth"),
        _ => None,
    }
}

/// The query expansion of one whole word: a listed abbreviation (first expansion), or a
/// lower-case spelling of one that is safe in lower case.
fn query_abbreviation(word: &str) -> Option<&'static str> {
    let hit = expansion(word).or_else(|| {
        let lower = word.to_ascii_lowercase();
        if LOWER_CASE_UNSAFE.contains(&lower.as_str()) {
            return None;
        }
        LIST.iter()
            .find(|(a, _)| a.eq_ignore_ascii_case(word))
            .map(|(_, e)| *e)
    })?;
    Some(hit.split(',').next().unwrap_or(hit).trim())
}

/// The query with abbreviations, shorthand and numbers rewritten (see module docs), or `None`
/// when nothing in it is rewritten (search the query as given).
pub fn expand_query(query: &str) -> Option<String> {
    let chunks: Vec<&str> = query.split_whitespace().collect();
    let mut out: Vec<String> = Vec::with_capacity(chunks.len());
    let mut changed = false;
    for (i, chunk) in chunks.iter().enumerate() {
        // Keep surrounding punctuation ("(HTN)," → "(hypertension),"), except slashes, which
        // belong to shorthand such as "s/p".
        let start = chunk
            .find(|c: char| c.is_alphanumeric() || c == '/')
            .unwrap_or(chunk.len());
        let end = chunk
            .rfind(|c: char| c.is_alphanumeric() || c == '/')
            .map_or(start, |e| {
                e + chunk[e..].chars().next().map_or(1, char::len_utf8)
            })
            .max(start);
        let (pre, word, post) = (&chunk[..start], &chunk[start..end], &chunk[end..]);
        let prev = i
            .checked_sub(1)
            .map(|j| chunks[j].trim_matches(|c: char| !c.is_alphanumeric()));
        let next = chunks
            .get(i + 1)
            .map(|n| n.trim_matches(|c: char| !c.is_alphanumeric()));
        let lower = word.to_ascii_lowercase();
        let replacement: Option<String> =
            if let Some((_, r)) = SHORTHAND.iter().find(|(s, _)| *s == lower) {
                Some((*r).to_string())
            } else if word == "L" || word == "R" {
                Some(if word == "L" { "left" } else { "right" }.to_string())
            } else if let Some(e) = query_abbreviation(word) {
                Some(e.to_string())
            } else if prev.is_some_and(|p| NUMBERED.contains(&p.to_ascii_lowercase().as_str())) {
                number_word(word).filter(|d| *d != word).map(str::to_string)
            } else if next.is_some_and(|n| n.eq_ignore_ascii_case("degree")) {
                ordinal(word).map(str::to_string)
            } else {
                None
            };
        match replacement {
            Some(r) => {
                changed = true;
                out.push(format!("{pre}{r}{post}"));
            }
            None => out.push((*chunk).to_string()),
        }
    }
    changed.then(|| out.join(" "))
}

/// The text to search for a query: [`expand_query`]'s rewrite, else the query itself.
pub fn query_text(query: &str) -> std::borrow::Cow<'_, str> {
    match expand_query(query) {
        Some(e) => std::borrow::Cow::Owned(e),
        None => std::borrow::Cow::Borrowed(query),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multibyte_letters_and_digits_at_a_chunk_end() {
        // 'ª' and '¹' are alphanumeric and two bytes long: the chunk's end is a char boundary
        for q in ["ª", "¹", "x¹", "(ª)", "DM²", "é"] {
            if let Some(e) = expand_query(q) {
                assert!(
                    e.contains(q.trim_matches(|c| c == '(' || c == ')')),
                    "{q} → {e}"
                );
            }
        }
    }

    #[test]
    fn whole_words_in_their_case_only() {
        assert_eq!(
            expand("72 y/o with HTN and DM2, admitted for CHF."),
            "72 y/o with HTN (hypertension) and DM2 (type 2 diabetes mellitus), admitted for \
             CHF (congestive heart failure)."
        );
        // not inside words, not in another case, not when already spelled out
        assert_eq!(
            expand("HTNs htn CHF (heart failure)"),
            "HTNs htn CHF (heart failure)"
        );
        assert_eq!(
            expand("AKI"),
            "AKI (acute kidney injury, acute kidney failure)"
        );
        assert_eq!(expand(""), "");
        assert_eq!(expand("café PE"), "café PE");
    }

    #[test]
    fn queries_rewritten() {
        let q = |s: &str| expand_query(s);
        assert_eq!(q("DM2").as_deref(), Some("type 2 diabetes mellitus"));
        assert_eq!(q("htn").as_deref(), Some("hypertension"));
        assert_eq!(
            q("T2DM with CKD").as_deref(),
            Some("type 2 diabetes mellitus with chronic kidney disease")
        );
        assert_eq!(
            q("acute CHF").as_deref(),
            Some("acute congestive heart failure")
        );
        assert_eq!(
            q("copd").as_deref(),
            Some("chronic obstructive pulmonary disease")
        );
        assert_eq!(q("MI").as_deref(), Some("myocardial infarction"));
        // "mi" in lower case is not trusted; "cap" is a word
        assert_eq!(q("mi"), None);
        assert_eq!(q("knee cap pain"), None);
        assert_eq!(q("s/p CABG").as_deref(), Some("status post CABG"));
        assert_eq!(
            q("fx of L wrist").as_deref(),
            Some("fracture of left wrist")
        );
        assert_eq!(q("diabetes type two").as_deref(), Some("diabetes type 2"));
        assert_eq!(
            q("CKD stage III").as_deref(),
            Some("chronic kidney disease stage 3")
        );
        assert_eq!(q("2nd degree burn").as_deref(), Some("second degree burn"));
        assert_eq!(q("(HTN),").as_deref(), Some("(hypertension),"));
        // unknown abbreviations and plain text are searched as written
        assert_eq!(q("XYZQ"), None);
        assert_eq!(q("heart attack"), None);
        assert_eq!(q("stage 3"), None);
        assert_eq!(q("???"), None);
        assert_eq!(query_text("HTN"), "hypertension");
        assert_eq!(query_text("fits"), "fits");
    }
}
