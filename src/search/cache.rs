//! The embedding cache (sled tree `emb`: `model ‖ 0 ‖ text` → little-endian f32 vector): a
//! restart never re-embeds, and a new release re-uses the vectors of every string it shares
//! with earlier ones. The search engine and the NoteContrast trainer (which reuses the served
//! model's vectors of code descriptions) both go through [`embed_through_cache`].

use crate::store::Store;

/// Mean of vectors, L2-normalised (zero vector stays zero).
pub fn mean_normalized(vecs: &[Vec<f32>]) -> Vec<f32> {
    let dim = vecs.first().map(|v| v.len()).unwrap_or(0);
    let mut m = vec![0f32; dim];
    for v in vecs {
        for (a, b) in m.iter_mut().zip(v) {
            *a += b;
        }
    }
    let norm = m.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        m.iter_mut().for_each(|x| *x /= norm);
    }
    m
}

/// The embedding cache tree of a store (see the module docs).
pub fn embedding_cache(store: &Store) -> Result<sled::Tree, sled::Error> {
    store.db().open_tree("emb")
}

/// Embeddings of `texts` by `model`: from the embedding cache `cache` where it holds a vector
/// (of `dim` values, when given), the rest from `embed`, called once with every missing text,
/// and added to the cache. The search engine and the NoteContrast trainer (which reuses the
/// served model's vectors of code descriptions) both go through here.
pub fn embed_through_cache<E: From<sled::Error>>(
    cache: &sled::Tree,
    model: &str,
    texts: &[&str],
    dim: Option<usize>,
    embed: impl FnOnce(&[&str]) -> Result<Vec<Vec<f32>>, E>,
) -> Result<Vec<Vec<f32>>, E> {
    let mut out: Vec<Option<Vec<f32>>> = Vec::with_capacity(texts.len());
    let mut missing: Vec<usize> = Vec::new();
    for (i, t) in texts.iter().enumerate() {
        let v = cache
            .get(emb_key(model, t))?
            .map(|v| bytes_to_f32(&v))
            .filter(|v| dim.is_none_or(|d| v.len() == d));
        if v.is_none() {
            missing.push(i);
        }
        out.push(v);
    }
    if !missing.is_empty() {
        let todo: Vec<&str> = missing.iter().map(|&i| texts[i]).collect();
        let vecs = embed(&todo)?;
        let mut batch = sled::Batch::default();
        for (&i, v) in missing.iter().zip(vecs) {
            batch.insert(emb_key(model, texts[i]), f32_to_bytes(&v));
            out[i] = Some(v);
        }
        cache.apply_batch(batch)?;
    }
    Ok(out.into_iter().map(Option::unwrap_or_default).collect())
}

pub(super) fn emb_key(model: &str, text: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(model.len() + 1 + text.len());
    k.extend_from_slice(model.as_bytes());
    k.push(0);
    k.extend_from_slice(text.as_bytes());
    k
}

fn f32_to_bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(super) fn bytes_to_f32(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}
