//! Sign-in of platform users: argon2 password hashes, server-side sessions in a cookie,
//! CSRF tokens for forms, and a limit on failed attempts.

use crate::portal::PlatformPortal;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Redirect, Response};
use desk_core::DomainError;
use desk_db::users::PlatformUser;
use std::time::Duration;

/// Name of the session cookie on the platform host.
pub const COOKIE: &str = "desk_platform_session";
/// How long a session lives.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// Hashes a password with argon2id (PHC string with its own random salt).
pub fn hash_password(password: &str) -> Result<String, DomainError> {
    desk_core::password::hash(password)
}

/// Whether `password` matches the stored PHC hash.
pub fn verify_password(password: &str, stored: &str) -> bool {
    desk_core::password::verify(password, stored)
}

/// A fresh unguessable token (244 random bits from the OS), as hex.
pub fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// The session token from the request's cookies.
pub fn session_token(headers: &HeaderMap) -> Option<String> {
    desk_http::cookies::session_token(headers, COOKIE)
}

/// `Set-Cookie` for a session (or its removal when `token` is empty).
pub fn session_cookie(token: &str, secure: bool) -> HeaderValue {
    desk_http::cookies::session_cookie(COOKIE, token, "/", SESSION_TTL, secure)
}

/// A signed-in platform user, extracted from the session cookie; anyone else is sent to /login.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The user.
    pub user: PlatformUser,
    /// The session's CSRF token, which every form must echo.
    pub csrf: String,
    /// The session token (for sign-out).
    pub token: String,
}

impl SignedIn {
    /// `Forbidden` unless `sent` is this session's CSRF token.
    pub fn check_csrf(&self, sent: &str) -> Result<(), DomainError> {
        if !sent.is_empty() && sent == self.csrf {
            Ok(())
        } else {
            Err(DomainError::Forbidden)
        }
    }
}

impl FromRequestParts<PlatformPortal> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        portal: &PlatformPortal,
    ) -> Result<Self, Self::Rejection> {
        let to_login = || Redirect::to("/login").into_response();
        let Some(token) = session_token(&parts.headers) else {
            return Err(to_login());
        };
        match portal.db.session_user(&token).await {
            Ok(Some((user, csrf))) => Ok(Self { user, csrf, token }),
            Ok(None) => Err(to_login()),
            Err(e) => {
                tracing::error!(error = %e, "reading a session failed");
                Err(crate::portal::error_response(
                    &portal.views,
                    &DomainError::Internal(anyhow::anyhow!("session")),
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_and_verify() {
        let h = hash_password("درست-است-1234").unwrap();
        assert!(h.starts_with("$argon2"));
        assert!(verify_password("درست-است-1234", &h));
        assert!(!verify_password("wrong", &h));
        assert!(!verify_password("x", "not a hash"));
        assert_ne!(h, hash_password("درست-است-1234").unwrap(), "salted");
    }
}
