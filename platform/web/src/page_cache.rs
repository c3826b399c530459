//! A short-lived cache of rendered public pages that hold nothing personal (a service card):
//! keyed by everything the page depends on (the municipality, the page, its design), bounded in
//! entries, each kept for the site cache's time (the same staleness as host resolution).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Entries kept at most (cards render to about 10-15 KB).
const MAX_ENTRIES: usize = 2048;

/// Rendered pages by key.
#[derive(Debug)]
pub struct PageCache {
    ttl: Duration,
    pages: Mutex<HashMap<String, (Instant, Arc<str>)>>,
}

impl PageCache {
    /// A cache keeping pages for `ttl` (zero: keeps nothing).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            pages: Mutex::default(),
        }
    }

    /// The page under `key`, if rendered less than the TTL ago.
    pub fn get(&self, key: &str) -> Option<Arc<str>> {
        let pages = self.pages.lock().ok()?;
        pages
            .get(key)
            .filter(|(at, _)| at.elapsed() < self.ttl)
            .map(|(_, html)| html.clone())
    }

    /// Keeps a page (unless the TTL is zero, or the cache is full of live pages).
    pub fn put(&self, key: String, html: Arc<str>) {
        if self.ttl.is_zero() {
            return;
        }
        let Ok(mut pages) = self.pages.lock() else {
            return;
        };
        if pages.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            pages.retain(|_, (at, _)| at.elapsed() < ttl);
            if pages.len() >= MAX_ENTRIES {
                return;
            }
        }
        pages.insert(key, (Instant::now(), html));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_expire_and_the_cache_stays_bounded() {
        let cache = PageCache::new(Duration::from_millis(50));
        cache.put("t1:MUN-BLD-001:base".into(), Arc::from("<p>one</p>"));
        assert_eq!(
            cache.get("t1:MUN-BLD-001:base").as_deref(),
            Some("<p>one</p>")
        );
        assert!(
            cache.get("t2:MUN-BLD-001:base").is_none(),
            "keys carry the municipality"
        );
        std::thread::sleep(Duration::from_millis(60));
        assert!(cache.get("t1:MUN-BLD-001:base").is_none(), "expired");
        for i in 0..MAX_ENTRIES + 10 {
            cache.put(format!("k{i}"), Arc::from("x"));
        }
        assert!(cache.pages.lock().unwrap().len() <= MAX_ENTRIES);
        let off = PageCache::new(Duration::ZERO);
        off.put("k".into(), Arc::from("x"));
        assert!(off.get("k").is_none());
    }
}
