//! The embedding cache (sled tree `emb`: `model ‖ 0 ‖ text` → vector): a restart never
//! re-embeds, and a new release re-uses the vectors of every string it shares with earlier
//! ones. The search engine and the NoteContrast trainer (which reuses the served model's
//! vectors of code descriptions) both go through [`embed_through_cache`].
//!
//! ## Value format
//! Written as one tag byte [`F16_TAG`] followed by the vector in IEEE half precision,
//! little-endian: 769 bytes for a 384-d vector instead of 1,536, which halves the cache of a
//! full UMLS (~15M strings: ~11.5 GB instead of ~23 GB per model). A unit vector's components
//! lose at most 2⁻¹¹ of their value (cosine to the f32 vector ≥ 0.99999); [`decode_vector`]
//! scales the decoded vector back to unit length. Values written before (plain little-endian
//! f32, an even length) are still read, so an existing data directory needs no migration.

use crate::store::disk::DiskGuard;
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
/// served model's vectors of code descriptions) both go through here. New vectors are not
/// cached while `disk` says the store's file system is down to its reserve (the cache is a
/// shortcut; the vectors are returned all the same).
pub fn embed_through_cache<E: From<sled::Error>>(
    cache: &sled::Tree,
    disk: &DiskGuard,
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
            .map(|v| decode_vector(&v))
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
        let mut bytes = 0u64;
        for (&i, v) in missing.iter().zip(vecs) {
            let (k, e) = (emb_key(model, texts[i]), encode_vector(&v));
            bytes += (k.len() + e.len()) as u64;
            batch.insert(k, e);
            out[i] = Some(v);
        }
        match disk.ensure(bytes) {
            Ok(()) => cache.apply_batch(batch)?,
            Err(e) => tracing::warn!(error = %e, "embeddings not cached"),
        }
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

/// First byte of a half-precision cache value (the length of such a value is odd; a legacy
/// f32 value's is a multiple of 4).
pub const F16_TAG: u8 = 0xF1;

/// A vector as a cache value: [`F16_TAG`], then IEEE half-precision little-endian.
pub fn encode_vector(v: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + 2 * v.len());
    out.push(F16_TAG);
    for x in v {
        out.extend_from_slice(&half::f16::from_f32(*x).to_le_bytes());
    }
    out
}

/// A cache value as a vector: half precision (tagged) scaled back to the unit length, or a
/// legacy f32 value as written.
pub fn decode_vector(b: &[u8]) -> Vec<f32> {
    if b.len() % 2 == 1 && b.first() == Some(&F16_TAG) {
        let mut v: Vec<f32> = b[1..]
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect();
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        // encoders write unit vectors: undo the rounding's drift of the length only
        if (norm - 1.0).abs() < 0.01 {
            v.iter_mut().for_each(|x| *x /= norm);
        }
        return v;
    }
    b.chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn half_precision_values_round_trip_to_unit_vectors() {
        let mut v: Vec<f32> = (0..384)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0)
            .collect();
        let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
        let bytes = encode_vector(&v);
        assert_eq!(bytes.len(), 1 + 2 * 384);
        let back = decode_vector(&bytes);
        assert_eq!(back.len(), 384);
        let norm = back.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-6, "{norm}");
        let cos: f32 = v.iter().zip(&back).map(|(a, b)| a * b).sum();
        assert!(cos > 0.99999, "{cos}");
    }

    #[test]
    fn legacy_f32_values_are_still_read() {
        let v = vec![0.6f32, -0.8, 0.0, 0.0];
        let legacy: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(decode_vector(&legacy), v);
        // an f32 value whose first byte happens to be the tag is still f32 (even length)
        let odd = vec![f32::from_le_bytes([F16_TAG, 0, 0, 0]), 1.0];
        let bytes: Vec<u8> = odd.iter().flat_map(|x| x.to_le_bytes()).collect();
        assert_eq!(decode_vector(&bytes), odd);
    }

    #[test]
    fn the_cache_stores_half_precision_and_serves_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("emb").unwrap();
        let off = crate::store::disk::DiskGuard::new(dir.path(), 0);
        let unit = |a: f32, b: f32| {
            let n = (a * a + b * b).sqrt();
            vec![a / n, b / n]
        };
        let mut calls = 0;
        let mut embed = |t: &[&str]| -> Result<Vec<Vec<f32>>, sled::Error> {
            calls += 1;
            Ok(t.iter().map(|s| unit(s.len() as f32, 1.0)).collect())
        };
        let first =
            embed_through_cache(&tree, &off, "m", &["ab", "abc"], Some(2), &mut embed).unwrap();
        let again =
            embed_through_cache(&tree, &off, "m", &["abc", "ab"], Some(2), &mut embed).unwrap();
        assert_eq!(calls, 1, "the second call is served from the cache");
        let stored = tree.get(emb_key("m", "ab")).unwrap().unwrap();
        assert_eq!(stored.len(), 5, "tag + 2 halves");
        for (a, b) in first.iter().rev().zip(&again) {
            let cos: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
            assert!(cos > 0.99999);
        }
    }
}
