//! Path and query parameters.

use crate::error::{Error, Result};

/// Validates a clip id: a lowercase hyphenated UUID (so it is safe in paths and file names).
pub(crate) fn check_clip_id(s: &str) -> Result<()> {
    match uuid::Uuid::parse_str(s) {
        Ok(u) if u.hyphenated().to_string() == s => Ok(()),
        _ => Err(Error::NotFound("no such item".into())),
    }
}

/// A non-negative integer query parameter (`?name=123`), required.
pub(crate) fn query_u64(q: &Option<String>, name: &str) -> Result<u64> {
    let q = q.as_deref().unwrap_or("");
    for pair in q.split('&') {
        if let Some((k, v)) = pair.split_once('=') {
            if k == name {
                return v.parse().map_err(|_| Error::BadRequest(format!("query parameter {name} is not a number")));
            }
        }
    }
    Err(Error::BadRequest(format!("query parameter {name} is missing")))
}
