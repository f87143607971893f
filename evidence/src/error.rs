//! Errors of the evidence formats.
//!
//! One internal [`Error`] with a variant per way things fail. Messages name *what* is wrong (a
//! field, a file the user passed, an id) but never a location, a key or a token: they end up in
//! logs and on screens that others may see.

use std::io;

/// Everything that can go wrong reading, writing, signing or checking an evidence format.
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
}

impl Error {
    /// Wraps an [`io::Error`] with a short description of what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io { context: context.into(), source }
    }

    /// A copy for reporting the same failure in several checks. Every variant keeps its kind:
    /// an I/O error stays [`Error::Io`] with the same [`io::ErrorKind`] and message (an
    /// unreadable file is not a failed integrity check); a JSON error, which cannot be cloned,
    /// becomes [`Error::InvalidInput`] with its message.
    pub fn duplicate(&self) -> Error {
        match self {
            Error::Io { context, source } => Error::Io { context: context.clone(), source: io::Error::new(source.kind(), source.to_string()) },
            Error::Json(e) => Error::InvalidInput(format!("JSON error: {e}")),
            Error::InvalidInput(s) => Error::InvalidInput(s.clone()),
            Error::Integrity(s) => Error::Integrity(s.clone()),
            Error::NotFound(s) => Error::NotFound(s.clone()),
            Error::AlreadyExists(s) => Error::AlreadyExists(s.clone()),
            Error::SourceChanged(s) => Error::SourceChanged(s.clone()),
            Error::Key(s) => Error::Key(s.clone()),
        }
    }

    /// True when the error is "no space left on device".
    pub fn is_disk_full(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.raw_os_error() == Some(libc::ENOSPC))
    }
}

/// Result alias for the evidence formats.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds I/O context to a `Result<_, io::Error>`.
pub trait IoContext<T> {
    /// Maps an I/O error to [`Error::Io`] with the context `context()` returns.
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T>;
}

impl<T> IoContext<T> for std::result::Result<T, io::Error> {
    fn ctx(self, context: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(context(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keeps_every_kind() {
        let io = Error::io("reading clips/x/media.mp4", io::Error::new(io::ErrorKind::NotFound, "gone"));
        match io.duplicate() {
            Error::Io { context, source } => {
                assert_eq!(context, "reading clips/x/media.mp4");
                assert_eq!(source.kind(), io::ErrorKind::NotFound);
            }
            other => panic!("an I/O error became {other:?}"),
        }
        assert!(matches!(Error::Key("k".into()).duplicate(), Error::Key(_)));
        assert!(matches!(Error::AlreadyExists("a".into()).duplicate(), Error::AlreadyExists(_)));
        let json = serde_json::from_str::<serde_json::Value>("{").expect_err("bad JSON");
        assert!(matches!(Error::Json(json).duplicate(), Error::InvalidInput(_)));
        assert_eq!(io.duplicate().to_string(), io.to_string());
    }
}
