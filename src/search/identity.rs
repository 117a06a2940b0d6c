//! Vectors belong to weights, not to a folder name.
//!
//! A terms model's vectors (its usearch index files and its embedding-cache entries) are keyed
//! by the model's name and precision ([`crate::encoder::precision::vector_id`]). When the
//! weights in a model folder change under the same name — a model retrained into the same
//! folder, as `make run TRAIN=quick` does after the folder is deleted, or weights copied over —
//! the old vectors would keep being served next to queries embedded by the new weights, with
//! nothing to say so. The store therefore remembers each terms model's weights fingerprint
//! ([`crate::encoder::ModelManifest::weights_id`]) in the `model_weights` tree; at open, a
//! model whose fingerprint differs loses its index files and cache entries, so catch-up
//! re-embeds every term with the new weights. Not covered: term vectors kept in PostgreSQL
//! (the tables are left as they are and a warning says so) and the notes models' indexes.

use crate::encoder::{ModelKind, Registry};
use crate::store::Store;
use std::path::Path;

/// Tree of `model name → weights fingerprint` the vectors on disk were made with.
const TREE: &str = "model_weights";

/// What [`reconcile`] did for one model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// First time this model is seen: its fingerprint is recorded.
    Recorded,
    /// The weights are the ones the vectors were made with.
    Same,
    /// The weights changed: this many index files and cache entries were dropped.
    Dropped {
        /// Index files removed.
        files: usize,
        /// Embedding-cache entries removed.
        cached: usize,
    },
    /// The weights changed, but a read-only server may not drop anything: it says so and serves.
    ChangedReadOnly,
}

/// Check every terms model of `registry` against the fingerprints recorded in `store`, and drop
/// the vectors of those whose weights changed (see the module docs). `vectors_dir` holds the
/// embedded usearch indexes; `emb` is the embedding cache; `postgres` says the term vectors live
/// in PostgreSQL (only a warning then).
pub fn reconcile(
    store: &Store,
    registry: &Registry,
    vectors_dir: &Path,
    emb: &sled::Tree,
    read_only: bool,
    postgres: bool,
) -> Result<Vec<(String, Outcome)>, sled::Error> {
    let tree = store.db().open_tree(TREE)?;
    let mut out = Vec::new();
    for info in registry.list() {
        if info.kind != ModelKind::Terms {
            continue;
        }
        let Ok(handle) = registry.get(Some(&info.name), ModelKind::Terms) else {
            continue;
        };
        let now = handle.manifest().weights_id.clone();
        if now.is_empty() {
            continue; // built in memory (tests): nothing to compare
        }
        let outcome = match tree.get(info.name.as_bytes())? {
            None => Outcome::Recorded,
            Some(old) if old.as_ref() == now.as_bytes() => Outcome::Same,
            Some(_) if read_only => {
                tracing::warn!(model = %info.name, "the model's weights changed since its vectors were built; read-only, so its old vectors are served as they are");
                out.push((info.name.clone(), Outcome::ChangedReadOnly));
                continue;
            }
            Some(_) => {
                let files = remove_index_files(vectors_dir, &info.name);
                let cached = remove_cached(emb, &info.name)?;
                tracing::warn!(model = %info.name, files, cached, "the model's weights changed since its vectors were built: dropped them, catch-up re-embeds every term");
                if postgres {
                    tracing::warn!(model = %info.name, "term vectors in PostgreSQL are not dropped: drop the model's tables to re-embed them");
                }
                Outcome::Dropped { files, cached }
            }
        };
        if outcome != Outcome::Same {
            tree.insert(info.name.as_bytes(), now.as_bytes())?;
            tree.flush()?;
        }
        out.push((info.name.clone(), outcome));
    }
    Ok(out)
}

/// Whether `file` (a name under `indexes/vectors/`) belongs to model `name`: `name` followed by
/// `@precision` or by one of the index suffixes (`.state.json`, `.usearch…`, `.f16…`, `.i8…`).
fn belongs(file: &str, name: &str) -> bool {
    let Some(rest) = file.strip_prefix(name) else {
        return false;
    };
    rest.starts_with('@')
        || [".state.json", ".usearch", ".f16", ".i8"]
            .iter()
            .any(|s| rest.starts_with(s))
}

fn remove_index_files(dir: &Path, name: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut n = 0;
    for e in entries.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        if belongs(&file, name) {
            let p = e.path();
            let gone = if p.is_dir() {
                std::fs::remove_dir_all(&p)
            } else {
                std::fs::remove_file(&p)
            };
            n += usize::from(gone.is_ok());
        }
    }
    n
}

/// Remove the cache entries of `name` in every precision (keys `name\0text`, `name@p\0text`).
fn remove_cached(emb: &sled::Tree, name: &str) -> Result<usize, sled::Error> {
    let mut batch = sled::Batch::default();
    let mut n = 0;
    for kv in emb.scan_prefix(name.as_bytes()) {
        let (k, _) = kv?;
        let rest = &k[name.len()..];
        let mine = rest.first() == Some(&0) || rest.first() == Some(&b'@');
        if mine {
            batch.remove(k);
            n += 1;
        }
    }
    emb.apply_batch(batch)?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_files_of_a_model_and_no_other() {
        for f in [
            "m.state.json",
            "m.usearch",
            "m.usearch.keys",
            "m@bf16.usearch",
            "m@bf16.i8.usearch",
            "m.i8.state.json",
        ] {
            assert!(belongs(f, "m"), "{f}");
        }
        for f in ["mx.usearch", "m-2.usearch", "lexical", "other@bf16.usearch"] {
            assert!(!belongs(f, "m"), "{f}");
        }
    }

    #[test]
    fn cache_entries_of_a_model_in_every_precision() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let emb = db.open_tree("emb").unwrap();
        for k in [
            &b"m\0heart"[..],
            b"m@bf16\0heart",
            b"mx\0heart",
            b"n\0heart",
        ] {
            emb.insert(k, &b"v"[..]).unwrap();
        }
        assert_eq!(remove_cached(&emb, "m").unwrap(), 2);
        let left: Vec<Vec<u8>> = emb.iter().keys().map(|k| k.unwrap().to_vec()).collect();
        assert_eq!(left, vec![b"mx\0heart".to_vec(), b"n\0heart".to_vec()]);
    }
}
