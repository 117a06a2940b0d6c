//! Text analysis for medical strings, shared by indexing and querying so both sides always agree.
//!
//! Everything starts with [`fold`]: Unicode lower-casing then ASCII folding of accents and
//! ligatures (tantivy's Lucene-derived table), so `Sjögren` → `sjogren`, `Ærø` → `aero`.
//!
//! - [`words`]: folded text split on whitespace; each chunk is trimmed of surrounding
//!   punctuation, split into its alphanumeric *parts*, and when it had inner punctuation the
//!   whole *compound* is kept as an extra token. So `E11.9` gives `e11.9`, `e11`, `9`;
//!   `non-Hodgkin` gives `non-hodgkin`, `non`, `hodgkin`; `HbA1c` stays `hba1c`.
//! - [`trigrams`]: character 3-grams of every part of ≥ 3 characters (`diab` → `dia`, `iab`),
//!   which catch misspellings and partial words.
//! - [`exact_key`]: the parts joined by single spaces — the "normalised whole string" used for
//!   exact matching (`Diabetes mellitus, type 2` ≡ `diabetes  mellitus type-2`).
//! - [`code_keys`]: a code folded but otherwise intact, plus its alphanumeric-only form
//!   (`E11.9` → `e11.9`, `e119`; `HP:0001250` → `hp:0001250`, `hp0001250`).
//!
//! [`WordsTokenizer`] and [`TrigramTokenizer`] expose [`words`] and [`trigrams`] to tantivy.

use std::cell::RefCell;
use tantivy::tokenizer::{
    AsciiFoldingFilter, LowerCaser, RawTokenizer, TextAnalyzer, Token, TokenStream, Tokenizer,
};

/// Tokens longer than this many bytes are dropped (they are noise, and tantivy caps terms).
pub const MAX_TOKEN_BYTES: usize = 64;
/// The exact key and code keys are cut to this many bytes (at a character boundary).
pub const MAX_KEY_BYTES: usize = 512;

thread_local! {
    static FOLDER: RefCell<TextAnalyzer> = RefCell::new(
        TextAnalyzer::builder(RawTokenizer::default())
            .filter(LowerCaser)
            .filter(AsciiFoldingFilter)
            .build(),
    );
}

/// Lower-case and ASCII-fold a string (accents, ligatures, special letters).
pub fn fold(s: &str) -> String {
    if s.is_empty() {
        return String::new();
    }
    FOLDER.with(|f| {
        let mut analyzer = f.borrow_mut();
        let mut stream = analyzer.token_stream(s);
        let mut out = String::with_capacity(s.len());
        while let Some(t) = stream.next() {
            out.push_str(&t.text);
        }
        out
    })
}

/// Cut `s` to at most `max` bytes at a character boundary.
pub fn truncate_bytes(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Tokens of one whitespace-separated chunk of already folded text.
struct Chunk<'a> {
    /// The chunk without surrounding punctuation (`(E11.9),` → `E11.9`).
    trimmed: &'a str,
    /// Its alphanumeric runs.
    parts: Vec<&'a str>,
}

fn chunks(folded: &str) -> impl Iterator<Item = Chunk<'_>> {
    folded.split_whitespace().filter_map(|c| {
        let trimmed = c.trim_matches(|ch: char| !ch.is_alphanumeric());
        if trimmed.is_empty() {
            return None;
        }
        let parts = trimmed
            .split(|ch: char| !ch.is_alphanumeric())
            .filter(|p| !p.is_empty())
            .collect();
        Some(Chunk { trimmed, parts })
    })
}

fn keep(tok: &str) -> bool {
    !tok.is_empty() && tok.len() <= MAX_TOKEN_BYTES
}

/// Word tokens of `text` (see module docs): parts, plus compounds for chunks with inner
/// punctuation. Order follows the text; duplicates are kept (term frequency counts).
pub fn words(text: &str) -> Vec<String> {
    let folded = fold(text);
    let mut out = Vec::new();
    for c in chunks(&folded) {
        if c.parts.len() > 1 && keep(c.trimmed) {
            out.push(c.trimmed.to_string());
        }
        out.extend(c.parts.iter().filter(|p| keep(p)).map(|p| p.to_string()));
    }
    out
}

/// The alphanumeric parts of `text` only (no compounds), folded.
pub fn parts(text: &str) -> Vec<String> {
    let folded = fold(text);
    chunks(&folded)
        .flat_map(|c| c.parts.into_iter().filter(|p| keep(p)).map(str::to_string))
        .collect()
}

/// The compounds of `text` (chunks with inner punctuation, e.g. `e11.9`, `hp:0001250`), folded.
pub fn compounds(text: &str) -> Vec<String> {
    let folded = fold(text);
    chunks(&folded)
        .filter(|c| c.parts.len() > 1 && keep(c.trimmed))
        .map(|c| c.trimmed.to_string())
        .collect()
}

/// Character 3-grams of each part of `text` with at least 3 characters.
pub fn trigrams(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for p in parts(text) {
        let chars: Vec<char> = p.chars().collect();
        for w in chars.windows(3) {
            out.push(w.iter().collect());
        }
    }
    out
}

/// The normalised whole string: parts joined by single spaces, at most [`MAX_KEY_BYTES`].
pub fn exact_key(text: &str) -> String {
    let joined = parts(text).join(" ");
    truncate_bytes(&joined, MAX_KEY_BYTES).to_string()
}

/// Index/query keys of a code: folded and trimmed, plus the alphanumeric-only form when it
/// differs. Empty for an empty code.
pub fn code_keys(code: &str) -> Vec<String> {
    let folded = fold(code.trim());
    let folded = truncate_bytes(folded.trim(), MAX_KEY_BYTES).to_string();
    if folded.is_empty() {
        return Vec::new();
    }
    let stripped: String = folded.chars().filter(|c| c.is_alphanumeric()).collect();
    let mut keys = vec![folded];
    if !stripped.is_empty() && stripped != keys[0] {
        keys.push(stripped);
    }
    keys
}

/// A token stream over precomputed tokens.
pub struct VecTokenStream {
    tokens: Vec<Token>,
    /// Index of the current token + 1 (0 = before the first).
    next: usize,
}

impl VecTokenStream {
    fn new(texts: Vec<String>, len: usize) -> Self {
        let tokens = texts
            .into_iter()
            .enumerate()
            .map(|(i, text)| Token {
                offset_from: 0,
                offset_to: len,
                position: i,
                text,
                position_length: 1,
            })
            .collect();
        Self { tokens, next: 0 }
    }
}

impl TokenStream for VecTokenStream {
    fn advance(&mut self) -> bool {
        if self.next < self.tokens.len() {
            self.next += 1;
            true
        } else {
            false
        }
    }

    fn token(&self) -> &Token {
        &self.tokens[self
            .next
            .saturating_sub(1)
            .min(self.tokens.len().saturating_sub(1))]
    }

    fn token_mut(&mut self) -> &mut Token {
        let i = self
            .next
            .saturating_sub(1)
            .min(self.tokens.len().saturating_sub(1));
        &mut self.tokens[i]
    }
}

/// tantivy tokenizer producing [`words`].
#[derive(Debug, Clone, Copy, Default)]
pub struct WordsTokenizer;

impl Tokenizer for WordsTokenizer {
    type TokenStream<'a> = VecTokenStream;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> VecTokenStream {
        VecTokenStream::new(words(text), text.len())
    }
}

/// tantivy tokenizer producing [`trigrams`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TrigramTokenizer;

impl Tokenizer for TrigramTokenizer {
    type TokenStream<'a> = VecTokenStream;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> VecTokenStream {
        VecTokenStream::new(trigrams(text), text.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_accents_and_case() {
        assert_eq!(fold("Sjögren"), "sjogren");
        assert_eq!(fold("Ménière's DISEASE"), "meniere's disease");
        assert_eq!(fold("Straße"), "strasse");
        assert_eq!(fold(""), "");
    }

    #[test]
    fn words_keep_codes_and_split_punctuation() {
        assert_eq!(words("E11.9"), ["e11.9", "e11", "9"]);
        assert_eq!(words("HbA1c (blood)"), ["hba1c", "blood"]);
        assert_eq!(words("HP:0001250"), ["hp:0001250", "hp", "0001250"]);
        assert_eq!(
            words("Non-Hodgkin lymphoma, NOS"),
            ["non-hodgkin", "non", "hodgkin", "lymphoma", "nos"]
        );
        assert_eq!(words("250.00"), ["250.00", "250", "00"]);
        assert!(words("\"((( ::: )))").is_empty());
        assert!(words("   ").is_empty());
    }

    #[test]
    fn trigrams_of_parts() {
        assert_eq!(trigrams("Diab ok"), ["dia", "iab"]);
        assert_eq!(trigrams("Sjögren")[0], "sjo");
    }

    #[test]
    fn exact_and_code_keys() {
        assert_eq!(
            exact_key("Diabetes mellitus, type 2"),
            "diabetes mellitus type 2"
        );
        assert_eq!(
            exact_key("  diabetes   MELLITUS type-2 "),
            "diabetes mellitus type 2"
        );
        assert_eq!(code_keys(" E11.9 "), ["e11.9", "e119"]);
        assert_eq!(code_keys("C0011860"), ["c0011860"]);
        assert!(code_keys("  ").is_empty());
        let long = "é".repeat(1000);
        assert!(exact_key(&long).len() <= MAX_KEY_BYTES);
    }

    #[test]
    fn long_tokens_are_dropped() {
        let long = "a".repeat(MAX_TOKEN_BYTES + 1);
        assert_eq!(words(&format!("{long} ok")), ["ok"]);
    }
}
