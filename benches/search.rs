//! Search engine numbers: lexical query latency on synthetic terms, vector recall@10 and latency
//! on random 384-d vectors (clustered like real embeddings, and uniform noise), plain and with a
//! 5 %-selective filter.
//!
//! - release: `cargo bench --bench search`
//! - quick, dev profile: `cargo test --bench search` (usearch at opt-level 3, our code and
//!   tantivy's sub-crates unoptimised: exact scans and analysis look much slower than they are)
//!
//! Environment: `N` (default 50000), `BENCH=lexical|vector` (default both).

use ontovec::domain::model::TermKind;
use ontovec::ontology::synthetic;
use ontovec::search::exact::{clustered, exact_top_k, random_unit};
use ontovec::search::{Hit, LexicalIndex, TermDoc, VectorIndex, VectorOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashSet;

fn tid(rid: u64, n: u64) -> u64 {
    (rid << 40) | n
}

fn doc(term_id: u64, system: &str, code: &str, text: &str) -> TermDoc {
    TermDoc {
        term_id,
        system: system.into(),
        code: code.into(),
        text: text.into(),
        kind: TermKind::Preferred,
    }
}

fn ids(hits: &[Hit]) -> Vec<u64> {
    hits.iter().map(|h| h.term_id).collect()
}

fn main() {
    let which = std::env::var("BENCH").unwrap_or_default();
    if which.is_empty() || which == "lexical" {
        bench_lexical();
    }
    if which.is_empty() || which == "vector" {
        bench_vector();
    }
}

fn percentiles(mut v: Vec<std::time::Duration>) -> String {
    v.sort();
    let p = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    format!("p50 {:>7.0?}  p99 {:>7.0?}", p(0.5), p(0.99))
}

/// Pseudo-medical vocabulary: common real words plus syllable compounds picked with a Zipf-like
/// skew, so a few words are very frequent and most are rare (as in real terminologies).
struct TermGen {
    rng: ChaCha8Rng,
    vocab: Vec<String>,
}

impl TermGen {
    fn new(seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let syl = [
            "car", "dio", "neu", "ro", "path", "ic", "itis", "oma", "gas", "tro", "hem", "ato",
            "lym", "pho", "my", "elo", "derm", "osis", "nephr", "ost", "eo", "arth", "ent", "ery",
            "thro", "cyt", "leuk", "emia",
        ];
        // the common words of real terms, then syllable compounds
        let mut vocab: Vec<String> = synthetic::WORDS.iter().map(|s| s.to_string()).collect();
        while vocab.len() < 5000 {
            let n = rng.gen_range(2..5);
            let w: String = (0..n).map(|_| syl[rng.gen_range(0..syl.len())]).collect();
            vocab.push(w);
        }
        Self { rng, vocab }
    }
    fn word(&mut self) -> String {
        // Zipf-ish: index = floor(V^u) - 1 skews towards the front
        let u: f64 = self.rng.gen();
        let i = ((self.vocab.len() as f64).powf(u) as usize)
            .saturating_sub(1)
            .min(self.vocab.len() - 1);
        self.vocab[i].clone()
    }
    fn term(&mut self) -> String {
        let n = self.rng.gen_range(1..7);
        (0..n).map(|_| self.word()).collect::<Vec<_>>().join(" ")
    }
}

/// Lexical: index `N` synthetic terms, then time word, misspelt, code, filtered and exact queries.
fn bench_lexical() {
    let n: u64 = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    let systems = ["ICD10CM", "HPO", "LOINC", "UMLS", "RXNORM"];
    let mut gen = TermGen::new(11);
    let docs: Vec<TermDoc> = (0..n)
        .map(|i| {
            let s = (i % 5) as usize;
            let code = format!(
                "{}{:02}.{}",
                (b'A' + (i % 26) as u8) as char,
                i % 100,
                i / 100
            );
            doc(tid(1 + s as u64, i), systems[s], &code, &gen.term())
        })
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let idx = LexicalIndex::open_or_create(&dir.path().join("lex")).unwrap();
    let t = std::time::Instant::now();
    for c in docs.chunks(4096) {
        idx.add(c.to_vec()).unwrap();
    }
    idx.commit(1).unwrap();
    eprintln!("lexical: indexed {n} terms in {:.1?}", t.elapsed());
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let pick = |rng: &mut ChaCha8Rng| docs[rng.gen_range(0..docs.len())].clone();
    let mut words_q = Vec::new();
    let mut typo_q = Vec::new();
    let mut code_q = Vec::new();
    for _ in 0..300 {
        let d = pick(&mut rng);
        let w: Vec<&str> = d.text.split(' ').collect();
        words_q.push(w[..w.len().min(3)].join(" "));
        let longest = w.iter().max_by_key(|x| x.len()).unwrap().to_string();
        let mut c: Vec<char> = longest.chars().collect();
        if c.len() > 3 {
            c.swap(1, 2);
        }
        typo_q.push(c.into_iter().collect::<String>());
        code_q.push(d.code.clone());
    }
    let filter = ["HPO".to_string()];
    let mut hit_rank = Vec::new();
    for (name, qs, k, sys, exact) in [
        ("words k=10", &words_q, 10, None, false),
        ("words k=50", &words_q, 50, None, false),
        (
            "words k=10 systems=[HPO]",
            &words_q,
            10,
            Some(&filter[..]),
            false,
        ),
        ("misspelt word k=10", &typo_q, 10, None, false),
        ("code k=10", &code_q, 10, None, false),
        ("exact k=10", &words_q, 10, None, true),
    ] {
        let mut lat = Vec::new();
        for q in qs.iter() {
            let t = std::time::Instant::now();
            let h = idx.search(q, k, sys, exact).unwrap();
            lat.push(t.elapsed());
            if name.starts_with("code") {
                hit_rank.push(h.first().map(|h| h.score).is_some());
            }
        }
        eprintln!("lexical {n} {name:<26} {}", percentiles(lat));
    }
    assert!(hit_rank.iter().all(|x| *x));
}

/// Vector: `N` 384-d vectors (clustered, then uniform), recall@10 vs brute force and latency.
fn bench_vector() {
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50_000);
    const DIM: usize = 384;
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let data_kind = std::env::var("DATA").unwrap_or_default();
    for uniform in [false, true] {
        if (uniform && data_kind == "clustered") || (!uniform && data_kind == "uniform") {
            continue;
        }
        let vecs = if uniform {
            (0..n + 100).map(|_| random_unit(&mut rng, DIM)).collect()
        } else {
            clustered(&mut rng, n + 100, DIM, n / 50)
        };
        let data: Vec<(u64, Vec<f32>)> = vecs[..n]
            .iter()
            .enumerate()
            .map(|(i, v)| (tid(1 + i as u64 % 20, i as u64), v.clone()))
            .collect();
        let queries = &vecs[n..];
        let sel = |k: u64| k >> 40 == 3;
        let truth: Vec<Vec<u64>> = queries
            .iter()
            .map(|q| exact_top_k(&data, q, 10, |_| true))
            .collect();
        let ftruth: Vec<Vec<u64>> = queries
            .iter()
            .map(|q| exact_top_k(&data, q, 10, sel))
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let idx =
            VectorIndex::open_with(&dir.path().join("b.usearch"), DIM, VectorOptions::default())
                .unwrap();
        let t = std::time::Instant::now();
        for c in data.chunks(1024) {
            idx.upsert(c).unwrap();
        }
        eprintln!(
            "vector: {n} x {DIM} uniform={uniform} built in {:.1?}",
            t.elapsed()
        );
        for fallback in [true, false] {
            idx.set_brute_force_max(if fallback { 20_000 } else { 0 });
            for ef in [32, 64, 128] {
                idx.set_expansion_search(ef);
                for filtered in [false, true] {
                    if !filtered && !fallback {
                        continue;
                    }
                    let mut lat = Vec::new();
                    let mut found = 0;
                    for (i, q) in queries.iter().enumerate() {
                        let t = std::time::Instant::now();
                        let h = if filtered {
                            idx.search(q, 10, Some(&sel))
                        } else {
                            idx.search(q, 10, None)
                        }
                        .unwrap();
                        lat.push(t.elapsed());
                        let got: HashSet<u64> = ids(&h).into_iter().collect();
                        let tr = if filtered { &ftruth[i] } else { &truth[i] };
                        found += tr.iter().filter(|x| got.contains(x)).count();
                    }
                    let what = match (filtered, fallback) {
                        (false, _) => "plain",
                        (true, true) => "filter 5%",
                        (true, false) => "filter 5% (usearch only)",
                    };
                    eprintln!(
                        "vector {n} uniform={uniform:<5} ef={ef:<3} {what:<25} recall@10 {:.4}  {}",
                        found as f64 / (10 * queries.len()) as f64,
                        percentiles(lat)
                    );
                }
            }
        }
    }
}
