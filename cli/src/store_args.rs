//! Where a server command finds the server: `--data DIR` (the server key, and the embedded
//! records and originals) and, for a scaled deployment, `--records postgres://…` and
//! `--blobs s3://BUCKET?endpoint=URL` in place of the embedded stores.
//!
//! Both addresses are read from `FIELDCAP_RECORDS` / `FIELDCAP_BLOBS` when not given, which
//! keeps a database password off the command line (where `ps` shows it); the PostgreSQL
//! password can also come from `PGPASSWORD`, and the object storage's region and credentials
//! come only from the usual `AWS_*` variables or the AWS config files. None of them is ever
//! printed.

use clap::Args;
use fieldcap_server::store::{Deployment, StoreUrl};
use std::path::PathBuf;

/// The options every server command shares.
#[derive(Args, Debug, Clone)]
pub struct StoreArgs {
    /// Server data directory: the server key (every replica of a deployment needs the same
    /// one), and the records and originals unless --records / --blobs put them elsewhere.
    /// Optional when both are given: the server key is then kept in the record database.
    #[arg(long, required_unless_present_all = ["records", "blobs"])]
    pub data: Option<PathBuf>,
    /// Records in PostgreSQL instead of DATA/records.sqlite: postgres://USER@HOST:PORT/DB
    /// (password from PGPASSWORD or in the URL).
    #[arg(long, env = "FIELDCAP_RECORDS", hide_env_values = true, value_name = "URL")]
    pub records: Option<String>,
    /// Originals and partial uploads in S3-compatible object storage instead of DATA/blobs:
    /// s3://BUCKET?endpoint=URL (region and credentials from AWS_* or the AWS config files).
    #[arg(long, env = "FIELDCAP_BLOBS", hide_env_values = true, value_name = "URL")]
    pub blobs: Option<String>,
}

impl StoreArgs {
    /// The deployment these options name.
    pub fn deployment(&self) -> Deployment {
        Deployment { data_dir: self.data.clone(), records: self.records.clone().map(StoreUrl::new), blobs: self.blobs.clone().map(StoreUrl::new) }
    }

    /// The data directory for messages (`-` when there is none).
    pub fn data_shown(&self) -> String {
        self.data.as_ref().map_or_else(|| "-".to_string(), |d| d.display().to_string())
    }

    /// Fails unless a server has run on this deployment.
    pub fn require_records(&self) -> anyhow::Result<()> {
        let d = self.deployment();
        if !d.has_records()? {
            if d.records.is_some() {
                anyhow::bail!("the record database has no server records (run `fieldcap serve` on it first)");
            }
            anyhow::bail!("no server records in {} (run `fieldcap serve --data` there first)", self.data_shown());
        }
        Ok(())
    }
}
