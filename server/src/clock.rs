//! The server clock in the forms the protocol uses: Unix milliseconds (request timestamps,
//! expiries), RFC 3339 with milliseconds (documents) and HTTP-date (`Upload-Expires`).

/// Now, Unix ms.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// RFC 3339 UTC with milliseconds of a Unix-ms time (empty if out of range).
pub(crate) fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(fieldcap_evidence::time::format)
        .unwrap_or_default()
}

/// HTTP-date (RFC 9110) of a Unix-ms time (empty if out of range).
pub(crate) fn http_date(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%a, %d %b %Y %H:%M:%S GMT").to_string())
        .unwrap_or_default()
}
