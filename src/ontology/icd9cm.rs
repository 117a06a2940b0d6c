//! Loader for ICD-9-CM diagnoses (`icd9cm-txt` / `icd9cm-csv`, system `ICD9CM`) and the CMS
//! General Equivalence Mappings (GEMs) between ICD-9-CM and ICD-10-CM.
//!
//! # Files (each recognised on its own; one release may mix them)
//! * `CMS32_DESC_LONG_DX.txt` / `CMS32_DESC_SHORT_DX.txt` — CMS fixed-width text in Latin-1
//!   (Windows-1252): the code without its dot, spaces, the description (`25000 Diabetes ...`).
//!   Names containing `LONG` give the preferred term, `SHORT` a term of kind `short`.
//!   The `_SG` files (procedures, ICD-9-CM volume 3) are another code system and are refused.
//! * a description CSV with columns `dgns_cd`, `longdesc`, `shortdesc` (`icd9dx2015.csv`, UTF-8).
//! * GEMs in the CMS text layout (`2015_I9gem.txt`: `source target flags`, whitespace separated,
//!   direction from the name: `I9GEM` → ICD-9→10, `I10GEM` → ICD-10→9), or as CSV with columns
//!   `icd9cm`, `icd10cm`, `flags` [, `approximate`, `no_map`, ...]; the CSV's direction is its
//!   column order (source first).
//!
//! # What is loaded
//! * each diagnosis code → a concept; codes get their dot per ICD-9-CM rules (`25000` → `250.00`,
//!   `V010` → `V01.0`, `E8000` → `E800.0`).
//! * hierarchy: the files have none, so it is derived from the code structure (`250.01` →
//!   `250.0` → `250`), linking each code to its nearest ancestor *present in the release*. The CMS
//!   files list billable codes only, so most codes have no present ancestor; no category concepts
//!   are invented. The set of codes (~15k) is kept in memory for this step.
//! * GEM rows → mappings ICD9CM→ICD10CM (from the ICD-9 GEM) or ICD10CM→ICD9CM (from the ICD-10
//!   GEM), relation `gem_approximate` / `gem_exact` per the approximate flag (first flag digit),
//!   source = the file name. Rows flagged no-map (`NoDx`) are skipped. ICD-10-CM codes get their
//!   dot after the 3rd character.

use super::input::{self, CsvInput, Encoding, LineReader};
use super::{InputFile, LoadError, LoadOptions, Sink};
use crate::domain::model::{Concept, ConceptRef, Mapping, Relation, Term, TermKind};
use std::collections::BTreeSet;

/// Insert the dot of an ICD-9-CM diagnosis code written without one: the category is 3
/// characters (`250`, `V01`) or 4 for E-codes (`E800`). Codes that already have a dot, ranges, or
/// just a category are returned trimmed and upper-cased.
pub fn with_dot(code: &str) -> String {
    let c = code.trim().to_ascii_uppercase();
    let cat = if c.starts_with('E') { 4 } else { 3 };
    if c.contains('.') || c.contains('-') || c.len() <= cat || !c.is_ascii() {
        return c;
    }
    format!("{}.{}", &c[..cat], &c[cat..])
}

/// True when `code` (without dot) looks like an ICD-9-CM diagnosis code: 3–5 digits, `V` + 2–4
/// digits, or `E` + 3–4 digits.
fn valid_code(code: &str) -> bool {
    let b = code.as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    match b.first() {
        Some(b'V') => (3..=5).contains(&b.len()) && digits(&b[1..]),
        Some(b'E') => (4..=5).contains(&b.len()) && digits(&b[1..]),
        Some(_) => (3..=5).contains(&b.len()) && digits(b),
        None => false,
    }
}

/// The ancestors of a dotted ICD-9-CM code, nearest first (`250.01` → `250.0`, `250`).
fn ancestors(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut c = code.to_string();
    while let Some(dot) = c.find('.') {
        c.pop();
        if c.len() == dot + 1 {
            c.pop();
        }
        out.push(c.clone());
    }
    out
}

/// What a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    LongTxt,
    DescCsv,
    ShortTxt,
    GemTxt { from9: bool },
    GemCsv,
}

fn role_by_name(f: &InputFile) -> Result<Role, LoadError> {
    let n = f.upper_name();
    let unknown = || {
        LoadError::Files(format!(
            "{}: not an ICD-9-CM file (expected CMS32_DESC_LONG_DX.txt, CMS32_DESC_SHORT_DX.txt, \
             icd9dx2015.csv, 2015_I9gem.txt, 2015_I10gem.txt or a GEM CSV)",
            f.name
        ))
    };
    if n.ends_with(".CSV") {
        let csv = CsvInput::open(f)?;
        return if csv.optional("dgns_cd").is_some() {
            Ok(Role::DescCsv)
        } else if csv.optional("icd9cm").is_some() && csv.optional("icd10cm").is_some() {
            Ok(Role::GemCsv)
        } else {
            Err(unknown())
        };
    }
    if !n.ends_with(".TXT") {
        return Err(unknown());
    }
    if n.contains("GEM") {
        if n.contains("I10") || n.contains("ICD10") {
            Ok(Role::GemTxt { from9: false })
        } else if n.contains("I9") || n.contains("ICD9") {
            Ok(Role::GemTxt { from9: true })
        } else {
            Err(LoadError::Files(format!(
                "{}: cannot tell the GEM's direction from its name (use I9gem / I10gem)",
                f.name
            )))
        }
    } else if n.contains("_SG") || n.contains("PROC") {
        Err(LoadError::Files(format!(
            "{}: ICD-9-CM procedure codes (volume 3) are not supported; give the _DX files",
            f.name
        )))
    } else if n.contains("LONG") {
        Ok(Role::LongTxt)
    } else if n.contains("SHORT") {
        Ok(Role::ShortTxt)
    } else {
        Err(unknown())
    }
}

/// Load an ICD-9-CM release (descriptions and/or GEMs) from `files` into `sink`.
pub fn load(
    files: &[InputFile],
    _opts: &LoadOptions,
    sink: &mut dyn Sink,
) -> Result<(), LoadError> {
    let mut roles = Vec::with_capacity(files.len());
    for f in files {
        roles.push((role_by_name(f)?, f));
    }
    // Long descriptions first, so short names never become the preferred term when a long one
    // exists; GEMs last.
    roles.sort_by_key(|(r, _)| *r);
    let has_long = roles
        .iter()
        .any(|(r, _)| matches!(r, Role::LongTxt | Role::DescCsv));
    let mut codes = BTreeSet::new();
    let mut done = 0;
    let mut hierarchy_done = false;
    for (role, f) in roles {
        if matches!(role, Role::GemTxt { .. } | Role::GemCsv) && !hierarchy_done {
            hierarchy(&codes, sink)?;
            hierarchy_done = true;
        }
        done += match role {
            Role::LongTxt | Role::ShortTxt => {
                load_txt(f, role == Role::LongTxt, has_long, &mut codes, done, sink)?
            }
            Role::DescCsv => load_desc_csv(f, &mut codes, done, sink)?,
            Role::GemTxt { from9 } => load_gem_txt(f, from9, done, sink)?,
            Role::GemCsv => load_gem_csv(f, done, sink)?,
        };
    }
    if !hierarchy_done {
        hierarchy(&codes, sink)?;
    }
    Ok(())
}

fn hierarchy(codes: &BTreeSet<String>, sink: &mut dyn Sink) -> Result<(), LoadError> {
    for code in codes {
        if let Some(parent) = ancestors(code).into_iter().find(|a| codes.contains(a)) {
            sink.relation(Relation {
                from: code.clone(),
                rel: "is_a".into(),
                to: parent,
            })?;
        }
    }
    Ok(())
}

fn load_txt(
    f: &InputFile,
    long: bool,
    has_long: bool,
    codes: &mut BTreeSet<String>,
    done: u64,
    sink: &mut dyn Sink,
) -> Result<u64, LoadError> {
    let mut lines = LineReader::open_with(f, Encoding::Latin1)?;
    let mut rows = 0u64;
    let mut owned = String::new();
    while let Some(l) = lines.next_line()? {
        owned.clear();
        owned.push_str(l);
        let line = owned.as_str();
        if line.trim().is_empty() {
            continue;
        }
        let (raw, text) = match line.split_once(|c: char| c.is_ascii_whitespace()) {
            Some((c, t)) => (c, t.trim()),
            None => (line.trim(), ""),
        };
        if !valid_code(raw) {
            return Err(lines.error(format!("'{raw}' is not an ICD-9-CM diagnosis code")));
        }
        if text.is_empty() {
            return Err(lines.error(format!("code {raw} has no description (truncated line?)")));
        }
        let code = with_dot(raw);
        let concept = if long || !has_long || !codes.contains(&code) {
            let mut c = Concept::new(code.clone(), text);
            if !long {
                c.add_term(Term::new(text, TermKind::Short));
            }
            c
        } else {
            Concept {
                code: code.clone(),
                terms: vec![Term::new(text, TermKind::Short)],
                active: true,
                ..Default::default()
            }
        };
        codes.insert(code);
        sink.concept(concept)?;
        rows += 1;
        if rows.is_multiple_of(input::PROGRESS_EVERY) {
            sink.progress(done + lines.bytes_read())?;
        }
    }
    if rows == 0 {
        return Err(LoadError::malformed(&f.name, 1, "empty file: no codes"));
    }
    sink.progress(done + lines.bytes_read())?;
    Ok(lines.bytes_read())
}

fn load_desc_csv(
    f: &InputFile,
    codes: &mut BTreeSet<String>,
    done: u64,
    sink: &mut dyn Sink,
) -> Result<u64, LoadError> {
    let mut csv = CsvInput::open(f)?;
    let i_code = csv.require("dgns_cd")?;
    let i_long = csv.require("longdesc")?;
    let i_short = csv.optional("shortdesc");
    let mut rows = 0u64;
    let mut rec = csv::StringRecord::new();
    while csv.read_into(&mut rec)? {
        let raw = rec.get(i_code).unwrap_or("").trim().to_ascii_uppercase();
        let long = rec.get(i_long).unwrap_or("").trim().to_string();
        let short = i_short.and_then(|i| rec.get(i)).unwrap_or("").trim();
        let short = short.to_string();
        if !valid_code(&raw) {
            return Err(csv.error(format!(
                "column dgns_cd: '{raw}' is not an ICD-9-CM diagnosis code"
            )));
        }
        let preferred = if long.is_empty() { &short } else { &long };
        if preferred.is_empty() {
            return Err(csv.error(format!("code {raw} has no description")));
        }
        let code = with_dot(&raw);
        let mut c = Concept::new(code.clone(), preferred.as_str());
        c.add_term(Term::new(short, TermKind::Short));
        codes.insert(code);
        sink.concept(c)?;
        rows += 1;
        if rows.is_multiple_of(input::PROGRESS_EVERY) {
            sink.progress(done + csv.bytes_read())?;
        }
    }
    sink.progress(done + csv.bytes_read())?;
    Ok(csv.bytes_read())
}

/// Build the mapping for one GEM row (`None` for a no-map row).
fn gem_mapping(
    from9: bool,
    source: &str,
    target: &str,
    approximate: bool,
    source_name: &str,
) -> Mapping {
    let (from, to) = if from9 {
        (
            ConceptRef::new("ICD9CM", with_dot(source)),
            ConceptRef::new("ICD10CM", super::icd10cm::with_dot(target)),
        )
    } else {
        (
            ConceptRef::new("ICD10CM", super::icd10cm::with_dot(source)),
            ConceptRef::new("ICD9CM", with_dot(target)),
        )
    };
    Mapping {
        from,
        to,
        relation: if approximate {
            "gem_approximate"
        } else {
            "gem_exact"
        }
        .into(),
        source: source_name.to_string(),
    }
}

/// Check a GEM flags field (5 digits: approximate, no map, combination, scenario, choice list).
fn parse_flags(flags: &str) -> Result<(bool, bool), String> {
    let b = flags.as_bytes();
    if b.len() != 5 || !b.iter().all(u8::is_ascii_digit) {
        return Err(format!("flags '{flags}' are not 5 digits"));
    }
    Ok((b[0] == b'1', b[1] == b'1'))
}

fn check_gem_code(code: &str, what: &str) -> Result<(), String> {
    if code.is_empty()
        || code.len() > 8
        || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
    {
        return Err(format!("{what} code '{code}' is not a valid code"));
    }
    Ok(())
}

fn load_gem_txt(
    f: &InputFile,
    from9: bool,
    done: u64,
    sink: &mut dyn Sink,
) -> Result<u64, LoadError> {
    let mut lines = LineReader::open_with(f, Encoding::Latin1)?;
    let mut rows = 0u64;
    let mut owned = String::new();
    while let Some(l) = lines.next_line()? {
        owned.clear();
        owned.push_str(l);
        let line = owned.as_str();
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 3 {
            return Err(lines.error(format!(
                "expected 3 whitespace-separated fields (source target flags), found {}",
                fields.len()
            )));
        }
        let (approx, no_map) = parse_flags(fields[2]).map_err(|m| lines.error(m))?;
        check_gem_code(fields[0], "source").map_err(|m| lines.error(m))?;
        check_gem_code(fields[1], "target").map_err(|m| lines.error(m))?;
        rows += 1;
        if !no_map && fields[1] != "NoDx" {
            sink.mapping(gem_mapping(from9, fields[0], fields[1], approx, &f.name))?;
        }
        if rows.is_multiple_of(input::PROGRESS_EVERY) {
            sink.progress(done + lines.bytes_read())?;
        }
    }
    if rows == 0 {
        return Err(LoadError::malformed(&f.name, 1, "empty file: no GEM rows"));
    }
    sink.progress(done + lines.bytes_read())?;
    Ok(lines.bytes_read())
}

fn load_gem_csv(f: &InputFile, done: u64, sink: &mut dyn Sink) -> Result<u64, LoadError> {
    let mut csv = CsvInput::open(f)?;
    let i9 = csv.require("icd9cm")?;
    let i10 = csv.require("icd10cm")?;
    let from9 = i9 < i10;
    let (i_src, i_tgt) = if from9 { (i9, i10) } else { (i10, i9) };
    let i_flags = csv.optional("flags");
    let i_approx = csv.optional("approximate");
    let i_nomap = csv.optional("no_map");
    if i_flags.is_none() && i_approx.is_none() {
        return Err(csv.require("flags").unwrap_err());
    }
    let mut rows = 0u64;
    let mut rec = csv::StringRecord::new();
    while csv.read_into(&mut rec)? {
        let src = rec.get(i_src).unwrap_or("").trim().to_string();
        let tgt = rec.get(i_tgt).unwrap_or("").trim().to_string();
        let (mut approx, mut no_map) = match i_flags.and_then(|i| rec.get(i)) {
            Some(fl) => parse_flags(fl.trim()).map_err(|m| csv.error(m))?,
            None => (false, false),
        };
        let flag = |i: Option<usize>| -> Result<Option<bool>, LoadError> {
            match i.and_then(|i| rec.get(i)).map(str::trim) {
                None | Some("") => Ok(None),
                Some("0") => Ok(Some(false)),
                Some("1") => Ok(Some(true)),
                Some(v) => Err(csv.error(format!("flag value '{v}' is not 0 or 1"))),
            }
        };
        if let Some(a) = flag(i_approx)? {
            approx = a;
        }
        if let Some(n) = flag(i_nomap)? {
            no_map = n;
        }
        check_gem_code(&src, "source").map_err(|m| csv.error(m))?;
        check_gem_code(&tgt, "target").map_err(|m| csv.error(m))?;
        rows += 1;
        if !no_map && tgt != "NoDx" {
            sink.mapping(gem_mapping(from9, &src, &tgt, approx, &f.name))?;
        }
        if rows.is_multiple_of(input::PROGRESS_EVERY) {
            sink.progress(done + csv.bytes_read())?;
        }
    }
    sink.progress(done + csv.bytes_read())?;
    Ok(csv.bytes_read())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dots_validity_and_ancestors() {
        assert_eq!(with_dot("25000"), "250.00");
        assert_eq!(with_dot("0010"), "001.0");
        assert_eq!(with_dot("042"), "042");
        assert_eq!(with_dot("V010"), "V01.0");
        assert_eq!(with_dot("E8000"), "E800.0");
        assert_eq!(with_dot("E800"), "E800");
        assert!(valid_code("25000") && valid_code("V0101") && valid_code("E9999"));
        assert!(!valid_code("25") && !valid_code("X123") && !valid_code("250000"));
        assert_eq!(ancestors("250.01"), vec!["250.0", "250"]);
        assert_eq!(ancestors("E800.0"), vec!["E800"]);
        assert!(ancestors("042").is_empty());
        assert_eq!(parse_flags("10111"), Ok((true, false)));
        assert!(parse_flags("101").is_err());
    }
}
