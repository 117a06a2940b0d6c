//! Loader for OBO 1.2/1.4 flat-file ontologies (`obo`; HPO's `hp.obo`, GO, MONDO, ...).
//!
//! # Format
//! A header (`format-version:`, `ontology: hp.obo`, ...) then stanzas `[Term]`, `[Typedef]`,
//! `[Instance]`, each a list of `tag: value` lines ended by a blank line or the next stanza.
//! Values may carry a trailing `! comment` and `{modifier=...}` list; quoted strings use the OBO
//! escapes (`\"`, `\\`, `\n`, `\t`, ...). The file is read line by line; only the current stanza
//! is held in memory.
//!
//! # What is loaded (only `[Term]` stanzas; `[Typedef]` and `[Instance]` are skipped)
//! * `id` → code (the full id, `HP:0001250`); `name` → preferred term; `def` → attribute
//!   `definition`.
//! * `synonym: "text" SCOPE [TYPE] [xrefs]`: `EXACT` → `synonym` (`abbreviation` for type
//!   `abbreviation`, `consumer` for `layperson`), `NARROW`/`BROAD`/`RELATED` → `narrow`/`broad`/
//!   `related`; type `obsolete_synonym` → `obsolete` whatever the scope; no scope → `related`
//!   (OBO 1.2 default). OBO 1.0 tags `exact_synonym:` etc. are accepted.
//! * `is_a: X` → relation `is_a` to X; `relationship: part_of X` → relation `part_of` (any
//!   relationship type is kept under its own name).
//! * `xref: PREFIX:LOCAL` → mapping `{system, id}` → `{PREFIX', LOCAL}`, relation `xref`, where
//!   PREFIX' is the prefix upper-cased with a few aliases (`MSH` → `MESH`, `SNOMEDCT`/`SNOMED_CT` →
//!   `SNOMEDCT_US`, `ICD-10`/`ICD10` → `ICD10CM`, `ICD-9`/`ICD9` → `ICD9CM`); URLs are skipped.
//! * `alt_id`, `replaced_by`, `consider` → attributes of those names (values joined by `"; "`);
//!   `is_obsolete: true` → the concept is inactive.
//!
//! The system is the caller's (`opts.system`); [`sniff_ontology`] proposes one from the header.

use super::input::{self, LineReader};
use super::{InputFile, LoadError, LoadOptions, Sink};
use crate::domain::model::{Concept, ConceptRef, Mapping, Relation, Term, TermKind};

/// The `ontology:` header of an OBO file, upper-cased, without directories or extension
/// (`ontology: hp.obo` → `HP`). `None` when the header has no `ontology:` line.
pub fn sniff_ontology(file: &InputFile) -> Result<Option<String>, LoadError> {
    let mut lines = LineReader::open(file)?;
    let mut owned = String::new();
    while let Some(l) = lines.next_line()? {
        owned.clear();
        owned.push_str(l);
        let line = owned.as_str();
        let line = line.trim();
        if line.starts_with('[') {
            break;
        }
        if let Some(v) = line.strip_prefix("ontology:") {
            let v = strip_comment(v).trim().to_string();
            let base = v.rsplit('/').next().unwrap_or(&v);
            let base = base
                .strip_suffix(".obo")
                .or_else(|| base.strip_suffix(".owl"))
                .unwrap_or(base);
            if base.is_empty() {
                return Err(lines.error("empty ontology: header"));
            }
            return Ok(Some(base.to_ascii_uppercase()));
        }
    }
    Ok(None)
}

/// Cut an unescaped `!` comment from an unquoted value.
fn strip_comment(v: &str) -> &str {
    let mut escaped = false;
    for (i, c) in v.char_indices() {
        match c {
            '\\' if !escaped => escaped = true,
            '!' if !escaped => return &v[..i],
            _ => escaped = false,
        }
    }
    v
}

/// Cut the trailing modifier list `{...}` and comment from an unquoted value, and unescape it.
fn plain_value(v: &str) -> String {
    let mut v = strip_comment(v).trim();
    if v.ends_with('}') {
        if let Some(open) = v.rfind('{') {
            v = v[..open].trim_end();
        }
    }
    unescape(v)
}

fn unescape(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('W') => out.push(' '),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Parse a leading quoted string: returns (unescaped text, rest after the closing quote).
fn quoted(v: &str) -> Result<(String, &str), String> {
    let v = v.trim_start();
    let Some(body) = v.strip_prefix('"') else {
        return Err("expected a quoted string".into());
    };
    let mut out = String::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 't')) => out.push('\t'),
                Some((_, 'W')) => out.push(' '),
                Some((_, o)) => out.push(o),
                None => break,
            },
            '"' => return Ok((out, &body[i + 1..])),
            _ => out.push(c),
        }
    }
    Err("unterminated quoted string".into())
}

/// The synonym kind for an OBO scope and optional synonym type.
fn synonym_kind(scope: Option<&str>, stype: Option<&str>) -> TermKind {
    if stype == Some("obsolete_synonym") {
        return TermKind::Obsolete;
    }
    match scope {
        Some("EXACT") => match stype {
            Some("abbreviation") => TermKind::Abbreviation,
            Some("layperson") => TermKind::Consumer,
            _ => TermKind::Synonym,
        },
        Some("NARROW") => TermKind::Narrow,
        Some("BROAD") => TermKind::Broad,
        _ => TermKind::Related,
    }
}

/// The system name for an xref prefix.
fn xref_system(prefix: &str) -> String {
    let p = prefix.to_ascii_uppercase();
    match p.as_str() {
        "MSH" | "MESH" => "MESH".into(),
        "SNOMEDCT" | "SNOMEDCT_US" | "SNOMED_CT" | "SCTID" => "SNOMEDCT_US".into(),
        "ICD-10" | "ICD10" | "ICD10CM" | "ICD-10-CM" => "ICD10CM".into(),
        "ICD-9" | "ICD9" | "ICD9CM" | "ICD-9-CM" => "ICD9CM".into(),
        "UMLS" | "UMLS_CUI" => "UMLS".into(),
        _ => p,
    }
}

/// One `[Term]` stanza being read.
#[derive(Default)]
struct Stanza {
    line: u64,
    id: Option<String>,
    concept: Concept,
    relations: Vec<(String, String)>,
    xrefs: Vec<ConceptRef>,
}

fn add_attr(c: &mut Concept, key: &str, value: String) {
    if value.is_empty() {
        return;
    }
    c.attributes
        .entry(key.to_string())
        .and_modify(|v| {
            v.push_str("; ");
            v.push_str(&value);
        })
        .or_insert(value);
}

impl Stanza {
    fn tag(&mut self, tag: &str, value: &str) -> Result<(), String> {
        match tag {
            "id" => self.id = Some(plain_value(value)),
            "name" => {
                let name = plain_value(value);
                self.concept.preferred_term = name.clone();
                self.concept.terms.retain(|t| t.kind != TermKind::Preferred);
                self.concept
                    .terms
                    .insert(0, Term::new(name, TermKind::Preferred));
            }
            "def" => {
                let (text, _) = quoted(value)?;
                self.concept.attributes.insert("definition".into(), text);
            }
            "synonym" | "exact_synonym" | "narrow_synonym" | "broad_synonym"
            | "related_synonym" => {
                let (text, rest) = quoted(value)?;
                let rest = strip_comment(rest);
                // Scope and type are the words before the `[xrefs]` list.
                let words: Vec<&str> = rest
                    .split('[')
                    .next()
                    .unwrap_or("")
                    .split_whitespace()
                    .collect();
                let (scope, stype) = match tag {
                    "synonym" => match words.first() {
                        Some(&s @ ("EXACT" | "NARROW" | "BROAD" | "RELATED")) => {
                            (Some(s), words.get(1).copied())
                        }
                        _ => (None, words.first().copied()),
                    },
                    t => (
                        Some(match t {
                            "exact_synonym" => "EXACT",
                            "narrow_synonym" => "NARROW",
                            "broad_synonym" => "BROAD",
                            _ => "RELATED",
                        }),
                        words.first().copied(),
                    ),
                };
                self.concept
                    .add_term(Term::new(text, synonym_kind(scope, stype)));
            }
            "is_a" => {
                let target = plain_value(value);
                if target.is_empty() {
                    return Err("is_a without a target".into());
                }
                self.relations.push(("is_a".into(), target));
            }
            "relationship" => {
                let v = plain_value(value);
                let mut it = v.split_whitespace();
                match (it.next(), it.next()) {
                    (Some(rel), Some(target)) => {
                        self.relations.push((rel.to_string(), target.to_string()))
                    }
                    _ => return Err("relationship needs a type and a target".into()),
                }
            }
            "xref" => {
                let v = strip_comment(value).trim();
                let token = v.split_whitespace().next().unwrap_or("");
                if let Some((prefix, local)) = token.split_once(':') {
                    let is_url = local.starts_with("//");
                    if !prefix.is_empty() && !local.is_empty() && !is_url {
                        self.xrefs
                            .push(ConceptRef::new(xref_system(prefix), unescape(local)));
                    }
                }
            }
            "alt_id" | "replaced_by" | "consider" => {
                add_attr(&mut self.concept, tag, plain_value(value));
            }
            "is_obsolete" if plain_value(value) == "true" => self.concept.active = false,
            _ => {}
        }
        Ok(())
    }
}

/// Load the `[Term]` stanzas of OBO files into `sink` under `opts.system`.
pub fn load(files: &[InputFile], opts: &LoadOptions, sink: &mut dyn Sink) -> Result<(), LoadError> {
    for f in files {
        if !f.upper_name().ends_with(".OBO") {
            return Err(LoadError::Files(format!(
                "{}: not an OBO file (expected a .obo file)",
                f.name
            )));
        }
    }
    let mut done = 0;
    for f in files {
        done += load_file(f, opts, done, sink)?;
    }
    Ok(())
}

fn finish(
    stanza: Option<Stanza>,
    file: &str,
    system: &str,
    sink: &mut dyn Sink,
) -> Result<(), LoadError> {
    let Some(mut s) = stanza else {
        return Ok(());
    };
    let Some(id) = s.id.take().filter(|i| !i.is_empty()) else {
        return Err(LoadError::malformed(
            file,
            s.line,
            "[Term] stanza without an id",
        ));
    };
    if s.concept.preferred_term.is_empty() {
        // A term without a name is legal OBO; its id is the best label we have.
        s.concept.preferred_term = id.clone();
        s.concept
            .terms
            .insert(0, Term::new(id.clone(), TermKind::Preferred));
    }
    s.concept.code = id.clone();
    sink.concept(s.concept)?;
    for (rel, to) in s.relations {
        sink.relation(Relation {
            from: id.clone(),
            rel,
            to,
        })?;
    }
    for to in s.xrefs {
        sink.mapping(Mapping {
            from: ConceptRef::new(system, id.clone()),
            to,
            relation: "xref".into(),
            source: file.to_string(),
        })?;
    }
    Ok(())
}

fn load_file(
    f: &InputFile,
    opts: &LoadOptions,
    done: u64,
    sink: &mut dyn Sink,
) -> Result<u64, LoadError> {
    let mut lines = LineReader::open(f)?;
    // `None` outside a [Term] stanza (header, Typedef, Instance).
    let mut current: Option<Stanza> = None;
    let mut terms = 0u64;
    let mut any_line = false;
    let mut owned = String::new();
    while let Some(l) = lines.next_line()? {
        owned.clear();
        owned.push_str(l);
        let line = owned.as_str();
        any_line = true;
        let line = line.trim();
        if line.is_empty() || line.starts_with('!') {
            continue;
        }
        if line.starts_with('[') {
            let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) else {
                return Err(lines.error(format!("malformed stanza header '{line}'")));
            };
            let no = lines.line_no();
            finish(current.take(), &f.name, &opts.system, sink)?;
            if name == "Term" {
                terms += 1;
                current = Some(Stanza {
                    line: no,
                    concept: Concept {
                        active: true,
                        ..Default::default()
                    },
                    ..Default::default()
                });
                if terms.is_multiple_of(input::PROGRESS_EVERY) {
                    sink.progress(done + lines.bytes_read())?;
                }
            }
            continue;
        }
        let Some((tag, value)) = line.split_once(':') else {
            return Err(lines.error(format!("expected 'tag: value', found '{line}'")));
        };
        if let Some(s) = current.as_mut() {
            let tag = tag.trim();
            s.tag(tag, value)
                .map_err(|m| lines.error(format!("{tag}: {m}")))?;
        }
    }
    if !any_line {
        return Err(LoadError::malformed(&f.name, 1, "empty file"));
    }
    finish(current.take(), &f.name, &opts.system, sink)?;
    if terms == 0 {
        return Err(LoadError::malformed(
            &f.name,
            lines.line_no().max(1),
            "no [Term] stanzas found",
        ));
    }
    sink.progress(done + lines.bytes_read())?;
    Ok(lines.bytes_read())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_quotes_and_kinds() {
        assert_eq!(plain_value(" HP:1 ! Seizure"), "HP:1");
        assert_eq!(plain_value(" HP:1 {source=\"x\"} ! c"), "HP:1");
        assert_eq!(plain_value(r" a\!b "), "a!b");
        let (t, rest) = quoted(r#" "say \"hi\"\n" EXACT []"#).unwrap();
        assert_eq!(t, "say \"hi\"\n");
        assert_eq!(rest, " EXACT []");
        assert!(quoted(r#" "open"#).is_err());
        assert_eq!(
            synonym_kind(Some("EXACT"), Some("layperson")),
            TermKind::Consumer
        );
        assert_eq!(
            synonym_kind(Some("RELATED"), Some("obsolete_synonym")),
            TermKind::Obsolete
        );
        assert_eq!(synonym_kind(None, None), TermKind::Related);
        assert_eq!(xref_system("MSH"), "MESH");
        assert_eq!(xref_system("ICD-10"), "ICD10CM");
    }
}
