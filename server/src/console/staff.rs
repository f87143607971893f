//! Staff accounts, managed from the server's shell (`fieldcap staff add|disable|list`): these
//! work on the records directly, also while a server runs on them.
//!
//! A new account has no password: [`add_staff`] returns a one-time set-up link (the console's
//! address, which a running console keeps in the records, and a random token whose SHA-256 only
//! is stored) on which the staff member chooses their password. Adding and disabling are signed
//! custody events.

use super::auth::{random_token, token_sha256, Role, SETUP_TTL_SECS};
use crate::error::{Error, Result};
use crate::store::{Deployment, StaffRecord};

/// The setting under which a running console keeps its address.
pub const CONSOLE_URL_SETTING: &str = "console_url";

/// Longest staff name.
pub const MAX_NAME_CHARS: usize = 64;

/// A new account and its set-up link.
#[derive(Debug, Clone)]
pub struct NewStaff {
    /// The account.
    pub account: StaffRecord,
    /// `http(s)://CONSOLE/setup/TOKEN`, or only `/setup/TOKEN` when no console has run yet.
    pub setup_link: String,
}

fn check_name(name: &str) -> Result<()> {
    let n = name.chars().count();
    if n == 0 || n > MAX_NAME_CHARS || name.chars().any(|c| c.is_control()) || name.trim() != name {
        return Err(Error::BadRequest(format!("a staff name has 1 to {MAX_NAME_CHARS} printable characters, without spaces at either end")));
    }
    Ok(())
}

fn append_custody(at: &Deployment, records: &dyn crate::store::RecordStore, event: &str, detail: serde_json::Value) -> Result<()> {
    let (key, _) = at.server_key(records, true)?;
    let id = fieldcap_evidence::identity::device_id_for(&key.verifying_key());
    crate::custody::append(records, &key, &id, event, None, detail).map(|_| ())
}

/// The set-up link of `token`: on `console_url`, else on the address the running console
/// recorded, else only the path.
fn setup_link(records: &dyn crate::store::RecordStore, console_url: Option<&str>, token: &str) -> Result<String> {
    let base = match console_url {
        Some(u) => Some(u.trim_end_matches('/').to_string()),
        None => records.setting(CONSOLE_URL_SETTING)?,
    };
    Ok(format!("{}/setup/{token}", base.unwrap_or_default()))
}

/// Stores a new account with a fresh set-up token (and its custody event); returns the account
/// and the token.
fn insert_account(at: &Deployment, records: &dyn crate::store::RecordStore, name: &str, role: &str) -> Result<(StaffRecord, String)> {
    check_name(name)?;
    let role = Role::parse(role).ok_or_else(|| Error::BadRequest(format!("unknown role {role:?}: clerk, custodian, supervisor or auditor")))?;
    let token = random_token();
    let account = StaffRecord {
        staff_id: uuid::Uuid::now_v7().to_string(),
        name: name.to_string(),
        role: role.as_str().to_string(),
        password_hash: None,
        setup_token_sha256: Some(token_sha256(&token)),
        setup_expires_at_ms: Some(crate::clock::now_ms().saturating_add(SETUP_TTL_SECS * 1000)),
        created_at: fieldcap_evidence::time::now(),
        disabled_at: None,
    };
    if !records.insert_staff(&account)? {
        return Err(Error::Conflict(format!("a staff account named {name:?} exists")));
    }
    append_custody(at, records, "staff_added", serde_json::json!({ "staff": name, "role": role.as_str() }))?;
    Ok((account, token))
}

/// Adds a staff account with `role` (`clerk`, `custodian`, `supervisor` or `auditor`) and
/// returns its one-time set-up link (valid for 72 hours). `console_url` overrides the address
/// the running console recorded.
pub fn add_staff(at: impl Into<Deployment>, name: &str, role: &str, console_url: Option<&str>) -> Result<NewStaff> {
    let at: Deployment = at.into();
    let records = at.open_records()?;
    let (account, token) = insert_account(&at, records.as_ref(), name, role)?;
    Ok(NewStaff { setup_link: setup_link(records.as_ref(), console_url, &token)?, account })
}

/// Adds an account whose password is set at once (the demo's ready login: `fieldcap demo
/// --console`); real accounts get a set-up link ([`add_staff`]) so nobody else ever knows the
/// password.
pub fn add_staff_with_password(at: impl Into<Deployment>, name: &str, role: &str, password: &str) -> Result<StaffRecord> {
    let at: Deployment = at.into();
    if password.chars().count() < super::auth::MIN_PASSWORD_CHARS {
        return Err(Error::BadRequest(format!("a password needs at least {} characters", super::auth::MIN_PASSWORD_CHARS)));
    }
    let records = at.open_records()?;
    let (account, token) = insert_account(&at, records.as_ref(), name, role)?;
    if !records.complete_staff_setup(&account.staff_id, &token_sha256(&token), &super::auth::hash_password(password)?, crate::clock::now_ms())? {
        return Err(Error::Internal("the new account's set-up did not complete".into()));
    }
    append_custody(&at, records.as_ref(), "staff_setup", serde_json::json!({ "staff": name, "role": role }))?;
    records.staff_by_id(&account.staff_id)?.ok_or_else(|| Error::Internal("the new account is not on record".into()))
}

/// Resets an account's password (forgotten, or possibly known to someone else): the password is
/// removed, every session of the account ends, and a new one-time set-up link (72 hours) is
/// returned, on which the staff member chooses a new password. A custody event
/// `staff_reset`. A disabled account is not reset: it stays disabled.
pub fn reset_staff(at: impl Into<Deployment>, name: &str, console_url: Option<&str>) -> Result<NewStaff> {
    let at: Deployment = at.into();
    let records = at.open_records()?;
    let Some(a) = records.staff_by_name(name)? else { return Err(Error::NotFound(format!("no staff account named {name:?}"))) };
    let token = random_token();
    if !records.reset_staff_setup(&a.staff_id, &token_sha256(&token), crate::clock::now_ms().saturating_add(SETUP_TTL_SECS * 1000))? {
        return Err(Error::Conflict(format!("the staff account {name:?} is disabled")));
    }
    append_custody(&at, records.as_ref(), "staff_reset", serde_json::json!({ "staff": name, "role": a.role }))?;
    let account = records.staff_by_id(&a.staff_id)?.ok_or_else(|| Error::Internal("the account is not on record".into()))?;
    Ok(NewStaff { account, setup_link: setup_link(records.as_ref(), console_url, &token)? })
}

/// Disables an account: its sessions end at once and it can no longer log in. Its past actions
/// stay on record. False if no account has that name or it was disabled already.
pub fn disable_staff(at: impl Into<Deployment>, name: &str, reason: &str) -> Result<bool> {
    let at: Deployment = at.into();
    let records = at.open_records()?;
    let Some(a) = records.staff_by_name(name)? else { return Ok(false) };
    if a.disabled_at.is_some() {
        return Ok(false);
    }
    if !records.set_staff_disabled(&a.staff_id, Some(&fieldcap_evidence::time::now()))? {
        return Ok(false);
    }
    append_custody(&at, records.as_ref(), "staff_disabled", serde_json::json!({ "staff": name, "role": a.role, "reason": reason }))?;
    Ok(true)
}

/// Every staff account, by name.
pub fn list_staff(at: impl Into<Deployment>) -> Result<Vec<StaffRecord>> {
    at.into().open_records()?.staff_list()
}
