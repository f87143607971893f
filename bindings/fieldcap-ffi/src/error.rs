//! The one error type the shells see.

use fieldcap_core::Error as CoreError;

/// Everything a Fieldcap call can fail with, grouped by what the app can do about it.
///
/// `detail` is a short English sentence for logs and support; it names *what* failed (a field, an
/// operation) and never a place, a key, a token or what the user wrote. Branch on the variant,
/// not on the text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum FieldcapError {
    /// The server could not be reached, the connection broke, or it timed out. Retry later (the
    /// platform scheduler's backoff is right for this).
    #[error("network: {detail}")]
    Network {
        /// What failed.
        detail: String,
    },
    /// The server answered with a refusal (e.g. an invalid or used enrolment token, a revoked
    /// device). Retrying the same call will not help; show it to the user.
    #[error("server refused: {detail}")]
    Server {
        /// What failed.
        detail: String,
    },
    /// This device has not been enrolled with a server yet; call `enroll` first.
    #[error("not enrolled: {detail}")]
    NotEnrolled {
        /// What failed.
        detail: String,
    },
    /// The device store could not be read or written (I/O, database).
    #[error("storage: {detail}")]
    Storage {
        /// What failed.
        detail: String,
    },
    /// The device is out of space. Nothing was lost; free space and try again.
    #[error("storage full: {detail}")]
    StorageFull {
        /// What failed.
        detail: String,
    },
    /// An argument was rejected (the detail names the field), or the call does not fit the
    /// current state (e.g. sealing a finished recording, a file still being written).
    #[error("invalid input: {detail}")]
    InvalidInput {
        /// What failed.
        detail: String,
    },
    /// No item, recording or receipt with that identifier.
    #[error("not found: {detail}")]
    NotFound {
        /// What failed.
        detail: String,
    },
    /// The item is locked to the council: it cannot be opened on this phone (it still
    /// uploads). Show it as locked; do not retry.
    #[error("locked: {detail}")]
    Locked {
        /// Which item.
        detail: String,
    },
    /// A signature, digest, chain or log-consistency check failed. This is evidence-relevant:
    /// surface it, never retry it silently.
    #[error("integrity: {detail}")]
    Integrity {
        /// What failed.
        detail: String,
    },
    /// The platform key store (the foreign `KeyProtector`) failed, or the stored key was wrapped by
    /// a different protector.
    #[error("key store: {detail}")]
    KeyStore {
        /// What failed.
        detail: String,
    },
    /// The platform cancelled a request: a foreign `HttpTransport` throws this when its HTTP call
    /// was cancelled (e.g. WorkManager stopped the worker), which also stops the pass in progress.
    /// (`sync_once` itself reports `cancel()` and an exhausted budget in its summary, not as an
    /// error: the work done is kept and the next pass continues.)
    #[error("cancelled: {detail}")]
    Cancelled {
        /// What failed.
        detail: String,
    },
    /// A bug or an unexpected failure (including an exception thrown by a foreign callback).
    #[error("internal: {detail}")]
    Internal {
        /// What failed.
        detail: String,
    },
}

/// Result alias of the bindings.
pub type Result<T, E = FieldcapError> = std::result::Result<T, E>;

impl FieldcapError {
    pub(crate) fn invalid(detail: impl Into<String>) -> Self {
        FieldcapError::InvalidInput { detail: detail.into() }
    }
    pub(crate) fn internal(detail: impl Into<String>) -> Self {
        FieldcapError::Internal { detail: detail.into() }
    }
}

impl From<CoreError> for FieldcapError {
    fn from(e: CoreError) -> Self {
        if e.is_disk_full() {
            return FieldcapError::StorageFull { detail: e.to_string() };
        }
        let detail = e.to_string();
        match e {
            // Exhaustive on purpose: a new core variant must be placed here, not fall into
            // `Internal` unnoticed.
            CoreError::Io { .. } | CoreError::Sqlite(_) | CoreError::Json(_) | CoreError::NewerSchema { .. } | CoreError::Corrupt(_) => {
                FieldcapError::Storage { detail }
            }
            CoreError::InvalidInput(_) | CoreError::AlreadyExists(_) | CoreError::SourceChanged(_) | CoreError::Busy(_) => {
                FieldcapError::InvalidInput { detail }
            }
            CoreError::NotEnrolled => FieldcapError::NotEnrolled { detail },
            CoreError::NotFound(_) => FieldcapError::NotFound { detail },
            CoreError::Locked(_) => FieldcapError::Locked { detail },
            CoreError::Integrity(_) => FieldcapError::Integrity { detail },
            CoreError::Key(_) => FieldcapError::KeyStore { detail },
            CoreError::Network(_) => FieldcapError::Network { detail },
            CoreError::Refused(_) => FieldcapError::Server { detail },
        }
    }
}

/// A foreign callback threw something that is not a `FieldcapError` (e.g. a Kotlin
/// `IllegalStateException`); it arrives here as `Internal`.
impl From<uniffi::UnexpectedUniFFICallbackError> for FieldcapError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        FieldcapError::Internal { detail: format!("a platform callback failed: {}", e.reason) }
    }
}
