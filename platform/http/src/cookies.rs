//! Session cookies on the web's side: the token a request carries, and the `Set-Cookie` that
//! gives or removes one. Shared by the staff portal, citizens' sessions and the platform portal.

use axum::http::{HeaderMap, HeaderValue, header};
use std::time::Duration;

/// The session token in the request's cookie `name`, if it looks like one of ours.
pub fn session_token(headers: &HeaderMap, name: &str) -> Option<String> {
    let values = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok());
    desk_core::session::token_from_cookies(values, name)
}

/// `Set-Cookie` for session `name` on `path` (host-only, HttpOnly); an empty `token` removes it.
pub fn session_cookie(
    name: &str,
    token: &str,
    path: &str,
    ttl: Duration,
    secure: bool,
) -> HeaderValue {
    let value = desk_core::session::set_cookie(name, token, path, ttl.as_secs(), secure);
    // Names, paths and tokens are ASCII of our own making, so this never falls back.
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static(""))
}
