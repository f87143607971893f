//! Device identity: one Ed25519 key per installation.
//!
//! The key is generated on first start, before any enrolment, so capture never waits for the
//! network. The 32-byte secret only ever reaches disk wrapped by a [`KeyProtector`]: on phones
//! the shells supply Android Keystore / iOS Keychain protectors; on desktop
//! [`FileKeyProtector`] keeps it in a file readable only by its owner (mode 0600).
//!
//! `device_id` is the lowercase hex of the first 16 bytes of SHA-256 over the raw public key.
//! Public keys leave the device as SPKI PEM so that `openssl pkeyutl -verify -rawin` checks
//! signatures with no Fieldcap code at all.
//!
//! ```
//! use fieldcap_evidence::identity::{device_id_for, DeviceKey};
//! let key = DeviceKey::generate();
//! let sig = key.sign(b"manifest bytes");
//! fieldcap_evidence::identity::verify_with_pem(&key.public_pem(), b"manifest bytes", &sig).unwrap();
//! assert_eq!(device_id_for(&key.verifying_key()).len(), 32);
//! ```

use crate::error::{Error, IoContext, Result};
use ed25519_dalek::pkcs8::{DecodePublicKey, EncodePublicKey};
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use sha2::Digest;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use zeroize::Zeroizing;

/// Wraps and unwraps the device secret with a platform key store.
///
/// Implementations must be deterministic in the sense that `unwrap(wrap(s)) == s`; they may
/// (and on phones should) use a hardware-held key that never leaves the secure element.
pub trait KeyProtector: Send + Sync {
    /// A short name recorded next to the wrapped key ("file-0600", "android-keystore", …).
    fn name(&self) -> String;
    /// Wraps the 32-byte secret; the result is stored as-is.
    fn wrap(&self, secret: &[u8]) -> Result<Vec<u8>>;
    /// Recovers the secret from what [`KeyProtector::wrap`] produced.
    fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>>;
}

/// Desktop protector: the secret is stored as-is in a file only its owner can read (0600).
///
/// This is the honest limit of a desktop without a key store: anyone with the user's account
/// can read the key. Phones must supply a hardware-backed protector instead.
#[derive(Debug, Default, Clone, Copy)]
pub struct FileKeyProtector;

impl KeyProtector for FileKeyProtector {
    fn name(&self) -> String {
        "file-0600".into()
    }
    fn wrap(&self, secret: &[u8]) -> Result<Vec<u8>> {
        Ok(secret.to_vec())
    }
    fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>> {
        Ok(wrapped.to_vec())
    }
}

/// An Ed25519 signing key and the identifiers derived from it.
pub struct DeviceKey {
    signing: SigningKey,
    device_id: String,
}

impl std::fmt::Debug for DeviceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("DeviceKey").field("device_id", &self.device_id).finish_non_exhaustive()
    }
}

/// `device_id` for a public key: hex of the first 16 bytes of SHA-256(raw 32-byte key).
pub fn device_id_for(key: &VerifyingKey) -> String {
    let d = sha2::Sha256::digest(key.as_bytes());
    hex::encode(&d[..16])
}

/// The **fingerprint** of a public key: lowercase hex of SHA-256 over its SubjectPublicKeyInfo
/// DER encoding (RFC 8410: the 12-byte Ed25519 SPKI prefix and the raw 32-byte key), 64 hex
/// digits. It is what a recipient pins a server key by, and computes with stock tools from the
/// PEM file: `openssl pkey -pubin -in server.pub.pem -outform DER | sha256sum`. (A key id,
/// [`device_id_for`], is another value: the first 16 bytes of SHA-256 over the raw key only.)
pub fn key_fingerprint(key: &VerifyingKey) -> String {
    let mut spki = Vec::with_capacity(44);
    spki.extend_from_slice(&ED25519_SPKI_PREFIX);
    spki.extend_from_slice(key.as_bytes());
    hex::encode(sha2::Sha256::digest(&spki))
}

/// The DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4): SEQUENCE { SEQUENCE { OID
/// 1.3.101.112 }, BIT STRING (0 unused bits) } followed by the 32-byte key.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// SPKI PEM of a public key.
pub fn public_key_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(Default::default()).unwrap_or_default()
}

/// Parses an SPKI PEM Ed25519 public key.
pub fn parse_public_pem(pem: &str) -> Result<VerifyingKey> {
    VerifyingKey::from_public_key_pem(pem.trim()).map_err(|_| Error::Key("not an Ed25519 SPKI PEM public key".into()))
}

/// Checks that a public key is fit to be a device key: its 32 bytes are the canonical encoding
/// of the point they name (a `y` below the field prime, no sign bit on `x = 0`), and the point is
/// not of small order (the identity, the all-zero key and the other torsion points). Under a
/// small-order key a lax verifier accepts forged signatures, and a non-canonical encoding gives
/// one point two device ids; enrolment refuses both (before it consumes the token).
pub fn check_device_key(key: &VerifyingKey) -> Result<()> {
    if key.is_weak() {
        return Err(Error::Key("the public key is a small-order point (e.g. the identity or all zeros), not a usable Ed25519 key".into()));
    }
    if key.to_edwards().compress().to_bytes() != key.to_bytes() {
        return Err(Error::Key("the public key is not the canonical encoding of its point".into()));
    }
    Ok(())
}

/// Parses an SPKI PEM Ed25519 public key and checks it with [`check_device_key`].
pub fn parse_device_key_pem(pem: &str) -> Result<VerifyingKey> {
    let key = parse_public_pem(pem)?;
    check_device_key(&key)?;
    Ok(key)
}

/// Verifies a raw 64-byte Ed25519 signature over `msg` (strict verification: no malleable forms).
pub fn verify(key: &VerifyingKey, msg: &[u8], sig: &[u8]) -> Result<()> {
    let sig: [u8; 64] = sig
        .try_into()
        .map_err(|_| Error::Integrity(format!("signature is {} bytes, expected 64", sig.len())))?;
    let sig = ed25519_dalek::Signature::from_bytes(&sig);
    key.verify_strict(msg, &sig)
        .map_err(|_| Error::Integrity("signature does not verify".into()))
}

/// Verifies with a PEM public key (see [`verify`]).
pub fn verify_with_pem(pem: &str, msg: &[u8], sig: &[u8]) -> Result<()> {
    verify(&parse_public_pem(pem)?, msg, sig)
}

impl DeviceKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> DeviceKey {
        let signing = SigningKey::generate(&mut rand_core::OsRng);
        DeviceKey::from_signing(signing)
    }

    fn from_signing(signing: SigningKey) -> DeviceKey {
        let device_id = device_id_for(&signing.verifying_key());
        DeviceKey { signing, device_id }
    }

    /// Rebuilds a key from its 32-byte secret.
    pub fn from_secret(secret: &[u8]) -> Result<DeviceKey> {
        let s: [u8; 32] = secret
            .try_into()
            .map_err(|_| Error::Key(format!("secret is {} bytes, expected 32", secret.len())))?;
        Ok(DeviceKey::from_signing(SigningKey::from_bytes(&s)))
    }

    /// The 32-byte secret, for wrapping. Zeroised when dropped.
    pub fn secret(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.signing.to_bytes())
    }

    /// The device identifier.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The public half.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    /// SPKI PEM of the public half.
    pub fn public_pem(&self) -> String {
        public_key_pem(&self.signing.verifying_key())
    }

    /// Raw 64-byte Ed25519 signature over `msg`.
    pub fn sign(&self, msg: &[u8]) -> [u8; 64] {
        self.signing.sign(msg).to_bytes()
    }

    /// Loads the key stored in `dir`, or creates and stores one if there is none.
    ///
    /// Creation is race-free between processes: the wrapped key is written to a temporary file,
    /// synced, and hard-linked into place; whoever loses the race loads the winner's key. An
    /// existing key is never replaced.
    pub fn load_or_create(dir: &Path, protector: &dyn KeyProtector) -> Result<(DeviceKey, bool)> {
        let (secret, created) = load_or_create_wrapped(dir, "device.key", WRAPPED_KEY_TYPE, protector, "public_key_pem", &mut || {
            let key = DeviceKey::generate();
            let public = key.public_pem();
            (Zeroizing::new(key.secret().to_vec()), public)
        })?;
        let key = DeviceKey::from_secret(&secret)?;
        if created {
            fs::write(dir.join("device.pub.pem"), key.public_pem()).ctx(|| "writing the public key".into())?;
        }
        Ok((key, created))
    }
}

/// Type of a key file written by [`load_or_create_wrapped`] for the device key.
pub const WRAPPED_KEY_TYPE: &str = "fieldcap.wrapped-key/1";

/// Loads the secret kept wrapped in `dir/name` (a JSON document of type `doc_type`: the
/// protector's name, the wrapped secret in base64, the public half), or makes one with `make`
/// (secret, public text) and stores it wrapped, the public text under `public_field`. Returns the secret and whether it was created.
///
/// Creation is race-free between processes: the wrapped key is written to a temporary file,
/// synced, and hard-linked into place; whoever loses the race loads the winner's key. An
/// existing key is never replaced. The device key and the vault key are both kept this way.
pub fn load_or_create_wrapped(
    dir: &Path,
    name: &str,
    doc_type: &str,
    protector: &dyn KeyProtector,
    public_field: &str,
    make: &mut dyn FnMut() -> (Zeroizing<Vec<u8>>, String),
) -> Result<(Zeroizing<Vec<u8>>, bool)> {
    let path = dir.join(name);
    if path.exists() {
        return Ok((load_wrapped(&path, doc_type, protector)?, false));
    }
    fs::create_dir_all(dir).ctx(|| "creating the key directory".into())?;
    let (secret, public) = make();
    let wrapped = protector.wrap(&secret)?;
    let mut doc = serde_json::json!({
        "type": doc_type,
        "protector": protector.name(),
        "wrapped": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &wrapped),
    });
    doc[public_field] = serde_json::Value::String(public);
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .ctx(|| "creating the key file".into())?;
        f.write_all(&crate::canonical::to_vec(&doc)).ctx(|| "writing the key file".into())?;
        f.sync_all().ctx(|| "syncing the key file".into())?;
    }
    let linked = fs::hard_link(&tmp, &path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            crate::fsutil::sync_dir(dir)?;
            Ok((secret, true))
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok((load_wrapped(&path, doc_type, protector)?, false)),
        Err(e) => Err(Error::io("storing the key file", e)),
    }
}

fn load_wrapped(path: &Path, doc_type: &str, protector: &dyn KeyProtector) -> Result<Zeroizing<Vec<u8>>> {
    let raw = fs::read(path).ctx(|| "reading the key file".into())?;
    let doc: serde_json::Value = serde_json::from_slice(&raw).map_err(|_| Error::Key("the key file is not valid JSON".into()))?;
    if doc.get("type").and_then(|t| t.as_str()) != Some(doc_type) {
        return Err(Error::Key("the key file has an unknown type".into()));
    }
    let stored = doc.get("protector").and_then(|p| p.as_str()).unwrap_or_default();
    if stored != protector.name() {
        return Err(Error::Key(format!("the key was wrapped by protector '{stored}' but '{}' was supplied", protector.name())));
    }
    let wrapped = doc
        .get("wrapped")
        .and_then(|w| w.as_str())
        .and_then(|w| base64::Engine::decode(&base64::engine::general_purpose::STANDARD, w).ok())
        .ok_or_else(|| Error::Key("the key file has no wrapped secret".into()))?;
    Ok(Zeroizing::new(protector.unwrap(&wrapped)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn create_then_load_gives_the_same_key_and_0600() {
        let dir = tempfile::tempdir().unwrap();
        let (a, created) = DeviceKey::load_or_create(dir.path(), &FileKeyProtector).unwrap();
        assert!(created);
        let (b, created) = DeviceKey::load_or_create(dir.path(), &FileKeyProtector).unwrap();
        assert!(!created);
        assert_eq!(a.device_id(), b.device_id());
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("device.key")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn pem_round_trip_and_wrong_message_fails() {
        let k = DeviceKey::generate();
        let pem = k.public_pem();
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"));
        let sig = k.sign(b"x");
        verify_with_pem(&pem, b"x", &sig).unwrap();
        assert!(verify_with_pem(&pem, b"y", &sig).is_err());
        assert_eq!(device_id_for(&parse_public_pem(&pem).unwrap()), k.device_id());
    }

    #[test]
    fn fingerprint_is_sha256_of_the_spki_der() {
        let k = DeviceKey::generate().verifying_key();
        let der = k.to_public_key_der().unwrap();
        assert_eq!(der.as_bytes().len(), 44);
        assert_eq!(key_fingerprint(&k), hex::encode(sha2::Sha256::digest(der.as_bytes())));
        assert_ne!(&key_fingerprint(&k)[..32], device_id_for(&k));
    }

    /// SPKI DER prefix of an Ed25519 public key (RFC 8410).
    const SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

    fn pem_of_raw(raw: [u8; 32]) -> String {
        use base64::Engine as _;
        let mut der = SPKI_PREFIX.to_vec();
        der.extend_from_slice(&raw);
        format!("-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n", base64::engine::general_purpose::STANDARD.encode(der))
    }

    #[test]
    fn weak_and_non_canonical_device_keys_are_refused() {
        let raw = |first: u8, fill: u8, last: u8| -> [u8; 32] {
            let mut r = [fill; 32];
            r[0] = first;
            r[31] = last;
            r
        };
        let weak = [
            ("all zeros", [0u8; 32]),
            ("identity", raw(1, 0, 0)),                  // y = 1, x = 0
            ("identity, sign bit", raw(1, 0, 0x80)),     // x = 0 with the sign bit set: a second encoding
            ("identity, y = p + 1", raw(0xee, 0xff, 0x7f)), // y not reduced mod p = 2^255 - 19
        ];
        for (what, raw) in weak {
            let key = parse_public_pem(&pem_of_raw(raw)).expect(what);
            let e = check_device_key(&key).expect_err(what);
            assert!(matches!(e, Error::Key(_)), "{what}: {e}");
            assert!(parse_device_key_pem(&pem_of_raw(raw)).is_err(), "{what}");
        }
        // y + p names the same point as a small y: find a small y that is a point not of small
        // order (only the encoding check can then refuse the y + p form).
        let mut found = 0;
        for y in 2u8..19 {
            let mut canon = [0u8; 32];
            canon[0] = y;
            let Ok(a) = parse_public_pem(&pem_of_raw(canon)) else { continue };
            if a.is_weak() {
                continue;
            }
            check_device_key(&a).unwrap();
            let mut big = [0xffu8; 32];
            big[0] = 0xed + y; // p = 2^255 - 19: low byte 0xed
            big[31] = 0x7f;
            let b = parse_public_pem(&pem_of_raw(big)).expect("y + p decodes");
            assert!(!b.is_weak());
            let e = check_device_key(&b).expect_err("y + p");
            assert!(e.to_string().contains("canonical"), "{e}");
            found += 1;
        }
        assert!(found > 0, "no small y on the curve to test with");
        // An ordinary key passes.
        let k = DeviceKey::generate();
        check_device_key(&k.verifying_key()).unwrap();
        assert_eq!(parse_device_key_pem(&k.public_pem()).unwrap(), k.verifying_key());
    }
}
