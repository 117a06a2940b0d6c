//! Held-out terms for evaluation: a [`Sink`] wrapper that removes a deterministic fraction of
//! each concept's non-preferred names (synonyms, abbreviations, inclusion terms, ...) before they
//! reach the store, and writes them to a gold TSV (`mention`, `system`, `code`). A data directory
//! ingested this way has never seen the gold mentions, so normalisation can be evaluated on
//! strings neither the lexical nor the vector index contains.

use super::{LoadError, Sink};
use crate::domain::model::{Concept, Mapping, Relation, TermKind};
use crate::util::hash::fnv1a64;
use std::io::Write;

/// Whether a (system, code, text) is in the held-out fraction.
pub fn is_held_out(system: &str, code: &str, text: &str, fraction: f64) -> bool {
    let key = format!("{system}\u{1}{code}\u{1}{text}");
    (fnv1a64(key.as_bytes()) % 10_000) as f64 / 10_000.0 < fraction
}

/// Wraps a sink and holds out a fraction of non-preferred terms.
pub struct HoldOutSink<'a, W: Write> {
    inner: &'a mut dyn Sink,
    system: String,
    fraction: f64,
    gold: W,
    /// Terms held out so far.
    pub held_out: u64,
}

impl<'a, W: Write> HoldOutSink<'a, W> {
    /// Hold out `fraction` (0..1) of terms of `system`, writing gold rows to `gold`.
    pub fn new(inner: &'a mut dyn Sink, system: &str, fraction: f64, gold: W) -> Self {
        Self {
            inner,
            system: system.to_string(),
            fraction,
            gold,
            held_out: 0,
        }
    }
}

fn holdable(kind: TermKind) -> bool {
    matches!(
        kind,
        TermKind::Synonym | TermKind::Abbreviation | TermKind::Inclusion | TermKind::Consumer
    )
}

impl<W: Write> Sink for HoldOutSink<'_, W> {
    fn concept(&mut self, mut concept: Concept) -> Result<(), LoadError> {
        let mut kept = Vec::with_capacity(concept.terms.len());
        for t in std::mem::take(&mut concept.terms) {
            let clean = !t.text.contains(['\t', '\n', '\r']);
            if clean
                && holdable(t.kind)
                && t.text != concept.preferred_term
                && is_held_out(&self.system, &concept.code, &t.text, self.fraction)
            {
                writeln!(self.gold, "{}\t{}\t{}", t.text, self.system, concept.code)
                    .map_err(|e| LoadError::Store(format!("cannot write gold file: {e}")))?;
                self.held_out += 1;
            } else {
                kept.push(t);
            }
        }
        concept.terms = kept;
        self.inner.concept(concept)
    }
    fn relation(&mut self, relation: Relation) -> Result<(), LoadError> {
        self.inner.relation(relation)
    }
    fn mapping(&mut self, mapping: Mapping) -> Result<(), LoadError> {
        self.inner.mapping(mapping)
    }
    fn warning(&mut self, message: String) {
        self.inner.warning(message)
    }
    fn progress(&mut self, bytes_done: u64) -> Result<(), LoadError> {
        self.inner.progress(bytes_done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::model::Term;
    use crate::ontology::MemorySink;

    #[test]
    fn holds_out_a_stable_fraction_and_writes_gold() {
        let mut mem = MemorySink::default();
        let mut gold = Vec::new();
        {
            let mut s = HoldOutSink::new(&mut mem, "HPO", 0.3, &mut gold);
            for i in 0..200 {
                let mut c = Concept::new(format!("HP:{i:07}"), format!("term {i}"));
                c.add_term(Term::new(format!("synonym {i}"), TermKind::Synonym));
                s.concept(c).unwrap();
            }
            assert!(s.held_out > 30 && s.held_out < 90, "{}", s.held_out);
        }
        let gold = String::from_utf8(gold).unwrap();
        let first = gold.lines().next().unwrap();
        let cols: Vec<&str> = first.split('\t').collect();
        assert_eq!(cols.len(), 3);
        let code = cols[2];
        assert!(!mem.concepts[code].terms.iter().any(|t| t.text == cols[0]));
        assert_eq!(mem.concepts[code].terms[0].kind, TermKind::Preferred);
        assert!(is_held_out("HPO", code, cols[0], 0.3));
    }
}
