//! Synthetic UMLS releases in the published RRF layouts, for the ingest benchmark and the
//! crash tests. Deterministic for a given size (a small LCG, no RNG crate state to seed).

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Words of medical terms, the vocabulary synthetic names are drawn from.
pub const WORDS: &[&str] = &[
    "acute",
    "chronic",
    "disorder",
    "syndrome",
    "diabetes",
    "mellitus",
    "cardiac",
    "renal",
    "hepatic",
    "pulmonary",
    "infection",
    "neoplasm",
    "malignant",
    "benign",
    "fracture",
    "injury",
    "deficiency",
    "anemia",
    "hypertension",
    "failure",
    "insufficiency",
    "left",
    "right",
    "bilateral",
    "congenital",
    "secondary",
    "primary",
    "unspecified",
    "with",
    "without",
    "complication",
    "type",
    "stage",
    "severe",
    "mild",
    "of",
    "the",
    "lower",
    "upper",
    "limb",
];
const SABS: &[(&str, &str)] = &[
    ("MSH", "MH"),
    ("SNOMEDCT_US", "PT"),
    ("ICD10CM", "PT"),
    ("NCI", "SY"),
    ("MTH", "PN"),
];
const STYS: &[(&str, &str)] = &[
    ("T047", "Disease or Syndrome"),
    ("T191", "Neoplastic Process"),
    ("T037", "Injury or Poisoning"),
    ("T184", "Sign or Symptom"),
];

struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Files written by [`write_umls`].
pub struct SyntheticUmls {
    /// MRCONSO.RRF, MRREL.RRF and MRSTY.RRF paths.
    pub files: Vec<PathBuf>,
    /// Rows written to MRCONSO.
    pub conso_rows: u64,
    /// Rows written to MRREL.
    pub rel_rows: u64,
    /// Distinct CUIs.
    pub concepts: u64,
}

/// Write a synthetic UMLS release with about `rows` MRCONSO rows (3 atoms per concept on
/// average, one English-filtered row in 20), a PAR/CHD tree in MRREL and one STY per concept.
pub fn write_umls(dir: &Path, rows: u64) -> std::io::Result<SyntheticUmls> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Lcg(42);
    let conso_path = dir.join("MRCONSO.RRF");
    let rel_path = dir.join("MRREL.RRF");
    let sty_path = dir.join("MRSTY.RRF");
    let mut conso = BufWriter::with_capacity(1 << 20, std::fs::File::create(&conso_path)?);
    let mut rel = BufWriter::with_capacity(1 << 20, std::fs::File::create(&rel_path)?);
    let mut sty = BufWriter::with_capacity(1 << 20, std::fs::File::create(&sty_path)?);
    let (mut written, mut rel_rows, mut cui_n, mut aui) = (0u64, 0u64, 0u64, 0u64);
    while written < rows {
        cui_n += 1;
        let cui = format!("C{cui_n:07}");
        let atoms = 1 + rng.below(5);
        for a in 0..atoms {
            aui += 1;
            let (sab, tty) = SABS[rng.below(SABS.len() as u64) as usize];
            let nwords = 2 + rng.below(5);
            let text: Vec<&str> = (0..nwords)
                .map(|_| WORDS[rng.below(WORDS.len() as u64) as usize])
                .collect();
            let lat = if rng.below(20) == 0 { "SPA" } else { "ENG" };
            let (ts, stt, ispref) = if a == 0 {
                ("P", "PF", "Y")
            } else {
                ("S", "VO", "N")
            };
            writeln!(
                conso,
                "{cui}|{lat}|{ts}|L{aui:07}|{stt}|S{aui:07}|{ispref}|A{aui:08}||{code}||{sab}|{tty}|{code}|{text} {cui_n}|0|N|256|",
                code = format!("{sab}{cui_n}"),
                text = text.join(" ")
            )?;
            written += 1;
        }
        let (tui, name) = STYS[rng.below(STYS.len() as u64) as usize];
        writeln!(sty, "{cui}|{tui}|B2.2.1|{name}|AT{cui_n:08}|256|")?;
        if cui_n > 1 {
            // a tree: each concept's parent is an earlier concept; both directions as in MRREL
            let parent = 1 + rng.below(cui_n - 1);
            writeln!(
                rel,
                "{cui}|A{aui:08}|SCUI|PAR|C{parent:07}|A{parent:08}|SCUI|isa|R{rel_rows:08}||MSH|MSH|||N||"
            )?;
            writeln!(
                rel,
                "C{parent:07}|A{parent:08}|SCUI|CHD|{cui}|A{aui:08}|SCUI|inverse_isa|R{:08}||MSH|MSH|||N||",
                rel_rows + 1
            )?;
            rel_rows += 2;
        }
    }
    conso.flush()?;
    rel.flush()?;
    sty.flush()?;
    Ok(SyntheticUmls {
        files: vec![conso_path, rel_path, sty_path],
        conso_rows: written,
        rel_rows,
        concepts: cui_n,
    })
}
