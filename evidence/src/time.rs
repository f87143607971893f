//! Timestamps: RFC 3339, UTC, milliseconds (`2025-06-07T18:04:05.123Z`), and the device clock.

use crate::error::{Error, Result};
use chrono::{DateTime, SecondsFormat, Utc};

/// Formats a UTC time the one way manifests carry it.
pub fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A POSIX time in seconds (e.g. a cosignature's), formatted; `None` beyond chrono's range.
pub fn from_unix_secs(secs: u64) -> Option<String> {
    i64::try_from(secs).ok().and_then(|t| DateTime::from_timestamp(t, 0)).map(format)
}

/// The current time, formatted.
pub fn now() -> String {
    format(Utc::now())
}

/// Parses any RFC 3339 time (any offset) and converts it to UTC. `what` names the field in errors.
pub fn parse(s: &str, what: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| Error::InvalidInput(format!("{what} is not an RFC 3339 time (e.g. 2025-06-07T18:04:05.123Z)")))
}

/// Parses a time that must already be in the canonical form ([`format()`]).
pub fn parse_canonical(s: &str, what: &str) -> Result<DateTime<Utc>> {
    let t = parse(s, what)?;
    if format(t) != s {
        return Err(Error::InvalidInput(format!(
            "{what} must be UTC with milliseconds, like 2025-06-07T18:04:05.123Z"
        )));
    }
    Ok(t)
}

/// Milliseconds since boot (monotonic; survives wall-clock changes), from /proc/uptime on Linux.
pub fn uptime_ms() -> u64 {
    std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse::<f64>().ok()))
        .map(|s| (s * 1000.0) as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn canonical_form() {
        let t = parse("2025-06-07T11:04:05-07:00", "t").unwrap();
        assert_eq!(format(t), "2025-06-07T18:04:05.000Z");
        assert!(parse_canonical("2025-06-07T18:04:05Z", "t").is_err());
        assert!(parse_canonical("2025-06-07T18:04:05.000Z", "t").is_ok());
        assert!(parse("yesterday", "t").is_err());
    }
}
