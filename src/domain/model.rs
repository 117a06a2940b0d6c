//! Records kept in the store: concepts with their terms, relations, mappings and releases.
//!
//! These types are what loaders produce and what the HTTP layer reads; they are encoded with
//! bincode inside sled, so changing a field is a schema change (see `migrations/`).

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// A reference to a concept: its system (upper-case, e.g. `ICD10CM`) and its code in that system.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema)]
pub struct ConceptRef {
    /// Terminology system, upper-case (`UMLS`, `ICD10CM`, `HPO`, ...).
    #[schema(example = "ICD10CM")]
    pub system: String,
    /// Code inside the system (`E11.9`, `C0011860`, `HP:0001250`).
    #[schema(example = "E11.9")]
    pub code: String,
}

impl ConceptRef {
    /// Build a reference from anything string-like.
    pub fn new(system: impl Into<String>, code: impl Into<String>) -> Self {
        Self {
            system: system.into(),
            code: code.into(),
        }
    }
}

/// What role a term plays for its concept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TermKind {
    /// The concept's preferred name.
    Preferred,
    /// An exact synonym.
    Synonym,
    /// An abbreviation or acronym.
    Abbreviation,
    /// An ICD inclusion term ("includes").
    Inclusion,
    /// A narrower synonym (OBO `NARROW`).
    Narrow,
    /// A broader synonym (OBO `BROAD`).
    Broad,
    /// A related synonym (OBO `RELATED`).
    Related,
    /// A short or display name (LOINC SHORTNAME, ICD short description).
    Short,
    /// A lay/consumer name.
    Consumer,
    /// A brand or trade name (RxNorm BN/SBD).
    Brand,
    /// A term that is retained but obsolete/suppressed in its source.
    Obsolete,
}

impl TermKind {
    /// True for kinds that denote the same meaning as the concept (used to build synonym pairs
    /// and to pick the matched term in search).
    pub fn is_equivalent(self) -> bool {
        matches!(
            self,
            TermKind::Preferred
                | TermKind::Synonym
                | TermKind::Abbreviation
                | TermKind::Short
                | TermKind::Consumer
                | TermKind::Brand
        )
    }
}

/// One surface string of a concept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Term {
    /// The string as published.
    pub text: String,
    /// Its role.
    pub kind: TermKind,
    /// Source vocabulary of the string when the release mixes several (UMLS SAB), else `None`.
    /// (No `skip_serializing_if` here: the type is bincode-encoded in the store.)
    #[serde(default)]
    pub source: Option<String>,
}

impl Term {
    /// A term without a separate source.
    pub fn new(text: impl Into<String>, kind: TermKind) -> Self {
        Self {
            text: text.into(),
            kind,
            source: None,
        }
    }
}

/// A concept as stored for one release of one system.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Concept {
    /// Code inside the system.
    pub code: String,
    /// Preferred name (also present in `terms` with kind `preferred`).
    pub preferred_term: String,
    /// All names, preferred first, deduplicated by (text, kind).
    pub terms: Vec<Term>,
    /// Semantic types or categories (UMLS STY, PheCODE category, LOINC CLASS).
    pub semantic_types: Vec<String>,
    /// False when the source marks the concept obsolete/deprecated/inactive.
    pub active: bool,
    /// Further published attributes (LOINC axes, replaced_by, ...).
    pub attributes: BTreeMap<String, String>,
}

impl Concept {
    /// A new active concept with a preferred name.
    pub fn new(code: impl Into<String>, preferred: impl Into<String>) -> Self {
        let preferred = preferred.into();
        Self {
            code: code.into(),
            terms: vec![Term::new(preferred.clone(), TermKind::Preferred)],
            preferred_term: preferred,
            active: true,
            ..Default::default()
        }
    }

    /// Add a term unless the same (text, kind) is already there; empty strings are ignored.
    pub fn add_term(&mut self, term: Term) {
        if term.text.trim().is_empty() {
            return;
        }
        if !self
            .terms
            .iter()
            .any(|t| t.kind == term.kind && t.text == term.text)
        {
            self.terms.push(term);
        }
    }

    /// Merge another fragment of the same concept into this one (used when a source lists a
    /// concept over several rows or files). A non-empty preferred term in `other` wins only when
    /// this concept has none.
    pub fn merge(&mut self, other: Concept) {
        if self.preferred_term.is_empty() && !other.preferred_term.is_empty() {
            self.preferred_term = other.preferred_term.clone();
        }
        for t in other.terms {
            self.add_term(t);
        }
        for s in other.semantic_types {
            if !self.semantic_types.contains(&s) {
                self.semantic_types.push(s);
            }
        }
        self.active = self.active && other.active;
        for (k, v) in other.attributes {
            self.attributes.entry(k).or_insert(v);
        }
    }
}

/// A directed relation `from --rel--> to` inside one system. For hierarchies `rel` is `is_a`
/// (or `part_of`) and `to` is the parent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    /// Source code (the child for hierarchical relations).
    pub from: String,
    /// Relation name: `is_a`, `part_of`, or a typed one such as `has_ingredient`.
    pub rel: String,
    /// Target code (the parent for hierarchical relations).
    pub to: String,
}

/// Relation names that make up the browsable hierarchy (parents/children/ancestors).
pub const HIERARCHY_RELS: &[&str] = &["is_a", "part_of"];

/// A crosswalk between concepts of two systems (ICD→PheCODE, ICD-9↔ICD-10 GEM, UMLS xref).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mapping {
    /// Mapped-from concept.
    pub from: ConceptRef,
    /// Mapped-to concept.
    pub to: ConceptRef,
    /// Kind of mapping: `maps_to`, `xref`, `gem_approximate`, `gem_exact`, ...
    pub relation: String,
    /// Where the mapping comes from (file or vocabulary), e.g. `phecode_map_v1_2`.
    pub source: String,
}

/// Lifecycle of a release in the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseState {
    /// Being written; invisible to readers; purged at start-up if the process died.
    Loading,
    /// The release readers see for its system.
    Active,
    /// Replaced by a newer release; its data is being garbage collected.
    Superseded,
}

/// Counts of what a release contains.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Counts {
    /// Concepts stored.
    pub concepts: u64,
    /// Terms stored (all kinds).
    pub terms: u64,
    /// Relations stored.
    pub relations: u64,
    /// Mappings stored.
    pub mappings: u64,
}

/// One release of one system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseInfo {
    /// Internal release id (monotonic); prefixes every key of the release.
    pub rid: u64,
    /// System name.
    pub system: String,
    /// Release label given at ingest (e.g. `2026AA`).
    pub release: String,
    /// Input format name.
    pub format: String,
    /// Lifecycle state.
    pub state: ReleaseState,
    /// What it contains.
    pub counts: Counts,
    /// RFC 3339 time the release became active (or started loading).
    pub loaded_at: String,
    /// Non-fatal findings (hierarchy cycles, skipped rows).
    pub warnings: Vec<String>,
}
