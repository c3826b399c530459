//! HTTP pieces every front door shares (the municipalities' sites, the GraphQL API, the
//! platform portal, the jobs): the one guarded client for calls made on a municipality's
//! behalf, session cookies, where a request comes from, and the API's error codes. Kept small
//! and free of any one door's state, so that no door depends on another.

pub mod api_error;
pub mod cookies;
pub mod csp;
pub mod outbound;

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use std::net::SocketAddr;

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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
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
