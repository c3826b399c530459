//! Limits on attempts (sign-in failures, one-time codes asked for) per key, and the client
//! address they are often keyed by. Shared by the platform portal and municipalities' sites.

pub use desk_core::limiter::{ApiRates, AttemptLimiter};

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Where a request comes from, for audit lines and limiters: the peer address, or, behind a
/// trusted proxy (`http.trust_forwarded_for`), the first valid address it forwarded.
pub fn client_address(
    trust_forwarded_for: bool,
    peer: Option<&ConnectInfo<SocketAddr>>,
    headers: &HeaderMap,
) -> String {
    desk_core::limiter::client_address(
        trust_forwarded_for,
        peer.map(|c| c.0.ip()),
        headers.get("x-forwarded-for").and_then(|v| v.to_str().ok()),
    )
}

/// Per-address limits of a municipality's public site (keys carry the tenant, so one
/// municipality's visitors never use up another's allowance).
#[derive(Debug)]
pub struct SiteLimits {
    /// Sign-in codes asked for.
    pub code_sends: AttemptLimiter,
    /// Wrong sign-in codes typed.
    pub code_checks: AttemptLimiter,
    /// Public lookups by tracking code (web and GraphQL share it).
    pub lookups: Arc<AttemptLimiter>,
    /// API request rates (GraphQL and Open311 share them).
    pub api: Arc<ApiRates>,
    /// Staff password guesses (per account at an address, and per address).
    pub staff_sign_in: desk_core::limiter::SignInDelays,
}

impl Default for SiteLimits {
    fn default() -> Self {
        let hour = Duration::from_secs(3600);
        let quarter = Duration::from_secs(15 * 60);
        Self {
            code_sends: AttemptLimiter::new(20, hour),
            code_checks: AttemptLimiter::new(30, quarter),
            lookups: Arc::new(AttemptLimiter::new(60, quarter)),
            api: Arc::default(),
            staff_sign_in: desk_core::limiter::SignInDelays::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwarded_address_only_when_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "x-forwarded-for",
            "198.51.100.9, 203.0.113.7".parse().unwrap(),
        );
        let peer = ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9)));
        assert_eq!(client_address(true, Some(&peer), &headers), "203.0.113.7");
        assert_eq!(client_address(false, Some(&peer), &headers), "127.0.0.1");
        assert_eq!(client_address(false, None, &headers), "unknown");
    }
}
