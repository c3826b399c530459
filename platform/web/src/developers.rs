//! The developer pages of a municipality's site (`/developers`): how an integrator authenticates,
//! what the GraphQL API and the Open311 endpoints offer, how webhooks are signed, and the limits.
//! The examples name the host the page was asked on, so they work as shown.

use crate::WebState;
use crate::pages::{TenantView, render};
use axum::Router;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, Uri, header};
use axum::response::Response;
use axum::routing::get;
use desk_db::Tenant;
use serde::Serialize;
use std::sync::Arc;

pub(crate) fn developer_routes() -> Router<WebState> {
    Router::new().route("/developers", get(show_developers))
}

#[derive(Debug, Serialize)]
struct DevelopersView<'a> {
    tenant: TenantView<'a>,
    /// The normalised host the page was asked on (`None` when the header was unusable).
    host: Option<String>,
}

/// The developer documentation, with examples addressed to this host.
async fn show_developers(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    // As the dispatcher reads it: the `Host` header, or the authority of an HTTP/2 request.
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
        .and_then(desk_core::Hostname::from_header)
        .map(|h| h.as_str().to_owned());
    render(
        &state,
        StatusCode::OK,
        "developers.html.j2",
        DevelopersView {
            tenant: TenantView::of(&tenant),
            host,
        },
    )
}
