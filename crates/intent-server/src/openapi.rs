//! The OpenAPI 3 document of the server, generated from the handlers' `#[utoipa::path]`
//! annotations and the request and answer types, served at `/openapi.json`, with a page that
//! renders it at `/docs` (plain HTML and JavaScript compiled into the binary: no CDN).

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// The document's fixed parts: title, description, tags and the two bearer schemes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "intent",
        description = "Intent classification server: predictions, recommendations, sentence \
            embeddings, routes compatible with text-embeddings-inference and Rasa, model hot-swap \
            and the labeling queue."
    ),
    modifiers(&BearerSchemes),
    tags(
        (name = "predict", description = "Predictions (the API key when one is set)"),
        (name = "compatible", description = "text-embeddings-inference and Rasa routes"),
        (name = "models", description = "The served model"),
        (name = "admin", description = "Hot-swap and labeling (admin token)"),
        (name = "operations", description = "Health, readiness, metrics, this document"),
    )
)]
pub(crate) struct ApiDoc;

struct BearerSchemes;

impl Modify for BearerSchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, what) in [
            ("api_key", "The API key (`--api-key-file`, `INTENT_API_KEY`)"),
            ("admin_token", "The admin token (`--admin-token-file`, `INTENT_ADMIN_TOKEN`)"),
        ] {
            let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some(what)).build();
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
    }
}

/// The document as JSON, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    crate::server::api_routes().into_openapi().to_pretty_json().expect("the OpenAPI document serializes")
});

/// The OpenAPI document of every route.
pub fn document() -> &'static str {
    &DOCUMENT
}

/// This document (OpenAPI 3.1, JSON).
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub(crate) async fn openapi_json() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

/// A page listing the routes of this document, with their bodies and answers.
#[utoipa::path(get, path = "/docs", tag = "operations",
    responses((status = 200, description = "HTML", body = String, content_type = "text/html")))]
pub(crate) async fn docs() -> Response {
    let mut r = Html(include_str!("../assets/docs.html")).into_response();
    // The page's script is a file of its own so that no inline script needs to be allowed.
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        header::HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'",
        ),
    );
    r
}

/// The script of `/docs`.
#[utoipa::path(get, path = "/docs/docs.js", tag = "operations",
    responses((status = 200, description = "JavaScript", body = String, content_type = "text/javascript")))]
pub(crate) async fn docs_js() -> Response {
    ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], include_str!("../assets/docs.js"))
        .into_response()
}

/// The style sheet of `/docs`.
#[utoipa::path(get, path = "/docs/docs.css", tag = "operations",
    responses((status = 200, description = "CSS", body = String, content_type = "text/css")))]
pub(crate) async fn docs_css() -> Response {
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], include_str!("../assets/docs.css")).into_response()
}
