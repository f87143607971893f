//! The names of the problems the intake server answers, shared by the server and its clients.
//!
//! Every refusal is an RFC 9457 `application/problem+json` document
//! ([`crate::protocol::Problem`]) whose `type` is `https://fieldcap.org/problems/<name>` — a
//! stable name, never fetched. Clients branch on that name, never on the human-readable `title`
//! or `detail`, which may be reworded or translated. The names are listed here once so that the
//! server that sends them and the device that acts on them cannot drift apart.
//!
//! ```
//! use fieldcap_evidence::problem;
//! let t = problem::type_uri(problem::STALE_REQUEST);
//! assert_eq!(t, "https://fieldcap.org/problems/stale-request");
//! assert_eq!(problem::name_of(&t), Some(problem::STALE_REQUEST));
//! assert_eq!(problem::name_of("https://elsewhere.example/problems/stale-request"), None);
//! ```

/// Prefix of every problem type URI.
pub const BASE: &str = "https://fieldcap.org/problems/";

/// 400: the request is malformed (bad JSON, header, query or id).
pub const MALFORMED_REQUEST: &str = "malformed-request";
/// 422: a signature, digest or chain check failed.
pub const INTEGRITY: &str = "integrity";
/// 404: nothing with that id (or not visible to the caller).
pub const NOT_FOUND: &str = "not-found";
/// 400: a public key that cannot be used.
pub const BAD_KEY: &str = "bad-key";
/// 500: an internal failure (database, disk); details stay in the server log. Transient for a
/// client: retry later.
pub const INTERNAL: &str = "internal";
/// 422: the manifest does not pass the strict `fieldcap.manifest/1` reader.
pub const INVALID_MANIFEST: &str = "invalid-manifest";
/// 422: a manifest or custody-event signature does not verify with the device's enrolled key.
pub const BAD_SIGNATURE: &str = "bad-signature";
/// 401: the request signature headers are missing or do not verify.
pub const UNAUTHENTICATED: &str = "unauthenticated";
/// 401: the request's `Fieldcap-Timestamp` is outside the server's window (300 s). The device's
/// clock correction is stale: it measures the offset again (`GET /v1/time`) and signs anew.
pub const STALE_REQUEST: &str = "stale-request";
/// 401: the request's nonce was seen before (a replay).
pub const REPLAYED_REQUEST: &str = "replayed-request";
/// 403: the device is not enrolled. No longer sent (issue 12): until a request's signature
/// holds, an unknown device, a revoked one and a bad signature all get 401 `unauthenticated`,
/// so nobody learns without a key which device ids are enrolled. Kept so a client can still name
/// it if an older server sends it.
pub const UNKNOWN_DEVICE: &str = "unknown-device";
/// 403: the device was revoked (a lost or seized phone); what it sent before stays. Sent only
/// for a request whose signature holds under the revoked device's key.
pub const DEVICE_REVOKED: &str = "device-revoked";
/// 403: the manifest names another device than the one that signed the request.
pub const DEVICE_MISMATCH: &str = "device-mismatch";
/// 403: the enrolment token is unknown, expired or already used.
pub const INVALID_TOKEN: &str = "invalid-token";
/// 409: a different document is on record for the same clip, seq or chain position.
pub const CONFLICT: &str = "conflict";
/// 404: the item has no receipt yet (its media has not been received and verified).
pub const NO_RECEIPT_YET: &str = "no-receipt-yet";
/// 410: the upload expired or was terminated.
pub const UPLOAD_GONE: &str = "upload-gone";
/// 409 (tus): the request's `Upload-Offset` is not the upload's; `HEAD` and continue.
pub const OFFSET_MISMATCH: &str = "offset-mismatch";
/// 400 (tus): `Upload-Length` missing, deferred, or not the manifest's byte count.
pub const UPLOAD_LENGTH: &str = "upload-length";
/// 422: the received media does not match the signed manifest's length or digests.
pub const DIGEST_MISMATCH: &str = "digest-mismatch";
/// 423: another request is writing to this upload.
pub const UPLOAD_LOCKED: &str = "upload-locked";
/// 413: a request body larger than allowed.
pub const TOO_LARGE: &str = "too-large";
/// 431: request headers or URI too long.
pub const HEADERS_TOO_LARGE: &str = "headers-too-large";
/// 415: wrong `Content-Type`.
pub const UNSUPPORTED_MEDIA_TYPE: &str = "unsupported-media-type";
/// 412 (tus): missing or unsupported `Tus-Resumable` (1.0.0 required).
pub const TUS_VERSION: &str = "tus-version";
/// 405: the method is not allowed on that resource.
pub const METHOD_NOT_ALLOWED: &str = "method-not-allowed";
/// 414: the request URI is longer than the server reads.
pub const URI_TOO_LONG: &str = "uri-too-long";
/// 408: a request body arrived too slowly (below the server's minimum rate after its grace
/// time, or an upload idle too long). Transient for a client: send again.
pub const REQUEST_TIMEOUT: &str = "request-timeout";
/// 503: the server holds as many request bodies in memory as it allows; the answer carries
/// `Retry-After` (seconds). Transient for a client: retry after that.
pub const OVERLOADED: &str = "overloaded";
/// 507: the server's disk (or its database) is full; nothing of the request was kept. The
/// answer carries `Retry-After` (seconds). Transient for a client: retry later.
pub const INSUFFICIENT_STORAGE: &str = "insufficient-storage";
/// 503: a store the server depends on (its database or object storage, in a scaled deployment)
/// does not answer; nothing of the request was kept. The answer carries `Retry-After`
/// (seconds). Transient for a client: retry after that.
pub const STORAGE_UNAVAILABLE: &str = "storage-unavailable";

/// 422: a live-capture fragment was refused: its record does not parse or is not signed by the
/// device, its bytes do not match the record, or they are not well-formed fragmented MP4.
/// Nothing of it was kept.
pub const INVALID_FRAGMENT: &str = "invalid-fragment";
/// 409: a live-capture fragment does not continue the chain the server holds (a gap, a repeat
/// with other bytes, a `prev` or offset that does not follow). The answer's
/// `Fieldcap-Next-Fragment` header names the index the server expects next.
pub const FRAGMENT_OUT_OF_ORDER: &str = "fragment-out-of-order";
/// 422: a sealed (encrypted) item could not be opened: its item key is not wrapped to any
/// escrow key the server holds, or the manifest's age file does not decrypt with it. Nothing of
/// it was kept. (Media that does not decrypt at the last byte is a `digest-mismatch`.)
pub const SEALED_ITEM_UNDECRYPTABLE: &str = "sealed-item-undecryptable";

/// Every problem name the server sends (not [`UNKNOWN_DEVICE`], which it no longer sends).
pub const ALL: &[&str] = &[
    MALFORMED_REQUEST,
    INTEGRITY,
    NOT_FOUND,
    BAD_KEY,
    INTERNAL,
    INVALID_MANIFEST,
    BAD_SIGNATURE,
    UNAUTHENTICATED,
    STALE_REQUEST,
    REPLAYED_REQUEST,
    DEVICE_REVOKED,
    DEVICE_MISMATCH,
    INVALID_TOKEN,
    CONFLICT,
    NO_RECEIPT_YET,
    UPLOAD_GONE,
    OFFSET_MISMATCH,
    UPLOAD_LENGTH,
    DIGEST_MISMATCH,
    UPLOAD_LOCKED,
    TOO_LARGE,
    HEADERS_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    TUS_VERSION,
    METHOD_NOT_ALLOWED,
    URI_TOO_LONG,
    REQUEST_TIMEOUT,
    OVERLOADED,
    INSUFFICIENT_STORAGE,
    STORAGE_UNAVAILABLE,
    INVALID_FRAGMENT,
    FRAGMENT_OUT_OF_ORDER,
    SEALED_ITEM_UNDECRYPTABLE,
];

/// The type URI of a problem name.
pub fn type_uri(name: &str) -> String {
    format!("{BASE}{name}")
}

/// The name in a Fieldcap problem type URI; `None` for a type from anywhere else (a proxy or
/// load balancer in front of the server may answer problems of its own).
pub fn name_of(problem_type: &str) -> Option<&str> {
    problem_type.strip_prefix(BASE).filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_distinct_lowercase_words_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for n in ALL {
            assert!(seen.insert(*n), "{n} listed twice");
            assert!(!n.is_empty() && n.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'), "{n}");
            assert_eq!(name_of(&type_uri(n)), Some(*n));
        }
        assert_eq!(name_of(BASE), None);
        assert_eq!(name_of("stale-request"), None, "a bare name is not a type URI");
    }
}
