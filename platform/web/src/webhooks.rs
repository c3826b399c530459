//! Webhooks of a municipality, managed by its admin in the staff portal: a URL (https, public
//! addresses only, unless the deployment allows private receivers) and the events it wants; the
//! signing secret is shown once; each webhook lists its latest deliveries with the receiver's
//! answers; a webhook can be paused, resumed or deleted.

use crate::WebState;
use crate::api_keys::form_pairs;
use crate::pages::{TenantView, render};
use crate::staff::{StaffSession, failure};
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use desk_authz::{Action, Resource};
use desk_core::webhook::{WebhookEvent, parse_target};
use desk_core::{DomainError, FieldErrors};
use desk_db::webhooks;
use serde::Deserialize;
use serde_json::json;

/// Deliveries shown per webhook.
const SHOWN_DELIVERIES: i64 = 10;

pub(crate) fn webhook_routes() -> Router<WebState> {
    Router::new()
        .route(
            "/staff/settings/webhooks",
            get(show_webhooks).post(create_webhook),
        )
        .route("/staff/settings/webhooks/{id}", post(change_webhook))
}

fn status_fa(status: &str) -> &'static str {
    match status {
        "delivered" => "رسید",
        "failed" => "ناموفق (رها شد)",
        _ => "در انتظار تلاش دوباره",
    }
}

async fn page(state: &WebState, me: &StaffSession, new_secret: Option<&str>) -> Response {
    let listed = async {
        me.require_on(state, Resource::Settings, Action::Update)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let hooks = webhooks::list(&mut tx).await?;
        let mut items = Vec::with_capacity(hooks.len());
        for h in &hooks {
            let deliveries = webhooks::recent_deliveries(&mut tx, h.id, SHOWN_DELIVERIES).await?;
            items.push(json!({
                "id": h.id, "url": h.url, "enabled": h.enabled,
                "events": h.events.iter().map(|e| WebhookEvent::parse(e).map_or_else(|| e.clone(), |x| x.label_fa().to_owned())).collect::<Vec<_>>(),
                "deliveries": deliveries.iter().map(|d| json!({
                    "id": d.id, "event": d.event, "status": status_fa(&d.status),
                    "attempts": desk_core::text::persian_digits(&d.attempts.to_string()),
                    "response_status": d.response_status,
                    "excerpt": d.response_excerpt,
                    "at": d.last_attempt_at.unwrap_or(d.created_at).format("%Y-%m-%d %H:%M UTC").to_string(),
                })).collect::<Vec<_>>(),
            }));
        }
        tx.commit().await?;
        Ok::<_, DomainError>(items)
    }
    .await;
    match listed {
        Ok(items) => render(
            state,
            if new_secret.is_some() {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            },
            "staff_webhooks.html.j2",
            json!({
                "tenant": TenantView::of(&me.tenant), "webhooks": items, "new_secret": new_secret,
                "events": WebhookEvent::ALL.iter().map(|e| json!({ "code": e.as_str(), "label": e.label_fa() })).collect::<Vec<_>>(),
                "csrf": me.csrf(), "private_allowed": state.allow_private_webhooks,
            }),
        ),
        Err(e) => failure(state, &me.tenant, &e),
    }
}

async fn show_webhooks(State(state): State<WebState>, me: StaffSession) -> Response {
    page(&state, &me, None).await
}

async fn create_webhook(
    State(state): State<WebState>,
    me: StaffSession,
    axum::extract::RawForm(body): axum::extract::RawForm,
) -> Response {
    // Events repeat (`event=a&event=b`).
    let pairs = form_pairs(&body);
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map_or("", |(_, v)| v.as_str())
    };
    let made = async {
        me.csrf_ok(get("csrf"))?;
        me.require_on(&state, Resource::Settings, Action::Update)
            .await?;
        let key = state.secrets.as_ref().ok_or_else(|| {
            DomainError::from(FieldErrors::single(
                "url",
                "no_master_key",
                "کلید رمزنگاری سامانه تنظیم نشده است؛ وبهوک را نمی‌توان امضا کرد.",
            ))
        })?;
        let target = parse_target(get("url").trim(), state.allow_private_webhooks)
            .map_err(|e| DomainError::from(FieldErrors::single("url", e.code(), e.message_fa())))?;
        let events: Vec<WebhookEvent> = pairs
            .iter()
            .filter(|(n, _)| n == "event")
            .map(|(_, v)| {
                WebhookEvent::parse(v).ok_or_else(|| {
                    DomainError::from(FieldErrors::single(
                        "events",
                        "events",
                        "رویداد ناشناخته است.",
                    ))
                })
            })
            .collect::<Result<_, _>>()?;
        let secret = format!("whsec_{}", desk_core::secret::new_token());
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        webhooks::create(&mut tx, &target.url, &events, Some(me.staff.id), |id| {
            key.seal(
                me.tenant.id,
                &webhooks::secret_purpose(id),
                secret.as_bytes(),
            )
        })
        .await?;
        tx.commit().await?;
        Ok::<_, DomainError>(secret)
    }
    .await;
    match made {
        Ok(secret) => page(&state, &me, Some(&secret)).await,
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

#[derive(Debug, Deserialize)]
struct ChangeForm {
    #[serde(default)]
    csrf: String,
    /// `pause`, `resume` or `delete`.
    #[serde(default)]
    op: String,
}

async fn change_webhook(
    State(state): State<WebState>,
    me: StaffSession,
    Path(id): Path<i64>,
    Form(form): Form<ChangeForm>,
) -> Response {
    let done = async {
        me.csrf_ok(&form.csrf)?;
        me.require_on(&state, Resource::Settings, Action::Update)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        match form.op.as_str() {
            "pause" => webhooks::set_enabled(&mut tx, id, false).await?,
            "resume" => webhooks::set_enabled(&mut tx, id, true).await?,
            "delete" => webhooks::delete(&mut tx, id).await?,
            _ => return Err(DomainError::NotFound),
        }
        tx.commit().await
    }
    .await;
    match done {
        Ok(()) => Redirect::to("/staff/settings/webhooks").into_response(),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}
