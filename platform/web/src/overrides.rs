//! Template overrides in the staff portal: the admin edits a draft of an overridable page
//! (checked: no script, no event handlers, no unescaped output, valid syntax), previews the site
//! with the drafts in the same sandbox the site uses, and publishes them (an empty draft goes
//! back to the theme's page).

use crate::WebState;
use crate::pages::{TenantView, overridable_view, render};
use crate::staff::{StaffSession, failure};
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use desk_authz::{Action, Resource};
use desk_core::overrides::{OVERRIDABLE, check_source, is_overridable};
use desk_core::{DomainError, FieldErrors};
use serde::Deserialize;
use serde_json::json;

pub(crate) fn override_routes() -> Router<WebState> {
    Router::new()
        .route("/staff/settings/templates", get(show_editor))
        .route("/staff/settings/templates/publish", post(publish))
        .route("/staff/settings/templates/{name}", post(save_draft))
        .route("/staff/settings/templates/{name}/preview", get(preview))
}

async fn show_editor(State(state): State<WebState>, me: StaffSession) -> Response {
    let listed = async {
        me.require_on(&state, Resource::Settings, Action::Update)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let rows = desk_db::overrides::list(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, DomainError>(rows)
    }
    .await;
    match listed {
        Ok(rows) => {
            let theme = &me.tenant.design.theme;
            let pages: Vec<_> = OVERRIDABLE
                .iter()
                .map(|(name, label)| {
                    let row = rows.iter().find(|r| r.name == *name);
                    let draft = row.and_then(|r| r.draft.clone());
                    let published = row.and_then(|r| r.published.clone());
                    let source = draft
                        .clone()
                        .or_else(|| published.clone())
                        .or_else(|| state.themes.source(theme, name))
                        .unwrap_or_default();
                    json!({
                        "name": name, "label": label, "source": source,
                        "draft": draft.is_some(), "published": published.is_some(),
                    })
                })
                .collect();
            render(
                &state,
                StatusCode::OK,
                "staff_templates.html.j2",
                json!({ "tenant": TenantView::of(&me.tenant), "pages": pages, "csrf": me.csrf(),
                        "pending": rows.iter().any(|r| r.draft.is_some()) }),
            )
        }
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

#[derive(Debug, Deserialize)]
struct DraftForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    source: String,
}

async fn save_draft(
    State(state): State<WebState>,
    me: StaffSession,
    Path(name): Path<String>,
    Form(form): Form<DraftForm>,
) -> Response {
    let saved = async {
        me.csrf_ok(&form.csrf)?;
        me.require_on(&state, Resource::Settings, Action::Update)
            .await?;
        if !is_overridable(&name) {
            return Err(DomainError::NotFound);
        }
        let source = form.source.replace("\r\n", "\n");
        if !source.trim().is_empty() {
            check_source(&name, &source)?;
        }
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        desk_db::overrides::save_draft(&mut tx, &name, Some(source.trim_end())).await?;
        tx.commit().await
    }
    .await;
    match saved {
        Ok(()) => {
            Redirect::to(&format!("/staff/settings/templates/{name}/preview")).into_response()
        }
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

/// The site's page with every draft in place, rendered in the sandbox the site uses. A draft
/// that fails (a runaway loop spends its fuel, a missing variable) says why instead.
async fn preview(
    State(state): State<WebState>,
    me: StaffSession,
    Path(name): Path<String>,
) -> Response {
    let prepared = async {
        me.require_on(&state, Resource::Settings, Action::Update)
            .await?;
        if !is_overridable(&name) {
            return Err(DomainError::NotFound);
        }
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let sources = desk_db::overrides::preview(&mut tx).await?;
        tx.commit().await?;
        let (page, view) = overridable_view(&state, &me.tenant, &name).await?;
        Ok::<_, DomainError>((sources, page, view))
    }
    .await;
    let (sources, page, view) = match prepared {
        Ok(p) => p,
        Err(e) => return failure(&state, &me.tenant, &e),
    };
    let sandbox = state.themes.sandbox(&me.tenant.design.theme, sources);
    match state.themes.render_overridden(&sandbox, page, &view) {
        Ok(html) => (StatusCode::OK, Html(html)).into_response(),
        Err(e) => {
            let why = match e.kind() {
                minijinja::ErrorKind::OutOfFuel => {
                    "الگو بیش از اندازه کار می‌کند (حلقه‌ای بی‌پایان یا بسیار بزرگ)؛ آن را ساده کنید."
                        .to_owned()
                }
                _ => format!("الگو اجرا نشد: {}", e.kind()),
            };
            failure(
                &state,
                &me.tenant,
                &FieldErrors::single("source", "template_render", why).into(),
            )
        }
    }
}

/// Publishes the drafts; the site renders with them from the next request on.
async fn publish(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<crate::CsrfForm>,
) -> Response {
    let done = async {
        me.csrf_ok(&form.csrf)?;
        me.require_on(&state, Resource::Settings, Action::Update)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        // Re-check what is published: a draft saved before a rule tightened must not slip out.
        for row in desk_db::overrides::list(&mut tx).await? {
            if let Some(draft) = row.draft.as_deref().filter(|d| !d.trim().is_empty()) {
                check_source(&row.name, draft)?;
            }
        }
        let any = desk_db::overrides::publish(&mut tx).await?;
        tx.commit().await?;
        state.platform.bump_overrides(me.tenant.id, any).await?;
        // The version is on the registry row the host cache holds: show the change at once.
        state.sites.invalidate();
        Ok::<_, DomainError>(())
    }
    .await;
    match done {
        Ok(()) => Redirect::to("/staff/settings/templates").into_response(),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}
