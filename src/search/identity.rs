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

use super::cache::emb_key;
use super::serving::VectorVariant;
use super::vector::VectorScalar;
use super::vector_store::usearch::EmbeddedStore;
use crate::encoder::precision::{vector_id, Precision};
use crate::encoder::{ModelKind, Registry};
use crate::store::Store;
use std::path::Path;

/// Tree of `model name → weights fingerprint` the vectors on disk were made with.
const TREE: &str = "model_weights";

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
) -> Result<(), sled::Error> {
    let tree = store.db().open_tree(TREE)?;
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
        match tree.get(info.name.as_bytes())? {
            Some(old) if old.as_ref() == now.as_bytes() => continue,
            Some(_) if read_only => {
                tracing::warn!(model = %info.name, "the model's weights changed since its vectors were built; read-only, so its old vectors are served as they are");
                continue;
            }
            Some(_) => {
                let files = remove_index_files(vectors_dir, &info.name);
                let cached = remove_cached(emb, &info.name)?;
                tracing::warn!(model = %info.name, files, cached, "the model's weights changed since its vectors were built: dropped them, catch-up re-embeds every term");
                if postgres {
                    tracing::warn!(model = %info.name, "term vectors in PostgreSQL are not dropped: drop the model's tables to re-embed them");
                }
            }
            None => {} // first time: record what the vectors are made with
        }
        tree.insert(info.name.as_bytes(), now.as_bytes())?;
        tree.flush()?;
    }
    Ok(())
}

/// Remove the embedded index of `name` in every variant (precision × dtype, named as
/// [`VectorVariant::index_name`] names them); returns how many files went.
fn remove_index_files(dir: &Path, name: &str) -> usize {
    Precision::ALL
        .into_iter()
        .flat_map(|precision| {
            VectorScalar::ALL
                .into_iter()
                .map(move |dtype| VectorVariant { precision, dtype })
        })
        .map(|v| EmbeddedStore::remove(dir, &v.index_name(name)))
        .sum()
}

/// Remove the cache entries of `name` in every precision (keyed by [`vector_id`]).
fn remove_cached(emb: &sled::Tree, name: &str) -> Result<usize, sled::Error> {
    let mut batch = sled::Batch::default();
    let mut n = 0;
    for precision in Precision::ALL {
        for kv in emb.scan_prefix(emb_key(&vector_id(name, precision), "")) {
            batch.remove(kv?.0);
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
    fn index_files_of_a_model_in_every_variant_and_no_other() {
        let dir = tempfile::tempdir().unwrap();
        let mine = [
            "m.state.json",
            "m.usearch",
            "m.usearch.keys",
            "m.usearch.json",
            "m@bf16.usearch",
            "m@bf16.i8.usearch.keys",
            "m.i8.state.json",
            "m.f16.usearch.json.tmp",
        ];
        let others = ["mx.usearch", "m-2.usearch", "other@bf16.usearch", "m.notes"];
        for f in mine.iter().chain(&others) {
            std::fs::write(dir.path().join(f), b"x").unwrap();
        }
        assert_eq!(remove_index_files(dir.path(), "m"), mine.len());
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        let mut want: Vec<String> = others.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(left, want);
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
