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

/// A request rate per key (an API key, a client address), as a token bucket: a key may burst up
/// to `per_minute` requests, then goes on at `per_minute` a minute. Keys carry their tenant, so
/// one municipality's callers never spend another's allowance.
#[derive(Debug)]
pub struct RateLimiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self {
            buckets: Mutex::new(HashMap::new()),
        }
    }
}

impl RateLimiter {
    /// Takes one request for `key` allowed `per_minute`; `Err(seconds)` says when the next one
    /// would be allowed (at least 1).
    pub fn take(&self, key: &str, per_minute: u32) -> Result<(), u64> {
        self.take_at(key, per_minute, Instant::now())
    }

    /// [`RateLimiter::take`] as of `now` (tests pass their own clock).
    pub fn take_at(&self, key: &str, per_minute: u32, now: Instant) -> Result<(), u64> {
        let capacity = f64::from(per_minute.max(1));
        let per_sec = capacity / 60.0;
        let Ok(mut map) = self.buckets.lock() else {
            return Err(1);
        };
        if map.len() > 100_000 {
            // Bound memory: a bucket idle for a minute is full again, the same as no entry.
            map.retain(|_, (_, at)| now.saturating_duration_since(*at) < Duration::from_secs(60));
        }
        let (tokens, at) = map.entry(key.to_owned()).or_insert((capacity, now));
        let refilled =
            (*tokens + now.saturating_duration_since(*at).as_secs_f64() * per_sec).min(capacity);
        *at = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            // Whole seconds until one token is back, rounded up.
            let wait = ((1.0 - refilled) / per_sec).ceil();
            Err(if wait.is_finite() && wait >= 1.0 {
                wait as u64
            } else {
                1
            })
        }
    }
}

/// The API's request rates (GraphQL and Open311 share them): per key, and per client address
/// for callers without a key, each within one municipality.
#[derive(Debug)]
pub struct ApiRates {
    limiter: RateLimiter,
    /// Requests a minute per API key.
    pub per_key: u32,
    /// Requests a minute per client address without a key.
    pub anonymous: u32,
}

impl Default for ApiRates {
    fn default() -> Self {
        Self::new(120, 60)
    }
}

impl ApiRates {
    /// Rates of `per_key` and `anonymous` requests a minute.
    pub fn new(per_key: u32, anonymous: u32) -> Self {
        Self {
            limiter: RateLimiter::default(),
            per_key,
            anonymous,
        }
    }

    /// Takes one request of municipality `tenant` by key `key_id`, or without a key from
    /// `source`; `Err(seconds)` to wait (the `Retry-After`).
    pub fn take(
        &self,
        tenant: impl std::fmt::Display,
        key_id: Option<i64>,
        source: &str,
    ) -> Result<(), u64> {
        match key_id {
            Some(id) => self
                .limiter
                .take(&format!("t{tenant}:key:{id}"), self.per_key),
            None => self
                .limiter
                .take(&format!("t{tenant}:addr:{source}"), self.anonymous),
        }
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
    fn rate_limiter_allows_a_burst_then_the_rate_and_says_when() {
        let limiter = RateLimiter::default();
        let t0 = Instant::now();
        for _ in 0..120 {
            assert_eq!(limiter.take_at("t1:key:7", 120, t0), Ok(()));
        }
        // The 121st within the same instant waits for one token: half a second, so 1 s.
        assert_eq!(limiter.take_at("t1:key:7", 120, t0), Err(1));
        // Other keys (another municipality's, another key) are untouched.
        assert_eq!(limiter.take_at("t2:key:7", 120, t0), Ok(()));
        // After a second, two more requests at 120/min.
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(limiter.take_at("t1:key:7", 120, t1), Ok(()));
        assert_eq!(limiter.take_at("t1:key:7", 120, t1), Ok(()));
        assert!(limiter.take_at("t1:key:7", 120, t1).is_err());
        // A slow rate says a longer wait.
        for _ in 0..6 {
            assert_eq!(limiter.take_at("slow", 6, t0), Ok(()));
        }
        assert_eq!(limiter.take_at("slow", 6, t0), Err(10));
    }

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
