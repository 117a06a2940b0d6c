//! `ontovec synth-notes`: a synthetic corpus of coded clinical notes (notes-jsonl). **Synthetic:**
//! no real clinical notes are reachable here; every note is made up from public vocabularies.
//!
//! Material:
//! * ICD-10-CM (from the store): each note's codes are drawn from a pool of billable-looking
//!   codes (chapters A–N and R, with a dot) plus the clinosim diseases' codes, by a Zipf law over
//!   a seeded shuffle of the pool, so a few codes are frequent and many are rare. A code is
//!   mentioned by its description, one of its inclusion terms or synonyms, an abbreviation
//!   (`HTN`, `DM2`, `CHF`, …) or an HPO synonym of the same name, with the qualifiers
//!   ("unspecified", "NOS") dropped or reworded at random;
//! * HPO (from the store): exam findings and symptoms, named by their synonyms;
//! * clinosim 0.6.5 (MIT, `data/downloads/notes/clinosim`): per disease the chief complaint, its
//!   ICD-10-CM variants, complications, US drugs and discharge instructions.
//!
//! Each note has 1–6 coded conditions (principal first: that is the code order), a past medical
//! history (chronic conditions, coded) and "remote history" items that are resolved (not
//! coded), negated conditions in the review of systems and "ruled out" lines (not coded: the
//! trap for lexical coding), exam findings, an assessment and plan, and for about one note in
//! twenty a long hospital course (> 4,000 tokens). Output is deterministic for a seed.

use crate::domain::model::TermKind;
use crate::store::Store;
use anyhow::Context;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

/// Generator settings.
#[derive(Debug, Clone)]
pub struct SynthConfig {
    /// Notes to write.
    pub n: usize,
    /// Seed.
    pub seed: u64,
    /// ICD-10-CM codes in the label pool (besides clinosim's).
    pub pool: usize,
    /// Share of long notes (> 4,000 tokens).
    pub long_share: f64,
}

/// One code's ways of being mentioned.
#[derive(Debug, Clone)]
struct Condition {
    code: String,
    names: Vec<String>,
    complaint: Option<String>,
    drugs: Vec<String>,
    complications: Vec<String>,
    instructions: Vec<String>,
}

/// Abbreviations clinicians use, keyed by a lower-case phrase of the description.
const ABBREVIATIONS: &[(&str, &str)] = &[
    ("essential (primary) hypertension", "HTN"),
    ("hypertension", "HTN"),
    ("type 2 diabetes mellitus", "DM2"),
    ("type 1 diabetes mellitus", "T1DM"),
    ("heart failure", "CHF"),
    ("chronic obstructive pulmonary disease", "COPD"),
    ("chronic kidney disease", "CKD"),
    ("atrial fibrillation", "AFib"),
    ("atherosclerotic heart disease", "CAD"),
    ("myocardial infarction", "MI"),
    ("urinary tract infection", "UTI"),
    ("pneumonia", "PNA"),
    ("gastro-esophageal reflux disease", "GERD"),
    ("obstructive sleep apnea", "OSA"),
    ("deep vein thrombosis", "DVT"),
    ("pulmonary embolism", "PE"),
    ("acute kidney failure", "AKI"),
    ("hyperlipidemia", "HLD"),
    ("cerebral infarction", "CVA"),
    ("transient cerebral ischemic attack", "TIA"),
    ("benign prostatic hyperplasia", "BPH"),
    ("diabetic ketoacidosis", "DKA"),
    ("major depressive disorder", "MDD"),
    ("rheumatoid arthritis", "RA"),
    ("osteoarthritis", "OA"),
    ("gastrointestinal hemorrhage", "GI bleed"),
    ("sepsis", "sepsis"),
    ("hypothyroidism", "hypothyroid"),
    ("anemia", "anemia"),
];

const NEG_PREFIX: &[&str] = &[
    "Denies",
    "No",
    "Negative for",
    "No evidence of",
    "No history of",
    "Patient denies any",
    "Without",
];
const RULED_OUT: &[&str] = &[
    "Ruled out:",
    "Doubt",
    "Low suspicion for",
    "Workup negative for",
    "r/o",
];
const MENTION_PREFIX: &[&str] = &[
    "",
    "known ",
    "longstanding ",
    "newly diagnosed ",
    "acute on chronic ",
    "poorly controlled ",
    "",
];
const SECTIONS_HPI: &[&str] = &[
    "presented to the ED with",
    "admitted for",
    "was sent in by the PCP for",
    "comes in with worsening",
    "transferred from an outside hospital with",
];

fn clean(desc: &str, rng: &mut ChaCha8Rng) -> String {
    let mut s = desc.to_string();
    if rng.gen_bool(0.6) {
        for q in [
            ", unspecified",
            " unspecified",
            ", NOS",
            " NOS",
            ", not elsewhere classified",
        ] {
            s = s.replace(q, "");
        }
    }
    if rng.gen_bool(0.5) {
        s = s.to_lowercase();
    }
    s.trim().trim_end_matches(',').to_string()
}

fn load_conditions(store: &Store) -> anyhow::Result<(Vec<Condition>, Vec<String>)> {
    let rid = store
        .active_rid("ICD10CM")
        .context("the store has no ICD10CM release: ingest ICD-10-CM first")?;
    // HPO names and synonyms by lower-cased name, for paraphrases and findings
    let mut hpo_syn: HashMap<String, Vec<String>> = HashMap::new();
    let mut findings = Vec::new();
    if let Some(hrid) = store.active_rid("HPO") {
        let mut cur = String::new();
        let mut group: Vec<(String, TermKind)> = Vec::new();
        let mut flush = |group: &mut Vec<(String, TermKind)>| {
            if let Some((pref, _)) = group.iter().find(|(_, k)| *k == TermKind::Preferred) {
                let syns: Vec<String> = group
                    .iter()
                    .filter(|(_, k)| k.is_equivalent())
                    .map(|(t, _)| t.clone())
                    .collect();
                hpo_syn.insert(pref.to_lowercase(), syns.clone());
                findings.extend(syns.into_iter().take(2));
            }
            group.clear();
        };
        for t in store.terms_of_release(hrid) {
            let (_, row) = t?;
            if row.code != cur {
                flush(&mut group);
                cur = row.code.clone();
            }
            group.push((row.text, row.kind));
        }
        flush(&mut group);
    }
    let mut out: Vec<Condition> = Vec::new();
    let mut cur: Option<Condition> = None;
    for t in store.terms_of_release(rid) {
        let (_, row) = t?;
        if cur.as_ref().is_none_or(|c| c.code != row.code) {
            if let Some(c) = cur.take() {
                out.push(c);
            }
            cur = Some(Condition {
                code: row.code.clone(),
                names: Vec::new(),
                complaint: None,
                drugs: Vec::new(),
                complications: Vec::new(),
                instructions: Vec::new(),
            });
        }
        if let Some(c) = cur.as_mut() {
            if matches!(
                row.kind,
                TermKind::Preferred | TermKind::Synonym | TermKind::Inclusion
            ) {
                if row.kind == TermKind::Preferred {
                    c.names.insert(0, row.text);
                } else {
                    c.names.push(row.text);
                }
            }
        }
    }
    out.extend(cur);
    for c in &mut out {
        let first = c
            .names
            .first()
            .map(|s| s.to_lowercase())
            .unwrap_or_default();
        if let Some(s) = hpo_syn.get(&first) {
            c.names.extend(s.iter().skip(1).cloned());
        }
        for (phrase, abbr) in ABBREVIATIONS {
            if first.starts_with(phrase) {
                c.names.push(abbr.to_string());
                break;
            }
        }
    }
    Ok((out, findings))
}

fn yaml_str(v: &serde_yaml::Value, path: &[&str]) -> Option<String> {
    let mut cur = v;
    for p in path {
        cur = cur.get(*p)?;
    }
    cur.as_str().map(str::to_string)
}

/// Read the clinosim disease modules (chief complaint, ICD variants, drugs, complications,
/// discharge instructions), keyed by ICD-10-CM code.
fn load_clinosim(dir: &Path) -> anyhow::Result<HashMap<String, Condition>> {
    let mut out = HashMap::new();
    let ddir = dir.join("modules/disease/reference_data");
    let Ok(entries) = std::fs::read_dir(&ddir) else {
        tracing::warn!(dir = %ddir.display(), "no clinosim modules found; generating without them");
        return Ok(out);
    };
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        let text = std::fs::read_to_string(&p)?;
        let v: serde_yaml::Value = match serde_yaml::from_str(&text) {
            Ok(v) => v,
            Err(e) => {
                // clinosim 0.6.5 ships one module with a duplicated key; skip what does not parse
                tracing::warn!(file = %p.display(), error = %e, "skipping unreadable clinosim module");
                continue;
            }
        };
        let complaint = yaml_str(&v, &["chief_complaint", "en"]);
        let drugs: Vec<String> = v
            .get("drugs")
            .and_then(|d| d.get("first_line"))
            .and_then(|d| d.get("us"))
            .and_then(|d| d.as_sequence())
            .map(|s| {
                s.iter()
                    .filter_map(|x| {
                        let drug = x.get("drug")?.as_str()?.replace('_', " ");
                        Some(match x.get("dose").and_then(|d| d.as_str()) {
                            Some(d) => format!("{drug} {d}"),
                            None => drug,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let complications: Vec<String> = v
            .get("complications")
            .and_then(|c| c.as_sequence())
            .map(|s| {
                s.iter()
                    .filter_map(|x| x.get("description")?.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let instructions: Vec<String> = v
            .get("narrative")
            .and_then(|n| n.get("discharge_instructions"))
            .and_then(|d| d.as_mapping())
            .map(|m| {
                m.values()
                    .filter_map(|x| x.get("en")?.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let variants = v
            .get("icd_codes")
            .and_then(|c| c.get("variants"))
            .and_then(|c| c.as_sequence())
            .cloned()
            .unwrap_or_default();
        for var in variants {
            let (Some(code), Some(name)) = (
                var.get("code").and_then(|c| c.as_str()),
                var.get("name").and_then(|c| c.as_str()),
            ) else {
                continue;
            };
            out.insert(
                code.to_string(),
                Condition {
                    code: code.to_string(),
                    names: vec![name.to_string()],
                    complaint: complaint.clone(),
                    drugs: drugs.clone(),
                    complications: complications.clone(),
                    instructions: instructions.clone(),
                },
            );
        }
    }
    Ok(out)
}

fn in_pool(code: &str) -> bool {
    let first = code.chars().next().unwrap_or('Z');
    code.contains('.') && (('A'..='N').contains(&first) || first == 'R')
}

struct Generator {
    pool: Vec<Condition>,
    zipf: Vec<f64>,
    all: Vec<Condition>,
    findings: Vec<String>,
}

impl Generator {
    fn pick(&self, rng: &mut ChaCha8Rng) -> usize {
        let x: f64 = rng.gen::<f64>() * self.zipf.last().copied().unwrap_or(1.0);
        self.zipf
            .partition_point(|&c| c < x)
            .min(self.pool.len() - 1)
    }

    fn mention(&self, c: &Condition, rng: &mut ChaCha8Rng) -> String {
        let name = c
            .names
            .choose(rng)
            .cloned()
            .unwrap_or_else(|| c.code.clone());
        clean(&name, rng)
    }

    fn note(&self, i: usize, rng: &mut ChaCha8Rng, long: bool) -> serde_json::Value {
        let k = 1 + rng.gen_range(0..4) + usize::from(rng.gen_bool(0.2)) * 2;
        let mut idx: Vec<usize> = Vec::new();
        while idx.len() < k {
            let j = self.pick(rng);
            if !idx.contains(&j) {
                idx.push(j);
            }
        }
        let conds: Vec<&Condition> = idx.iter().map(|&j| &self.pool[j]).collect();
        let principal = conds[0];
        let age = rng.gen_range(18..95);
        let sex = if rng.gen_bool(0.5) { "male" } else { "female" };
        let mut s = String::new();
        let cc = principal
            .complaint
            .clone()
            .unwrap_or_else(|| self.mention(principal, rng));
        s.push_str(&format!("CHIEF COMPLAINT: {cc}\n\n"));
        // history: chronic conditions (coded, from the other conditions) and resolved ones
        let chronic: Vec<String> = conds[1..].iter().map(|c| self.mention(c, rng)).collect();
        let resolved: Vec<String> = (0..rng.gen_range(0..3))
            .map(|_| {
                let c = self.all.choose(rng).expect("non-empty");
                self.mention(c, rng)
            })
            .collect();
        let pmh = if chronic.is_empty() {
            String::new()
        } else {
            format!(" with PMH of {}", chronic.join(", "))
        };
        let verb = SECTIONS_HPI.choose(rng).unwrap_or(&"presented with");
        let prefix = MENTION_PREFIX.choose(rng).unwrap_or(&"");
        let what = self.mention(principal, rng);
        s.push_str(&format!(
            "HISTORY OF PRESENT ILLNESS: {age} y/o {sex}{pmh} who {verb} {prefix}{what}."
        ));
        if let Some(f) = self.findings.choose(rng) {
            s.push_str(&format!(" Also reports {}.", f.to_lowercase()));
        }
        s.push_str("\n\nPAST MEDICAL HISTORY:\n");
        for (n, c) in chronic.iter().enumerate() {
            s.push_str(&format!("{}. {c}\n", n + 1));
        }
        for r in &resolved {
            s.push_str(&format!(
                "- remote history of {r}, resolved, no longer followed\n"
            ));
        }
        s.push_str("\nREVIEW OF SYSTEMS: ");
        let negs: Vec<String> = (0..rng.gen_range(1..4))
            .map(|_| {
                let c = &self.pool[self.pick(rng)];
                let txt = if idx.iter().any(|&j| self.pool[j].code == c.code) {
                    self.findings
                        .choose(rng)
                        .cloned()
                        .unwrap_or_default()
                        .to_lowercase()
                } else {
                    self.mention(c, rng)
                };
                format!("{} {txt}.", NEG_PREFIX.choose(rng).unwrap_or(&"No"))
            })
            .collect();
        s.push_str(&negs.join(" "));
        s.push_str("\n\nPHYSICAL EXAM: ");
        let exam: Vec<String> = (0..rng.gen_range(1..4))
            .filter_map(|_| self.findings.choose(rng).map(|f| f.to_lowercase()))
            .collect();
        s.push_str(&format!("Notable for {}.\n\n", exam.join("; ")));
        s.push_str("ASSESSMENT AND PLAN:\n");
        for (n, c) in conds.iter().enumerate() {
            s.push_str(&format!("{}. {}", n + 1, self.mention(c, rng)));
            if let Some(d) = c.drugs.choose(rng) {
                s.push_str(&format!(" - start {d}"));
            } else {
                s.push_str(" - continue current management, monitor");
            }
            s.push('\n');
        }
        if rng.gen_bool(0.5) {
            let c = &self.pool[self.pick(rng)];
            if !idx.iter().any(|&j| self.pool[j].code == c.code) {
                s.push_str(&format!(
                    "{} {}.\n",
                    RULED_OUT.choose(rng).unwrap_or(&"Ruled out:"),
                    self.mention(c, rng)
                ));
            }
        }
        if long {
            s.push_str("\nHOSPITAL COURSE:\n");
            let mut day = 1;
            while s.len() < 24_000 {
                let c = conds.choose(rng).expect("non-empty");
                s.push_str(&format!(
                    "Hospital day {day}: patient seen and examined. Vitals: T {:.1} HR {} BP {}/{} RR {} SpO2 {}% on room air. Labs reviewed: Na {} K {:.1} Cr {:.1} WBC {:.1} Hgb {:.1}. ",
                    rng.gen_range(36.2..38.9), rng.gen_range(58..118), rng.gen_range(95..170),
                    rng.gen_range(50..100), rng.gen_range(12..26), rng.gen_range(88..100),
                    rng.gen_range(128..146), rng.gen_range(3.1..5.6), rng.gen_range(0.5..3.2),
                    rng.gen_range(3.0..19.0), rng.gen_range(7.0..16.0)
                ));
                s.push_str(&format!("Regarding {}: ", self.mention(c, rng)));
                match c.complications.choose(rng) {
                    Some(x) if rng.gen_bool(0.3) => s.push_str(&format!(
                        "monitoring for {}; none observed. ",
                        x.to_lowercase()
                    )),
                    _ => s.push_str("clinically improving, plan unchanged. "),
                }
                if let Some(f) = self.findings.choose(rng) {
                    s.push_str(&format!("Exam: {}. ", f.to_lowercase()));
                }
                s.push('\n');
                day += 1;
            }
        }
        if let Some(ins) = principal.instructions.choose(rng) {
            s.push_str(&format!("\nDISCHARGE INSTRUCTIONS: {ins}\n"));
        }
        let codes: Vec<serde_json::Value> = conds
            .iter()
            .map(|c| serde_json::json!({"system": "ICD10CM", "code": c.code}))
            .collect();
        serde_json::json!({
            "id": format!("synth-{i:06}"),
            "text": s,
            "codes": codes,
            "meta": {
                "patient": format!("p{:05}", rng.gen_range(0..(i / 2 + 10))),
                "time": format!("2025-{:02}-{:02}", rng.gen_range(1..13), rng.gen_range(1..29)),
                "category": if long { "discharge_summary_long" } else { "discharge_summary" },
                "synthetic": true,
            }
        })
    }
}

/// Write `cfg.n` synthetic notes to `out` (notes-jsonl) from the ICD-10-CM and HPO releases in
/// `store` and the clinosim modules in `clinosim_dir`. Returns the number of distinct codes used.
pub fn generate(
    store: &Store,
    clinosim_dir: &Path,
    cfg: &SynthConfig,
    out: &Path,
) -> anyhow::Result<usize> {
    let (all, findings) = load_conditions(store)?;
    anyhow::ensure!(!all.is_empty(), "ICD10CM release has no concepts");
    let clinosim = load_clinosim(clinosim_dir)?;
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let by_code: HashMap<&str, &Condition> = all.iter().map(|c| (c.code.as_str(), c)).collect();
    let mut candidates: Vec<&Condition> = all.iter().filter(|c| in_pool(&c.code)).collect();
    candidates.shuffle(&mut rng);
    let mut pool: Vec<Condition> = Vec::new();
    // clinosim diseases first, merged with the store's names for the same code
    let mut cs: Vec<&Condition> = clinosim.values().collect();
    cs.sort_by(|a, b| a.code.cmp(&b.code));
    for c in cs {
        let mut c = c.clone();
        if let Some(s) = by_code.get(c.code.as_str()) {
            c.names.extend(s.names.iter().cloned());
        }
        pool.push(c);
    }
    for c in candidates {
        if pool.len() >= cfg.pool + clinosim.len() {
            break;
        }
        if !pool.iter().any(|p| p.code == c.code) {
            pool.push(c.clone());
        }
    }
    pool.shuffle(&mut rng);
    let mut zipf = Vec::with_capacity(pool.len());
    let mut acc = 0.0;
    for r in 0..pool.len() {
        acc += 1.0 / (r as f64 + 2.0);
        zipf.push(acc);
    }
    let findings = if findings.is_empty() {
        vec!["no acute distress".to_string()]
    } else {
        findings
    };
    let g = Generator {
        pool,
        zipf,
        all,
        findings,
    };
    let mut w = std::io::BufWriter::new(
        std::fs::File::create(out).with_context(|| format!("creating {}", out.display()))?,
    );
    let mut used = std::collections::HashSet::new();
    for i in 0..cfg.n {
        let long = rng.gen_bool(cfg.long_share);
        let note = g.note(i, &mut rng, long);
        for c in note["codes"].as_array().into_iter().flatten() {
            used.insert(c["code"].as_str().unwrap_or_default().to_string());
        }
        serde_json::to_writer(&mut w, &note)?;
        w.write_all(b"\n")?;
    }
    w.flush()?;
    Ok(used.len())
}
