//! Embedding benchmark: strings/s on real terminology strings for the ways texts reach the
//! model (client-sized batches as they come, length-sorted batches, the engine with bucketing,
//! one text at a time), plus tokenization alone. `benches/embed.rs` runs it; its numbers are
//! meant to be read next to `scripts/bench_reference.py` (PyTorch, onnxruntime) run on the same
//! strings on the same machine.

use super::bert::Encoder;
use super::engine::{EngineConfig, EngineHandle};
use super::EncoderError;
use std::path::Path;
use std::time::{Duration, Instant};

/// One measured way of embedding the benchmark strings.
#[derive(Debug, Clone)]
pub struct BenchRow {
    /// What was measured.
    pub case: String,
    /// Throughput in strings per second (for latency rows: 1 / mean latency).
    pub strings_per_s: f64,
    /// Strings per CPU-second of the whole process (all threads): comparable across runs when
    /// other jobs share the machine.
    pub strings_per_cpu_s: f64,
    /// Real tokens / padded tokens fed to the model (1.0 = no padding).
    pub padding_efficiency: f64,
    /// Median latency per call, for single-text rows.
    pub p50_ms: Option<f64>,
    /// 99th-percentile latency per call, for single-text rows.
    pub p99_ms: Option<f64>,
}

/// All rows of one benchmark run.
#[derive(Debug, Clone, Default)]
pub struct EmbedBenchReport {
    /// Number of strings embedded per throughput row.
    pub strings: usize,
    /// Mean tokens per string (with `[CLS]`/`[SEP]`).
    pub mean_tokens: f64,
    /// The measurements.
    pub rows: Vec<BenchRow>,
}

impl std::fmt::Display for EmbedBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} strings, {:.1} tokens on average",
            self.strings, self.mean_tokens
        )?;
        writeln!(
            f,
            "{:<52} {:>10} {:>10} {:>8} {:>8} {:>8}",
            "case", "strings/s", "str/CPU-s", "pad eff", "p50 ms", "p99 ms"
        )?;
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |x| format!("{x:.2}"));
        for r in &self.rows {
            writeln!(
                f,
                "{:<52} {:>10.0} {:>10.0} {:>8.2} {:>8} {:>8}",
                r.case,
                r.strings_per_s,
                r.strings_per_cpu_s,
                r.padding_efficiency,
                ms(r.p50_ms),
                ms(r.p99_ms)
            )?;
        }
        Ok(())
    }
}

/// Reads `n` descriptions spread evenly over a CMS `icd10cm-codes-YYYY.txt` file (`CODE  text`
/// per line): line `i * lines / n` for `i` in `0..n`. `scripts/bench_reference.py` picks the
/// same lines.
pub fn read_icd10cm_terms(path: &Path, n: usize) -> std::io::Result<Vec<String>> {
    let text = std::fs::read_to_string(path)?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let n = n.min(lines.len());
    Ok((0..n)
        .map(|i| {
            let line = lines[i * lines.len() / n];
            line.split_once(char::is_whitespace)
                .map_or(line, |(_, d)| d)
                .trim()
                .to_string()
        })
        .collect())
}

fn padding(lens: &[usize], batches: &[Vec<usize>]) -> f64 {
    let real: usize = batches.iter().flatten().map(|&i| lens[i]).sum();
    let padded: usize = batches
        .iter()
        .map(|b| b.iter().map(|&i| lens[i]).max().unwrap_or(0) * b.len())
        .sum();
    real as f64 / padded.max(1) as f64
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i].as_secs_f64() * 1e3
}

/// CPU time (user + system) of this process so far, all threads, in seconds.
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    unsafe {
        let mut u: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut u) != 0 {
            return f64::NAN;
        }
        let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
        tv(u.ru_utime) + tv(u.ru_stime)
    }
}

fn latency_row(case: &str, mut lat: Vec<Duration>, cpu_s: f64) -> BenchRow {
    lat.sort();
    let mean = lat.iter().sum::<Duration>().as_secs_f64() / lat.len() as f64;
    BenchRow {
        case: case.to_string(),
        strings_per_s: 1.0 / mean,
        strings_per_cpu_s: lat.len() as f64 / cpu_s,
        padding_efficiency: 1.0,
        p50_ms: Some(percentile(&lat, 0.5)),
        p99_ms: Some(percentile(&lat, 0.99)),
    }
}

/// Runs every case on `terms` with the model in `model_dir`; `singles` texts are timed one by
/// one for the latency rows. Progress goes to stderr.
pub fn bench_embed(
    model_dir: &Path,
    terms: &[String],
    singles: usize,
) -> Result<EmbedBenchReport, EncoderError> {
    let enc = Encoder::load(model_dir)?;
    let tok = enc.tokenizer().clone();
    let n = terms.len();
    let t = Instant::now();
    let ids = tok.encode_many(terms)?;
    let tok_s = t.elapsed().as_secs_f64();
    let lens: Vec<usize> = ids.iter().map(Vec::len).collect();
    let mut report = EmbedBenchReport {
        strings: n,
        mean_tokens: lens.iter().sum::<usize>() as f64 / n.max(1) as f64,
        rows: Vec::new(),
    };
    report.rows.push(BenchRow {
        case: "tokenization only (encode_batch)".into(),
        strings_per_s: n as f64 / tok_s,
        strings_per_cpu_s: f64::NAN,
        padding_efficiency: 1.0,
        p50_ms: None,
        p99_ms: None,
    });
    // Warm up gemm's packing buffers and the allocator.
    enc.embed_texts(&terms[..n.min(128)], 32, false)?;

    let arrival: Vec<usize> = (0..n).collect();
    let mut by_len = arrival.clone();
    by_len.sort_by_key(|&i| lens[i]);
    for (case, order, bs) in [
        ("direct, batches of 32 as they come", &arrival, 32),
        ("direct, batches of 32 sorted by length", &by_len, 32),
        ("direct, batches of 64 sorted by length", &by_len, 64),
    ] {
        let batches: Vec<Vec<usize>> = order.chunks(bs).map(<[usize]>::to_vec).collect();
        let t = Instant::now();
        let c = process_cpu_seconds();
        for b in &batches {
            let batch: Vec<&[u32]> = b.iter().map(|&i| ids[i].as_slice()).collect();
            enc.embed_ids(&batch)?;
        }
        let secs = t.elapsed().as_secs_f64() + tok_s;
        let cpu = process_cpu_seconds() - c + tok_s;
        eprintln!("  {case}: {:.1}s", secs);
        report.rows.push(BenchRow {
            case: format!("{case} (incl. tokenize)"),
            strings_per_s: n as f64 / secs,
            strings_per_cpu_s: n as f64 / cpu,
            padding_efficiency: padding(&lens, &batches),
            p50_ms: None,
            p99_ms: None,
        });
    }

    let mut direct_lat = Vec::with_capacity(singles);
    let c = process_cpu_seconds();
    for t in terms.iter().take(singles) {
        let s = Instant::now();
        let ids = tok.encode(t)?;
        enc.embed_ids(&[ids])?;
        direct_lat.push(s.elapsed());
    }
    report.rows.push(latency_row(
        "direct, one text per call",
        direct_lat,
        process_cpu_seconds() - c,
    ));

    let engine = EngineHandle::spawn(enc, EngineConfig::default())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| EncoderError::Inference(e.to_string()))?;

    // Clients sending requests of 32 texts as they come, 8 at a time.
    let before = engine.stats();
    let t = Instant::now();
    let c = process_cpu_seconds();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for client in 0..8usize {
            let e = engine.clone();
            let mine: Vec<Vec<String>> = terms
                .chunks(32)
                .skip(client)
                .step_by(8)
                .map(<[String]>::to_vec)
                .collect();
            tasks.push(tokio::spawn(async move {
                for req in mine {
                    e.embed(req).await?;
                }
                Ok::<_, EncoderError>(())
            }));
        }
        for task in tasks {
            task.await
                .map_err(|e| EncoderError::Inference(e.to_string()))??;
        }
        Ok::<_, EncoderError>(())
    })?;
    let secs = t.elapsed().as_secs_f64();
    let after = engine.stats();
    report.rows.push(BenchRow {
        case: "engine, 8 clients x requests of 32 (bucketing)".into(),
        strings_per_s: n as f64 / secs,
        strings_per_cpu_s: n as f64 / (process_cpu_seconds() - c),
        padding_efficiency: (after.tokens - before.tokens) as f64
            / (after.padded_tokens - before.padded_tokens).max(1) as f64,
        p50_ms: None,
        p99_ms: None,
    });

    let before = engine.stats();
    let t = Instant::now();
    let c = process_cpu_seconds();
    engine.embed_blocking(terms)?;
    let secs = t.elapsed().as_secs_f64();
    let after = engine.stats();
    report.rows.push(BenchRow {
        case: "engine, one embed_blocking of all (ingest)".into(),
        strings_per_s: n as f64 / secs,
        strings_per_cpu_s: n as f64 / (process_cpu_seconds() - c),
        padding_efficiency: (after.tokens - before.tokens) as f64
            / (after.padded_tokens - before.padded_tokens).max(1) as f64,
        p50_ms: None,
        p99_ms: None,
    });

    let c = process_cpu_seconds();
    let lat = rt.block_on(async {
        let mut lat = Vec::with_capacity(singles);
        for t in terms.iter().take(singles) {
            let s = Instant::now();
            engine.embed_one(t).await?;
            lat.push(s.elapsed());
        }
        Ok::<_, EncoderError>(lat)
    })?;
    report.rows.push(latency_row(
        "engine, one text per request (embed_one)",
        lat,
        process_cpu_seconds() - c,
    ));
    Ok(report)
}
