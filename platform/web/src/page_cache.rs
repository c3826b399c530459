//! A short-lived cache of rendered public pages that hold nothing personal (a service card):
//! keyed by everything the page depends on (the municipality, the page, its design), bounded in
//! entries, each kept for the site cache's time (the same staleness as host resolution).
//!
//! A page carries its response's CSP nonce; the cache keeps a mark in its place and each
//! answer from the cache gets the nonce of its own request, so no two answers share one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Stands for the nonce in a kept page (never part of a rendered page: the database refuses
/// NUL characters).
const NONCE_MARK: &str = "\u{0}csp-nonce\u{0}";

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

    /// The page under `key`, if rendered less than the TTL ago, with the nonce of the request
    /// being answered.
    pub fn get(&self, key: &str) -> Option<String> {
        let kept = {
            let pages = self.pages.lock().ok()?;
            pages
                .get(key)
                .filter(|(at, _)| at.elapsed() < self.ttl)
                .map(|(_, html)| html.clone())?
        };
        Some(kept.replace(NONCE_MARK, &desk_http::csp::nonce()))
    }

    /// Keeps a page rendered for the request being answered (unless the TTL is zero, or the
    /// cache is full of live pages).
    pub fn put(&self, key: String, html: &str) {
        if self.ttl.is_zero() {
            return;
        }
        let nonce = desk_http::csp::nonce();
        let html: Arc<str> = if nonce.is_empty() {
            Arc::from(html)
        } else {
            Arc::from(html.replace(&nonce, NONCE_MARK))
        };
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
        cache.put("t1:MUN-BLD-001:base".into(), "<p>one</p>");
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
            cache.put(format!("k{i}"), "x");
        }
        assert!(cache.pages.lock().unwrap().len() <= MAX_ENTRIES);
        let off = PageCache::new(Duration::ZERO);
        off.put("k".into(), "x");
        assert!(off.get("k").is_none());
    }

    #[tokio::test]
    async fn each_answer_carries_its_own_nonce() {
        let cache = PageCache::new(Duration::from_secs(60));
        let first = desk_http::csp::new_nonce();
        let page = format!("<style nonce=\"{first}\">p {{}}</style>");
        desk_http::csp::with_nonce(first.clone(), async { cache.put("k".into(), &page) }).await;
        let second = desk_http::csp::new_nonce();
        let served = desk_http::csp::with_nonce(second.clone(), async { cache.get("k") })
            .await
            .unwrap();
        assert_eq!(served, format!("<style nonce=\"{second}\">p {{}}</style>"));
    }
}
