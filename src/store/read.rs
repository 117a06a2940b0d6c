//! Read queries over the active releases: concepts, hierarchy traversal, relations, mappings,
//! and term iteration for the indexes. Readers only ever see active releases.

use super::keys;
use super::model::{Concept, ConceptRef, ReleaseInfo, HIERARCHY_RELS};
use super::{decode, MapVal, Store, StoreResult, TermRow};
use std::collections::{HashSet, VecDeque};

/// Upper bound on the nodes a traversal returns (UMLS hierarchies can be huge).
pub const MAX_TRAVERSAL: usize = 10_000;

/// A concept of an active release with its release label.
#[derive(Debug, Clone)]
pub struct ConceptRecord {
    /// System.
    pub system: String,
    /// Release label.
    pub release: String,
    /// The concept.
    pub concept: Concept,
}

/// A mapping as seen from one concept.
#[derive(Debug, Clone, PartialEq)]
pub struct MappingView {
    /// The concept on the other side.
    pub target: ConceptRef,
    /// Relation as published.
    pub relation: String,
    /// Provenance.
    pub source: String,
    /// `forward` when the queried concept is the mapping's source, else `reverse`.
    pub direction: &'static str,
}

/// A typed relation as seen from one concept.
#[derive(Debug, Clone, PartialEq)]
pub struct RelationView {
    /// Relation name.
    pub rel: String,
    /// Other concept's code (same system).
    pub code: String,
    /// `out` for `this --rel--> code`, `in` for `code --rel--> this`.
    pub direction: &'static str,
}

impl Store {
    /// A concept of the active release of `system`.
    pub fn concept(&self, system: &str, code: &str) -> StoreResult<Option<ConceptRecord>> {
        let Some(rid) = self.active_rid(system) else {
            return Ok(None);
        };
        let Some(v) = self.inner.concepts.get(keys::concept_key(rid, code))? else {
            return Ok(None);
        };
        let concept: Concept = decode("concepts", &v)?;
        let release = self.release(rid)?.map(|r| r.release).unwrap_or_default();
        Ok(Some(ConceptRecord {
            system: system.to_string(),
            release,
            concept,
        }))
    }

    /// Whether `system` has an active release.
    pub fn has_system(&self, system: &str) -> bool {
        self.active_rid(system).is_some()
    }

    fn neighbours(
        &self,
        tree: &sled::Tree,
        rid: u64,
        code: &str,
        filter: &dyn Fn(&str) -> bool,
    ) -> StoreResult<Vec<(String, String)>> {
        let prefix = keys::rel_prefix(rid, code);
        let mut out = Vec::new();
        for k in tree.scan_prefix(&prefix).keys() {
            let k = k?;
            if let Some((rel, other)) = keys::rel_tail(&k[prefix.len()..]) {
                if filter(rel) {
                    out.push((rel.to_string(), other.to_string()));
                }
            }
        }
        Ok(out)
    }

    /// Direct parents (hierarchy relations) of a concept.
    pub fn parents(&self, system: &str, code: &str) -> StoreResult<Vec<String>> {
        self.hier_step(system, code, true)
    }

    /// Direct children of a concept.
    pub fn children(&self, system: &str, code: &str) -> StoreResult<Vec<String>> {
        self.hier_step(system, code, false)
    }

    fn hier_step(&self, system: &str, code: &str, up: bool) -> StoreResult<Vec<String>> {
        let Some(rid) = self.active_rid(system) else {
            return Ok(Vec::new());
        };
        let tree = if up {
            &self.inner.rel
        } else {
            &self.inner.rel_rev
        };
        let mut out: Vec<String> = self
            .neighbours(tree, rid, code, &|r| HIERARCHY_RELS.contains(&r))?
            .into_iter()
            .map(|(_, c)| c)
            .collect();
        out.dedup();
        Ok(out)
    }

    /// Ancestors (`up = true`) or descendants with their minimum depth, breadth-first, cycle-safe,
    /// at most [`MAX_TRAVERSAL`] nodes. Returns (code, depth) with depth ≥ 1.
    pub fn traverse(&self, system: &str, code: &str, up: bool) -> StoreResult<Vec<(String, u32)>> {
        let mut seen: HashSet<String> = HashSet::from([code.to_string()]);
        let mut queue = VecDeque::from([(code.to_string(), 0u32)]);
        let mut out = Vec::new();
        while let Some((c, d)) = queue.pop_front() {
            for next in self.hier_step(system, &c, up)? {
                if out.len() >= MAX_TRAVERSAL {
                    return Ok(out);
                }
                if seen.insert(next.clone()) {
                    out.push((next.clone(), d + 1));
                    queue.push_back((next, d + 1));
                }
            }
        }
        Ok(out)
    }

    /// Non-hierarchical relations of a concept, both directions.
    pub fn relations(&self, system: &str, code: &str) -> StoreResult<Vec<RelationView>> {
        let Some(rid) = self.active_rid(system) else {
            return Ok(Vec::new());
        };
        let typed = |r: &str| !HIERARCHY_RELS.contains(&r);
        let mut out = Vec::new();
        for (rel, c) in self.neighbours(&self.inner.rel, rid, code, &typed)? {
            out.push(RelationView {
                rel,
                code: c,
                direction: "out",
            });
        }
        for (rel, c) in self.neighbours(&self.inner.rel_rev, rid, code, &typed)? {
            out.push(RelationView {
                rel,
                code: c,
                direction: "in",
            });
        }
        Ok(out)
    }

    /// Mappings of a concept in both directions, from active releases only, optionally only
    /// those whose other side is in `target` system.
    pub fn mappings(
        &self,
        system: &str,
        code: &str,
        target: Option<&str>,
    ) -> StoreResult<Vec<MappingView>> {
        let active: HashSet<u64> = self.active_rids().into_values().collect();
        let prefix = keys::map_idx_prefix(system, code);
        let mut out = Vec::new();
        for (tree, forward) in [(&self.inner.map_idx, true), (&self.inner.map_rev, false)] {
            for k in tree.scan_prefix(&prefix).keys() {
                let k = k?;
                let Some((osys, ocode, rid)) = keys::map_idx_tail(&k[prefix.len()..]) else {
                    continue;
                };
                if !active.contains(&rid) || target.is_some_and(|t| t != osys) {
                    continue;
                }
                let pk = if forward {
                    keys::map_key(rid, system, code, osys, ocode)
                } else {
                    keys::map_key(rid, osys, ocode, system, code)
                };
                let Some(v) = self.inner.map.get(pk)? else {
                    continue;
                };
                let val: MapVal = decode("map", &v)?;
                let view = MappingView {
                    target: ConceptRef::new(osys, ocode),
                    relation: val.relation,
                    source: val.source,
                    direction: if forward { "forward" } else { "reverse" },
                };
                if !out.contains(&view) {
                    out.push(view);
                }
            }
        }
        Ok(out)
    }

    /// The active releases (one per system), sorted by system.
    pub fn sources(&self) -> StoreResult<Vec<ReleaseInfo>> {
        let mut out = Vec::new();
        for rid in self.active_rids().into_values() {
            if let Some(r) = self.release(rid)? {
                out.push(r);
            }
        }
        out.sort_by(|a, b| a.system.cmp(&b.system));
        Ok(out)
    }

    /// System of an active release id.
    pub fn system_of_rid(&self, rid: u64) -> Option<String> {
        self.inner
            .active_cache
            .read()
            .iter()
            .find(|(_, &r)| r == rid)
            .map(|(s, _)| s.clone())
    }

    /// One term by id (any release still stored).
    pub fn term(&self, term_id: u64) -> StoreResult<Option<TermRow>> {
        match self.inner.terms.get(term_id.to_be_bytes())? {
            Some(v) => Ok(Some(decode("terms", &v)?)),
            None => Ok(None),
        }
    }

    /// Iterate the terms of a release in id order.
    pub fn terms_of_release(
        &self,
        rid: u64,
    ) -> impl Iterator<Item = StoreResult<(u64, TermRow)>> + '_ {
        self.inner
            .terms
            .range((rid << 40).to_be_bytes()..((rid + 1) << 40).to_be_bytes())
            .map(|kv| {
                let (k, v) = kv?;
                Ok((keys::read_u64(&k), decode("terms", &v)?))
            })
    }

    /// Term ids of one concept (for concept vectors). Term ids are assigned in concept-key
    /// (code byte) order at commit, so a concept's terms are one contiguous run found by binary
    /// search over the release's term ids: O(log n) point reads.
    pub fn term_ids_of_concept(&self, system: &str, code: &str) -> StoreResult<Vec<u64>> {
        let Some(rid) = self.active_rid(system) else {
            return Ok(Vec::new());
        };
        let Some(info) = self.release(rid)? else {
            return Ok(Vec::new());
        };
        let base = rid << 40;
        let code_at = |i: u64| -> StoreResult<String> {
            Ok(self.term(base | i)?.map(|t| t.code).unwrap_or_default())
        };
        // lower bound of `code` in [0, n)
        let (mut lo, mut hi) = (0u64, info.counts.terms);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if code_at(mid)?.as_bytes() < code.as_bytes() {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let mut out = Vec::new();
        let mut i = lo;
        while i < info.counts.terms && code_at(i)? == code {
            out.push(base | i);
            i += 1;
        }
        Ok(out)
    }
}
