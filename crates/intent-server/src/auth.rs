//! Bearer tokens: the admin token of `/admin/*` and the optional API key of the prediction routes
//! (text-embeddings-inference's `--api-key`). Tokens are compared as SHA-256 digests in constant
//! time, so neither the content nor the length of a token leaks through timing; the scheme name
//! is case-insensitive (RFC 7235 §2.1).

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api_error::ApiError;
use crate::server::AppState;

/// The digest a token is stored and compared as.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

/// The token of an `Authorization: Bearer <token>` header (any case of `Bearer`).
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether `given` is the token of `expected`, in constant time.
pub(crate) fn matches(given: &str, expected: &[u8; 32]) -> bool {
    bool::from(digest(given).ct_eq(expected))
}

/// 401 with `WWW-Authenticate: Bearer`.
pub(crate) fn unauthorized(message: &str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
    r
}

/// With an API key configured, prediction routes need `Authorization: Bearer <key>`; Rasa's
/// clients send it as `?token=<key>` instead, which `/model/parse` also takes (as Rasa's
/// `--auth-token` does). Without a key the routes are open.
pub(crate) async fn require_api_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let Some(expected) = state.0.api_key_digest else { return next.run(req).await };
    let query_token = (req.uri().path() == "/model/parse")
        .then(|| req.uri().query())
        .flatten()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
        .map(str::to_string);
    let given = bearer(req.headers()).map(str::to_string).or(query_token);
    match given {
        Some(t) if matches(&t, &expected) => next.run(req).await,
        Some(_) => unauthorized("wrong API key"),
        None => unauthorized("missing `Authorization: Bearer <API key>`"),
    }
}
