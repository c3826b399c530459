//! Limits on attempts per key (sign-in failures, one-time codes asked for, lookups), kept in
//! memory of one process. Uses the monotonic clock, which is all it needs to know of time.

use std::collections::HashMap;
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

/// Where a request comes from: the peer address, or, behind one trusted proxy, the address that
/// proxy appended last to `X-Forwarded-For` (earlier entries are whatever the client sent);
/// `unknown` when neither is known.
pub fn client_address(
    trust_forwarded_for: bool,
    peer: Option<std::net::IpAddr>,
    forwarded_for: Option<&str>,
) -> String {
    let forwarded = || {
        forwarded_for?
            .rsplit(',')
            .next()?
            .trim()
            .parse::<std::net::IpAddr>()
            .ok()
    };
    trust_forwarded_for
        .then(forwarded)
        .flatten()
        .or(peer)
        .map_or_else(|| "unknown".to_owned(), |ip| ip.to_string())
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
}
