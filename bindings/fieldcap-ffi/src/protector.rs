//! The foreign key protector: the platform key store wraps the device secret.

use crate::error::FieldcapError;
use fieldcap_core::evidence::Error as CoreError;
use std::sync::Arc;

/// Wraps and unwraps the 32-byte device secret with the platform key store, implemented by the
/// shell: an Android Keystore AES-GCM key, an iOS Keychain item, or (in tests) anything
/// reversible.
///
/// Called once when the core is opened: `wrap_secret` on first start (the result is stored in the
/// data directory as-is), `unwrap_secret` on every later start. `unwrap_secret(wrap_secret(s))`
/// must return `s`. The secret never leaves the core otherwise. Implementations should clear
/// their copy of the secret after wrapping. Called on the thread that opens the core.
#[uniffi::export(foreign)]
pub trait KeyProtector: Send + Sync {
    /// A short, stable name recorded next to the wrapped key (e.g. "android-keystore-aes-gcm").
    /// Opening a store whose key was wrapped under another name fails with `KeyStore`.
    fn name(&self) -> String;
    /// Wraps the secret; the returned bytes are stored as they are.
    fn wrap_secret(&self, secret: Vec<u8>) -> Result<Vec<u8>, FieldcapError>;
    /// Recovers the secret from what `wrap_secret` returned.
    fn unwrap_secret(&self, wrapped: Vec<u8>) -> Result<Vec<u8>, FieldcapError>;
}

/// Adapts the foreign protector to the core's trait.
pub(crate) struct ProtectorAdapter(pub(crate) Arc<dyn KeyProtector>);

fn key_error(e: FieldcapError) -> CoreError {
    match e {
        FieldcapError::KeyStore { detail } => CoreError::Key(format!("platform key store: {detail}")),
        other => CoreError::Key(format!("platform key store: {other}")),
    }
}

impl fieldcap_core::identity::KeyProtector for ProtectorAdapter {
    fn name(&self) -> String {
        self.0.name()
    }
    fn wrap(&self, secret: &[u8]) -> fieldcap_core::evidence::Result<Vec<u8>> {
        self.0.wrap_secret(secret.to_vec()).map_err(key_error)
    }
    fn unwrap(&self, wrapped: &[u8]) -> fieldcap_core::evidence::Result<Vec<u8>> {
        self.0.unwrap_secret(wrapped.to_vec()).map_err(key_error)
    }
}
