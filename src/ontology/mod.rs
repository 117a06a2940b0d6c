//! Streaming loaders for every supported terminology format.
//!
//! A loader reads one release (one or more files) and pushes concepts, relations and mappings into
//! a [`Sink`]; it never holds a whole file in memory. Errors name the file and line (and field where
//! it helps); the caller aborts the release on the first error so nothing partial becomes visible.

pub mod codes;
pub mod holdout;
pub mod icd10cm;
pub mod icd9cm;
pub mod input;
pub mod loinc;
pub mod obo;
pub mod phecode;
pub mod rrf;
pub mod rxnorm;
pub mod synthetic;
pub mod umls;

use crate::domain::model::{Concept, Mapping, Relation};
pub use crate::domain::sink::{LoadError, Sink};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::str::FromStr;
use utoipa::ToSchema;

/// Input formats accepted by `ingest` (CLI `--format`, HTTP `format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// UMLS Metathesaurus RRF: MRCONSO.RRF (+ MRREL.RRF, MRSTY.RRF, MRSAB.RRF).
    UmlsRrf,
    /// RxNorm RRF: RXNCONSO.RRF (+ RXNREL.RRF, RXNSAT.RRF ignored).
    RxnormRrf,
    /// LOINC CSV: Loinc.csv (+ MultiAxialHierarchy.csv).
    LoincCsv,
    /// PheWAS catalog CSVs: phecode definitions and ICD→phecode maps (1.2 or X).
    PhecodeCsv,
    /// ICD-10-CM tabular XML (CDC).
    Icd10cmXml,
    /// ICD-9-CM descriptions (CMS fixed-width text) and GEM files.
    Icd9cmTxt,
    /// ICD-9-CM descriptions as CSV and GEM CSVs.
    Icd9cmCsv,
    /// OBO 1.2/1.4 ontology (HPO, ...).
    Obo,
    /// Notes as JSON lines.
    NotesJsonl,
    /// MIMIC-III NOTEEVENTS.csv + DIAGNOSES_ICD.csv.
    MimicNotesCsv,
    /// CodiEsp (CLEF eHealth 2020): `{split}D.tsv` + `text_files_en/*.txt`.
    Codiesp,
}

impl Format {
    /// All formats, in documentation order.
    pub const ALL: &'static [Format] = &[
        Format::UmlsRrf,
        Format::RxnormRrf,
        Format::LoincCsv,
        Format::PhecodeCsv,
        Format::Icd10cmXml,
        Format::Icd9cmTxt,
        Format::Icd9cmCsv,
        Format::Obo,
        Format::NotesJsonl,
        Format::MimicNotesCsv,
        Format::Codiesp,
    ];

    /// The wire name (`umls-rrf`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Format::UmlsRrf => "umls-rrf",
            Format::RxnormRrf => "rxnorm-rrf",
            Format::LoincCsv => "loinc-csv",
            Format::PhecodeCsv => "phecode-csv",
            Format::Icd10cmXml => "icd10cm-xml",
            Format::Icd9cmTxt => "icd9cm-txt",
            Format::Icd9cmCsv => "icd9cm-csv",
            Format::Obo => "obo",
            Format::NotesJsonl => "notes-jsonl",
            Format::MimicNotesCsv => "mimic-notes-csv",
            Format::Codiesp => "codiesp",
        }
    }

    /// The system a release of this format belongs to when the user names none. `None` means
    /// the loader decides (OBO reads its `ontology:` header) or the format holds notes.
    pub fn default_system(self) -> Option<&'static str> {
        match self {
            Format::UmlsRrf => Some("UMLS"),
            Format::RxnormRrf => Some("RXNORM"),
            Format::LoincCsv => Some("LOINC"),
            Format::PhecodeCsv => Some("PHECODE"),
            Format::Icd10cmXml => Some("ICD10CM"),
            Format::Icd9cmTxt | Format::Icd9cmCsv => Some("ICD9CM"),
            Format::Obo => None,
            Format::NotesJsonl | Format::MimicNotesCsv | Format::Codiesp => None,
        }
    }

    /// True for note formats (they load into the notes store, not a terminology release).
    pub fn is_notes(self) -> bool {
        matches!(
            self,
            Format::NotesJsonl | Format::MimicNotesCsv | Format::Codiesp
        )
    }
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Format::ALL
            .iter()
            .copied()
            .find(|f| f.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Format::ALL.iter().map(|f| f.name()).collect();
                format!("unknown format '{s}'; expected one of {}", names.join(", "))
            })
    }
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One input file of a release: where it is on disk and the name to use in messages
/// (for uploads, the client's file name rather than the temporary path).
#[derive(Debug, Clone)]
pub struct InputFile {
    /// Path on disk.
    pub path: PathBuf,
    /// Name used to recognise the file's role (MRCONSO.RRF, ...) and in error messages.
    pub name: String,
}

impl InputFile {
    /// An input named after its own file name.
    pub fn from_path(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Self { path, name }
    }

    /// The upper-cased base name, for matching file roles case-insensitively.
    pub fn upper_name(&self) -> String {
        self.name.to_ascii_uppercase()
    }
}

/// Options every loader receives.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// The system being loaded (already resolved from the user's `system` or the default).
    pub system: String,
    /// UMLS/RxNorm: languages to keep (LAT column), default `ENG`.
    pub languages: Vec<String>,
}

impl LoadOptions {
    /// Options for a system with the default language filter.
    pub fn for_system(system: impl Into<String>) -> Self {
        Self {
            system: system.into(),
            languages: vec!["ENG".into()],
        }
    }
}

/// Read the system name an input declares for itself, for formats whose system is not fixed
/// (OBO's `ontology:` header). Returns `None` when the format has a fixed default or the header
/// is absent.
pub fn sniff_system(format: Format, files: &[InputFile]) -> Result<Option<String>, LoadError> {
    match format {
        Format::Obo => match files.first() {
            Some(f) => obo::sniff_ontology(f),
            None => Ok(None),
        },
        _ => Ok(format.default_system().map(str::to_string)),
    }
}

/// Load a terminology release of `format` from `files` into `sink`.
pub fn load(
    format: Format,
    files: &[InputFile],
    opts: &LoadOptions,
    sink: &mut dyn Sink,
) -> Result<(), LoadError> {
    if files.is_empty() {
        return Err(LoadError::Files("no input files given".into()));
    }
    match format {
        Format::UmlsRrf => umls::load(files, opts, sink),
        Format::RxnormRrf => rxnorm::load(files, opts, sink),
        Format::LoincCsv => loinc::load(files, opts, sink),
        Format::PhecodeCsv => phecode::load(files, opts, sink),
        Format::Icd10cmXml => icd10cm::load(files, opts, sink),
        Format::Icd9cmTxt | Format::Icd9cmCsv => icd9cm::load(files, opts, sink),
        Format::Obo => obo::load(files, opts, sink),
        Format::NotesJsonl | Format::MimicNotesCsv | Format::Codiesp => Err(LoadError::Files(
            format!("format {format} holds notes, not a terminology release"),
        )),
    }
}

/// A sink that keeps everything in memory; for tests and small tools.
#[derive(Debug, Default)]
pub struct MemorySink {
    /// Concepts by code, merged.
    pub concepts: std::collections::BTreeMap<String, Concept>,
    /// Relations in arrival order.
    pub relations: Vec<Relation>,
    /// Mappings in arrival order.
    pub mappings: Vec<Mapping>,
    /// Warnings in arrival order.
    pub warnings: Vec<String>,
    /// Last progress value reported.
    pub bytes_done: u64,
}

impl Sink for MemorySink {
    fn concept(&mut self, concept: Concept) -> Result<(), LoadError> {
        match self.concepts.get_mut(&concept.code) {
            Some(c) => c.merge(concept),
            None => {
                self.concepts.insert(concept.code.clone(), concept);
            }
        }
        Ok(())
    }
    fn relation(&mut self, relation: Relation) -> Result<(), LoadError> {
        self.relations.push(relation);
        Ok(())
    }
    fn mapping(&mut self, mapping: Mapping) -> Result<(), LoadError> {
        self.mappings.push(mapping);
        Ok(())
    }
    fn warning(&mut self, message: String) {
        self.warnings.push(message);
    }
    fn progress(&mut self, bytes_done: u64) -> Result<(), LoadError> {
        self.bytes_done = bytes_done;
        Ok(())
    }
}
