//! What every page shares: the page frame (who is logged in, the logout form), refusal pages,
//! static files and the security headers.

use askama::Template;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// The logged-in staff member as every page's frame shows them.
#[derive(Debug, Clone, Default)]
pub(crate) struct Nav {
    /// Staff account name; empty when nobody is logged in.
    pub name: String,
    /// Role.
    pub role: String,
    /// The session's CSRF token, for the forms of the page.
    pub csrf: String,
}

/// A page refused, with why: rendered as an HTML page whose `<h1 id="refusal">` says it.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub status: StatusCode,
    pub title: String,
    pub detail: String,
    /// Seconds to wait (429).
    pub retry_after: Option<u64>,
}

impl Refusal {
    pub fn new(status: StatusCode, title: impl Into<String>, detail: impl Into<String>) -> Refusal {
        Refusal { status, title: title.into(), detail: detail.into(), retry_after: None }
    }
    pub fn forbidden(detail: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::FORBIDDEN, "Not allowed", detail)
    }
    pub fn not_found(what: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::NOT_FOUND, "Not found", what)
    }
    pub fn bad(detail: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::BAD_REQUEST, "Cannot do that", detail)
    }
    pub fn conflict(detail: impl Into<String>) -> Refusal {
        Refusal::new(StatusCode::CONFLICT, "Cannot do that now", detail)
    }
}

impl From<crate::Error> for Refusal {
    fn from(e: crate::Error) -> Refusal {
        use crate::Error as E;
        match e {
            E::BadRequest(m) => Refusal::bad(m),
            E::NotFound(m) => Refusal::not_found(m),
            E::Conflict(m) => Refusal::conflict(m),
            E::StorageUnavailable(_) => Refusal::new(StatusCode::SERVICE_UNAVAILABLE, "Storage unavailable", "the record or media store is not answering; try again shortly"),
            other => {
                // The detail may name paths or internals: logged for the operator, not shown.
                tracing::error!(error = %other, "console request failed");
                Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong", "the server could not complete this; it is logged for the operator")
            }
        }
    }
}

#[derive(Template)]
#[template(path = "console/refusal.html")]
struct RefusalPage<'a> {
    nav: Nav,
    title: &'a str,
    detail: &'a str,
    status: u16,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let page = RefusalPage { nav: Nav::default(), title: &self.title, detail: &self.detail, status: self.status.as_u16() };
        let mut r = (self.status, html(&page)).into_response();
        if let Some(s) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&s.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
        }
        r
    }
}

/// Renders a template; a rendering failure (a bug) becomes a 500 page.
pub(crate) fn html<T: Template>(t: &T) -> Html<String> {
    match t.render() {
        Ok(s) => Html(s),
        Err(e) => {
            tracing::error!(error = %e, "rendering a console page failed");
            Html("<!doctype html><title>Error</title><h1 id=\"refusal\">Something went wrong</h1>".to_string())
        }
    }
}

/// A rendered page, or a refusal.
pub(crate) type Page = Result<Response, Refusal>;

/// Renders a template as a 200 page.
pub(crate) fn page<T: Template>(t: &T) -> Page {
    Ok(html(t).into_response())
}

/// `303 See Other` to `to` (after a POST).
pub(crate) fn see_other(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r
}

const CSS: &str = include_str!("../../static/console/console.css");
const REVIEW_JS: &str = include_str!("../../static/console/review.js");

/// `GET /static/{file}`: the stylesheet and the review script (compiled into the binary).
pub(crate) async fn static_file(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let (body, mime) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "review.js" => (REVIEW_JS, "text/javascript; charset=utf-8"),
        _ => return Refusal::not_found("no such file").into_response(),
    };
    ([(header::CONTENT_TYPE, mime), (header::CACHE_CONTROL, "no-cache")], body).into_response()
}

/// Anything else: a 404 page.
pub(crate) async fn not_found() -> Response {
    Refusal::not_found("there is no such page").into_response()
}

/// Headers on every console answer: no framing, no sniffing, scripts and media only from the
/// console itself, nothing cached by a shared cache, no referrer leaving the console.
pub(crate) async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut r = next.run(req).await;
    // Every refusal is a page: axum's own answers (a form missing a field, a wrong method) are
    // short plain text, made into refusal pages here.
    let html = r.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("text/html"));
    if r.status().as_u16() >= 400 && !html && r.status() != StatusCode::RANGE_NOT_SATISFIABLE {
        let status = r.status();
        let bytes = axum::body::to_bytes(std::mem::take(r.body_mut()), 4096).await.unwrap_or_default();
        let detail = match String::from_utf8_lossy(&bytes).trim() {
            "" if status == StatusCode::METHOD_NOT_ALLOWED => "this page does not take that kind of request".to_string(),
            "" => status.canonical_reason().unwrap_or("refused").to_lowercase(),
            t => t.to_string(),
        };
        let title = if status.is_client_error() { "Cannot do that" } else { "Something went wrong" };
        r = Refusal::new(status, title, detail).into_response();
    }
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; media-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("private, no-store"));
    r
}

/// A short, readable time (UTC) of an RFC 3339 timestamp.
pub(crate) fn short_time(rfc3339: &str) -> String {
    match chrono::DateTime::parse_from_rfc3339(rfc3339) {
        Ok(t) => t.with_timezone(&chrono::Utc).format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        Err(_) => rfc3339.to_string(),
    }
}

/// A coarse area for lists and reports: the point rounded to 0.01° (about a kilometre), so a
/// list never pins an address.
pub(crate) fn coarse_area(centre: Option<(f64, f64)>) -> String {
    match centre {
        Some((lat, lon)) => format!("{:.2}, {:.2}", lat, lon),
        None => "no location".into(),
    }
}
