//! `ontovec bench ...`: benchmarks that need whole processes (peak RSS) or real files, reported
//! side by side with a reference measured in the same run on the same machine.

pub mod load;
pub mod normalize;
pub mod scale;
pub mod texts;
pub mod train;
pub mod vectors;

use crate::ontology::synthetic;
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Runs `cmd` with stdout captured (stderr inherited) and returns whether it succeeded, its
/// stdout and **its own** peak resident set size in bytes (`wait4`'s rusage of that child, so
/// earlier children do not count).
pub(crate) fn run_measured(cmd: &mut Command) -> Result<(bool, String, u64)> {
    use std::io::Read;
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .spawn()?;
    let mut out = String::new();
    if let Some(mut s) = child.stdout.take() {
        s.read_to_string(&mut out)?;
    }
    let mut status = 0i32;
    // SAFETY: wait4 writes only into the two out-parameters; the pid is our unreaped child.
    let (rc, ru) = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        let rc = libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut ru);
        (rc, ru)
    };
    if rc < 0 {
        bail!("wait4: {}", std::io::Error::last_os_error());
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok((ok, out, (ru.ru_maxrss.max(0) as u64) * 1024))
}

/// Bytes of every file under `p` (recursively).
pub(crate) fn tree_bytes(p: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(p) else {
        return std::fs::metadata(p).map_or(0, |m| m.len());
    };
    entries
        .filter_map(|e| e.ok())
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            _ => e.metadata().map_or(0, |m| m.len()),
        })
        .sum()
}

/// What [`ingest_measures`] measured.
#[derive(Debug, Clone, Default)]
pub struct IngestMeasures {
    /// MRCONSO rows written.
    pub conso_rows: u64,
    /// MRREL rows written.
    pub rel_rows: u64,
    /// Input size in bytes.
    pub input_bytes: u64,
    /// Store ingest (parse, stage, commit), as the child reports it.
    pub store_secs: f64,
    /// Peak RSS of the ingest child.
    pub store_rss: u64,
    /// The store's bytes on disk.
    pub store_bytes: u64,
    /// Lexical index build (`ontovec reindex`).
    pub index_secs: f64,
    /// Peak RSS of the reindex child.
    pub index_rss: u64,
    /// The lexical index's bytes on disk.
    pub index_bytes: u64,
    /// Streaming line count of the same files (the I/O + parsing floor).
    pub ref_secs: f64,
    /// Lines counted.
    pub ref_lines: u64,
}

/// Writes a synthetic UMLS release of `rows` MRCONSO rows into `work`, ingests it in a child
/// process, builds its lexical index in a second one, and measures both (time, the child's
/// own peak RSS, bytes on disk), next to a plain streaming line count of the same files.
pub fn ingest_measures(rows: u64, work: &Path) -> Result<IngestMeasures> {
    let src = work.join("umls");
    let t = Instant::now();
    let syn = synthetic::write_umls(&src, rows).context("writing synthetic UMLS")?;
    let input_bytes: u64 = syn
        .files
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    eprintln!(
        "generated {} MRCONSO + {} MRREL rows ({:.0} MB) in {:.1}s",
        syn.conso_rows,
        syn.rel_rows,
        input_bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    // reference: stream every line of the same files
    let t = Instant::now();
    let mut ref_lines = 0u64;
    for f in &syn.files {
        use std::io::BufRead;
        let r = std::io::BufReader::with_capacity(1 << 20, std::fs::File::open(f)?);
        for l in r.split(b'\n') {
            l?;
            ref_lines += 1;
        }
    }
    let ref_secs = t.elapsed().as_secs_f64();
    let exe = std::env::current_exe()?;
    let data = work.join("data");
    let _ = std::fs::remove_dir_all(&data);
    // 1. the store: parse, stage, commit (what the loaders and the store must do in bounded memory)
    let t = Instant::now();
    let (ok, stdout, store_rss) = run_measured(
        Command::new(&exe)
            .arg("ingest")
            .arg("--data-dir")
            .arg(&data)
            // No models, so no embedding (measured by the encoder benches).
            .arg("--models-dir")
            .arg(work.join("no-models"))
            .args(["--format", "umls-rrf", "--release", "bench", "--skip-index"])
            .args(&syn.files)
            .env("ONTOVEC_LOG", "info"),
    )?;
    let secs = t.elapsed().as_secs_f64();
    if !ok {
        bail!("ingest failed");
    }
    let report: serde_json::Value =
        serde_json::from_str(&stdout).context("parsing the ingest report printed by the child")?;
    let store_secs = report["seconds"].as_f64().unwrap_or(secs);
    // 2. the derived lexical index, built from the store in a second process
    let t = Instant::now();
    let (ok, _, index_rss) = run_measured(
        Command::new(&exe)
            .arg("reindex")
            .arg("--data-dir")
            .arg(&data)
            .arg("--models-dir")
            .arg(work.join("no-models")),
    )?;
    let index_secs = t.elapsed().as_secs_f64();
    if !ok {
        bail!("reindex failed");
    }
    Ok(IngestMeasures {
        conso_rows: syn.conso_rows,
        rel_rows: syn.rel_rows,
        input_bytes,
        store_secs,
        store_rss,
        store_bytes: tree_bytes(&data.join("store")),
        index_secs,
        index_rss,
        index_bytes: tree_bytes(&data.join("indexes").join("lexical")),
        ref_secs,
        ref_lines,
    })
}

/// Ingest benchmark: [`ingest_measures`] on `rows` MRCONSO rows, printed as a table.
pub fn ingest(rows: u64, work: &Path) -> Result<()> {
    let m = ingest_measures(rows, work)?;
    let total_rows = m.conso_rows + m.rel_rows;
    println!("| measure | value |");
    println!("|---|---|");
    println!("| MRCONSO rows | {} |", m.conso_rows);
    println!("| MRREL rows | {} |", m.rel_rows);
    println!("| input size | {:.0} MB |", m.input_bytes as f64 / 1e6);
    println!(
        "| store ingest (parse, stage, commit) | {:.1} s |",
        m.store_secs
    );
    println!(
        "| store ingest rate (MRCONSO+MRREL rows) | {:.0} rows/s |",
        total_rows as f64 / m.store_secs
    );
    println!(
        "| peak RSS of the ingest process | {:.0} MB |",
        m.store_rss as f64 / 1e6
    );
    println!(
        "| lexical index build (`ontovec reindex`, 2nd process) | {:.1} s |",
        m.index_secs
    );
    println!(
        "| peak RSS of the index build process | {:.0} MB |",
        m.index_rss as f64 / 1e6
    );
    println!(
        "| store / lexical index on disk | {:.0} MB / {:.0} MB |",
        m.store_bytes as f64 / 1e6,
        m.index_bytes as f64 / 1e6
    );
    println!(
        "| reference: streaming line count of the same files | {:.2} s ({:.0} lines/s) |",
        m.ref_secs,
        m.ref_lines as f64 / m.ref_secs
    );
    println!(
        "| store ingest time / reference time | {:.1}x |",
        m.store_secs / m.ref_secs
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measured_child_reports_its_own_output_status_and_memory() {
        let (ok, out, rss) = run_measured(Command::new("sh").args(["-c", "echo hi"])).unwrap();
        assert!(ok && out == "hi\n" && rss > 0, "{ok} {out:?} {rss}");
        let (ok, _, _) = run_measured(Command::new("sh").args(["-c", "exit 3"])).unwrap();
        assert!(!ok);
    }

    #[test]
    fn tree_bytes_counts_nested_files() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("a/b")).unwrap();
        std::fs::write(d.path().join("x"), [0u8; 10]).unwrap();
        std::fs::write(d.path().join("a/b/y"), [0u8; 32]).unwrap();
        assert_eq!(tree_bytes(d.path()), 42);
        assert_eq!(tree_bytes(&d.path().join("x")), 10);
        assert_eq!(tree_bytes(&d.path().join("missing")), 0);
    }
}
