//! Errors of planning and rendering a redaction.

/// What went wrong; no variant carries a path or any content of the media.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The plan is not a valid `fieldcap.redaction/1` plan for this media (the message names the
    /// region, keyframe or range and what is wrong with it).
    #[error("invalid redaction plan: {0}")]
    InvalidPlan(String),
    /// The media could not be probed (not a video, still or audio file ffprobe reads).
    #[error("the media could not be read: {0}")]
    Probe(String),
    /// ffmpeg or ffprobe could not be started (not installed?).
    #[error("{tool} could not be started: {source}")]
    Tool {
        /// `ffmpeg` or `ffprobe`.
        tool: &'static str,
        /// Why it did not start.
        #[source]
        source: std::io::Error,
    },
    /// ffmpeg ran and failed; its last error lines (they name no content, only filters and codecs).
    #[error("ffmpeg failed: {0}")]
    Render(String),
    /// The derived file could not be written or moved into place.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

/// Result with [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidPlan(msg.into())
}
