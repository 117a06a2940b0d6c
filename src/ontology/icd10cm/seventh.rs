//! ICD-10-CM 7th characters: the codes a `sevenChrDef` adds to the tabular list.
//!
//! A `sevenChrDef` on a category or subcategory (`S72`, `E08.32`, `O32`) applies to every code
//! below it that has no child codes: each such leaf gets one child per defined character, written
//! the way the CMS order file and the CDC code list write them:
//!
//! * code: the leaf padded with the placeholder `X` to six characters, then the 7th character
//!   (`S72.001` + `A` → `S72.001A`, `S00.00` + `A` → `S00.00XA`, `T71` + `A` → `T71.XXXA`);
//! * name: the leaf's title, a comma, and the character's meaning (`Fracture of unspecified part of
//!   neck of right femur, initial encounter for closed fracture`);
//! * parent: the leaf it extends (so `S00.00XA` is below `S00.00`; placeholder-only codes such as
//!   `S00.00X` are not codes and are not made).
//!
//! The leaf itself becomes a header (not billable) and its extensions are billable. The one
//! exception the tabular states in prose is honoured too: a `<notes>` note such as "7th characters
//! D and S do not apply to codes in category S06 with 6th character 7 - …, or 8 - …" removes
//! those characters from the codes below the note's code with those 6th characters.

use crate::domain::model::Concept;

/// One `sevenChrDef`: the characters and their meanings, in file order.
pub type SeventhDef = Vec<(String, String)>;

/// "7th characters X and Y do not apply to codes … with 6th character N - …, or M - …".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    /// The 7th characters that do not apply (`D`, `S`).
    pub sevenths: Vec<String>,
    /// The 6th characters of the codes they do not apply to (`7`, `8`).
    pub sixths: Vec<char>,
}

/// Read an exclusion rule from a `<notes>` note; `None` when the note is not one.
pub fn parse_exclusion(note: &str) -> Option<Exclusion> {
    let rest = note.trim().strip_prefix("7th character")?;
    let rest = rest.strip_prefix('s').unwrap_or(rest);
    let (chars, after) = rest
        .split_once(" do not apply")
        .or_else(|| rest.split_once(" does not apply"))?;
    let sevenths: Vec<String> = chars
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|w| w.len() == 1 && w.chars().all(|c| c.is_ascii_alphanumeric()))
        .map(str::to_string)
        .collect();
    let (_, tail) = after.split_once("6th character")?;
    // "7 - death due to …, or 8 - death due to …": the token before each " - " is a character.
    let pieces: Vec<&str> = tail.split(" - ").collect();
    let sixths: Vec<char> = pieces[..pieces.len().saturating_sub(1)]
        .iter()
        .filter_map(|p| p.split_whitespace().last())
        .filter(|t| t.len() == 1)
        .filter_map(|t| t.chars().next())
        .filter(char::is_ascii_alphanumeric)
        .collect();
    (!sevenths.is_empty() && !sixths.is_empty()).then_some(Exclusion { sevenths, sixths })
}

/// The six-character base of a leaf's extensions: the code padded with `X` (`T71` → `T71.XXX`).
pub fn padded(leaf: &str) -> String {
    let mut base = leaf.to_string();
    if base.len() == 3 {
        base.push('.');
    }
    while base.len() < 7 {
        base.push('X');
    }
    base
}

/// The codes `def` adds below `leaf` (titled `title`), minus those `exclusions` rule out.
pub fn extensions(leaf: &Concept, def: &SeventhDef, exclusions: &[Exclusion]) -> Vec<Concept> {
    let base = padded(&leaf.code);
    let sixth = base.chars().filter(|&c| c != '.').nth(5);
    def.iter()
        .filter(|(ch, _)| {
            !exclusions
                .iter()
                .any(|x| x.sevenths.contains(ch) && sixth.is_some_and(|s| x.sixths.contains(&s)))
        })
        .map(|(ch, meaning)| {
            let title = if meaning.is_empty() {
                leaf.preferred_term.clone()
            } else {
                format!("{}, {meaning}", leaf.preferred_term)
            };
            let mut c = Concept::new(format!("{base}{ch}"), title);
            c.attributes.insert("billable".into(), "true".into());
            c
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn padding() {
        assert_eq!(padded("S72.001"), "S72.001");
        assert_eq!(padded("S00.00"), "S00.00X");
        assert_eq!(padded("T71"), "T71.XXX");
        assert_eq!(padded("T36.0X1"), "T36.0X1");
    }

    #[test]
    fn s06_rule() {
        let x = parse_exclusion(
            "7th characters D and S do not apply to codes in category S06 with 6th character 7 - \
             death due to brain injury prior to regaining consciousness, or 8 - death due to other \
             cause prior to regaining consciousness.",
        )
        .unwrap();
        assert_eq!(x.sevenths, vec!["D", "S"]);
        assert_eq!(x.sixths, vec!['7', '8']);
        assert_eq!(parse_exclusion("Code also any associated condition"), None);

        let def: SeventhDef = ["A", "D", "S"]
            .iter()
            .map(|c| (c.to_string(), format!("meaning {c}")))
            .collect();
        let leaf = Concept::new("S06.0X7", "Concussion with death");
        let codes: Vec<_> = extensions(&leaf, &def, std::slice::from_ref(&x))
            .into_iter()
            .map(|c| c.code)
            .collect();
        assert_eq!(codes, vec!["S06.0X7A"]);
        let leaf = Concept::new("S06.0X1", "Concussion");
        let ext = extensions(&leaf, &def, &[x]);
        assert_eq!(ext.len(), 3);
        assert_eq!(ext[1].preferred_term, "Concussion, meaning D");
    }
}
