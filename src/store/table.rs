//! Release tables: the immutable, sorted key/value tables a release consists of, packed into
//! blocks inside one sled tree.
//!
//! A release never changes after it is committed (a new release replaces it whole), so its data
//! is written once, in key order, like an SSTable: entries are packed into blocks of about
//! [`BLOCK_BYTES`], and each block is one sled value under the key `rid ‖ table ‖ first key`.
//! This keeps sled's key count — and with it sled's memory and per-insert cost — about a
//! hundred times smaller than one sled key per record, while point lookups stay one sled seek
//! (`range(..=key).next_back()`) plus a scan of one small block.
//!
//! Block format: a sequence of entries `varint shared ‖ varint rest ‖ key[shared..] ‖ varint
//! vlen ‖ value`, keys prefix-compressed against the previous key of the block.

use super::disk::DiskGuard;
use super::{StoreError, StoreResult};

/// Default target size of one block (bytes of encoded entries).
pub const BLOCK_BYTES: usize = 16 * 1024;

/// Block size in use: [`BLOCK_BYTES`] unless `ONTOVEC_BLOCK_KB` says otherwise (a tuning knob
/// for benchmarks; readers handle any block size).
pub fn block_bytes() -> usize {
    static B: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *B.get_or_init(|| {
        std::env::var("ONTOVEC_BLOCK_KB")
            .ok()
            .and_then(|v| v.parse::<usize>().ok())
            .filter(|&kb| (1..=1024).contains(&kb))
            .map(|kb| kb * 1024)
            .unwrap_or(BLOCK_BYTES)
    })
}
/// Blocks written per sled batch.
const BLOCKS_PER_BATCH: usize = 64;

/// The tables of a release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Table {
    /// code → stored concept (first term id + [`crate::domain::model::Concept`]).
    Concepts = 1,
    /// term id (8 bytes, big-endian) → [`super::TermRow`].
    Terms = 2,
    /// `from 0 rel 0 to` → nothing.
    Rel = 3,
    /// `to 0 rel 0 from` → nothing.
    RelRev = 4,
    /// `from_sys 0 from_code 0 to_sys 0 to_code` → [`super::MapVal`].
    Map = 5,
    /// `to_sys 0 to_code 0 from_sys 0 from_code` → [`super::MapVal`].
    MapRev = 6,
    /// `F sys` / `T sys`: systems on the from/to side of the release's mappings.
    MapSystems = 7,
}

/// Prefix of every block key of one table of one release.
pub fn table_prefix(rid: u64, table: Table) -> [u8; 9] {
    let mut p = [0u8; 9];
    p[..8].copy_from_slice(&rid.to_be_bytes());
    p[8] = table as u8;
    p
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some(v);
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt {
        tree: "blocks",
        message: what.to_string(),
    }
}

/// Decodes the entries of one block in order.
pub struct BlockReader<'a> {
    data: &'a [u8],
    pos: usize,
    key: Vec<u8>,
}

impl<'a> BlockReader<'a> {
    /// Read `data`, a block as written by [`TableWriter`].
    pub fn new(data: &'a [u8]) -> Self {
        Self {
            data,
            pos: 0,
            key: Vec::new(),
        }
    }

    /// The next entry: the full key (valid until the next call) and the value.
    pub fn next_entry(&mut self) -> StoreResult<Option<(&[u8], &'a [u8])>> {
        if self.pos >= self.data.len() {
            return Ok(None);
        }
        let d = self.data;
        let mut p = self.pos;
        let shared = get_varint(d, &mut p).ok_or_else(|| corrupt("bad block entry"))? as usize;
        let rest = get_varint(d, &mut p).ok_or_else(|| corrupt("bad block entry"))? as usize;
        if shared > self.key.len() || p + rest > d.len() {
            return Err(corrupt("block entry out of bounds"));
        }
        self.key.truncate(shared);
        self.key.extend_from_slice(&d[p..p + rest]);
        p += rest;
        let vlen = get_varint(d, &mut p).ok_or_else(|| corrupt("bad block value"))? as usize;
        if p + vlen > d.len() {
            return Err(corrupt("block value out of bounds"));
        }
        let val = &d[p..p + vlen];
        self.pos = p + vlen;
        Ok(Some((&self.key, val)))
    }
}

/// Writes one table of one release: entries must come in strictly increasing key order.
pub struct TableWriter {
    tree: sled::Tree,
    prefix: [u8; 9],
    block: Vec<u8>,
    first_key: Vec<u8>,
    last_key: Vec<u8>,
    has_entries: bool,
    batch: sled::Batch,
    in_batch: usize,
    batch_bytes: u64,
    disk: Option<DiskGuard>,
    /// Entries written.
    pub entries: u64,
}

impl TableWriter {
    /// Start writing `table` of release `rid` into the blocks tree.
    pub fn new(tree: &sled::Tree, rid: u64, table: Table) -> Self {
        Self {
            tree: tree.clone(),
            prefix: table_prefix(rid, table),
            block: Vec::with_capacity(block_bytes() + 1024),
            first_key: Vec::new(),
            last_key: Vec::new(),
            has_entries: false,
            batch: sled::Batch::default(),
            in_batch: 0,
            batch_bytes: 0,
            disk: None,
            entries: 0,
        }
    }

    /// Check `disk`'s reserve before each batch of blocks goes to sled.
    pub fn guarded(mut self, disk: &DiskGuard) -> Self {
        self.disk = Some(disk.clone());
        self
    }

    fn apply(&mut self) -> StoreResult<()> {
        if let Some(d) = &self.disk {
            d.ensure(self.batch_bytes)?;
        }
        self.tree.apply_batch(std::mem::take(&mut self.batch))?;
        (self.in_batch, self.batch_bytes) = (0, 0);
        Ok(())
    }

    /// Append an entry. Keys must be strictly increasing; an equal or smaller key is a bug in
    /// the caller and is reported as an error rather than silently producing a broken table.
    pub fn push(&mut self, key: &[u8], val: &[u8]) -> StoreResult<()> {
        if self.has_entries && key <= self.last_key.as_slice() {
            return Err(StoreError::Aborted(format!(
                "table keys out of order ({:?} after {:?})",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(&self.last_key)
            )));
        }
        if self.block.is_empty() {
            self.first_key.clear();
            self.first_key.extend_from_slice(key);
            self.last_key.clear();
        }
        let shared = key
            .iter()
            .zip(self.last_key.iter())
            .take_while(|(a, b)| a == b)
            .count();
        put_varint(&mut self.block, shared as u64);
        put_varint(&mut self.block, (key.len() - shared) as u64);
        self.block.extend_from_slice(&key[shared..]);
        put_varint(&mut self.block, val.len() as u64);
        self.block.extend_from_slice(val);
        self.last_key.clear();
        self.last_key.extend_from_slice(key);
        self.has_entries = true;
        self.entries += 1;
        if self.block.len() >= block_bytes() {
            self.end_block()?;
        }
        Ok(())
    }

    fn end_block(&mut self) -> StoreResult<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let mut k = Vec::with_capacity(9 + self.first_key.len());
        k.extend_from_slice(&self.prefix);
        k.extend_from_slice(&self.first_key);
        self.batch_bytes += (k.len() + self.block.len()) as u64;
        self.batch.insert(k, std::mem::take(&mut self.block));
        self.block = Vec::with_capacity(block_bytes() + 1024);
        self.in_batch += 1;
        if self.in_batch >= BLOCKS_PER_BATCH {
            self.apply()?;
        }
        Ok(())
    }

    /// Write what is buffered. Returns the number of entries written.
    pub fn finish(mut self) -> StoreResult<u64> {
        self.end_block()?;
        self.apply()?;
        Ok(self.entries)
    }
}

/// Read access to release tables.
#[derive(Clone)]
pub struct Tables {
    tree: sled::Tree,
}

impl Tables {
    /// Tables stored in `tree`.
    pub fn new(tree: sled::Tree) -> Self {
        Self { tree }
    }

    /// The sled tree holding the blocks.
    pub fn tree(&self) -> &sled::Tree {
        &self.tree
    }

    /// The block that would hold `key` (the last block whose first key is ≤ `key`), or the
    /// table's first block when `key` sorts before all of them.
    fn block_for(&self, rid: u64, table: Table, key: &[u8]) -> StoreResult<Option<sled::IVec>> {
        let prefix = table_prefix(rid, table);
        let mut k = Vec::with_capacity(9 + key.len());
        k.extend_from_slice(&prefix);
        k.extend_from_slice(key);
        if let Some(kv) = self.tree.range(..=k).next_back() {
            let (bk, _) = kv?;
            if bk.starts_with(&prefix) {
                return Ok(Some(bk));
            }
        }
        match self.tree.scan_prefix(prefix).next() {
            Some(kv) => Ok(Some(kv?.0)),
            None => Ok(None),
        }
    }

    /// Value of `key` in `table` of release `rid`.
    pub fn get(&self, rid: u64, table: Table, key: &[u8]) -> StoreResult<Option<Vec<u8>>> {
        let prefix = table_prefix(rid, table);
        let mut k = Vec::with_capacity(9 + key.len());
        k.extend_from_slice(&prefix);
        k.extend_from_slice(key);
        let Some(kv) = self.tree.range(..=k).next_back() else {
            return Ok(None);
        };
        let (bk, block) = kv?;
        if !bk.starts_with(&prefix) {
            return Ok(None);
        }
        let mut r = BlockReader::new(&block);
        while let Some((ek, v)) = r.next_entry()? {
            match ek.cmp(key) {
                std::cmp::Ordering::Less => continue,
                std::cmp::Ordering::Equal => return Ok(Some(v.to_vec())),
                std::cmp::Ordering::Greater => return Ok(None),
            }
        }
        Ok(None)
    }

    /// Entries of `table` of release `rid` whose key starts with `key_prefix`, in key order
    /// (an empty prefix scans the whole table).
    pub fn scan(&self, rid: u64, table: Table, key_prefix: &[u8]) -> StoreResult<Scan> {
        let start = self.block_for(rid, table, key_prefix)?;
        let prefix = table_prefix(rid, table);
        let iter = start.map(|s| self.tree.range(s..));
        Ok(Scan {
            blocks: iter,
            table_prefix: prefix,
            key_prefix: key_prefix.to_vec(),
            pending: Vec::new(),
            done: false,
        })
    }

    /// Collect [`Tables::scan`] into a vector.
    pub fn scan_vec(
        &self,
        rid: u64,
        table: Table,
        key_prefix: &[u8],
    ) -> StoreResult<Vec<(Vec<u8>, Vec<u8>)>> {
        self.scan(rid, table, key_prefix)?.collect()
    }

    /// Delete every block of release `rid` (all tables).
    pub fn purge(&self, rid: u64) -> StoreResult<()> {
        loop {
            let mut batch = sled::Batch::default();
            let mut n = 0;
            for k in self.tree.scan_prefix(rid.to_be_bytes()).keys().take(1000) {
                batch.remove(k?);
                n += 1;
            }
            if n == 0 {
                return Ok(());
            }
            self.tree.apply_batch(batch)?;
        }
    }
}

/// Iterator returned by [`Tables::scan`].
pub struct Scan {
    blocks: Option<sled::Iter>,
    table_prefix: [u8; 9],
    key_prefix: Vec<u8>,
    /// Entries of the current block still to return, reversed (popped from the end).
    pending: Vec<(Vec<u8>, Vec<u8>)>,
    done: bool,
}

impl Scan {
    fn load_block(&mut self) -> StoreResult<bool> {
        let Some(it) = self.blocks.as_mut() else {
            return Ok(false);
        };
        let Some(kv) = it.next() else {
            return Ok(false);
        };
        let (bk, block) = kv?;
        if !bk.starts_with(&self.table_prefix) {
            return Ok(false);
        }
        let first = &bk[9..];
        // A block starting past every key with the prefix ends the scan.
        if first > self.key_prefix.as_slice() && !first.starts_with(&self.key_prefix) {
            return Ok(false);
        }
        let mut r = BlockReader::new(&block);
        let mut entries = Vec::new();
        while let Some((k, v)) = r.next_entry()? {
            if k.starts_with(&self.key_prefix) {
                entries.push((k.to_vec(), v.to_vec()));
            } else if k > self.key_prefix.as_slice() {
                break;
            }
        }
        entries.reverse();
        self.pending = entries;
        Ok(true)
    }
}

impl Iterator for Scan {
    type Item = StoreResult<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(e) = self.pending.pop() {
                return Some(Ok(e));
            }
            if self.done {
                return None;
            }
            match self.load_block() {
                Ok(true) => {
                    // An empty match in a block that starts before the prefix is normal (the
                    // prefix begins in the next block); keep going until a block starts past it.
                }
                Ok(false) => {
                    self.done = true;
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tables() -> (tempfile::TempDir, Tables) {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        (dir, Tables::new(db.open_tree("blocks").unwrap()))
    }

    #[test]
    fn write_get_scan_across_blocks() {
        let (_d, t) = tables();
        let mut w = TableWriter::new(t.tree(), 7, Table::Concepts);
        let keys: Vec<String> = (0..5000).map(|i| format!("C{i:06}")).collect();
        for k in &keys {
            w.push(k.as_bytes(), format!("v{k}").as_bytes()).unwrap();
        }
        assert_eq!(w.finish().unwrap(), 5000);
        // another table and release must not leak into this one
        let mut w = TableWriter::new(t.tree(), 7, Table::Terms);
        w.push(b"C000001", b"x").unwrap();
        w.finish().unwrap();
        let mut w = TableWriter::new(t.tree(), 8, Table::Concepts);
        w.push(b"A", b"x").unwrap();
        w.finish().unwrap();
        assert!(t.tree().len() > 3, "more than one block");
        for k in [&keys[0], &keys[1234], &keys[4999]] {
            assert_eq!(
                t.get(7, Table::Concepts, k.as_bytes()).unwrap(),
                Some(format!("v{k}").into_bytes())
            );
        }
        assert_eq!(t.get(7, Table::Concepts, b"C0000015").unwrap(), None);
        assert_eq!(t.get(7, Table::Concepts, b"A").unwrap(), None);
        assert_eq!(t.get(7, Table::Concepts, b"Z").unwrap(), None);
        let all = t.scan_vec(7, Table::Concepts, b"").unwrap();
        assert_eq!(all.len(), 5000);
        let some = t.scan_vec(7, Table::Concepts, b"C0012").unwrap();
        assert_eq!(some.len(), 100);
        assert!(some.iter().all(|(k, _)| k.starts_with(b"C0012")));
        assert!(t.scan_vec(7, Table::Concepts, b"D").unwrap().is_empty());
        assert!(t.scan_vec(7, Table::Rel, b"").unwrap().is_empty());
        t.purge(7).unwrap();
        assert!(t.scan_vec(7, Table::Concepts, b"").unwrap().is_empty());
        assert_eq!(t.scan_vec(8, Table::Concepts, b"").unwrap().len(), 1);
    }

    #[test]
    fn out_of_order_keys_are_refused() {
        let (_d, t) = tables();
        let mut w = TableWriter::new(t.tree(), 1, Table::Rel);
        w.push(b"b", b"").unwrap();
        assert!(w.push(b"a", b"").is_err());
        assert!(w.push(b"b", b"").is_err());
    }

    #[test]
    fn varint_roundtrip() {
        for v in [0u64, 1, 127, 128, 300, 1 << 40, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut p = 0;
            assert_eq!(get_varint(&b, &mut p), Some(v));
            assert_eq!(p, b.len());
        }
    }
}
