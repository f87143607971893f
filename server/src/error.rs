//! Server errors and their RFC 9457 `application/problem+json` form.
//!
//! Every refusal the server sends is a problem document whose `type` is a stable URI
//! `https://fieldcap.org/problems/<name>` (a name, never fetched): clients branch on it, not on
//! the human text. Internal failures (database, disk) answer a generic 500 `internal` problem and
//! are logged without personal data; details of a refusal never contain locations, tokens or keys.
//! (The HTTP answers themselves are written by the `http::problem` module.)
//!
//! ```
//! use fieldcap_server::Error;
//! let e = Error::Conflict("a different manifest is on record for this clip".into());
//! assert_eq!(e.problem().status, 409);
//! assert_eq!(e.problem().problem_type, "https://fieldcap.org/problems/conflict");
//! ```

use fieldcap_evidence::problem;
use axum::http::StatusCode;
use fieldcap_evidence::protocol::Problem;

/// Prefix of every problem type URI.
pub use fieldcap_evidence::problem::BASE as PROBLEM_BASE;

/// Everything that can go wrong in the server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An error from the Fieldcap core (mapped by its kind: invalid input → 400, integrity → 422).
    #[error(transparent)]
    Core(#[from] fieldcap_evidence::Error),
    /// The record or blob store failed (its own error, e.g. from SQLite, kept as the source).
    /// Each store maps its errors into this at its boundary (see [`crate::store`]).
    #[error("storage error: {0}")]
    Storage(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A file operation failed; `context` says what the server was doing.
    #[error("{context}: {source}")]
    Io {
        /// What the server was doing.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON document could not be read or written.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
    /// The request is malformed (bad JSON, header, query or id).
    #[error("malformed request: {0}")]
    BadRequest(String),
    /// The manifest does not pass the strict `fieldcap.manifest/1` reader.
    #[error("invalid manifest: {0}")]
    InvalidManifest(String),
    /// A manifest or custody-event signature does not verify with the device's enrolled key.
    #[error("bad manifest signature: {0}")]
    BadSignature(String),
    /// The request signature headers are missing or do not verify.
    #[error("unauthenticated: {0}")]
    Unauthenticated(String),
    /// The request timestamp is too far from the server clock.
    #[error("stale request: {0}")]
    StaleRequest(String),
    /// The request nonce was seen before.
    #[error("replayed request")]
    ReplayedRequest,
    /// The device was revoked (sent only once the request's signature holds under its key).
    #[error("device revoked")]
    DeviceRevoked,
    /// The manifest names another device than the one that signed the request.
    #[error("device mismatch: {0}")]
    DeviceMismatch(String),
    /// The enrolment token is unknown, expired or already used.
    #[error("invalid or used enrolment token")]
    InvalidToken,
    /// A different document is on record for the same clip, seq or chain position.
    #[error("conflict: {0}")]
    Conflict(String),
    /// Nothing with that id (or not visible to the caller).
    #[error("not found: {0}")]
    NotFound(String),
    /// The item has no receipt yet (its media has not been received).
    #[error("no receipt yet: {0}")]
    NoReceiptYet(String),
    /// The upload expired or was terminated.
    #[error("gone: {0}")]
    Gone(String),
    /// tus: the request's `Upload-Offset` is not the upload's offset.
    #[error("offset mismatch: the upload is at {expected}")]
    OffsetMismatch {
        /// The offset on record.
        expected: u64,
    },
    /// tus: `Upload-Length` missing, deferred, or not the manifest's byte count.
    #[error("upload length: {0}")]
    UploadLength(String),
    /// A live-capture fragment was refused: its record does not parse or verify, its bytes do
    /// not match the record, or they are not well-formed fragmented MP4 continuing the recording.
    #[error("invalid fragment: {0}")]
    InvalidFragment(String),
    /// A live-capture fragment does not continue the chain the server holds (a gap, a record
    /// that does not follow, or another record at a stored index); `next` is the index expected.
    #[error("fragment out of order: {detail}")]
    FragmentOutOfOrder {
        /// The index the server expects next.
        next: u64,
        /// Why.
        detail: String,
    },
    /// The received media does not match the signed manifest's length or digests.
    #[error("digest mismatch: {0}")]
    DigestMismatch(String),
    /// A sealed item's key wrap or manifest does not open with the escrow keys the server holds.
    #[error("sealed item undecryptable: {0}")]
    SealedUndecryptable(String),
    /// Another request is writing to this upload.
    #[error("upload busy")]
    UploadLocked,
    /// A body is larger than allowed.
    #[error("too large: {0}")]
    TooLarge(String),
    /// Request headers too large.
    #[error("request headers too large")]
    HeadersTooLarge,
    /// Request URI too long.
    #[error("request URI too long")]
    UriTooLong,
    /// A request body arrived too slowly (or an upload body stalled).
    #[error("request timeout: {0}")]
    RequestTimeout(String),
    /// The server holds as many request bodies as it allows; retry after [`RETRY_AFTER_SECS`].
    #[error("overloaded")]
    Overloaded,
    /// Wrong `Content-Type`.
    #[error("unsupported media type: {0}")]
    UnsupportedMediaType(String),
    /// tus: missing or unsupported `Tus-Resumable`.
    #[error("unsupported tus version")]
    TusVersion,
    /// The request's method is not allowed on that resource.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// A store does not answer (the database is restarting, the object storage is down or
    /// unreachable): 503 `storage-unavailable` with `Retry-After`; nothing of the request was
    /// kept. The text says which store and what failed, never its address or credentials.
    #[error("storage unavailable: {0}")]
    StorageUnavailable(String),
    /// The transparency log grew (another replica or process appended a leaf) between reading
    /// its size and storing a new leaf: nothing was stored; the caller catches up and appends
    /// again (see `crate::receipts`). Answered as 503 `storage-unavailable` if it persists.
    #[error("the log grew while a leaf was being appended")]
    LogMoved,
    /// An internal invariant failed (a bug or a damaged data directory).
    #[error("internal error: {0}")]
    Internal(String),
}

/// The `Retry-After` (seconds) of a 503 `overloaded` answer.
pub const RETRY_AFTER_SECS: u64 = 5;
/// The `Retry-After` (seconds) of a 503 `storage-unavailable` answer.
pub const STORAGE_RETRY_AFTER_SECS: u64 = 5;
/// The `Retry-After` (seconds) of a 507 `insufficient-storage` answer: a full disk is freed by
/// an operator, not in a moment.
pub const DISK_FULL_RETRY_AFTER_SECS: u64 = 30;

/// True when an I/O error means "no space left" (ENOSPC, or EDQUOT: over quota).
fn io_is_disk_full(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::StorageFull || e.kind() == std::io::ErrorKind::QuotaExceeded || matches!(e.raw_os_error(), Some(28) | Some(122))
}

/// Result alias of the server.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps an I/O error with what the server was doing.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io { context: context.into(), source }
    }

    /// True when the failure is a full disk or database (anywhere in its source chain): the
    /// answer is then 507 `insufficient-storage` with `Retry-After`, so devices wait and retry
    /// instead of reporting a server fault.
    pub fn is_disk_full(&self) -> bool {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(e) = cur {
            if let Some(io) = e.downcast_ref::<std::io::Error>() {
                if io_is_disk_full(io) {
                    return true;
                }
            }
            if let Some(sq) = e.downcast_ref::<rusqlite::Error>() {
                if sq.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull) {
                    return true;
                }
            }
            if let Some(pg) = e.downcast_ref::<postgres::Error>() {
                // SQLSTATE 53100 disk_full (PostgreSQL could not extend a file or its WAL).
                if pg.code() == Some(&postgres::error::SqlState::DISK_FULL) {
                    return true;
                }
            }
            cur = e.source();
        }
        false
    }

    /// (status, stable name, title, detail shown to the client).
    fn parts(&self) -> (StatusCode, &'static str, &'static str, Option<String>) {
        use fieldcap_evidence::Error as C;
        match self {
            Error::Core(C::InvalidInput(m)) => (StatusCode::BAD_REQUEST, problem::MALFORMED_REQUEST, "Malformed request", Some(m.clone())),
            Error::Core(C::Integrity(m)) => (StatusCode::UNPROCESSABLE_ENTITY, problem::INTEGRITY, "Integrity check failed", Some(m.clone())),
            Error::Core(C::NotFound(m)) => (StatusCode::NOT_FOUND, problem::NOT_FOUND, "Not found", Some(m.clone())),
            Error::Core(C::Key(m)) => (StatusCode::BAD_REQUEST, problem::BAD_KEY, "Unusable public key", Some(m.clone())),
            Error::Core(_) | Error::Storage(_) | Error::Io { .. } if self.is_disk_full() => (
                StatusCode::INSUFFICIENT_STORAGE,
                problem::INSUFFICIENT_STORAGE,
                "Server storage full",
                Some(format!("the server's storage is full; nothing of this request was kept; retry in {DISK_FULL_RETRY_AFTER_SECS} s")),
            ),
            Error::Core(_) | Error::Storage(_) | Error::Io { .. } | Error::Json(_) | Error::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, problem::INTERNAL, "Internal server error", None)
            }
            Error::BadRequest(m) => (StatusCode::BAD_REQUEST, problem::MALFORMED_REQUEST, "Malformed request", Some(m.clone())),
            Error::InvalidManifest(m) => (StatusCode::UNPROCESSABLE_ENTITY, problem::INVALID_MANIFEST, "Invalid manifest", Some(m.clone())),
            Error::BadSignature(m) => (StatusCode::UNPROCESSABLE_ENTITY, problem::BAD_SIGNATURE, "Signature does not verify", Some(m.clone())),
            Error::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, problem::UNAUTHENTICATED, "Request signature missing or invalid", Some(m.clone())),
            Error::StaleRequest(m) => (StatusCode::UNAUTHORIZED, problem::STALE_REQUEST, "Request timestamp outside the allowed window", Some(m.clone())),
            Error::ReplayedRequest => (StatusCode::UNAUTHORIZED, problem::REPLAYED_REQUEST, "Request nonce already used", None),
            Error::DeviceRevoked => (StatusCode::FORBIDDEN, problem::DEVICE_REVOKED, "Device revoked", None),
            Error::DeviceMismatch(m) => (StatusCode::FORBIDDEN, problem::DEVICE_MISMATCH, "Manifest is not from the signing device", Some(m.clone())),
            Error::InvalidToken => (StatusCode::FORBIDDEN, problem::INVALID_TOKEN, "Enrolment token unknown, expired or used", None),
            Error::Conflict(m) => (StatusCode::CONFLICT, problem::CONFLICT, "Conflicts with the record", Some(m.clone())),
            Error::NotFound(m) => (StatusCode::NOT_FOUND, problem::NOT_FOUND, "Not found", Some(m.clone())),
            Error::NoReceiptYet(m) => (StatusCode::NOT_FOUND, problem::NO_RECEIPT_YET, "No receipt yet", Some(m.clone())),
            Error::Gone(m) => (StatusCode::GONE, problem::UPLOAD_GONE, "Upload expired or terminated", Some(m.clone())),
            Error::OffsetMismatch { expected } => (
                StatusCode::CONFLICT,
                "offset-mismatch",
                "Upload-Offset does not match the upload",
                Some(format!("the upload is at offset {expected}; send HEAD and continue from there")),
            ),
            Error::InvalidFragment(m) => (StatusCode::UNPROCESSABLE_ENTITY, problem::INVALID_FRAGMENT, "Fragment refused", Some(m.clone())),
            Error::FragmentOutOfOrder { next, detail } => (
                StatusCode::CONFLICT,
                problem::FRAGMENT_OUT_OF_ORDER,
                "Fragment does not continue the recording held",
                Some(format!("{detail}; the server expects fragment {next} next")),
            ),
            Error::UploadLength(m) => (StatusCode::BAD_REQUEST, problem::UPLOAD_LENGTH, "Upload-Length not acceptable", Some(m.clone())),
            Error::DigestMismatch(m) => (StatusCode::UNPROCESSABLE_ENTITY, problem::DIGEST_MISMATCH, "Media does not match the signed manifest", Some(m.clone())),
            Error::SealedUndecryptable(m) => {
                (StatusCode::UNPROCESSABLE_ENTITY, problem::SEALED_ITEM_UNDECRYPTABLE, "The sealed item does not open with the escrow key", Some(m.clone()))
            }
            Error::UploadLocked => (StatusCode::LOCKED, problem::UPLOAD_LOCKED, "Another request is writing to this upload", None),
            Error::TooLarge(m) => (StatusCode::PAYLOAD_TOO_LARGE, problem::TOO_LARGE, "Request body too large", Some(m.clone())),
            Error::HeadersTooLarge => (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, problem::HEADERS_TOO_LARGE, "Request headers too large", None),
            Error::UriTooLong => (
                StatusCode::URI_TOO_LONG,
                problem::URI_TOO_LONG,
                "Request URI too long",
                Some(format!("the request URI is longer than {} bytes", crate::http::limits::MAX_URI_BYTES)),
            ),
            Error::RequestTimeout(m) => (StatusCode::REQUEST_TIMEOUT, problem::REQUEST_TIMEOUT, "Request body too slow", Some(m.clone())),
            Error::Overloaded => (
                StatusCode::SERVICE_UNAVAILABLE,
                problem::OVERLOADED,
                "Server busy",
                Some(format!("the server holds as many request bodies as it allows; retry in {RETRY_AFTER_SECS} s")),
            ),
            Error::StorageUnavailable(m) => (
                StatusCode::SERVICE_UNAVAILABLE,
                problem::STORAGE_UNAVAILABLE,
                "Server storage unavailable",
                Some(format!("{m}; nothing of this request was kept; retry in {STORAGE_RETRY_AFTER_SECS} s")),
            ),
            Error::LogMoved => (
                StatusCode::SERVICE_UNAVAILABLE,
                problem::STORAGE_UNAVAILABLE,
                "Server storage unavailable",
                Some(format!("the transparency log is busy; nothing of this request was kept; retry in {STORAGE_RETRY_AFTER_SECS} s")),
            ),
            Error::UnsupportedMediaType(m) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, problem::UNSUPPORTED_MEDIA_TYPE, "Unsupported Content-Type", Some(m.clone())),
            Error::TusVersion => (StatusCode::PRECONDITION_FAILED, problem::TUS_VERSION, "Tus-Resumable 1.0.0 required", None),
            Error::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, problem::METHOD_NOT_ALLOWED, "Method not allowed", None),
        }
    }

    /// The problem document sent for this error.
    pub fn problem(&self) -> Problem {
        let (status, name, title, detail) = self.parts();
        problem(status, name, title, detail)
    }
}

/// Builds a problem document.
pub fn problem(status: StatusCode, name: &str, title: &str, detail: Option<String>) -> Problem {
    Problem { problem_type: format!("{PROBLEM_BASE}{name}"), title: title.to_string(), status: status.as_u16(), detail }
}

/// The message of an evidence error without its kind prefix (`invalid input: `, `integrity
/// check failed: `), for the detail of a refusal whose problem type already says the kind.
pub(crate) fn evidence_message(e: &fieldcap_evidence::Error) -> String {
    e.to_string().trim_start_matches("invalid input: ").trim_start_matches("integrity check failed: ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_disk_or_database_is_507_insufficient_storage_and_other_failures_stay_500() {
        let enospc = Error::io("writing the upload", std::io::Error::from_raw_os_error(28));
        let p = enospc.problem();
        assert_eq!((p.status, p.problem_type.as_str()), (507, "https://fieldcap.org/problems/insufficient-storage"));
        let full_kind = Error::Storage(Box::new(std::io::Error::from(std::io::ErrorKind::StorageFull)));
        assert_eq!(full_kind.problem().status, 507);
        let sqlite_full = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
        assert_eq!(Error::Storage(Box::new(sqlite_full)).problem().status, 507);
        // Wrapped one level deeper (a store error whose source is the I/O error) is found too.
        let nested = Error::Storage(Box::new(Error::io("fsync", std::io::Error::from_raw_os_error(28))));
        assert_eq!(nested.problem().status, 507);
        // Any other disk or database failure is a plain 500.
        let other = Error::io("reading", std::io::Error::from_raw_os_error(5));
        assert_eq!(other.problem().status, 500);
        let busy = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None);
        assert_eq!(Error::Storage(Box::new(busy)).problem().status, 500);
    }
}
