//! The records every layer shares: concepts, terms, relations, mappings and releases
//! ([`model`]), the loader → store contract ([`sink`]), and the rules for system names.
//! The bottom of the import graph: it depends on no other ontovec module.

pub mod model;
pub mod sink;

/// A system name that breaks the naming rule.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid system name '{0}': use 1-32 letters, digits, '_' or '-'")]
pub struct InvalidSystem(pub String);

/// Normalise a user-given system name: upper-case, 1–32 characters of `[A-Z0-9_-]`.
pub fn normalize_system(system: &str) -> Result<String, InvalidSystem> {
    let s = system.trim().to_ascii_uppercase();
    if s.is_empty()
        || s.len() > 32
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        return Err(InvalidSystem(system.to_string()));
    }
    Ok(s)
}
