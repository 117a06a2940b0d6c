//! What a submitted note is made of, before it is coded: HTML markup and control characters are
//! blanked out (byte for byte, so offsets into the text stay valid), and a note that does not
//! look like English gets a warning (every model here reads English).

/// A note as coding reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Screened {
    /// The text with markup and control characters replaced by spaces (same byte length).
    pub text: String,
    /// Whether any letter or digit is left.
    pub has_words: bool,
    /// What the caller should know about how the text was read.
    pub warnings: Vec<String>,
}

const ENGLISH: &[&str] = &[
    "the", "of", "and", "with", "in", "to", "was", "a", "for", "is", "on", "he", "she", "his",
    "her", "at", "by", "were", "no", "patient",
];
const SPANISH: &[&str] = &[
    "de", "la", "el", "que", "y", "en", "los", "con", "por", "las", "del", "una", "para", "se",
    "un", "al", "paciente", "presenta",
];

/// Blank out `<tag …>` runs (a `<` followed by a letter, `/` or `!`, up to the next `>` within
/// 2,000 bytes) and control characters other than line breaks and tabs.
fn blank(text: &str) -> (String, usize, usize) {
    let b = text.as_bytes();
    let mut out = b.to_vec();
    let (mut tags, mut controls) = (0, 0);
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'<'
            && b.get(i + 1)
                .is_some_and(|c| c.is_ascii_alphabetic() || *c == b'/' || *c == b'!')
        {
            if let Some(len) = b[i..b.len().min(i + 2000)].iter().position(|&c| c == b'>') {
                out[i..=i + len].fill(b' ');
                tags += 1;
                i += len + 1;
                continue;
            }
        }
        i += 1;
    }
    // control characters (C0 but \t \n \r, DEL, C1): replaced byte for byte
    let s = String::from_utf8(out).unwrap_or_default();
    let mut bytes = s.into_bytes();
    let text2 = String::from_utf8_lossy(&bytes).into_owned();
    for (i, c) in text2.char_indices() {
        if c.is_control() && !matches!(c, '\n' | '\r' | '\t') {
            bytes[i..i + c.len_utf8()].fill(b' ');
            controls += 1;
        }
    }
    (String::from_utf8(bytes).unwrap_or_default(), tags, controls)
}

/// Screen a note (see the module docs).
pub fn screen(text: &str) -> Screened {
    let (clean, tags, controls) = blank(text);
    let mut warnings = Vec::new();
    if tags > 0 {
        warnings.push(format!("{tags} HTML/XML tags were read as spaces"));
    }
    if controls > 0 {
        warnings.push(format!("{controls} control characters were read as spaces"));
    }
    let words: Vec<String> = clean
        .split(|c: char| !c.is_alphabetic())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect();
    let share = |list: &[&str]| {
        words.iter().filter(|w| list.contains(&w.as_str())).count() as f64
            / words.len().max(1) as f64
    };
    let (en, es) = (share(ENGLISH), share(SPANISH));
    if words.len() >= 12 && en < 0.05 {
        let what = if es > en && es >= 0.08 {
            "looks like Spanish"
        } else {
            "does not look like English"
        };
        warnings.push(format!(
            "the note {what} ({:.0}% English function words): the coding model reads English, so expect poor codes",
            en * 100.0
        ));
    }
    let has_words = clean.chars().any(char::is_alphanumeric);
    Screened {
        text: clean,
        has_words,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_controls_are_blanked_byte_for_byte() {
        let t = "<p>Dx: <b>pneumonía</b></p>\u{0}\u{7}ok";
        let s = screen(t);
        assert_eq!(s.text.len(), t.len());
        assert_eq!(
            s.text.split_whitespace().collect::<Vec<_>>(),
            ["Dx:", "pneumonía", "ok"]
        );
        assert!(
            s.warnings.iter().any(|w| w.contains("4 HTML")),
            "{:?}",
            s.warnings
        );
        assert!(s.warnings.iter().any(|w| w.contains("2 control")));
        assert!(s.has_words);
        // "a < b > c" is no tag
        assert_eq!(screen("a < b > c").text, "a < b > c");
        assert!(!screen("\u{1}\u{2}<br/> \u{85}").has_words);
    }

    #[test]
    fn languages() {
        let es = "Paciente de 37 años que presenta dolor osteoarticular de localización variable en el último mes y fiebre en la última semana.";
        let s = screen(es);
        assert!(
            s.warnings.iter().any(|w| w.contains("Spanish")),
            "{:?}",
            s.warnings
        );
        let en = "We describe the case of a 37-year-old man with osteoarticular pain of variable location in the last month and fever.";
        assert!(screen(en).warnings.is_empty());
    }
}
