//! The platform portal on `admin.<base-domain>`: sign-in, municipalities (list, search,
//! filters, onboarding, lifecycle, domains), provinces and operators. Persian, right-to-left.
//!
//! This module holds what every page shares (the views, the portal's state, the router, the
//! error page, the extractors); each page lives in its own module: `sign_in`,
//! `municipalities`, `dashboard`, `people` (provinces and operators), `keys` (platform API).

mod dashboard;
mod keys;
mod municipalities;
mod people;
mod sign_in;

use dashboard::*;
use keys::*;
use municipalities::*;
use people::*;
use sign_in::*;

use crate::auth::{self, SignedIn};
use crate::lifecycle::{self, Actor, DomainChange, Lifecycle};
use crate::{FirstAdmin, Onboarding};
use axum::Router;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use desk_authz::{Action, Authorizer, Domain, Resource};
use desk_core::text::{persian_digits, suggest_slug};
use desk_core::{DomainError, FieldErrors, Hostname, MobileNumber, TenantSlug, TenantStatus};
use desk_db::tenants::TenantFilter;
use desk_db::{NewTenant, PlatformDb, Tenant};
use desk_http::client_address;
use minijinja::value::Serde;
use minijinja::{Environment, context};
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The portal's templates, embedded at build time.
#[derive(Debug)]
pub struct Views {
    env: Environment<'static>,
}

impl Views {
    fn new() -> Result<Self, minijinja::Error> {
        let mut env = Environment::new();
        for (name, src) in [
            (
                "layout.html.j2",
                include_str!("../../templates/layout.html.j2"),
            ),
            (
                "login.html.j2",
                include_str!("../../templates/login.html.j2"),
            ),
            (
                "municipalities.html.j2",
                include_str!("../../templates/municipalities.html.j2"),
            ),
            (
                "onboard.html.j2",
                include_str!("../../templates/onboard.html.j2"),
            ),
            (
                "municipality.html.j2",
                include_str!("../../templates/municipality.html.j2"),
            ),
            (
                "invitation.html.j2",
                include_str!("../../templates/invitation.html.j2"),
            ),
            (
                "provinces.html.j2",
                include_str!("../../templates/provinces.html.j2"),
            ),
            (
                "operators.html.j2",
                include_str!("../../templates/operators.html.j2"),
            ),
            (
                "api_keys.html.j2",
                include_str!("../../templates/api_keys.html.j2"),
            ),
            (
                "error.html.j2",
                include_str!("../../templates/error.html.j2"),
            ),
            (
                "dashboard.html.j2",
                include_str!("../../templates/dashboard.html.j2"),
            ),
        ] {
            env.add_template(name, src)?;
        }
        env.add_filter("fa_digits", |s: String| persian_digits(&s));
        env.add_function("csp_nonce", desk_http::csp::nonce);
        Ok(Self { env })
    }

    fn render(&self, status: StatusCode, name: &str, ctx: minijinja::Value) -> Response {
        match self.env.get_template(name).and_then(|t| t.render(ctx)) {
            Ok(html) => (status, Html(html)).into_response(),
            Err(e) => {
                tracing::error!(template = name, error = %e, "rendering the platform portal failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    Html("خطایی رخ داد. لطفاً دوباره تلاش کنید."),
                )
                    .into_response()
            }
        }
    }
}

/// State of the platform portal. Cheap to clone.
#[derive(Debug, Clone)]
pub struct PlatformPortal {
    /// Registry.
    pub db: PlatformDb,
    /// Policies.
    pub authz: Authorizer,
    /// Municipalities get `<slug>.<base_domain>`.
    pub base_domain: String,
    /// Mark cookies `Secure` (behind HTTPS).
    pub secure_cookies: bool,
    /// Believe `X-Forwarded-For` (only behind a proxy that sets it).
    pub trust_forwarded_for: bool,
    pub(crate) views: Arc<Views>,
    guesses: Arc<desk_core::limiter::SignInDelays>,
    /// How links to municipalities' hosts look (scheme, port).
    pub urls: desk_core::PublicUrls,
    /// Password hashing is CPU- and memory-heavy: at most two at once, off the async workers.
    hashing: Arc<tokio::sync::Semaphore>,
}

impl PlatformPortal {
    /// The portal over a registry and its policies.
    pub fn new(
        db: PlatformDb,
        authz: Authorizer,
        base_domain: String,
        secure_cookies: bool,
        trust_forwarded_for: bool,
    ) -> anyhow::Result<Self> {
        Ok(Self {
            db,
            authz,
            base_domain,
            secure_cookies,
            views: Arc::new(Views::new()?),
            trust_forwarded_for,
            guesses: Arc::new(desk_core::limiter::SignInDelays::default()),
            urls: desk_core::PublicUrls {
                scheme: if secure_cookies { "https" } else { "http" }.to_owned(),
                port: None,
            },
            hashing: Arc::new(tokio::sync::Semaphore::new(2)),
        })
    }
}

/// Routes of the platform host.
pub fn platform_router(portal: PlatformPortal) -> Router {
    Router::new()
        .route("/", get(list_municipalities))
        .route("/login", get(show_login).post(sign_in))
        .route("/logout", post(sign_out))
        .route("/municipalities", post(create_municipality))
        .route("/municipalities/new", get(show_onboarding))
        .route("/municipalities/{slug}", get(show_municipality))
        .route("/municipalities/{slug}/status", post(change_status))
        .route("/municipalities/{slug}/domains", post(change_domain))
        .route(
            "/municipalities/{slug}/invitations/{staff_id}",
            post(resend_invitation),
        )
        .route("/provinces", get(list_provinces))
        .route("/dashboard", get(show_dashboard))
        .route("/operators", get(list_operators))
        .route("/api-keys", get(show_keys).post(create_key))
        .route("/api-keys/{id}/revoke", post(revoke_key))
        .with_state(portal.clone())
        .merge(crate::api::platform_api_router(portal))
}

/// The themed Persian page for a domain error (a 5xx never shows its cause).
pub fn error_response(views: &Views, err: &DomainError) -> Response {
    let (status, message) = match err {
        DomainError::NotFound => (StatusCode::NOT_FOUND, "پیدا نشد.".to_owned()),
        DomainError::Forbidden => (StatusCode::FORBIDDEN, "اجازه این کار را ندارید.".to_owned()),
        DomainError::RateLimited { message, .. } => {
            (StatusCode::TOO_MANY_REQUESTS, message.clone())
        }
        DomainError::Conflict(_) => (
            StatusCode::CONFLICT,
            "این تغییر با وضعیت کنونی سازگار نیست.".to_owned(),
        ),
        DomainError::Validation(f) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            f.0.iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        DomainError::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            DomainError::UNAVAILABLE_FA.to_owned(),
        ),
        DomainError::Internal(e) => {
            tracing::error!(error = %e, "platform portal request failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "خطایی رخ داد. لطفاً دوباره تلاش کنید.".to_owned(),
            )
        }
    };
    views.render(status, "error.html.j2", context! { message })
}

/// The peer address of the connection, when the server records it (`desk serve` does).
pub(crate) struct Peer(pub(crate) Option<ConnectInfo<SocketAddr>>);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Peer {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self(
            parts.extensions.get::<ConnectInfo<SocketAddr>>().cloned(),
        ))
    }
}

/// The client address of a portal request (see [`client_address`]).
pub(crate) struct Source(pub(crate) String);

impl axum::extract::FromRequestParts<PlatformPortal> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        portal: &PlatformPortal,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(Self(client_address(
            portal.trust_forwarded_for,
            peer,
            &parts.headers,
        )))
    }
}

/// A form that carries only the session's CSRF token (buttons that change one thing).
#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

fn actor(me: &SignedIn) -> Actor {
    Actor::User {
        id: me.user.id,
        username: me.user.username.clone(),
    }
}

#[derive(Serialize)]
struct UserView<'a> {
    name: &'a str,
    username: &'a str,
    role: &'static str,
    province: Option<&'a str>,
    csrf: &'a str,
}

fn user_view(me: &SignedIn) -> UserView<'_> {
    UserView {
        name: &me.user.display_name,
        username: &me.user.username,
        role: if me.user.kind == "platform_admin" {
            "مدیر سامانه"
        } else {
            "کارشناس استان"
        },
        province: me.user.province_name_fa.as_deref(),
        csrf: &me.csrf,
    }
}

fn status_fa(s: TenantStatus) -> &'static str {
    match s {
        TenantStatus::Active => "فعال",
        TenantStatus::Suspended => "معلق",
        TenantStatus::Archived => "بایگانی",
    }
}

#[derive(Serialize)]
struct TenantRow {
    slug: String,
    name: String,
    name_en: String,
    province: String,
    status: &'static str,
    status_code: &'static str,
}

fn tenant_row(t: &Tenant) -> TenantRow {
    TenantRow {
        slug: t.slug.to_string(),
        name: t.name_fa.clone(),
        name_en: t.name_en.clone(),
        province: t.province_name_fa.clone(),
        status: status_fa(t.status),
        status_code: t.status.as_str(),
    }
}
