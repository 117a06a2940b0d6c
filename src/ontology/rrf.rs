//! Rich Release Format, shared by the UMLS ([`super::umls`]) and RxNorm ([`super::rxnorm`])
//! loaders: the row reader, the atom layout of `MRCONSO.RRF` / `RXNCONSO.RRF`, runs of one
//! concept's atoms, concepts and xrefs built from atoms, the release's file roles, and the
//! relation-row loop of `MRREL.RRF` / `RXNREL.RRF`. Each loader supplies only what differs: which
//! atoms name the concept, which is preferred, and what a relation row means.
//!
//! RRF files are UTF-8, one row per line, fields separated by `|` with a trailing `|`, no header.
//! Extra trailing columns are tolerated (future releases may add some); fewer, a row without its
//! trailing `|` (a truncated file) or invalid UTF-8 are errors naming file and line. Blank lines
//! are skipped; a file without any row is an error at line 0 (the file as a whole).

use super::input::{split_rrf, LineReader, PROGRESS_EVERY};
use super::{InputFile, LoadError, LoadOptions, Sink};
use crate::domain::model::{Concept, ConceptRef, Mapping, Relation, Term, TermKind};
use std::collections::HashSet;

/// Number of fields of an `MRCONSO.RRF` / `RXNCONSO.RRF` row.
pub const CONSO_FIELDS: usize = 18;
/// Number of fields of an `MRREL.RRF` / `RXNREL.RRF` row.
pub const REL_FIELDS: usize = 16;

/// Map a UMLS source abbreviation (SAB) to the system name used in this database
/// (`LNC` → `LOINC`, `MSH` → `MESH`); other SABs are kept as published.
pub fn normalize_sab(sab: &str) -> String {
    match sab {
        "LNC" => "LOINC".to_string(),
        "MSH" => "MESH".to_string(),
        other => other.to_string(),
    }
}

/// True for a `SUPPRESS` value marking a suppressed atom or relation (O obsolete, E editor
/// suppressed, Y suppressed by the source); `N` and empty are live.
pub fn is_suppressed(suppress: &str) -> bool {
    matches!(suppress, "O" | "E" | "Y")
}

/// The system name to load under (`opts.system`, else `default`) and the kept languages
/// (`opts.languages`, else English).
pub(crate) fn system_and_languages<'a>(
    opts: &'a LoadOptions,
    default: &'a str,
) -> (&'a str, Vec<&'a str>) {
    let system = if opts.system.is_empty() {
        default
    } else {
        opts.system.as_str()
    };
    let languages = if opts.languages.is_empty() {
        vec!["ENG"]
    } else {
        opts.languages.iter().map(String::as_str).collect()
    };
    (system, languages)
}

/// Read the next non-empty line of `lines` into `buf` (reused, so rows cost no allocation);
/// `false` at end of file. Copying the line releases the reader's borrow, so `split_rrf` and
/// `LineReader::error` can be used on it.
pub(crate) fn read_row(lines: &mut LineReader, buf: &mut String) -> Result<bool, LoadError> {
    while let Some(line) = lines.next_line()? {
        if !line.is_empty() {
            buf.clear();
            buf.push_str(line);
            return Ok(true);
        }
    }
    Ok(false)
}

/// One atom row of `MRCONSO.RRF` or `RXNCONSO.RRF` (the two share a layout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Atom {
    pub cui: String,
    pub lat: String,
    pub ts: String,
    pub stt: String,
    pub ispref: String,
    pub sab: String,
    pub tty: String,
    pub code: String,
    pub text: String,
    pub suppress: String,
}

impl Atom {
    fn parse(lines: &LineReader, line: &str) -> Result<Self, LoadError> {
        let f = split_rrf(lines, line, CONSO_FIELDS)?;
        if f[0].is_empty() {
            return Err(lines.error("empty concept identifier (field 1)"));
        }
        if f[11].is_empty() {
            return Err(lines.error("empty SAB (field 12)"));
        }
        Ok(Self {
            cui: f[0].to_string(),
            lat: f[1].to_string(),
            ts: f[2].to_string(),
            stt: f[4].to_string(),
            ispref: f[6].to_string(),
            sab: f[11].to_string(),
            tty: f[12].to_string(),
            code: f[13].to_string(),
            text: f[14].to_string(),
            suppress: f[16].to_string(),
        })
    }
}

/// Streams `MRCONSO.RRF`-layout rows grouped in runs of consecutive rows with the same
/// concept identifier; holds at most one run (plus one look-ahead row) in memory.
pub(crate) struct ConsoRuns {
    lines: LineReader,
    pending: Option<(Atom, u64)>,
    rows: u64,
    buf: String,
}

impl ConsoRuns {
    /// Open a `*CONSO.RRF` file.
    pub fn open(file: &InputFile) -> Result<Self, LoadError> {
        Ok(Self {
            lines: LineReader::open(file)?,
            pending: None,
            rows: 0,
            buf: String::new(),
        })
    }

    fn next_atom(&mut self) -> Result<Option<(Atom, u64)>, LoadError> {
        if let Some(p) = self.pending.take() {
            return Ok(Some(p));
        }
        if !read_row(&mut self.lines, &mut self.buf)? {
            if self.rows == 0 {
                return Err(LoadError::malformed(
                    self.lines.name(),
                    0,
                    "empty file: no rows",
                ));
            }
            return Ok(None);
        }
        let atom = Atom::parse(&self.lines, &self.buf)?;
        self.rows += 1;
        Ok(Some((atom, self.lines.line_no())))
    }

    /// Fill `run` with the next run of rows sharing one identifier; returns the line number of
    /// the run's first row, or `None` at end of file.
    pub fn next_run(&mut self, run: &mut Vec<Atom>) -> Result<Option<u64>, LoadError> {
        run.clear();
        let Some((first, line)) = self.next_atom()? else {
            return Ok(None);
        };
        run.push(first);
        while let Some((atom, l)) = self.next_atom()? {
            if atom.cui != run[0].cui {
                self.pending = Some((atom, l));
                break;
            }
            run.push(atom);
        }
        Ok(Some(line))
    }

    /// Rows parsed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Bytes consumed so far.
    pub fn bytes_read(&self) -> u64 {
        self.lines.bytes_read()
    }

    /// The file's display name.
    pub fn name(&self) -> &str {
        self.lines.name()
    }
}

/// Add `term` unless a term with the same text is already there (whatever its kind).
pub(crate) fn push_unique_text(concept: &mut Concept, term: Term) {
    if term.text.trim().is_empty() || concept.terms.iter().any(|t| t.text == term.text) {
        return;
    }
    concept.terms.push(term);
}

/// The concept named by `atoms` (non-empty): `pref`'s text is the preferred term, every other
/// atom a term made by `term` — live atoms (by `live`) before dead ones, each text once; the
/// concept is active when any atom is live.
pub(crate) fn concept_from_atoms(
    atoms: &[&Atom],
    pref: &Atom,
    live: impl Fn(&Atom) -> bool,
    term: impl Fn(&Atom) -> Term,
) -> Concept {
    let mut preferred = term(pref);
    preferred.kind = TermKind::Preferred;
    let mut c = Concept {
        code: pref.cui.clone(),
        preferred_term: pref.text.clone(),
        terms: vec![preferred],
        active: atoms.iter().any(|a| live(a)),
        ..Default::default()
    };
    let (alive, dead): (Vec<&&Atom>, Vec<&&Atom>) = atoms.iter().partition(|a| live(a));
    for a in alive.into_iter().chain(dead) {
        push_unique_text(&mut c, term(a));
    }
    c
}

/// Emit one `xref` mapping `system:code → {SAB, CODE}` per distinct (SAB, CODE) of `atoms`
/// (`NOCODE` and empty codes skipped; SABs normalised by [`normalize_sab`]).
pub(crate) fn emit_xrefs<'a>(
    from: &ConceptRef,
    atoms: impl IntoIterator<Item = &'a Atom>,
    source: &str,
    sink: &mut dyn Sink,
) -> Result<(), LoadError> {
    let mut seen: HashSet<(&str, &str)> = HashSet::new();
    for a in atoms {
        if a.code.is_empty() || a.code == "NOCODE" || !seen.insert((&a.sab, &a.code)) {
            continue;
        }
        sink.mapping(Mapping {
            from: from.clone(),
            to: ConceptRef::new(normalize_sab(&a.sab), a.code.clone()),
            relation: "xref".into(),
            source: source.into(),
        })?;
    }
    Ok(())
}

/// The file names of one release format: the roles a loader reads (the first is required),
/// names accepted without a word, and which other names are ignored with a warning.
pub(crate) struct Layout<const N: usize> {
    /// Release name for messages ("UMLS", "RxNorm").
    pub release: &'static str,
    /// How an unknown file is described ("a UMLS RRF file").
    pub kind: &'static str,
    /// Upper-case file names of the roles, required one first.
    pub roles: [&'static str; N],
    /// Upper-case names accepted silently.
    pub silent: &'static [&'static str],
    /// Whether an (upper-case) name belongs to the release but not to this loader: ignored with
    /// one warning.
    pub ignore: fn(&str) -> bool,
    /// What the error for an unknown file lists as expected.
    pub expected: &'static str,
}

/// The files of a release by role and the names ignored.
pub(crate) struct Release<'a, const N: usize> {
    /// The required file (role 0).
    pub required: &'a InputFile,
    /// One slot per [`Layout::roles`] (slot 0 is `required`).
    pub files: [Option<&'a InputFile>; N],
    ignored: Vec<String>,
    release: &'static str,
}

impl<'a, const N: usize> Release<'a, N> {
    /// Sort `files` into the roles of `layout` (names compared upper-cased): an unknown name, a
    /// role given twice or a missing required file is an error.
    pub fn classify(files: &'a [InputFile], layout: &Layout<N>) -> Result<Self, LoadError> {
        let mut slots: [Option<&InputFile>; N] = [None; N];
        let (mut ignored, mut unknown) = (Vec::new(), Vec::new());
        for f in files {
            let upper = f.upper_name();
            if let Some(i) = layout.roles.iter().position(|r| *r == upper) {
                if slots[i].replace(f).is_some() {
                    return Err(LoadError::Files(format!("{} given more than once", f.name)));
                }
            } else if layout.silent.contains(&upper.as_str()) {
                continue;
            } else if (layout.ignore)(&upper) {
                ignored.push(f.name.clone());
            } else {
                unknown.push(f.name.clone());
            }
        }
        if !unknown.is_empty() {
            return Err(LoadError::Files(format!(
                "not {}: {} (expected {})",
                layout.kind,
                unknown.join(", "),
                layout.expected
            )));
        }
        let required = slots[0].ok_or_else(|| {
            LoadError::Files(format!(
                "{} release is missing required file {}",
                layout.release, layout.roles[0]
            ))
        })?;
        Ok(Self {
            required,
            files: slots,
            ignored,
            release: layout.release,
        })
    }

    /// Warn once about the ignored files, if any.
    pub fn warn_ignored(&self, sink: &mut dyn Sink) {
        if !self.ignored.is_empty() {
            sink.warning(format!(
                "ignored {} files not used by this loader: {}",
                self.release,
                self.ignored.join(", ")
            ));
        }
    }
}

/// What one relation row (its fields) means to a loader.
pub(crate) enum RelRow {
    /// Not a row this loader keeps.
    Skip,
    /// A suppressed row (counted in the summary warning).
    Suppressed,
    /// The relation the row states.
    Keep(Relation),
}

/// Stream a `*REL.RRF` file into `sink`: each row is read by `row` (which may reject it with an
/// error located by the [`LineReader`]); self-loops and suppressed rows are skipped and counted
/// in one warning; a relation repeated within a run of one first identifier (field 1, e.g. the
/// same edge from several sources) is emitted once. `base` is the byte offset for progress.
pub(crate) fn load_relations(
    file: &InputFile,
    base: u64,
    sink: &mut dyn Sink,
    mut row: impl FnMut(&LineReader, &[&str]) -> Result<RelRow, LoadError>,
) -> Result<(), LoadError> {
    let mut lines = LineReader::open(file)?;
    let (mut rows, mut self_loops, mut suppressed) = (0u64, 0u64, 0u64);
    let mut run_cui = String::new();
    let mut run_seen: HashSet<(String, String, String)> = HashSet::new();
    let mut buf = String::new();
    while read_row(&mut lines, &mut buf)? {
        let f = split_rrf(&lines, &buf, REL_FIELDS)?;
        let kept = row(&lines, &f)?;
        rows += 1;
        if rows.is_multiple_of(PROGRESS_EVERY) {
            sink.progress(base + lines.bytes_read())?;
        }
        let r = match kept {
            RelRow::Skip => continue,
            RelRow::Suppressed => {
                suppressed += 1;
                continue;
            }
            RelRow::Keep(r) if r.from == r.to => {
                self_loops += 1;
                continue;
            }
            RelRow::Keep(r) => r,
        };
        if f[0] != run_cui {
            run_cui.clear();
            run_cui.push_str(f[0]);
            run_seen.clear();
        }
        if run_seen.insert((r.from.clone(), r.rel.clone(), r.to.clone())) {
            sink.relation(r)?;
        }
    }
    if rows == 0 {
        return Err(LoadError::malformed(&file.name, 0, "empty file: no rows"));
    }
    sink.progress(base + lines.bytes_read())?;
    if self_loops + suppressed > 0 {
        sink.warning(format!(
            "{}: skipped {self_loops} self-referencing and {suppressed} suppressed relation rows",
            file.name
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sab_names_are_normalized() {
        assert_eq!(normalize_sab("LNC"), "LOINC");
        assert_eq!(normalize_sab("MSH"), "MESH");
        assert_eq!(normalize_sab("SNOMEDCT_US"), "SNOMEDCT_US");
        assert_eq!(normalize_sab("ICD10CM"), "ICD10CM");
    }
}
