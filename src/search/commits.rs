//! What the two tantivy indexes (terms in [`super::lexical`], notes in
//! [`crate::notes::index`]) do alike: a writer opened clean, a reader reloaded by hand, and
//! commits that carry a JSON payload saying how far into the store the index reaches, so a
//! restart knows where to go on from.

use super::{index_err, SearchError};
use parking_lot::Mutex;
use serde::{de::DeserializeOwned, Serialize};
use tantivy::{Index, IndexReader, IndexWriter, ReloadPolicy};

/// The payload of the last commit of `index` (`T::default()` before the first commit).
pub fn last_payload<T: DeserializeOwned + Default>(index: &Index) -> Result<T, SearchError> {
    match index.load_metas()?.payload {
        Some(p) => serde_json::from_str(&p)
            .map_err(|e| SearchError::Index(format!("bad commit payload {p:?}: {e}"))),
        None => Ok(T::default()),
    }
}

/// A writer with `threads` threads sharing `budget` bytes, after removing the files no commit
/// refers to. A process killed mid-commit leaves such files (e.g. a segment's `.del` file); a
/// later delete with the same opstamp would fail creating that name (seen in
/// tests/faults.rs), so they go before the first write.
pub fn clean_writer(
    index: &Index,
    threads: usize,
    budget: usize,
) -> Result<IndexWriter, SearchError> {
    let writer: IndexWriter = index.writer_with_num_threads(threads, budget)?;
    writer.garbage_collect_files().wait()?;
    Ok(writer)
}

/// A reader that sees a commit only when [`commit_with_payload`] reloads it.
pub fn manual_reader(index: &Index) -> Result<IndexReader, SearchError> {
    Ok(index
        .reader_builder()
        .reload_policy(ReloadPolicy::Manual)
        .try_into()?)
}

/// Commit what `writer` buffered with `payload`, then make it visible through `reader`.
pub fn commit_with_payload<T: Serialize>(
    writer: &Mutex<IndexWriter>,
    reader: &IndexReader,
    payload: &T,
) -> Result<(), SearchError> {
    let payload = serde_json::to_string(payload).map_err(index_err)?;
    {
        let mut w = writer.lock();
        let mut prepared = w.prepare_commit()?;
        prepared.set_payload(&payload);
        prepared.commit()?;
    }
    reader.reload()?;
    Ok(())
}
