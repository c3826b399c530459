//! The HTTP face of Miz: tenant resolution by host, the themed pages, health and metrics.
//!
//! Owns [`app`], the outermost router: `/healthz`, `/readyz` and `/metrics` answer on any host;
//! every other request is routed by its `Host` header to the platform portal, to a
//! municipality's site (with the resolved [`desk_db::Tenant`] in the request extensions), or to a
//! themed "not found" page. Suspended municipalities get a notice page, and their API refuses.
//! Must not depend on the GraphQL, jobs or tenant-admin crates: the binary hands their routers in.

mod api_keys;
mod appointments;
mod catalog_editor;
mod citizen;
pub use desk_http::cookies;
mod csv;
mod desk;
mod developers;
mod dispatch;
mod inbox;
mod inquiries;
pub mod limits;
mod metrics;
mod open311;
mod outbox;
mod overrides;
mod page_cache;
mod pages;
mod print;
mod reports;
mod requests;
mod resolve;
mod sanitize;
mod sms_templates;
mod sso;
mod staff;
mod staff_sign_in;
mod survey;
mod team;
mod themes;
mod webhooks;

pub use dispatch::{app, ops_app};
pub use metrics::Metrics;
pub use page_cache::PageCache;
pub use resolve::{Site, SiteResolver};
pub use themes::Themes;

use desk_db::PlatformDb;
use std::sync::Arc;

/// Shared state of the web layer. Cheap to clone.
#[derive(Debug, Clone)]
pub struct WebState {
    /// Registry and tenant transactions.
    pub platform: PlatformDb,
    /// Template rendering.
    pub themes: Arc<Themes>,
    /// Host → site, cached.
    pub sites: Arc<SiteResolver>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// Policies.
    pub authz: desk_authz::Authorizer,
    /// Seals municipalities' secrets; `None` when no master key is configured.
    pub secrets: Option<desk_core::secret::MasterKey>,
    /// Mark cookies `Secure` (behind HTTPS).
    pub secure_cookies: bool,
    /// Take the client address from `X-Forwarded-For` (behind a trusted proxy).
    pub trust_forwarded_for: bool,
    /// Uploaded documents.
    pub files: desk_db::files::FileStore,
    /// Per-address limits of the public sites.
    pub limits: Arc<limits::SiteLimits>,
    /// Whether webhooks may point at loopback and private addresses (demo, development).
    pub allow_private_webhooks: bool,
    /// The guard of calls to addresses municipalities typed (identity providers here).
    pub outbound: desk_http::outbound::Outbound,
    /// Rendered public pages without personal data (service cards), for a moment.
    pub pages: Arc<page_cache::PageCache>,
}

/// A form that carries only its CSRF token (a button that acts).
#[derive(Debug, serde::Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    pub(crate) csrf: String,
}

/// Routes of a municipality's own site (citizen portal). Expects the tenant in the extensions.
pub fn tenant_router(state: WebState) -> axum::Router {
    pages::tenant_routes()
        .merge(staff::staff_routes())
        .merge(staff_sign_in::sign_in_routes())
        .merge(sso::sso_routes())
        .merge(team::team_routes())
        .merge(catalog_editor::editor_routes())
        .merge(citizen::citizen_routes())
        .merge(requests::request_routes())
        .merge(inbox::inbox_routes())
        .merge(api_keys::api_key_routes())
        .merge(webhooks::webhook_routes())
        .merge(overrides::override_routes())
        .merge(outbox::outbox_routes())
        .merge(open311::open311_routes())
        .merge(desk::desk_routes())
        .merge(print::print_routes())
        .merge(appointments::appointment_routes())
        .merge(survey::survey_routes())
        .merge(reports::report_routes())
        .merge(inquiries::inquiry_routes())
        .merge(sms_templates::sms_template_routes())
        .merge(developers::developer_routes())
        .fallback(pages::not_found)
        .with_state(state)
}
