//! Run configurations: a preset, overridden field by field by a `--config` JSON file. Shared
//! by both trainers.

use anyhow::Context;
use std::path::Path;

/// `preset` with the fields of the JSON object in `file` (if any) merged over it: objects merge
/// key by key, any other value replaces.
pub fn with_overrides<T>(preset: T, file: Option<&Path>) -> anyhow::Result<T>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
{
    let mut v = serde_json::to_value(preset)?;
    if let Some(f) = file {
        let o: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(f).with_context(|| format!("reading {}", f.display()))?,
        )
        .with_context(|| format!("parsing {}", f.display()))?;
        merge(&mut v, o);
    }
    Ok(serde_json::from_value(v)?)
}

fn merge(into: &mut serde_json::Value, from: serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(serde_json::Value::Null), v);
            }
        }
        (slot, v) => *slot = v,
    }
}
