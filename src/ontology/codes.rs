//! Codes as people type them: the spellings a requested code may stand for.
//!
//! Users write `s72001a`, `S72001A`, `S72.001 A`, `S00.00A` (placeholder left out), `25000`, or
//! `hp:0001250`. [`spellings`] turns such a string into the canonical spellings it can denote in
//! a system, most likely first; the store keeps those that exist (see
//! `service::codes::resolve_concept`), so a lookup resolves only when exactly one code fits.
//!
//! * ICD-10-CM: upper case, no blanks, the dot after the category (`S72001A` → `S72.001A`); when
//!   that is not a code, the placeholder `X`s are re-placed: the characters after the category
//!   without their `X`s, with `X`s inserted before the 7th character to make a 7-character code
//!   (`S00.00A` → `S00.00XA`, `T36.01A` → `T36.0X1A`, `S00.00XXA` → `S00.00XA`). Several fits
//!   are ambiguous.
//! * ICD-9-CM: upper case, the dot after the category (3 characters, 4 for E codes:
//!   `25000` → `250.00`, `E8800` → `E880.0`), leading zeros restored before a dot (`41.3` →
//!   `041.3`).
//! * HPO: `HP_0001250`, `hp:0001250` and the bare 7 digits → `HP:0001250`.
//! * any system: the code trimmed, then upper-cased.

/// Candidate canonical spellings of `code` in `system` (upper-case system name), most likely
/// first, without duplicates. Empty when nothing plausible can be made of it. The first candidate
/// is the direct normalisation; later ones are placeholder re-arrangements (ICD-10-CM), which
/// are only worth trying when the earlier ones are not codes.
pub fn spellings(system: &str, code: &str) -> Vec<Vec<String>> {
    let trimmed = code.trim();
    let compact: String = trimmed
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    let mut tiers = vec![vec![trimmed.to_string(), compact.clone()]];
    match system {
        "ICD10CM" => {
            tiers[0].push(super::icd10cm::with_dot(&compact.replace('.', "")));
            tiers.push(icd10cm_placeholders(&compact));
        }
        "ICD9CM" => tiers[0].push(icd9cm(&compact)),
        "HPO" => {
            let digits = compact
                .strip_prefix("HP:")
                .or_else(|| compact.strip_prefix("HP_"))
                .unwrap_or(&compact);
            if digits.len() == 7 && digits.bytes().all(|b| b.is_ascii_digit()) {
                tiers[0].push(format!("HP:{digits}"));
            }
        }
        _ => {}
    }
    let mut seen = std::collections::HashSet::new();
    tiers
        .into_iter()
        .map(|t| {
            t.into_iter()
                .filter(|c| !c.is_empty() && seen.insert(c.clone()))
                .collect::<Vec<_>>()
        })
        .filter(|t| !t.is_empty())
        .collect()
}

/// ICD-9-CM: the dot re-placed and leading zeros of a numeric category restored.
fn icd9cm(compact: &str) -> String {
    if let Some((head, tail)) = compact.split_once('.') {
        if !head.is_empty() && head.len() < 3 && head.bytes().all(|b| b.is_ascii_digit()) {
            return format!("{head:0>3}.{tail}");
        }
        return compact.to_string();
    }
    super::icd9cm::with_dot(compact)
}

/// ICD-10-CM 7-character codes with the placeholder `X`s put back where they can go.
fn icd10cm_placeholders(compact: &str) -> Vec<String> {
    let core = compact.replace('.', "");
    if core.len() < 4 || !core.is_ascii() || !core.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Vec::new();
    }
    let (category, rest) = core.split_at(3);
    let rest: Vec<char> = rest.chars().filter(|&c| c != 'X').collect();
    // The 7th character is the last one; at most 3 characters (positions 4-6) precede it.
    let Some((seventh, body)) = rest.split_last() else {
        return Vec::new();
    };
    if body.len() > 3 {
        return Vec::new();
    }
    let mut out = Vec::new();
    // Choose the positions (among the 3 after the category) that hold the body's characters,
    // in order; the others hold the placeholder.
    for mask in 0u8..8 {
        if mask.count_ones() as usize != body.len() {
            continue;
        }
        let mut it = body.iter();
        let mut s = String::with_capacity(4);
        for pos in 0..3 {
            s.push(if mask & (1 << pos) != 0 {
                *it.next().unwrap_or(&'X')
            } else {
                'X'
            });
        }
        s.push(*seventh);
        out.push(format!("{category}.{s}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flat(system: &str, code: &str) -> Vec<String> {
        spellings(system, code).into_iter().flatten().collect()
    }

    #[test]
    fn icd10cm() {
        assert!(flat("ICD10CM", "s72001a").contains(&"S72.001A".to_string()));
        assert_eq!(spellings("ICD10CM", "S72.001A")[0], vec!["S72.001A"]);
        assert!(flat("ICD10CM", " S72.001 a ").contains(&"S72.001A".to_string()));
        let p = icd10cm_placeholders("S00.00A");
        assert!(p.contains(&"S00.00XA".to_string()), "{p:?}");
        let p = icd10cm_placeholders("T36.01A");
        assert!(p.contains(&"T36.0X1A".to_string()), "{p:?}");
        let p = icd10cm_placeholders("S00.00XXA");
        assert!(p.contains(&"S00.00XA".to_string()), "{p:?}");
        let p = icd10cm_placeholders("T71A");
        assert_eq!(p, vec!["T71.XXXA"]);
        assert!(icd10cm_placeholders("E11").is_empty());
        assert!(icd10cm_placeholders("A00-B99").is_empty());
        assert!(flat("ICD10CM", "").is_empty());
    }

    #[test]
    fn icd9cm_and_others() {
        assert!(flat("ICD9CM", "25000").contains(&"250.00".to_string()));
        assert!(flat("ICD9CM", "e8800").contains(&"E880.0".to_string()));
        assert!(flat("ICD9CM", "41.3").contains(&"041.3".to_string()));
        assert!(flat("HPO", "hp_0001250").contains(&"HP:0001250".to_string()));
        assert!(flat("HPO", "0001250").contains(&"HP:0001250".to_string()));
        assert_eq!(flat("UMLS", "c0036572"), vec!["c0036572", "C0036572"]);
    }
}
