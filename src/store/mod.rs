//! The durable store (sled): source of truth for concepts, terms, relations, mappings, releases.

pub mod model;
