//! The scaled deployment for tests: one fresh PostgreSQL database ([`crate::postgres`]) and one
//! fresh Object Lock bucket on a throwaway S3 server ([`crate::s3`]), shared by every replica
//! ([`crate::server::TestServer::serve_scaled`]).
//!
//! `FIELDCAP_TEST_SCALED=1` makes [`crate::server::TestServer::start`] and
//! [`crate::server::TestServer::serve`] run every server test on these stores instead of the
//! embedded ones (the test command runs the end-to-end, kill and package tests both ways).

use crate::postgres::TestPostgres;
use crate::s3::TestS3;
use fieldcap_server::store::{Deployment, StoreUrl};
use std::path::Path;

/// A database and a bucket for one test's replicas.
pub struct ScaledStores {
    /// The record database.
    pub pg: TestPostgres,
    /// The object storage.
    pub s3: TestS3,
    /// Where servers reach the object storage, when not directly (a fault proxy in front of
    /// it): `http://HOST:PORT`.
    pub s3_endpoint: Option<String>,
}

impl std::fmt::Debug for ScaledStores {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScaledStores").finish_non_exhaustive()
    }
}

/// True when `FIELDCAP_TEST_SCALED` asks every test server to run on the scaled stores.
pub fn scaled_by_default() -> bool {
    std::env::var_os("FIELDCAP_TEST_SCALED").is_some_and(|v| v != "0")
}

impl ScaledStores {
    /// A fresh database and bucket; `None` (with a skip line) when either is not available and
    /// not required (`FIELDCAP_REQUIRE_POSTGRES`, `FIELDCAP_REQUIRE_S3`).
    pub fn start() -> Option<ScaledStores> {
        let pg = TestPostgres::new()?;
        let s3 = TestS3::start()?;
        Some(ScaledStores { pg, s3, s3_endpoint: None })
    }

    /// As [`ScaledStores::start`] with a database that may stop or restart the PostgreSQL
    /// cluster ([`TestPostgres::exclusive`]).
    pub fn start_exclusive() -> Option<ScaledStores> {
        let pg = TestPostgres::exclusive()?;
        let s3 = TestS3::start()?;
        Some(ScaledStores { pg, s3, s3_endpoint: None })
    }

    /// `--records`.
    pub fn records_url(&self) -> String {
        self.pg.url().to_string()
    }

    /// `--blobs`.
    pub fn blobs_url(&self) -> String {
        match &self.s3_endpoint {
            Some(e) => format!("s3://{}?endpoint={e}", self.s3.bucket()),
            None => self.s3.url(),
        }
    }

    /// `--records URL --blobs URL`.
    pub fn args(&self) -> Vec<String> {
        vec!["--records".into(), self.records_url(), "--blobs".into(), self.blobs_url()]
    }

    /// The environment a `fieldcap` process needs to reach the bucket (test credentials).
    pub fn env(&self) -> Vec<(String, String)> {
        let a = TestS3::access();
        vec![
            ("AWS_ACCESS_KEY_ID".into(), a.access_key_id),
            ("AWS_SECRET_ACCESS_KEY".into(), a.secret_access_key),
            ("AWS_REGION".into(), a.region),
        ]
    }

    /// The deployment of a replica whose key is in `data`.
    pub fn deployment(&self, data: &Path) -> Deployment {
        Deployment { data_dir: Some(data.to_path_buf()), records: Some(StoreUrl::new(self.records_url())), blobs: Some(StoreUrl::new(self.blobs_url())) }
    }
}
