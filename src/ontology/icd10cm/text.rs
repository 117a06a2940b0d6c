//! The tabular list's strings: codes written with or without their dot, the code range in a
//! chapter title, which `includes` notes are wordings of their code, and white space.

/// Insert the dot of an ICD-10(-CM) code written without one (`E119` → `E11.9`, `V812XXA` →
/// `V81.2XXA`); codes that already have a dot, ranges (`A00-A09`) and codes of at most 3 characters are returned trimmed
/// and upper-cased.
pub fn with_dot(code: &str) -> String {
    let c = code.trim().to_ascii_uppercase();
    if c.contains('.') || c.contains('-') || c.len() <= 3 || !c.is_ascii() {
        return c;
    }
    format!("{}.{}", &c[..3], &c[3..])
}

/// The code range at the end of a chapter title: `... diseases (E00-E89)` → `E00-E89`.
pub(super) fn chapter_code(desc: &str) -> Option<&str> {
    let inner = desc.trim_end().strip_suffix(')')?;
    let open = inner.rfind('(')?;
    let range = &inner[open + 1..];
    (range.contains('-') && range.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        .then_some(range)
}

/// Longest `includes` note kept as a term, in words; longer ones are instructions.
const MAX_INCLUDES_WORDS: usize = 16;

/// The term an `includes` note of a code gives, if it is a wording of the code rather than an
/// instruction: I10's "high blood pressure" is a term; I11's "any condition in I50.- or
/// I51.4-I51.7 due to hypertension" (it cites codes), "the listed conditions ..." and
/// sentences are not. ("vitamin B12" reads as a code citation and is dropped too.)
pub fn includes_term(note: &str) -> Option<String> {
    let note = note.trim().trim_end_matches([';', ',', '.']).trim();
    let lower = note.to_lowercase();
    if note.is_empty()
        || note.split_whitespace().count() > MAX_INCLUDES_WORDS
        || ["the listed ", "any condition", "conditions "]
            .iter()
            .any(|p| lower.starts_with(p))
    {
        return None;
    }
    let cites_code = note
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '.'))
        .any(|w| {
            let b = w.as_bytes();
            b.len() >= 3
                && b[0].is_ascii_uppercase()
                && b[1].is_ascii_digit()
                && b[2].is_ascii_alphanumeric()
                && (b.len() == 3 || b[3] == b'.')
        });
    (!cites_code).then(|| note.to_string())
}

/// Runs of white space (newlines inside XML text included) as one space.
pub(super) fn normalize_space(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
