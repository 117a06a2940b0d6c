//! A small in-memory Okapi BM25 (k1 = 1.2, b = 0.75) over short documents, with the search
//! analyzer's words. The lexical baseline of the coding evaluation: each code is a document
//! (its description and equivalent names), each note a query; a note's code scores are the
//! BM25 sums over its distinct words.

use crate::search::analyzer;
use std::collections::HashMap;

/// An inverted index over documents `0..n`.
#[derive(Debug, Default)]
pub struct Bm25 {
    postings: HashMap<String, Vec<(u32, u32)>>,
    lens: Vec<f32>,
    avg: f32,
}

const K1: f32 = 1.2;
const B: f32 = 0.75;

impl Bm25 {
    /// Index `docs` (document `i` is `docs[i]`).
    pub fn new<S: AsRef<str>>(docs: &[S]) -> Self {
        let mut postings: HashMap<String, Vec<(u32, u32)>> = HashMap::new();
        let mut lens = Vec::with_capacity(docs.len());
        for (i, d) in docs.iter().enumerate() {
            let words = analyzer::parts(d.as_ref());
            lens.push(words.len() as f32);
            let mut tf: HashMap<String, u32> = HashMap::new();
            for w in words {
                *tf.entry(w).or_default() += 1;
            }
            for (w, c) in tf {
                postings.entry(w).or_default().push((i as u32, c));
            }
        }
        let avg = lens.iter().sum::<f32>() / lens.len().max(1) as f32;
        Self {
            postings,
            lens,
            avg: avg.max(1e-6),
        }
    }

    /// BM25 score of every document for `query` (distinct query words, each counted once).
    pub fn scores(&self, query: &str) -> Vec<f32> {
        let n = self.lens.len() as f32;
        let mut out = vec![0f32; self.lens.len()];
        let mut seen = std::collections::HashSet::new();
        for w in analyzer::parts(query) {
            if !seen.insert(w.clone()) {
                continue;
            }
            let Some(p) = self.postings.get(&w) else {
                continue;
            };
            let df = p.len() as f32;
            let idf = ((n - df + 0.5) / (df + 0.5) + 1.0).ln();
            for &(d, tf) in p {
                let tf = tf as f32;
                let norm = K1 * (1.0 - B + B * self.lens[d as usize] / self.avg);
                out[d as usize] += idf * tf * (K1 + 1.0) / (tf + norm);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching_words_rank_first() {
        let b = Bm25::new(&[
            "essential hypertension",
            "type 2 diabetes mellitus",
            "asthma",
        ]);
        let s = b.scores("patient with diabetes and hypertension, diabetes controlled");
        assert!(s[0] > 0.0 && s[1] > 0.0);
        assert_eq!(s[2], 0.0);
    }
}
