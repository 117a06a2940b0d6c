//! `ontovec bench ...`: benchmarks that need whole processes (peak RSS) or real files, reported
//! side by side with a reference measured in the same run on the same machine.

pub mod load;
pub mod normalize;
pub mod train;
pub mod vectors;

use crate::ontology::synthetic;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Peak resident set size of finished children, in bytes.
fn children_max_rss() -> u64 {
    // SAFETY: getrusage only writes into the struct we pass.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) == 0 {
            (ru.ru_maxrss as u64) * 1024
        } else {
            0
        }
    }
}

/// Ingest benchmark: write a synthetic UMLS release of `rows` MRCONSO rows, ingest it in a child
/// process, and report rows/s and the child's peak RSS, next to the time a plain streaming line
/// count of the same files takes (the I/O + parsing floor on this machine).
pub fn ingest(rows: u64, work: &Path) -> Result<()> {
    let src = work.join("umls");
    let t = Instant::now();
    let syn = synthetic::write_umls(&src, rows).context("writing synthetic UMLS")?;
    let bytes: u64 = syn
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    eprintln!(
        "generated {} MRCONSO + {} MRREL rows ({:.0} MB) in {:.1}s",
        syn.conso_rows,
        syn.rel_rows,
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    // reference: stream every line of the same files
    let t = Instant::now();
    let mut lines = 0u64;
    for f in &syn.files {
        use std::io::BufRead;
        let r = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(f)?);
        for l in r.split(b'\n') {
            l?;
            lines += 1;
        }
    }
    let ref_secs = t.elapsed().as_secs_f64();
    let exe = std::env::current_exe()?;
    let data = work.join("data");
    let _ = std::fs::remove_dir_all(&data);
    // 1. the store: parse, stage, commit (what the loaders and the store must do in bounded memory)
    let t = Instant::now();
    let out = Command::new(&exe)
        .arg("ingest")
        .arg("--data-dir")
        .arg(&data)
        // No models, so no embedding (measured by the encoder benches).
        .arg("--models-dir")
        .arg(work.join("no-models"))
        .args(["--format", "umls-rrf", "--release", "bench", "--skip-index"])
        .args(&syn.files)
        .env("ONTOVEC_LOG", "info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .output()?;
    let secs = t.elapsed().as_secs_f64();
    if !out.status.success() {
        bail!("ingest failed: {}", out.status);
    }
    let rss = children_max_rss();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout)
        .context("parsing the ingest report printed by the child")?;
    let store_secs = report["seconds"].as_f64().unwrap_or(secs);
    // 2. the derived lexical index, built from the store in a second process
    let t = Instant::now();
    let status = Command::new(&exe)
        .arg("reindex")
        .arg("--data-dir")
        .arg(&data)
        .arg("--models-dir")
        .arg(work.join("no-models"))
        .stdout(std::process::Stdio::null())
        .status()?;
    let index_secs = t.elapsed().as_secs_f64();
    if !status.success() {
        bail!("reindex failed: {status}");
    }
    // getrusage(RUSAGE_CHILDREN) reports the largest child so far.
    let index_rss = children_max_rss();
    let total_rows = syn.conso_rows + syn.rel_rows;
    println!("| measure | value |");
    println!("|---|---|");
    println!("| MRCONSO rows | {} |", syn.conso_rows);
    println!("| MRREL rows | {} |", syn.rel_rows);
    println!("| input size | {:.0} MB |", bytes as f64 / 1e6);
    println!("| store ingest (parse, stage, commit) | {store_secs:.1} s |");
    println!(
        "| store ingest rate (MRCONSO+MRREL rows) | {:.0} rows/s |",
        total_rows as f64 / store_secs
    );
    println!(
        "| peak RSS of the ingest process | {:.0} MB |",
        rss as f64 / 1e6
    );
    println!("| lexical index build (`ontovec reindex`, 2nd process) | {index_secs:.1} s |");
    println!(
        "| peak RSS of the larger process (index build if above) | {:.0} MB |",
        index_rss.max(rss) as f64 / 1e6
    );
    println!(
        "| reference: streaming line count of the same files | {:.2} s ({:.0} lines/s) |",
        ref_secs,
        lines as f64 / ref_secs
    );
    println!(
        "| store ingest time / reference time | {:.1}x |",
        store_secs / ref_secs
    );
    Ok(())
}
