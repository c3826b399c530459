//! Pages of a municipality's site and the themed error pages.

use crate::WebState;
use axum::Router;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use desk_db::Tenant;
use serde::Serialize;
use std::sync::Arc;

pub(crate) fn tenant_routes() -> Router<WebState> {
    Router::new()
        .route("/", get(show_home))
        .route("/theme/logo", get(|s, t| show_asset(s, t, "logo")))
        .route("/theme/header", get(|s, t| show_asset(s, t, "header")))
        .route("/services", get(list_services))
        .route("/services/{code}", get(show_service))
        .route("/faq", get(show_faq))
        .route("/charter", get(show_charter))
        .route("/sla", get(show_sla))
        .route("/static/fonts/vazirmatn-variable.woff2", get(font))
        .route("/static/fonts/OFL.txt", get(font_licence))
}

/// What the layout needs about the municipality (a view model, never a database row).
#[derive(Debug, Serialize)]
pub(crate) struct TenantView<'a> {
    slug: &'a str,
    name: &'a str,
    province: &'a str,
    /// The theme the page renders with (the renderer picks its templates by it).
    theme: &'a str,
    /// Brand colour (`#rrggbb`).
    brand: &'a str,
    /// Whether `/theme/logo` has a logo.
    logo: bool,
    /// Whether `/theme/header` has a header image.
    header: bool,
}

impl<'a> TenantView<'a> {
    pub(crate) fn of(t: &'a Tenant) -> Self {
        Self {
            slug: t.slug.as_str(),
            name: &t.name_fa,
            province: &t.province_name_fa,
            theme: &t.design.theme,
            brand: t
                .design
                .brand
                .as_deref()
                .unwrap_or(desk_core::design::DEFAULT_BRAND),
            logo: t.design.logo,
            header: t.design.header,
        }
    }
}

#[derive(Debug, Serialize)]
struct HomeView<'a> {
    tenant: TenantView<'a>,
    /// Service categories (code, Persian label).
    categories: &'static [(&'static str, &'static str)],
}

#[derive(Debug, serde::Deserialize, Default)]
struct ServiceQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    category: String,
}

fn duration_fa(days: u32) -> String {
    if days == 0 {
        "فوری".to_owned()
    } else {
        format!(
            "{} روز کاری",
            desk_core::text::persian_digits(&days.to_string())
        )
    }
}

/// A card as the citizen pages show it.
fn card_view(card: &desk_core::catalog::ServiceCard) -> serde_json::Value {
    serde_json::json!({
        "card": card,
        "category_label": desk_core::catalog::category_label(&card.category),
        "duration": duration_fa(card.duration_days),
        "visits": card.in_person_visits.map(|v| desk_core::text::persian_digits(&v.to_string())),
    })
}

async fn list_services(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    axum::extract::Query(q): axum::extract::Query<ServiceQuery>,
) -> Response {
    let folded = desk_core::text::normalize_for_search(&q.q);
    let category = Some(q.category.as_str()).filter(|c| !c.is_empty());
    let found = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let found = desk_db::catalog::published_services(&mut tx, category, Some(&folded)).await?;
        tx.commit().await?;
        Ok::<_, desk_core::DomainError>(found)
    }
    .await;
    match found {
        Ok(services) => {
            let items: Vec<_> = services.iter().map(|s| card_view(&s.card)).collect();
            let categories: Vec<_> = desk_core::catalog::CATEGORIES
                .iter()
                .map(|(code, label)| serde_json::json!({ "code": code, "label": label, "selected": *code == q.category }))
                .collect();
            render(
                &state,
                StatusCode::OK,
                "services.html.j2",
                serde_json::json!({
                    "tenant": TenantView::of(&tenant), "services": items, "q": q.q, "categories": categories,
                    "count": desk_core::text::persian_digits(&services.len().to_string()),
                }),
            )
        }
        Err(e) => internal_page(&state, &tenant, &e),
    }
}

async fn show_service(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    axum::extract::Path(code): axum::extract::Path<String>,
) -> Response {
    // A card holds nothing personal: the same bytes for every visitor of this municipality's
    // design, so it is kept for a moment (see `PageCache`).
    let d = &tenant.design;
    let key = format!(
        "{}:{code}:{}:{}:{}:{}",
        tenant.id,
        d.theme,
        d.brand.as_deref().unwrap_or_default(),
        d.logo,
        d.overrides
    );
    if let Some(html) = state.pages.get(&key) {
        return (StatusCode::OK, Html(html)).into_response();
    }
    let found = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let found = desk_db::catalog::published_service(&mut tx, &code).await?;
        tx.commit().await?;
        Ok::<_, desk_core::DomainError>(found)
    }
    .await;
    match found {
        Ok(Some(service)) => {
            let view = serde_json::json!({ "tenant": TenantView::of(&tenant), "s": card_view(&service.card) });
            match site_html(&state, &tenant, "service.html.j2", &view).await {
                Ok(html) => {
                    state.pages.put(key, &html);
                    (StatusCode::OK, Html(html)).into_response()
                }
                Err(_) => render(&state, StatusCode::OK, "service.html.j2", view),
            }
        }
        Ok(None) => error_page(
            &state,
            StatusCode::NOT_FOUND,
            Some(&tenant),
            "خدمت پیدا نشد",
            "این خدمت در میز خدمت این شهرداری نیست. فهرست خدمات را ببینید.",
        ),
        Err(e) => internal_page(&state, &tenant, &e),
    }
}

/// The published services, for the pages built from the whole catalog.
async fn published(
    state: &WebState,
    tenant: &Tenant,
) -> Result<Vec<desk_db::catalog::PublishedService>, desk_core::DomainError> {
    let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
    let found = desk_db::catalog::published_services(&mut tx, None, None).await?;
    tx.commit().await?;
    Ok(found)
}

/// Frequently asked questions of every service, searchable (Persian-normalized).
async fn show_faq(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    axum::extract::Query(q): axum::extract::Query<ServiceQuery>,
) -> Response {
    match faq_view(&state, &tenant, &q.q).await {
        Ok(view) => render_site(&state, &tenant, StatusCode::OK, "faq.html.j2", view).await,
        Err(e) => internal_page(&state, &tenant, &e),
    }
}

async fn faq_view(
    state: &WebState,
    tenant: &Tenant,
    q: &str,
) -> Result<serde_json::Value, desk_core::DomainError> {
    let services = published(state, tenant).await?;
    let needle = desk_core::text::normalize_for_search(q);
    let groups: Vec<_> = services
        .iter()
        .filter_map(|s| {
            let faq: Vec<_> = s.card.faq.iter().filter(|f| f.matches(&needle)).collect();
            (!faq.is_empty()).then(
                || serde_json::json!({ "code": s.card.code, "title": s.card.title_fa, "faq": faq }),
            )
        })
        .collect();
    let general = {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let general = desk_db::catalog::general_faq(&mut tx).await?;
        tx.commit().await?;
        general
    };
    let general: Vec<_> = general.into_iter().filter(|f| f.matches(&needle)).collect();
    Ok(
        serde_json::json!({ "tenant": TenantView::of(tenant), "general": general, "groups": groups, "q": q }),
    )
}

/// The citizens' rights at this desk.
async fn show_charter(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
) -> Response {
    let view = serde_json::json!({ "tenant": TenantView::of(&tenant) });
    render_site(&state, &tenant, StatusCode::OK, "charter.html.j2", view).await
}

/// The service-level statement: each service's declared duration, and what the desk promises.
async fn show_sla(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
) -> Response {
    match sla_view(&state, &tenant).await {
        Ok(view) => render_site(&state, &tenant, StatusCode::OK, "sla.html.j2", view).await,
        Err(e) => internal_page(&state, &tenant, &e),
    }
}

async fn sla_view(
    state: &WebState,
    tenant: &Tenant,
) -> Result<serde_json::Value, desk_core::DomainError> {
    let services = published(state, tenant).await?;
    let rows: Vec<_> = services.iter().map(|s| card_view(&s.card)).collect();
    Ok(serde_json::json!({ "tenant": TenantView::of(tenant), "services": rows }))
}

fn home_view(tenant: &Tenant) -> serde_json::Value {
    serde_json::json!(HomeView {
        tenant: TenantView::of(tenant),
        categories: desk_core::catalog::CATEGORIES,
    })
}

/// The view of an overridable page, for previewing an override (`_theme.html.j2` previews on
/// the home page).
pub(crate) async fn overridable_view(
    state: &WebState,
    tenant: &Tenant,
    name: &str,
) -> Result<(&'static str, serde_json::Value), desk_core::DomainError> {
    Ok(match name {
        "charter.html.j2" => (
            "charter.html.j2",
            serde_json::json!({ "tenant": TenantView::of(tenant) }),
        ),
        "sla.html.j2" => ("sla.html.j2", sla_view(state, tenant).await?),
        "faq.html.j2" => ("faq.html.j2", faq_view(state, tenant, "").await?),
        _ => ("home.html.j2", home_view(tenant)),
    })
}

/// Renders a page of a municipality's site: with its published template overrides in their
/// sandbox when it has any (a failing override falls back to the theme's page, logged), else
/// with its theme.
pub(crate) async fn render_site(
    state: &WebState,
    tenant: &Tenant,
    status: StatusCode,
    name: &str,
    view: serde_json::Value,
) -> Response {
    match site_html(state, tenant, name, &view).await {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => render(state, status, name, view),
    }
}

/// The HTML of a page of a municipality's site (see [`render_site`]).
async fn site_html(
    state: &WebState,
    tenant: &Tenant,
    name: &str,
    view: &serde_json::Value,
) -> Result<String, minijinja::Error> {
    let version = tenant.design.overrides;
    if version <= 0 {
        return state.themes.render(name, view);
    }
    let env = match state.themes.cached(tenant.id.0, version) {
        Some(env) => env,
        None => {
            let sources = async {
                let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
                let sources = desk_db::overrides::published(&mut tx).await?;
                tx.commit().await?;
                Ok::<_, desk_core::DomainError>(sources)
            }
            .await;
            match sources {
                Ok(sources) => {
                    let env = Arc::new(state.themes.sandbox(&tenant.design.theme, sources));
                    state.themes.remember(tenant.id.0, version, env.clone());
                    env
                }
                Err(e) => {
                    tracing::warn!(error = %e, "loading template overrides failed; using the theme");
                    return state.themes.render(name, view);
                }
            }
        }
    };
    match state.themes.render_overridden(&env, name, view) {
        Ok(html) => Ok(html),
        Err(e) => {
            tracing::warn!(template = name, error = %e, "a template override failed; using the theme");
            state.themes.render(name, view)
        }
    }
}

/// Any path the site does not have: a themed Persian page (a JSON error under the API paths),
/// never an empty body the browser would show as its own English error.
pub(crate) async fn not_found(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    uri: axum::http::Uri,
) -> Response {
    let path = uri.path();
    if ["/graphql", "/open311", "/api"]
        .iter()
        .any(|p| path.starts_with(p))
    {
        let body = serde_json::json!({
            "errors": [{ "message": "not found", "extensions": { "code": "NOT_FOUND" } }]
        });
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    error_page_back(
        &state,
        StatusCode::NOT_FOUND,
        Some(&tenant),
        "صفحه پیدا نشد",
        "نشانی‌ای که باز کردید در میز خدمت این شهرداری نیست؛ شاید نادرست نوشته شده یا صفحه جابه‌جا شده است. \
         از فهرست خدمات یا پیگیری درخواست شروع کنید.",
        Some(("/services", "فهرست خدمات")),
    )
}

/// Vazirmatn (OFL), embedded so pages never depend on a CDN.
async fn font() -> Response {
    (
        [
            (axum::http::header::CONTENT_TYPE, "font/woff2"),
            (
                axum::http::header::CACHE_CONTROL,
                "public, max-age=31536000, immutable",
            ),
        ],
        &include_bytes!("../../../themes/base/static/fonts/vazirmatn-variable.woff2")[..],
    )
        .into_response()
}

async fn font_licence() -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; charset=utf-8",
        )],
        include_str!("../../../themes/base/static/fonts/OFL.txt"),
    )
        .into_response()
}

fn internal_page(state: &WebState, tenant: &Tenant, e: &desk_core::DomainError) -> Response {
    tracing::error!(error = %e, "citizen page failed");
    error_page(
        state,
        StatusCode::INTERNAL_SERVER_ERROR,
        Some(tenant),
        "خطای سامانه",
        "خطایی رخ داد. لطفاً دوباره تلاش کنید.",
    )
}

/// The municipality's logo (type checked from its content at upload; never sniffed again).
/// A theme asset of the municipality (`logo`, `header`).
async fn show_asset(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    name: &'static str,
) -> Response {
    let asset = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let asset = desk_db::settings::theme_asset(&mut tx, name).await?;
        tx.commit().await?;
        Ok::<_, desk_core::DomainError>(asset)
    }
    .await;
    match asset {
        Ok(Some((content_type, bytes))) => (
            [
                (axum::http::header::CONTENT_TYPE, content_type),
                (
                    axum::http::header::X_CONTENT_TYPE_OPTIONS,
                    "nosniff".to_owned(),
                ),
                (
                    axum::http::header::CACHE_CONTROL,
                    "public, max-age=300".to_owned(),
                ),
            ],
            bytes,
        )
            .into_response(),
        Ok(None) => StatusCode::NOT_FOUND.into_response(),
        Err(e) => {
            tracing::error!(error = %e, "reading the logo failed");
            StatusCode::INTERNAL_SERVER_ERROR.into_response()
        }
    }
}

async fn show_home(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
) -> Response {
    render_site(
        &state,
        &tenant,
        StatusCode::OK,
        "home.html.j2",
        home_view(&tenant),
    )
    .await
}

#[derive(Debug, Serialize)]
struct ErrorView<'a> {
    tenant: Option<TenantView<'a>>,
    title: &'a str,
    message: &'a str,
    /// Where to go on from here (path, label).
    back: Option<(&'a str, &'a str)>,
}

/// A themed Persian error page.
pub(crate) fn error_page(
    state: &WebState,
    status: StatusCode,
    tenant: Option<&Tenant>,
    title: &str,
    message: &str,
) -> Response {
    error_page_back(state, status, tenant, title, message, None)
}

/// A themed Persian error page with a way on (`back`: path and label).
pub(crate) fn error_page_back(
    state: &WebState,
    status: StatusCode,
    tenant: Option<&Tenant>,
    title: &str,
    message: &str,
    back: Option<(&str, &str)>,
) -> Response {
    render(
        state,
        status,
        "error.html.j2",
        ErrorView {
            tenant: tenant.map(TenantView::of),
            title,
            message,
            back,
        },
    )
}

/// Renders a template; a rendering failure is logged and becomes a plain 500 that shows no cause.
pub(crate) fn render(
    state: &WebState,
    status: StatusCode,
    name: &str,
    view: impl Serialize,
) -> Response {
    match state.themes.render(name, view) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(template = name, error = %e, "template rendering failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><html lang=\"fa\" dir=\"rtl\"><meta charset=\"utf-8\"><title>خطا</title><p>خطایی رخ داد. لطفاً دوباره تلاش کنید.</p></html>"),
            )
                .into_response()
        }
    }
}
