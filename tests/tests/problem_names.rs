//! The server sends exactly the problem names that `fieldcap_evidence::problem` lists (clients
//! branch on those constants: the device recognises `stale-request` by it), under the shared
//! type URI prefix. A server error variant added without a listed name fails here; one added
//! without a case below fails to compile.

#![allow(clippy::unwrap_used)]

use fieldcap_evidence::problem;
use fieldcap_server::Error;

/// One value of every server error variant (and of every evidence error kind the server maps
/// to a name of its own).
fn every_error() -> Vec<Error> {
    use fieldcap_evidence::Error as C;
    let io = || std::io::Error::other("x");
    let all = vec![
        Error::Core(C::InvalidInput("x".into())),
        Error::Core(C::Integrity("x".into())),
        Error::Core(C::NotFound("x".into())),
        Error::Core(C::Key("x".into())),
        Error::Core(C::AlreadyExists("x".into())),
        Error::Storage(Box::new(io())),
        Error::Io { context: "x".into(), source: io() },
        Error::Io { context: "x".into(), source: std::io::Error::from_raw_os_error(28) },
        Error::Json(serde_json::from_str::<u8>("x").unwrap_err()),
        Error::BadRequest("x".into()),
        Error::InvalidManifest("x".into()),
        Error::BadSignature("x".into()),
        Error::Unauthenticated("x".into()),
        Error::StaleRequest("x".into()),
        Error::ReplayedRequest,
        Error::DeviceRevoked,
        Error::DeviceMismatch("x".into()),
        Error::InvalidToken,
        Error::Conflict("x".into()),
        Error::NotFound("x".into()),
        Error::NoReceiptYet("x".into()),
        Error::Gone("x".into()),
        Error::OffsetMismatch { expected: 1 },
        Error::UploadLength("x".into()),
        Error::InvalidFragment("x".into()),
        Error::FragmentOutOfOrder { next: 1, detail: "x".into() },
        Error::DigestMismatch("x".into()),
        Error::SealedUndecryptable("x".into()),
        Error::UploadLocked,
        Error::TooLarge("x".into()),
        Error::HeadersTooLarge,
        Error::UriTooLong,
        Error::RequestTimeout("x".into()),
        Error::Overloaded,
        Error::UnsupportedMediaType("x".into()),
        Error::TusVersion,
        Error::MethodNotAllowed,
        Error::StorageUnavailable("x".into()),
        Error::LogMoved,
        Error::Internal("x".into()),
    ];
    for e in &all {
        // No wildcard: a new variant must be added to the list above.
        match e {
            Error::Core(_)
            | Error::Storage(_)
            | Error::Io { .. }
            | Error::Json(_)
            | Error::BadRequest(_)
            | Error::InvalidManifest(_)
            | Error::BadSignature(_)
            | Error::Unauthenticated(_)
            | Error::StaleRequest(_)
            | Error::ReplayedRequest
            | Error::DeviceRevoked
            | Error::DeviceMismatch(_)
            | Error::InvalidToken
            | Error::Conflict(_)
            | Error::NotFound(_)
            | Error::NoReceiptYet(_)
            | Error::Gone(_)
            | Error::OffsetMismatch { .. }
            | Error::UploadLength(_)
            | Error::InvalidFragment(_)
            | Error::FragmentOutOfOrder { .. }
            | Error::DigestMismatch(_)
            | Error::SealedUndecryptable(_)
            | Error::UploadLocked
            | Error::TooLarge(_)
            | Error::HeadersTooLarge
            | Error::UriTooLong
            | Error::RequestTimeout(_)
            | Error::Overloaded
            | Error::UnsupportedMediaType(_)
            | Error::TusVersion
            | Error::MethodNotAllowed
            | Error::StorageUnavailable(_)
            | Error::LogMoved
            | Error::Internal(_) => {}
        }
    }
    all
}

#[test]
fn every_problem_the_server_sends_is_a_listed_name() {
    let mut sent = std::collections::BTreeSet::new();
    for e in every_error() {
        let p = e.problem();
        let name = problem::name_of(&p.problem_type).unwrap_or_else(|| panic!("{} is not under {}", p.problem_type, problem::BASE));
        assert!(problem::ALL.contains(&name), "{name} (from {e:?}) is not in fieldcap_evidence::problem::ALL");
        sent.insert(name.to_string());
    }
    // And nothing is listed that the server never sends.
    for name in problem::ALL {
        assert!(sent.contains(*name), "{name} is listed but no server error sends it");
    }
}

#[test]
fn a_stale_request_is_the_401_the_device_measures_its_clock_again_for() {
    let p = Error::StaleRequest("timestamp 400 s from the server clock".into()).problem();
    assert_eq!((p.status, problem::name_of(&p.problem_type)), (401, Some(problem::STALE_REQUEST)));
    assert_eq!(fieldcap_server::error::PROBLEM_BASE, problem::BASE);
}
