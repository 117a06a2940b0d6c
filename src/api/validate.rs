//! Request checks shared by the handlers, and the schema fragments that state them (the contract
//! test holds the server to what the schemas say): texts that are not only white space, counts
//! (`k`), system filters, fusion settings.

use super::error::ApiError;
use crate::search::fusion::FusionMethod;
use crate::search::query::DEFAULT_ALPHA;
pub use crate::search::query::MAX_K;
use serde::Deserialize;
use utoipa::ToSchema;

/// Largest batch of texts or mentions.
pub const MAX_BATCH: usize = 1024;
/// Largest query/text length in characters (Unicode scalar values, as JSON Schema counts).
pub const MAX_TEXT_CHARS: usize = 4096;
/// Largest number of systems in a filter.
pub const MAX_SYSTEMS: usize = 64;

/// White space, spelled out: Unicode White_Space plus the information separators U+001C..U+001F
/// (which Python counts as space). `\s` means different sets in different regex engines (ASCII
/// only, Unicode, ECMA with U+FEFF), so the schema lists the characters instead.
const SPACE_RANGES: &[(char, char)] = &[
    ('\t', '\r'),
    ('\u{1c}', ' '),
    ('\u{85}', '\u{85}'),
    ('\u{a0}', '\u{a0}'),
    ('\u{1680}', '\u{1680}'),
    ('\u{2000}', '\u{200a}'),
    ('\u{2028}', '\u{2029}'),
    ('\u{202f}', '\u{202f}'),
    ('\u{205f}', '\u{205f}'),
    ('\u{3000}', '\u{3000}'),
];

/// Whether `c` is white space in the sense of [`SPACE_RANGES`].
pub fn is_space(c: char) -> bool {
    SPACE_RANGES.iter().any(|(a, b)| (*a..=*b).contains(&c))
}

/// The white space of [`SPACE_RANGES`] as the inside of a JSON Schema character class.
pub fn space_class() -> String {
    let mut p = String::new();
    for (a, b) in SPACE_RANGES {
        p.push_str(&format!("\\u{:04x}", *a as u32));
        if a != b {
            p.push_str(&format!("-\\u{:04x}", *b as u32));
        }
    }
    p
}

/// The JSON Schema pattern of a text: some character that is not white space.
pub fn text_pattern() -> String {
    format!("[^{}]", space_class())
}

/// Schema of a text of 1..`max_chars` characters, not only white space.
pub(super) fn nonblank_text_schema(max_chars: usize) -> utoipa::openapi::Object {
    utoipa::openapi::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .min_length(Some(1))
        .max_length(Some(max_chars))
        .pattern(Some(text_pattern()))
        .build()
}

/// Schema of one query/mention/text: 1..4096 characters, not only white space.
pub(super) fn text_schema() -> utoipa::openapi::Object {
    nonblank_text_schema(MAX_TEXT_CHARS)
}

/// Schema of a list of 1..1024 texts.
pub(super) fn text_list_schema() -> utoipa::openapi::Array {
    utoipa::openapi::ArrayBuilder::new()
        .items(text_schema())
        .min_items(Some(1))
        .max_items(Some(MAX_BATCH))
        .build()
}

/// A count (`k`): JSON Schema's `integer` includes numbers such as `5.0`, so accept those too.
pub(super) fn de_count<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    use serde::de::Error;
    match Option::<serde_json::Number>::deserialize(d)? {
        None => Ok(None),
        Some(n) => {
            if let Some(u) = n.as_u64() {
                return Ok(Some(usize::try_from(u).unwrap_or(usize::MAX)));
            }
            match n.as_f64() {
                Some(f) if f.fract() == 0.0 && f >= 0.0 => Ok(Some(if f > usize::MAX as f64 {
                    usize::MAX
                } else {
                    f as usize
                })),
                _ => Err(D::Error::custom(format!(
                    "expected a non-negative integer, got {n}"
                ))),
            }
        }
    }
}

/// A text is not only white space (400).
pub(super) fn check_nonblank(field: &str, text: &str) -> Result<(), ApiError> {
    if text.chars().all(is_space) {
        return Err(ApiError::bad_request(format!(
            "'{field}' must hold something other than white space"
        )));
    }
    Ok(())
}

/// A text has at most `max` characters (400).
pub(super) fn check_chars(field: &str, text: &str, max: usize) -> Result<(), ApiError> {
    let n = text.chars().count();
    if n > max {
        return Err(ApiError::bad_request(format!(
            "'{field}' is {n} characters long; the limit is {max}"
        ))
        .with_details(serde_json::json!({"field": field, "limit_chars": max})));
    }
    Ok(())
}

/// A query/mention/text: 1..4096 characters, not only white space (what [`text_schema`] says).
pub(super) fn check_text(field: &str, text: &str) -> Result<(), ApiError> {
    check_nonblank(field, text)?;
    check_chars(field, text, MAX_TEXT_CHARS)
}

/// A batch holds 1..1024 items (400).
pub(super) fn check_batch<T>(field: &str, items: &[T], what: &str) -> Result<(), ApiError> {
    if items.is_empty() || items.len() > MAX_BATCH {
        return Err(ApiError::bad_request(format!(
            "'{field}' must hold 1 to {MAX_BATCH} {what}"
        )));
    }
    Ok(())
}

/// `k`, or `default` when absent: 1..=1000 (400).
pub(super) fn check_k(k: Option<usize>, default: usize) -> Result<usize, ApiError> {
    let k = k.unwrap_or(default);
    if k == 0 || k > MAX_K {
        return Err(ApiError::bad_request(format!(
            "k must be between 1 and {MAX_K}, got {k}"
        )));
    }
    Ok(k)
}

/// A filter lists 1..64 systems. Names are not checked here: one with no loaded release
/// (empty or overlong ones included) answers 404 `unknown_system` from the engine.
pub(super) fn check_systems(systems: &Option<Vec<String>>) -> Result<(), ApiError> {
    if let Some(s) = systems {
        if s.is_empty() || s.len() > MAX_SYSTEMS {
            return Err(ApiError::bad_request(format!(
                "'systems' must list 1 to {MAX_SYSTEMS} system names"
            )));
        }
    }
    Ok(())
}

/// How hybrid search fuses its two ranked lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FusionName {
    /// Reciprocal rank fusion.
    Rrf,
    /// Alpha-weighted sum of min-max-normalised scores.
    Weighted,
    /// The learned concept-level hybrid (calibrated probability; the default).
    Learned,
}

/// Fusion settings for hybrid search.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FusionParams {
    /// `learned` (concept-level features + cross-system bridges, calibrated probability),
    /// `rrf` (reciprocal rank fusion) or `weighted` (alpha-weighted min-max-normalised scores).
    /// Default: `weighted` when `alpha` is given, `rrf` when `rrf_k` is, else `learned`.
    pub method: Option<FusionName>,
    /// RRF constant (default 60), in (0, 10000].
    #[schema(exclusive_minimum = 0, maximum = 10000)]
    pub rrf_k: Option<f64>,
    /// Weight of the vector side in weighted fusion, 0..1 (default 0.9).
    #[schema(minimum = 0, maximum = 1)]
    pub alpha: Option<f64>,
}

/// The fusion a request asks for (every given field is checked, whichever method it belongs
/// to), or the default one.
pub(super) fn fusion(p: &Option<FusionParams>) -> Result<FusionMethod, ApiError> {
    let Some(p) = p else {
        return Ok(crate::search::query::DEFAULT_FUSION);
    };
    let k = p.rrf_k.unwrap_or(60.0);
    if !(k.is_finite() && k > 0.0 && k <= 10_000.0) {
        return Err(ApiError::bad_request("rrf_k must be in (0, 10000]"));
    }
    let alpha = p.alpha.unwrap_or(f64::from(DEFAULT_ALPHA));
    if !(0.0..=1.0).contains(&alpha) {
        return Err(ApiError::bad_request("alpha must be in [0, 1]"));
    }
    let method = p.method.unwrap_or(match (p.alpha, p.rrf_k) {
        (Some(_), _) => FusionName::Weighted,
        (None, Some(_)) => FusionName::Rrf,
        (None, None) => FusionName::Learned,
    });
    Ok(match method {
        FusionName::Learned => crate::search::query::DEFAULT_FUSION,
        // A tiny positive constant stays positive in f32.
        FusionName::Rrf => FusionMethod::Rrf {
            k: (k as f32).max(f32::MIN_POSITIVE),
        },
        FusionName::Weighted => FusionMethod::Weighted {
            alpha: alpha as f32,
        },
    })
}
