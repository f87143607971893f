//! Reading pages: the incident list, an item (its verification, retention and custody
//! timeline), and the retention overview. The synchronized review of one incident is in
//! [`super::review`].

use super::auth::{session, Staff};
use super::views::{coarse_area, page, short_time, Nav, Page, Refusal};
use super::Console;
use crate::http::blocking;
use crate::state::AppState;
use crate::store::ItemRecord;
use askama::Template;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// Runs a page's blocking work with the session checked first.
pub(crate) async fn with_staff<T, F>(console: &Arc<Console>, headers: &HeaderMap, f: F) -> Result<(Staff, T), Response>
where
    T: Send + 'static,
    F: FnOnce(&Arc<Console>, &Staff) -> crate::Result<T> + Send + 'static,
{
    let staff = session(console, headers).await?;
    let c = console.clone();
    let s = staff.clone();
    match blocking(move || f(&c, &s)).await {
        Ok(v) => Ok((staff, v)),
        Err(e) => Err(Refusal::from(e).into_response()),
    }
}

/// `GET /`: to the incidents.
pub(crate) async fn home() -> Response {
    super::views::see_other("/incidents")
}

/// One row of the incident list.
pub(crate) struct IncidentRow {
    pub id: String,
    pub started: String,
    pub ended: String,
    pub area: String,
    pub devices: usize,
    pub items: usize,
    pub tags: String,
}

#[derive(Template)]
#[template(path = "console/incidents.html")]
struct IncidentsPage {
    nav: Nav,
    incidents: Vec<IncidentRow>,
}

/// `GET /incidents`.
pub(crate) async fn incidents(State(console): State<Arc<Console>>, headers: HeaderMap) -> Response {
    let r = with_staff(&console, &headers, |c, _| {
        let items: Vec<_> = c.app.records.items()?.iter().filter_map(crate::incidents::item_of).collect();
        let mut list = crate::incidents::group(&items);
        list.sort_by(|a, b| b.started_at.cmp(&a.started_at));
        Ok(list
            .into_iter()
            .map(|i| IncidentRow {
                started: short_time(&i.started_at),
                ended: short_time(&i.ended_at),
                area: coarse_area(i.centre),
                devices: i.device_ids.len(),
                items: i.clip_ids.len(),
                tags: i.tags.join(", "),
                id: i.id,
            })
            .collect())
    })
    .await;
    match r {
        Ok((staff, incidents)) => page(&IncidentsPage { nav: staff.nav(), incidents }).unwrap_or_else(|e| e.into_response()),
        Err(resp) => resp,
    }
}

/// One verification check of an item: what was checked and its outcome.
#[derive(Debug, Clone)]
pub(crate) struct Check {
    pub what: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// Verifies an item on record as a recipient would: the device's signature over the exact
/// manifest bytes, the server's receipt (signature, names this item and its media, inclusion in
/// its checkpoint), the leaf's inclusion in the log as it stands now, and the server custody
/// chain of the item.
pub(crate) fn verify_item(app: &AppState, item: &ItemRecord) -> Vec<Check> {
    let mut out = Vec::new();
    let device = app.records.device(&item.device_id).ok().flatten();
    let sig = match &device {
        Some(d) => fieldcap_evidence::identity::verify_with_pem(&d.public_key_pem, &item.manifest, &item.manifest_sig).map(|_| "device signature over the manifest holds".to_string()),
        None => Err(fieldcap_evidence::Error::Integrity("the device is not on record".into())),
    };
    out.push(Check { what: "signature", ok: sig.is_ok(), detail: sig.unwrap_or_else(|e| e.to_string()) });
    let manifest = fieldcap_evidence::manifest::Manifest::parse(&item.manifest);
    let receipt = match (&item.receipt, &item.receipt_sig, &manifest) {
        (Some(b), Some(s), Ok(m)) => {
            let v = fieldcap_evidence::receipt::ReceiptVerifier::new(app.key.verifying_key(), &app.origin);
            v.verify(b, s, &fieldcap_evidence::receipt::ExpectedItem::of_manifest(m, &item.manifest_sha256)).map(|r| (format!("signed receipt, leaf {} of {}", r.log.index, r.log.tree_size), r))
        }
        (_, _, Err(e)) => Err(fieldcap_evidence::Error::Integrity(format!("the manifest does not parse: {e}"))),
        _ => Err(fieldcap_evidence::Error::Integrity("no receipt yet: the media has not all arrived".into())),
    };
    // The leaf the receipt names (rebuilt from its own fields), for the check against the log
    // as it stands now.
    let leaf = receipt.as_ref().ok().map(|(_, r)| (r.log.index, fieldcap_evidence::tlog::leaf_hash(&r.leaf_bytes())));
    out.push(match receipt {
        Ok((d, _)) => Check { what: "receipt", ok: true, detail: d },
        Err(e) => Check { what: "receipt", ok: false, detail: e.to_string() },
    });
    let log = leaf.ok_or_else(|| "no receipt, so no log leaf".to_string()).and_then(|(index, leaf_hash)| {
        let tree = app.log().map_err(|e| e.to_string())?;
        let size = tree.size();
        let proof = tree.inclusion(index, size).map_err(|e| e.to_string())?;
        let root = tree.root(size).map_err(|e| e.to_string())?;
        fieldcap_evidence::tlog::verify_inclusion(index, size, &leaf_hash, &proof, &root).map_err(|e| e.to_string())?;
        Ok(format!("leaf {index} is in the log of {size} leaves"))
    });
    out.push(match log {
        Ok(d) => Check { what: "log inclusion", ok: true, detail: d },
        Err(d) => Check { what: "log inclusion", ok: false, detail: d },
    });
    let custody = app.records.custody(Some(&item.clip_id)).map_err(|e| e.to_string()).and_then(|events| {
        if events.is_empty() {
            return Err("no custody events".to_string());
        }
        for e in &events {
            fieldcap_evidence::identity::verify(&app.key.verifying_key(), &e.body, &e.sig).map_err(|_| format!("custody event {} has a bad signature", e.seq))?;
        }
        Ok(format!("{} signed server custody events", events.len()))
    });
    out.push(match custody {
        Ok(d) => Check { what: "custody", ok: true, detail: d },
        Err(d) => Check { what: "custody", ok: false, detail: d },
    });
    out
}

/// The one-line summary of [`verify_item`]: `verified`, or what fails.
pub(crate) fn verdict(checks: &[Check]) -> String {
    let failed: Vec<String> = checks.iter().filter(|c| !c.ok).map(|c| format!("{}: {}", c.what, c.detail)).collect();
    if failed.is_empty() {
        "verified".into()
    } else {
        failed.join("; ")
    }
}

/// A custody event as the timeline shows it.
pub(crate) struct CustodyRow {
    pub seq: u64,
    pub at: String,
    pub event: String,
    pub staff: String,
    pub detail: String,
}

pub(crate) fn custody_rows(app: &AppState, clip_id: &str) -> crate::Result<Vec<CustodyRow>> {
    Ok(app
        .records
        .custody(Some(clip_id))?
        .into_iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_slice(&e.body).unwrap_or_default();
            let detail = v.get("detail").cloned().unwrap_or_default();
            // A package's `exported` event names whoever built it in `exported_by` (the staff
            // account for packages built in the console).
            let staff = detail.get("staff").or_else(|| detail.get("exported_by")).and_then(|s| s.as_str()).unwrap_or("").to_string();
            CustodyRow { seq: e.seq, at: short_time(&e.at), event: e.event, staff, detail: detail.to_string() }
        })
        .collect())
}

#[derive(Template)]
#[template(path = "console/item.html")]
struct ItemPage {
    nav: Nav,
    clip_id: String,
    device_id: String,
    seq: u64,
    kind: String,
    started: String,
    ended: String,
    state: String,
    tags: String,
    text: String,
    has_media: bool,
    is_video: bool,
    checks: Vec<Check>,
    retention: Option<crate::retention::ItemRetention>,
    custody: Vec<CustodyRow>,
    may_hold: bool,
}

/// `GET /items/{clip_id}`.
pub(crate) async fn item(State(console): State<Arc<Console>>, headers: HeaderMap, Path(clip_id): Path<String>) -> Response {
    let r = with_staff(&console, &headers, move |c, staff| {
        let Some(item) = c.app.records.item(&clip_id)? else { return Ok(None) };
        let m = fieldcap_evidence::manifest::Manifest::parse(&item.manifest)?;
        let records = crate::records::Records::of_state(&c.app)?;
        let retention = crate::retention::status_of(&records, chrono::Utc::now())?.into_iter().find(|r| r.clip_id == item.clip_id);
        Ok(Some(ItemPage {
            nav: staff.nav(),
            checks: verify_item(&c.app, &item),
            custody: custody_rows(&c.app, &item.clip_id)?,
            clip_id: item.clip_id.clone(),
            device_id: item.device_id.clone(),
            seq: item.seq,
            kind: item.kind.clone(),
            started: short_time(&item.started_at),
            ended: short_time(&item.ended_at),
            state: item.state.clone(),
            tags: m.tags.join(", "),
            text: m.observation.as_ref().map(|o| o.text.clone()).unwrap_or_default(),
            has_media: item.blob_sha256.is_some(),
            is_video: item.kind == "video",
            retention,
            may_hold: staff.role.may(super::auth::Action::Custody),
        }))
    })
    .await;
    match r {
        Ok((_, Some(p))) => page(&p).unwrap_or_else(|e| e.into_response()),
        Ok((_, None)) => Refusal::not_found("no item with that id").into_response(),
        Err(resp) => resp,
    }
}

#[derive(Template)]
#[template(path = "console/retention.html")]
struct RetentionPage {
    nav: Nav,
    rows: Vec<crate::retention::ItemRetention>,
    policy: Vec<(String, i64)>,
    may_set: bool,
}

/// `GET /retention`: every item's retention state and the policy.
pub(crate) async fn retention(State(console): State<Arc<Console>>, headers: HeaderMap) -> Page {
    let r = with_staff(&console, &headers, |c, staff| {
        let records = crate::records::Records::of_state(&c.app)?;
        Ok(RetentionPage {
            nav: staff.nav(),
            rows: crate::retention::status_of(&records, chrono::Utc::now())?,
            policy: c.app.records.retention_policy()?.into_iter().collect(),
            may_set: staff.role.may(super::auth::Action::Approve),
        })
    })
    .await;
    match r {
        Ok((_, p)) => page(&p),
        Err(resp) => Ok(resp),
    }
}
