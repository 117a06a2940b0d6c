//! The CodiEsp layout (CLEF eHealth 2020, diagnosis track CodiEsp-D) as a notes format,
//! `codiesp`.
//!
//! A split folder holds `{split}D.tsv` (no header; `articleID<TAB>code` per line, codes in
//! lower case with their dot: `n44.8`, `z20.818`) and `text_files_en/{articleID}.txt` (the
//! English machine translation of the Spanish case report; `text_files/` holds the Spanish
//! originals). Inputs are the `*D.tsv` files and the `.txt` files, or folders holding them
//! (a split folder, or a `text_files_en` folder): `ontovec ingest --format codiesp
//! data/codiesp/train data/codiesp/dev`. Several splits load at once.
//!
//! Every text file becomes a note with the file's stem as id and meta
//! `{"corpus": "codiesp", "split": "train|dev|test", "language": "en|es"}`; its codes are the
//! TSV rows of its id in file order, upper-cased with duplicates dropped, as `ICD10CM` codes.
//! The NoteContrast trainer reads `meta.split` (CodiEsp's own train/dev split instead of a
//! hashed one). All-or-nothing like the other loaders: a malformed TSV row, a text file that
//! is not UTF-8 or is empty, or a TSV document without a text file aborts the load with
//! `file:line: message`. Codes the store's ICD-10-CM lacks are kept on the note (they are the
//! coders' gold) and counted in the load's warnings by reason, never an error.

use super::record::{insert_error, normalize_code, validate_note, NotesLoadResult, MAX_CODES};
use crate::domain::model::ConceptRef;
use crate::ontology::input::LineReader;
use crate::ontology::{InputFile, LoadError};
use crate::store::notes::{Note, NoteBatch};
use crate::util::progress::Progress;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;

/// How a load checks codes against the store: `None` when the store has no ICD-10-CM.
pub type CodeCheck<'a> = Option<&'a dyn Fn(&ConceptRef) -> bool>;

/// One document's gold codes, where they came from, and its split.
struct Gold {
    split: String,
    codes: Vec<ConceptRef>,
    file: String,
    line: u64,
}

/// The split named by a `{split}D.tsv` file name (`trainD.tsv` → `train`).
fn split_of(name: &str) -> Option<String> {
    let stem = name
        .strip_suffix(".tsv")
        .or_else(|| name.strip_suffix(".TSV"))?;
    let split = stem.strip_suffix('D')?;
    (!split.is_empty()).then(|| split.to_ascii_lowercase())
}

/// The inputs with folders expanded to the `*D.tsv` and `text_files_en/*.txt` (or `*.txt`)
/// files they hold, sorted by name within a folder.
fn expand(files: &[InputFile]) -> Result<Vec<InputFile>, LoadError> {
    let mut out = Vec::new();
    for f in files {
        if !f.path.is_dir() {
            out.push(f.clone());
            continue;
        }
        let list = |dir: &Path| -> Result<Vec<InputFile>, LoadError> {
            let mut v: Vec<InputFile> = std::fs::read_dir(dir)
                .map_err(|e| LoadError::Io {
                    file: dir.display().to_string(),
                    source: e,
                })?
                .filter_map(|e| e.ok())
                .map(|e| InputFile::from_path(e.path()))
                .filter(|f| f.path.is_file())
                .collect();
            v.sort_by(|a, b| a.name.cmp(&b.name));
            Ok(v)
        };
        let en = f.path.join("text_files_en");
        for g in list(&f.path)? {
            if split_of(&g.name).is_some() || g.name.ends_with(".txt") {
                out.push(g);
            }
        }
        if en.is_dir() {
            out.extend(list(&en)?.into_iter().filter(|g| g.name.ends_with(".txt")));
        }
    }
    Ok(out)
}

/// Why a gold code is not in the store, for the load's warnings.
fn missing_reason(code: &str) -> &'static str {
    let letters = code.chars().filter(|c| *c != '.').count();
    if letters == 7 {
        "7th-character codes not in the store's ICD-10-CM release"
    } else if code.contains('.') && code.ends_with('X') {
        "placeholder-X codes without their 7th character"
    } else {
        "codes not in the store's ICD-10-CM release (retired, renamed or never billable)"
    }
}

/// Load the CodiEsp layout from `files` into `batch` (see the module docs).
pub fn load(
    files: &[InputFile],
    batch: &mut NoteBatch<'_>,
    progress: &Progress,
    known: CodeCheck<'_>,
) -> Result<NotesLoadResult, LoadError> {
    let files = expand(files)?;
    let (tsvs, texts): (Vec<&InputFile>, Vec<&InputFile>) =
        files.iter().partition(|f| split_of(&f.name).is_some());
    if tsvs.is_empty() {
        return Err(LoadError::Files(
            "codiesp needs a {split}D.tsv file (e.g. trainD.tsv) and the text files".into(),
        ));
    }
    if let Some(f) = texts.iter().find(|f| !f.name.ends_with(".txt")) {
        return Err(LoadError::Files(format!(
            "{}: codiesp takes {{split}}D.tsv and .txt files only",
            f.name
        )));
    }
    let mut gold: HashMap<String, Gold> = HashMap::new();
    for f in &tsvs {
        let split = split_of(&f.name).unwrap_or_default();
        let mut lines = LineReader::open(f)?;
        while let Some(line) = lines.next_line()? {
            if line.trim().is_empty() {
                continue;
            }
            let mut cols = line.split('\t');
            let (Some(doc), Some(code), None) = (cols.next(), cols.next(), cols.next()) else {
                return Err(lines.error("expected 2 tab-separated fields: articleID, ICD10-code"));
            };
            let (doc, code) = (doc.trim().to_string(), code.trim().to_string());
            let doc = doc.as_str();
            if doc.is_empty() {
                return Err(lines.error("empty articleID"));
            }
            let code = normalize_code("ICD10CM", &code).map_err(|m| lines.error(m))?;
            let line_no = lines.line_no();
            let g = gold.entry(doc.to_string()).or_insert_with(|| Gold {
                split: split.clone(),
                codes: Vec::new(),
                file: f.name.clone(),
                line: line_no,
            });
            if g.split != split {
                return Err(lines.error(format!(
                    "document {doc} is also listed in {} (split {})",
                    g.file, g.split
                )));
            }
            if !g.codes.contains(&code) {
                if g.codes.len() >= MAX_CODES {
                    return Err(lines.error(format!("more than {MAX_CODES} codes for {doc}")));
                }
                g.codes.push(code);
            }
        }
    }
    let mut r = NotesLoadResult::default();
    let mut missing: BTreeMap<&'static str, (u64, Vec<String>)> = BTreeMap::new();
    let mut checked: HashMap<ConceptRef, bool> = HashMap::new();
    let mut loaded: HashSet<String> = HashSet::new();
    let mut uncoded = 0u64;
    let mut done = 0u64;
    for f in &texts {
        let id = f.name.trim_end_matches(".txt").to_string();
        let mut lines = LineReader::open(f)?;
        let mut text = String::new();
        while let Some(line) = lines.next_line()? {
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(line);
        }
        validate_note(&id, &text).map_err(|m| LoadError::malformed(&f.name, 1, m))?;
        let language = match f.path.parent().and_then(|p| p.file_name()) {
            Some(n) if n == "text_files" => "es",
            _ => "en",
        };
        let (split, codes) = match gold.get(&id) {
            Some(g) => (g.split.clone(), g.codes.clone()),
            None => {
                uncoded += 1;
                (String::new(), Vec::new())
            }
        };
        for c in &codes {
            let ok = match known {
                Some(k) => *checked.entry(c.clone()).or_insert_with(|| k(c)),
                None => true,
            };
            if !ok {
                let e = missing.entry(missing_reason(&c.code)).or_default();
                e.0 += 1;
                if e.1.len() < 5 && !e.1.contains(&c.code) {
                    e.1.push(c.code.clone());
                }
            }
        }
        let mut meta = serde_json::json!({"corpus": "codiesp", "language": language});
        if !split.is_empty() {
            meta["split"] = serde_json::Value::String(split);
        }
        r.codes += codes.len() as u64;
        batch
            .add(Note {
                id: id.clone(),
                text,
                codes,
                meta_json: meta.to_string(),
            })
            .map_err(|e| insert_error(&f.name, 1, e))?;
        loaded.insert(id);
        r.notes += 1;
        done += f.path.metadata().map(|m| m.len()).unwrap_or(0);
        if r.notes.is_multiple_of(64) {
            progress.set_done(done);
            if progress.is_cancelled() {
                return Err(LoadError::Cancelled);
            }
        }
    }
    // every coded document needs its text: report the first one missing where it is listed
    let mut absent: Vec<(&String, &Gold)> = gold
        .iter()
        .filter(|(id, _)| !loaded.contains(*id))
        .collect();
    absent.sort_by(|a, b| (&a.1.file, a.1.line).cmp(&(&b.1.file, b.1.line)));
    if let Some((id, g)) = absent.first() {
        return Err(LoadError::malformed(
            &g.file,
            g.line,
            format!(
                "no text file {id}.txt for this document ({} coded documents lack one)",
                absent.len()
            ),
        ));
    }
    if uncoded > 0 {
        r.warnings.push(format!(
            "{uncoded} text files have no codes in the D.tsv files: stored without codes or split"
        ));
    }
    if known.is_none() && r.codes > 0 {
        r.warnings
            .push("ICD-10-CM is not loaded: gold codes were not checked against the store".into());
    }
    let total_missing: u64 = missing.values().map(|v| v.0).sum();
    if total_missing > 0 {
        let mut s = format!(
            "{total_missing} of {} gold code assignments are not in the store's ICD-10-CM (kept on the notes; a coder cannot propose them):",
            r.codes
        );
        for (reason, (n, examples)) in &missing {
            s.push_str(&format!(" {n} {reason}, e.g. {};", examples.join(", ")));
        }
        r.warnings.push(s.trim_end_matches(';').to_string());
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names() {
        assert_eq!(split_of("trainD.tsv").as_deref(), Some("train"));
        assert_eq!(split_of("devD.tsv").as_deref(), Some("dev"));
        assert_eq!(split_of("trainX.tsv"), None);
        assert_eq!(split_of("D.tsv"), None);
        assert_eq!(split_of("S0004-1.txt"), None);
    }

    #[test]
    fn missing_code_reasons() {
        assert!(missing_reason("S72.001A").starts_with("7th"));
        assert!(missing_reason("T81.4XX").starts_with("placeholder"));
        assert!(missing_reason("R52.9").starts_with("codes not"));
    }
}
