//! Pages that change things: legal holds, devices (enrolment QR codes, revocation), packages,
//! and records requests (log, pick items, build a release, a supervisor's approval, download).
//!
//! Every handler checks the session, then the role ([`super::auth::Role::may`]), then the form's
//! CSRF token, and only then acts; each action is a signed custody event naming the staff
//! account ([`super::audit`]).

use super::auth::{session, Action, Staff};
use super::pages::with_staff;
use super::views::{page, see_other, short_time, Nav, Refusal};
use super::Console;
use crate::http::blocking;
use crate::package::{PackageRequest, Profile, Selection};
use crate::store::RecordsRequestRecord;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Form;
use std::sync::Arc;

/// Checks session, role and CSRF token, then runs `f` on the blocking pool.
async fn act<T, F>(console: &Arc<Console>, headers: &HeaderMap, need: Action, csrf: &str, f: F) -> Result<T, Response>
where
    T: Send + 'static,
    F: FnOnce(&Arc<Console>, &Staff) -> crate::Result<T> + Send + 'static,
{
    let staff = session(console, headers).await?;
    staff.require(need).map_err(IntoResponse::into_response)?;
    staff.check_csrf(csrf).map_err(IntoResponse::into_response)?;
    let c = console.clone();
    blocking(move || f(&c, &staff)).await.map_err(|e| Refusal::from(e).into_response())
}

/// A done action's answer: `303` to `to`; a refusal as it is.
fn redirect(done: Result<(), Response>, to: &str) -> Response {
    match done {
        Ok(()) => see_other(to),
        Err(r) => r,
    }
}

fn need_text(v: &str, what: &str) -> crate::Result<String> {
    let t = v.trim();
    if t.is_empty() {
        return Err(crate::Error::BadRequest(format!("{what} is required")));
    }
    if t.chars().count() > 2000 {
        return Err(crate::Error::BadRequest(format!("{what} is longer than 2000 characters")));
    }
    Ok(t.to_string())
}

// ---------------------------------------------------------------------------------------------
// Holds

/// A reason form.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ReasonForm {
    /// The CSRF token (a form without one is refused like a wrong one: 403).
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    reason: String,
}

/// `POST /items/{clip_id}/hold`.
pub(crate) async fn hold(State(console): State<Arc<Console>>, headers: HeaderMap, Path(clip_id): Path<String>, Form(f): Form<ReasonForm>) -> Response {
    let to = format!("/items/{clip_id}");
    let done = act(&console, &headers, Action::Custody, &f.csrf, move |c, staff| {
        let reason = need_text(&f.reason, "a reason for the hold")?;
        crate::retention::hold_by(&crate::records::Records::of_state(&c.app)?, &clip_id, &reason, staff.who())
    })
    .await;
    redirect(done, &to)
}

/// `POST /items/{clip_id}/release`.
pub(crate) async fn release(State(console): State<Arc<Console>>, headers: HeaderMap, Path(clip_id): Path<String>, Form(f): Form<ReasonForm>) -> Response {
    let to = format!("/items/{clip_id}");
    let done = act(&console, &headers, Action::Custody, &f.csrf, move |c, staff| {
        let reason = need_text(&f.reason, "a reason for releasing the hold")?;
        crate::retention::release_by(&crate::records::Records::of_state(&c.app)?, &clip_id, &reason, staff.who()).map(|_| ())
    })
    .await;
    redirect(done, &to)
}

/// The retention policy form.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct PolicyForm {
    /// The CSRF token (a form without one is refused like a wrong one: 403).
    #[serde(default)]
    csrf: String,
    category: String,
    days: String,
}

/// `POST /retention/policy` (supervisors): sets a category's retention period; a longer one
/// extends the write-once locks of the originals.
pub(crate) async fn set_policy(State(console): State<Arc<Console>>, headers: HeaderMap, Form(f): Form<PolicyForm>) -> Response {
    let done = act(&console, &headers, Action::Approve, &f.csrf, move |c, staff| {
        let days: i64 = f.days.trim().parse().map_err(|_| crate::Error::BadRequest("retention days must be a whole number".into()))?;
        crate::retention::set_policy_by(&crate::records::Records::of_state(&c.app)?, f.category.trim(), days, staff.who())
    })
    .await;
    redirect(done, "/retention")
}

// ---------------------------------------------------------------------------------------------
// Devices

/// A device as the list shows it.
pub(crate) struct DeviceRow {
    pub device_id: String,
    pub role: String,
    pub org: String,
    pub enrolled: String,
    pub revoked: String,
    pub items: usize,
}

#[derive(Template)]
#[template(path = "console/devices.html")]
struct DevicesPage {
    nav: Nav,
    devices: Vec<DeviceRow>,
    may_change: bool,
    enrolment: Option<Enrolment>,
}

/// A fresh enrolment token as the page shows it.
pub(crate) struct Enrolment {
    pub payload: String,
    pub qr_svg: String,
    pub role: String,
}

fn device_rows(c: &Console) -> crate::Result<Vec<DeviceRow>> {
    let mut counts: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for i in c.app.records.items()? {
        *counts.entry(i.device_id).or_default() += 1;
    }
    Ok(c
        .app
        .records
        .devices()?
        .into_iter()
        .map(|d| DeviceRow {
            items: counts.get(&d.device_id).copied().unwrap_or(0),
            role: d.role,
            org: d.org.unwrap_or_default(),
            enrolled: short_time(&d.enrolled_at),
            revoked: d.revoked_at.map(|r| short_time(&r)).unwrap_or_default(),
            device_id: d.device_id,
        })
        .collect())
}

/// `GET /devices`.
pub(crate) async fn devices(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    match with_staff(&console, &headers, |c, staff| {
        Ok(DevicesPage { nav: staff.nav(), devices: device_rows(c)?, may_change: staff.role.may(Action::Custody), enrolment: None })
    })
    .await
    {
        Ok((_, p)) => page(&p).unwrap_or_else(IntoResponse::into_response),
        Err(r) => r,
    }
}

/// The enrolment form.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct EnrolForm {
    /// The CSRF token (a form without one is refused like a wrong one: 403).
    #[serde(default)]
    csrf: String,
    role: String,
}

/// The JSON a phone scans to enrol: the device API's URL, the one-time token and the server key
/// id (which the app shows, so the operator can compare it with the office's).
pub fn enrolment_payload(server: &str, token: &str, server_key_id: &str) -> String {
    serde_json::json!({ "server": server, "token": token, "server_key_id": server_key_id }).to_string()
}

/// An SVG QR code of `payload`.
pub fn qr_svg(payload: &str) -> crate::Result<String> {
    let code = qrcode::QrCode::with_error_correction_level(payload.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| crate::Error::Internal(format!("making a QR code: {e}")))?;
    let svg = code.render::<qrcode::render::svg::Color<'_>>().min_dimensions(320, 320).quiet_zone(true).build();
    // Inline in the page: without the XML declaration the renderer puts first.
    Ok(svg.find("<svg").map(|i| svg[i..].to_string()).unwrap_or(svg))
}

/// `POST /devices/enrol`: a one-time enrolment token, shown as a QR code.
pub(crate) async fn enrol(State(console): State<Arc<Console>>, headers: HeaderMap, Form(f): Form<EnrolForm>) -> Response {
    match act(&console, &headers, Action::Custody, &f.csrf, move |c, staff| {
        if f.role != "monitor" && f.role != "police" {
            return Err(crate::Error::BadRequest("a device's role is monitor or police".into()));
        }
        let token = crate::issue_token_in(c.app.records.as_ref(), &f.role)?;
        super::audit::record(&c.app, staff, "token_issued", None, serde_json::json!({ "device_role": f.role }))?;
        let payload = enrolment_payload(&c.device_url, &token, &c.app.key_id);
        Ok(DevicesPage {
            nav: staff.nav(),
            devices: device_rows(c)?,
            may_change: true,
            enrolment: Some(Enrolment { qr_svg: qr_svg(&payload)?, payload, role: f.role }),
        })
    })
    .await
    {
        Ok(p) => page(&p).unwrap_or_else(IntoResponse::into_response),
        Err(r) => r,
    }
}

/// `POST /devices/{device_id}/revoke`.
pub(crate) async fn revoke(State(console): State<Arc<Console>>, headers: HeaderMap, Path(device_id): Path<String>, Form(f): Form<ReasonForm>) -> Response {
    let done = act(&console, &headers, Action::Custody, &f.csrf, move |c, staff| {
        let reason = need_text(&f.reason, "a reason for the revocation")?;
        if !crate::revoke_device_in(c.app.records.as_ref(), Some(&c.app.key), &device_id, &reason, staff.who())? {
            return Err(crate::Error::Conflict("no such device, or it is revoked already".into()));
        }
        Ok(())
    })
    .await;
    redirect(done, "/devices")
}

// ---------------------------------------------------------------------------------------------
// Packages

/// A package as the list shows it (from its `exported` custody event: the referral record).
pub(crate) struct PackageRow {
    pub package_id: String,
    pub profile: String,
    pub recipient: String,
    pub purpose: String,
    pub by: String,
    pub at: String,
    pub items: i64,
    pub downloadable: bool,
}

#[derive(Template)]
#[template(path = "console/packages.html")]
struct PackagesPage {
    nav: Nav,
    packages: Vec<PackageRow>,
    incidents: Vec<(String, String)>,
    may_build: bool,
}

fn package_rows(c: &Console) -> crate::Result<Vec<PackageRow>> {
    let mut rows: Vec<PackageRow> = c
        .app
        .records
        .custody(None)?
        .into_iter()
        .filter(|e| e.event == "exported" && e.clip_id.is_none())
        .map(|e| {
            let v: serde_json::Value = serde_json::from_slice(&e.body).unwrap_or_default();
            let d = &v["detail"];
            let s = |k: &str| d[k].as_str().unwrap_or("").to_string();
            let package_id = s("package_id");
            PackageRow {
                downloadable: s("profile") == "full" && c.packages_dir.join(format!("{package_id}.zip")).is_file(),
                profile: s("profile"),
                recipient: s("recipient"),
                purpose: s("purpose"),
                by: s("exported_by"),
                at: short_time(&e.at),
                items: d["items"].as_i64().unwrap_or(0),
                package_id,
            }
        })
        .collect();
    rows.reverse();
    Ok(rows)
}

/// `GET /packages`.
pub(crate) async fn packages(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    match with_staff(&console, &headers, |c, staff| {
        let items: Vec<_> = c.app.records.items()?.iter().filter_map(crate::incidents::item_of).collect();
        let incidents = crate::incidents::group(&items).into_iter().map(|i| (i.id.clone(), format!("{} — {} items", short_time(&i.started_at), i.clip_ids.len()))).collect();
        Ok(PackagesPage { nav: staff.nav(), packages: package_rows(c)?, incidents, may_build: staff.role.may(Action::Custody) })
    })
    .await
    {
        Ok((_, p)) => page(&p).unwrap_or_else(IntoResponse::into_response),
        Err(r) => r,
    }
}

/// Builds a package into the console's packages folder as `<package_id>.zip`; returns the
/// outcome and the ZIP's SHA-256.
fn build_zip(c: &Console, selection: Selection, profile: Profile, recipient: &str, purpose: &str, by: &str, sensitive_reason: Option<String>) -> crate::Result<(crate::package::PackageOutcome, String)> {
    let work = c.packages_dir.join(format!(".build-{}", uuid::Uuid::now_v7()));
    let req = PackageRequest {
        selection,
        out: work.clone(),
        recipient: recipient.to_string(),
        purpose: purpose.to_string(),
        profile,
        sensitive_reason,
        zip: true,
        exported_by: by.to_string(),
    };
    let out = crate::package::export(c.app.cfg.deployment(), &req);
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&work);
            return Err(e);
        }
    };
    let zip = out.zip.clone().ok_or_else(|| crate::Error::Internal("the export wrote no ZIP".into()))?;
    let dst = c.packages_dir.join(format!("{}.zip", out.package_id));
    std::fs::rename(&zip, &dst).map_err(|e| crate::Error::io("keeping the package ZIP", e))?;
    // The ZIP is the deliverable; the folder beside it is the same files unpacked.
    let _ = std::fs::remove_dir_all(&out.path);
    let sha = fieldcap_evidence::hashing::hash_file(&dst, &mut |_| {}).map_err(|e| crate::Error::io("hashing the package ZIP", e))?.sha256_hex();
    Ok((out, sha))
}

/// The build form.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct BuildForm {
    /// The CSRF token (a form without one is refused like a wrong one: 403).
    #[serde(default)]
    csrf: String,
    incident: String,
    recipient: String,
    purpose: String,
}

/// `POST /packages`: a full package of an incident for a named recipient and purpose.
pub(crate) async fn build_package(State(console): State<Arc<Console>>, headers: HeaderMap, Form(f): Form<BuildForm>) -> Response {
    let done = act(&console, &headers, Action::Custody, &f.csrf, move |c, staff| {
        let recipient = need_text(&f.recipient, "the recipient")?;
        let purpose = need_text(&f.purpose, "the purpose")?;
        build_zip(c, Selection::Incident(f.incident), Profile::Full, &recipient, &purpose, &staff.account.name, None).map(|_| ())
    })
    .await;
    redirect(done, "/packages")
}

/// Serves a package ZIP after checking its SHA-256 (when one was recorded) and recording a
/// `package_downloaded` event for each item in it.
fn serve_zip(c: &Console, staff: &Staff, package_id: &str, want_sha256: Option<&str>) -> crate::Result<(std::fs::File, u64)> {
    if !package_id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') || package_id.is_empty() {
        return Err(crate::Error::NotFound("no such package".into()));
    }
    let path = c.packages_dir.join(format!("{package_id}.zip"));
    // One open file: the bytes hashed are the bytes sent, whatever happens to the path meanwhile.
    let mut f = match std::fs::File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(crate::Error::NotFound("this package's ZIP is not kept here (build it again)".into())),
        Err(e) => return Err(crate::Error::io("opening the package ZIP", e)),
    };
    if let Some(want) = want_sha256 {
        let got = fieldcap_evidence::hashing::hash_reader(&mut f, &mut |_| {}).map_err(|e| crate::Error::io("hashing the package ZIP", e))?.sha256_hex();
        if got != want {
            return Err(crate::Error::Conflict("the package ZIP is not the one approved (it changed on disk): build and approve it again".into()));
        }
        std::io::Seek::rewind(&mut f).map_err(|e| crate::Error::io("reading the package ZIP", e))?;
    }
    let clips: Vec<String> = c
        .app
        .records
        .custody(None)?
        .into_iter()
        .filter(|e| e.event == "exported" && e.clip_id.is_some())
        .filter(|e| serde_json::from_slice::<serde_json::Value>(&e.body).ok().is_some_and(|v| v["detail"]["package_id"] == package_id))
        .filter_map(|e| e.clip_id)
        .collect();
    for clip in &clips {
        super::audit::record(&c.app, staff, "package_downloaded", Some(clip), serde_json::json!({ "package_id": package_id }))?;
    }
    super::audit::record(&c.app, staff, "package_downloaded", None, serde_json::json!({ "package_id": package_id, "items": clips.len() as i64 }))?;
    let len = f.metadata().map_err(|e| crate::Error::io("reading the package ZIP's size", e))?.len();
    Ok((f, len))
}

fn zip_response(name: &str, f: std::fs::File, len: u64) -> Response {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/zip"));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    if let Ok(v) = HeaderValue::from_str(&len.to_string()) {
        h.insert(header::CONTENT_LENGTH, v);
    }
    (h, axum::body::Body::from_stream(super::media::stream_reader(f))).into_response()
}

/// `GET /packages/{package_id}.zip`: a full package (release packages are downloaded from
/// their records request, once approved).
pub(crate) async fn download_package(State(console): State<Arc<Console>>, headers: HeaderMap, Path(file): Path<String>) -> Response {
    let Some(package_id) = file.strip_suffix(".zip").map(String::from) else { return Refusal::not_found("no such package").into_response() };
    let staff = match session(&console, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = staff.require(Action::Custody) {
        return r.into_response();
    }
    let c = console.clone();
    let id = package_id.clone();
    let r = blocking(move || {
        let row = package_rows(&c)?.into_iter().find(|p| p.package_id == id).ok_or_else(|| crate::Error::NotFound("no such package".into()))?;
        if row.profile != "full" {
            return Err(crate::Error::Conflict("a release package is downloaded from its records request, once a supervisor has approved it".into()));
        }
        serve_zip(&c, &staff, &id, None)
    })
    .await;
    match r {
        Ok((f, len)) => zip_response(&format!("{package_id}.zip"), f, len),
        Err(e) => Refusal::from(e).into_response(),
    }
}

// ---------------------------------------------------------------------------------------------
// Records requests

#[derive(Template)]
#[template(path = "console/requests.html")]
struct RequestsPage {
    nav: Nav,
    requests: Vec<RecordsRequestRecord>,
    may_log: bool,
}

/// `GET /requests`.
pub(crate) async fn requests(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    match with_staff(&console, &headers, |c, staff| Ok(RequestsPage { nav: staff.nav(), requests: c.app.records.records_requests()?, may_log: staff.role.may(Action::Requests) })).await {
        Ok((_, p)) => page(&p).unwrap_or_else(IntoResponse::into_response),
        Err(r) => r,
    }
}

/// The new-request form.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct NewRequestForm {
    /// The CSRF token (a form without one is refused like a wrong one: 403).
    #[serde(default)]
    csrf: String,
    requester: String,
    description: String,
}

/// `POST /requests`: logs a records request.
pub(crate) async fn new_request(State(console): State<Arc<Console>>, headers: HeaderMap, Form(f): Form<NewRequestForm>) -> Response {
    match act(&console, &headers, Action::Requests, &f.csrf, move |c, staff| {
        let now = fieldcap_evidence::time::now();
        let r = RecordsRequestRecord {
            request_id: uuid::Uuid::now_v7().to_string(),
            requester: need_text(&f.requester, "the requester")?,
            description: need_text(&f.description, "what is requested")?,
            received_at: now.clone(),
            created_by: staff.account.name.clone(),
            created_at: now,
            clip_ids: Vec::new(),
            state: "open".into(),
            package_id: None,
            package_sha256: None,
            built_by: None,
            sensitive_reason: None,
            approved_by: None,
            approved_at: None,
        };
        if !c.app.records.insert_records_request(&r)? {
            return Err(crate::Error::Conflict("a request with that id exists".into()));
        }
        super::audit::record(&c.app, staff, "records_request_logged", None, serde_json::json!({ "request_id": r.request_id }))?;
        Ok(r.request_id)
    })
    .await
    {
        Ok(id) => see_other(&format!("/requests/{id}")),
        Err(r) => r,
    }
}

/// An item a request may pick.
pub(crate) struct Pickable {
    pub clip_id: String,
    pub kind: String,
    pub started: String,
    pub tags: String,
    pub sensitive: bool,
    pub picked: bool,
}

#[derive(Template)]
#[template(path = "console/request.html")]
struct RequestPage {
    nav: Nav,
    r: RecordsRequestRecord,
    items: Vec<Pickable>,
    held_back: Vec<String>,
    may_change: bool,
    may_approve: bool,
    may_download: bool,
}

fn load_request(c: &Console, id: &str) -> crate::Result<RecordsRequestRecord> {
    c.app.records.records_request(id)?.ok_or_else(|| crate::Error::NotFound("no records request with that id".into()))
}

fn sensitive_items(c: &Console, clip_ids: &[String]) -> crate::Result<Vec<String>> {
    let mut out = Vec::new();
    for id in clip_ids {
        if let Some(item) = c.app.records.item(id)? {
            let tags = fieldcap_evidence::manifest::Manifest::parse(&item.manifest).map(|m| m.tags).unwrap_or_default();
            if crate::package::release::is_sensitive(&tags) {
                out.push(id.clone());
            }
        }
    }
    Ok(out)
}

/// `GET /requests/{id}`.
pub(crate) async fn request_page(State(console): State<Arc<Console>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    match with_staff(&console, &headers, move |c, staff| {
        let r = load_request(c, &id)?;
        let items = c
            .app
            .records
            .items()?
            .into_iter()
            .filter(|i| i.state == "received")
            .map(|i| {
                let tags = fieldcap_evidence::manifest::Manifest::parse(&i.manifest).map(|m| m.tags).unwrap_or_default();
                Pickable {
                    picked: r.clip_ids.contains(&i.clip_id),
                    sensitive: crate::package::release::is_sensitive(&tags),
                    tags: tags.join(", "),
                    started: short_time(&i.started_at),
                    kind: i.kind,
                    clip_id: i.clip_id,
                }
            })
            .collect();
        let held_back = if r.sensitive_reason.is_some() { Vec::new() } else { sensitive_items(c, &r.clip_ids)? };
        Ok(RequestPage {
            nav: staff.nav(),
            may_change: staff.role.may(Action::Requests) && r.state != "approved",
            may_approve: staff.role.may(Action::Approve) && r.state == "built",
            may_download: staff.role.may(Action::Custody) && r.state == "approved",
            held_back,
            items,
            r,
        })
    })
    .await
    {
        Ok((_, p)) => page(&p).unwrap_or_else(IntoResponse::into_response),
        Err(r) => r,
    }
}

/// The item-picking form: `clip=ID&clip=ID…` (serde_urlencoded has no repeated keys, so the
/// body is read as pairs).
pub(crate) async fn pick_items(State(console): State<Arc<Console>>, headers: HeaderMap, Path(id): Path<String>, Form(pairs): Form<Vec<(String, String)>>) -> Response {
    let csrf = pairs.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.clone()).unwrap_or_default();
    let clips: Vec<String> = pairs.into_iter().filter(|(k, _)| k == "clip").map(|(_, v)| v).collect();
    let to = format!("/requests/{id}");
    let done = act(&console, &headers, Action::Requests, &csrf, move |c, _staff| {
        let mut r = load_request(c, &id)?;
        if r.state == "approved" {
            return Err(crate::Error::Conflict("this request's release is approved; log a new request to release more".into()));
        }
        for clip in &clips {
            if c.app.records.item(clip)?.is_none() {
                return Err(crate::Error::BadRequest("a picked item is not on record".into()));
            }
        }
        let before = r.state.clone();
        r.clip_ids = clips;
        // New items make the built package stale: it must be built (and approved) again.
        r.state = "open".into();
        r.package_id = None;
        r.package_sha256 = None;
        r.built_by = None;
        if !c.app.records.update_records_request(&r, &before)? {
            return Err(crate::Error::Conflict("the request changed meanwhile: reload and try again".into()));
        }
        Ok(())
    })
    .await;
    redirect(done, &to)
}

/// `POST /requests/{id}/build`: the release package of the picked items (held-back items left
/// out), waiting for a supervisor's approval.
pub(crate) async fn build_release(State(console): State<Arc<Console>>, headers: HeaderMap, Path(id): Path<String>, Form(f): Form<super::auth::CsrfForm>) -> Response {
    let to = format!("/requests/{id}");
    let done = act(&console, &headers, Action::Requests, &f.csrf, move |c, staff| {
        let mut r = load_request(c, &id)?;
        if r.state == "approved" {
            return Err(crate::Error::Conflict("this request's release is approved already".into()));
        }
        if r.clip_ids.is_empty() {
            return Err(crate::Error::BadRequest("pick the items to release first".into()));
        }
        let before = r.state.clone();
        let (out, sha) = build_zip(c, Selection::Clips(r.clip_ids.clone()), Profile::Release, &r.requester, &format!("records request {}", r.request_id), &staff.account.name, None)?;
        r.state = "built".into();
        r.package_id = Some(out.package_id.clone());
        r.package_sha256 = Some(sha.clone());
        r.built_by = Some(staff.account.name.clone());
        r.sensitive_reason = None;
        if !c.app.records.update_records_request(&r, &before)? {
            return Err(crate::Error::Conflict("the request changed meanwhile: reload and try again".into()));
        }
        super::audit::record(&c.app, staff, "records_request_built", None, serde_json::json!({ "request_id": r.request_id, "package_id": out.package_id, "zip_sha256": sha }))?;
        Ok(())
    })
    .await;
    redirect(done, &to)
}

/// The approval form.
#[derive(Debug, serde::Deserialize)]
pub(crate) struct ApproveForm {
    /// The CSRF token (a form without one is refused like a wrong one: 403).
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    r#override: Option<String>,
    #[serde(default)]
    reason: String,
}

/// `POST /requests/{id}/approve` (supervisors): approves the built release. With `override`
/// and a written reason, the held-back items are released too: the package is built again with
/// them, and the reason goes into custody for each.
pub(crate) async fn approve(State(console): State<Arc<Console>>, headers: HeaderMap, Path(id): Path<String>, Form(f): Form<ApproveForm>) -> Response {
    let to = format!("/requests/{id}");
    let done = act(&console, &headers, Action::Approve, &f.csrf, move |c, staff| {
        let mut r = load_request(c, &id)?;
        if r.state != "built" {
            return Err(crate::Error::Conflict(format!("only a built release can be approved (this request is {})", r.state)));
        }
        // With an override the package is built again with the held-back items; without, the
        // built one is approved as recorded (its SHA-256 binds the download to it).
        let mut overridden = Vec::new();
        if f.r#override.is_some() {
            let reason = need_text(&f.reason, "a written reason for releasing held-back items")?;
            overridden = sensitive_items(c, &r.clip_ids)?;
            let (out, sha) = build_zip(c, Selection::Clips(r.clip_ids.clone()), Profile::Release, &r.requester, &format!("records request {}", r.request_id), &staff.account.name, Some(reason.clone()))?;
            r.package_id = Some(out.package_id);
            r.package_sha256 = Some(sha);
            r.sensitive_reason = Some(reason);
        } else if r.package_id.is_none() || r.package_sha256.is_none() {
            return Err(crate::Error::Conflict("this request has no built package".into()));
        }
        r.state = "approved".into();
        r.approved_by = Some(staff.account.name.clone());
        r.approved_at = Some(fieldcap_evidence::time::now());
        // The approval first (another supervisor may have approved meanwhile), then its events.
        if !c.app.records.update_records_request(&r, "built")? {
            return Err(crate::Error::Conflict("the request changed meanwhile: reload and try again".into()));
        }
        for clip in &overridden {
            super::audit::record(&c.app, staff, "sensitive_override", Some(clip), serde_json::json!({ "request_id": r.request_id, "package_id": r.package_id, "reason": r.sensitive_reason }))?;
        }
        super::audit::record(
            &c.app,
            staff,
            "release_approved",
            None,
            serde_json::json!({ "request_id": r.request_id, "package_id": r.package_id, "zip_sha256": r.package_sha256, "sensitive_included": r.sensitive_reason.is_some() }),
        )?;
        Ok(())
    })
    .await;
    redirect(done, &to)
}

/// `GET /requests/{id}/package.zip`: the approved release (custodians and supervisors), the
/// very ZIP approved (its SHA-256 is checked).
pub(crate) async fn download_release(State(console): State<Arc<Console>>, headers: HeaderMap, Path(id): Path<String>) -> Response {
    let staff = match session(&console, &headers).await {
        Ok(s) => s,
        Err(r) => return r,
    };
    if let Err(r) = staff.require(Action::Custody) {
        return r.into_response();
    }
    let c = console.clone();
    let r = blocking(move || {
        let r = load_request(&c, &id)?;
        if r.state != "approved" {
            return Err(crate::Error::Conflict("this release is not approved by a supervisor yet".into()));
        }
        let (Some(pid), Some(sha)) = (&r.package_id, &r.package_sha256) else { return Err(crate::Error::Conflict("this request has no package".into())) };
        let (f, len) = serve_zip(&c, &staff, pid, Some(sha))?;
        Ok((format!("{pid}.zip"), f, len))
    })
    .await;
    match r {
        Ok((name, f, len)) => zip_response(&name, f, len),
        Err(e) => Refusal::from(e).into_response(),
    }
}
