//! Errors of the device core.
//!
//! One internal [`Error`] with a variant per way things fail. Messages name *what* is wrong (a
//! field, a file the user passed, an id) but never a location, a key or a token: they end up in
//! logs and on screens that others may see.

use std::io;

/// Everything that can go wrong in the device core.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O call failed; `context` says what the core was doing.
    #[error("{context}: {source}")]
    Io {
        /// What the core was doing, e.g. "reading the source file".
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The SQLite store refused an operation.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A JSON document could not be read or written.
    #[error("JSON error: {0}")]
    Json(#[from] serde_json::Error),
    /// The caller passed something invalid; the message names the field or value.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A signature, digest or chain check failed.
    #[error("integrity check failed: {0}")]
    Integrity(String),
    /// No item, session or file with that identifier.
    #[error("not found: {0}")]
    NotFound(String),
    /// Something already exists where the operation would have created it.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The source file changed (size or modification time) while it was being sealed.
    #[error("the file changed while it was being sealed ({0}); nothing was sealed, record again or wait until the writer has finished")]
    SourceChanged(String),
    /// The device key could not be created, wrapped, unwrapped or parsed.
    #[error("device key error: {0}")]
    Key(String),
    /// The server could not be reached, or answered something unusable (sync, enrolment).
    #[error("network error: {0}")]
    Network(String),
    /// The server answered and refused the request for good (a 4xx other than 408/429: a used
    /// or unknown token, a revoked device …); retrying the same request will not help.
    #[error("refused by the server: {0}")]
    Refused(String),
    /// The operation needs a server, and this device has not enrolled with one yet.
    #[error("this device is not enrolled with a server; run enroll first")]
    NotEnrolled,
    /// The store was written by a newer build (a higher schema version) than this one; it is
    /// left untouched until the app is updated.
    #[error("the store has schema version {found}, newer than this build ({supported}); update the app")]
    NewerSchema {
        /// The store's schema version.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// Another process or thread holds a lock the operation needs (e.g. a recording's owner lock).
    #[error("busy: {0}")]
    Busy(String),
    /// Something the core itself wrote earlier no longer reads back (a profile file, a row
    /// missing a field it always has). Nothing is changed or deleted; the message names what.
    #[error("the store is damaged: {0}")]
    Corrupt(String),
    /// The item is locked to the council: nobody holding this phone can open it (it still
    /// uploads, and the council opens it). The message names the item.
    #[error("locked: {0}")]
    Locked(String),
}

/// The evidence formats' errors map variant to variant: a bad signature found while syncing is
/// the same [`Error::Integrity`] as one found while sealing.
impl From<fieldcap_evidence::Error> for Error {
    fn from(e: fieldcap_evidence::Error) -> Self {
        use fieldcap_evidence::Error as E;
        match e {
            E::Io { context, source } => Error::Io { context, source },
            E::Json(e) => Error::Json(e),
            E::InvalidInput(s) => Error::InvalidInput(s),
            E::Integrity(s) => Error::Integrity(s),
            E::NotFound(s) => Error::NotFound(s),
            E::AlreadyExists(s) => Error::AlreadyExists(s),
            E::SourceChanged(s) => Error::SourceChanged(s),
            E::Key(s) => Error::Key(s),
        }
    }
}

impl Error {
    /// Wraps an [`io::Error`] with a short description of what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    /// True when the error is "no space left on device".
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
            || matches!(self, Error::Sqlite(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DiskFull)
    }
}

/// Result alias for the core.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds I/O context to a `Result<_, io::Error>`.
pub(crate) trait IoContext<T> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::result::Result<T, io::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}
