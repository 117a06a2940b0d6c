//! External sort for staging a release: records are buffered in memory up to a byte budget,
//! spilled as sorted runs to files, and read back as one merged, sorted stream.
//!
//! Equal keys come out in the order they were pushed (runs are merged oldest first and each run
//! is sorted stably), so a caller can fold fragments of one record in arrival order.

use super::disk::DiskGuard;
use super::{StoreError, StoreResult};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

/// Default in-memory budget of one spool before it spills a run.
pub const SPOOL_BYTES: usize = 32 * 1024 * 1024;

/// Per-entry bookkeeping counted against the budget (two `Vec` headers).
const ENTRY_OVERHEAD: usize = 48;

fn io_err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Staging {
        path: path.to_path_buf(),
        source: e,
    }
}

/// A sort buffer that spills to sorted run files.
pub struct Spool {
    dir: PathBuf,
    name: &'static str,
    mem: Vec<(Vec<u8>, Vec<u8>)>,
    mem_bytes: usize,
    budget: usize,
    runs: Vec<PathBuf>,
    disk: Option<DiskGuard>,
    /// Records pushed.
    pub pushed: u64,
}

impl Spool {
    /// A spool whose runs go to `dir` (created on first spill) as `name-N.run`.
    pub fn new(dir: &Path, name: &'static str, budget: usize) -> Self {
        Self {
            dir: dir.to_path_buf(),
            name,
            mem: Vec::new(),
            mem_bytes: 0,
            budget,
            runs: Vec::new(),
            disk: None,
            pushed: 0,
        }
    }

    /// Check `disk`'s reserve before each run is spilled (runs share the store's disk).
    pub fn guarded(mut self, disk: &DiskGuard) -> Self {
        self.disk = Some(disk.clone());
        self
    }

    /// Add a record.
    pub fn push(&mut self, key: Vec<u8>, val: Vec<u8>) -> StoreResult<()> {
        self.mem_bytes += key.len() + val.len() + ENTRY_OVERHEAD;
        self.mem.push((key, val));
        self.pushed += 1;
        if self.mem_bytes >= self.budget {
            self.spill()?;
        }
        Ok(())
    }

    fn spill(&mut self) -> StoreResult<()> {
        if self.mem.is_empty() {
            return Ok(());
        }
        if let Some(d) = &self.disk {
            d.ensure(self.mem_bytes as u64)?;
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| io_err(&self.dir, e))?;
        let path = self
            .dir
            .join(format!("{}-{}.run", self.name, self.runs.len()));
        let f = File::create(&path).map_err(|e| io_err(&path, e))?;
        let mut w = BufWriter::with_capacity(1 << 20, f);
        self.mem.sort_by(|a, b| a.0.cmp(&b.0));
        for (k, v) in self.mem.drain(..) {
            write_record(&mut w, &k, &v).map_err(|e| io_err(&path, e))?;
        }
        w.flush().map_err(|e| io_err(&path, e))?;
        self.mem_bytes = 0;
        self.mem.shrink_to(1024);
        self.runs.push(path);
        Ok(())
    }

    /// Move everything pushed so far into the returned spool, leaving this one empty (same
    /// directory, name and budget). For the end of loading: the empty spool would spill runs
    /// under the same file names, so it must not be pushed to while the returned one is read.
    pub fn take(&mut self) -> Spool {
        let mut empty = Spool::new(&self.dir, self.name, self.budget);
        empty.disk = self.disk.clone();
        std::mem::replace(self, empty)
    }

    /// Number of run files written so far.
    pub fn runs(&self) -> usize {
        self.runs.len()
    }

    /// Everything pushed, sorted by key (ties in push order).
    pub fn into_sorted(mut self) -> StoreResult<Merged> {
        self.mem.sort_by(|a, b| a.0.cmp(&b.0));
        let mut sources: Vec<Source> = Vec::with_capacity(self.runs.len() + 1);
        for p in &self.runs {
            let f = File::open(p).map_err(|e| io_err(p, e))?;
            sources.push(Source::Run {
                reader: BufReader::with_capacity(256 * 1024, f),
                path: p.clone(),
            });
        }
        sources.push(Source::Mem(std::mem::take(&mut self.mem).into_iter()));
        let mut m = Merged {
            sources,
            heap: BinaryHeap::new(),
        };
        for i in 0..m.sources.len() {
            m.refill(i)?;
        }
        Ok(m)
    }
}

fn write_record(w: &mut impl Write, k: &[u8], v: &[u8]) -> std::io::Result<()> {
    w.write_all(&(k.len() as u32).to_le_bytes())?;
    w.write_all(k)?;
    w.write_all(&(v.len() as u32).to_le_bytes())?;
    w.write_all(v)
}

fn read_record(r: &mut impl Read) -> std::io::Result<Option<(Vec<u8>, Vec<u8>)>> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut k = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut k)?;
    r.read_exact(&mut len)?;
    let mut v = vec![0u8; u32::from_le_bytes(len) as usize];
    r.read_exact(&mut v)?;
    Ok(Some((k, v)))
}

enum Source {
    Run {
        reader: BufReader<File>,
        path: PathBuf,
    },
    Mem(std::vec::IntoIter<(Vec<u8>, Vec<u8>)>),
}

/// (key, source index, value) of the merge heap.
type HeapItem = (Vec<u8>, usize, Vec<u8>);

/// The merged, sorted stream of a [`Spool`].
pub struct Merged {
    sources: Vec<Source>,
    /// (key, source index, value): the smallest key first, ties by source (= push order).
    heap: BinaryHeap<Reverse<HeapItem>>,
}

impl Merged {
    fn refill(&mut self, i: usize) -> StoreResult<()> {
        let next = match &mut self.sources[i] {
            Source::Run { reader, path } => read_record(reader).map_err(|e| io_err(path, e))?,
            Source::Mem(it) => it.next(),
        };
        if let Some((k, v)) = next {
            self.heap.push(Reverse((k, i, v)));
        }
        Ok(())
    }

    /// Next record in key order.
    pub fn next_record(&mut self) -> StoreResult<Option<(Vec<u8>, Vec<u8>)>> {
        let Some(Reverse((k, i, v))) = self.heap.pop() else {
            return Ok(None);
        };
        self.refill(i)?;
        Ok(Some((k, v)))
    }

    /// Key of the record [`Merged::next_record`] would return.
    pub fn peek_key(&self) -> Option<&[u8]> {
        self.heap.peek().map(|Reverse((k, _, _))| k.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_across_runs_and_keeps_push_order_for_ties() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::new(dir.path(), "t", 200);
        let mut expect = Vec::new();
        for i in 0..500u32 {
            let k = format!("k{:03}", (i * 7919) % 97).into_bytes();
            let v = i.to_be_bytes().to_vec();
            expect.push((k.clone(), v.clone()));
            s.push(k, v).unwrap();
        }
        assert!(s.runs() > 3, "spilled");
        expect.sort_by(|a, b| a.0.cmp(&b.0)); // stable: ties keep push order
        let mut m = s.into_sorted().unwrap();
        let mut got = Vec::new();
        while let Some(r) = m.next_record().unwrap() {
            got.push(r);
        }
        assert_eq!(got, expect);
    }
}
