//! Enrolment: the device introduces its key to a council server once, with a one-time token,
//! and pins the server's key for every later pass.
//!
//! What is kept (`server` table): the base URL, the server key (PEM and id), the log origin
//! named by its checkpoints, and the signed device certificate exactly as it came. Re-enrolling
//! with the same server replaces the certificate; a server with a different key is refused, so
//! a device can never be switched silently to another server.

use super::clock::get_time;
use super::pass::{is_transient_status, problem_title};
use crate::store::db::sync as rows;
use super::transport::{join_url, url_allowed, HttpRequest, Transport};
use crate::error::{Error, Result};
use crate::protocol::{self, DeviceCertificate, SignedDoc};
use crate::store::Store;
use serde::Serialize;
use serde_json::json;
use std::time::Duration;

/// Information about the enrolment kept on the device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Enrollment {
    /// Server base URL.
    pub server_url: String,
    /// Pinned server key id.
    pub server_key_id: String,
    /// The certificate the server signed.
    pub certificate: DeviceCertificate,
}

impl Store {
    /// Enrols this device with a council server using a one-time token: pins the server key
    /// (from `GET /v1/time`), sends the device public key, verifies the signed certificate the
    /// server returns (server key, device id, public key) and stores both. Re-enrolling with the
    /// same server replaces the certificate; a server with a different key is refused.
    pub fn enroll(&self, t: &dyn Transport, server_url: &str, token: &str) -> Result<DeviceCertificate> {
        let base = server_url.trim_end_matches('/').to_string();
        url_allowed(&base).map_err(|e| Error::InvalidInput(format!("server URL: {e}")))?;
        let (tr, offset, rtt) = get_time(self, t, &base, Duration::from_secs(30))?;
        let key = crate::identity::parse_public_pem(&tr.server_key_pem)?;
        let key_id = crate::identity::device_id_for(&key);
        if key_id != tr.server_key_id {
            return Err(Error::Integrity("the server's key id does not match its key".into()));
        }
        if let Some(pinned) = rows::server_get(&self.conn(), "server_key_id")? {
            if pinned != key_id.as_bytes() {
                return Err(Error::Integrity(
                    "this device is already enrolled with a server that has a different key; refusing to switch".into(),
                ));
            }
        }
        self.record_clock(offset, rtt)?;
        let body = serde_json::to_vec(&protocol::EnrollRequest {
            token: token.trim().to_string(),
            public_key_pem: self.public_pem(),
            org: self.profile().org.clone(),
        })?;
        let resp = t
            .send(HttpRequest {
                method: "POST".into(),
                url: join_url(&base, "/v1/enroll"),
                headers: vec![("Content-Type".into(), "application/json".into())],
                body,
                timeout: Duration::from_secs(30),
            })
            .map_err(|e| Error::Network(format!("POST /v1/enroll: {e}")))?;
        if is_transient_status(resp.status) {
            return Err(Error::Network(format!("enrolment: the server is unavailable ({})", problem_title(&resp))));
        }
        if resp.status != 200 && resp.status != 201 {
            return Err(Error::Refused(format!("enrolment: {}", problem_title(&resp))));
        }
        let doc: SignedDoc = serde_json::from_slice(&resp.body).map_err(|_| Error::Network("the enrolment answer does not parse".into()))?;
        let (cert, _, _): (DeviceCertificate, _, _) = doc.open(&key)?;
        if cert.doc_type != protocol::types::DEVICE_CERT
            || cert.device_id != self.device_id()
            || crate::identity::parse_public_pem(&cert.public_key_pem)?.as_bytes() != self.device_key().verifying_key().as_bytes()
            || cert.server_key_id != key_id
        {
            return Err(Error::Integrity("the device certificate does not name this device and server".into()));
        }
        {
            let conn = self.conn();
            rows::server_put(&conn, "server_url", base.as_bytes())?;
            rows::server_put(&conn, "server_key_pem", tr.server_key_pem.as_bytes())?;
            rows::server_put(&conn, "server_key_id", key_id.as_bytes())?;
            rows::server_put(&conn, "log_origin", tr.log_origin.as_bytes())?;
            rows::server_put(&conn, "device_cert", &serde_json::to_vec(&doc)?)?;
        }
        self.append_custody("enrolled", None, json!({"server_key_id": key_id, "role": cert.role, "enrolled_at": cert.enrolled_at}))?;
        // The council's escrow key, pinned at enrolment so that items lock from the first one
        // filmed. Not fatal: every sync pass fetches it again (and raises the alarm on a bad one).
        let escrow = t.send(HttpRequest {
            method: "GET".into(),
            url: join_url(&base, protocol::ESCROW_KEY_PATH),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: Duration::from_secs(30),
        });
        match escrow {
            Ok(r) if r.status == 200 => match super::sealed::escrow_recipient_from(&r.body, &key, &key_id) {
                Ok(recipient) => {
                    self.pin_escrow_recipient(&recipient)?;
                }
                Err(e) => tracing::warn!("the escrow key answered at enrolment does not check ({e}); the next sync tries again"),
            },
            Ok(r) if r.status == 404 => {}
            Ok(r) => tracing::info!(status = r.status, "no escrow key at enrolment; the next sync tries again"),
            Err(_) => tracing::info!("no escrow key at enrolment (network); the next sync tries again"),
        }
        Ok(cert)
    }

    /// The stored enrolment, if any.
    pub fn enrollment(&self) -> Result<Option<Enrollment>> {
        let (url, pem, doc) = {
            let conn = self.conn();
            (rows::server_get(&conn, "server_url")?, rows::server_get(&conn, "server_key_pem")?, rows::server_get(&conn, "device_cert")?)
        };
        let (Some(url), Some(pem), Some(doc)) = (url, pem, doc) else {
            return Ok(None);
        };
        let key = crate::identity::parse_public_pem(&String::from_utf8_lossy(&pem))?;
        let doc: SignedDoc = serde_json::from_slice(&doc)?;
        let (certificate, _, _): (DeviceCertificate, _, _) = doc.open(&key)?;
        Ok(Some(Enrollment { server_url: String::from_utf8_lossy(&url).into_owned(), server_key_id: crate::identity::device_id_for(&key), certificate }))
    }

    /// The device certificate as (exact bytes, signature), if enrolled.
    pub fn device_certificate(&self) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        let stored = rows::server_get(&self.conn(), "device_cert")?;
        match stored {
            Some(b) => Ok(Some(serde_json::from_slice::<SignedDoc>(&b)?.decode()?)),
            None => Ok(None),
        }
    }

    /// The newest transparency-log checkpoint (signed-note text) this device has verified.
    pub fn newest_checkpoint(&self) -> Result<Option<String>> {
        let stored = rows::server_get(&self.conn(), "checkpoint")?;
        Ok(stored.map(|b| String::from_utf8_lossy(&b).into_owned()))
    }
}
