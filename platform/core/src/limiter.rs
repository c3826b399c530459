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

/// Slows guessing without locking anyone out: each key (an account at an address, an address)
/// may fail `free` times, then must wait before its next try, twice as long after each further
/// failure (1 s, 2 s, 4 s, ... up to `max`). A success clears the key; an hour of quiet
/// forgets it. The real member signing in from their own address is never held back by an
/// attacker's failures elsewhere, because no key covers an account from every address.
#[derive(Debug)]
pub struct ProgressiveDelay {
    free: u32,
    max: Duration,
    failures: Mutex<HashMap<String, (u32, Instant)>>,
}

impl ProgressiveDelay {
    /// A delay after `free` failures, doubling up to `max`.
    pub fn new(free: u32, max: Duration) -> Self {
        Self {
            free,
            max,
            failures: Mutex::new(HashMap::new()),
        }
    }

    fn wait_for(&self, failures: u32) -> Duration {
        if failures < self.free {
            return Duration::ZERO;
        }
        let doublings = (failures - self.free).min(20);
        Duration::from_secs(1u64 << doublings).min(self.max)
    }

    /// `Err(seconds)` while `key` must still wait, as of `now`.
    pub fn check_at(&self, key: &str, now: Instant) -> Result<(), u64> {
        let Ok(map) = self.failures.lock() else {
            return Err(1);
        };
        match map.get(key) {
            Some((n, last)) => {
                let wait = self.wait_for(*n);
                let since = now.saturating_duration_since(*last);
                if since >= wait {
                    Ok(())
                } else {
                    Err((wait - since).as_secs().max(1))
                }
            }
            None => Ok(()),
        }
    }

    /// `Err(seconds)` while `key` must still wait.
    pub fn check(&self, key: &str) -> Result<(), u64> {
        self.check_at(key, Instant::now())
    }

    /// Records a failure of `key` as of `now`.
    pub fn fail_at(&self, key: &str, now: Instant) {
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        if map.len() > 100_000 {
            map.retain(|_, (_, last)| {
                now.saturating_duration_since(*last) < Duration::from_secs(3600)
            });
        }
        let entry = map.entry(key.to_owned()).or_insert((0, now));
        if now.saturating_duration_since(entry.1) >= Duration::from_secs(3600) {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
    }

    /// Records a failure of `key`.
    pub fn fail(&self, key: &str) {
        self.fail_at(key, Instant::now());
    }

    /// A success: forgets `key`.
    pub fn succeed(&self, key: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(key);
        }
    }
}

/// The guessing brakes of a password sign-in: one delay per account at an address (free 5,
/// then doubling up to 5 minutes) and one per address over all accounts (free 20, likewise).
/// Never a lockout of the account as such (see [`ProgressiveDelay`]).
#[derive(Debug)]
pub struct SignInDelays {
    per_account_address: ProgressiveDelay,
    per_address: ProgressiveDelay,
}

impl Default for SignInDelays {
    fn default() -> Self {
        Self {
            per_account_address: ProgressiveDelay::new(5, Duration::from_secs(300)),
            per_address: ProgressiveDelay::new(20, Duration::from_secs(300)),
        }
    }
}

impl SignInDelays {
    fn pair(account: &str, address: &str) -> String {
        format!("{account}\u{1f}{address}")
    }

    /// `Err(seconds)` while this account at this address (or this address) must wait.
    pub fn check(&self, account: &str, address: &str) -> Result<(), u64> {
        let a = self
            .per_account_address
            .check(&Self::pair(account, address));
        let b = self.per_address.check(address);
        match (a, b) {
            (Ok(()), Ok(())) => Ok(()),
            (Err(x), Err(y)) => Err(x.max(y)),
            (Err(x), _) | (_, Err(x)) => Err(x),
        }
    }

    /// Records an attempt's outcome.
    pub fn record(&self, account: &str, address: &str, ok: bool) {
        let pair = Self::pair(account, address);
        if ok {
            self.per_account_address.succeed(&pair);
        } else {
            self.per_account_address.fail(&pair);
            self.per_address.fail(address);
        }
    }

    /// The Persian message for a wait of `seconds`.
    pub fn message(seconds: u64) -> String {
        format!(
            "چند تلاش نادرست پشت سر هم انجام شد. {} ثانیه دیگر دوباره تلاش کنید.",
            crate::text::persian_digits(&seconds.to_string())
        )
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
        self.take_n_at(key, 1, per_minute, now)
    }

    /// Takes `n` requests at once (each operation of a batch counts); more than a minute's
    /// allowance can never pass and waits a minute.
    pub fn take_n_at(&self, key: &str, n: u32, per_minute: u32, now: Instant) -> Result<(), u64> {
        let capacity = f64::from(per_minute.max(1));
        let need = f64::from(n.max(1));
        if need > capacity {
            return Err(60);
        }
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
        if refilled >= need {
            *tokens = refilled - need;
            Ok(())
        } else {
            *tokens = refilled;
            // Whole seconds until enough tokens are back, rounded up.
            let wait = ((need - refilled) / per_sec).ceil();
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
        self.take_many(tenant, key_id, source, 1)
    }

    /// Takes `n` requests at once (a GraphQL batch counts each of its operations).
    pub fn take_many(
        &self,
        tenant: impl std::fmt::Display,
        key_id: Option<i64>,
        source: &str,
        n: u32,
    ) -> Result<(), u64> {
        let now = Instant::now();
        match key_id {
            Some(id) => {
                self.limiter
                    .take_n_at(&format!("t{tenant}:key:{id}"), n, self.per_key, now)
            }
            None => {
                self.limiter
                    .take_n_at(&format!("t{tenant}:addr:{source}"), n, self.anonymous, now)
            }
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
    fn progressive_delay_doubles_after_the_free_tries_and_a_success_clears_it() {
        let d = ProgressiveDelay::new(3, Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..3u64 {
            assert_eq!(d.check_at("k", t0 + Duration::from_secs(i)), Ok(()));
            d.fail_at("k", t0 + Duration::from_secs(i));
        }
        // Third failure at t0+2: wait 1 s.
        assert_eq!(d.check_at("k", t0 + Duration::from_secs(2)), Err(1));
        assert_eq!(d.check_at("k", t0 + Duration::from_secs(3)), Ok(()));
        d.fail_at("k", t0 + Duration::from_secs(3));
        assert_eq!(d.check_at("k", t0 + Duration::from_secs(4)), Err(1));
        assert_eq!(d.check_at("k", t0 + Duration::from_secs(5)), Ok(()));
        for i in 0..20u64 {
            d.fail_at("k", t0 + Duration::from_secs(10 + i));
        }
        assert_eq!(
            d.check_at("k", t0 + Duration::from_secs(29)),
            Err(60),
            "capped"
        );
        // Other keys (the member at their own address) are untouched.
        assert_eq!(d.check_at("other", t0 + Duration::from_secs(29)), Ok(()));
        d.succeed("k");
        assert_eq!(d.check_at("k", t0 + Duration::from_secs(29)), Ok(()));
    }

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
        // A batch takes one token per operation; more than a minute's worth never passes.
        assert_eq!(limiter.take_n_at("batch", 50, 60, t0), Ok(()));
        assert_eq!(limiter.take_n_at("batch", 20, 60, t0), Err(10));
        assert_eq!(limiter.take_n_at("huge", 300, 60, t0), Err(60));
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
