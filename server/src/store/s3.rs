//! A blob store on one S3-compatible bucket (AWS S3, MinIO, Ceph), shared by any number of
//! stateless server replicas, with S3 Object Lock for the originals.
//!
//! Opened from `s3://BUCKET?endpoint=URL[&prefix=P][&region=R]` ([`S3BlobStore::open`]; with an
//! endpoint, path-style addressing). Region and credentials come from the usual `AWS_*`
//! environment variables or the AWS config files, never from the URL, and never appear in logs or
//! errors. Opening checks that the bucket answers and reads whether Object Lock is enabled on it.
//!
//! # Keys
//!
//! * `<prefix>originals/sha256/<64 hex>` — an original, named by its SHA-256. Written create-only
//!   (`If-None-Match: *`) with `x-amz-checksum-sha256` so that S3 verifies the bytes, then read
//!   back (HEAD: length and checksum) before it counts as stored. Up to 8 MiB it is one PUT whose
//!   checksum is the SHA-256 of the bytes; above, a multipart upload of 8 MiB parts (the last
//!   shorter) whose checksum S3 reports as the composite `base64(SHA-256(part digests))-N`.
//!   The part size is fixed, so the composite checksum is a function of the bytes alone and an
//!   original written before by another replica (a 412 on the create-only write) is checked
//!   against the same value. Never overwritten; deleted only by [`BlobStore::remove_disposed`].
//! * `<prefix>partials/<clip_id>/open` — marks that the item has a partial upload (possibly
//!   empty), and `<prefix>partials/<clip_id>/<20-digit start offset>` — its segments.
//! * `<prefix>set-aside/<clip_id>-<ms>/<20-digit start offset>` — a revoked device's partial
//!   upload, kept, never evidence.
//!
//! # Partial uploads: staged segment objects
//!
//! A partial upload is a run of segment objects, each named by the offset of its first byte.
//! The writer ([`BlobStore::open_partial`]) buffers at most 8 MiB: every 8 MiB written becomes a
//! segment, and [`PartialWriter::sync`] writes what is buffered as one more (shorter) segment, so
//! once `sync` returns every byte written is in S3 (a PUT is durable when answered) and the
//! server may record the new offset. Memory per upload is bounded by the 8 MiB buffer whatever
//! the size of a PATCH body.
//!
//! Any replica resumes an upload at the offset on record: `open_partial(clip, offset)` lists the
//! segments, deletes those starting at or past `offset` (written, never confirmed), cuts a
//! segment that straddles it (rewritten shorter under the same key: a PUT replaces an object
//! atomically), and checks that the segments left cover `0..offset` without gap or overlap.
//! Since every step is a single atomic object write or delete and the offset on record only
//! advances after a sync, a crash at any instant leaves segments the next `open_partial`
//! brings back to the recorded offset. (A missing byte below the recorded offset is an error,
//! never filled in.)
//!
//! [`BlobStore::store_partial`] streams the segments in order (8 MiB ranged GETs), hashes them,
//! and writes the original as above; the bytes must hash to the original's name, or the write is
//! aborted and nothing is stored. Memory stays at two 8 MiB buffers whatever the size of the
//! original. The partial is removed (every object version under its prefix) only after the
//! original was checked. A crash before that leaves the partial: the completion is run again,
//! finds the original stored (412), checks it against the partial, and removes the partial.
//!
//! # Object Lock
//!
//! On a bucket with Object Lock enabled (which makes it versioned), [`BlobStore::set_retention`]
//! sets a COMPLIANCE retention (extended only, never shortened) and [`BlobStore::set_legal_hold`]
//! a legal hold; S3 itself then refuses to delete or overwrite the object version, whoever asks.
//! [`BlobStore::remove_disposed`] deletes the original's versions by version id (a plain
//! DELETE on a versioned bucket only adds a delete marker and would hide, not remove, the
//! bytes); S3 refuses while a lock holds, and the refusal is a `Conflict` naming the lock. On a
//! bucket without Object Lock, the lock methods do nothing (a warning is logged at open).
//! A bucket default retention rule would lock the partial segments too (they could then not be
//! removed before it ends); a warning is logged at open when the bucket has one.
//!
//! # Failures
//!
//! Connection refused, timeouts and 5xx answers (after the SDK's retries) are
//! [`Error::StorageUnavailable`] ("the object storage does not answer", 503 with Retry-After);
//! other refusals are [`Error::Storage`] naming the operation and S3's error code, never the
//! endpoint, bucket address or credentials.
//!
//! The [`BlobStore`] trait is synchronous (the server calls it from blocking threads, the CLI
//! without a runtime): the store owns a small tokio runtime and waits on it.

use super::{is_sha256_hex, BlobStore, ObjectLockState, PartialWriter};
use crate::error::{Error, Result};
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, ObjectLockEnabled, ObjectLockLegalHold, ObjectLockLegalHoldStatus,
    ObjectLockRetention, ObjectLockRetentionMode,
};
use aws_sdk_s3::Client;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use std::future::Future;
use std::io::Read;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Size of a partial upload's segments and of an original's multipart parts (S3 wants at least
/// 5 MiB per part but the last).
pub const SEGMENT_BYTES: usize = 8 * 1024 * 1024;
/// The text of [`Error::StorageUnavailable`] for the object storage.
pub const UNAVAILABLE: &str = "the object storage does not answer";
/// Key of the marker object of a partial upload, inside its folder.
const OPEN_MARKER: &str = "open";

/// Credentials and region given explicitly (tests, tools), instead of the `AWS_*` environment
/// variables and config files. The secret never appears in `Debug`.
#[derive(Clone)]
pub struct S3Access {
    /// Access key id.
    pub access_key_id: String,
    /// Secret access key.
    pub secret_access_key: String,
    /// Region (any name for MinIO, Ceph or moto).
    pub region: String,
}

impl std::fmt::Debug for S3Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Access").field("region", &self.region).finish_non_exhaustive()
    }
}

/// An S3 refusal that is not an outage: what was being done and S3's error code.
#[derive(Debug)]
struct S3Failure(String);

impl std::fmt::Display for S3Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for S3Failure {}

fn failure(msg: impl Into<String>) -> Error {
    Error::Storage(Box::new(S3Failure(msg.into())))
}

/// The HTTP status of an S3 answer, if there was one.
fn status_of<E>(e: &SdkError<E, HttpResponse>) -> Option<u16> {
    match e {
        SdkError::ServiceError(se) => Some(se.raw().status().as_u16()),
        SdkError::ResponseError(re) => Some(re.raw().status().as_u16()),
        _ => None,
    }
}

/// Maps an SDK error: no answer (connection, timeout, 5xx) → `StorageUnavailable`; a refusal →
/// `Storage` naming `what` and S3's code. Never the endpoint or credentials.
fn s3_err<E: ProvideErrorMetadata>(what: &str, e: SdkError<E, HttpResponse>) -> Error {
    match &e {
        SdkError::TimeoutError(_) => Error::StorageUnavailable(UNAVAILABLE.into()),
        SdkError::DispatchFailure(d) if d.is_io() || d.is_timeout() => Error::StorageUnavailable(UNAVAILABLE.into()),
        SdkError::DispatchFailure(d) if d.is_user() => failure(format!("{what}: the request could not be made (check the AWS credentials and region)")),
        SdkError::DispatchFailure(_) => Error::StorageUnavailable(UNAVAILABLE.into()),
        SdkError::ResponseError(_) => Error::StorageUnavailable(UNAVAILABLE.into()),
        SdkError::ServiceError(se) if se.raw().status().is_server_error() => Error::StorageUnavailable(UNAVAILABLE.into()),
        SdkError::ServiceError(se) => {
            let code = e.code().unwrap_or("no error code");
            let msg = e.message().map(|m| format!(": {m}")).unwrap_or_default();
            failure(format!("{what}: the object storage answered {} ({code}{msg})", se.raw().status().as_u16()))
        }
        SdkError::ConstructionFailure(_) => failure(format!("{what}: the request could not be built")),
        _ => failure(format!("{what}: the object storage request failed")),
    }
}

/// Where the store is: from the `s3://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    bucket: String,
    endpoint: Option<String>,
    prefix: String,
    region: Option<String>,
}

fn percent_decode(s: &str) -> Result<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or_else(|| Error::BadRequest("a bad %-escape in the object storage URL".into()))?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| Error::BadRequest("a bad %-escape in the object storage URL".into()))?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| Error::BadRequest("the object storage URL is not UTF-8".into()))
}

fn parse_url(url: &str) -> Result<Target> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| Error::BadRequest("an object storage URL starts with s3://".into()))?;
    let (bucket, query) = rest.split_once('?').unwrap_or((rest, ""));
    let bucket = bucket.trim_end_matches('/');
    let valid_bucket = (3..=63).contains(&bucket.len())
        && bucket.bytes().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.')
        && !bucket.starts_with(['-', '.'])
        && !bucket.ends_with(['-', '.']);
    if !valid_bucket {
        return Err(Error::BadRequest("the bucket name in the object storage URL is not a valid S3 bucket name".into()));
    }
    let mut t = Target { bucket: bucket.to_string(), endpoint: None, prefix: String::new(), region: None };
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let v = percent_decode(v)?;
        match k {
            "endpoint" => {
                let after_scheme = v
                    .strip_prefix("http://")
                    .or_else(|| v.strip_prefix("https://"))
                    .ok_or_else(|| Error::BadRequest("the object storage endpoint must be an http:// or https:// URL".into()))?;
                if after_scheme.split('/').next().is_some_and(|host| host.contains('@')) {
                    return Err(Error::BadRequest(
                        "credentials do not go in the object storage URL: use the AWS_* environment variables or the AWS config files".into(),
                    ));
                }
                t.endpoint = Some(v.trim_end_matches('/').to_string());
            }
            "prefix" => {
                let ok = v.bytes().all(|c| c.is_ascii_alphanumeric() || b"-_./".contains(&c)) && !v.starts_with('/') && !v.contains("..");
                if !ok {
                    return Err(Error::BadRequest("the object storage prefix may hold letters, digits, '-', '_', '.' and '/' only".into()));
                }
                t.prefix = if v.is_empty() || v.ends_with('/') { v } else { format!("{v}/") };
            }
            "region" => t.region = Some(v),
            "access_key_id" | "secret_access_key" | "aws_access_key_id" | "aws_secret_access_key" | "session_token" => {
                return Err(Error::BadRequest(
                    "credentials do not go in the object storage URL: use the AWS_* environment variables or the AWS config files".into(),
                ));
            }
            _ => return Err(Error::BadRequest(format!("unknown parameter '{k}' in the object storage URL (endpoint, prefix, region)"))),
        }
    }
    Ok(t)
}

/// One segment of a partial upload.
#[derive(Debug, Clone)]
struct Segment {
    key: String,
    start: u64,
    len: u64,
}

impl Segment {
    fn end(&self) -> u64 {
        self.start + self.len
    }
}

/// What a partial upload is in the bucket: its marker and segments (in offset order).
#[derive(Debug, Default)]
struct PartialListing {
    marker: bool,
    segments: Vec<Segment>,
}

/// What HEAD says about an object.
#[derive(Debug, Clone)]
struct Head {
    len: u64,
    checksum: Option<String>,
    lock: ObjectLockState,
}

/// The bucket and its client; cheap to clone into a future.
#[derive(Clone)]
struct Bucket {
    client: Client,
    bucket: String,
    prefix: String,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl Bucket {
    fn original_key(&self, sha256: &str) -> Result<String> {
        if !is_sha256_hex(sha256) {
            return Err(Error::BadRequest("a blob name must be 64 lowercase hex digits".into()));
        }
        Ok(format!("{}originals/sha256/{sha256}", self.prefix))
    }

    /// The folder of a clip's partial upload; the id must be a hyphenated lowercase UUID.
    fn partial_prefix(&self, clip_id: &str) -> Result<String> {
        match uuid::Uuid::parse_str(clip_id) {
            Ok(u) if u.hyphenated().to_string() == clip_id => Ok(format!("{}partials/{clip_id}/", self.prefix)),
            _ => Err(Error::BadRequest("a partial upload is named by a clip id (a UUID)".into())),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<Head>> {
        let r = self.client.head_object().bucket(&self.bucket).key(key).checksum_mode(ChecksumMode::Enabled).send().await;
        match r {
            Ok(h) => Ok(Some(Head {
                len: h.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                checksum: h.checksum_sha256().map(str::to_string),
                lock: ObjectLockState {
                    mode: h.object_lock_mode().map(|m| m.as_str().to_string()),
                    retain_until: h.object_lock_retain_until_date().and_then(|d| {
                        chrono::DateTime::from_timestamp(d.secs(), d.subsec_nanos()).map(fieldcap_evidence::time::format)
                    }),
                    legal_hold: h.object_lock_legal_hold_status() == Some(&ObjectLockLegalHoldStatus::On),
                },
            })),
            Err(e) if status_of(&e) == Some(404) => Ok(None),
            Err(e) => Err(s3_err("reading an object's metadata", e)),
        }
    }

    async fn put(&self, key: &str, bytes: Vec<u8>, create_only: bool) -> Result<bool> {
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .checksum_sha256(b64(&sha256(&bytes)))
            .body(ByteStream::from(bytes));
        if create_only {
            req = req.if_none_match("*");
        }
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if create_only && status_of(&e) == Some(412) => Ok(false),
            Err(e) => Err(s3_err("writing an object", e)),
        }
    }

    async fn get_range(&self, key: &str, start: u64, len: u64) -> Result<Vec<u8>> {
        let r = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .range(format!("bytes={start}-{}", start + len - 1))
            .send()
            .await
            .map_err(|e| s3_err("reading an object", e))?;
        let body = r.body.collect().await.map_err(|_| Error::StorageUnavailable(UNAVAILABLE.into()))?.to_vec();
        if body.len() as u64 != len {
            return Err(failure(format!("reading an object: {} bytes came instead of {len} (the object changed)", body.len())));
        }
        Ok(body)
    }

    async fn delete(&self, key: &str, version_id: Option<&str>) -> Result<()> {
        let mut req = self.client.delete_object().bucket(&self.bucket).key(key);
        if let Some(v) = version_id.filter(|v| *v != "null") {
            req = req.version_id(v);
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if status_of(&e) == Some(404) => Ok(()),
            Err(e) if status_of(&e) == Some(403) => {
                Err(Error::Conflict("the object storage refused to delete an object (AccessDenied: an Object Lock holds it, or access is denied)".into()))
            }
            Err(e) => Err(s3_err("deleting an object", e)),
        }
    }

    /// Every version and delete marker of the keys under `prefix` (`exact`: of that key only).
    async fn versions(&self, prefix: &str, exact: bool) -> Result<Vec<(String, Option<String>)>> {
        let mut out = Vec::new();
        let (mut key_marker, mut version_marker): (Option<String>, Option<String>) = (None, None);
        loop {
            let r = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker.clone())
                .set_version_id_marker(version_marker.clone())
                .send()
                .await
                .map_err(|e| s3_err("listing object versions", e))?;
            for v in r.versions() {
                if let Some(k) = v.key() {
                    out.push((k.to_string(), v.version_id().map(str::to_string)));
                }
            }
            for m in r.delete_markers() {
                if let Some(k) = m.key() {
                    out.push((k.to_string(), m.version_id().map(str::to_string)));
                }
            }
            if r.is_truncated() != Some(true) {
                break;
            }
            key_marker = r.next_key_marker().map(str::to_string);
            version_marker = r.next_version_id_marker().map(str::to_string);
            if key_marker.is_none() {
                break;
            }
        }
        if exact {
            out.retain(|(k, _)| k == prefix);
        }
        Ok(out)
    }

    /// Deletes every version under `prefix` (`exact`: of that key only); returns how many.
    async fn purge(&self, prefix: &str, exact: bool) -> Result<usize> {
        let all = self.versions(prefix, exact).await?;
        for (k, v) in &all {
            self.delete(k, v.as_deref()).await?;
        }
        Ok(all.len())
    }

    async fn list_partial(&self, pp: &str) -> Result<PartialListing> {
        let mut out = PartialListing::default();
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(pp).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_err("listing a partial upload", e))?;
            for o in page.contents() {
                let Some(key) = o.key() else { continue };
                let name = &key[pp.len().min(key.len())..];
                if name == OPEN_MARKER {
                    out.marker = true;
                } else if name.len() == 20 && name.bytes().all(|c| c.is_ascii_digit()) {
                    let start = name.parse::<u64>().map_err(|_| Error::Internal("a segment name out of range".into()))?;
                    let len = o.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
                    out.segments.push(Segment { key: key.to_string(), start, len });
                }
            }
        }
        out.segments.sort_by_key(|s| s.start);
        Ok(out)
    }

    /// Brings a partial upload back to `offset`: segments from it on deleted, one across it cut,
    /// the rest checked to cover `0..offset`.
    async fn truncate_partial(&self, pp: &str, offset: u64) -> Result<()> {
        let listing = self.list_partial(pp).await?;
        let mut covered = 0u64;
        for s in &listing.segments {
            if s.start >= offset {
                self.delete(&s.key, None).await?;
                continue;
            }
            if s.start != covered {
                return Err(Error::Internal(format!(
                    "the partial upload's stored bytes do not run without gap or overlap up to its recorded offset (a segment at {} after {covered} bytes)",
                    s.start
                )));
            }
            if s.end() > offset {
                let keep = self.get_range(&s.key, 0, offset - s.start).await?;
                self.put(&s.key, keep, false).await?;
                covered = offset;
            } else {
                covered = s.end();
            }
        }
        if covered < offset {
            return Err(Error::Internal(format!("the partial upload holds {covered} bytes, fewer than its recorded offset {offset}")));
        }
        Ok(())
    }

    async fn put_retention(&self, key: &str, until: chrono::DateTime<chrono::Utc>) -> Result<()> {
        // Whole seconds, rounded up: never shorter than asked.
        let secs = until.timestamp() + i64::from(until.timestamp_subsec_nanos() > 0);
        let retention = ObjectLockRetention::builder()
            .mode(ObjectLockRetentionMode::Compliance)
            .retain_until_date(aws_sdk_s3::primitives::DateTime::from_secs(secs))
            .build();
        self.client
            .put_object_retention()
            .bucket(&self.bucket)
            .key(key)
            .retention(retention)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| s3_err("setting an original's retention", e))
    }

    async fn put_legal_hold(&self, key: &str, on: bool) -> Result<()> {
        let status = if on { ObjectLockLegalHoldStatus::On } else { ObjectLockLegalHoldStatus::Off };
        self.client
            .put_object_legal_hold()
            .bucket(&self.bucket)
            .key(key)
            .legal_hold(ObjectLockLegalHold::builder().status(status).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| s3_err("setting an original's legal hold", e))
    }
}

/// The runtime and bucket shared by the store, its writers and readers.
struct Shared {
    bucket: Bucket,
    rt: Option<tokio::runtime::Runtime>,
}

impl Shared {
    /// Runs a future on the store's runtime and waits for it (from any thread, with or without a
    /// runtime of its own).
    fn run<T: Send + 'static>(&self, fut: impl Future<Output = Result<T>> + Send + 'static) -> Result<T> {
        let rt = self.rt.as_ref().ok_or_else(|| Error::Internal("the object storage client is shut down".into()))?;
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        rt.spawn(async move {
            let _ = tx.send(fut.await);
        });
        rx.recv().map_err(|_| Error::Internal("an object storage request was abandoned".into()))?
    }

    fn with<T: Send + 'static, F: Future<Output = Result<T>> + Send + 'static>(&self, f: impl FnOnce(Bucket) -> F) -> Result<T> {
        self.run(f(self.bucket.clone()))
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which panics inside another runtime; let it wind down alone.
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

/// Originals and partial uploads in one S3-compatible bucket (see the module docs).
#[derive(Clone)]
pub struct S3BlobStore {
    shared: Arc<Shared>,
    object_lock: bool,
}

impl std::fmt::Debug for S3BlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3BlobStore").field("object_lock", &self.object_lock).finish_non_exhaustive()
    }
}

async fn client_for(t: &Target, access: Option<&S3Access>) -> Client {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let http = aws_smithy_http_client::Builder::new().tls_provider(Provider::Rustls(CryptoMode::Ring)).build_https();
    let timeouts = aws_sdk_s3::config::timeout::TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(5))
        .read_timeout(Duration::from_secs(60))
        .operation_attempt_timeout(Duration::from_secs(300))
        .build();
    let mut b = match access {
        Some(a) => aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(a.region.clone()))
            .credentials_provider(Credentials::new(&a.access_key_id, &a.secret_access_key, None, None, "fieldcap")),
        None => {
            let mut loader = aws_config::defaults(BehaviorVersion::latest()).http_client(http.clone());
            if let Some(r) = &t.region {
                loader = loader.region(Region::new(r.clone()));
            }
            let sdk = loader.load().await;
            let mut b = aws_sdk_s3::config::Builder::from(&sdk);
            if sdk.region().is_none() {
                b = b.region(Region::new("us-east-1"));
            }
            b
        }
    };
    if let (Some(_), Some(r)) = (access, &t.region) {
        b = b.region(Region::new(r.clone())); // the URL's region wins over the given one
    }
    b = b
        .http_client(http)
        .timeout_config(timeouts)
        .retry_config(aws_sdk_s3::config::retry::RetryConfig::standard().with_max_attempts(3))
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
    if let Some(e) = &t.endpoint {
        b = b.endpoint_url(e).force_path_style(true);
    }
    Client::from_conf(b.build())
}

impl S3BlobStore {
    /// Opens the store at `s3://BUCKET?endpoint=URL[&prefix=P][&region=R]`, with region and
    /// credentials from the `AWS_*` environment variables or the AWS config files. Checks that
    /// the bucket answers and reads whether it has Object Lock.
    pub fn open(url: &str) -> Result<S3BlobStore> {
        Self::open_inner(url, None)
    }

    /// As [`S3BlobStore::open`], with credentials and region given (a `region` in the URL still
    /// wins). For tests and tools that must not touch the process environment.
    pub fn open_with_access(url: &str, access: &S3Access) -> Result<S3BlobStore> {
        Self::open_inner(url, Some(access))
    }

    /// Creates a bucket (with Object Lock enabled when `object_lock`), for tests and first setup.
    /// A bucket that exists and is ours already is not an error.
    pub fn create_bucket(url: &str, access: Option<&S3Access>, object_lock: bool) -> Result<()> {
        let t = parse_url(url)?;
        let rt = runtime()?;
        let shared_access = access.cloned();
        rt.block_on(async move {
            let client = client_for(&t, shared_access.as_ref()).await;
            match client.create_bucket().bucket(&t.bucket).object_lock_enabled_for_bucket(object_lock).send().await {
                Ok(_) => Ok(()),
                Err(e) if e.code() == Some("BucketAlreadyOwnedByYou") => Ok(()),
                Err(e) => Err(s3_err("creating the bucket", e)),
            }
        })
    }

    fn open_inner(url: &str, access: Option<&S3Access>) -> Result<S3BlobStore> {
        let t = parse_url(url)?;
        let rt = runtime()?;
        let access = access.cloned();
        let t2 = t.clone();
        let client = rt.block_on(async move { client_for(&t2, access.as_ref()).await });
        let bucket = Bucket { client, bucket: t.bucket.clone(), prefix: t.prefix.clone() };
        let shared = Arc::new(Shared { bucket, rt: Some(rt) });
        let object_lock = shared.with(|b| async move {
            match b.client.head_bucket().bucket(&b.bucket).send().await {
                Ok(_) => {}
                Err(e) if status_of(&e) == Some(404) => return Err(failure("the bucket does not exist")),
                Err(e) if status_of(&e) == Some(403) => return Err(failure("access to the bucket is denied (check the AWS credentials)")),
                Err(e) => return Err(s3_err("reaching the bucket", e)),
            }
            match b.client.get_object_lock_configuration().bucket(&b.bucket).send().await {
                Ok(r) => {
                    let cfg = r.object_lock_configuration();
                    let enabled = cfg.and_then(|c| c.object_lock_enabled()) == Some(&ObjectLockEnabled::Enabled);
                    if cfg.and_then(|c| c.rule()).and_then(|r| r.default_retention()).is_some() {
                        tracing::warn!("the bucket has a default Object Lock retention: partial uploads are locked too and stay until it ends");
                    }
                    Ok(enabled)
                }
                Err(e) if matches!(status_of(&e), Some(404) | Some(400)) => Ok(false),
                Err(e) => Err(s3_err("reading the bucket's Object Lock configuration", e)),
            }
        })?;
        if !object_lock {
            tracing::warn!("the bucket has no Object Lock: originals are not write-once protected against deletion by an administrator");
        }
        Ok(S3BlobStore { shared, object_lock })
    }

    /// True if the bucket has Object Lock enabled (the lock methods then lock originals).
    pub fn object_lock_enabled(&self) -> bool {
        self.object_lock
    }

    /// Every current object under the store's prefix as (key without the prefix, size), in key
    /// order: for audits (one object per original, no stray partials) and tests.
    pub fn list_objects(&self) -> Result<Vec<(String, u64)>> {
        self.shared.with(|b| async move {
            let mut out = Vec::new();
            let mut pages = b.client.list_objects_v2().bucket(&b.bucket).prefix(&b.prefix).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| s3_err("listing the bucket", e))?;
                for o in page.contents() {
                    if let Some(key) = o.key() {
                        let len = o.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
                        out.push((key[b.prefix.len().min(key.len())..].to_string(), len));
                    }
                }
            }
            out.sort();
            Ok(out)
        })
    }

    /// The lock of an original's current version (for tests and audits; see
    /// [`BlobStore::lock_state`]).
    fn head_original(&self, sha256: &str) -> Result<Option<Head>> {
        let key = self.shared.bucket.original_key(sha256)?;
        self.shared.with(|b| async move { b.head(&key).await })
    }

    /// Reads an original, or verifies an existing one against `expected` (length, checksum).
    fn check_original(&self, key: &str, len: u64, checksum: &str) -> Result<()> {
        let k = key.to_string();
        let head = self.shared.with(|b| async move { b.head(&k).await })?;
        let Some(h) = head else {
            return Err(failure("an original just written is not in the object storage"));
        };
        if h.len != len {
            return Err(failure(format!("the stored original holds {} bytes instead of {len}; it is not claimed stored", h.len)));
        }
        match h.checksum.as_deref() {
            Some(c) if checksums_match(c, checksum) => Ok(()),
            Some(_) => Err(failure("the stored original's SHA-256 checksum differs from the bytes received; it is not claimed stored")),
            None => Err(failure("the object storage reports no SHA-256 checksum for the stored original; it is not claimed stored")),
        }
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("fieldcap-s3")
        .enable_all()
        .build()
        .map_err(|e| Error::io("starting the object storage client", e))
}

/// Reads a list of object ranges in order, 8 MiB per GET.
struct RangeReader {
    shared: Arc<Shared>,
    pieces: Vec<(String, u64)>,
    idx: usize,
    off: u64,
    buf: Vec<u8>,
    pos: usize,
}

impl RangeReader {
    fn new(shared: Arc<Shared>, pieces: Vec<(String, u64)>) -> RangeReader {
        RangeReader { shared, pieces, idx: 0, off: 0, buf: Vec::new(), pos: 0 }
    }

    /// Fills the buffer; false at the end.
    fn fill(&mut self) -> Result<bool> {
        while self.pos >= self.buf.len() {
            let Some((key, len)) = self.pieces.get(self.idx).cloned() else { return Ok(false) };
            if self.off >= len {
                self.idx += 1;
                self.off = 0;
                continue;
            }
            let n = (len - self.off).min(SEGMENT_BYTES as u64);
            let start = self.off;
            self.buf = self.shared.with(|b| async move { b.get_range(&key, start, n).await })?;
            self.pos = 0;
            self.off += n;
        }
        Ok(true)
    }
}

impl Read for RangeReader {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if out.is_empty() || !self.fill().map_err(std::io::Error::other)? {
            return Ok(0);
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Reads up to `buf.len()` bytes (fewer only at the end).
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => {
                return Err(match e.into_inner().map(|inner| inner.downcast::<Error>()) {
                    Some(Ok(err)) => *err,
                    _ => failure("reading a partial upload failed"),
                })
            }
        }
    }
    Ok(n)
}

/// A partial upload open for appending: at most [`SEGMENT_BYTES`] buffered.
struct S3Partial {
    shared: Arc<Shared>,
    pp: String,
    /// Offset of the first buffered byte.
    start: u64,
    buf: Vec<u8>,
}

impl S3Partial {
    fn put_segment(&self, start: u64, bytes: Vec<u8>) -> Result<()> {
        let key = format!("{}{start:020}", self.pp);
        self.shared.with(|b| async move { b.put(&key, bytes, false).await.map(|_| ()) })
    }
}

impl PartialWriter for S3Partial {
    fn write_all(&mut self, bytes: &[u8]) -> Result<()> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let take = rest.len().min(SEGMENT_BYTES - self.buf.len());
            self.buf.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.buf.len() == SEGMENT_BYTES {
                let full = std::mem::replace(&mut self.buf, Vec::with_capacity(SEGMENT_BYTES));
                self.put_segment(self.start, full)?;
                self.start += SEGMENT_BYTES as u64;
            }
        }
        Ok(())
    }

    fn sync(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let n = self.buf.len() as u64;
        let bytes = std::mem::take(&mut self.buf);
        self.put_segment(self.start, bytes)?;
        self.start += n;
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> Result<()> {
        self.buf.clear();
        let pp = self.pp.clone();
        self.shared.with(|b| async move { b.truncate_partial(&pp, len).await })?;
        self.start = len;
        Ok(())
    }
}

/// The checksum S3 reports for an original of these parts' digests: the SHA-256 itself for one
/// part, else the composite `base64(SHA-256(digests))-N`.
fn expected_checksum(parts: &[[u8; 32]], whole: &[u8; 32]) -> String {
    if parts.len() <= 1 {
        return b64(whole);
    }
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    format!("{}-{}", b64(&h.finalize()), parts.len())
}

/// True if the checksum S3 reports is the one expected. A composite checksum is reported as
/// `<base64>-<parts>` by S3, by some servers without the suffix: the digest must match, and the
/// part count too when it is given.
fn checksums_match(reported: &str, expected: &str) -> bool {
    if reported == expected {
        return true;
    }
    match expected.split_once('-') {
        Some((digest, _)) => !reported.contains('-') && reported == digest,
        None => false,
    }
}

impl S3BlobStore {
    fn listing(&self, clip_id: &str) -> Result<(String, PartialListing)> {
        let pp = self.shared.bucket.partial_prefix(clip_id)?;
        let p2 = pp.clone();
        let l = self.shared.with(|b| async move { b.list_partial(&p2).await })?;
        Ok((pp, l))
    }

    /// The segments of a partial, checked to run from 0 without gap or overlap.
    fn contiguous(l: &PartialListing) -> Result<Vec<(String, u64)>> {
        let mut at = 0;
        let mut out = Vec::new();
        for s in &l.segments {
            if s.start != at {
                return Err(Error::Internal(format!("the partial upload's segments do not run without gap or overlap (one at {} after {at} bytes)", s.start)));
            }
            at = s.end();
            out.push((s.key.clone(), s.len));
        }
        Ok(out)
    }

    /// Streams a partial into the original `key`, hashing it; returns (length, checksum S3 should
    /// report). Nothing is stored if the bytes do not hash to `sha256`.
    fn upload_original(&self, pieces: Vec<(String, u64)>, key: &str, sha256: &str) -> Result<(u64, String, bool)> {
        let total: u64 = pieces.iter().map(|p| p.1).sum();
        let mut reader = RangeReader::new(self.shared.clone(), pieces);
        let mut whole = Sha256::new();
        if total <= SEGMENT_BYTES as u64 {
            let mut bytes = vec![0u8; total as usize];
            let n = read_full(&mut reader, &mut bytes)?;
            bytes.truncate(n);
            let digest = sha256_of(&bytes);
            if hex::encode(digest) != sha256 {
                return Err(Error::Internal("the partial upload does not hash to the original's name; nothing was stored".into()));
            }
            let k = key.to_string();
            let created = self.shared.with(|b| async move { b.put(&k, bytes, true).await })?;
            return Ok((n as u64, expected_checksum(&[digest], &digest), created));
        }
        let k = key.to_string();
        let upload_id = self.shared.with(|b| async move {
            let r = b
                .client
                .create_multipart_upload()
                .bucket(&b.bucket)
                .key(&k)
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .send()
                .await
                .map_err(|e| s3_err("starting a multipart upload", e))?;
            r.upload_id().map(str::to_string).ok_or_else(|| failure("starting a multipart upload: no upload id came back"))
        })?;
        let result = self.upload_parts(&mut reader, &mut whole, key, &upload_id, sha256);
        if result.is_err() || matches!(result, Ok((_, _, false))) {
            let (k, id) = (key.to_string(), upload_id.clone());
            let _ = self.shared.with(|b| async move {
                b.client
                    .abort_multipart_upload()
                    .bucket(&b.bucket)
                    .key(&k)
                    .upload_id(&id)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| s3_err("aborting a multipart upload", e))
            });
        }
        result
    }

    fn upload_parts(&self, reader: &mut RangeReader, whole: &mut Sha256, key: &str, upload_id: &str, sha256: &str) -> Result<(u64, String, bool)> {
        let mut parts: Vec<[u8; 32]> = Vec::new();
        let mut completed = Vec::new();
        let mut total = 0u64;
        let mut buf = vec![0u8; SEGMENT_BYTES];
        loop {
            let n = read_full(reader, &mut buf)?;
            if n == 0 {
                break;
            }
            let chunk = buf[..n].to_vec();
            whole.update(&chunk);
            let digest = sha256_of(&chunk);
            let number = i32::try_from(parts.len() + 1).map_err(|_| Error::Internal("too many parts".into()))?;
            let (k, id, sum) = (key.to_string(), upload_id.to_string(), b64(&digest));
            let part = self.shared.with(|b| async move {
                let r = b
                    .client
                    .upload_part()
                    .bucket(&b.bucket)
                    .key(&k)
                    .upload_id(&id)
                    .part_number(number)
                    .checksum_algorithm(ChecksumAlgorithm::Sha256)
                    .checksum_sha256(&sum)
                    .body(ByteStream::from(chunk))
                    .send()
                    .await
                    .map_err(|e| s3_err("writing a part of an original", e))?;
                Ok(CompletedPart::builder().part_number(number).set_e_tag(r.e_tag().map(str::to_string)).checksum_sha256(sum).build())
            })?;
            completed.push(part);
            parts.push(digest);
            total += n as u64;
            if n < SEGMENT_BYTES {
                break;
            }
        }
        let digest: [u8; 32] = std::mem::take(whole).finalize().into();
        if hex::encode(digest) != sha256 {
            return Err(Error::Internal("the partial upload does not hash to the original's name; nothing was stored".into()));
        }
        let (k, id) = (key.to_string(), upload_id.to_string());
        let created = self.shared.with(|b| async move {
            let r = b
                .client
                .complete_multipart_upload()
                .bucket(&b.bucket)
                .key(&k)
                .upload_id(&id)
                .if_none_match("*")
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(completed)).build())
                .send()
                .await;
            match r {
                Ok(_) => Ok(true),
                Err(e) if status_of(&e) == Some(412) => Ok(false),
                // A 200 whose body the SDK does not take as a result: S3 documents 200 answers
                // carrying an error, and moto names its root element differently. Whether the
                // original is there, whole, is decided by the HEAD check that follows.
                Err(e) if status_of(&e) == Some(200) => Ok(true),
                Err(e) => Err(s3_err("completing an original's multipart upload", e)),
            }
        })?;
        Ok((total, expected_checksum(&parts, &digest), created))
    }

    /// The length and checksum an original of the partial's bytes has (read, not written).
    fn describe(&self, pieces: Vec<(String, u64)>) -> Result<(u64, String, String)> {
        let mut reader = RangeReader::new(self.shared.clone(), pieces);
        let mut whole = Sha256::new();
        let mut parts = Vec::new();
        let mut total = 0u64;
        let mut buf = vec![0u8; SEGMENT_BYTES];
        loop {
            let n = read_full(&mut reader, &mut buf)?;
            if n == 0 && !parts.is_empty() {
                break;
            }
            whole.update(&buf[..n]);
            parts.push(sha256_of(&buf[..n]));
            total += n as u64;
            if n < SEGMENT_BYTES {
                break;
            }
        }
        let digest: [u8; 32] = whole.finalize().into();
        Ok((total, expected_checksum(&parts, &digest), hex::encode(digest)))
    }
}

fn sha256_of(bytes: &[u8]) -> [u8; 32] {
    sha256(bytes)
}

impl BlobStore for S3BlobStore {
    fn open_partial(&self, clip_id: &str, offset: u64) -> Result<Box<dyn PartialWriter>> {
        let (pp, l) = self.listing(clip_id)?;
        if !l.marker {
            let key = format!("{pp}{OPEN_MARKER}");
            self.shared.with(|b| async move { b.put(&key, Vec::new(), false).await.map(|_| ()) })?;
        }
        let p2 = pp.clone();
        self.shared.with(|b| async move { b.truncate_partial(&p2, offset).await })?;
        Ok(Box::new(S3Partial { shared: self.shared.clone(), pp, start: offset, buf: Vec::with_capacity(SEGMENT_BYTES) }))
    }

    fn read_partial(&self, clip_id: &str) -> Result<Option<Box<dyn Read + Send>>> {
        let (_, l) = self.listing(clip_id)?;
        if !l.marker && l.segments.is_empty() {
            return Ok(None);
        }
        Ok(Some(Box::new(RangeReader::new(self.shared.clone(), Self::contiguous(&l)?))))
    }

    fn discard_partial(&self, clip_id: &str) -> Result<()> {
        let pp = self.shared.bucket.partial_prefix(clip_id)?;
        self.shared.with(|b| async move { b.purge(&pp, false).await.map(|_| ()) })
    }

    fn set_aside_partial(&self, clip_id: &str) -> Result<Option<String>> {
        let (pp, l) = self.listing(clip_id)?;
        if !l.marker && l.segments.is_empty() {
            return Ok(None);
        }
        let name = format!("set-aside/{clip_id}-{}", chrono::Utc::now().timestamp_millis());
        let dst = format!("{}{name}/", self.shared.bucket.prefix);
        let segments = l.segments.clone();
        self.shared.with(|b| async move {
            let marker = format!("{dst}{OPEN_MARKER}");
            b.put(&marker, Vec::new(), false).await?;
            for s in &segments {
                b.client
                    .copy_object()
                    .bucket(&b.bucket)
                    .key(format!("{dst}{:020}", s.start))
                    .copy_source(format!("{}/{}", b.bucket, s.key))
                    .send()
                    .await
                    .map_err(|e| s3_err("setting a partial upload aside", e))?;
            }
            b.purge(&pp, false).await.map(|_| ())
        })?;
        Ok(Some(name))
    }

    fn store_partial(&self, clip_id: &str, sha256: &str) -> Result<()> {
        let key = self.shared.bucket.original_key(sha256)?;
        let (pp, l) = self.listing(clip_id)?;
        if !l.marker && l.segments.is_empty() {
            return Err(Error::Internal("there is no partial upload to store".into()));
        }
        let pieces = Self::contiguous(&l)?;
        let (len, checksum) = if self.head_original(sha256)?.is_some() {
            // Stored already (identical bytes, or a completion run again after a crash): keep it,
            // but check that it is what this partial holds.
            let (len, checksum, digest) = self.describe(pieces)?;
            if digest != sha256 {
                return Err(Error::Internal("the partial upload does not hash to the original's name; nothing was stored".into()));
            }
            (len, checksum)
        } else {
            let (len, checksum, _created) = self.upload_original(pieces, &key, sha256)?;
            (len, checksum)
        };
        self.check_original(&key, len, &checksum)?;
        self.shared.with(|b| async move { b.purge(&pp, false).await.map(|_| ()) })
    }

    fn contains(&self, sha256: &str) -> Result<bool> {
        Ok(self.head_original(sha256)?.is_some())
    }

    fn open(&self, sha256: &str) -> Result<Box<dyn Read + Send>> {
        let key = self.shared.bucket.original_key(sha256)?;
        let h = self.head_original(sha256)?.ok_or_else(|| Error::NotFound("no stored original of that name".into()))?;
        Ok(Box::new(RangeReader::new(self.shared.clone(), vec![(key, h.len)])))
    }

    fn open_at(&self, sha256: &str, start: u64) -> Result<Box<dyn Read + Send>> {
        let key = self.shared.bucket.original_key(sha256)?;
        let h = self.head_original(sha256)?.ok_or_else(|| Error::NotFound("no stored original of that name".into()))?;
        // Ranged GETs from `start`: nothing before it crosses the network.
        let mut r = RangeReader::new(self.shared.clone(), vec![(key, h.len)]);
        r.off = start.min(h.len);
        Ok(Box::new(r))
    }

    fn local_path(&self, _sha256: &str) -> Option<PathBuf> {
        None
    }

    fn remove_disposed(&self, sha256: &str) -> Result<()> {
        let key = self.shared.bucket.original_key(sha256)?;
        let lock = self.lock_state(sha256)?;
        let r = self.shared.with(|b| async move { b.purge(&key, true).await.map(|_| ()) });
        match r {
            Err(Error::Conflict(_)) => {
                let why = lock
                    .and_then(|l| l.refusal_at(chrono::Utc::now()))
                    .unwrap_or_else(|| "the object storage refused the deletion (an Object Lock, or access denied)".into());
                Err(Error::Conflict(format!("the disposed item's original cannot be removed: {why}")))
            }
            other => other,
        }
    }

    fn set_retention(&self, sha256: &str, until: &str) -> Result<()> {
        let until = chrono::DateTime::parse_from_rfc3339(until)
            .map_err(|_| Error::BadRequest("a retention end must be an RFC 3339 time".into()))?
            .with_timezone(&chrono::Utc);
        if !self.object_lock || until <= chrono::Utc::now() {
            return Ok(());
        }
        let key = self.shared.bucket.original_key(sha256)?;
        let head = self.head_original(sha256)?.ok_or_else(|| Error::NotFound("no stored original of that name".into()))?;
        let current = head.lock.retain_until.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        if current.is_some_and(|c| c >= until) {
            return Ok(()); // never shortened
        }
        self.shared.with(|b| async move { b.put_retention(&key, until).await })
    }

    fn set_legal_hold(&self, sha256: &str, on: bool) -> Result<()> {
        if !self.object_lock {
            return Ok(());
        }
        let key = self.shared.bucket.original_key(sha256)?;
        self.shared.with(|b| async move { b.put_legal_hold(&key, on).await })
    }

    fn lock_state(&self, sha256: &str) -> Result<Option<ObjectLockState>> {
        if !self.object_lock {
            return Ok(None);
        }
        Ok(self.head_original(sha256)?.map(|h| h.lock))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_and_credentials_in_them_refused() {
        let t = parse_url("s3://evidence-1?endpoint=http://127.0.0.1:9000&prefix=city/a&region=eu-west-2").unwrap();
        assert_eq!(t.bucket, "evidence-1");
        assert_eq!(t.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert_eq!(t.prefix, "city/a/");
        assert_eq!(t.region.as_deref(), Some("eu-west-2"));
        assert_eq!(parse_url("s3://bucket").unwrap().prefix, "");
        assert_eq!(parse_url("s3://bbb?endpoint=http%3A%2F%2Fh%3A1").unwrap().endpoint.as_deref(), Some("http://h:1"));
        for bad in [
            "http://bucket",
            "s3://B",
            "s3://bucket?endpoint=http://key:secret@host",
            "s3://bucket?secret_access_key=x",
            "s3://bucket?prefix=../x",
            "s3://bucket?colour=red",
            "s3://bucket?endpoint=ftp://host",
        ] {
            let e = parse_url(bad).unwrap_err().to_string();
            assert!(!e.contains("secret"), "{e}");
        }
    }

    #[test]
    fn the_composite_checksum_is_over_the_part_digests() {
        let a = sha256(b"a");
        let b = sha256(b"b");
        let whole = sha256(b"ab");
        assert_eq!(expected_checksum(&[whole], &whole), b64(&whole));
        let mut cat = a.to_vec();
        cat.extend_from_slice(&b);
        assert_eq!(expected_checksum(&[a, b], &whole), format!("{}-2", b64(&sha256(&cat))));
        let composite = expected_checksum(&[a, b], &whole);
        assert!(checksums_match(&composite, &composite));
        assert!(checksums_match(&b64(&sha256(&cat)), &composite));
        assert!(!checksums_match(&format!("{}-3", b64(&sha256(&cat))), &composite));
        assert!(!checksums_match(&b64(&whole), &composite));
        assert!(!checksums_match(&b64(&a), &b64(&whole)));
    }
}
