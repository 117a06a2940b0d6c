//! Real model vectors for `ontovec bench vectors --from-texts FILE --model DIR`: every line of a
//! text file embedded by a model folder, the way the server loads it (precision `auto`), so the
//! vector index is measured on the geometry a served model gives real strings rather than on
//! synthetic clusters. `scripts/scale-strings.py` writes such a file of a million strings from
//! the public vocabularies.
//!
//! Embedding a million strings takes minutes, so the vectors are kept next to the text file
//! (`FILE.VECTOR_ID.f32`: two little-endian `u64`s, count and dimension, then the `f32`s) and
//! reused while the line count matches.

use crate::encoder::{EngineConfig, PrecisionChoice, PrecisionPolicy};
use anyhow::{ensure, Context, Result};
use std::io::{BufRead, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Texts embedded per request, so progress and the rate show while it runs.
const CHUNK: usize = 20_000;

/// The non-empty lines of `file`, embedded by the model in `model_dir` (read from the vector
/// file kept beside it when there is one for this model, precision and line count).
pub fn embed_file(file: &Path, model_dir: &Path) -> Result<Vec<Vec<f32>>> {
    let texts = read_lines(file)?;
    ensure!(!texts.is_empty(), "{} has no text lines", file.display());
    let config = EngineConfig {
        precision: PrecisionPolicy {
            forced: None,
            default: PrecisionChoice::Auto,
        },
        ..EngineConfig::default()
    };
    let model = crate::encoder::registry::load_model(model_dir, config)
        .with_context(|| format!("loading {}", model_dir.display()))?;
    let vid = model.manifest().vector_id();
    let kept = kept_path(file, &vid);
    if let Some(v) = read_kept(&kept, texts.len())? {
        eprintln!("{} vectors of {vid} read from {}", v.len(), kept.display());
        return Ok(v);
    }
    let started = Instant::now();
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(CHUNK) {
        out.extend(model.embed_blocking(chunk)?);
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "embedded {}/{} with {vid}: {:.0} strings/s",
            out.len(),
            texts.len(),
            out.len() as f64 / secs.max(1e-9)
        );
    }
    write_kept(&kept, &out)?;
    Ok(out)
}

fn read_lines(file: &Path) -> Result<Vec<String>> {
    let f = std::fs::File::open(file).with_context(|| format!("opening {}", file.display()))?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(f).lines().enumerate() {
        let line = line.with_context(|| format!("{}:{}", file.display(), i + 1))?;
        let t = line.trim();
        if !t.is_empty() {
            out.push(t.to_string());
        }
    }
    Ok(out)
}

fn kept_path(file: &Path, vid: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(format!(".{}.f32", vid.replace('/', "_")));
    PathBuf::from(name)
}

fn read_kept(path: &Path, n: usize) -> Result<Option<Vec<Vec<f32>>>> {
    let Ok(f) = std::fs::File::open(path) else {
        return Ok(None);
    };
    let mut r = std::io::BufReader::with_capacity(1 << 20, f);
    let mut head = [0u8; 16];
    r.read_exact(&mut head)?;
    let count = u64::from_le_bytes(head[..8].try_into()?) as usize;
    let dim = u64::from_le_bytes(head[8..].try_into()?) as usize;
    if count != n || dim == 0 {
        return Ok(None);
    }
    let mut buf = vec![0u8; dim * 4];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        r.read_exact(&mut buf)
            .with_context(|| format!("{} is truncated", path.display()))?;
        out.push(
            buf.chunks_exact(4)
                .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect(),
        );
    }
    Ok(Some(out))
}

fn write_kept(path: &Path, vecs: &[Vec<f32>]) -> Result<()> {
    let dim = vecs.first().map_or(0, Vec::len);
    crate::util::fs::write_atomic_with(path, |tmp| -> std::io::Result<()> {
        let mut w = BufWriter::with_capacity(1 << 20, std::fs::File::create(tmp)?);
        w.write_all(&(vecs.len() as u64).to_le_bytes())?;
        w.write_all(&(dim as u64).to_le_bytes())?;
        for x in vecs.iter().flatten() {
            w.write_all(&x.to_le_bytes())?;
        }
        w.flush()
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_vectors_round_trip_and_a_changed_count_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("v.f32");
        let vecs = vec![vec![0.5f32, -1.0, 2.0], vec![0.0, 1.5, -0.25]];
        write_kept(&p, &vecs).unwrap();
        assert_eq!(read_kept(&p, 2).unwrap().unwrap(), vecs);
        assert!(read_kept(&p, 3).unwrap().is_none(), "other line count");
        assert!(read_kept(&dir.path().join("none"), 2).unwrap().is_none());
        assert_eq!(
            kept_path(Path::new("/a/s.txt"), "m@int8"),
            PathBuf::from("/a/s.txt.m@int8.f32")
        );
    }
}
