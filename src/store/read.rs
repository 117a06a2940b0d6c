//! Read queries over the active releases: concepts, hierarchy traversal, relations, mappings,
//! and term iteration for the indexes. Readers only ever see active releases.

use super::keys;
use super::table::Table;
use super::{decode, MapSystems, MapVal, Store, StoreResult, StoredConcept, TermRow};
use crate::domain::model::{Concept, ConceptRef, ReleaseInfo, HIERARCHY_RELS};
use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

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
        let Some(stored) = self.stored_concept(rid, code)? else {
            return Ok(None);
        };
        let release = self.release(rid)?.map(|r| r.release).unwrap_or_default();
        Ok(Some(ConceptRecord {
            system: system.to_string(),
            release,
            concept: stored.concept,
        }))
    }

    fn stored_concept(&self, rid: u64, code: &str) -> StoreResult<Option<StoredConcept>> {
        match self
            .inner
            .tables
            .get(rid, Table::Concepts, code.as_bytes())?
        {
            Some(v) => Ok(Some(decode("concepts", &v)?)),
            None => Ok(None),
        }
    }

    /// Whether `system` has an active release.
    pub fn has_system(&self, system: &str) -> bool {
        self.active_rid(system).is_some()
    }

    fn neighbours(
        &self,
        table: Table,
        rid: u64,
        code: &str,
        filter: &dyn Fn(&str) -> bool,
    ) -> StoreResult<Vec<(String, String)>> {
        let prefix = keys::rel_body_prefix(code);
        let mut out = Vec::new();
        for kv in self.inner.tables.scan(rid, table, &prefix)? {
            let (k, _) = kv?;
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
        let table = if up { Table::Rel } else { Table::RelRev };
        let mut out: Vec<String> = self
            .neighbours(table, rid, code, &|r| HIERARCHY_RELS.contains(&r))?
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
        for (rel, c) in self.neighbours(Table::Rel, rid, code, &typed)? {
            out.push(RelationView {
                rel,
                code: c,
                direction: "out",
            });
        }
        for (rel, c) in self.neighbours(Table::RelRev, rid, code, &typed)? {
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
        let mut active: Vec<u64> = self.active_rids().into_values().collect();
        active.sort_unstable();
        let prefix = keys::map_body_prefix(system, code);
        let mut out = Vec::new();
        for rid in active {
            let systems = self.map_systems(rid)?;
            for (table, forward) in [(Table::Map, true), (Table::MapRev, false)] {
                // Skip releases whose mappings never have this system on the queried side.
                let side = if forward { &systems.from } else { &systems.to };
                if !side.contains(system) {
                    continue;
                }
                for kv in self.inner.tables.scan(rid, table, &prefix)? {
                    let (k, v) = kv?;
                    let Some((_, _, osys, ocode)) = keys::split4(&k) else {
                        continue;
                    };
                    if target.is_some_and(|t| t != osys) {
                        continue;
                    }
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
        }
        Ok(out)
    }

    /// Systems on each side of a release's mappings (cached; releases are immutable).
    pub fn map_systems(&self, rid: u64) -> StoreResult<Arc<MapSystems>> {
        if let Some(m) = self.inner.map_systems.read().get(&rid) {
            return Ok(m.clone());
        }
        let mut m = MapSystems::default();
        for kv in self.inner.tables.scan(rid, Table::MapSystems, b"")? {
            let (k, _) = kv?;
            let Some((&side, sys)) = k.split_first() else {
                continue;
            };
            let sys = String::from_utf8_lossy(sys).into_owned();
            if side == b'F' {
                m.from.insert(sys);
            } else {
                m.to.insert(sys);
            }
        }
        let m = Arc::new(m);
        self.inner.map_systems.write().insert(rid, m.clone());
        Ok(m)
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
        let rid = keys::term_rid(term_id);
        match self
            .inner
            .tables
            .get(rid, Table::Terms, &term_id.to_be_bytes())?
        {
            Some(v) => Ok(Some(decode("terms", &v)?)),
            None => Ok(None),
        }
    }

    /// Iterate the terms of a release in id order.
    pub fn terms_of_release(
        &self,
        rid: u64,
    ) -> impl Iterator<Item = StoreResult<(u64, TermRow)>> + '_ {
        let scan = self.inner.tables.scan(rid, Table::Terms, b"");
        let (scan, err) = match scan {
            Ok(s) => (Some(s), None),
            Err(e) => (None, Some(Err(e))),
        };
        err.into_iter().chain(scan.into_iter().flatten().map(|kv| {
            let (k, v) = kv?;
            Ok((keys::read_u64(&k), decode("terms", &v)?))
        }))
    }

    /// Term ids of one concept (for concept vectors): a concept's terms have consecutive ids
    /// starting at the id recorded with the concept.
    pub fn term_ids_of_concept(&self, system: &str, code: &str) -> StoreResult<Vec<u64>> {
        let Some(rid) = self.active_rid(system) else {
            return Ok(Vec::new());
        };
        let Some(stored) = self.stored_concept(rid, code)? else {
            return Ok(Vec::new());
        };
        let n = stored.concept.terms.len() as u64;
        Ok((stored.first_term..stored.first_term + n).collect())
    }

    /// Every concept of a release in code order.
    pub fn concepts_of_release(
        &self,
        rid: u64,
    ) -> StoreResult<impl Iterator<Item = StoreResult<Concept>>> {
        Ok(self
            .inner
            .tables
            .scan(rid, Table::Concepts, b"")?
            .map(|kv| {
                let (_, v) = kv?;
                let s: StoredConcept = decode("concepts", &v)?;
                Ok(s.concept)
            }))
    }
}
