//! The labeling console at `/ui/`: one HTML page, its script and its style sheet, compiled into
//! the binary (no CDN, no build step). The page works only through the admin routes, with the
//! admin token the person signs in with (kept in the tab's session storage, sent as a bearer
//! header); the files themselves hold nothing secret and are served to anyone.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

/// What the page may load: its own script and style sheet, the admin routes, and the report
/// plots as `blob:` images (and the empty `data:` icon). No inline script or style, no frames,
/// no other origin.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
    style-src 'self'; img-src 'self' blob: data:; connect-src 'self'; base-uri 'none'; form-action 'self'; \
    frame-ancestors 'none'";

/// A console file with its type and the headers every console file carries.
fn file(content_type: &'static str, body: &'static str) -> Response {
    let mut r = ([(header::CONTENT_TYPE, content_type)], body).into_response();
    let h = r.headers_mut();
    for (name, value) in [
        (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-cache"),
    ] {
        h.insert(name, HeaderValue::from_static(value));
    }
    r
}

/// The labeling console (sign in with the admin token; the queue, labeling by keyboard, the
/// served model's report and registry versions).
#[utoipa::path(get, path = "/ui/", tag = "operations",
    responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
pub(crate) async fn console() -> Response {
    file("text/html; charset=utf-8", include_str!("../assets/ui/index.html"))
}

/// The labeling console, also without the trailing slash (its links are absolute).
#[utoipa::path(get, path = "/ui", tag = "operations",
    responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
pub(crate) async fn console_no_slash() -> Response {
    console().await
}

/// The console's script.
#[utoipa::path(get, path = "/ui/console.js", tag = "operations",
    responses((status = 200, description = "JavaScript", body = String, content_type = "text/javascript")))]
pub(crate) async fn console_js() -> Response {
    file("text/javascript; charset=utf-8", include_str!("../assets/ui/console.js"))
}

/// The console's style sheet.
#[utoipa::path(get, path = "/ui/console.css", tag = "operations",
    responses((status = 200, description = "CSS", body = String, content_type = "text/css")))]
pub(crate) async fn console_css() -> Response {
    file("text/css; charset=utf-8", include_str!("../assets/ui/console.css"))
}
