//! Loader for RxNorm in Rich Release Format (format `rxnorm-rrf`, system `RXNORM`).
//!
//! # Format
//! Same conventions as the UMLS RRF files (UTF-8, `|`-separated, trailing `|`, no header), with
//! layouts from the RxNorm Technical Documentation (section 12):
//!
//! * `RXNCONSO.RRF` (18): `RXCUI|LAT|TS|LUI|STT|SUI|ISPREF|RXAUI|SAUI|SCUI|SDUI|SAB|TTY|CODE|STR|SRL|SUPPRESS|CVF|`
//! * `RXNREL.RRF` (16): `RXCUI1|RXAUI1|STYPE1|REL|RXCUI2|RXAUI2|STYPE2|RELA|RXRUI|SRUI|SAB|SL|RG|DIR|SUPPRESS|CVF|`
//!
//! # What is produced
//! * One [`Concept`] per RXCUI that has at least one `SAB=RXNORM` atom (in a kept language). The
//!   preferred name is the live atom whose TTY comes first in [`TTY_PRIORITY`]
//!   (SCD > SBD > IN > PIN > MIN > BN > …); its TTY becomes the concept's semantic type. Other
//!   RXNORM atoms become terms (brand TTYs → `brand`, the rest → `synonym`, suppressed → `obsolete`).
//!   A concept whose RXNORM atoms are all suppressed is inactive.
//! * Atoms of other sources (MTHSPL, DRUGBANK, VANDF, MMSL, …) are not names of the concept but
//!   become `xref` mappings `RXNORM rxcui → {SAB, CODE}` (SAB normalised as for UMLS; atoms
//!   outside the kept languages are skipped).
//! * From `RXNREL.RRF`: only `SAB=RXNORM` rows between concepts (`STYPE1 = STYPE2 = CUI`) with a
//!   `RELA`. The RxNorm documentation states that REL/RELA is "the relationship which the SECOND
//!   concept or atom (RXCUI2/RXAUI2) HAS TO the FIRST (RXCUI1/RXAUI1)" (RXNREL description, also in
//!   the UMLS Reference Manual for MRREL). So a row `RXCUI1|…|RXCUI2|…|RELA|` means
//!   `RXCUI2 RELA RXCUI1` and becomes `Relation { from: RXCUI2, rel: RELA, to: RXCUI1 }`; e.g.
//!   `6809|…|861007|…|has_ingredient|` is "metformin 500 MG Oral Tablet has_ingredient
//!   metformin". `isa` becomes our `is_a` (child → parent) and `inverse_isa` the same edge seen
//!   from the parent. Both directions of each pair are published (`has_ingredient` and
//!   `ingredient_of`) and both are kept, as typed relations. Suppressed rows and self-loops are
//!   skipped, counted in one warning.
//!
//! # Bounded memory
//! RXNCONSO rows are aggregated in runs of consecutive rows of one RXCUI (the file is sorted by
//! RXCUI in NLM releases, but this is not required: a recurring RXCUI is merged by the sink). Only
//! one run is in memory at a time. Mappings are emitted only for runs with an RXNORM atom.
//!
//! # Files
//! `RXNCONSO.RRF` is required, `RXNREL.RRF` optional; other RxNorm files (`RXNSAT.RRF`,
//! `RXNSAB.RRF`, `RXNDOC.RRF`, `RXNCUI.RRF`, …: any `RXN*.RRF`) are accepted and ignored with one
//! warning listing them; any other name is an error.

use super::input::PROGRESS_EVERY;
use super::rrf::{
    concept_from_atoms, emit_xrefs, is_suppressed, load_relations, system_and_languages, Atom,
    ConsoRuns, Layout, RelRow, Release,
};
use super::{InputFile, LoadError, LoadOptions, Sink};
use crate::domain::model::{Concept, ConceptRef, Relation, Term, TermKind};

/// Term types in order of preference for the concept's preferred name.
pub const TTY_PRIORITY: &[&str] = &[
    "SCD", "SBD", "IN", "PIN", "MIN", "BN", "SCDC", "SCDF", "SBDF", "DF", "GPCK", "BPCK", "SY",
    "TMSY",
];

/// Term kind of a non-preferred RXNORM atom.
pub fn rxnorm_term_kind(tty: &str, suppress: &str) -> TermKind {
    if is_suppressed(suppress) {
        return TermKind::Obsolete;
    }
    match tty {
        "BN" | "SBD" | "SBDC" | "SBDF" | "SBDG" | "BPCK" => TermKind::Brand,
        _ => TermKind::Synonym,
    }
}

fn tty_rank(tty: &str) -> usize {
    TTY_PRIORITY
        .iter()
        .position(|t| *t == tty)
        .unwrap_or(TTY_PRIORITY.len())
}

/// Build the concept of one RXCUI from its RXNORM atoms (non-empty slice).
fn build_concept(atoms: &[&Atom]) -> Concept {
    let pref = atoms
        .iter()
        .min_by_key(|a| (is_suppressed(&a.suppress), tty_rank(&a.tty)))
        .unwrap_or(&atoms[0]);
    let mut c = concept_from_atoms(
        atoms,
        pref,
        |a| !is_suppressed(&a.suppress),
        |a| Term::new(a.text.clone(), rxnorm_term_kind(&a.tty, &a.suppress)),
    );
    c.semantic_types = vec![pref.tty.clone()];
    c
}

/// The typed relation an RXNREL row states, from (RXCUI1, RELA, RXCUI2): `RXCUI2 RELA RXCUI1`.
pub fn rxnrel_relation(rxcui1: &str, rela: &str, rxcui2: &str) -> Relation {
    let (from, rel, to) = match rela {
        "isa" => (rxcui2, "is_a", rxcui1),
        "inverse_isa" => (rxcui1, "is_a", rxcui2),
        other => (rxcui2, other, rxcui1),
    };
    Relation {
        from: from.to_string(),
        rel: rel.to_string(),
        to: to.to_string(),
    }
}

/// The RxNorm files: RXNCONSO (required), RXNREL.
const LAYOUT: Layout<2> = Layout {
    release: "RxNorm",
    kind: "an RxNorm RRF file",
    roles: ["RXNCONSO.RRF", "RXNREL.RRF"],
    silent: &[],
    ignore: |u| u.starts_with("RXN") && u.ends_with(".RRF"),
    expected: "RXNCONSO.RRF, RXNREL.RRF, other RXN*.RRF",
};

/// Load an RxNorm RRF release from `files` into `sink` (see the module documentation).
pub fn load(files: &[InputFile], opts: &LoadOptions, sink: &mut dyn Sink) -> Result<(), LoadError> {
    let release = Release::classify(files, &LAYOUT)?;
    let [_, rel_file] = release.files;
    let (system, languages) = system_and_languages(opts, "RXNORM");

    let mut conso = ConsoRuns::open(release.required)?;
    let mut run = Vec::new();
    let mut next_progress = PROGRESS_EVERY;
    while conso.next_run(&mut run)?.is_some() {
        emit_run(&run, &languages, system, sink)?;
        if conso.rows() >= next_progress {
            next_progress = conso.rows() + PROGRESS_EVERY;
            sink.progress(conso.bytes_read())?;
        }
    }
    let done = conso.bytes_read();
    sink.progress(done)?;
    if let Some(rel) = rel_file {
        load_relations(rel, done, sink, |lines, f| {
            let (cui1, stype1, cui2, stype2, rela, sab, supp) =
                (f[0], f[2], f[4], f[6], f[7], f[10], f[14]);
            if sab != "RXNORM" || stype1 != "CUI" || stype2 != "CUI" || rela.is_empty() {
                return Ok(RelRow::Skip);
            }
            if cui1.is_empty() || cui2.is_empty() {
                return Err(
                    lines.error("CUI-level row with empty RXCUI1 (field 1) or RXCUI2 (field 5)")
                );
            }
            if is_suppressed(supp) {
                return Ok(RelRow::Suppressed);
            }
            Ok(RelRow::Keep(rxnrel_relation(cui1, rela, cui2)))
        })?;
    }
    release.warn_ignored(sink);
    Ok(())
}

fn emit_run(
    run: &[Atom],
    languages: &[&str],
    system: &str,
    sink: &mut dyn Sink,
) -> Result<(), LoadError> {
    let own: Vec<&Atom> = run
        .iter()
        .filter(|a| a.sab == "RXNORM" && languages.contains(&a.lat.as_str()))
        .collect();
    if own.is_empty() {
        return Ok(());
    }
    let concept = build_concept(&own);
    let from = ConceptRef::new(system, concept.code.clone());
    sink.concept(concept)?;
    let others = run
        .iter()
        .filter(|a| a.sab != "RXNORM" && languages.contains(&a.lat.as_str()));
    emit_xrefs(&from, others, "RXNCONSO", sink)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn atom(tty: &str, text: &str, suppress: &str) -> Atom {
        Atom {
            cui: "861007".into(),
            lat: "ENG".into(),
            ts: String::new(),
            stt: String::new(),
            ispref: String::new(),
            sab: "RXNORM".into(),
            tty: tty.into(),
            code: "861007".into(),
            text: text.into(),
            suppress: suppress.into(),
        }
    }

    #[test]
    fn tty_priority_picks_scd_over_synonyms_and_live_over_suppressed() {
        let sy = atom("SY", "metformin HCl 500 MG Oral Tablet", "N");
        let old = atom("SCD", "old name", "O");
        let scd = atom("SCD", "metformin hydrochloride 500 MG Oral Tablet", "N");
        let psn = atom("PSN", "metFORMIN 500 mg tablet", "N");
        let c = build_concept(&[&sy, &old, &psn, &scd]);
        assert_eq!(
            c.preferred_term,
            "metformin hydrochloride 500 MG Oral Tablet"
        );
        assert_eq!(c.semantic_types, vec!["SCD".to_string()]);
        assert_eq!(c.terms.len(), 4);
        assert_eq!(c.terms.last().unwrap().kind, TermKind::Obsolete);
        assert!(c.active);
    }

    #[test]
    fn brand_kinds() {
        assert_eq!(rxnorm_term_kind("BN", "N"), TermKind::Brand);
        assert_eq!(rxnorm_term_kind("SBD", "N"), TermKind::Brand);
        assert_eq!(rxnorm_term_kind("TMSY", "N"), TermKind::Synonym);
        assert_eq!(rxnorm_term_kind("BN", "O"), TermKind::Obsolete);
    }

    #[test]
    fn rxnrel_reads_second_to_first() {
        let r = rxnrel_relation("6809", "has_ingredient", "861007");
        assert_eq!(
            (r.from.as_str(), r.rel.as_str(), r.to.as_str()),
            ("861007", "has_ingredient", "6809")
        );
        let isa = rxnrel_relation("1", "isa", "2");
        assert_eq!(
            (isa.from.as_str(), isa.rel.as_str(), isa.to.as_str()),
            ("2", "is_a", "1")
        );
        assert_eq!(rxnrel_relation("2", "inverse_isa", "1"), isa);
    }
}
