//! Loaders for the public formats (ICD-10-CM XML, ICD-9-CM + GEMs, PheCODE, OBO) on the
//! fixtures in `ontologies/`, on malformed variants of them, on arbitrary bytes, and on the real
//! public files where `scripts/fetch-data.sh` puts them (`data/downloads/` in the repository;
//! `make test` runs the fetch first, and a missing file fails the test).

use ontovec::domain::model::{Concept, ConceptRef, Mapping, TermKind};
use ontovec::ontology::{self, icd10cm, Format, InputFile, LoadError, LoadOptions, MemorySink};
use std::collections::BTreeSet;
use std::path::Path;

fn fixture(rel: &str) -> InputFile {
    InputFile::from_path(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("ontologies")
            .join(rel),
    )
}

fn run(format: Format, system: &str, files: &[InputFile]) -> Result<MemorySink, LoadError> {
    let mut sink = MemorySink::default();
    ontology::load(format, files, &LoadOptions::for_system(system), &mut sink)?;
    Ok(sink)
}

fn parents(sink: &MemorySink, code: &str) -> Vec<String> {
    sink.relations
        .iter()
        .filter(|r| r.from == code && r.rel == "is_a")
        .map(|r| r.to.clone())
        .collect()
}

fn ancestors(sink: &MemorySink, code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = code.to_string();
    while let Some(p) = parents(sink, &cur).first().cloned() {
        assert!(out.len() < 50, "cycle above {code}");
        out.push(p.clone());
        cur = p;
    }
    out
}

fn terms(c: &Concept, kind: TermKind) -> Vec<&str> {
    c.terms
        .iter()
        .filter(|t| t.kind == kind)
        .map(|t| t.text.as_str())
        .collect()
}

fn has_mapping(sink: &MemorySink, from: (&str, &str), to: (&str, &str), relation: &str) -> bool {
    sink.mappings.iter().any(|m: &Mapping| {
        m.from == ConceptRef::new(from.0, from.1)
            && m.to == ConceptRef::new(to.0, to.1)
            && m.relation == relation
    })
}

/// Write `content` as `name` in a temp dir.
fn temp_file(name: &str, content: &[u8]) -> (tempfile::TempDir, InputFile) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(name);
    std::fs::write(&path, content).unwrap();
    (dir, InputFile::from_path(path))
}

/// Load `content` (named `name`) and return the error's Display, asserting it points at `line`.
fn expect_error(format: Format, name: &str, content: &[u8], line: u64) -> String {
    let (_dir, f) = temp_file(name, content);
    let err = run(format, "X", &[f]).expect_err("malformed input must fail");
    let shown = err.to_string();
    assert!(
        shown.starts_with(&format!("{name}:{line}:")),
        "expected {name}:{line}: …, got {shown}"
    );
    shown
}

fn read(rel: &str) -> Vec<u8> {
    std::fs::read(fixture(rel).path).unwrap()
}

// ---------------------------------------------------------------- ICD-10-CM

#[test]
fn icd10cm_fixture() {
    let s = run(
        Format::Icd10cmXml,
        "ICD10CM",
        &[fixture("icd10cm/icd10cm-tabular-sample.xml")],
    )
    .unwrap();
    // 20 diags + 3 7th-character codes of S72.001 + 4 chapters + 4 range sections (the
    // single-category section E36 is E36 itself).
    assert_eq!(s.concepts.len(), 31);
    assert_eq!(s.relations.len(), 27);
    assert!(s.mappings.is_empty());
    let inclusions: usize = s
        .concepts
        .values()
        .map(|c| terms(c, TermKind::Inclusion).len())
        .sum();
    // 9 inclusion terms + 7 `includes` notes that are wordings of their code (I21's note that
    // cites I50.- is an instruction: attribute only).
    assert_eq!(inclusions, 16);
    assert_eq!(
        terms(&s.concepts["E11"], TermKind::Inclusion),
        vec![
            "diabetes (mellitus) due to insulin secretory defect",
            "diabetes NOS",
            "insulin resistant diabetes (mellitus)"
        ]
    );
    assert_eq!(
        terms(&s.concepts["I21"], TermKind::Inclusion),
        vec!["cardiac infarction"]
    );
    assert!(s.concepts["I21"].attributes["includes"].contains("any condition in I50.-"));

    let e119 = &s.concepts["E11.9"];
    assert_eq!(
        e119.preferred_term,
        "Type 2 diabetes mellitus without complications"
    );
    assert_eq!(
        terms(e119, TermKind::Inclusion),
        vec!["Type 2 diabetes mellitus NOS & without mention of complication"]
    );
    assert!(e119.attributes["excludes1"].contains("(E11.A)"));
    assert_eq!(parents(&s, "E11.9"), vec!["E11"]);
    assert_eq!(parents(&s, "E11"), vec!["E08-E13"]);
    assert_eq!(parents(&s, "E08-E13"), vec!["E00-E89"]);
    assert_eq!(
        ancestors(&s, "E11.65"),
        vec!["E11.6", "E11", "E08-E13", "E00-E89"]
    );
    assert_eq!(s.concepts["E00-E89"].attributes["chapter"], "4");
    assert_eq!(
        s.concepts["E08-E13"].preferred_term,
        "Diabetes mellitus (E08-E13)"
    );
    // Single-category section: no separate concept, the category hangs under the chapter.
    assert_eq!(
        s.concepts["E36"].preferred_term,
        "Intraoperative complications of endocrine system"
    );
    assert_eq!(parents(&s, "E36"), vec!["E00-E89"]);
    assert_eq!(
        ancestors(&s, "I21.A1"),
        vec!["I21.A", "I21", "I20-I25", "I00-I99"]
    );
    assert_eq!(
        s.concepts["I21"].attributes["excludes2"],
        "old myocardial infarction (I25.2); postmyocardial infarction syndrome (I24.1)"
    );
    assert!(s.concepts["I21.A1"].attributes["code_first"].starts_with("the underlying"));
    assert_eq!(
        terms(&s.concepts["G40.909"], TermKind::Inclusion),
        vec![
            "Epilepsy NOS",
            "Epileptic convulsions NOS",
            "Seizure disorder NOS"
        ]
    );
    // 7th characters: kept as an attribute of the defining category, and made into codes below
    // the leaves they apply to.
    assert!(s.concepts["S72"].attributes["seventh_character"].starts_with("A=initial"));
    let s72 = &s.concepts["S72.001A"];
    assert_eq!(
        s72.preferred_term,
        "Fracture of unspecified part of neck of right femur, initial encounter for closed fracture"
    );
    assert_eq!(parents(&s, "S72.001A"), vec!["S72.001"]);
    assert_eq!(s72.attributes["billable"], "true");
    assert_eq!(s.concepts["S72.001"].attributes["billable"], "false");
    assert_eq!(s.concepts["E11.9"].attributes["billable"], "true");
    assert_eq!(s.concepts["E11"].attributes["billable"], "false");
    assert!(!s.concepts["E08-E13"].attributes.contains_key("billable"));
    assert!(s.bytes_done > 0);
}

/// Check an ICD-10-CM load against a CDC code list (`code-list-April-2026.txt` layout: one code
/// a line without its dot, chapters by number, sections by range, a single-category section
/// listed like its category): every line is loaded, nothing else is, and a code is billable
/// exactly when no other listed code extends it (the CMS order file's header flag).
/// Returns (codes, billable codes).
fn check_code_list(s: &MemorySink, list: &Path) -> (usize, usize) {
    let text = std::fs::read_to_string(list)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/fetch-data.sh)", list.display()));
    let (mut codes, mut chapters, mut sections) = (Vec::new(), BTreeSet::new(), BTreeSet::new());
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if line.bytes().all(|b| b.is_ascii_digit()) {
            chapters.insert(line.to_string());
        } else if line.contains('-') {
            sections.insert(line.to_string());
        } else {
            codes.push(line.to_string());
        }
    }
    codes.sort();
    codes.dedup();
    let mut billable = 0;
    for (i, code) in codes.iter().enumerate() {
        let header = codes
            .get(i + 1)
            .is_some_and(|n| n.starts_with(code.as_str()));
        let dotted = icd10cm::with_dot(code);
        let c = s
            .concepts
            .get(&dotted)
            .unwrap_or_else(|| panic!("{dotted} is in the code list but not loaded"));
        let expected = if header { "false" } else { "true" };
        assert_eq!(
            c.attributes.get("billable").map(String::as_str),
            Some(expected),
            "billable flag of {dotted}"
        );
        billable += usize::from(!header);
    }
    let loaded_chapters: BTreeSet<String> = s
        .concepts
        .values()
        .filter_map(|c| c.attributes.get("chapter").cloned())
        .collect();
    assert_eq!(loaded_chapters, chapters);
    let loaded_sections: BTreeSet<String> = s
        .concepts
        .values()
        .filter(|c| c.code.contains('-') && !c.attributes.contains_key("chapter"))
        .map(|c| c.code.clone())
        .collect();
    // Single-category sections (`T07`) are listed like codes and loaded as their category.
    assert_eq!(loaded_sections, sections);
    let loaded_codes = s.concepts.len() - loaded_chapters.len() - loaded_sections.len();
    assert_eq!(
        loaded_codes,
        codes.len(),
        "codes loaded that the list does not have"
    );
    (codes.len(), billable)
}

#[test]
fn icd10cm_seventh_character_fixture() {
    let s = run(
        Format::Icd10cmXml,
        "ICD10CM",
        &[fixture("icd10cm/icd10cm-seventh-sample.xml")],
    )
    .unwrap();
    let (codes, billable) =
        check_code_list(&s, &fixture("icd10cm/code-list-seventh-sample.txt").path);
    assert_eq!((codes, billable), (35, 18));
    let name = |code: &str| s.concepts[code].preferred_term.as_str();
    // Placeholder X up to six characters, parent = the code extended.
    assert_eq!(
        name("S00.00XA"),
        "Unspecified superficial injury of scalp, initial encounter"
    );
    assert_eq!(parents(&s, "S00.00XA"), vec!["S00.00"]);
    assert_eq!(parents(&s, "T07.XXXS"), vec!["T07"]);
    assert_eq!(parents(&s, "T07"), vec!["S00-T88"]);
    assert_eq!(parents(&s, "T71.1XXD"), vec!["T71.1"]);
    // A subcategory's own definition (laterality), on a code written with the XML's placeholder.
    assert_eq!(
        name("E11.3213"),
        "Type 2 diabetes mellitus with mild nonproliferative diabetic retinopathy with macular \
         edema, bilateral"
    );
    assert!(!s.concepts.contains_key("E11.36A"));
    assert_eq!(parents(&s, "S06.0X0D"), vec!["S06.0X0"]);
    // The S06 note: D and S do not apply with 6th character 7.
    assert!(s.concepts.contains_key("S06.1X7A"));
    assert!(!s.concepts.contains_key("S06.1X7D") && !s.concepts.contains_key("S06.1X7S"));
    assert!(s.concepts["S06"].attributes["notes"].starts_with("7th characters D and S"));

    // A sevenChrDef after the codes it should apply to is refused with its line.
    let text = String::from_utf8(read("icd10cm/icd10cm-seventh-sample.xml")).unwrap();
    let def = "          <sevenChrDef>\n            <extension char=\"A\">initial encounter</extension>\n          </sevenChrDef>\n";
    let bad = text.replacen(
        "        </diag>\n      </diag>\n    </section>\n  </chapter>\n</ICD10CM.tabular>",
        &format!(
            "        </diag>\n{def}      </diag>\n    </section>\n  </chapter>\n</ICD10CM.tabular>"
        ),
        1,
    );
    let line = text.lines().count() as u64 - 3;
    let e = expect_error(Format::Icd10cmXml, "late.xml", bad.as_bytes(), line);
    assert!(e.contains("T71"), "{e}");
    // A 7th character must be one letter or digit.
    let bad = text.replacen("char=\"1\"", "char=\"12\"", 1);
    let at = text.lines().position(|l| l.contains("char=\"1\"")).unwrap() as u64 + 1;
    expect_error(Format::Icd10cmXml, "char.xml", bad.as_bytes(), at);
}

#[test]
fn icd10cm_malformed() {
    let good = read("icd10cm/icd10cm-tabular-sample.xml");
    let text = String::from_utf8(good.clone()).unwrap();
    let line_of = |needle: &str| text.lines().position(|l| l.contains(needle)).unwrap() as u64 + 1;

    // Truncated XML: cut inside E11.9; the error is at the last line (end of file).
    let cut = text.find("<excludes1>\n            <note>type 2").unwrap() + 20;
    let last_line = text[..cut].matches('\n').count() as u64 + 1;
    assert_eq!(last_line, 59);
    let e = expect_error(Format::Icd10cmXml, "t.xml", &good[..cut], last_line);
    assert!(e.contains("truncated"), "{e}");

    // A diag without a name.
    let bad = text.replacen("<name>E11.9</name>", "", 1);
    let diag_line = line_of("<name>E11.9</name>") - 1;
    let e = expect_error(Format::Icd10cmXml, "n.xml", bad.as_bytes(), diag_line);
    assert!(e.contains("no <name>"), "{e}");

    // Mismatched end tag.
    let bad = text.replacen("</desc>", "</dsc>", 1);
    expect_error(Format::Icd10cmXml, "m.xml", bad.as_bytes(), 11);

    // Bad UTF-8 inside a description.
    let mut bad = good.clone();
    let at = text.find("Epilepsy, unspecified</desc>").unwrap();
    bad[at + 3] = 0xFF;
    expect_error(
        Format::Icd10cmXml,
        "u.xml",
        &bad,
        line_of("Epilepsy, unspecified</desc>"),
    );

    // Empty file and a foreign root element.
    expect_error(Format::Icd10cmXml, "e.xml", b"", 1);
    expect_error(
        Format::Icd10cmXml,
        "r.xml",
        b"<?xml version=\"1.0\"?>\n<other/>\n",
        2,
    );

    // Not an XML file at all: refused by name.
    let (_d, f) = temp_file("notes.txt", b"x");
    let err = run(Format::Icd10cmXml, "ICD10CM", &[f]).unwrap_err();
    assert!(matches!(err, LoadError::Files(ref m) if m.contains("notes.txt")));
}

// ---------------------------------------------------------------- ICD-9-CM

fn icd9_release() -> Vec<InputFile> {
    [
        "CMS32_DESC_SHORT_DX.txt",
        "CMS32_DESC_LONG_DX.txt",
        "2015_I9gem.txt",
        "2015_I10gem.txt",
    ]
    .iter()
    .map(|n| fixture(&format!("icd9cm/{n}")))
    .collect()
}

#[test]
fn icd9cm_txt_fixture() {
    let s = run(Format::Icd9cmTxt, "ICD9CM", &icd9_release()).unwrap();
    assert_eq!(s.concepts.len(), 14);
    let c = &s.concepts["250.00"];
    assert_eq!(
        c.preferred_term,
        "Diabetes mellitus without mention of complication, type II or unspecified type, not \
         stated as uncontrolled"
    );
    assert_eq!(terms(c, TermKind::Short), vec!["DMII wo cmp nt st uncntr"]);
    // Latin-1 byte 0xE4 decoded as ä.
    assert!(s.concepts["041.3"]
        .preferred_term
        .starts_with("Friedländer's bacillus"));
    assert!(s.concepts.contains_key("V58.67") && s.concepts.contains_key("E880.0"));
    assert!(s.concepts.contains_key("411.1"));
    // GEM rows: 15 of 16 (one NoDx) plus 11 of 12.
    assert_eq!(s.mappings.len(), 26);
    assert!(has_mapping(
        &s,
        ("ICD9CM", "250.00"),
        ("ICD10CM", "E11.9"),
        "gem_approximate"
    ));
    assert!(has_mapping(
        &s,
        ("ICD9CM", "V58.67"),
        ("ICD10CM", "Z79.4"),
        "gem_exact"
    ));
    assert!(has_mapping(
        &s,
        ("ICD9CM", "E880.0"),
        ("ICD10CM", "W10.0XXA"),
        "gem_approximate"
    ));
    assert!(has_mapping(
        &s,
        ("ICD10CM", "E11.9"),
        ("ICD9CM", "250.00"),
        "gem_approximate"
    ));
    assert!(s.mappings.iter().all(|m| m.to.code != "NoDx"));
    assert!(s
        .mappings
        .iter()
        .any(|m| m.source == "2015_I10gem.txt" && m.from.code == "G40.909"));
    // Billable codes only: no ancestors present, so no invented hierarchy.
    assert!(s.relations.is_empty());
}

#[test]
fn icd9cm_csv_fixture_matches_txt() {
    let csv = run(
        Format::Icd9cmCsv,
        "ICD9CM",
        &[
            fixture("icd9cm/icd9dx2015.csv"),
            fixture("icd9cm/icd9toicd10cmgem.csv"),
            fixture("icd9cm/icd10cmtoicd9gem.csv"),
        ],
    )
    .unwrap();
    let txt = run(Format::Icd9cmTxt, "ICD9CM", &icd9_release()).unwrap();
    assert_eq!(csv.concepts, txt.concepts);
    let key = |m: &Mapping| (m.from.clone(), m.to.clone(), m.relation.clone());
    let mut a: Vec<_> = csv.mappings.iter().map(key).collect();
    let mut b: Vec<_> = txt.mappings.iter().map(key).collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
}

#[test]
fn icd9cm_hierarchy_links_nearest_present_ancestor() {
    let (_d, f) = temp_file(
        "CMS32_DESC_LONG_DX.txt",
        b"250   Diabetes mellitus\n25001 Type I\n2501  Diabetes with ketoacidosis\n25010 Keto II\nE800  Railway accident\nE8000 Railway collision\n",
    );
    let s = run(Format::Icd9cmTxt, "ICD9CM", &[f]).unwrap();
    assert_eq!(parents(&s, "250.01"), vec!["250"]);
    assert_eq!(parents(&s, "250.10"), vec!["250.1"]);
    assert_eq!(parents(&s, "250.1"), vec!["250"]);
    assert_eq!(parents(&s, "E800.0"), vec!["E800"]);
    assert_eq!(s.relations.len(), 4);
}

#[test]
fn icd9cm_malformed() {
    let long = read("icd9cm/CMS32_DESC_LONG_DX.txt");
    // Truncated last line (code only).
    let cut = long.len() - "Long-term (current) use of insulin\r\n".len();
    let e = expect_error(
        Format::Icd9cmTxt,
        "CMS32_DESC_LONG_DX.txt",
        &long[..cut],
        14,
    );
    assert!(e.contains("V5867"), "{e}");
    // Not a code.
    let bad = String::from_utf8_lossy(&long).replacen("4111 ", "41X1 ", 1);
    expect_error(
        Format::Icd9cmTxt,
        "CMS32_DESC_LONG_DX.txt",
        bad.as_bytes(),
        11,
    );
    // Empty file.
    expect_error(Format::Icd9cmTxt, "CMS32_DESC_LONG_DX.txt", b"", 1);

    // GEM text: wrong field count and bad flags.
    let gem = String::from_utf8(read("icd9cm/2015_I9gem.txt")).unwrap();
    let bad = gem.replacen("25000    E119      10000", "25000    E119", 1);
    expect_error(Format::Icd9cmTxt, "2015_I9gem.txt", bad.as_bytes(), 2);
    let bad = gem.replacen("10000", "1x000", 1);
    expect_error(Format::Icd9cmTxt, "2015_I9gem.txt", bad.as_bytes(), 2);

    // CSV: wrong field count, bad UTF-8, duplicate header, missing column, empty file.
    let csv = String::from_utf8(read("icd9cm/icd9dx2015.csv")).unwrap();
    let bad = csv.replacen(",32,2015\n", ",32\n", 3);
    expect_error(Format::Icd9cmCsv, "icd9dx2015.csv", bad.as_bytes(), 2);
    let mut bad = csv.clone().into_bytes();
    let at = csv.find("Friedl").unwrap() + 6;
    bad[at] = 0xE4; // Latin-1 in a UTF-8 CSV
    bad[at + 1] = b'n';
    expect_error(Format::Icd9cmCsv, "icd9dx2015.csv", &bad, 2);
    let header = csv.lines().next().unwrap();
    let bad = format!("{csv}{header}\n");
    let e = expect_error(Format::Icd9cmCsv, "icd9dx2015.csv", bad.as_bytes(), 16);
    assert!(e.contains("duplicate header"), "{e}");
    let bad = csv.replacen("\"longdesc\"", "\"long_desc\"", 1);
    let e = expect_error(Format::Icd9cmCsv, "icd9dx2015.csv", bad.as_bytes(), 1);
    assert!(e.contains("longdesc"), "{e}");
    expect_error(Format::Icd9cmCsv, "icd9dx2015.csv", b"", 1);

    // Unrecognised and procedure files are refused by name.
    for name in ["CMS32_DESC_LONG_SG.txt", "readme.md", "other.csv"] {
        let (_d, f) = temp_file(name, b"a,b\n1,2\n");
        let err = run(Format::Icd9cmTxt, "ICD9CM", &[f]).unwrap_err();
        assert!(
            matches!(err, LoadError::Files(ref m) if m.contains(name)),
            "{err}"
        );
    }
}

// ---------------------------------------------------------------- PheCODE

#[test]
fn phecode_fixture() {
    let s = run(
        Format::PhecodeCsv,
        "PHECODE",
        &[
            fixture("phecode/phecode_definitions1.2.csv"),
            fixture("phecode/Phecode_map_v1_2_icd9_icd10cm_sample.csv"),
        ],
    )
    .unwrap();
    assert_eq!(s.concepts.len(), 15);
    assert_eq!(s.concepts["250.2"].preferred_term, "Type 2 diabetes");
    assert_eq!(
        s.concepts["250.2"].semantic_types,
        vec!["endocrine/metabolic"]
    );
    assert_eq!(s.concepts["008"].attributes["exclude_range"], "008.5-008.7");
    assert_eq!(parents(&s, "250.2"), vec!["250"]);
    assert_eq!(parents(&s, "250.23"), vec!["250.2"]);
    assert_eq!(parents(&s, "345.11"), vec!["345.1"]);
    assert_eq!(ancestors(&s, "411.2"), vec!["411"]);
    assert!(parents(&s, "008").is_empty());
    // Every phecode below a root: 15 codes, 4 roots.
    assert_eq!(s.relations.len(), 11);
    assert_eq!(s.mappings.len(), 18);
    assert!(has_mapping(
        &s,
        ("ICD10CM", "E11.9"),
        ("PHECODE", "250.2"),
        "maps_to"
    ));
    assert!(has_mapping(
        &s,
        ("ICD9CM", "250.00"),
        ("PHECODE", "250.2"),
        "maps_to"
    ));
    assert!(has_mapping(
        &s,
        ("ICD10CM", "G40.909"),
        ("PHECODE", "345"),
        "maps_to"
    ));
}

#[test]
fn phecode_pyphewas_layouts() {
    let s = run(
        Format::PhecodeCsv,
        "PHECODE",
        &[fixture("phecode/phecode12-sample.csv")],
    )
    .unwrap();
    // Rows repeated per unrolled ancestor are mapped once, to `phecode`.
    assert_eq!(s.mappings.len(), 20);
    assert!(has_mapping(
        &s,
        ("ICD9CM", "001"),
        ("PHECODE", "008"),
        "maps_to"
    ));
    assert!(has_mapping(
        &s,
        ("ICD10CM", "E11.9"),
        ("PHECODE", "250.2"),
        "maps_to"
    ));
    assert!(!has_mapping(
        &s,
        ("ICD10CM", "E11.9"),
        ("PHECODE", "250"),
        "maps_to"
    ));
    assert_eq!(
        s.concepts["345"].preferred_term,
        "Epilepsy, recurrent seizures, convulsions"
    );
    assert_eq!(
        s.concepts["008"].semantic_types,
        vec!["infectious diseases"]
    );
    // Only phecodes that have rows exist; 250.2 has no 250 row, so no parent.
    assert!(!s.concepts.contains_key("250"));
    assert_eq!(parents(&s, "345.11"), vec!["345"]);

    let x = run(
        Format::PhecodeCsv,
        "PHECODEX",
        &[fixture("phecode/phecodeX-sample.csv")],
    )
    .unwrap();
    assert_eq!(x.concepts.len(), 3);
    assert_eq!(parents(&x, "EM_202.2"), vec!["EM_202"]);
    assert!(has_mapping(
        &x,
        ("ICD9CM", "250.00"),
        ("PHECODEX", "EM_202.2"),
        "maps_to"
    ));
    assert_eq!(x.mappings.len(), 6);
}

#[test]
fn phecode_malformed() {
    let defs = String::from_utf8(read("phecode/phecode_definitions1.2.csv")).unwrap();
    let bad = defs.replacen(",Both,1,0,3,endocrine/metabolic\n", ",Both,1,0\n", 1);
    expect_error(Format::PhecodeCsv, "defs.csv", bad.as_bytes(), 3);
    let mut bad = defs.clone().into_bytes();
    let at = defs.find("Type 1 diabetes").unwrap();
    bad[at] = 0xC3;
    expect_error(Format::PhecodeCsv, "defs.csv", &bad, 4);
    let bad = defs.replacen(
        "phenotype,phecode_exclude_range",
        "phecode,phecode_exclude_range",
        1,
    );
    let e = expect_error(Format::PhecodeCsv, "defs.csv", bad.as_bytes(), 1);
    assert!(e.contains("duplicate column"), "{e}");
    expect_error(Format::PhecodeCsv, "defs.csv", b"", 1);

    let map = String::from_utf8(read("phecode/phecode12-sample.csv")).unwrap();
    let truncated = &map[..map.len() - 20];
    expect_error(
        Format::PhecodeCsv,
        "map.csv",
        truncated.as_bytes(),
        map.lines().count() as u64,
    );
    let bad = map.replacen(",E11.9,10,", ",E11.9,11,", 1);
    let line = map.lines().position(|l| l.contains(",E11.9,10,")).unwrap() as u64 + 1;
    let e = expect_error(Format::PhecodeCsv, "map.csv", bad.as_bytes(), line);
    assert!(e.contains("flag"), "{e}");

    // A CSV without a phecode column is not a PheCODE file.
    let (_d, f) = temp_file("loinc.csv", b"LOINC_NUM,COMPONENT\n1-8,x\n");
    let err = run(Format::PhecodeCsv, "PHECODE", &[f]).unwrap_err();
    assert!(matches!(err, LoadError::Files(ref m) if m.contains("loinc.csv")));
}

// ---------------------------------------------------------------- OBO

#[test]
fn obo_fixture() {
    let f = fixture("obo/hpo-sample.obo");
    assert_eq!(
        ontology::sniff_system(Format::Obo, std::slice::from_ref(&f)).unwrap(),
        Some("HP".to_string())
    );
    let s = run(Format::Obo, "HPO", &[f]).unwrap();
    assert_eq!(s.concepts.len(), 9);
    assert_eq!(s.relations.len(), 8);
    assert_eq!(s.mappings.len(), 13);
    let c = &s.concepts["HP:0001250"];
    assert_eq!(c.preferred_term, "Seizure");
    assert_eq!(
        terms(c, TermKind::Synonym),
        vec!["Epileptic seizure", "Seizures"]
    );
    assert_eq!(terms(c, TermKind::Related), vec!["Epilepsy"]);
    assert_eq!(terms(c, TermKind::Abbreviation), vec!["Sz"]);
    assert_eq!(terms(c, TermKind::Consumer), vec!["Fits"]);
    assert_eq!(terms(c, TermKind::Obsolete), vec!["Convulsions NOS"]);
    assert_eq!(c.attributes["alt_id"], "HP:0001275; HP:0002279");
    assert!(c.attributes["definition"].starts_with("A seizure is"));
    assert!(has_mapping(
        &s,
        ("HPO", "HP:0001250"),
        ("UMLS", "C0036572"),
        "xref"
    ));
    assert!(has_mapping(
        &s,
        ("HPO", "HP:0001250"),
        ("ICD10CM", "R56.9"),
        "xref"
    ));
    assert!(has_mapping(
        &s,
        ("HPO", "HP:0000707"),
        ("MESH", "D009421"),
        "xref"
    ));
    assert_eq!(
        ancestors(&s, "HP:0002069"),
        vec![
            "HP:0001250",
            "HP:0012638",
            "HP:0000707",
            "HP:0000118",
            "HP:0000001"
        ]
    );
    assert!(s
        .relations
        .iter()
        .any(|r| r.from == "HP:0001155" && r.rel == "part_of" && r.to == "HP:0040064"));
    let d = &s.concepts["HP:0000707"];
    assert_eq!(
        d.attributes["definition"],
        "An abnormality of the \"nervous system\"."
    );
    let obsolete = &s.concepts["HP:0000057"];
    assert!(!obsolete.active);
    assert_eq!(obsolete.attributes["replaced_by"], "HP:0008665");
    assert!(s
        .concepts
        .values()
        .filter(|c| c.code != "HP:0000057")
        .all(|c| c.active));
    assert!(
        !s.concepts.contains_key("part_of"),
        "Typedef stanzas are skipped"
    );
}

#[test]
fn obo_malformed() {
    let obo = String::from_utf8(read("obo/hpo-sample.obo")).unwrap();
    let line_of = |needle: &str| obo.lines().position(|l| l.contains(needle)).unwrap() as u64 + 1;
    let bad = obo.replacen("\"Sz\" EXACT", "\"Sz EXACT", 1);
    let e = expect_error(
        Format::Obo,
        "h.obo",
        bad.as_bytes(),
        line_of("\"Sz\" EXACT"),
    );
    assert!(e.contains("unterminated"), "{e}");
    let bad = obo.replacen("id: HP:0002069\n", "", 1);
    let e = expect_error(
        Format::Obo,
        "h.obo",
        bad.as_bytes(),
        line_of("id: HP:0002069") - 1,
    );
    assert!(e.contains("without an id"), "{e}");
    let mut bad = obo.clone().into_bytes();
    let at = obo.find("name: Seizure").unwrap() + 7;
    bad[at] = 0xFF;
    expect_error(Format::Obo, "h.obo", &bad, line_of("name: Seizure"));
    let bad = obo.replacen("[Term]\nid: HP:0040064", "[Term\nid: HP:0040064", 1);
    expect_error(
        Format::Obo,
        "h.obo",
        bad.as_bytes(),
        line_of("id: HP:0040064") - 1,
    );
    let bad = obo.replacen("xref: UMLS:C4024733", "xref UMLS C4024733", 1);
    expect_error(
        Format::Obo,
        "h.obo",
        bad.as_bytes(),
        line_of("xref: UMLS:C4024733"),
    );
    expect_error(Format::Obo, "h.obo", b"", 1);
    expect_error(
        Format::Obo,
        "h.obo",
        b"format-version: 1.2\nontology: x\n",
        2,
    );
}

// ---------------------------------------------------------------- arbitrary bytes

mod never_panic {
    use super::*;
    use proptest::prelude::*;

    fn load_bytes(format: Format, name: &str, bytes: &[u8]) {
        let (_d, f) = temp_file(name, bytes);
        let _ = run(format, "X", &[f]);
    }

    /// Arbitrary bytes, and fixture text with arbitrary bytes spliced in.
    fn mutated(base: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
        let n = base.len();
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..400),
            (0..n, proptest::collection::vec(any::<u8>(), 0..12), 0..n).prop_map(
                move |(at, ins, cut)| {
                    let mut b = base.clone();
                    b.splice(at..at, ins);
                    b.truncate(cut.max(at));
                    b
                }
            ),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn icd10cm(bytes in mutated(read("icd10cm/icd10cm-tabular-sample.xml"))) {
            load_bytes(Format::Icd10cmXml, "t.xml", &bytes);
        }

        #[test]
        fn icd9cm_txt(bytes in mutated(read("icd9cm/CMS32_DESC_LONG_DX.txt"))) {
            load_bytes(Format::Icd9cmTxt, "CMS32_DESC_LONG_DX.txt", &bytes);
        }

        #[test]
        fn icd9cm_gem(bytes in mutated(read("icd9cm/2015_I9gem.txt"))) {
            load_bytes(Format::Icd9cmTxt, "2015_I9gem.txt", &bytes);
        }

        #[test]
        fn icd9cm_csv(bytes in mutated(read("icd9cm/icd9toicd10cmgem.csv"))) {
            load_bytes(Format::Icd9cmCsv, "g.csv", &bytes);
        }

        #[test]
        fn phecode(bytes in mutated(read("phecode/phecode12-sample.csv"))) {
            load_bytes(Format::PhecodeCsv, "p.csv", &bytes);
        }

        #[test]
        fn obo(bytes in mutated(read("obo/hpo-sample.obo"))) {
            load_bytes(Format::Obo, "h.obo", &bytes);
        }
    }
}

// ---------------------------------------------------------------- real public files

/// A public file where `scripts/fetch-data.sh` puts it (`data/downloads/` in the repository).
fn real(rel: &str) -> InputFile {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data/downloads")
        .join(rel);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-data.sh (make test does)",
        path.display()
    );
    InputFile::from_path(path)
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = std::time::Instant::now();
    let out = f();
    eprintln!("{what}: {:.2?}", t.elapsed());
    out
}

#[test]
fn real_files() {
    let s = timed("ICD-10-CM", || {
        run(
            Format::Icd10cmXml,
            "ICD10CM",
            &[real("icd10cm/icd10c-tabular-April-1-2026.xml")],
        )
        .unwrap()
    });
    let diags = s.concepts.keys().filter(|k| !k.contains('-')).count();
    let inclusions: usize = s
        .concepts
        .values()
        .map(|c| terms(c, TermKind::Inclusion).len())
        .sum();
    eprintln!(
        "ICD-10-CM: {} concepts ({diags} without '-'), {} relations, {inclusions} inclusion terms",
        s.concepts.len(),
        s.relations.len()
    );
    // The code list shipped beside the tabular file: every code, with its billable flag.
    let (codes, billable) = check_code_list(&s, &real("icd10cm/code-list-April-2026.txt").path);
    eprintln!("ICD-10-CM code list: {codes} codes, {billable} billable");
    assert_eq!((codes, billable), (98_186, 74_719));
    assert_eq!(s.concepts.len(), 98_186 + 22 + 258);
    assert_eq!(inclusions, 13_426);
    assert_eq!(parents(&s, "E11.9"), vec!["E11"]);
    assert_eq!(parents(&s, "S72.001A"), vec!["S72.001"]);
    assert_eq!(
        s.concepts["T36.0X1A"].preferred_term,
        "Poisoning by penicillins, accidental (unintentional), initial encounter"
    );

    let s = timed("ICD-9-CM", || {
        run(
            Format::Icd9cmTxt,
            "ICD9CM",
            &[
                real("icd9cm/txt/CMS32_DESC_LONG_DX.txt"),
                real("icd9cm/txt/CMS32_DESC_SHORT_DX.txt"),
                real("icd9cm/csv/icd9toicd10cmgem.csv"),
                real("icd9cm/csv/icd10cmtoicd9gem.csv"),
            ],
        )
        .unwrap()
    });
    eprintln!(
        "ICD-9-CM: {} concepts, {} relations, {} mappings",
        s.concepts.len(),
        s.relations.len(),
        s.mappings.len()
    );
    assert_eq!(s.concepts.len(), 14_567);
    assert!(s.concepts["041.3"]
        .preferred_term
        .starts_with("Friedländer"));
    assert!(has_mapping(
        &s,
        ("ICD9CM", "250.00"),
        ("ICD10CM", "E11.9"),
        "gem_approximate"
    ));
    assert_eq!(s.mappings.len(), 101_656);
    // The CMS text GEM layout, as written by scripts/fetch-data.sh, gives the same mappings.
    let gems = [
        real("icd9cm/txt/2015_I9gem.txt"),
        real("icd9cm/txt/2015_I10gem.txt"),
    ];
    let t = timed("ICD-9-CM GEM txt", || {
        run(Format::Icd9cmTxt, "ICD9CM", &gems).unwrap()
    });
    assert_eq!(t.mappings.len(), s.mappings.len());

    let s = timed("PheCODE 1.2", || {
        run(
            Format::PhecodeCsv,
            "PHECODE",
            &[real("phecode/v1.2/phecode12.csv")],
        )
        .unwrap()
    });
    eprintln!(
        "PheCODE 1.2: {} concepts, {} relations, {} mappings",
        s.concepts.len(),
        s.relations.len(),
        s.mappings.len()
    );
    assert_eq!(s.concepts.len(), 1_817);
    // 73,520 distinct raw rows; 100 differ only in case (T52.2X1 / T52.2x1) and are upper-cased.
    assert_eq!(s.mappings.len(), 73_420);
    assert!(has_mapping(
        &s,
        ("ICD10CM", "E11.9"),
        ("PHECODE", "250.2"),
        "maps_to"
    ));
    let s = timed("phecodeX", || {
        run(
            Format::PhecodeCsv,
            "PHECODEX",
            &[real("phecode/X/phecodeX.csv")],
        )
        .unwrap()
    });
    eprintln!(
        "phecodeX: {} concepts, {} relations, {} mappings",
        s.concepts.len(),
        s.relations.len(),
        s.mappings.len()
    );
    assert_eq!(s.concepts.len(), 3_612);

    let s = timed("HPO", || {
        run(Format::Obo, "HPO", &[real("hpo/hp.obo")]).unwrap()
    });
    let synonyms: usize = s.concepts.values().map(|c| c.terms.len() - 1).sum();
    eprintln!(
        "HPO: {} concepts ({} obsolete), {synonyms} synonyms, {} relations, {} xrefs",
        s.concepts.len(),
        s.concepts.values().filter(|c| !c.active).count(),
        s.relations.len(),
        s.mappings.len()
    );
    assert_eq!(s.concepts.len(), 19_484);
    assert!(has_mapping(
        &s,
        ("HPO", "HP:0001250"),
        ("UMLS", "C0036572"),
        "xref"
    ));
    assert_eq!(
        ancestors(&s, "HP:0001250").last().map(String::as_str),
        Some("HP:0000001")
    );
}
