//! Host → site resolution with a short-lived cache.

use desk_core::{DomainError, Hostname};
use desk_db::{PlatformDb, Tenant};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a host name serves.
#[derive(Debug, Clone)]
pub enum Site {
    /// The platform portal (`admin.<base-domain>`).
    Platform,
    /// A municipality, in whatever status it is.
    Tenant(Arc<Tenant>),
    /// Nothing.
    Unknown,
}

/// A cached answer: when it was fetched and the municipality (none for an unknown host).
type CachedSite = (Instant, Option<Arc<Tenant>>);

/// Entries beyond this are dropped wholesale (unknown hosts must not grow memory unbounded).
const MAX_ENTRIES: usize = 10_000;

/// Resolves host names from `platform.tenant_domains`, caching answers for a few seconds so a
/// status change reaches every instance quickly without a query per request.
#[derive(Debug)]
pub struct SiteResolver {
    platform: PlatformDb,
    platform_host: Hostname,
    ttl: Duration,
    cache: Mutex<HashMap<Hostname, CachedSite>>,
}

impl SiteResolver {
    /// A resolver; `platform_host` is the platform portal's host, `ttl` the cache lifetime.
    pub fn new(platform: PlatformDb, platform_host: Hostname, ttl: Duration) -> Self {
        Self {
            platform,
            platform_host,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The site serving `host`.
    pub async fn resolve(&self, host: &Hostname) -> Result<Site, DomainError> {
        if *host == self.platform_host {
            return Ok(Site::Platform);
        }
        if let Some(hit) = self.cached(host) {
            return Ok(hit.map_or(Site::Unknown, Site::Tenant));
        }
        let tenant = self.platform.tenant_by_host(host).await?.map(Arc::new);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
            cache.insert(host.clone(), (Instant::now(), tenant.clone()));
        }
        Ok(tenant.map_or(Site::Unknown, Site::Tenant))
    }

    fn cached(&self, host: &Hostname) -> Option<Option<Arc<Tenant>>> {
        let cache = self.cache.lock().ok()?;
        let (at, tenant) = cache.get(host)?;
        (at.elapsed() < self.ttl).then(|| tenant.clone())
    }

    /// Forgets every cached answer (after a status or domain change on this instance).
    pub fn invalidate(&self) {
        if let Ok(mut cache) = self.cache.lock() {
            cache.clear();
        }
    }

    /// Number of cached host names (for `/metrics`).
    pub fn cached_hosts(&self) -> usize {
        self.cache.lock().map(|c| c.len()).unwrap_or_default()
    }
}
