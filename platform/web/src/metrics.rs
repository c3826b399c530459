//! Prometheus text metrics, kept to a few counters (no per-tenant labels: 1,500 tenants would
//! explode the series count).

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Process-wide HTTP counters.
#[derive(Debug, Default)]
pub struct Metrics {
    responses: [AtomicU64; 5],
    duration_micros: AtomicU64,
}

impl Metrics {
    /// Counts one response by status class and adds its duration.
    pub fn observe(&self, status: u16, micros: u64) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
        self.duration_micros.fetch_add(micros, Ordering::Relaxed);
    }

    /// The exposition text.
    pub fn render(&self, pool: (u32, usize), cached_hosts: usize) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# TYPE desk_http_responses_total counter");
        for (i, c) in self.responses.iter().enumerate() {
            let _ = writeln!(
                out,
                "desk_http_responses_total{{class=\"{}xx\"}} {}",
                i + 1,
                c.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "# TYPE desk_http_response_seconds_sum counter");
        let _ = writeln!(
            out,
            "desk_http_response_seconds_sum {:.6}",
            self.duration_micros.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "# TYPE desk_db_pool_connections gauge");
        let _ = writeln!(out, "desk_db_pool_connections {}", pool.0);
        let _ = writeln!(out, "# TYPE desk_db_pool_idle_connections gauge");
        let _ = writeln!(out, "desk_db_pool_idle_connections {}", pool.1);
        let _ = writeln!(out, "# TYPE desk_site_cache_hosts gauge");
        let _ = writeln!(out, "desk_site_cache_hosts {cached_hosts}");
        out
    }
}
