//! Limits on attempts (sign-in failures, one-time codes asked for) per key, and the client
//! address they are often keyed by. Shared by the platform portal and municipalities' sites.

pub use desk_core::limiter::{ApiRates, AttemptLimiter};

use std::sync::Arc;
use std::time::Duration;

pub use desk_http::client_address;

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
