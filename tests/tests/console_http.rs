//! The staff console over real HTTP on 127.0.0.1, as a browser drives it (forms, cookies,
//! redirects), against a server that real devices synced to: accounts and their set-up links,
//! logins and their rate limit, what each role may do, CSRF, session expiry and disabling,
//! range requests, enrolment from the console's QR payload, a records request from log to
//! approved download (the ZIP verifies, the minors' item is absent), the MOIA report, and every
//! access in the custody record with the staff account. (The same in a real browser:
//! `console_browser.rs`.)
#![allow(clippy::unwrap_used)]

use fieldcap_core::seal::CaptureRequest;
use fieldcap_testkit::device::{fast_opts, sync_until_receipted, Device, HARBOR};
use fieldcap_testkit::server::TestServer;
use fieldcap_testkit::track::walk;
use reqwest::blocking::{Client, Response};
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use reqwest::StatusCode;
use std::collections::BTreeMap;
use std::time::Duration;

const PASSWORD: &str = "a long enough password";

/// A browser-like client of the console: keeps cookies, does not follow redirects.
struct Browser {
    base: String,
    http: Client,
    cookies: BTreeMap<String, String>,
}

impl Browser {
    fn new(base: &str) -> Browser {
        let http = Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(60)).build().unwrap();
        Browser { base: base.trim_end_matches('/').to_string(), http, cookies: BTreeMap::new() }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    fn keep_cookies(&mut self, r: &Response) {
        for v in r.headers().get_all(SET_COOKIE) {
            let first = v.to_str().unwrap().split(';').next().unwrap();
            let (k, val) = first.split_once('=').unwrap();
            if val.is_empty() || v.to_str().unwrap().contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), val.to_string());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    fn get(&mut self, path: &str) -> Response {
        let r = self.http.get(self.url(path)).header(COOKIE, self.cookie_header()).send().unwrap();
        self.keep_cookies(&r);
        r
    }

    fn get_range(&mut self, path: &str, range: &str) -> Response {
        let r = self.http.get(self.url(path)).header(COOKIE, self.cookie_header()).header("Range", range).send().unwrap();
        self.keep_cookies(&r);
        r
    }

    fn text(&mut self, path: &str) -> String {
        let r = self.get(path);
        assert_eq!(r.status(), StatusCode::OK, "GET {path}");
        r.text().unwrap()
    }

    fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Response {
        let r = self.http.post(self.url(path)).header(COOKIE, self.cookie_header()).form(form).send().unwrap();
        self.keep_cookies(&r);
        r
    }

    /// POSTs a form with the CSRF token of the page at `page`.
    fn submit(&mut self, page: &str, action: &str, form: &[(&str, &str)]) -> Response {
        let html = self.text(page);
        let token = csrf_of(&html);
        let mut f: Vec<(&str, &str)> = form.to_vec();
        f.push(("csrf", &token));
        self.post(action, &f)
    }

    fn login(&mut self, name: &str, password: &str) -> Response {
        let html = self.text("/login");
        let token = csrf_of(&html);
        self.post("/login", &[("name", name), ("password", password), ("csrf", &token)])
    }
}

fn csrf_of(html: &str) -> String {
    let at = html.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_string()
}

fn location(r: &Response) -> String {
    r.headers().get(LOCATION).map(|v| v.to_str().unwrap().to_string()).unwrap_or_default()
}

fn refusal(r: Response) -> (StatusCode, String) {
    let s = r.status();
    let body = r.text().unwrap();
    assert!(body.contains("id=\"refusal\""), "a refusal page, got {s}: {body}");
    (s, body)
}

/// Adds an account and sets its password through its set-up link.
fn staff(srv: &TestServer, console: &str, name: &str, role: &str) -> Browser {
    let n = fieldcap_server::console::staff::add_staff(srv.deployment(), name, role, None).unwrap();
    assert!(n.setup_link.starts_with(console), "the link names the running console: {}", n.setup_link);
    let mut b = Browser::new(console);
    let page = b.text(&n.setup_link);
    assert!(page.contains(name));
    // A short password is refused; the link still works after.
    let (s, _) = refusal(b.post(&n.setup_link, &[("password", "short"), ("password2", "short")]));
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let r = b.post(&n.setup_link, &[("password", PASSWORD), ("password2", PASSWORD)]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    // The link works once.
    let (s, _) = refusal(b.get(&n.setup_link));
    assert_eq!(s, StatusCode::NOT_FOUND);
    let r = b.login(name, PASSWORD);
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "login of {name}");
    assert_eq!(location(&r), "/incidents");
    b
}

/// Custody events of an item as (event, staff) pairs.
fn custody_of(srv: &TestServer, clip_id: &str) -> Vec<(String, String)> {
    let records = fieldcap_server::records::Records::open(srv.deployment()).unwrap();
    records
        .custody(Some(clip_id))
        .unwrap()
        .into_iter()
        .map(|e| {
            let v: serde_json::Value = serde_json::from_slice(&e.body).unwrap();
            (e.event, v["detail"]["staff"].as_str().unwrap_or("").to_string())
        })
        .collect()
}

fn video_with(dev: &Device, seed: u64, tags: &[&str]) -> String {
    let start = chrono::Utc::now() - chrono::Duration::minutes(5);
    let (lat, lon) = HARBOR;
    let req = CaptureRequest {
        started_at: Some(start),
        ended_at: Some(start + chrono::Duration::seconds(60)),
        track: walk(start, chrono::Duration::seconds(10), &[(lat, lon), (lat + 0.0001, lon)]),
        tags: tags.iter().map(|t| t.to_string()).collect(),
        ..Default::default()
    };
    dev.seal_bytes(&format!("v{seed}.mp4"), &fieldcap_testkit::bytes::seeded(40_000, seed), req).clip_id
}

#[test]
fn console_roles_csrf_sessions_media_requests_and_custody() {
    let srv = TestServer::start_with_console(Duration::from_secs(3600));
    let console = srv.console_url().unwrap();

    // Two devices at one place and time; one clip shows a child.
    let a = Device::with_role("monitor");
    let b = Device::with_role("police");
    a.enroll(&srv);
    b.enroll(&srv);
    let plain = video_with(&a, 1, &[]);
    let minor = video_with(&b, 2, &["minor_present"]);
    for d in [&a, &b] {
        sync_until_receipted(&d.store, &fast_opts(16 * 1024));
    }

    let mut clerk = staff(&srv, &console, "clara", "clerk");
    let mut custodian = staff(&srv, &console, "carlos", "custodian");
    let mut supervisor = staff(&srv, &console, "sofia", "supervisor");
    let mut auditor = staff(&srv, &console, "aditi", "auditor");

    // Not logged in: pages send to the login page; a form post is not acted on.
    let mut anon = Browser::new(&console);
    let r = anon.get("/incidents");
    assert_eq!((r.status(), location(&r)), (StatusCode::SEE_OTHER, "/login".to_string()));
    assert_eq!(location(&anon.post(&format!("/items/{plain}/hold"), &[("reason", "x"), ("csrf", "x")])), "/login");
    // A login without the login page's cookie (a forged cross-site login) is refused.
    let (s, _) = refusal(anon.post("/login", &[("name", "clara"), ("password", PASSWORD), ("csrf", "guess")]));
    assert_eq!(s, StatusCode::FORBIDDEN);

    // The incident lists both devices' clips; the review places them by corrected time.
    let list = clerk.text("/incidents");
    let inc = list.split("data-incident-id=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let review = clerk.text(&format!("/incidents/{inc}"));
    assert!(review.contains(&format!("data-clip-id=\"{plain}\"")) && review.contains(&format!("data-clip-id=\"{minor}\"")));
    assert_eq!(review.matches("class=\"angle\"").count(), 2, "two videos side by side");
    assert!(review.contains("id=\"scrubber\"") && review.contains("<svg") && review.contains("class=\"track\""));
    assert_eq!(review.matches("<td class=\"verify\">verified</td>").count(), 2, "{review}");

    // Range requests: 206 with exactly those bytes; past the end 416.
    let original = fieldcap_testkit::bytes::seeded(40_000, 1);
    let r = clerk.get_range(&format!("/media/{plain}"), "bytes=100-199");
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], format!("bytes 100-199/{}", original.len()).as_str());
    assert_eq!(r.bytes().unwrap().as_ref(), &original[100..200]);
    let r = clerk.get_range(&format!("/media/{plain}"), "bytes=-50");
    assert_eq!(r.bytes().unwrap().as_ref(), &original[original.len() - 50..]);
    let r = clerk.get(&format!("/media/{plain}"));
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["accept-ranges"], "bytes");
    assert_eq!(r.bytes().unwrap().as_ref(), &original[..]);
    assert_eq!(clerk.get_range(&format!("/media/{plain}"), &format!("bytes={}-", original.len())).status(), StatusCode::RANGE_NOT_SATISFIABLE);
    // A clerk views but does not download originals; a custodian does.
    assert_eq!(refusal(clerk.get(&format!("/media/{plain}?download=1"))).0, StatusCode::FORBIDDEN);
    let r = custodian.get(&format!("/media/{plain}?download=1"));
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers()["content-disposition"].to_str().unwrap().starts_with("attachment"));
    assert_eq!(r.bytes().unwrap().as_ref(), &original[..]);
    // Four range requests in one session: one `media_viewed` for the clerk.
    let ev = custody_of(&srv, &plain);
    assert_eq!(ev.iter().filter(|e| *e == &("media_viewed".to_string(), "clara".to_string())).count(), 1, "{ev:?}");
    assert!(ev.contains(&("media_downloaded".to_string(), "carlos".to_string())), "{ev:?}");

    // Holds: a custodian places one (custody names them); a clerk and an auditor may not;
    // a forged form (wrong CSRF token) is refused and changes nothing.
    let item_page = format!("/items/{plain}");
    assert_eq!(refusal(clerk.submit(&item_page, &format!("/items/{plain}/hold"), &[("reason", "litigation")])).0, StatusCode::FORBIDDEN);
    assert_eq!(refusal(auditor.submit(&item_page, &format!("/items/{plain}/hold"), &[("reason", "litigation")])).0, StatusCode::FORBIDDEN);
    assert_eq!(refusal(custodian.post(&format!("/items/{plain}/hold"), &[("reason", "litigation"), ("csrf", "forged")])).0, StatusCode::FORBIDDEN);
    assert!(!custody_of(&srv, &plain).iter().any(|e| e.0 == "held"));
    let r = custodian.submit(&item_page, &format!("/items/{plain}/hold"), &[("reason", "DA case 26-104")]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(custody_of(&srv, &plain).contains(&("held".to_string(), "carlos".to_string())));
    let page = auditor.text(&item_page);
    assert!(page.contains("data-event=\"held\" data-staff=\"carlos\""), "the item's custody timeline names the staff");
    assert!(!page.contains("id=\"hold\""), "an auditor is shown no hold form");

    // A full package for the District Attorney: custodians build and download; clerks may not.
    assert_eq!(refusal(clerk.submit("/packages", "/packages", &[("incident", &inc), ("recipient", "DA"), ("purpose", "case")])).0, StatusCode::FORBIDDEN);
    let r = custodian.submit("/packages", "/packages", &[("incident", &inc), ("recipient", "Los Angeles County District Attorney"), ("purpose", "Case 26-104")]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER, "{}", r.text().unwrap());
    let pkgs = custodian.text("/packages");
    let pid = pkgs.split("class=\"package\" data-package-id=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    assert!(pkgs.contains("Los Angeles County District Attorney") && pkgs.contains("carlos"));
    assert_eq!(refusal(clerk.get(&format!("/packages/{pid}.zip"))).0, StatusCode::FORBIDDEN);
    let r = custodian.get(&format!("/packages/{pid}.zip"));
    assert_eq!(r.status(), StatusCode::OK);
    let zip = r.bytes().unwrap();
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("full.zip"), &zip).unwrap();
    fieldcap_server::package::zip::unzip_into(&work.path().join("full.zip"), &work.path().join("full")).unwrap();
    let report = fieldcap_package::package::verify_package(&work.path().join("full"));
    assert!(report.all_ok(), "{:?}", report.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>());
    let ev = custody_of(&srv, &minor);
    assert!(ev.contains(&("package_downloaded".to_string(), "carlos".to_string())), "{ev:?}");

    // A records request: a clerk logs it, picks both items and builds the release; the clerk
    // cannot approve or download; the supervisor approves; the custodian downloads; the ZIP
    // verifies and the minors' item is held back.
    let r = clerk.submit("/requests", "/requests", &[("requester", "A reporter"), ("description", "Footage of the operation at the harbor")]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let req_page = location(&r);
    let rid = req_page.rsplit('/').next().unwrap().to_string();
    assert_eq!(auditor.text(&req_page).matches("id=\"pick\"").count(), 0);
    assert_eq!(refusal(auditor.submit("/requests", "/requests", &[("requester", "x"), ("description", "y")])).0, StatusCode::FORBIDDEN);
    let html = clerk.text(&req_page);
    let token = csrf_of(&html);
    let r = clerk.post(&format!("/requests/{rid}/items"), &[("csrf", &token), ("clip", &plain), ("clip", &minor)]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let r = clerk.submit(&req_page, &format!("/requests/{rid}/build"), &[]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    let html = clerk.text(&req_page);
    assert!(html.contains("id=\"state\">built<") && html.contains("id=\"held-back\"") && html.contains(&minor));
    assert_eq!(refusal(clerk.post(&format!("/requests/{rid}/approve"), &[("csrf", &csrf_of(&html))])).0, StatusCode::FORBIDDEN);
    assert_eq!(refusal(clerk.get(&format!("/requests/{rid}/package.zip"))).0, StatusCode::FORBIDDEN);
    assert_eq!(refusal(custodian.get(&format!("/requests/{rid}/package.zip"))).0, StatusCode::CONFLICT, "not approved yet");
    let r = supervisor.submit(&req_page, &format!("/requests/{rid}/approve"), &[]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert!(supervisor.text(&req_page).contains("id=\"state\">approved<"));
    let r = custodian.get(&format!("/requests/{rid}/package.zip"));
    assert_eq!(r.status(), StatusCode::OK);
    std::fs::write(work.path().join("release.zip"), r.bytes().unwrap()).unwrap();
    fieldcap_server::package::zip::unzip_into(&work.path().join("release.zip"), &work.path().join("release")).unwrap();
    let report = fieldcap_package::package::verify_package(&work.path().join("release"));
    assert!(report.all_ok(), "{:?}", report.checks.iter().filter(|c| !c.ok).collect::<Vec<_>>());
    assert!(work.path().join("release/clips").join(&plain).is_dir());
    assert!(!work.path().join("release/clips").join(&minor).exists(), "the minors' item is held back");
    let index = std::fs::read_to_string(work.path().join("release/package.json")).unwrap();
    assert!(!index.contains(&minor));
    let ev = custody_of(&srv, &plain);
    assert!(ev.contains(&("package_downloaded".to_string(), "carlos".to_string())), "{ev:?}");

    // The MOIA report: counts, coarse area, no device ids or exact places.
    let csv = auditor.text("/reports/moia.csv");
    assert!(csv.starts_with("incident_id,date,from,to,area,agencies,items,videos,audio,photos,observations,devices"));
    let line = csv.lines().nth(1).unwrap();
    assert!(line.contains(",2,2,0,0,0,2"), "{line}");
    assert!(line.contains("\"33.74, -118.26\""), "{line}");
    for d in [&a, &b] {
        assert!(!csv.contains(d.store.device_id()));
    }
    assert!(!csv.contains("33.7361"));
    let json: serde_json::Value = auditor.get("/reports/moia.json").json().unwrap();
    assert_eq!(json["incidents"][0]["devices"], 2);

    // Enrolment from the console: the QR payload's token enrols a new phone, which syncs.
    assert_eq!(refusal(clerk.submit("/devices", "/devices/enrol", &[("role", "monitor")])).0, StatusCode::FORBIDDEN);
    let r = custodian.submit("/devices", "/devices/enrol", &[("role", "monitor")]);
    assert_eq!(r.status(), StatusCode::OK);
    let html = r.text().unwrap();
    assert!(html.contains("id=\"enrol-qr\"><svg"));
    let payload = html.split("<pre id=\"enrol-payload\">").nth(1).unwrap().split("</pre>").next().unwrap().replace("&quot;", "\"").replace("&#34;", "\"");
    let payload: serde_json::Value = serde_json::from_str(&payload).unwrap_or_else(|e| panic!("{e}: {payload}"));
    assert_eq!(payload["server"], srv.url());
    let c = Device::with_role("monitor");
    c.store.enroll(&fieldcap_testkit::device::net(), payload["server"].as_str().unwrap(), payload["token"].as_str().unwrap()).unwrap();
    let third = video_with(&c, 3, &[]);
    sync_until_receipted(&c.store, &fast_opts(16 * 1024));
    assert!(clerk.text("/devices").contains(c.store.device_id()));
    assert!(clerk.text(&format!("/items/{third}")).contains("verified") || clerk.text(&format!("/items/{third}")).contains("✓"));

    // Logout ends the session; an old form of it is refused.
    let html = auditor.text("/incidents");
    let old = csrf_of(&html);
    let r = auditor.post("/logout", &[("csrf", &old)]);
    assert_eq!(location(&r), "/login");
    let r = auditor.post(&format!("/items/{plain}/release"), &[("csrf", &old), ("reason", "x")]);
    assert_eq!(location(&r), "/login");

    // Disabling an account ends its sessions at once.
    let still = clerk.get("/incidents");
    assert_eq!(still.status(), StatusCode::OK);
    assert!(fieldcap_server::console::staff::disable_staff(srv.deployment(), "clara", "left the office").unwrap());
    assert_eq!(location(&clerk.get("/incidents")), "/login");
    assert_eq!(clerk.login("clara", PASSWORD).status(), StatusCode::UNAUTHORIZED);

    // Logins are custody too.
    let records = fieldcap_server::records::Records::open(srv.deployment()).unwrap();
    let logins = records.custody(None).unwrap().into_iter().filter(|e| e.event == "staff_login").count();
    assert_eq!(logins, 4);
}

#[test]
fn failed_logins_are_limited_and_idle_sessions_expire() {
    let srv = TestServer::start_with_console(Duration::from_secs(2));
    let console = srv.console_url().unwrap();
    let mut s = staff(&srv, &console, "sam", "supervisor");
    // Idle past the timeout: the session is over, and a form from it is not acted on.
    let html = s.text("/requests");
    std::thread::sleep(Duration::from_millis(3500));
    let r = s.post("/requests", &[("csrf", &csrf_of(&html)), ("requester", "x"), ("description", "y")]);
    assert_eq!(location(&r), "/login");
    let records = fieldcap_server::records::Records::open(srv.deployment()).unwrap();
    assert!(records.store().records_requests().unwrap().is_empty());

    // Five wrong passwords, then even the right one waits (429 with Retry-After).
    let mut b = Browser::new(&console);
    for _ in 0..fieldcap_server::console::auth::MAX_FAILED_LOGINS {
        assert_eq!(refusal(b.login("sam", "wrong password!!")).0, StatusCode::UNAUTHORIZED);
    }
    let r = b.login("sam", PASSWORD);
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    // An unknown name is refused like a wrong password.
    let mut other = Browser::new(&console);
    let _ = other.get("/login");
    let (code, body) = refusal(Browser::new(&console).login("nobody", PASSWORD));
    assert!(code == StatusCode::UNAUTHORIZED || code == StatusCode::TOO_MANY_REQUESTS, "{code}: {body}");
}

#[test]
fn retention_policy_is_a_supervisors_and_recorded() {
    let srv = TestServer::start_with_console(Duration::from_secs(3600));
    let console = srv.console_url().unwrap();
    let mut custodian = staff(&srv, &console, "carlos", "custodian");
    let mut supervisor = staff(&srv, &console, "sofia", "supervisor");
    assert!(!custodian.text("/retention").contains("id=\"set-policy\""));
    assert_eq!(refusal(custodian.submit("/retention", "/retention/policy", &[("category", "video"), ("days", "3650")])).0, StatusCode::FORBIDDEN);
    assert_eq!(refusal(supervisor.submit("/retention", "/retention/policy", &[("category", "nonsense"), ("days", "10")])).0, StatusCode::BAD_REQUEST);
    let r = supervisor.submit("/retention", "/retention/policy", &[("category", "video"), ("days", "3650")]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(fieldcap_server::retention::policy(srv.deployment()).unwrap().get("video"), Some(&3650));
    let records = fieldcap_server::records::Records::open(srv.deployment()).unwrap();
    let ev = records.custody(None).unwrap().into_iter().rfind(|e| e.event == "retention_policy_set").unwrap();
    let v: serde_json::Value = serde_json::from_slice(&ev.body).unwrap();
    assert_eq!(v["detail"]["staff"], "sofia");
}

#[test]
fn malformed_requests_get_refusal_pages() {
    let srv = TestServer::start_with_console(Duration::from_secs(3600));
    let console = srv.console_url().unwrap();
    let mut clerk = staff(&srv, &console, "clara", "clerk");
    // A form without a field it needs, a wrong method, an unknown page: each a page saying so.
    let html = clerk.text("/requests");
    let (s, body) = refusal(clerk.post("/requests", &[("csrf", &csrf_of(&html)), ("requester", "someone")]));
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(body.contains("description"), "names the missing field: {body}");
    assert_eq!(refusal(clerk.get("/logout")).0, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(refusal(clerk.get("/no/such/page")).0, StatusCode::NOT_FOUND);
    assert_eq!(refusal(clerk.get("/items/not-an-item")).0, StatusCode::NOT_FOUND);
    assert_eq!(refusal(clerk.get("/incidents/inc-nothing")).0, StatusCode::NOT_FOUND);
}

#[test]
fn the_review_map_has_one_track_per_device_and_a_missing_csrf_is_forbidden() {
    let srv = TestServer::start_with_console(Duration::from_secs(3600));
    let console = srv.console_url().unwrap();
    // One phone, two clips along a path, and a note: one track on the map.
    let a = Device::with_role("monitor");
    a.enroll(&srv);
    video_with(&a, 10, &[]);
    video_with(&a, 11, &[]);
    let b = Device::with_role("police");
    b.enroll(&srv);
    video_with(&b, 12, &[]);
    for d in [&a, &b] {
        sync_until_receipted(&d.store, &fast_opts(16 * 1024));
    }
    let mut clerk = staff(&srv, &console, "clara", "clerk");
    let list = clerk.text("/incidents");
    let inc = list.split("data-incident-id=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    let review = clerk.text(&format!("/incidents/{inc}"));
    for d in [&a, &b] {
        assert_eq!(review.matches(&format!("class=\"track\" data-device-id=\"{}\"", d.store.device_id())).count(), 1, "{review}");
    }
    // A form without its CSRF token is refused as forbidden, like a wrong one.
    let (s, _) = refusal(clerk.post("/requests", &[("requester", "x"), ("description", "y")]));
    assert_eq!(s, StatusCode::FORBIDDEN);
}

#[test]
fn a_password_reset_ends_sessions_and_the_new_link_sets_a_new_password() {
    let srv = TestServer::start_with_console(Duration::from_secs(3600));
    let console = srv.console_url().unwrap();
    let mut clerk = staff(&srv, &console, "clara", "clerk");
    assert_eq!(clerk.get("/incidents").status(), StatusCode::OK);
    let n = fieldcap_server::console::staff::reset_staff(srv.deployment(), "clara", None).unwrap();
    assert!(n.setup_link.starts_with(&console));
    // The live session ends and the old password no longer works.
    assert_eq!(location(&clerk.get("/incidents")), "/login");
    assert_eq!(refusal(clerk.login("clara", PASSWORD)).0, StatusCode::UNAUTHORIZED);
    let r = clerk.post(&n.setup_link, &[("password", "a brand new password"), ("password2", "a brand new password")]);
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&clerk.login("clara", "a brand new password")), "/incidents");
    let records = fieldcap_server::records::Records::open(srv.deployment()).unwrap();
    assert!(records.custody(None).unwrap().iter().any(|e| e.event == "staff_reset"));
    // No such account, and a disabled one, are not reset.
    assert!(fieldcap_server::console::staff::reset_staff(srv.deployment(), "nobody", None).is_err());
    assert!(fieldcap_server::console::staff::disable_staff(srv.deployment(), "clara", "left").unwrap());
    assert!(fieldcap_server::console::staff::reset_staff(srv.deployment(), "clara", None).is_err());
}
