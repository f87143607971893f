//! The pinned server key: what a recipient brings from outside a package to tell the council
//! server's package from a complete forgery, and how a verification reports it.
//!
//! Everything in a package, its `server.pub.pem` included, can be re-signed by whoever holds a
//! key; so a package only proves that *some* key signed it. The recipient anchors that key by
//! comparing its **fingerprint** with the one the council office publishes (on its web site, in
//! a letter, read out on the phone — never taken from the package itself):
//!
//! ```text
//! fingerprint = lowercase hex SHA-256 of the key's SubjectPublicKeyInfo DER (64 hex digits)
//! openssl pkey -pubin -in server.pub.pem -outform DER | sha256sum
//! ```
//!
//! ([`fieldcap_evidence::identity::key_fingerprint`].) The tools also print a key id, the first
//! 16 bytes of SHA-256 over the raw 32-byte key (32 hex digits,
//! [`fieldcap_evidence::identity::device_id_for`]); a pin may be given as either, or as the key
//! itself (a PEM file).

use ed25519_dalek::VerifyingKey;
use fieldcap_evidence::error::{Error, Result};
use fieldcap_evidence::identity::{device_id_for, key_fingerprint, parse_public_pem};
use serde::Serialize;

/// Where a recipient gets the fingerprint to pin, in one sentence (the reports, `VERIFY.txt` and
/// the docs say the same).
pub const WHERE_TO_GET_IT: &str = "get it out of band: the council office publishes it (its web site, a letter, a phone call); never take it from the package itself";

/// A server key the recipient expects, as they were given it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerKeyPin {
    /// The key itself (e.g. from a PEM file).
    Key(VerifyingKey),
    /// A key fingerprint: 64 lowercase hex digits.
    Fingerprint(String),
    /// A key id: 32 lowercase hex digits.
    KeyId(String),
}

impl From<VerifyingKey> for ServerKeyPin {
    fn from(k: VerifyingKey) -> ServerKeyPin {
        ServerKeyPin::Key(k)
    }
}

impl ServerKeyPin {
    /// Parses a pin given as text: a fingerprint (64 hex digits) or a key id (32 hex digits), in
    /// either case, colons and spaces between digits allowed (as some offices print them); or
    /// the text of a PEM public key. Anything else is refused, naming what was expected.
    pub fn parse(text: &str) -> Result<ServerKeyPin> {
        let t = text.trim();
        if t.starts_with("-----BEGIN") {
            return parse_public_pem(t).map(ServerKeyPin::Key).map_err(|_| Error::InvalidInput("the PEM text is not an Ed25519 public key (SPKI PEM)".into()));
        }
        let hex: String = t.chars().filter(|c| *c != ':' && !c.is_whitespace()).collect::<String>().to_ascii_lowercase();
        let all_hex = !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit());
        match hex.len() {
            64 if all_hex => Ok(ServerKeyPin::Fingerprint(hex)),
            32 if all_hex => Ok(ServerKeyPin::KeyId(hex)),
            _ => Err(Error::InvalidInput("expected a server key fingerprint (64 hex digits), a key id (32 hex digits) or a PEM public key".into())),
        }
    }

    /// True when `key` is the pinned key.
    pub fn matches(&self, key: &VerifyingKey) -> bool {
        match self {
            ServerKeyPin::Key(k) => k == key,
            ServerKeyPin::Fingerprint(f) => *f == key_fingerprint(key),
            ServerKeyPin::KeyId(id) => *id == device_id_for(key),
        }
    }

    /// The key, when the pin is one (a fingerprint or key id cannot check a signature).
    pub fn key(&self) -> Option<&VerifyingKey> {
        match self {
            ServerKeyPin::Key(k) => Some(k),
            _ => None,
        }
    }

    /// The pinned value as given: a fingerprint (of the key, for a key pin) or a key id.
    pub fn value(&self) -> String {
        match self {
            ServerKeyPin::Key(k) => key_fingerprint(k),
            ServerKeyPin::Fingerprint(f) => f.clone(),
            ServerKeyPin::KeyId(id) => id.clone(),
        }
    }

    /// The pin in words: "fingerprint F (key id I)", "fingerprint F" or "key id I".
    pub fn describe(&self) -> String {
        match self {
            ServerKeyPin::Key(k) => describe_key(k),
            ServerKeyPin::Fingerprint(f) => format!("fingerprint {f}"),
            ServerKeyPin::KeyId(id) => format!("key id {id}"),
        }
    }
}

/// A key in words: "fingerprint F (key id I)".
pub fn describe_key(key: &VerifyingKey) -> String {
    format!("fingerprint {} (key id {})", key_fingerprint(key), device_id_for(key))
}

/// What a verification found about the server key (`server_key` in `fieldcap verify --json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerKeyStatus {
    /// The fingerprint of the server key the evidence is signed with (a package's
    /// `server.pub.pem`); `None` for an exported clip, which carries no server key, unless the
    /// pin is the key itself.
    pub fingerprint: Option<String>,
    /// Its key id (a clip: the one its receipt names).
    pub key_id: String,
    /// True only when a pin was given and the key is the pinned one. False means either that
    /// no pin was given (`pin` null: the key is whatever the evidence carries, which anyone
    /// can make) or that the key is another (a failing check says so).
    pub pinned: bool,
    /// The pin given (`--server-key`), as a fingerprint or key id; `None` when unpinned.
    pub pin: Option<String>,
}

impl ServerKeyStatus {
    /// The status of `key` under `pin`.
    pub fn of(key: &VerifyingKey, pin: Option<&ServerKeyPin>) -> ServerKeyStatus {
        ServerKeyStatus { fingerprint: Some(key_fingerprint(key)), key_id: device_id_for(key), pinned: pin.is_some_and(|p| p.matches(key)), pin: pin.map(ServerKeyPin::value) }
    }

    /// The lines a report prints about the server key, after its check lines: the key, then
    /// either that it is pinned, or (on its own line) that it is NOT PINNED and what to do.
    pub fn lines(&self) -> Vec<String> {
        let key = match &self.fingerprint {
            Some(f) => format!("fingerprint {f} (key id {})", self.key_id),
            None => format!("key id {} (named by the receipt; an exported clip carries no server key)", self.key_id),
        };
        let mut out = vec![format!("server key: {key}")];
        match (&self.pin, self.pinned) {
            (Some(p), true) => out.push(format!("server key PINNED: it is the key given with --server-key ({p})")),
            (Some(p), false) if self.fingerprint.is_none() => out.push(format!("server key NOT CONFIRMED: the receipt could not be checked against the pin {p} (see the FAIL line)")),
            (Some(p), false) => out.push(format!("server key IS NOT THE PINNED KEY: --server-key gave {p}")),
            (None, _) if self.fingerprint.is_none() => out.push(
                "SERVER KEY NOT PINNED: the receipt (receipt.json) is not checked, as an exported clip carries no server key; give --server-key with the council office's PEM public key file to check it".to_string(),
            ),
            (None, _) => out.push(format!(
                "SERVER KEY NOT PINNED: the checks hold against the key the package carries, which anyone can make. Compare the fingerprint above with the council office's ({WHERE_TO_GET_IT}), or run again with --server-key FINGERPRINT"
            )),
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use fieldcap_evidence::identity::DeviceKey;

    #[test]
    fn a_pin_parses_as_fingerprint_key_id_or_pem_and_matches_only_its_key() {
        let k = DeviceKey::generate();
        let other = DeviceKey::generate().verifying_key();
        let vk = k.verifying_key();
        let fp = key_fingerprint(&vk);
        let colons: String = fp.to_uppercase().as_bytes().chunks(2).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join(":");
        for text in [fp.clone(), colons, format!("  {fp}\n"), k.device_id().to_string(), k.public_pem()] {
            let pin = ServerKeyPin::parse(&text).unwrap();
            assert!(pin.matches(&vk), "{text}");
            assert!(!pin.matches(&other), "{text}");
        }
        assert_eq!(ServerKeyPin::parse(&fp).unwrap(), ServerKeyPin::Fingerprint(fp.clone()));
        assert_eq!(ServerKeyPin::parse(k.device_id()).unwrap(), ServerKeyPin::KeyId(k.device_id().to_string()));
        assert_eq!(ServerKeyPin::parse(&k.public_pem()).unwrap().value(), fp);
        for bad in ["", "abc", &fp[..63], &format!("{fp}0"), &fp.replace(&fp[..1], "g"), "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"] {
            assert!(ServerKeyPin::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_status_says_not_pinned_on_its_own_line_with_the_fingerprint() {
        let vk = DeviceKey::generate().verifying_key();
        let fp = key_fingerprint(&vk);
        let s = ServerKeyStatus::of(&vk, None);
        assert!(!s.pinned);
        let lines = s.lines();
        assert!(lines[0].contains(&fp), "{lines:?}");
        assert!(lines[1].starts_with("SERVER KEY NOT PINNED"), "{lines:?}");
        let pinned = ServerKeyStatus::of(&vk, Some(&ServerKeyPin::Fingerprint(fp.clone())));
        assert!(pinned.pinned);
        assert!(pinned.lines().iter().all(|l| !l.contains("NOT PINNED")));
        let wrong = ServerKeyStatus::of(&vk, Some(&ServerKeyPin::KeyId("0".repeat(32))));
        assert!(!wrong.pinned);
        assert!(wrong.lines()[1].contains("IS NOT THE PINNED KEY"));
    }
}
