//! Integration tests of the loaders for the licensed formats (UMLS RRF, RxNorm RRF, LOINC CSV)
//! against the hand-written fixtures in `ontologies/`, malformed variants of them written to a
//! temporary directory, and arbitrary bytes (property tests).

use ontovec::domain::model::{ConceptRef, Mapping, Relation, TermKind};
use ontovec::ontology::{load, Format, InputFile, LoadError, LoadOptions, MemorySink};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

const UMLS: &[&str] = &["MRCONSO.RRF", "MRREL.RRF", "MRSTY.RRF", "MRSAB.RRF"];
const RXNORM: &[&str] = &["RXNCONSO.RRF", "RXNREL.RRF"];
const LOINC: &[&str] = &["Loinc.csv", "MultiAxialHierarchy.csv"];

fn fixture(sub: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("ontologies")
        .join(sub)
        .join(name)
}

fn fixture_bytes(sub: &str, name: &str) -> Vec<u8> {
    std::fs::read(fixture(sub, name)).unwrap()
}

fn fixture_inputs(sub: &str, names: &[&str]) -> Vec<InputFile> {
    names
        .iter()
        .map(|n| InputFile::from_path(fixture(sub, n)))
        .collect()
}

fn run(format: Format, files: &[InputFile], languages: &[&str]) -> Result<MemorySink, LoadError> {
    let mut opts = LoadOptions::for_system(format.default_system().unwrap());
    opts.languages = languages.iter().map(|s| s.to_string()).collect();
    let mut sink = MemorySink::default();
    load(format, files, &opts, &mut sink)?;
    Ok(sink)
}

/// Write `files` (name, bytes) into a fresh temporary directory.
fn write_files(files: &[(&str, Vec<u8>)]) -> (tempfile::TempDir, Vec<InputFile>) {
    let dir = tempfile::tempdir().unwrap();
    let inputs = files
        .iter()
        .map(|(name, bytes)| {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            InputFile::from_path(p)
        })
        .collect();
    (dir, inputs)
}

/// The fixture files of `sub`, with `name` replaced by `bytes` (or dropped when `None`).
fn variant(
    sub: &str,
    names: &[&'static str],
    name: &str,
    bytes: Option<Vec<u8>>,
) -> (tempfile::TempDir, Vec<InputFile>) {
    let mut files: Vec<(&str, Vec<u8>)> = Vec::new();
    for n in names {
        if *n == name {
            if let Some(b) = &bytes {
                files.push((n, b.clone()));
            }
        } else {
            files.push((n, fixture_bytes(sub, n)));
        }
    }
    write_files(&files)
}

/// 1-based number of the first line starting with `prefix`.
fn line_of(content: &[u8], prefix: &str) -> u64 {
    let text = String::from_utf8_lossy(content);
    let pos = text
        .lines()
        .position(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no line starts with {prefix}"));
    pos as u64 + 1
}

/// Replace the whole line `line` (1-based) of `content` with `new`.
fn replace_line(content: &[u8], line: u64, new: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, l) in content.split_inclusive(|b| *b == b'\n').enumerate() {
        if i as u64 + 1 == line {
            out.extend_from_slice(new);
            out.push(b'\n');
        } else {
            out.extend_from_slice(l);
        }
    }
    out
}

fn assert_located(result: Result<MemorySink, LoadError>, file: &str, line: u64) -> String {
    let Err(err) = result else {
        panic!("expected an error at {file}:{line}, got Ok");
    };
    let text = err.to_string();
    assert!(
        matches!(&err, LoadError::Malformed { file: f, line: l, .. } if f == file && *l == line),
        "expected {file}:{line}, got {text}"
    );
    assert!(text.starts_with(&format!("{file}:{line}:")), "{text}");
    text
}

fn assert_files_error(result: Result<MemorySink, LoadError>, needle: &str) {
    match result {
        Err(LoadError::Files(m)) => assert!(m.contains(needle), "{m}"),
        Err(e) => panic!("expected a Files error, got {e}"),
        Ok(_) => panic!("expected a Files error, got Ok"),
    }
}

fn has_mapping(sink: &MemorySink, from: (&str, &str), to: (&str, &str)) -> bool {
    sink.mappings.iter().any(|m: &Mapping| {
        m.from == ConceptRef::new(from.0, from.1)
            && m.to == ConceptRef::new(to.0, to.1)
            && m.relation == "xref"
    })
}

fn has_relation(sink: &MemorySink, from: &str, rel: &str, to: &str) -> bool {
    sink.relations
        .iter()
        .any(|r: &Relation| r.from == from && r.rel == rel && r.to == to)
}

fn distinct_edges(sink: &MemorySink, rel: &str) -> BTreeSet<(String, String)> {
    sink.relations
        .iter()
        .filter(|r| r.rel == rel)
        .map(|r| (r.from.clone(), r.to.clone()))
        .collect()
}

fn file_sizes(sub: &str, names: &[&str]) -> u64 {
    names
        .iter()
        .map(|n| std::fs::metadata(fixture(sub, n)).unwrap().len())
        .sum()
}

// ---------------------------------------------------------------- UMLS

#[test]
fn umls_fixture_loads_with_exact_counts() {
    let sink = run(Format::UmlsRrf, &fixture_inputs("umls", UMLS), &["ENG"]).unwrap();
    assert_eq!(sink.concepts.len(), 20);
    assert_eq!(sink.mappings.len(), 68);
    assert_eq!(sink.relations.len(), 29);
    assert_eq!(distinct_edges(&sink, "is_a").len(), 12);
    assert_eq!(sink.warnings.len(), 1, "{:?}", sink.warnings);
    assert!(sink.warnings[0].contains("2 self-referencing and 1 suppressed"));
    assert_eq!(
        sink.bytes_done,
        file_sizes("umls", &["MRCONSO.RRF", "MRSTY.RRF", "MRREL.RRF"])
    );
}

#[test]
fn umls_spot_checks() {
    let sink = run(Format::UmlsRrf, &fixture_inputs("umls", UMLS), &["ENG"]).unwrap();
    let t2 = &sink.concepts["C0011860"];
    assert_eq!(
        t2.preferred_term,
        "Diabetes Mellitus, Non-Insulin-Dependent"
    );
    assert_eq!(t2.terms[0].kind, TermKind::Preferred);
    assert_eq!(t2.terms[0].source.as_deref(), Some("MSH"));
    assert_eq!(t2.semantic_types, vec!["Disease or Syndrome".to_string()]);
    assert!(t2.active);
    let kind_of = |text: &str| t2.terms.iter().find(|t| t.text == text).map(|t| t.kind);
    assert_eq!(kind_of("T2DM"), Some(TermKind::Abbreviation));
    assert_eq!(
        kind_of("Diabetes Mellitus, Type 2"),
        Some(TermKind::Synonym)
    );
    assert_eq!(
        kind_of("Type II diabetes mellitus"),
        Some(TermKind::Synonym)
    );
    assert_eq!(
        kind_of("Non-insulin dependent diabetes mellitus"),
        Some(TermKind::Obsolete)
    );
    assert_eq!(kind_of("Diabète de type 2"), None);
    assert_eq!(kind_of("Diabetes Mellitus Tipo 2"), None);
    // one term per distinct string (the preferred string is also the MTH PN, E11's name is
    // SNOMED's synonym, the suppressed IS atom repeats HPO's term)
    assert_eq!(t2.terms.len(), 10);

    assert!(has_mapping(&sink, ("UMLS", "C0011860"), ("ICD10CM", "E11")));
    assert!(has_mapping(
        &sink,
        ("UMLS", "C0011860"),
        ("ICD9CM", "250.00")
    ));
    assert!(has_mapping(
        &sink,
        ("UMLS", "C0011860"),
        ("MESH", "D003924")
    ));
    assert!(has_mapping(
        &sink,
        ("UMLS", "C0027051"),
        ("ICD10CM", "I21.9")
    ));
    assert!(has_mapping(
        &sink,
        ("UMLS", "C0036572"),
        ("HPO", "HP:0001250")
    ));
    assert!(has_mapping(
        &sink,
        ("UMLS", "C0202054"),
        ("LOINC", "2345-7")
    ));
    assert!(has_mapping(&sink, ("UMLS", "C0025598"), ("RXNORM", "6809")));
    // NOCODE, suppressed atoms' codes and filtered languages give no xref
    assert!(!sink.mappings.iter().any(|m| m.to.code == "NOCODE"));
    assert!(!has_mapping(
        &sink,
        ("UMLS", "C0011860"),
        ("SNOMEDCT_US", "190388001")
    ));
    assert!(!has_mapping(
        &sink,
        ("UMLS", "C0014544"),
        ("HPO", "HP:0001250")
    ));
    assert!(!sink
        .mappings
        .iter()
        .any(|m| m.to.system.starts_with("MSHFRE")));
    assert!(sink.mappings.iter().all(|m| m.source == "MRCONSO"));

    assert!(has_relation(&sink, "C0011860", "is_a", "C0011849"));
    assert!(has_relation(&sink, "C0011854", "is_a", "C0025517")); // lone CHD row
    assert!(has_relation(&sink, "C0014544", "is_a", "C0036572")); // cycle kept
    assert!(has_relation(&sink, "C0036572", "is_a", "C0014544"));
    assert!(has_relation(
        &sink,
        "C0027051",
        "has_finding_site",
        "C0018787"
    ));
    assert!(has_relation(
        &sink,
        "C0018787",
        "finding_site_of",
        "C0027051"
    ));
    assert!(has_relation(&sink, "C0025598", "may_treat", "C0011860"));
    assert!(has_relation(&sink, "C0011860", "rn", "C0011849"));
    assert!(!sink.relations.iter().any(|r| r.from == r.to));
    assert!(!sink
        .relations
        .iter()
        .any(|r| r.rel == "sib" || r.rel == "xr"));

    let dm = &sink.concepts["C0011849"];
    assert_eq!(dm.preferred_term, "Diabetes Mellitus"); // DUT row comes first in the file
    let metformin = &sink.concepts["C0025598"];
    assert_eq!(
        metformin.semantic_types,
        vec!["Organic Chemical", "Pharmacologic Substance"]
    );
    let sjogren = &sink.concepts["C1527336"];
    assert!(sjogren.terms.iter().any(|t| t.text == "Sjögren's syndrome"));
    assert!(!sink.concepts.contains_key("C4048290")); // French only
    assert!(!sink.concepts.contains_key("C0000005")); // MRSTY only
}

#[test]
fn umls_language_filter() {
    let fre = run(Format::UmlsRrf, &fixture_inputs("umls", UMLS), &["FRE"]).unwrap();
    let codes: Vec<&str> = fre.concepts.keys().map(String::as_str).collect();
    assert_eq!(
        codes,
        ["C0004096", "C0011860", "C0036572", "C1527336", "C4048290"]
    );
    assert_eq!(fre.concepts["C0011860"].preferred_term, "Diabète de type 2");
    assert_eq!(
        fre.concepts["C4048290"].semantic_types,
        vec!["Disease or Syndrome"]
    );
    let both = run(
        Format::UmlsRrf,
        &fixture_inputs("umls", UMLS),
        &["ENG", "FRE"],
    )
    .unwrap();
    assert_eq!(both.concepts.len(), 21);
}

#[test]
fn umls_par_and_chd_rows_give_the_same_edge() {
    let rel = fixture_bytes("umls", "MRREL.RRF");
    let text = String::from_utf8(rel).unwrap();
    let par = text
        .lines()
        .find(|l| l.starts_with("C0011854|") && l.contains("|PAR|C0011849|"))
        .unwrap();
    let chd = text
        .lines()
        .find(|l| l.starts_with("C0011849|") && l.contains("|CHD|C0011854|"))
        .unwrap();
    let mut edges = Vec::new();
    for row in [par, chd] {
        let (_d, files) = variant(
            "umls",
            &["MRCONSO.RRF", "MRREL.RRF"],
            "MRREL.RRF",
            Some(format!("{row}\n").into_bytes()),
        );
        let sink = run(Format::UmlsRrf, &files, &["ENG"]).unwrap();
        assert_eq!(sink.relations.len(), 1);
        edges.push(sink.relations[0].clone());
    }
    assert_eq!(edges[0], edges[1]);
    assert_eq!(
        (
            edges[0].from.as_str(),
            edges[0].rel.as_str(),
            edges[0].to.as_str()
        ),
        ("C0011854", "is_a", "C0011849")
    );
}

#[test]
fn umls_malformed_rows_are_located() {
    let conso = fixture_bytes("umls", "MRCONSO.RRF");
    let line = line_of(&conso, "C0011860|ENG|S|");
    // wrong field count
    let short = replace_line(&conso, line, b"C0011860|ENG|S|L1|PF|S1|Y|A1||||MSH|MH|");
    let (_d, files) = variant("umls", UMLS, "MRCONSO.RRF", Some(short));
    let msg = assert_located(run(Format::UmlsRrf, &files, &["ENG"]), "MRCONSO.RRF", line);
    assert!(msg.contains("18"), "{msg}");
    // bad UTF-8
    let mut bad = conso.clone();
    let start = conso
        .split_inclusive(|b| *b == b'\n')
        .take(line as usize - 1)
        .map(|l| l.len())
        .sum::<usize>();
    bad[start + 20] = 0xFF;
    let (_d, files) = variant("umls", UMLS, "MRCONSO.RRF", Some(bad));
    assert_located(run(Format::UmlsRrf, &files, &["ENG"]), "MRCONSO.RRF", line);
    // truncated last line (cut mid-row: no trailing '|' nor newline)
    let rel = fixture_bytes("umls", "MRREL.RRF");
    let rows = rel.iter().filter(|b| **b == b'\n').count() as u64;
    let cut = rel[..rel.len() - 20].to_vec();
    let (_d, files) = variant("umls", UMLS, "MRREL.RRF", Some(cut));
    assert_located(run(Format::UmlsRrf, &files, &["ENG"]), "MRREL.RRF", rows);
    // empty file
    let (_d, files) = variant("umls", UMLS, "MRCONSO.RRF", Some(Vec::new()));
    assert_located(run(Format::UmlsRrf, &files, &["ENG"]), "MRCONSO.RRF", 0);
    // MRSTY out of order
    let sty = fixture_bytes("umls", "MRSTY.RRF");
    let mut lines: Vec<&[u8]> = sty.split_inclusive(|b| *b == b'\n').collect();
    lines.swap(4, 5); // two different CUIs
    assert_ne!(&lines[4][..8], &lines[5][..8]);
    let (_d, files) = variant("umls", UMLS, "MRSTY.RRF", Some(lines.concat()));
    let msg = assert_located(run(Format::UmlsRrf, &files, &["ENG"]), "MRSTY.RRF", 6);
    assert!(msg.contains("not sorted"), "{msg}");
}

#[test]
fn umls_file_set_errors_and_tolerances() {
    let (_d, files) = variant("umls", UMLS, "MRCONSO.RRF", None);
    assert_files_error(run(Format::UmlsRrf, &files, &["ENG"]), "MRCONSO.RRF");
    let mut files = fixture_inputs("umls", UMLS);
    files.push(InputFile::from_path(fixture("umls", "README.md")));
    assert_files_error(run(Format::UmlsRrf, &files, &["ENG"]), "README.md");
    // other Metathesaurus files are accepted and ignored with one warning
    let (_d, mut files) = write_files(&[("MRDEF.RRF", b"C0011849|A1|AT1||MSH|def|N||\n".to_vec())]);
    files.extend(fixture_inputs("umls", &["MRCONSO.RRF"]));
    let sink = run(Format::UmlsRrf, &files, &["ENG"]).unwrap();
    assert_eq!(sink.warnings.len(), 1);
    assert!(sink.warnings[0].contains("MRDEF.RRF"));
    // lower-case names and extra trailing columns are tolerated
    let widen = |b: Vec<u8>| -> Vec<u8> {
        String::from_utf8(b)
            .unwrap()
            .lines()
            .map(|l| format!("{l}future|\n"))
            .collect::<String>()
            .into_bytes()
    };
    let (_d, files) = write_files(&[
        ("mrconso.rrf", widen(fixture_bytes("umls", "MRCONSO.RRF"))),
        ("mrrel.rrf", widen(fixture_bytes("umls", "MRREL.RRF"))),
        ("mrsty.rrf", widen(fixture_bytes("umls", "MRSTY.RRF"))),
    ]);
    let wide = run(Format::UmlsRrf, &files, &["ENG"]).unwrap();
    let base = run(Format::UmlsRrf, &fixture_inputs("umls", UMLS), &["ENG"]).unwrap();
    assert_eq!(wide.concepts, base.concepts);
    assert_eq!(wide.relations, base.relations);
    assert_eq!(wide.mappings, base.mappings);
}

// ---------------------------------------------------------------- RxNorm

#[test]
fn rxnorm_fixture_loads_with_exact_counts() {
    let sink = run(
        Format::RxnormRrf,
        &fixture_inputs("rxnorm", RXNORM),
        &["ENG"],
    )
    .unwrap();
    assert_eq!(sink.concepts.len(), 16);
    assert_eq!(sink.mappings.len(), 27);
    assert_eq!(sink.relations.len(), 28);
    assert_eq!(distinct_edges(&sink, "is_a").len(), 1);
    assert_eq!(sink.warnings.len(), 1, "{:?}", sink.warnings);
    assert!(sink.warnings[0].contains("1 self-referencing and 1 suppressed"));
    assert_eq!(sink.bytes_done, file_sizes("rxnorm", RXNORM));
}

#[test]
fn rxnorm_spot_checks() {
    let sink = run(
        Format::RxnormRrf,
        &fixture_inputs("rxnorm", RXNORM),
        &["ENG"],
    )
    .unwrap();
    let scd = &sink.concepts["861007"];
    assert_eq!(
        scd.preferred_term,
        "metformin hydrochloride 500 MG Oral Tablet"
    );
    assert_eq!(scd.semantic_types, vec!["SCD"]);
    assert_eq!(scd.terms.len(), 4);
    assert!(scd.terms.iter().all(|t| t.kind != TermKind::Brand));
    let sbd = &sink.concepts["861008"];
    assert_eq!(sbd.semantic_types, vec!["SBD"]);
    assert_eq!(
        sbd.preferred_term,
        "metformin hydrochloride 500 MG Oral Tablet [Glucophage]"
    );
    assert!(sbd
        .terms
        .iter()
        .any(|t| t.text == "Glucophage 500 MG Oral Tablet" && t.kind == TermKind::Synonym));
    let bn = &sink.concepts["151827"];
    assert_eq!(
        (bn.preferred_term.as_str(), bn.semantic_types[0].as_str()),
        ("Glucophage", "BN")
    );
    // IN with a recurring run later in the file: merged by the sink
    let metformin = &sink.concepts["6809"];
    assert_eq!(metformin.preferred_term, "metformin");
    assert!(metformin
        .terms
        .iter()
        .any(|t| t.text == "N,N-dimethylbiguanide"));
    assert!(metformin
        .terms
        .iter()
        .any(|t| t.text == "dimethylbiguanide" && t.kind == TermKind::Obsolete));
    assert!(!metformin.terms.iter().any(|t| t.text == "Metformina"));
    assert!(has_mapping(&sink, ("RXNORM", "6809"), ("NDDF", "016304")));
    assert!(has_mapping(&sink, ("RXNORM", "6809"), ("MESH", "D008687")));
    assert!(has_mapping(
        &sink,
        ("RXNORM", "6809"),
        ("DRUGBANK", "DB00331")
    ));
    assert!(!has_mapping(
        &sink,
        ("RXNORM", "6809"),
        ("MSHSPA", "D008687")
    ));
    assert!(!sink.mappings.iter().any(|m| m.to.system == "RXNORM"));
    // live SCD atom preferred over the obsolete one with the same TTY
    assert_eq!(
        sink.concepts["313782"].preferred_term,
        "acetaminophen 325 MG Oral Tablet"
    );
    assert!(!sink.concepts["105029"].active);
    assert!(sink.concepts["313782"].active);
    assert!(!sink.concepts.contains_key("1547447"));

    // RXCUI2 RELA RXCUI1
    assert!(has_relation(&sink, "316255", "has_ingredient", "235743"));
    assert!(has_relation(&sink, "235743", "ingredient_of", "316255"));
    assert!(has_relation(&sink, "6809", "has_tradename", "151827"));
    assert!(has_relation(&sink, "151827", "tradename_of", "6809"));
    assert!(has_relation(&sink, "861008", "tradename_of", "861007"));
    assert!(has_relation(&sink, "861007", "consists_of", "316255"));
    assert!(has_relation(&sink, "861007", "has_dose_form", "317541"));
    assert!(has_relation(&sink, "861007", "is_a", "372803"));
    assert!(has_relation(&sink, "313782", "has_ingredient", "161"));
    assert!(has_relation(&sink, "314076", "has_ingredient", "29046"));
    assert!(!sink
        .relations
        .iter()
        .any(|r| r.rel == "isa" || r.rel == "inverse_isa"));
    assert!(!sink.relations.iter().any(|r| r.rel == "reformulated_to"));
}

#[test]
fn rxnorm_malformed_rows_are_located() {
    let conso = fixture_bytes("rxnorm", "RXNCONSO.RRF");
    let line = line_of(&conso, "861007|ENG|");
    let short = replace_line(&conso, line, b"861007|ENG||||||1|1|861007||RXNORM|SCD|");
    let (_d, files) = variant("rxnorm", RXNORM, "RXNCONSO.RRF", Some(short));
    assert_located(
        run(Format::RxnormRrf, &files, &["ENG"]),
        "RXNCONSO.RRF",
        line,
    );
    let bad = replace_line(
        &conso,
        line,
        b"861007|ENG||||||1|1|861007||RXNORM|SCD|861007|metformin \xe9|||N||",
    );
    let (_d, files) = variant("rxnorm", RXNORM, "RXNCONSO.RRF", Some(bad));
    assert_located(
        run(Format::RxnormRrf, &files, &["ENG"]),
        "RXNCONSO.RRF",
        line,
    );
    let rel = fixture_bytes("rxnorm", "RXNREL.RRF");
    let rows = rel.iter().filter(|b| **b == b'\n').count() as u64;
    let (_d, files) = variant(
        "rxnorm",
        RXNORM,
        "RXNREL.RRF",
        Some(rel[..rel.len() - 9].to_vec()),
    );
    assert_located(run(Format::RxnormRrf, &files, &["ENG"]), "RXNREL.RRF", rows);
    let (_d, files) = variant("rxnorm", RXNORM, "RXNCONSO.RRF", Some(Vec::new()));
    assert_located(run(Format::RxnormRrf, &files, &["ENG"]), "RXNCONSO.RRF", 0);
    let (_d, files) = variant("rxnorm", RXNORM, "RXNCONSO.RRF", None);
    assert_files_error(run(Format::RxnormRrf, &files, &["ENG"]), "RXNCONSO.RRF");
    let (_d, mut files) = write_files(&[("MRCONSO.RRF", b"x|\n".to_vec())]);
    files.extend(fixture_inputs("rxnorm", RXNORM));
    assert_files_error(run(Format::RxnormRrf, &files, &["ENG"]), "MRCONSO.RRF");
    // other RxNorm files are accepted and ignored with one warning
    let (_d, mut files) =
        write_files(&[("RXNSAT.RRF", b"6809|||||||RXNORM|x|y|RXNORM|N||\n".to_vec())]);
    files.extend(fixture_inputs("rxnorm", &["RXNCONSO.RRF"]));
    let sink = run(Format::RxnormRrf, &files, &["ENG"]).unwrap();
    assert_eq!(
        sink.warnings,
        vec!["ignored RxNorm files not used by this loader: RXNSAT.RRF"]
    );
    assert!(sink.relations.is_empty());
}

// ---------------------------------------------------------------- LOINC

/// 1-based physical line where the record containing `needle` starts.
fn csv_line_of(content: &[u8], needle: &str) -> u64 {
    let text = String::from_utf8_lossy(content);
    let at = text.find(needle).unwrap();
    let start = text[..at].rfind("\r\n").map_or(0, |p| p + 2);
    text[..start].matches('\n').count() as u64 + 1
}

#[test]
fn loinc_fixture_loads_with_exact_counts() {
    let sink = run(Format::LoincCsv, &fixture_inputs("loinc", LOINC), &["ENG"]).unwrap();
    assert_eq!(sink.concepts.len(), 44);
    let parts = sink
        .concepts
        .values()
        .filter(|c| c.attributes.get("kind").map(String::as_str) == Some("part"))
        .count();
    assert_eq!(parts, 12);
    assert_eq!(sink.relations.len(), 36);
    assert_eq!(distinct_edges(&sink, "is_a").len(), 35);
    assert!(sink.mappings.is_empty());
    assert!(sink.warnings.is_empty());
    assert_eq!(sink.bytes_done, file_sizes("loinc", LOINC));
}

#[test]
fn loinc_spot_checks() {
    let sink = run(Format::LoincCsv, &fixture_inputs("loinc", LOINC), &["ENG"]).unwrap();
    let g = &sink.concepts["2345-7"];
    assert_eq!(g.preferred_term, "Glucose [Mass/volume] in Serum or Plasma");
    assert_eq!(g.semantic_types, vec!["CHEM"]);
    let kind = |c: &ontovec::domain::model::Concept, text: &str| {
        c.terms.iter().find(|t| t.text == text).map(|t| t.kind)
    };
    assert_eq!(kind(g, "Glucose SerPl-mCnc"), Some(TermKind::Short));
    assert_eq!(
        kind(g, "Glucose, Serum or Plasma"),
        Some(TermKind::Consumer)
    );
    assert_eq!(kind(g, "Glucose [Mass/Vol]"), Some(TermKind::Synonym));
    assert_eq!(kind(g, "Gluc"), Some(TermKind::Related));
    assert_eq!(
        g.terms
            .iter()
            .filter(|t| t.kind == TermKind::Related)
            .count(),
        12
    );
    let attrs: Vec<(&str, &str)> = g
        .attributes
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        attrs,
        [
            ("class_type", "1"),
            ("component", "Glucose"),
            ("property", "MCnc"),
            ("scale", "Qn"),
            ("status", "ACTIVE"),
            ("system", "Ser/Plas"),
            ("time_aspect", "Pt"),
        ]
    );
    assert_eq!(
        sink.concepts["6690-2"].attributes["method"],
        "Automated count"
    );
    assert_eq!(
        sink.concepts["4548-4"].preferred_term,
        "Hemoglobin A1c/Hemoglobin.total in Blood"
    );
    assert!(!sink.concepts["33914-3"].active);
    assert!(sink.concepts["24323-8"].active);
    assert_eq!(sink.concepts["24323-8"].attributes["status"], "DISCOURAGED");
    assert!(sink.concepts["14682-9"]
        .terms
        .iter()
        .any(|t| t.text == "Créatinine"));
    let part = &sink.concepts["LP14635-4"];
    assert_eq!(part.preferred_term, "Glucose");
    assert!(has_relation(&sink, "2345-7", "is_a", "LP14635-4"));
    assert!(has_relation(&sink, "LP14635-4", "is_a", "LP343406-7"));
    assert!(has_relation(&sink, "LP14635-4", "is_a", "LP40488-6"));
    assert!(!sink.relations.iter().any(|r| r.from == "LP432695-7"));
}

#[test]
fn loinc_malformed_records_are_located() {
    let table = fixture_bytes("loinc", "Loinc.csv");
    let text = String::from_utf8(table.clone()).unwrap();
    // the record after the multi-line field: its physical line, not its record index
    let line = csv_line_of(&table, "\"2160-0\"");
    assert_eq!(line, 7);
    let bad = text.replacen("\"Creat SerPl-mCnc\"", "\"Creat\u{0} SerPl\"", 1);
    let mut bad = bad.into_bytes();
    let at = bad.iter().position(|b| *b == 0).unwrap();
    bad[at] = 0xFF;
    let (_d, files) = variant("loinc", LOINC, "Loinc.csv", Some(bad));
    assert_located(run(Format::LoincCsv, &files, &["ENG"]), "Loinc.csv", line);
    // wrong field count
    let short = text.replacen("\"2160-0\",\"Creatinine\",", "\"2160-0\",", 1);
    let (_d, files) = variant("loinc", LOINC, "Loinc.csv", Some(short.into_bytes()));
    assert_located(run(Format::LoincCsv, &files, &["ENG"]), "Loinc.csv", line);
    // truncated last record
    let last = csv_line_of(&table, "\"94500-6\"");
    let start = text.find("\"94500-6\"").unwrap();
    let cut = table[..(start + table.len()) / 2].to_vec();
    let (_d, files) = variant("loinc", LOINC, "Loinc.csv", Some(cut));
    assert_located(run(Format::LoincCsv, &files, &["ENG"]), "Loinc.csv", last);
    // duplicate column in the header, then a repeated header row
    let dup = text.replacen("\"CHNG_TYPE\"", "\"COMPONENT\"", 1);
    let (_d, files) = variant("loinc", LOINC, "Loinc.csv", Some(dup.into_bytes()));
    let msg = assert_located(run(Format::LoincCsv, &files, &["ENG"]), "Loinc.csv", 1);
    assert!(msg.contains("duplicate"), "{msg}");
    let header = text.lines().next().unwrap();
    let again = text.replacen("\"2160-0\"", &format!("{header}\r\n\"2160-0\""), 1);
    let (_d, files) = variant("loinc", LOINC, "Loinc.csv", Some(again.into_bytes()));
    let msg = assert_located(run(Format::LoincCsv, &files, &["ENG"]), "Loinc.csv", line);
    assert!(msg.contains("duplicate header"), "{msg}");
    // missing required column
    let missing = text.replacen("\"LONG_COMMON_NAME\"", "\"LONG_NAME\"", 1);
    let (_d, files) = variant("loinc", LOINC, "Loinc.csv", Some(missing.into_bytes()));
    let msg = assert_located(run(Format::LoincCsv, &files, &["ENG"]), "Loinc.csv", 1);
    assert!(msg.contains("LONG_COMMON_NAME"), "{msg}");
    // empty table, header only, empty hierarchy
    let (_d, files) = variant("loinc", LOINC, "Loinc.csv", Some(Vec::new()));
    assert_located(run(Format::LoincCsv, &files, &["ENG"]), "Loinc.csv", 1);
    let (_d, files) = variant(
        "loinc",
        LOINC,
        "Loinc.csv",
        Some(format!("{header}\r\n").into_bytes()),
    );
    assert_located(run(Format::LoincCsv, &files, &["ENG"]), "Loinc.csv", 1);
    let (_d, files) = variant("loinc", LOINC, "MultiAxialHierarchy.csv", Some(Vec::new()));
    assert_located(
        run(Format::LoincCsv, &files, &["ENG"]),
        "MultiAxialHierarchy.csv",
        1,
    );
}

#[test]
fn loinc_file_set_errors_and_tolerances() {
    let (_d, files) = variant("loinc", LOINC, "Loinc.csv", None);
    assert_files_error(run(Format::LoincCsv, &files, &["ENG"]), "Loinc.csv");
    let mut files = fixture_inputs("loinc", LOINC);
    files.push(InputFile::from_path(fixture("umls", "MRCONSO.RRF")));
    assert_files_error(run(Format::LoincCsv, &files, &["ENG"]), "MRCONSO.RRF");
    // the table alone is enough; reordered columns and extra ones are fine
    let alone = run(
        Format::LoincCsv,
        &fixture_inputs("loinc", &["Loinc.csv"]),
        &["ENG"],
    )
    .unwrap();
    assert_eq!(alone.concepts.len(), 32);
    assert!(alone.relations.is_empty());
    let table = fixture_bytes("loinc", "Loinc.csv");
    let mut rdr = csv::Reader::from_reader(&table[..]);
    let header = rdr.headers().unwrap().clone();
    let mut w = csv::WriterBuilder::new()
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(Vec::new());
    let mut h: Vec<&str> = header.iter().rev().collect();
    h.push("MyLabColumn");
    w.write_record(&h).unwrap();
    for rec in rdr.records() {
        let rec = rec.unwrap();
        let mut r: Vec<&str> = rec.iter().rev().collect();
        r.push("x");
        w.write_record(&r).unwrap();
    }
    let (_d, files) = write_files(&[("LOINC.CSV", w.into_inner().unwrap())]);
    let shuffled = run(Format::LoincCsv, &files, &["ENG"]).unwrap();
    assert_eq!(shuffled.concepts, alone.concepts);
}

// ---------------------------------------------------------------- property tests

/// Load `files` from arbitrary bytes: any result is fine, a panic is not.
fn load_bytes(format: Format, files: &[(&str, Vec<u8>)]) {
    let (_d, inputs) = write_files(files);
    let _ = run(format, &inputs, &["ENG"]);
}

/// Flip `edits` bytes of `bytes` and cut it at `cut` (fraction of the length).
fn mutate(mut bytes: Vec<u8>, edits: &[(usize, u8)], cut: f64) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    for (pos, b) in edits {
        let i = pos % bytes.len();
        bytes[i] = *b;
    }
    let keep = ((bytes.len() as f64) * cut) as usize;
    bytes.truncate(keep.max(1));
    bytes
}

fn edits() -> impl Strategy<Value = Vec<(usize, u8)>> {
    prop::collection::vec(
        (
            any::<usize>(),
            prop_oneof![Just(b'|'), Just(b'\n'), Just(b'"'), Just(b','), any::<u8>()],
        ),
        0..8,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn umls_never_panics_on_arbitrary_bytes(
        a in prop::collection::vec(any::<u8>(), 0..600),
        b in prop::collection::vec(any::<u8>(), 0..600),
        c in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        load_bytes(Format::UmlsRrf, &[("MRCONSO.RRF", a), ("MRREL.RRF", b), ("MRSTY.RRF", c)]);
    }

    #[test]
    fn umls_never_panics_on_mutated_fixture(e in edits(), f in 0.0f64..=1.0, which in 0usize..3) {
        let names = ["MRCONSO.RRF", "MRREL.RRF", "MRSTY.RRF"];
        let files: Vec<(&str, Vec<u8>)> = names.iter().enumerate().map(|(i, n)| {
            let b = fixture_bytes("umls", n);
            (*n, if i == which { mutate(b, &e, f) } else { b })
        }).collect();
        load_bytes(Format::UmlsRrf, &files);
    }

    #[test]
    fn rxnorm_never_panics_on_arbitrary_bytes(
        a in prop::collection::vec(any::<u8>(), 0..600),
        b in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        load_bytes(Format::RxnormRrf, &[("RXNCONSO.RRF", a), ("RXNREL.RRF", b)]);
    }

    #[test]
    fn rxnorm_never_panics_on_mutated_fixture(e in edits(), f in 0.0f64..=1.0, which in 0usize..2) {
        let files: Vec<(&str, Vec<u8>)> = RXNORM.iter().enumerate().map(|(i, n)| {
            let b = fixture_bytes("rxnorm", n);
            (*n, if i == which { mutate(b, &e, f) } else { b })
        }).collect();
        load_bytes(Format::RxnormRrf, &files);
    }

    #[test]
    fn loinc_never_panics_on_arbitrary_bytes(
        a in prop::collection::vec(any::<u8>(), 0..600),
        b in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        load_bytes(Format::LoincCsv, &[("Loinc.csv", a), ("MultiAxialHierarchy.csv", b)]);
    }

    #[test]
    fn loinc_never_panics_on_mutated_fixture(e in edits(), f in 0.0f64..=1.0, which in 0usize..2) {
        let files: Vec<(&str, Vec<u8>)> = LOINC.iter().enumerate().map(|(i, n)| {
            let b = fixture_bytes("loinc", n);
            (*n, if i == which { mutate(b, &e, f) } else { b })
        }).collect();
        load_bytes(Format::LoincCsv, &files);
    }
}
