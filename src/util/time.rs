//! Timestamps as the API and the store write them: RFC 3339 in UTC, whole seconds
//! (`2026-11-18T11:06:40Z`), formatted by the `time` crate.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The current time as RFC 3339 (UTC, whole seconds).
pub fn now_rfc3339() -> String {
    rfc3339(OffsetDateTime::now_utc())
}

/// `t` as RFC 3339 in UTC, truncated to whole seconds.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t
        .to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t);
    t.format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_dates() {
        let at = |s: i64| OffsetDateTime::from_unix_timestamp(s).unwrap();
        assert_eq!(rfc3339(at(0)), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(at(1_795_000_000)), "2026-11-18T11:06:40Z");
        let frac = at(1_795_000_000) + time::Duration::milliseconds(750);
        assert_eq!(rfc3339(frac), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn now_parses_back() {
        let s = now_rfc3339();
        assert!(s.ends_with('Z') && s.len() == 20, "{s}");
        OffsetDateTime::parse(&s, &Rfc3339).unwrap();
    }
}
