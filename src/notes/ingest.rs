//! Note loaders: `notes-jsonl`, the MIMIC-III layout (`NOTEEVENTS.csv` joined with
//! `DIAGNOSES_ICD.csv` on `HADM_ID`), streamed into a [`NoteBatch`] with the ontology loaders'
//! rules: the first problem aborts the load with `file:line: message` and nothing becomes
//! visible ([`crate::store::notes`] stages and commits atomically). The CodiEsp layout
//! (`codiesp`) is in [`super::codiesp`].
//!
//! ## notes-jsonl
//! One JSON object per line: `{"id", "text", "codes": [{"system", "code"}], "meta": {...}}`;
//! `id` and `text` are required, `codes` and `meta` optional, blank lines skipped, other fields
//! ignored.
//!
//! ## mimic-notes-csv
//! `NOTEEVENTS.csv` (`ROW_ID`, `HADM_ID`, `SUBJECT_ID`, `CHARTDATE`, `CATEGORY`, `DESCRIPTION`,
//! `ISERROR`, `TEXT`, ...) and `DIAGNOSES_ICD.csv` (`HADM_ID`, `SEQ_NUM`, `ICD9_CODE`). The
//! diagnoses file is read first into a map from admission to its codes in `SEQ_NUM` order
//! (MIMIC-III's is 651k rows, ~20 MB); the notes file, the large one (4 GB), is then streamed.
//! A note's id is `ROW_ID`; its codes are its admission's, ICD-9 codes written without dots
//! (`4019`, `V4501`, `E8889`) normalised to the dotted form the ICD9CM system uses (`401.9`,
//! `V45.01`, `E888.9`). Rows flagged `ISERROR=1` are skipped (counted in the warnings); notes
//! without an admission get no codes.

use crate::domain::model::ConceptRef;
use crate::ontology::input::{CsvInput, LineReader, PROGRESS_EVERY};
use crate::ontology::{Format, InputFile, LoadError};
use crate::store::notes::{Note, NoteBatch};
use crate::util::progress::Progress;
use serde::Deserialize;
use std::collections::HashMap;

use super::record::insert_error;
pub use super::record::{
    normalize_code, validate_note, NotesLoadResult, MAX_CODES, MAX_CODE_CHARS, MAX_TEXT_BYTES,
};

#[derive(Deserialize)]
struct JsonCode {
    system: String,
    code: String,
}

#[derive(Deserialize)]
struct JsonNote {
    id: Option<serde_json::Value>,
    text: Option<String>,
    #[serde(default)]
    codes: Vec<JsonCode>,
    #[serde(default)]
    meta: Option<serde_json::Value>,
}

/// Load notes of `format` from `files` into `batch`; `known` checks gold ICD-10-CM codes
/// against the store where a format reports the ones it lacks (`codiesp`).
pub fn load(
    format: Format,
    files: &[InputFile],
    batch: &mut NoteBatch<'_>,
    progress: &Progress,
    known: super::codiesp::CodeCheck<'_>,
) -> Result<NotesLoadResult, LoadError> {
    if files.is_empty() {
        return Err(LoadError::Files("no input files given".into()));
    }
    let total = crate::ontology::input::total_size(files);
    progress.phase("parsing notes", total);
    match format {
        Format::NotesJsonl => {
            let mut r = NotesLoadResult::default();
            let mut before = 0;
            for f in files {
                before += load_jsonl(f, batch, progress, before, &mut r)?;
            }
            Ok(r)
        }
        Format::MimicNotesCsv => load_mimic(files, batch, progress),
        Format::Codiesp => super::codiesp::load(files, batch, progress, known),
        other => Err(LoadError::Files(format!(
            "format {other} is a terminology format, not notes"
        ))),
    }
}

fn load_jsonl(
    file: &InputFile,
    batch: &mut NoteBatch<'_>,
    progress: &Progress,
    bytes_before: u64,
    r: &mut NotesLoadResult,
) -> Result<u64, LoadError> {
    let mut lines = LineReader::open(file)?;
    while let Some(line) = lines.next_line()? {
        if line.trim().is_empty() {
            continue;
        }
        let n: JsonNote =
            serde_json::from_str(line).map_err(|e| lines.error(format!("invalid JSON: {e}")))?;
        let id = match n.id {
            Some(serde_json::Value::String(s)) => s,
            Some(serde_json::Value::Number(x)) => x.to_string(),
            _ => return Err(lines.error("missing or invalid field 'id' (string or number)")),
        };
        let text = n.text.ok_or_else(|| lines.error("missing field 'text'"))?;
        validate_note(&id, &text).map_err(|m| lines.error(m))?;
        if n.codes.len() > MAX_CODES {
            return Err(lines.error(format!("more than {MAX_CODES} codes")));
        }
        let mut codes = Vec::with_capacity(n.codes.len());
        for c in &n.codes {
            codes.push(normalize_code(&c.system, &c.code).map_err(|m| lines.error(m))?);
        }
        let meta = match n.meta {
            None | Some(serde_json::Value::Null) => "{}".to_string(),
            Some(v @ serde_json::Value::Object(_)) => v.to_string(),
            Some(_) => return Err(lines.error("field 'meta' must be an object")),
        };
        r.codes += codes.len() as u64;
        let line_no = lines.line_no();
        batch
            .add(Note {
                id,
                text,
                codes,
                meta_json: meta,
            })
            .map_err(|e| insert_error(lines.name(), line_no, e))?;
        r.notes += 1;
        if r.notes.is_multiple_of(PROGRESS_EVERY / 8) {
            progress.set_done(bytes_before + lines.bytes_read());
            if progress.is_cancelled() {
                return Err(LoadError::Cancelled);
            }
        }
    }
    Ok(lines.bytes_read())
}

fn find<'a>(files: &'a [InputFile], stem: &str) -> Option<&'a InputFile> {
    files.iter().find(|f| {
        let u = f.upper_name();
        u == format!("{stem}.CSV") || u.ends_with(&format!("-{stem}.CSV"))
    })
}

fn load_mimic(
    files: &[InputFile],
    batch: &mut NoteBatch<'_>,
    progress: &Progress,
) -> Result<NotesLoadResult, LoadError> {
    let notes = find(files, "NOTEEVENTS").ok_or_else(|| {
        LoadError::Files("mimic-notes-csv needs NOTEEVENTS.csv (and DIAGNOSES_ICD.csv)".into())
    })?;
    let mut r = NotesLoadResult::default();
    let mut dx: HashMap<String, Vec<(i64, String)>> = HashMap::new();
    match find(files, "DIAGNOSES_ICD") {
        Some(f) => {
            let mut csv = CsvInput::open(f)?;
            let (h, s, c) = (
                csv.require("HADM_ID")?,
                csv.require("SEQ_NUM")?,
                csv.require("ICD9_CODE")?,
            );
            let mut rec = csv::StringRecord::new();
            while csv.read_into(&mut rec)? {
                let hadm = rec[h].trim();
                let code = rec[c].trim();
                if hadm.is_empty() || code.is_empty() {
                    continue; // MIMIC-III has a few admissions with an empty code
                }
                let seq: i64 = match rec[s].trim() {
                    "" => i64::MAX,
                    x => x
                        .parse()
                        .map_err(|_| csv.error(format!("SEQ_NUM {x:?} is not a number")))?,
                };
                let cr = normalize_code("ICD9CM", code).map_err(|m| csv.error(m))?;
                dx.entry(hadm.to_string()).or_default().push((seq, cr.code));
            }
            for v in dx.values_mut() {
                v.sort();
                v.dedup_by(|a, b| a.1 == b.1);
            }
        }
        None => r
            .warnings
            .push("no DIAGNOSES_ICD.csv given: notes are stored without codes".into()),
    }
    let mut csv = CsvInput::open(notes)?;
    let row_id = csv.require("ROW_ID")?;
    let text_col = csv.require("TEXT")?;
    let hadm_col = csv.optional("HADM_ID");
    let err_col = csv.optional("ISERROR");
    let meta_cols: Vec<(String, usize)> = [
        "SUBJECT_ID",
        "HADM_ID",
        "CHARTDATE",
        "CHARTTIME",
        "CATEGORY",
        "DESCRIPTION",
    ]
    .iter()
    .filter_map(|c| csv.optional(c).map(|i| (c.to_ascii_lowercase(), i)))
    .collect();
    let mut rec = csv::StringRecord::new();
    let mut skipped = 0u64;
    while csv.read_into(&mut rec)? {
        if err_col.is_some_and(|i| rec[i].trim() == "1") {
            skipped += 1;
            continue;
        }
        let id = rec[row_id].trim().to_string();
        let text = rec[text_col].to_string();
        validate_note(&id, &text).map_err(|m| csv.error(m))?;
        let codes: Vec<ConceptRef> = hadm_col
            .and_then(|i| dx.get(rec[i].trim()))
            .map(|v| {
                v.iter()
                    .map(|(_, c)| ConceptRef::new("ICD9CM", c.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let mut meta = serde_json::Map::new();
        for (name, i) in &meta_cols {
            let v = rec[*i].trim();
            if !v.is_empty() {
                let key = match name.as_str() {
                    "subject_id" => "patient",
                    "chartdate" => "time",
                    other => other,
                };
                meta.insert(key.to_string(), serde_json::Value::String(v.to_string()));
            }
        }
        r.codes += codes.len() as u64;
        let line = csv.line();
        batch
            .add(Note {
                id,
                text,
                codes,
                meta_json: serde_json::Value::Object(meta).to_string(),
            })
            .map_err(|e| insert_error(csv.name(), line, e))?;
        r.notes += 1;
        if r.notes.is_multiple_of(256) {
            progress.set_done(csv.bytes_read());
            if progress.is_cancelled() {
                return Err(LoadError::Cancelled);
            }
        }
    }
    if skipped > 0 {
        r.warnings
            .push(format!("{skipped} rows flagged ISERROR=1 were skipped"));
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_normalised() {
        let c = |s, c| normalize_code(s, c).unwrap().code;
        assert_eq!(c("icd9cm", "4019"), "401.9");
        assert_eq!(c("ICD9CM", "V4501"), "V45.01");
        assert_eq!(c("ICD9CM", "E8889"), "E888.9");
        assert_eq!(c("ICD9CM", "038"), "038");
        assert_eq!(c("ICD10CM", "E119"), "E11.9");
        assert_eq!(c("HPO", "HP:0001250"), "HP:0001250");
        assert!(normalize_code("bad system!", "x").is_err());
        assert!(normalize_code("ICD10CM", "").is_err());
    }
}
