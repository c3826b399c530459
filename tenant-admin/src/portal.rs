//! The platform portal on `admin.<base-domain>`: sign-in, municipalities (list, search,
//! filters, onboarding, lifecycle, domains), provinces and operators. Persian, right-to-left.

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
                include_str!("../templates/layout.html.j2"),
            ),
            ("login.html.j2", include_str!("../templates/login.html.j2")),
            (
                "municipalities.html.j2",
                include_str!("../templates/municipalities.html.j2"),
            ),
            (
                "onboard.html.j2",
                include_str!("../templates/onboard.html.j2"),
            ),
            (
                "municipality.html.j2",
                include_str!("../templates/municipality.html.j2"),
            ),
            (
                "invitation.html.j2",
                include_str!("../templates/invitation.html.j2"),
            ),
            (
                "provinces.html.j2",
                include_str!("../templates/provinces.html.j2"),
            ),
            (
                "operators.html.j2",
                include_str!("../templates/operators.html.j2"),
            ),
            (
                "api_keys.html.j2",
                include_str!("../templates/api_keys.html.j2"),
            ),
            ("error.html.j2", include_str!("../templates/error.html.j2")),
            (
                "dashboard.html.j2",
                include_str!("../templates/dashboard.html.j2"),
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

// ----- sign-in -----

async fn show_login(State(portal): State<PlatformPortal>) -> Response {
    portal
        .views
        .render(StatusCode::OK, "login.html.j2", context! {})
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn sign_in(
    State(portal): State<PlatformPortal>,
    Source(source): Source,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return portal.views.render(
            StatusCode::BAD_REQUEST,
            "login.html.j2",
            context! { error => "نام کاربری و گذرواژه را وارد کنید." },
        );
    };
    let username = form.username.trim().to_lowercase();
    if let Err(wait) = portal.guesses.check(&username, &source) {
        let error = desk_core::limiter::SignInDelays::message(wait);
        return portal.views.render(
            StatusCode::TOO_MANY_REQUESTS,
            "login.html.j2",
            context! { error, username },
        );
    }
    let found = match portal.db.user_for_sign_in(&username).await {
        Ok(f) => f,
        Err(e) => return error_response(&portal.views, &e),
    };
    // Verify against a fixed hash when the user is unknown, so timing does not tell.
    // Verify against a fixed hash when the user is unknown, so timing does not tell.
    let (user, hash) = match found {
        Some((user, Some(hash))) => (Some(user), Some(hash)),
        _ => (None, DUMMY_HASH.clone()),
    };
    let verified = match (hash, portal.hashing.clone().acquire_owned().await) {
        (Some(hash), Ok(permit)) => {
            let password = form.password.clone();
            tokio::task::spawn_blocking(move || {
                let _permit = permit;
                auth::verify_password(&password, &hash)
            })
            .await
            .unwrap_or(false)
        }
        _ => false,
    };
    let ok = verified && user.is_some();
    portal.guesses.record(&username, &source, ok);
    let Some(user) = user.filter(|_| ok) else {
        tracing::info!(source = %source, "platform sign-in failed");
        return portal.views.render(
            StatusCode::UNAUTHORIZED,
            "login.html.j2",
            context! { error => "نام کاربری یا گذرواژه درست نیست.", username },
        );
    };
    let token = auth::new_token();
    let csrf = auth::new_token();
    if let Err(e) = portal
        .db
        .create_session(user.id, &token, &csrf, auth::SESSION_TTL, &source)
        .await
    {
        return error_response(&portal.views, &e);
    }
    tracing::info!(user.id = user.id, source = %source, "platform sign-in");
    let mut res = Redirect::to("/").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        auth::session_cookie(&token, portal.secure_cookies),
    );
    res
}

/// An argon2 hash of a random string, checked when the username is unknown.
static DUMMY_HASH: std::sync::LazyLock<Option<String>> =
    std::sync::LazyLock::new(|| auth::hash_password(&auth::new_token()).ok());

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn sign_out(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(e) = me.check_csrf(&form.csrf) {
        return error_response(&portal.views, &e);
    }
    if let Err(e) = portal.db.delete_session(&me.token).await {
        return error_response(&portal.views, &e);
    }
    let mut res = Redirect::to("/login").into_response();
    res.headers_mut().insert(
        header::SET_COOKIE,
        auth::session_cookie("", portal.secure_cookies),
    );
    res
}

// ----- municipalities -----

#[derive(Deserialize, Default)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    province: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    created_ms: Option<u64>,
    #[serde(default)]
    reinvited: Option<u8>,
}

async fn list_municipalities(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Query(q): Query<ListQuery>,
) -> Response {
    let filter = TenantFilter {
        province_id: q.province.parse().ok(),
        status: q.status.parse().ok(),
    };
    let tenants =
        match lifecycle::list(&portal.db, &portal.authz, &actor(&me), &filter, Some(&q.q)).await {
            Ok(t) => t,
            Err(e) => return error_response(&portal.views, &e),
        };
    let rows: Vec<TenantRow> = tenants
        .iter()
        .filter(|t| filter.status.is_some() || t.status != TenantStatus::Archived)
        .map(tenant_row)
        .collect();
    let provinces = match portal.db.province_summaries().await {
        Ok(p) => p,
        Err(e) => return error_response(&portal.views, &e),
    };
    let provinces: Vec<_> = provinces
        .iter()
        .map(|p| context! { id => p.id, name => p.name_fa.clone(), selected => q.province == p.id.to_string() })
        .collect();
    portal.views.render(
        StatusCode::OK,
        "municipalities.html.j2",
        context! {
            me => Serde(user_view(&me)), tenants => Serde(rows), provinces, q => q.q.clone(), status => q.status.clone(),
            count => rows_len(&tenants),
        },
    )
}

fn rows_len(t: &[Tenant]) -> String {
    persian_digits(&t.len().to_string())
}

/// Provinces where `actor` may create municipalities.
async fn creatable_provinces(
    portal: &PlatformPortal,
    actor: &Actor,
) -> Result<Vec<(i16, String)>, DomainError> {
    let mut out = Vec::new();
    for p in portal.db.province_summaries().await? {
        if lifecycle::allowed(
            &portal.authz,
            actor,
            Domain::Province(p.id),
            Resource::Tenant,
            Action::Manage,
        )
        .await?
        {
            out.push((p.id, p.name_fa));
        }
    }
    Ok(out)
}

#[derive(Deserialize, Serialize, Default, Clone)]
struct OnboardForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name_fa: String,
    #[serde(default)]
    name_en: String,
    #[serde(default)]
    slug: String,
    #[serde(default)]
    province: String,
    #[serde(default)]
    domains: String,
    #[serde(default)]
    admin_username: String,
    #[serde(default)]
    admin_name: String,
    #[serde(default)]
    admin_mobile: String,
    #[serde(default)]
    theme: String,
}

async fn render_onboarding(
    portal: &PlatformPortal,
    me: &SignedIn,
    form: &OnboardForm,
    errors: &FieldErrors,
    status: StatusCode,
) -> Response {
    let provinces = match creatable_provinces(portal, &actor(me)).await {
        Ok(p) => p,
        Err(e) => return error_response(&portal.views, &e),
    };
    let provinces: Vec<_> = provinces
        .iter()
        .map(|(id, name)| context! { id, name, selected => form.province == id.to_string() })
        .collect();
    let errors: std::collections::BTreeMap<String, String> = errors
        .0
        .iter()
        .map(|e| (e.field.clone(), e.message.clone()))
        .collect();
    portal.views.render(
        status,
        "onboard.html.j2",
        context! {
            me => Serde(user_view(me)), form => Serde(form), provinces, errors => Serde(errors),
            base_domain => portal.base_domain.clone(),
            themes => crate::THEMES.iter().map(|&(name, label)| context! { name, label }).collect::<Vec<_>>(),
        },
    )
}

async fn show_onboarding(State(portal): State<PlatformPortal>, me: SignedIn) -> Response {
    render_onboarding(
        &portal,
        &me,
        &OnboardForm::default(),
        &FieldErrors::default(),
        StatusCode::OK,
    )
    .await
}

/// Validates the onboarding form into a request; every problem gets a Persian message.
fn parse_onboarding(form: &OnboardForm, base_domain: &str) -> Result<Onboarding, FieldErrors> {
    let mut errors = Vec::new();
    let slug_text = if form.slug.trim().is_empty() {
        suggest_slug(&form.name_en, &form.name_fa).unwrap_or_default()
    } else {
        form.slug.trim().to_owned()
    };
    let slug = TenantSlug::parse(&slug_text)
        .map_err(|e| errors.extend(e.0))
        .ok();
    let province_id: Option<i16> = form.province.parse().ok();
    if province_id.is_none() {
        errors.extend(
            FieldErrors::single("province_id", "province_required", "استان را انتخاب کنید.").0,
        );
    }
    let mut domains = Vec::new();
    if let Some(slug) = &slug {
        match Hostname::parse(&format!("{slug}.{base_domain}")) {
            Ok(h) => domains.push(h),
            Err(e) => errors.extend(e.0),
        }
    }
    for raw in form.domains.split_whitespace() {
        match Hostname::parse(raw) {
            Ok(h) => match lifecycle::check_custom_domain(&h, base_domain) {
                Ok(()) => domains.push(h),
                Err(DomainError::Validation(e)) => errors.extend(e.0),
                Err(_) => {}
            },
            Err(e) => errors.extend(e.0),
        }
    }
    let first_admin =
        if form.admin_username.trim().is_empty() && form.admin_mobile.trim().is_empty() {
            None
        } else {
            let username = form.admin_username.trim().to_lowercase();
            let name_ok = (3..=40).contains(&username.len())
                && username
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
            if !name_ok {
                errors.extend(
                    FieldErrors::single(
                        "admin_username",
                        "username_invalid",
                        "نام کاربری باید ۳ تا ۴۰ نویسه از حروف کوچک لاتین، رقم و . _ - باشد.",
                    )
                    .0,
                );
            }
            let mobile = MobileNumber::parse(&form.admin_mobile)
                .map_err(|e| {
                    errors.extend(e.0.into_iter().map(|mut f| {
                        f.field = "admin_mobile".into();
                        f
                    }))
                })
                .ok();
            let display_name = if form.admin_name.trim().is_empty() {
                "مدیر میز خدمت".to_owned()
            } else {
                form.admin_name.trim().to_owned()
            };
            mobile.filter(|_| name_ok).map(|mobile| FirstAdmin {
                username,
                display_name,
                mobile,
            })
        };
    match (slug, province_id, errors.is_empty()) {
        (Some(slug), Some(province_id), true) => Ok(Onboarding {
            theme: if form.theme.is_empty() {
                crate::DEFAULT_THEME.to_owned()
            } else {
                form.theme.clone()
            },
            tenant: NewTenant {
                slug,
                name_fa: form.name_fa.clone(),
                name_en: form.name_en.clone(),
                province_id,
                domains,
            },
            first_admin,
        }),
        _ => Err(FieldErrors(errors)),
    }
}

async fn create_municipality(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Source(source): Source,
    form: Result<Form<OnboardForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return error_response(
            &portal.views,
            &DomainError::Validation(FieldErrors::single(
                "form",
                "form_invalid",
                "فرم درست فرستاده نشد.",
            )),
        );
    };
    if let Err(e) = me.check_csrf(&form.csrf) {
        return error_response(&portal.views, &e);
    }
    let onboarding = match parse_onboarding(&form, &portal.base_domain) {
        Ok(o) => o,
        Err(errors) => {
            return render_onboarding(
                &portal,
                &me,
                &form,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await;
        }
    };
    let started = Instant::now();
    match crate::onboard(&portal.db, &portal.authz, &actor(&me), &source, &onboarding).await {
        Ok((tenant, _)) => {
            let ms = started.elapsed().as_millis();
            Redirect::to(&format!("/municipalities/{}?created_ms={ms}", tenant.slug))
                .into_response()
        }
        Err(DomainError::Validation(errors)) => {
            render_onboarding(
                &portal,
                &me,
                &form,
                &errors,
                StatusCode::UNPROCESSABLE_ENTITY,
            )
            .await
        }
        Err(e) => error_response(&portal.views, &e),
    }
}

async fn show_municipality(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Path(slug): Path<String>,
    Query(q): Query<ListQuery>,
) -> Response {
    let Ok(slug) = TenantSlug::parse(&slug) else {
        return error_response(&portal.views, &DomainError::NotFound);
    };
    let who = actor(&me);
    let tenant = match lifecycle::find(&portal.db, &portal.authz, &who, &slug).await {
        Ok(t) => t,
        Err(e) => return error_response(&portal.views, &e),
    };
    let domains = match portal.db.tenant_domains(tenant.id).await {
        Ok(d) => d,
        Err(e) => return error_response(&portal.views, &e),
    };
    let settings = match municipality_settings(&portal, &tenant).await {
        Ok(s) => s,
        Err(e) => return error_response(&portal.views, &e),
    };
    let can_manage = lifecycle::allowed(
        &portal.authz,
        &who,
        Domain::Tenant(tenant.id),
        Resource::Tenant,
        Action::Manage,
    )
    .await
    .unwrap_or(false);
    let actions: Vec<_> = match tenant.status {
        TenantStatus::Active => vec![("suspend", "تعلیق"), ("archive", "بایگانی")],
        TenantStatus::Suspended => vec![("resume", "ازسرگیری"), ("archive", "بایگانی")],
        TenantStatus::Archived => vec![("restore", "بازگردانی")],
    }
    .into_iter()
    .map(|(code, label)| context! { code, label })
    .collect();
    let domains: Vec<_> = domains
        .iter()
        .enumerate()
        .map(|(i, d)| context! { host => d.as_str(), default => i == 0 })
        .collect();
    portal.views.render(
        StatusCode::OK,
        "municipality.html.j2",
        context! {
            me => Serde(user_view(&me)), tenant => Serde(tenant_row(&tenant)), domains, actions, can_manage,
            settings => Serde(settings),
            created_ms => q.created_ms.map(|m| persian_digits(&m.to_string())),
            reinvited => q.reinvited.is_some(),
        },
    )
}

/// What the operator sees of a municipality's own settings: no personal data, and of SMS
/// credentials only when they were set.
async fn municipality_settings(
    portal: &PlatformPortal,
    tenant: &Tenant,
) -> Result<serde_json::Value, DomainError> {
    use desk_db::settings;
    let mut tx = portal.db.tenant_db().begin(tenant.scope()).await?;
    let theme = settings::get_setting(&mut tx, "theme").await?;
    let contact = settings::get_setting(&mut tx, "contact").await?;
    let accounts = settings::list_sms_accounts(&mut tx).await?;
    // The admins' invitations (the operator's part of going live): names and states only.
    let mut admins = Vec::new();
    let states = desk_db::staff::invitation_states(&mut tx).await?;
    for m in desk_db::staff::list_staff(&mut tx).await? {
        if !m.is_admin || !m.active {
            continue;
        }
        let state = states
            .get(&m.id)
            .copied()
            .unwrap_or(desk_db::staff::InvitationState::NotSent);
        let delivery = desk_db::staff::invitation_delivery(&mut tx, m.id).await?;
        use desk_db::staff::InvitationState as S;
        let state_fa = match state {
            S::Accepted => "پذیرفته (گذرواژه تعیین شده)",
            S::Pending => "فرستاده شده، در انتظار پذیرش",
            S::Expired => "منقضی شده بی‌آنکه پذیرفته شود",
            S::NotSent => "در صف ساخت",
        };
        let sms_fa = match delivery.as_ref().map(|(s, e)| (s.as_str(), e.as_deref())) {
            None => "هنوز پیامکی ساخته نشده",
            Some(("sent", _)) => "پیامک فرستاده شد",
            Some(("queued", _)) => "پیامک در صف ارسال",
            Some((_, Some("no_sms_account"))) => "پیامک فرستاده نشد: شهرداری هنوز حساب پیامک ندارد",
            Some(_) => "پیامک فرستاده نشد",
        };
        let joined = state == S::Accepted;
        admins.push(serde_json::json!({
            "id": m.id, "name": m.display_name, "username": m.username,
            "state": state_fa, "sms": sms_fa, "joined": joined,
            // A joined admin needs the operator only while no SMS can carry a reset code.
            "can_link": !joined || !accounts.iter().any(|a| a.enabled),
        }));
    }
    tx.commit().await?;
    let accounts: Vec<_> = accounts
        .iter()
        .map(|a| {
            let day = desk_core::jalali::JalaliDate::from_gregorian(desk_core::calendar::iran_time(a.credentials_set_at).date());
            serde_json::json!({ "label": a.label, "provider": a.provider, "set_on": persian_digits(&day.to_string()) })
        })
        .collect();
    Ok(
        serde_json::json!({ "theme": theme, "contact": contact, "sms_accounts": accounts,
                           "admins": admins }),
    )
}

/// Sends a municipality admin who has not joined yet a new invitation (the old link stops
/// working at once), audited on the platform.
async fn resend_invitation(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Path((slug, staff_id)): Path<(String, i64)>,
    Source(source): Source,
    form: Result<Form<CsrfForm>, FormRejection>,
) -> Response {
    let result = async {
        let Ok(Form(form)) = form else {
            return Err(DomainError::NotFound);
        };
        me.check_csrf(&form.csrf)?;
        let slug = TenantSlug::parse(&slug).map_err(|_| DomainError::NotFound)?;
        let who = actor(&me);
        let tenant = lifecycle::find(&portal.db, &portal.authz, &who, &slug).await?;
        if !lifecycle::allowed(
            &portal.authz,
            &who,
            Domain::Tenant(tenant.id),
            Resource::Tenant,
            Action::Manage,
        )
        .await?
        {
            return Err(DomainError::Forbidden);
        }
        let host = portal
            .db
            .tenant_domains(tenant.id)
            .await?
            .into_iter()
            .next()
            .ok_or(DomainError::NotFound)?;
        let mut tx = portal.db.tenant_db().begin(tenant.scope()).await?;
        let member = desk_db::staff::staff_by_id(&mut tx, staff_id)
            .await?
            .filter(|m| m.is_admin && m.active)
            .ok_or(DomainError::NotFound)?;
        let sms_ready = desk_db::settings::list_sms_accounts(&mut tx)
            .await?
            .iter()
            .any(|a| a.enabled);
        if member.joined {
            // An admin who joined but cannot sign in (no SMS yet for the second step, or a
            // forgotten password with no SMS to reset it): a one-time sign-in link, handed over
            // in person. With SMS working they reset their password themselves.
            if sms_ready {
                return Err(DomainError::Conflict("the admin can reset by SMS".into()));
            }
            let link = desk_db::staff::issue_sign_in_link(&mut tx, member.id, &host, &portal.urls)
                .await?;
            tx.commit().await?;
            portal
                .db
                .audit(desk_db::AuditEntry {
                    actor: &who.label(),
                    action: "tenant.admin_sign_in_link_shown",
                    tenant: Some(tenant.id),
                    source: &source,
                    detail: serde_json::json!({ "slug": slug.as_str(), "username": member.username }),
                })
                .await?;
            return Ok((tenant, member, Some((link, true))));
        }
        desk_db::staff::revoke_invitations(&mut tx, member.id).await?;
        // Without an SMS account the invitation cannot travel by SMS: the operator sees the
        // link once, to hand it to the admin in person (the audit line says so, not the link).
        let handed = if sms_ready {
            desk_db::jobs::enqueue(
                &mut tx,
                &desk_core::jobs::WelcomeStaff::new(tenant.id, member.id),
            )
            .await?;
            None
        } else {
            Some((
                desk_db::staff::issue_invitation(&mut tx, member.id, &host, &portal.urls).await?,
                false,
            ))
        };
        tx.commit().await?;
        portal
            .db
            .audit(desk_db::AuditEntry {
                actor: &who.label(),
                action: if handed.is_some() {
                    "tenant.admin_invitation_shown"
                } else {
                    "tenant.admin_reinvite"
                },
                tenant: Some(tenant.id),
                source: &source,
                detail: serde_json::json!({ "slug": slug.as_str(), "username": member.username }),
            })
            .await?;
        Ok((tenant, member, handed))
    }
    .await;
    match result {
        Ok((tenant, _, None)) => {
            Redirect::to(&format!("/municipalities/{}?reinvited=1", tenant.slug)).into_response()
        }
        Ok((tenant, member, Some((link, sign_in)))) => {
            let mut res = portal.views.render(
                StatusCode::OK,
                "invitation.html.j2",
                context! {
                    me => Serde(user_view(&me)), tenant_name => tenant.name_fa.clone(),
                    slug => tenant.slug.as_str(), admin_name => member.display_name,
                    username => member.username, link, sign_in,
                },
            );
            // Shown once: never kept by a cache or the back button.
            res.headers_mut().insert(
                header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            res
        }
        Err(e) => error_response(&portal.views, &e),
    }
}

#[derive(Deserialize)]
struct StatusForm {
    #[serde(default)]
    csrf: String,
    change: String,
}

async fn change_status(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Path(slug): Path<String>,
    Source(source): Source,
    form: Result<Form<StatusForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return error_response(&portal.views, &DomainError::NotFound);
    };
    if let Err(e) = me.check_csrf(&form.csrf) {
        return error_response(&portal.views, &e);
    }
    let change = match form.change.as_str() {
        "suspend" => Lifecycle::Suspend,
        "resume" => Lifecycle::Resume,
        "archive" => Lifecycle::Archive,
        "restore" => Lifecycle::Restore,
        _ => return error_response(&portal.views, &DomainError::NotFound),
    };
    let Ok(slug) = TenantSlug::parse(&slug) else {
        return error_response(&portal.views, &DomainError::NotFound);
    };
    match lifecycle::change_status(
        &portal.db,
        &portal.authz,
        &actor(&me),
        &slug,
        change,
        &source,
    )
    .await
    {
        Ok(t) => Redirect::to(&format!("/municipalities/{}", t.slug)).into_response(),
        Err(e) => error_response(&portal.views, &e),
    }
}

#[derive(Deserialize)]
struct DomainForm {
    #[serde(default)]
    csrf: String,
    op: String,
    host: String,
}

async fn change_domain(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Path(slug): Path<String>,
    Source(source): Source,
    form: Result<Form<DomainForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return error_response(&portal.views, &DomainError::NotFound);
    };
    if let Err(e) = me.check_csrf(&form.csrf) {
        return error_response(&portal.views, &e);
    }
    let (Ok(slug), host) = (TenantSlug::parse(&slug), Hostname::parse(&form.host)) else {
        return error_response(&portal.views, &DomainError::NotFound);
    };
    let host = match host {
        Ok(h) => h,
        Err(e) => return error_response(&portal.views, &DomainError::Validation(e)),
    };
    match lifecycle::change_domain(
        &portal.db,
        &portal.authz,
        &actor(&me),
        &slug,
        if form.op == "add" {
            DomainChange::Add(&host)
        } else {
            DomainChange::Remove(&host)
        },
        &portal.base_domain,
        &source,
    )
    .await
    {
        Ok(()) => Redirect::to(&format!("/municipalities/{slug}")).into_response(),
        Err(e) => error_response(&portal.views, &e),
    }
}

// ----- dashboard -----

#[derive(Debug, Deserialize, Default)]
struct DashboardQuery {
    #[serde(default)]
    period: String,
    #[serde(default)]
    province: String,
}

fn fmt1(x: Option<f64>) -> String {
    x.map_or_else(|| "—".to_owned(), |v| persian_digits(&format!("{v:.1}")))
}

fn fmt0(x: f64) -> String {
    persian_digits(&format!("{x:.0}"))
}

/// `▲`/`▼` against the province median (higher is better for these figures), else empty.
fn versus(value: Option<f64>, median: Option<f64>) -> &'static str {
    match (value, median) {
        (Some(v), Some(m)) if v > m + 1e-9 => "▲",
        (Some(v), Some(m)) if v + 1e-9 < m => "▼",
        _ => "",
    }
}

fn kpi_view(
    k: &crate::dashboard::Kpis,
    median: Option<&crate::dashboard::Kpis>,
) -> minijinja::Value {
    let overall = k.axes[5];
    context! {
        requests => fmt0(k.requests), in_person => fmt1(k.in_person), on_time => fmt1(k.on_time),
        on_time_vs => versus(k.on_time, median.and_then(|m| m.on_time)),
        overdue => fmt0(k.overdue), days => fmt1(k.days), declared => fmt1(k.declared),
        overall => fmt1(overall), overall_vs => versus(overall, median.and_then(|m| m.axes[5])),
        axes => k.axes.iter().map(|a| fmt1(*a)).collect::<Vec<_>>(),
        surveys => fmt0(k.surveys), sms => fmt1(k.sms),
    }
}

async fn show_dashboard(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Query(q): Query<DashboardQuery>,
) -> Response {
    let today = desk_core::calendar::today_in_iran();
    let period = if q.period.trim().is_empty() {
        desk_core::report::Period::half_of(today)
    } else {
        match desk_core::report::Period::parse(&q.period) {
            Some(p) => p,
            None => {
                return error_response(
                    &portal.views,
                    &DomainError::Validation(FieldErrors::single(
                        "period",
                        "period",
                        "دوره را به شکل ۱۴۰۵-۰۹، ۱۴۰۵-h2 یا ۱۴۰۵ بدهید.",
                    )),
                );
            }
        }
    };
    let province: Option<i16> = q.province.parse().ok();
    let loaded = async {
        let board =
            crate::dashboard::dashboard(&portal.db, &portal.authz, &actor(&me), province, period)
                .await?;
        let provinces = portal.db.province_summaries().await?;
        Ok::<_, DomainError>((board, provinces))
    }
    .await;
    let (board, provinces) = match loaded {
        Ok(x) => x,
        Err(e) => return error_response(&portal.views, &e),
    };
    let province_name = |id: i16| {
        provinces
            .iter()
            .find(|p| p.id == id)
            .map_or_else(String::new, |p| p.name_fa.clone())
    };
    let rows: Vec<minijinja::Value> = board
        .rows
        .iter()
        .map(|r| {
            context! {
                slug => r.slug.clone(), name => r.name_fa.clone(), province => province_name(r.province_id),
                k => kpi_view(&r.kpis, board.province_medians.get(&r.province_id)),
            }
        })
        .collect();
    let medians: Vec<minijinja::Value> = board
        .province_medians
        .iter()
        .map(|(id, k)| context! { province => province_name(*id), k => kpi_view(k, None) })
        .collect();
    let choices: Vec<minijinja::Value> =
        std::iter::successors(Some(desk_core::report::Period::half_of(today)), |p| {
            Some(p.previous())
        })
        .take(6)
        .chain(
            std::iter::successors(Some(desk_core::report::Period::month_of(today)), |p| {
                Some(p.previous())
            })
            .take(12),
        )
        .map(|p| context! { key => p.key(), label => p.label_fa(), selected => p == period })
        .collect();
    let province_choices: Vec<minijinja::Value> = provinces
        .iter()
        .filter(|p| p.tenants > 0)
        .map(|p| context! { id => p.id, name => p.name_fa.clone(), selected => province == Some(p.id) })
        .collect();
    let axes: Vec<&str> = desk_core::survey::AXES.iter().map(|a| a.name_fa).collect();
    portal.views.render(
        StatusCode::OK,
        "dashboard.html.j2",
        context! {
            me => Serde(user_view(&me)), period => period.key(), period_label => period.label_fa(),
            choices, provinces => province_choices, rows, medians, axes,
            total => kpi_view(&board.total, None), count => persian_digits(&board.rows.len().to_string()),
        },
    )
}

// ----- provinces and operators -----

async fn list_provinces(State(portal): State<PlatformPortal>, me: SignedIn) -> Response {
    match portal.db.province_summaries().await {
        Ok(p) => {
            let rows: Vec<_> = p
                .iter()
                .map(|p| context! { id => p.id, code => p.code.clone(), name => p.name_fa.clone(), tenants => persian_digits(&p.tenants.to_string()) })
                .collect();
            portal.views.render(
                StatusCode::OK,
                "provinces.html.j2",
                context! { me => Serde(user_view(&me)), provinces => rows },
            )
        }
        Err(e) => error_response(&portal.views, &e),
    }
}

async fn list_operators(State(portal): State<PlatformPortal>, me: SignedIn) -> Response {
    // Who works where is platform-wide information: platform admins only.
    let allowed = lifecycle::allowed(
        &portal.authz,
        &actor(&me),
        Domain::Platform,
        Resource::Tenant,
        Action::Manage,
    )
    .await
    .unwrap_or(false);
    if !allowed {
        return error_response(&portal.views, &DomainError::Forbidden);
    }
    match portal.db.list_users().await {
        Ok(users) => {
            let rows: Vec<_> = users
                .iter()
                .map(|u| context! {
                    username => u.username.clone(), name => u.display_name.clone(),
                    role => if u.kind == "platform_admin" { "مدیر سامانه" } else { "کارشناس استان" },
                    province => u.province_name_fa.clone(),
                })
                .collect();
            portal.views.render(
                StatusCode::OK,
                "operators.html.j2",
                context! { me => Serde(user_view(&me)), users => rows },
            )
        }
        Err(e) => error_response(&portal.views, &e),
    }
}

// ----- platform API keys -----

/// The signed-in user's own API keys (for provincial systems): each acts as this user, with
/// the same role and province.
async fn keys_page(portal: &PlatformPortal, me: &SignedIn, new_key: Option<&str>) -> Response {
    match portal.db.platform_keys(me.user.id).await {
        Ok(keys) => {
            let now = chrono::Utc::now();
            let day = |d: chrono::DateTime<chrono::Utc>| {
                desk_core::jalali::JalaliDate::persian_of(desk_core::calendar::iran_time(d).date())
            };
            let rows: Vec<_> = keys
                .iter()
                .map(|k| {
                    context! {
                        id => k.id, name => k.name.clone(), prefix => k.prefix.clone(),
                        created => day(k.created_at), expires => k.expires_at.map(day),
                        last_used => k.last_used_at.map(day),
                        live => k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > now),
                    }
                })
                .collect();
            portal.views.render(
                if new_key.is_some() {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                "api_keys.html.j2",
                context! { me => Serde(user_view(me)), keys => rows, new_key => new_key },
            )
        }
        Err(e) => error_response(&portal.views, &e),
    }
}

async fn show_keys(State(portal): State<PlatformPortal>, me: SignedIn) -> Response {
    keys_page(&portal, &me, None).await
}

#[derive(Debug, Deserialize)]
struct KeyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    /// Days until it expires; empty for never.
    #[serde(default)]
    days: String,
}

async fn create_key(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Form(form): Form<KeyForm>,
) -> Response {
    let made = async {
        me.check_csrf(&form.csrf)?;
        let expires = match desk_core::mobile::ascii_digits(form.days.trim()).as_str() {
            "" => None,
            d => Some(
                chrono::Utc::now()
                    + chrono::Duration::days(
                        d.parse::<i64>()
                            .ok()
                            .filter(|n| (1..=3650).contains(n))
                            .ok_or_else(|| {
                                DomainError::from(desk_core::FieldErrors::single(
                                    "days",
                                    "days",
                                    "اعتبار کلید را بین ۱ تا ۳۶۵۰ روز وارد کنید یا خالی بگذارید.",
                                ))
                            })?,
                    ),
            ),
        };
        let (key, _) = portal
            .db
            .create_platform_key(me.user.id, &form.name, expires)
            .await?;
        Ok::<_, DomainError>(key)
    }
    .await;
    match made {
        Ok(key) => keys_page(&portal, &me, Some(&key)).await,
        Err(e) => error_response(&portal.views, &e),
    }
}

async fn revoke_key(
    State(portal): State<PlatformPortal>,
    me: SignedIn,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let done = async {
        me.check_csrf(&form.csrf)?;
        portal.db.revoke_platform_key(me.user.id, id).await
    }
    .await;
    match done {
        Ok(()) => Redirect::to("/api-keys").into_response(),
        Err(e) => error_response(&portal.views, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form() -> OnboardForm {
        OnboardForm {
            name_fa: "شهرداری نجف‌آباد".into(),
            name_en: "Najafabad Municipality".into(),
            province: "4".into(),
            ..OnboardForm::default()
        }
    }

    #[test]
    fn the_slug_is_suggested_from_the_name() {
        let o = parse_onboarding(&form(), "miz.ir").unwrap();
        assert_eq!(o.tenant.slug.as_str(), "najafabad");
        assert_eq!(o.tenant.domains[0].as_str(), "najafabad.miz.ir");
        assert!(o.first_admin.is_none());
    }

    #[test]
    fn every_bad_field_gets_a_persian_message() {
        let bad = OnboardForm {
            slug: "admin".into(),
            province: "".into(),
            domains: "good.example bad_domain".into(),
            admin_username: "A".into(),
            admin_mobile: "123".into(),
            ..form()
        };
        let errors = parse_onboarding(&bad, "miz.ir").unwrap_err();
        let fields: Vec<&str> = errors.0.iter().map(|e| e.field.as_str()).collect();
        for f in [
            "slug",
            "province_id",
            "domain",
            "admin_username",
            "admin_mobile",
        ] {
            assert!(fields.contains(&f), "{f} in {fields:?}");
        }
        assert!(
            errors
                .0
                .iter()
                .all(|e| desk_core::text::is_persian_text(&e.message)),
            "{errors}"
        );
    }
}
