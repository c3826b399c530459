//! Limits on attempts (sign-in failures, one-time codes asked for) per key, and the client
//! address they are often keyed by. Shared by the platform portal and municipalities' sites.

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Counts attempts per key (a username, a client address, a mobile number): more than `max`
/// in `window` locks the key out until the window passes.
#[derive(Debug)]
pub struct AttemptLimiter {
    max: u32,
    window: Duration,
    counts: Mutex<HashMap<String, (u32, Instant)>>,
}

impl AttemptLimiter {
    /// A limiter allowing `max` counted attempts per key and `window`.
    pub fn new(max: u32, window: Duration) -> Self {
        Self {
            max,
            window,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `key` may try now.
    pub fn may_try(&self, key: &str) -> bool {
        let Ok(map) = self.counts.lock() else {
            return false;
        };
        map.get(key)
            .is_none_or(|(n, since)| *n < self.max || since.elapsed() > self.window)
    }

    /// Seconds until `key` may try again (0 when it may now).
    pub fn retry_after(&self, key: &str) -> u64 {
        let Ok(map) = self.counts.lock() else {
            return self.window.as_secs();
        };
        match map.get(key) {
            Some((n, since)) if *n >= self.max => {
                self.window.saturating_sub(since.elapsed()).as_secs().max(1)
            }
            _ => 0,
        }
    }

    /// Records an attempt: a success clears the key, anything else counts.
    pub fn record(&self, key: &str, ok: bool) {
        let Ok(mut map) = self.counts.lock() else {
            return;
        };
        if ok {
            map.remove(key);
            return;
        }
        if map.len() > 100_000 {
            // Bound memory by dropping expired entries, never live lockouts.
            let window = self.window;
            map.retain(|_, (_, since)| since.elapsed() <= window);
        }
        let entry = map.entry(key.to_owned()).or_insert((0, Instant::now()));
        if entry.1.elapsed() > self.window {
            *entry = (0, Instant::now());
        }
        entry.0 += 1;
    }
}

/// Where a request comes from, for audit lines and limiters: the peer address, or, behind a
/// trusted proxy (`http.trust_forwarded_for`), the first valid address it forwarded.
pub fn client_address(
    trust_forwarded_for: bool,
    peer: Option<&ConnectInfo<SocketAddr>>,
    headers: &HeaderMap,
) -> String {
    let forwarded = || {
        headers
            .get("x-forwarded-for")?
            .to_str()
            .ok()?
            .split(',')
            .next()?
            .trim()
            .parse::<std::net::IpAddr>()
            .ok()
    };
    trust_forwarded_for
        .then(forwarded)
        .flatten()
        .or_else(|| peer.map(|c| c.0.ip()))
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
}

/// Per-address limits of a municipality's public site (keys carry the tenant, so one
/// municipality's visitors never use up another's allowance).
#[derive(Debug)]
pub struct SiteLimits {
    /// Sign-in codes asked for.
    pub code_sends: AttemptLimiter,
    /// Wrong sign-in codes typed.
    pub code_checks: AttemptLimiter,
    /// Failed public lookups by tracking code.
    pub lookups: AttemptLimiter,
}

impl Default for SiteLimits {
    fn default() -> Self {
        let hour = Duration::from_secs(3600);
        let quarter = Duration::from_secs(15 * 60);
        Self {
            code_sends: AttemptLimiter::new(20, hour),
            code_checks: AttemptLimiter::new(30, quarter),
            lookups: AttemptLimiter::new(20, quarter),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attempts_lock_out_per_key() {
        let l = AttemptLimiter::new(5, Duration::from_secs(900));
        for _ in 0..5 {
            assert!(l.may_try("op"));
            l.record("op", false);
        }
        assert!(!l.may_try("op"));
        assert!(l.retry_after("op") > 0);
        assert!(l.may_try("other"));
        l.record("op", true);
        assert!(l.may_try("op"));
    }

    #[test]
    fn forwarded_address_only_when_trusted() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "203.0.113.7, 10.0.0.1".parse().unwrap());
        let peer = ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 9)));
        assert_eq!(client_address(true, Some(&peer), &headers), "203.0.113.7");
        assert_eq!(client_address(false, Some(&peer), &headers), "127.0.0.1");
        assert_eq!(client_address(false, None, &headers), "unknown");
    }
}
