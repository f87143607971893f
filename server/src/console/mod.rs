//! The council console: the web application council-office staff and the Port Police evidence
//! custodian work in, served on a listener of its own (`fieldcap serve --console-listen ADDR`)
//! so the device API can face the internet while the console stays on the office network.
//!
//! Server-rendered pages (askama templates in `server/templates/console/`, HTML-escaped by
//! default) with a little JavaScript where a feature needs it (the synchronized multi-angle
//! review). Everything a page shows comes from the same records the device API writes, through
//! [`crate::store::RecordStore`] and [`crate::store::BlobStore`], so the console works on the
//! embedded stores and on a scaled deployment alike.
//!
//! * **Staff and roles** ([`staff`], [`auth`]): `clerk`, `custodian`, `supervisor`, `auditor`;
//!   accounts are made with `fieldcap staff add`, which prints a one-time set-up link; Argon2id
//!   password hashes; sessions in the records (a cookie whose SHA-256 is stored), CSRF tokens
//!   per session on every form, login attempts rate-limited, sessions expire (absolute and idle),
//!   disabling an account ends its sessions.
//! * **Access is custody**: every view of an item's media, download, package built, hold,
//!   release, revocation, enrolment token and login is a signed server custody event naming the
//!   staff account ([`audit`]).
//! * Pages: incidents and the synchronized review ([`pages`]), media with HTTP range requests
//!   ([`media`]), devices and enrolment QR codes, packages, records requests with a supervisor's
//!   approval, retention and holds ([`actions`]), and the report for the Mayor's Office of
//!   Immigrant Affairs ([`report`]).
//! * TLS ([`tls`]) when given a certificate and key; plain HTTP only on a loopback address.
//!
//! ```no_run
//! use fieldcap_server::{console::ConsoleConfig, ServerConfig, ServerHandle};
//! let mut cfg = ServerConfig::new("/srv/fieldcap".into(), "127.0.0.1:8443".parse().unwrap());
//! cfg.console = Some(ConsoleConfig::new("127.0.0.1:8444".parse().unwrap()));
//! let server = ServerHandle::start(cfg)?;
//! println!("console on {}", server.console_url().unwrap_or_default());
//! # Ok::<(), fieldcap_server::Error>(())
//! ```

pub mod actions;
pub mod audit;
pub mod auth;
pub mod media;
pub mod pages;
pub mod report;
pub mod review;
pub mod staff;
pub mod tls;
mod views;

use crate::state::AppState;
use axum::Router;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How the console is served.
#[derive(Debug, Clone)]
pub struct ConsoleConfig {
    /// Address of the console's own listener; port 0 picks a free one.
    pub listen: SocketAddr,
    /// PEM certificate chain and private key: serve over TLS. Without them the console only
    /// listens on a loopback address.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// A session ends this long after login, however active (default 12 hours).
    pub session_ttl: Duration,
    /// A session ends after this long without a request (default 30 minutes).
    pub idle_timeout: Duration,
    /// Where built packages are kept for download (default `<data dir>/console/packages`).
    pub packages_dir: Option<PathBuf>,
    /// The device API's address as phones reach it (enrolment QR codes), e.g.
    /// `https://intake.example.org` behind a TLS terminator; default the server's own
    /// `http://ADDR`.
    pub device_url: Option<String>,
}

impl ConsoleConfig {
    /// Defaults for a listen address.
    pub fn new(listen: SocketAddr) -> ConsoleConfig {
        ConsoleConfig {
            listen,
            tls: None,
            session_ttl: Duration::from_secs(12 * 3600),
            idle_timeout: Duration::from_secs(30 * 60),
            packages_dir: None,
            device_url: None,
        }
    }
}

/// The console's state beside the server's.
pub(crate) struct Console {
    pub app: Arc<AppState>,
    pub cfg: ConsoleConfig,
    /// Whether pages are served over TLS (cookies are then `Secure`).
    pub secure: bool,
    /// Failed logins per account name and per client address.
    pub logins: std::sync::Mutex<auth::LoginLimiter>,
    /// Items whose media a session has viewed (so a video's many range requests record one
    /// `media_viewed` event per session and item).
    pub viewed: std::sync::Mutex<std::collections::HashSet<(String, String)>>,
    /// Where built packages are kept.
    pub packages_dir: PathBuf,
    /// The device API's URL, as enrolment QR codes give it to phones.
    pub device_url: String,
}

impl Console {
    pub(crate) fn new(app: Arc<AppState>, cfg: ConsoleConfig, secure: bool, device_url: String) -> crate::Result<Console> {
        let packages_dir = match (&cfg.packages_dir, &app.cfg.data_dir) {
            (Some(d), _) => d.clone(),
            (None, Some(d)) => d.join("console").join("packages"),
            (None, None) => {
                return Err(crate::Error::BadRequest(
                    "the console keeps built packages in a folder: give a data directory (--data DIR) or a packages folder".into(),
                ))
            }
        };
        std::fs::create_dir_all(&packages_dir).map_err(|e| crate::Error::io("creating the console's packages folder", e))?;
        Ok(Console {
            app,
            secure,
            logins: std::sync::Mutex::new(auth::LoginLimiter::default()),
            viewed: std::sync::Mutex::new(Default::default()),
            packages_dir,
            device_url: cfg.device_url.clone().unwrap_or(device_url),
            cfg,
        })
    }
}

/// The console's routes.
pub(crate) fn router(console: Arc<Console>) -> Router {
    use axum::routing::{get, post};
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(auth::login_page).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/setup/{token}", get(auth::setup_page).post(auth::setup))
        .route("/static/{file}", get(views::static_file))
        .route("/incidents", get(pages::incidents))
        .route("/incidents/{id}", get(review::incident))
        .route("/items/{clip_id}", get(pages::item))
        .route("/items/{clip_id}/hold", post(actions::hold))
        .route("/items/{clip_id}/release", post(actions::release))
        .route("/media/{clip_id}", get(media::media))
        .route("/devices", get(actions::devices))
        .route("/devices/enrol", post(actions::enrol))
        .route("/devices/{device_id}/revoke", post(actions::revoke))
        .route("/packages", get(actions::packages).post(actions::build_package))
        .route("/packages/{file}", get(actions::download_package))
        .route("/requests", get(actions::requests).post(actions::new_request))
        .route("/requests/{id}", get(actions::request_page))
        .route("/requests/{id}/items", post(actions::pick_items))
        .route("/requests/{id}/build", post(actions::build_release))
        .route("/requests/{id}/approve", post(actions::approve))
        .route("/requests/{id}/package.zip", get(actions::download_release))
        .route("/retention", get(pages::retention))
        .route("/retention/policy", post(actions::set_policy))
        .route("/reports/moia.csv", get(report::moia_csv))
        .route("/reports/moia.json", get(report::moia_json))
        .fallback(views::not_found)
        .layer(axum::middleware::from_fn(views::security_headers))
        .with_state(console)
}
