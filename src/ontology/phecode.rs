//! Loader for PheCODE CSVs (`phecode-csv`, system `PHECODE` by default, or whatever the caller
//! passes, e.g. `PHECODEX` for phecodeX maps).
//!
//! # Files (recognised by their header; names do not matter)
//! * definitions: `phecode`, `phenotype` [, `phecode_exclude_range`, `sex`, `rollup`, `leaf`,
//!   `category_number`, `category`] (PheWAS catalog `phecode_definitions1.2.csv`).
//! * maps: a phecode column (`phecode` / `PheCode`) and an ICD column (`ICD`, `ICD9`, `ICD10`,
//!   `ICD10CM`, any case), optionally a `flag` column (9 = ICD-9-CM, 10 = ICD-10-CM) and a name
//!   column (`phecode_string` / `phenotype`) with a category (`phecode_category` / `category`):
//!   `Phecode_map_v1_2_icd9_icd10cm.csv`, `phecode_icd9_rolled.csv`, and the pyphewas files
//!   `phecode12.csv`, `phecodeX.csv`, `phecodeX_WHO.csv`.
//!
//! # What is loaded
//! * each phecode → a concept (code as published, leading zeros kept: `008`; numeric codes with a
//!   short integer part are padded back to 3 digits, as spreadsheets drop them), preferred =
//!   phenotype / phecode_string, category → semantic type, other columns → attributes.
//! * hierarchy from the decimal structure (`250.23` → `250.2` → `250`; `ID_001.1` → `ID_001`),
//!   to the nearest ancestor present in the release (the set of phecodes, a few thousand, is kept
//!   in memory).
//! * map rows → mappings `{ICD10CM|ICD9CM, code with dot}` → `{system, phecode}`, relation
//!   `maps_to`, source = file name. The ICD system comes from the flag column, else from the
//!   column's name. Block ranges (`A00-A09`, used by `phecode12.csv`) are kept as they are: they
//!   are the ICD-10-CM loader's section codes. `phecode12.csv` repeats each row once per rolled-up ancestor
//!   (`phecode_unrolled`): we map to `phecode` only and drop consecutive duplicate rows.

use super::input::{self, CsvInput};
use super::{icd10cm, icd9cm, InputFile, LoadError, LoadOptions, Sink};
use crate::domain::model::{Concept, ConceptRef, Mapping, Relation};
use std::collections::BTreeSet;

/// Normalise a phecode: trim, and pad a numeric integer part to 3 digits (`8.5` → `008.5`).
pub fn normalize(code: &str) -> String {
    let c = code.trim();
    let int = c.split('.').next().unwrap_or("");
    if !int.is_empty()
        && int.len() < 3
        && c.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && c.matches('.').count() <= 1
    {
        format!("{}{c}", "0".repeat(3 - int.len()))
    } else {
        c.to_string()
    }
}

/// The parent candidates of a phecode, nearest first (`250.23` → `250.2`, `250`).
fn ancestors(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut c = code.to_string();
    while c.contains('.') {
        c.pop();
        if c.ends_with('.') {
            c.pop();
        }
        out.push(c.clone());
    }
    out
}

/// Load PheCODE definitions and/or ICD→phecode maps from `files` into `sink`.
pub fn load(files: &[InputFile], opts: &LoadOptions, sink: &mut dyn Sink) -> Result<(), LoadError> {
    let mut codes = BTreeSet::new();
    let mut done = 0;
    for f in files {
        done += load_file(f, opts, &mut codes, done, sink)?;
    }
    for code in &codes {
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

fn first_of(csv: &CsvInput, names: &[&str]) -> Option<(usize, String)> {
    names
        .iter()
        .find_map(|n| csv.optional(n).map(|i| (i, n.to_ascii_uppercase())))
}

fn load_file(
    f: &InputFile,
    opts: &LoadOptions,
    codes: &mut BTreeSet<String>,
    done: u64,
    sink: &mut dyn Sink,
) -> Result<u64, LoadError> {
    let mut csv = CsvInput::open(f)?;
    let Some((i_phe, _)) = first_of(&csv, &["phecode"]) else {
        return Err(LoadError::Files(format!(
            "{}: not a PheCODE file (no 'phecode' column in the header)",
            f.name
        )));
    };
    let icd = first_of(
        &csv,
        &["ICD", "ICD9", "ICD10", "ICD10CM", "ICD9CM", "ICD_CODE"],
    );
    let i_flag = csv.optional("flag");
    let i_name = first_of(&csv, &["phecode_string", "phenotype"]).map(|x| x.0);
    if icd.is_none() && i_name.is_none() {
        return Err(LoadError::Files(format!(
            "{}: not a PheCODE file (neither an ICD column nor a phenotype column)",
            f.name
        )));
    }
    let i_cat = first_of(&csv, &["phecode_category", "category"]).map(|x| x.0);
    // Attribute columns kept on definition rows.
    let attr_cols: Vec<(usize, &'static str)> = [
        ("phecode_exclude_range", "exclude_range"),
        ("exclude_range", "exclude_range"),
        ("sex", "sex"),
        ("rollup", "rollup"),
        ("leaf", "leaf"),
        ("category_number", "category_number"),
        ("category_num", "category_number"),
    ]
    .iter()
    .filter_map(|(col, key)| csv.optional(col).map(|i| (i, *key)))
    .collect();
    let source = f.name.clone();
    let mut last_concept: Option<String> = None;
    let mut last_map: Option<(String, String, String)> = None;
    let mut rows = 0u64;
    let mut rec = csv::StringRecord::new();
    while csv.read_into(&mut rec)? {
        rows += 1;
        let phecode = normalize(rec.get(i_phe).unwrap_or(""));
        if phecode.is_empty() {
            return Err(csv.error("column phecode: empty value"));
        }
        if last_concept.as_deref() != Some(phecode.as_str()) {
            if let Some(i) = i_name {
                let name = rec.get(i).unwrap_or("").trim();
                if name.is_empty() {
                    return Err(csv.error(format!("phecode {phecode} has no name")));
                }
                let mut c = Concept::new(phecode.clone(), name);
                if let Some(cat) = i_cat.and_then(|i| rec.get(i)).map(str::trim) {
                    if !cat.is_empty() {
                        c.semantic_types.push(cat.to_string());
                    }
                }
                for (i, key) in &attr_cols {
                    let v = rec.get(*i).unwrap_or("").trim();
                    if !v.is_empty() {
                        c.attributes.insert(key.to_string(), v.to_string());
                    }
                }
                sink.concept(c)?;
            }
            codes.insert(phecode.clone());
            last_concept = Some(phecode.clone());
        }
        if let Some((i_icd, col)) = &icd {
            let raw = rec.get(*i_icd).unwrap_or("").trim();
            if raw.is_empty() {
                return Err(csv.error(format!("column {col}: empty ICD code")));
            }
            let system = match i_flag.and_then(|i| rec.get(i)).map(str::trim) {
                Some("9") => "ICD9CM",
                Some("10") => "ICD10CM",
                Some(v) => {
                    return Err(csv.error(format!("column flag: '{v}' is neither 9 nor 10")));
                }
                None if col.contains("10") => "ICD10CM",
                None => "ICD9CM",
            };
            if !raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
            {
                return Err(csv.error(format!("column {col}: '{raw}' is not an ICD code")));
            }
            let code = if system == "ICD9CM" {
                icd9cm::with_dot(raw)
            } else {
                icd10cm::with_dot(raw)
            };
            let key = (system.to_string(), code, phecode.clone());
            if last_map.as_ref() != Some(&key) {
                sink.mapping(Mapping {
                    from: ConceptRef::new(system, key.1.clone()),
                    to: ConceptRef::new(opts.system.clone(), phecode),
                    relation: "maps_to".into(),
                    source: source.clone(),
                })?;
                last_map = Some(key);
            }
        }
        if rows.is_multiple_of(input::PROGRESS_EVERY) {
            sink.progress(done + csv.bytes_read())?;
        }
    }
    if rows == 0 {
        return Err(LoadError::malformed(
            &f.name,
            2,
            "no data rows after the header",
        ));
    }
    sink.progress(done + csv.bytes_read())?;
    Ok(csv.bytes_read())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalize_and_ancestors() {
        assert_eq!(normalize("008"), "008");
        assert_eq!(normalize("8.5"), "008.5");
        assert_eq!(normalize("250.23"), "250.23");
        assert_eq!(normalize("ID_001.1"), "ID_001.1");
        assert_eq!(ancestors("250.23"), vec!["250.2", "250"]);
        assert_eq!(ancestors("ID_001.1"), vec!["ID_001"]);
        assert!(ancestors("250").is_empty());
    }
}
