//! Clinical abbreviations spelled out before a note segment is embedded.
//!
//! A sentence encoder trained on general text reads "HTN" or "DM2" as noise, so a note written
//! the way clinicians write ("72 y/o with HTN and DM2 admitted for acute on chronic CHF") would
//! not meet the code names at all. Before segments are embedded, each listed abbreviation that
//! stands as a whole word, in the listed case, is followed by its expansion in parentheses
//! ("HTN (hypertension)"), so the text keeps what was written and gains the words the encoder
//! knows. The list holds common abbreviations of diagnoses whose reading is not ambiguous in a
//! problem list; ambiguous ones (PE: physical exam or pulmonary embolism, RA: room air or
//! rheumatoid arthritis, CA, HA, CD) are left alone. Matching is case-sensitive except for the
//! mixed-case spellings listed twice.

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
