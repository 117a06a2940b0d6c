//! Loader for the LOINC table in CSV form (format `loinc-csv`, system `LOINC`).
//!
//! # Format
//! `Loinc.csv` (the full LOINC table, or the LOINC Table Core `LoincTableCore.csv`) is a
//! comma-separated UTF-8 file with a header row; every field is double-quoted and quoted fields
//! may span lines. Columns are found by header name, case-insensitively, so their order and any
//! extra columns (the full table has ~40) do not matter. Required columns: `LOINC_NUM`,
//! `COMPONENT`, `PROPERTY`, `TIME_ASPCT`, `SYSTEM`, `SCALE_TYP`, `METHOD_TYP`,
//! `LONG_COMMON_NAME`. Optional: `SHORTNAME`, `CONSUMER_NAME`, `RELATEDNAMES2`, `STATUS`, `CLASS`,
//! `CLASSTYPE`, `DisplayName`.
//!
//! `MultiAxialHierarchy.csv` (optional) has `PATH_TO_ROOT, SEQUENCE, IMMEDIATE_PARENT, CODE,
//! CODE_TEXT`: one row per node occurrence in the multi-axial tree of LOINC parts (`LP…`) with
//! LOINC terms as leaves.
//!
//! # What is produced
//! * One [`Concept`] per `Loinc.csv` row: preferred name `LONG_COMMON_NAME` (falling back to
//!   `SHORTNAME`, then `COMPONENT`), `SHORTNAME` → `short`, `CONSUMER_NAME` → `consumer`,
//!   `DisplayName` → `synonym`, each `;`-separated `RELATEDNAMES2` entry → `related` (trimmed,
//!   deduplicated, at most [`MAX_RELATED`] per concept). The six axes are attributes
//!   (`component`, `property`, `time_aspect`, `system`, `scale`, `method`), as are `status` and
//!   `class_type`; `CLASS` is the semantic type. `STATUS=DEPRECATED` makes the concept inactive
//!   (DISCOURAGED concepts stay active; their status is kept).
//! * From the hierarchy: a concept for every `LP` part code (preferred name `CODE_TEXT`,
//!   attribute `kind=part`; a part reached by several paths is emitted once per row and merged by
//!   the sink) and `CODE is_a IMMEDIATE_PARENT` for every row with a parent. Repeated rows of one
//!   edge are collapsed when consecutive and otherwise by the store.
//!
//! Both files are streamed record by record; nothing but the current record is held in memory.
//! Errors name the file and the line where the offending record starts.

use super::input::{CsvInput, PROGRESS_EVERY};
use super::{InputFile, LoadError, LoadOptions, Sink};
use crate::domain::model::{Concept, Relation, Term, TermKind};

/// The most `RELATEDNAMES2` entries kept per concept (real rows list up to several hundred).
pub const MAX_RELATED: usize = 50;

/// Other files of a LOINC distribution that are accepted and ignored (upper-cased names).
const IGNORED_FILES: &[&str] = &[
    "MAPTO.CSV",
    "SOURCEORGANIZATION.CSV",
    "PART.CSV",
    "LOINCPARTLINK_PRIMARY.CSV",
    "LOINCPARTLINK_SUPPLEMENTARY.CSV",
    "PANELSANDFORMS.CSV",
    "ANSWERLIST.CSV",
    "LOINCANSWERLISTLINK.CSV",
    "CONSUMERNAME.CSV",
    "LINGUISTICVARIANTS.CSV",
    "COMPONENTHIERARCHYBYSYSTEM.CSV",
    "PARTRELATEDCODEMAPPING.CSV",
];

struct Columns {
    num: usize,
    axes: [(usize, &'static str); 6],
    long_name: usize,
    short: Option<usize>,
    consumer: Option<usize>,
    related: Option<usize>,
    status: Option<usize>,
    class: Option<usize>,
    class_type: Option<usize>,
    display: Option<usize>,
}

impl Columns {
    fn find(csv: &CsvInput) -> Result<Self, LoadError> {
        Ok(Self {
            num: csv.require("LOINC_NUM")?,
            axes: [
                (csv.require("COMPONENT")?, "component"),
                (csv.require("PROPERTY")?, "property"),
                (csv.require("TIME_ASPCT")?, "time_aspect"),
                (csv.require("SYSTEM")?, "system"),
                (csv.require("SCALE_TYP")?, "scale"),
                (csv.require("METHOD_TYP")?, "method"),
            ],
            long_name: csv.require("LONG_COMMON_NAME")?,
            short: csv.optional("SHORTNAME"),
            consumer: csv.optional("CONSUMER_NAME"),
            related: csv.optional("RELATEDNAMES2"),
            status: csv.optional("STATUS"),
            class: csv.optional("CLASS"),
            class_type: csv.optional("CLASSTYPE"),
            display: csv.optional("DISPLAYNAME"),
        })
    }
}

/// Field `i` of a record, trimmed; empty when the column is absent.
fn field(rec: &csv::StringRecord, i: Option<usize>) -> &str {
    i.and_then(|i| rec.get(i)).unwrap_or("").trim()
}

/// Build the concept of one `Loinc.csv` record.
fn build_concept(rec: &csv::StringRecord, cols: &Columns, code: &str) -> Concept {
    let get = |i: usize| field(rec, Some(i));
    let short = field(rec, cols.short);
    let preferred = [get(cols.long_name), short, get(cols.axes[0].0)]
        .into_iter()
        .find(|s| !s.is_empty())
        .unwrap_or(code);
    let mut c = Concept::new(code, preferred);
    c.add_term(Term::new(short, TermKind::Short));
    c.add_term(Term::new(field(rec, cols.consumer), TermKind::Consumer));
    c.add_term(Term::new(field(rec, cols.display), TermKind::Synonym));
    let mut related = 0;
    for name in field(rec, cols.related).split(';').map(str::trim) {
        if related == MAX_RELATED {
            break;
        }
        if name.is_empty() || c.terms.iter().any(|t| t.text == name) {
            continue;
        }
        c.terms.push(Term::new(name, TermKind::Related));
        related += 1;
    }
    for (i, key) in cols.axes {
        let v = get(i);
        if !v.is_empty() {
            c.attributes.insert(key.to_string(), v.to_string());
        }
    }
    let status = field(rec, cols.status);
    if !status.is_empty() {
        c.attributes.insert("status".into(), status.to_string());
        c.active = !status.eq_ignore_ascii_case("DEPRECATED");
    }
    let class_type = field(rec, cols.class_type);
    if !class_type.is_empty() {
        c.attributes
            .insert("class_type".into(), class_type.to_string());
    }
    let class = field(rec, cols.class);
    if !class.is_empty() {
        c.semantic_types.push(class.to_string());
    }
    c
}

fn classify(
    files: &[InputFile],
) -> Result<(&InputFile, Option<&InputFile>, Vec<String>), LoadError> {
    let (mut table, mut hierarchy) = (None, None);
    let (mut ignored, mut unknown) = (Vec::new(), Vec::new());
    for f in files {
        let upper = f.upper_name();
        let slot = match upper.as_str() {
            "LOINC.CSV" | "LOINCTABLECORE.CSV" => &mut table,
            "MULTIAXIALHIERARCHY.CSV" => &mut hierarchy,
            u if IGNORED_FILES.contains(&u) => {
                ignored.push(f.name.clone());
                continue;
            }
            _ => {
                unknown.push(f.name.clone());
                continue;
            }
        };
        if slot.replace(f).is_some() {
            return Err(LoadError::Files(format!(
                "more than one LOINC table or hierarchy file given ({})",
                f.name
            )));
        }
    }
    if !unknown.is_empty() {
        return Err(LoadError::Files(format!(
            "not a LOINC CSV file: {} (expected Loinc.csv, MultiAxialHierarchy.csv)",
            unknown.join(", ")
        )));
    }
    let table = table.ok_or_else(|| {
        LoadError::Files("LOINC release is missing required file Loinc.csv".into())
    })?;
    Ok((table, hierarchy, ignored))
}

/// Load a LOINC CSV release from `files` into `sink` (see the module documentation).
pub fn load(
    files: &[InputFile],
    _opts: &LoadOptions,
    sink: &mut dyn Sink,
) -> Result<(), LoadError> {
    let (table, hierarchy, ignored) = classify(files)?;
    let done = load_table(table, sink)?;
    if let Some(h) = hierarchy {
        load_hierarchy(h, done, sink)?;
    }
    if !ignored.is_empty() {
        sink.warning(format!(
            "ignored LOINC files not used by this loader: {}",
            ignored.join(", ")
        ));
    }
    Ok(())
}

fn load_table(file: &InputFile, sink: &mut dyn Sink) -> Result<u64, LoadError> {
    let mut csv = CsvInput::open(file)?;
    let cols = Columns::find(&csv)?;
    let mut rows = 0u64;
    while let Some(rec) = csv.next_record()? {
        let code = field(rec, Some(cols.num));
        if code.is_empty() {
            return Err(csv.error("empty LOINC_NUM"));
        }
        let concept = build_concept(rec, &cols, code);
        sink.concept(concept)?;
        rows += 1;
        if rows.is_multiple_of(PROGRESS_EVERY) {
            sink.progress(csv.bytes_read())?;
        }
    }
    if rows == 0 {
        return Err(LoadError::malformed(
            &file.name,
            1,
            "no LOINC rows after the header",
        ));
    }
    sink.progress(csv.bytes_read())?;
    Ok(csv.bytes_read())
}

fn load_hierarchy(file: &InputFile, base: u64, sink: &mut dyn Sink) -> Result<(), LoadError> {
    let mut csv = CsvInput::open(file)?;
    let code_col = csv.require("CODE")?;
    let parent_col = csv.require("IMMEDIATE_PARENT")?;
    let text_col = csv.require("CODE_TEXT")?;
    csv.require("PATH_TO_ROOT")?;
    let mut rows = 0u64;
    let mut last_edge = (String::new(), String::new());
    while let Some(rec) = csv.next_record()? {
        let code = field(rec, Some(code_col)).to_string();
        let parent = field(rec, Some(parent_col)).to_string();
        let text = field(rec, Some(text_col));
        if code.is_empty() {
            return Err(csv.error("empty CODE"));
        }
        if code.starts_with("LP") {
            let mut part = Concept::new(code.clone(), if text.is_empty() { &code } else { text });
            part.attributes.insert("kind".into(), "part".into());
            sink.concept(part)?;
        }
        if !parent.is_empty() && parent != code && (&code, &parent) != (&last_edge.0, &last_edge.1)
        {
            sink.relation(Relation {
                from: code.clone(),
                rel: "is_a".into(),
                to: parent.clone(),
            })?;
            last_edge = (code, parent);
        }
        rows += 1;
        if rows.is_multiple_of(PROGRESS_EVERY) {
            sink.progress(base + csv.bytes_read())?;
        }
    }
    sink.progress(base + csv.bytes_read())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn related_names_are_trimmed_deduped_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("Loinc.csv");
        let many: Vec<String> = (0..120).map(|i| format!("name{i}")).collect();
        let content = format!(
            "\"LOINC_NUM\",\"COMPONENT\",\"PROPERTY\",\"TIME_ASPCT\",\"SYSTEM\",\"SCALE_TYP\",\
             \"METHOD_TYP\",\"LONG_COMMON_NAME\",\"RELATEDNAMES2\",\"STATUS\"\n\
             \"2345-7\",\"Glucose\",\"MCnc\",\"Pt\",\"Ser/Plas\",\"Qn\",\"\",\"Glucose SerPl-mCnc\",\
             \" Gluc ; ;Gluc;{}\",\"DEPRECATED\"\n",
            many.join(";")
        );
        std::fs::write(&p, content).unwrap();
        let mut sink = crate::ontology::MemorySink::default();
        load(
            &[InputFile::from_path(&p)],
            &LoadOptions::for_system("LOINC"),
            &mut sink,
        )
        .unwrap();
        let c = &sink.concepts["2345-7"];
        let related: Vec<_> = c
            .terms
            .iter()
            .filter(|t| t.kind == TermKind::Related)
            .collect();
        assert_eq!(related.len(), MAX_RELATED);
        assert_eq!(related[0].text, "Gluc");
        assert_eq!(related[1].text, "name0");
        assert!(!c.active);
        assert!(!c.attributes.contains_key("method"));
    }
}
