//! Encryption at rest and in transit for sealed items: per-item keys, the device vault and the
//! council's escrow key, all as [age](https://age-encryption.org/v1) X25519 (`age` crate).
//!
//! Nothing here is hand-rolled cryptography: every ciphertext is an ordinary age file, so the
//! council can open one with the stock `age` tool as well as with Fieldcap (FORMATS §6b):
//!
//! ```text
//! age -d -i escrow.key  key.escrow.age > item.key     # the item's own identity
//! age -d -i item.key    media.mp4.age  > media.mp4    # the original bytes
//! ```
//!
//! * An **item key** is a fresh X25519 identity made when an item is sealed. The item's media and
//!   its sensitive metadata are encrypted to the item key's recipient alone.
//! * The item key itself is stored only *wrapped*: age-encrypted to the device **vault**
//!   recipient (so the monitor can review the item on the phone) and to the council's **escrow**
//!   recipient (so the council can always open it). Locking an item forgets its vault wrap; the
//!   escrow wrap, and so the evidence, stays.
//!
//! ```
//! use fieldcap_evidence::escrow::{ItemKey, VaultIdentity};
//! let council = VaultIdentity::generate();
//! let item = ItemKey::generate();
//! let sealed = item.encrypt(b"witness note").unwrap();
//! let wrap = item.wrap_to(&council.recipient()).unwrap();
//! // Later, at the council office:
//! let opened = ItemKey::unwrap_with(&wrap, &[&council]).unwrap();
//! assert_eq!(opened.decrypt(&sealed, 1 << 20).unwrap(), b"witness note");
//! ```

use crate::error::{Error, Result};
use age::secrecy::ExposeSecret;
use std::io::{Read, Write};
use std::str::FromStr;

/// The largest wrapped item key accepted (an age file holding one identity line is ~250 bytes).
pub const MAX_KEY_WRAP_BYTES: usize = 4096;

/// An X25519 recipient (`age1…`): a vault, escrow or item public key.
#[derive(Clone, PartialEq, Eq)]
pub struct Recipient(age::x25519::Recipient);

impl std::fmt::Debug for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Recipient({})", self.0)
    }
}

impl std::fmt::Display for Recipient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Recipient {
    /// Parses `age1…`; the error says only that it is not a recipient (never echoes it).
    pub fn parse(s: &str) -> Result<Recipient> {
        age::x25519::Recipient::from_str(s.trim())
            .map(Recipient)
            .map_err(|_| Error::InvalidInput("not an age X25519 recipient (age1…)".into()))
    }
}

/// An X25519 identity (secret key) used to open wraps: the device vault, or the council's escrow
/// key. Its text form is the age identity file line `AGE-SECRET-KEY-1…`.
#[derive(Clone)]
pub struct VaultIdentity(age::x25519::Identity);

impl std::fmt::Debug for VaultIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(f, "VaultIdentity({})", self.0.to_public())
    }
}

impl VaultIdentity {
    /// A fresh identity from the operating system's random source.
    pub fn generate() -> VaultIdentity {
        VaultIdentity(age::x25519::Identity::generate())
    }

    /// Parses `AGE-SECRET-KEY-1…` (surrounding whitespace and `#` comment lines allowed, as in an
    /// age identity file).
    pub fn parse(text: &str) -> Result<VaultIdentity> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with('#'))
            .ok_or_else(|| Error::Key("the identity is empty".into()))?;
        age::x25519::Identity::from_str(line).map(VaultIdentity).map_err(|_| Error::Key("not an age X25519 identity".into()))
    }

    /// The identity as an age identity file (one line plus newline). Secret: handle with care.
    pub fn to_secret_text(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(format!("{}\n", self.0.to_string().expose_secret()))
    }

    /// Its public recipient.
    pub fn recipient(&self) -> Recipient {
        Recipient(self.0.to_public())
    }

    /// Opens a small age file encrypted to this identity (at most `max` bytes of plaintext).
    pub fn decrypt(&self, ciphertext: &[u8], max: usize) -> Result<Vec<u8>> {
        decrypt_small(&[&self.0 as &dyn age::Identity], ciphertext, max)
    }
}

/// One item's own key: media and sensitive metadata are encrypted to it alone.
pub struct ItemKey(age::x25519::Identity);

impl std::fmt::Debug for ItemKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ItemKey({})", self.0.to_public())
    }
}

impl ItemKey {
    /// A fresh item key.
    pub fn generate() -> ItemKey {
        ItemKey(age::x25519::Identity::generate())
    }

    /// The item key's recipient (`age1…`), safe to store in the clear.
    pub fn recipient(&self) -> Recipient {
        Recipient(self.0.to_public())
    }

    /// The item key wrapped to one recipient: an age file whose plaintext is an age identity file
    /// (`AGE-SECRET-KEY-1…\n`), so `age -d -i escrow.key wrap > item.key` opens it.
    pub fn wrap_to(&self, to: &Recipient) -> Result<Vec<u8>> {
        let text = zeroize::Zeroizing::new(format!("{}\n", self.0.to_string().expose_secret()));
        encrypt_small(&[&to.0], text.as_bytes())
    }

    /// Opens a wrap with whichever of `identities` it was made for.
    pub fn unwrap_with(wrap: &[u8], identities: &[&VaultIdentity]) -> Result<ItemKey> {
        if wrap.len() > MAX_KEY_WRAP_BYTES {
            return Err(Error::Integrity("the wrapped item key is too large".into()));
        }
        let ids: Vec<&dyn age::Identity> = identities.iter().map(|i| &i.0 as &dyn age::Identity).collect();
        let text = zeroize::Zeroizing::new(decrypt_small(&ids, wrap, MAX_KEY_WRAP_BYTES)?);
        let text = std::str::from_utf8(&text).map_err(|_| Error::Integrity("the wrapped item key is not text".into()))?;
        let id = VaultIdentity::parse(text).map_err(|_| Error::Integrity("the wrapped item key is not an age identity".into()))?;
        Ok(ItemKey(id.0))
    }

    /// Encrypts a small value (metadata, a manifest) to this item key.
    pub fn encrypt(&self, plaintext: &[u8]) -> Result<Vec<u8>> {
        encrypt_small(&[&self.0.to_public()], plaintext)
    }

    /// Decrypts a small value encrypted to this item key (at most `max` bytes).
    pub fn decrypt(&self, ciphertext: &[u8], max: usize) -> Result<Vec<u8>> {
        decrypt_small(&[&self.0 as &dyn age::Identity], ciphertext, max)
    }

    /// A writer that encrypts everything written to it to this item key, into `out`; call
    /// [`MediaWriter::finish`] to write the last chunk (without it the file does not decrypt).
    pub fn media_writer<W: Write>(&self, out: W) -> Result<MediaWriter<W>> {
        let r = self.0.to_public();
        let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient))
            .map_err(|e| Error::Key(format!("cannot encrypt to the item key: {e}")))?;
        let w = enc.wrap_output(out).map_err(|e| Error::io("starting the encrypted file", e))?;
        Ok(MediaWriter(w))
    }

    /// A reader of the plaintext of an item's encrypted media; seekable when `input` is (age's
    /// STREAM has 64 KiB chunks, so a seek decrypts at most one chunk to land).
    pub fn media_reader<R: Read>(&self, input: R) -> Result<age::stream::StreamReader<R>> {
        let d = age::Decryptor::new(input).map_err(decrypt_error)?;
        d.decrypt(std::iter::once(&self.0 as &dyn age::Identity)).map_err(decrypt_error)
    }
}

/// See [`ItemKey::media_writer`].
pub struct MediaWriter<W: Write>(age::stream::StreamWriter<W>);

impl<W: Write> Write for MediaWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl<W: Write> MediaWriter<W> {
    /// Writes the final chunk and returns the inner writer.
    pub fn finish(self) -> Result<W> {
        self.0.finish().map_err(|e| Error::io("finishing the encrypted file", e))
    }
}

fn decrypt_error(e: age::DecryptError) -> Error {
    match e {
        age::DecryptError::NoMatchingKeys => Error::Integrity("the data is not encrypted to this key".into()),
        age::DecryptError::Io(e) => Error::io("reading encrypted data", e),
        other => Error::Integrity(format!("the encrypted data does not decrypt ({other})")),
    }
}

fn encrypt_small(recipients: &[&age::x25519::Recipient], plaintext: &[u8]) -> Result<Vec<u8>> {
    let enc = age::Encryptor::with_recipients(recipients.iter().map(|r| *r as &dyn age::Recipient))
        .map_err(|e| Error::Key(format!("cannot encrypt: {e}")))?;
    let mut out = Vec::with_capacity(plaintext.len() + 256);
    let mut w = enc.wrap_output(&mut out).map_err(|e| Error::io("encrypting", e))?;
    w.write_all(plaintext).map_err(|e| Error::io("encrypting", e))?;
    w.finish().map_err(|e| Error::io("encrypting", e))?;
    Ok(out)
}

fn decrypt_small(identities: &[&dyn age::Identity], ciphertext: &[u8], max: usize) -> Result<Vec<u8>> {
    let d = age::Decryptor::new(ciphertext).map_err(decrypt_error)?;
    let mut r = d.decrypt(identities.iter().copied()).map_err(decrypt_error)?;
    let mut out = Vec::new();
    (&mut r).take(max as u64 + 1).read_to_end(&mut out).map_err(|e| Error::Integrity(format!("the encrypted data does not decrypt ({e})")))?;
    if out.len() > max {
        return Err(Error::Integrity(format!("the decrypted data is larger than {max} bytes")));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};

    #[test]
    fn a_wrap_opens_only_with_its_recipient() {
        let vault = VaultIdentity::generate();
        let escrow = VaultIdentity::generate();
        let k = ItemKey::generate();
        let wrap = k.wrap_to(&escrow.recipient()).unwrap();
        assert!(ItemKey::unwrap_with(&wrap, &[&vault]).is_err());
        let back = ItemKey::unwrap_with(&wrap, &[&vault, &escrow]).unwrap();
        assert_eq!(back.recipient(), k.recipient());
        // The wrap is an age file whose plaintext is an identity file, as the stock tool expects.
        let text = escrow.decrypt(&wrap, 4096).unwrap();
        assert!(text.starts_with(b"AGE-SECRET-KEY-1"));
    }

    #[test]
    fn media_round_trips_and_seeks_and_refuses_a_flipped_byte() {
        let k = ItemKey::generate();
        let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = k.media_writer(Vec::new()).unwrap();
        w.write_all(&plain).unwrap();
        let ct = w.finish().unwrap();
        // age's header carries a random-length grease stanza: the length is not predictable from
        // the plaintext alone (the device sends the size of the file it wrote).
        assert!(ct.len() > plain.len() + 16 * 4);
        let mut r = k.media_reader(std::io::Cursor::new(&ct)).unwrap();
        r.seek(SeekFrom::Start(130_000)).unwrap();
        let mut tail = Vec::new();
        r.read_to_end(&mut tail).unwrap();
        assert_eq!(tail, &plain[130_000..]);
        // A flipped byte anywhere in the payload is refused, never returned as plaintext.
        let mut bad = ct.clone();
        let n = bad.len() - 100;
        bad[n] ^= 1;
        let mut r = k.media_reader(std::io::Cursor::new(&bad)).unwrap();
        let mut out = Vec::new();
        assert!(r.read_to_end(&mut out).is_err());
    }

    #[test]
    fn small_values_are_bounded() {
        let k = ItemKey::generate();
        let ct = k.encrypt(&[7u8; 100]).unwrap();
        assert_eq!(k.decrypt(&ct, 100).unwrap(), vec![7u8; 100]);
        assert!(k.decrypt(&ct, 99).is_err());
        assert!(ItemKey::generate().decrypt(&ct, 100).is_err());
        assert!(Recipient::parse("age1nope").is_err());
        assert!(VaultIdentity::parse("# only a comment\n").is_err());
    }
}
