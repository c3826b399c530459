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
        .route("/theme/logo", get(show_logo))
}

/// What the layout needs about the municipality (a view model, never a database row).
#[derive(Debug, Serialize)]
pub(crate) struct TenantView<'a> {
    slug: &'a str,
    name: &'a str,
    province: &'a str,
}

impl<'a> TenantView<'a> {
    pub(crate) fn of(t: &'a Tenant) -> Self {
        Self {
            slug: t.slug.as_str(),
            name: &t.name_fa,
            province: &t.province_name_fa,
        }
    }
}

#[derive(Debug, Serialize)]
struct HomeView<'a> {
    tenant: TenantView<'a>,
    /// The municipality's brand colour (validated `#rrggbb` when saved).
    brand: Option<String>,
    /// Whether it uploaded a logo.
    logo: bool,
}

/// The municipality's logo (type checked from its content at upload; never sniffed again).
async fn show_logo(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
) -> Response {
    let asset = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let asset = desk_db::settings::theme_asset(&mut tx, "logo").await?;
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
    let theme = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let theme = desk_db::settings::get_setting(&mut tx, "theme").await?;
        tx.commit().await?;
        Ok::<_, desk_core::DomainError>(theme)
    }
    .await;
    let theme = theme.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "reading the theme failed; using the default");
        None
    });
    let brand = theme
        .as_ref()
        .and_then(|t| t["brand"].as_str().map(str::to_owned));
    let logo = theme.as_ref().is_some_and(|t| t["logo"] == true);
    render(
        &state,
        StatusCode::OK,
        "home.html.j2",
        HomeView {
            tenant: TenantView::of(&tenant),
            brand,
            logo,
        },
    )
}

#[derive(Debug, Serialize)]
struct ErrorView<'a> {
    tenant: Option<TenantView<'a>>,
    title: &'a str,
    message: &'a str,
}

/// A themed Persian error page.
pub(crate) fn error_page(
    state: &WebState,
    status: StatusCode,
    tenant: Option<&Tenant>,
    title: &str,
    message: &str,
) -> Response {
    render(
        state,
        status,
        "error.html.j2",
        ErrorView {
            tenant: tenant.map(TenantView::of),
            title,
            message,
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
