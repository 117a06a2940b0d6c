//! Loader for the UMLS Metathesaurus in Rich Release Format (format `umls-rrf`, system `UMLS`).
//!
//! # Format
//! Rich Release Format (see [`super::rrf`] for the conventions both RRF loaders share). Column
//! layouts follow the UMLS Reference Manual (section 3.3):
//!
//! * `MRCONSO.RRF` (18): `CUI|LAT|TS|LUI|STT|SUI|ISPREF|AUI|SAUI|SCUI|SDUI|SAB|TTY|CODE|STR|SRL|SUPPRESS|CVF|`
//! * `MRREL.RRF` (16): `CUI1|AUI1|STYPE1|REL|CUI2|AUI2|STYPE2|RELA|RUI|SRUI|SAB|SL|RG|DIR|SUPPRESS|CVF|`
//! * `MRSTY.RRF` (6): `CUI|TUI|STN|STY|ATUI|CVF|`
//!
//! # What is produced
//! * One [`Concept`] per CUI that has at least one atom in a kept language (`opts.languages`,
//!   default `ENG`). The preferred name is the atom with `TS=P`, `STT=PF`, `ISPREF=Y` (the
//!   Metathesaurus' own preferred string), falling back to the first unsuppressed atom. Every
//!   other atom becomes a [`Term`] carrying its SAB, deduplicated by text (first kind wins, live
//!   atoms before suppressed ones). A concept whose atoms are all suppressed is inactive.
//! * One `xref` [`Mapping`] per distinct (SAB, CODE) of the kept atoms, to the SAB's system name
//!   (see [`normalize_sab`]); `NOCODE` and empty codes are skipped, and so are the codes of
//!   suppressed atoms (obsolete source codes, or codes the editors moved to another CUI).
//! * From `MRREL.RRF`: `REL` (and `RELA`) state the relationship of the *second* concept to the
//!   *first* (Reference Manual, MRREL description). So `PAR` yields `CUI1 is_a CUI2` and `CHD`
//!   yields `CUI2 is_a CUI1`. Real files carry both rows of each mirror pair; both are emitted
//!   and collapse in the store, which keys relations by (from, rel, to) (duplicates of one pair
//!   from several sources within one `CUI1` run are removed here already). Every other `REL`
//!   becomes `CUI2 --(RELA, else lower-case REL)--> CUI1` — note the direction: a row
//!   `C1|…|RO|C2|…|has_finding_site|` means C2 has_finding_site C1. `SIB` (implied by the
//!   hierarchy, tens of millions of rows) and `XR` ("not related") rows, suppressed rows
//!   (`SUPPRESS` O/E/Y) and self-loops are skipped; one summary warning counts them.
//!   Relations may name CUIs that were filtered out by language; hierarchy cycles are left
//!   for the store to detect.
//! * From `MRSTY.RRF`: the `STY` names become the concept's semantic types.
//!
//! # Bounded memory
//! Real `MRCONSO.RRF` is ~2 GB / 15M rows, sorted by CUI. The loader keeps one CUI's rows at a
//! time (a *run* of consecutive rows) and emits one concept per run. `MRSTY.RRF` is sorted by
//! CUI too, so it is streamed alongside `MRCONSO.RRF` in a merge join: while a CUI run is
//! emitted, the MRSTY cursor advances to that CUI and its types are attached. A CUI listed only
//! in `MRSTY.RRF` therefore never creates a concept, and no set of CUIs is ever held in memory.
//! The join needs both files sorted by CUI (byte order, as `LC_ALL=C sort -t'|' -k1,1` gives);
//! when `MRSTY.RRF` is present an out-of-order row in either file is an error naming its line.
//! Without `MRSTY.RRF`, an unsorted `MRCONSO.RRF` is accepted: a CUI that recurs later is
//! emitted again and merged by the sink.
//!
//! # Files
//! `MRCONSO.RRF` is required; `MRREL.RRF` and `MRSTY.RRF` are used when present; `MRSAB.RRF`
//! is accepted silently. Other Metathesaurus files (`MR*.RRF`, `AMBIG*.RRF`, `DELETED*.RRF`,
//! `MERGED*.RRF`, `CHANGE*.RRF`) are accepted and ignored with one warning listing them; any
//! other file name is an error.

use super::input::{split_rrf, LineReader, PROGRESS_EVERY};
use super::rrf::{
    concept_from_atoms, emit_xrefs, is_suppressed, load_relations, read_row, system_and_languages,
    Atom, ConsoRuns, Layout, RelRow, Release,
};
use super::{InputFile, LoadError, LoadOptions, Sink};
use crate::domain::model::{Concept, ConceptRef, Relation, Term, TermKind};
use std::cmp::Ordering;

/// Number of fields of an `MRSTY.RRF` row.
pub const STY_FIELDS: usize = 6;

/// Term kind of a non-preferred UMLS atom from its TTY and SUPPRESS flag.
pub fn umls_term_kind(tty: &str, suppress: &str) -> TermKind {
    if is_suppressed(suppress) || tty.starts_with('O') {
        return TermKind::Obsolete;
    }
    match tty {
        "AB" | "ACR" | "AA" | "AM" => TermKind::Abbreviation,
        _ => TermKind::Synonym,
    }
}

/// Build the concept for one CUI from its kept atoms (non-empty slice).
fn build_concept(atoms: &[&Atom]) -> Concept {
    let live = |a: &Atom| umls_term_kind(&a.tty, &a.suppress) != TermKind::Obsolete;
    let pref = atoms
        .iter()
        .find(|a| a.ts == "P" && a.stt == "PF" && a.ispref == "Y")
        .or_else(|| atoms.iter().find(|a| live(a)))
        .unwrap_or(&atoms[0]);
    concept_from_atoms(atoms, pref, live, |a| Term {
        text: a.text.clone(),
        kind: umls_term_kind(&a.tty, &a.suppress),
        source: Some(a.sab.clone()),
    })
}

/// The UMLS files: MRCONSO (required), MRREL, MRSTY.
const LAYOUT: Layout<3> = Layout {
    release: "UMLS",
    kind: "a UMLS RRF file",
    roles: ["MRCONSO.RRF", "MRREL.RRF", "MRSTY.RRF"],
    silent: &["MRSAB.RRF"],
    ignore: |u| {
        u.ends_with(".RRF")
            && ["MR", "AMBIG", "DELETED", "MERGED", "CHANGE"]
                .iter()
                .any(|p| u.starts_with(p))
    },
    expected: "MRCONSO.RRF, MRREL.RRF, MRSTY.RRF, MRSAB.RRF",
};

/// A cursor over `MRSTY.RRF` for the merge join with `MRCONSO.RRF`.
struct StyCursor {
    lines: LineReader,
    /// The next unconsumed row: (CUI, STY).
    pending: Option<(String, String)>,
    last_cui: String,
    rows: u64,
    done: bool,
    buf: String,
}

impl StyCursor {
    fn open(file: &InputFile) -> Result<Self, LoadError> {
        let mut c = Self {
            lines: LineReader::open(file)?,
            pending: None,
            last_cui: String::new(),
            rows: 0,
            done: false,
            buf: String::new(),
        };
        c.advance()?;
        Ok(c)
    }

    /// Read the next row into `pending`, checking the sort order.
    fn advance(&mut self) -> Result<(), LoadError> {
        self.pending = None;
        if self.done || !read_row(&mut self.lines, &mut self.buf)? {
            self.done = true;
            return Ok(());
        }
        let f = split_rrf(&self.lines, &self.buf, STY_FIELDS)?;
        if f[0].is_empty() {
            return Err(self.lines.error("empty CUI (field 1)"));
        }
        if f[0] < self.last_cui.as_str() {
            return Err(self.lines.error(format!(
                "MRSTY.RRF is not sorted by CUI ({} after {}); sort it with \
                 LC_ALL=C sort -t'|' -k1,1",
                f[0], self.last_cui
            )));
        }
        self.rows += 1;
        self.last_cui.clear();
        self.last_cui.push_str(f[0]);
        self.pending = Some((f[0].to_string(), f[3].to_string()));
        Ok(())
    }

    /// Semantic types of `cui`, skipping rows of smaller CUIs.
    fn take_for(&mut self, cui: &str) -> Result<Vec<String>, LoadError> {
        let mut out: Vec<String> = Vec::new();
        while let Some((c, sty)) = &self.pending {
            match c.as_str().cmp(cui) {
                Ordering::Less => {}
                Ordering::Equal => {
                    if !sty.is_empty() && !out.contains(sty) {
                        out.push(sty.clone());
                    }
                }
                Ordering::Greater => break,
            }
            self.advance()?;
        }
        Ok(out)
    }

    /// Validate the remaining rows (and count their bytes).
    fn drain(&mut self) -> Result<(), LoadError> {
        while self.pending.is_some() {
            self.advance()?;
        }
        if self.rows == 0 {
            return Err(LoadError::malformed(
                self.lines.name(),
                0,
                "empty file: no rows",
            ));
        }
        Ok(())
    }
}

/// Load a UMLS RRF release from `files` into `sink` (see the module documentation).
pub fn load(files: &[InputFile], opts: &LoadOptions, sink: &mut dyn Sink) -> Result<(), LoadError> {
    let release = Release::classify(files, &LAYOUT)?;
    let [_, rel_file, sty_file] = release.files;
    let (system, languages) = system_and_languages(opts, "UMLS");

    let mut conso = ConsoRuns::open(release.required)?;
    let mut sty = sty_file.map(StyCursor::open).transpose()?;
    let mut run = Vec::new();
    let mut last_cui = String::new();
    let mut next_progress = PROGRESS_EVERY;
    while let Some(first_line) = conso.next_run(&mut run)? {
        let cui = run[0].cui.clone();
        if let Some(sty) = sty.as_mut() {
            if cui.as_str() <= last_cui.as_str() {
                return Err(LoadError::malformed(
                    conso.name(),
                    first_line,
                    format!(
                        "MRCONSO.RRF is not sorted by CUI ({cui} after {last_cui}), which \
                         joining MRSTY.RRF requires; sort it with LC_ALL=C sort -t'|' -k1,1"
                    ),
                ));
            }
            let types = sty.take_for(&cui)?;
            emit_run(&run, &types, &languages, system, sink)?;
        } else {
            emit_run(&run, &[], &languages, system, sink)?;
        }
        last_cui = cui;
        if conso.rows() >= next_progress {
            next_progress = conso.rows() + PROGRESS_EVERY;
            let sty_bytes = sty.as_ref().map_or(0, |s| s.lines.bytes_read());
            sink.progress(conso.bytes_read() + sty_bytes)?;
        }
    }
    let mut done = conso.bytes_read();
    if let Some(mut sty) = sty {
        sty.drain()?;
        done += sty.lines.bytes_read();
    }
    sink.progress(done)?;

    if let Some(rel) = rel_file {
        load_relations(rel, done, sink, |lines, f| {
            let (cui1, rel, cui2, rela, supp) = (f[0], f[3], f[4], f[7], f[14]);
            if cui1.is_empty() || cui2.is_empty() {
                return Err(lines.error("empty CUI1 (field 1) or CUI2 (field 5)"));
            }
            if is_suppressed(supp) {
                return Ok(RelRow::Suppressed);
            }
            Ok(mrrel_relation(cui1, rel, cui2, rela).map_or(RelRow::Skip, RelRow::Keep))
        })?;
    }
    release.warn_ignored(sink);
    Ok(())
}

/// Emit the concept and xrefs of one CUI run (nothing when no atom is in a kept language).
fn emit_run(
    run: &[Atom],
    types: &[String],
    languages: &[&str],
    system: &str,
    sink: &mut dyn Sink,
) -> Result<(), LoadError> {
    let kept: Vec<&Atom> = run
        .iter()
        .filter(|a| languages.contains(&a.lat.as_str()))
        .collect();
    if kept.is_empty() {
        return Ok(());
    }
    let mut concept = build_concept(&kept);
    concept.semantic_types = types.to_vec();
    let from = ConceptRef::new(system, concept.code.clone());
    sink.concept(concept)?;
    // the codes of suppressed atoms are obsolete or moved to another CUI
    let live = kept.into_iter().filter(|a| !is_suppressed(&a.suppress));
    emit_xrefs(&from, live, "MRCONSO", sink)
}

/// The relation an `MRREL.RRF` row states, or `None` for rows that carry none we keep.
/// Fields are (CUI1, REL, CUI2, RELA).
pub fn mrrel_relation(cui1: &str, rel: &str, cui2: &str, rela: &str) -> Option<Relation> {
    let (from, name, to) = match rel {
        "PAR" => (cui1, "is_a".to_string(), cui2),
        "CHD" => (cui2, "is_a".to_string(), cui1),
        "SIB" | "XR" | "" => return None,
        other if rela.is_empty() => (cui2, other.to_ascii_lowercase(), cui1),
        _ => (cui2, rela.to_string(), cui1),
    };
    Some(Relation {
        from: from.to_string(),
        rel: name,
        to: to.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atom(tty: &str, text: &str, pref: bool, suppress: &str) -> Atom {
        Atom {
            cui: "C1".into(),
            lat: "ENG".into(),
            ts: if pref { "P" } else { "S" }.into(),
            stt: "PF".into(),
            ispref: "Y".into(),
            sab: "MSH".into(),
            tty: tty.into(),
            code: "D1".into(),
            text: text.into(),
            suppress: suppress.into(),
        }
    }

    #[test]
    fn term_kinds_follow_tty_and_suppress() {
        assert_eq!(umls_term_kind("AB", "N"), TermKind::Abbreviation);
        assert_eq!(umls_term_kind("ACR", "N"), TermKind::Abbreviation);
        assert_eq!(umls_term_kind("PT", "N"), TermKind::Synonym);
        assert_eq!(umls_term_kind("ET", "N"), TermKind::Synonym);
        assert_eq!(umls_term_kind("OP", "N"), TermKind::Obsolete);
        assert_eq!(umls_term_kind("PT", "O"), TermKind::Obsolete);
        assert_eq!(umls_term_kind("PT", "E"), TermKind::Obsolete);
    }

    #[test]
    fn preferred_atom_wins_even_when_late_and_live_terms_come_first() {
        let a = atom("OP", "Old name", false, "O");
        let b = atom("SY", "Old name", false, "N");
        let c = atom("PT", "Real name", true, "N");
        let concept = build_concept(&[&a, &b, &c]);
        assert_eq!(concept.preferred_term, "Real name");
        assert_eq!(concept.terms[0].kind, TermKind::Preferred);
        assert_eq!(concept.terms.len(), 2);
        assert_eq!(concept.terms[1].kind, TermKind::Synonym);
        assert!(concept.active);
        let d = atom("PT", "Gone", false, "O");
        assert!(!build_concept(&[&d]).active);
    }

    #[test]
    fn mrrel_directions() {
        let par = mrrel_relation("C1", "PAR", "C2", "inverse_isa").unwrap();
        assert_eq!(
            (par.from.as_str(), par.rel.as_str(), par.to.as_str()),
            ("C1", "is_a", "C2")
        );
        let chd = mrrel_relation("C2", "CHD", "C1", "isa").unwrap();
        assert_eq!(par, chd);
        let ro = mrrel_relation("C1", "RO", "C2", "has_finding_site").unwrap();
        assert_eq!(
            (ro.from.as_str(), ro.rel.as_str(), ro.to.as_str()),
            ("C2", "has_finding_site", "C1")
        );
        assert_eq!(mrrel_relation("C1", "RB", "C2", "").unwrap().rel, "rb");
        assert!(mrrel_relation("C1", "SIB", "C2", "").is_none());
    }
}
