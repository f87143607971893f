//! Staff sign-in: roles and what each may do, Argon2id passwords, sessions, CSRF tokens, the
//! login rate limit, and the set-up page of a new account.
//!
//! A session is a random 32-byte cookie value (`fieldcap_console`, `HttpOnly`,
//! `SameSite=Strict`, `Secure` over TLS); only its SHA-256 is stored, with the staff account, a
//! CSRF token of its own, its absolute end and when it was last used. Every request re-reads the
//! session and the account, so a disabled account or an ended session is refused at once on
//! every replica. Every form carries the session's CSRF token (the login form a token bound to
//! a pre-login cookie) and a POST without it is refused.

use super::views::{html, see_other, Nav, Page, Refusal};
use super::Console;
use crate::http::blocking;
use crate::store::{SessionRecord, StaffRecord};
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Form;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// The session cookie.
pub const SESSION_COOKIE: &str = "fieldcap_console";
/// The pre-login cookie the login form's CSRF token is bound to.
pub const LOGIN_COOKIE: &str = "fieldcap_login";
/// Shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// Failed logins allowed per account name, and per client address, in [`LOGIN_WINDOW_SECS`].
pub const MAX_FAILED_LOGINS: usize = 5;
/// The login rate limit's window.
pub const LOGIN_WINDOW_SECS: i64 = 15 * 60;
/// How long a set-up link works.
pub const SETUP_TTL_SECS: i64 = 72 * 3600;

/// A staff role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Intake and review: incidents, items, media; logs records requests, picks items, builds
    /// release packages.
    Clerk,
    /// A clerk's work, and packages, holds, devices (enrolment, revocation), downloads.
    Custodian,
    /// A custodian's work, and approving releases (with overrides), retention.
    Supervisor,
    /// Reads everything, changes nothing.
    Auditor,
}

/// What a request wants to do, for [`Role::may`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Read pages, view media.
    Read,
    /// Log records requests, pick items, build release packages.
    Requests,
    /// Holds, full packages, devices, downloads of originals and packages.
    Custody,
    /// Approve a release (and override held-back items).
    Approve,
}

impl Role {
    /// Parses a role name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "clerk" => Some(Role::Clerk),
            "custodian" => Some(Role::Custodian),
            "supervisor" => Some(Role::Supervisor),
            "auditor" => Some(Role::Auditor),
            _ => None,
        }
    }
    /// The role's name.
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Clerk => "clerk",
            Role::Custodian => "custodian",
            Role::Supervisor => "supervisor",
            Role::Auditor => "auditor",
        }
    }
    /// Whether the role may do `a`.
    pub fn may(&self, a: Action) -> bool {
        match (self, a) {
            (_, Action::Read) => true,
            (Role::Auditor, _) => false,
            (_, Action::Requests) => true,
            (Role::Custodian | Role::Supervisor, Action::Custody) => true,
            (Role::Supervisor, Action::Approve) => true,
            _ => false,
        }
    }
}

/// Hashes a password with Argon2id (the argon2 crate's defaults, a random salt), as a PHC string.
pub fn hash_password(password: &str) -> crate::Result<String> {
    use argon2::password_hash::{PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| crate::Error::Internal(format!("hashing a password: {e}")))
}

/// Whether `password` matches a PHC hash (false for a malformed hash).
pub fn password_matches(password: &str, phc: &str) -> bool {
    use argon2::password_hash::{PasswordHash, PasswordVerifier};
    PasswordHash::new(phc).is_ok_and(|h| argon2::Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// 32 random bytes from the OS, base64url (session cookies, CSRF and set-up tokens).
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut b);
    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, b)
}

/// SHA-256 hex of a token (what the records keep).
pub(crate) fn token_sha256(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Constant-time comparison of two tokens.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

fn set_cookie(console: &Console, name: &str, value: &str, max_age: Option<i64>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict");
    if let Some(a) = max_age {
        c.push_str(&format!("; Max-Age={a}"));
    }
    if console.secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or(HeaderValue::from_static("invalid=; Max-Age=0"))
}

/// A logged-in staff member, as a handler sees them.
#[derive(Debug, Clone)]
pub struct Staff {
    /// The account.
    pub account: StaffRecord,
    /// Its role.
    pub role: Role,
    /// SHA-256 of the session cookie (names the session in custody events, never the cookie).
    pub session: String,
    /// The session's CSRF token.
    pub csrf: String,
}

impl Staff {
    /// The page frame for this staff member.
    pub(crate) fn nav(&self) -> Nav {
        Nav { name: self.account.name.clone(), role: self.role.as_str().into(), csrf: self.csrf.clone() }
    }
    /// Refuses unless the role may do `a`.
    pub(crate) fn require(&self, a: Action) -> Result<(), Refusal> {
        if self.role.may(a) {
            Ok(())
        } else {
            let what = match a {
                Action::Read => "read this",
                Action::Requests => "change records requests",
                Action::Custody => "do this (custodians and supervisors only)",
                Action::Approve => "approve a release (supervisors only)",
            };
            Err(Refusal::forbidden(format!("the {} role may not {what}", self.role.as_str())))
        }
    }
    /// Refuses a form whose CSRF token is not this session's.
    pub(crate) fn check_csrf(&self, token: &str) -> Result<(), Refusal> {
        if same_token(token, &self.csrf) {
            Ok(())
        } else {
            Err(Refusal::forbidden("this form is stale or was not sent from this console session: reload the page and try again"))
        }
    }
    /// The custody detail naming this staff member.
    pub(crate) fn who(&self) -> serde_json::Value {
        serde_json::json!({ "staff": self.account.name, "role": self.role.as_str(), "session": &self.session[..16] })
    }
}

/// The session of a request: the staff member, or a refusal (for a GET, a redirect to the
/// login page).
pub(crate) async fn session(console: &Arc<Console>, headers: &HeaderMap) -> Result<Staff, Response> {
    let not_in = || {
        let mut r = see_other("/login");
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    };
    let Some(value) = cookie(headers, SESSION_COOKIE) else { return Err(not_in()) };
    let c = console.clone();
    let found = blocking(move || {
        let hash = token_sha256(&value);
        let now = crate::clock::now_ms();
        let Some(s) = c.app.records.session(&hash)? else { return Ok(None) };
        let idle = c.cfg.idle_timeout.as_millis() as i64;
        if now >= s.expires_at_ms || now >= s.last_seen_ms.saturating_add(idle) {
            c.app.records.delete_session(&hash)?;
            return Ok(None);
        }
        let Some(account) = c.app.records.staff_by_id(&s.staff_id)? else { return Ok(None) };
        if account.disabled_at.is_some() {
            return Ok(None);
        }
        // Written at most every few seconds: the idle clock does not need every request.
        if now - s.last_seen_ms > 5_000 {
            c.app.records.touch_session(&hash, now)?;
        }
        Ok(Some((s, account)))
    })
    .await;
    match found {
        Ok(Some((s, account))) => match Role::parse(&account.role) {
            Some(role) => Ok(Staff { role, session: s.session_sha256, csrf: s.csrf_token, account }),
            None => Err(Refusal::forbidden("this account has no valid role").into_response()),
        },
        Ok(None) => Err(not_in()),
        Err(e) => Err(Refusal::from(e).into_response()),
    }
}

/// Failed logins per key (`name:…`, `addr:…`), times in Unix seconds.
#[derive(Debug, Default)]
pub(crate) struct LoginLimiter {
    failures: HashMap<String, Vec<i64>>,
}

impl LoginLimiter {
    /// Seconds until another attempt is allowed for any of `keys`, if one is over the limit.
    fn wait(&mut self, keys: &[String], now: i64) -> Option<u64> {
        let mut wait = None;
        for k in keys {
            if let Some(v) = self.failures.get_mut(k) {
                v.retain(|t| now - t < LOGIN_WINDOW_SECS);
                if v.len() >= MAX_FAILED_LOGINS {
                    let w = (v[0] + LOGIN_WINDOW_SECS - now).max(1) as u64;
                    wait = Some(wait.map_or(w, |x: u64| x.max(w)));
                }
            }
        }
        wait
    }
    fn fail(&mut self, keys: &[String], now: i64) {
        if self.failures.len() > 100_000 {
            self.failures.retain(|_, v| v.iter().any(|t| now - t < LOGIN_WINDOW_SECS));
        }
        for k in keys {
            self.failures.entry(k.clone()).or_default().push(now);
        }
    }
    fn clear(&mut self, key: &str) {
        self.failures.remove(key);
    }
}

#[derive(Template)]
#[template(path = "console/login.html")]
struct LoginPage {
    nav: Nav,
    csrf: String,
    message: String,
}

/// `GET /login`.
pub(crate) async fn login_page(State(console): State<Arc<Console>>) -> Response {
    let token = random_token();
    let mut r = html(&LoginPage { nav: Nav::default(), csrf: token.clone(), message: String::new() }).into_response();
    r.headers_mut().append(header::SET_COOKIE, set_cookie(&console, LOGIN_COOKIE, &token, Some(3600)));
    r
}

/// The login form.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct LoginForm {
    name: String,
    password: String,
    csrf: String,
}

fn client_addr(headers: &HeaderMap, peer: Option<std::net::SocketAddr>) -> String {
    let _ = headers; // No proxy headers are trusted: the console is reached directly.
    peer.map(|p| p.ip().to_string()).unwrap_or_else(|| "unknown".into())
}

/// `POST /login`.
pub(crate) async fn login(
    State(console): State<Arc<Console>>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<LoginForm>,
) -> Page {
    match cookie(&headers, LOGIN_COOKIE) {
        Some(c) if same_token(&c, &f.csrf) => {}
        _ => return Err(Refusal::forbidden("the login form is stale or was not sent from this console: reload the login page")),
    }
    let now = crate::clock::now_ms() / 1000;
    let keys = vec![format!("name:{}", f.name), format!("addr:{}", client_addr(&headers, Some(peer)))];
    let wait = console.logins.lock().map_err(|_| Refusal::from(crate::Error::Internal("login table poisoned".into())))?.wait(&keys, now);
    if let Some(w) = wait {
        let mut r = Refusal::new(StatusCode::TOO_MANY_REQUESTS, "Too many attempts", format!("too many failed logins: wait {} minutes and try again", w.div_ceil(60)));
        r.retry_after = Some(w);
        return Err(r);
    }
    let c = console.clone();
    let (name, password) = (f.name.clone(), f.password.clone());
    let found = blocking(move || {
        let account = c.app.records.staff_by_name(&name)?;
        let ok = account.as_ref().is_some_and(|a| a.disabled_at.is_none() && a.password_hash.as_deref().is_some_and(|h| password_matches(&password, h)));
        if !ok {
            // The same work whether or not the name exists, so timing does not tell.
            if account.is_none() {
                let _ = password_matches(&password, &DUMMY_HASH);
            }
            return Ok(None);
        }
        let Some(account) = account else { return Ok(None) };
        let token = random_token();
        let now = crate::clock::now_ms();
        let s = SessionRecord {
            session_sha256: token_sha256(&token),
            staff_id: account.staff_id.clone(),
            csrf_token: random_token(),
            created_at_ms: now,
            expires_at_ms: now.saturating_add(c.cfg.session_ttl.as_millis() as i64),
            last_seen_ms: now,
        };
        c.app.records.delete_sessions_before(now)?;
        c.app.records.insert_session(&s)?;
        c.app.custody("staff_login", None, serde_json::json!({ "staff": account.name, "role": account.role, "session": &s.session_sha256[..16] }))?;
        Ok(Some(token))
    })
    .await?;
    let Some(token) = found else {
        if let Ok(mut l) = console.logins.lock() {
            l.fail(&keys, now);
        }
        let mut r = Refusal::new(StatusCode::UNAUTHORIZED, "Login refused", "wrong name or password, or the account is disabled");
        r.retry_after = None;
        return Err(r);
    };
    if let Ok(mut l) = console.logins.lock() {
        l.clear(&keys[0]);
    }
    let mut r = see_other("/incidents");
    r.headers_mut().append(header::SET_COOKIE, set_cookie(&console, SESSION_COOKIE, &token, None));
    r.headers_mut().append(header::SET_COOKIE, set_cookie(&console, LOGIN_COOKIE, "", Some(0)));
    Ok(r)
}

/// An Argon2id hash of a random password, checked against when a login names no account.
static DUMMY_HASH: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| hash_password(&random_token()).unwrap_or_default());

/// A form that carries only the CSRF token.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct CsrfForm {
    pub csrf: String,
}

/// `POST /logout`: ends the session.
pub(crate) async fn logout(State(console): State<Arc<Console>>, headers: HeaderMap, Form(f): Form<CsrfForm>) -> Page {
    let staff = match session(&console, &headers).await {
        Ok(s) => s,
        Err(r) => return Ok(r),
    };
    staff.check_csrf(&f.csrf)?;
    let c = console.clone();
    let s = staff.clone();
    blocking(move || {
        c.app.records.delete_session(&s.session)?;
        c.app.custody("staff_logout", None, s.who())
    })
    .await?;
    let mut r = see_other("/login");
    r.headers_mut().append(header::SET_COOKIE, set_cookie(&console, SESSION_COOKIE, "", Some(0)));
    Ok(r)
}

#[derive(Template)]
#[template(path = "console/setup.html")]
struct SetupPage {
    nav: Nav,
    name: String,
    role: String,
    token: String,
}

async fn setup_account(console: &Arc<Console>, token: &str) -> Result<StaffRecord, Refusal> {
    let c = console.clone();
    let hash = token_sha256(token);
    let found = blocking(move || c.app.records.staff_by_setup_token(&hash)).await?;
    match found {
        Some(a) if a.disabled_at.is_none() && a.setup_expires_at_ms.is_some_and(|e| e > crate::clock::now_ms()) => Ok(a),
        _ => Err(Refusal::not_found("this set-up link is unknown, used or expired: ask for a new one (fieldcap staff add)")),
    }
}

/// `GET /setup/{token}`: the new account's password form.
pub(crate) async fn setup_page(State(console): State<Arc<Console>>, Path(token): Path<String>) -> Page {
    let a = setup_account(&console, &token).await?;
    let mut r = html(&SetupPage { nav: Nav::default(), name: a.name, role: a.role, token }).into_response();
    r.headers_mut().insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Ok(r)
}

/// The set-up form.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct SetupForm {
    password: String,
    password2: String,
}

/// `POST /setup/{token}`: sets the password; the link then no longer works. (The link itself
/// is the secret, so this form needs no CSRF token: a forged POST would have to know it.)
pub(crate) async fn setup(State(console): State<Arc<Console>>, Path(token): Path<String>, Form(f): Form<SetupForm>) -> Page {
    let a = setup_account(&console, &token).await?;
    if f.password != f.password2 {
        return Err(Refusal::bad("the two passwords differ"));
    }
    if f.password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(Refusal::bad(format!("a password needs at least {MIN_PASSWORD_CHARS} characters")));
    }
    let c = console.clone();
    blocking(move || {
        let phc = hash_password(&f.password)?;
        if !c.app.records.complete_staff_setup(&a.staff_id, &token_sha256(&token), &phc, crate::clock::now_ms())? {
            return Err(crate::Error::NotFound("this set-up link was used or expired meanwhile".into()));
        }
        c.app.custody("staff_setup", None, serde_json::json!({ "staff": a.name, "role": a.role }))
    })
    .await?;
    Ok(see_other("/login"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn roles_allow_what_the_issue_names() {
        use Action::*;
        let table = [
            (Role::Clerk, [true, true, false, false]),
            (Role::Custodian, [true, true, true, false]),
            (Role::Supervisor, [true, true, true, true]),
            (Role::Auditor, [true, false, false, false]),
        ];
        for (role, want) in table {
            let got = [role.may(Read), role.may(Requests), role.may(Custody), role.may(Approve)];
            assert_eq!(got, want, "{role:?}");
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("admin"), None);
    }

    #[test]
    fn argon2id_round_trip() {
        let h = hash_password("correct horse battery").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(password_matches("correct horse battery", &h));
        assert!(!password_matches("correct horse batterx", &h));
        assert!(!password_matches("x", "not a hash"));
        // The dummy hash is a real one (so a login for an unknown name costs the same).
        assert!(argon2::password_hash::PasswordHash::new(&DUMMY_HASH).is_ok());
    }

    #[test]
    fn login_limiter_blocks_after_the_limit_and_forgets_after_the_window() {
        let mut l = LoginLimiter::default();
        let keys = vec!["name:a".to_string(), "addr:x".to_string()];
        for i in 0..MAX_FAILED_LOGINS as i64 {
            assert_eq!(l.wait(&keys, 1000 + i), None);
            l.fail(&keys, 1000 + i);
        }
        let w = l.wait(&keys, 1010).unwrap();
        assert!(w > 0 && w <= LOGIN_WINDOW_SECS as u64);
        // Another name from the same address is blocked too (address key), another address for
        // a fresh name is not.
        assert!(l.wait(&["name:b".into(), "addr:x".into()], 1010).is_some());
        assert_eq!(l.wait(&["name:b".into(), "addr:y".into()], 1010), None);
        assert_eq!(l.wait(&keys, 1000 + LOGIN_WINDOW_SECS + MAX_FAILED_LOGINS as i64), None);
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=1; fieldcap_console=abc; b=2"));
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, LOGIN_COOKIE), None);
        assert!(same_token("abc", "abc") && !same_token("abc", "abd") && !same_token("abc", "ab"));
    }
}
