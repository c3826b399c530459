//! API keys of a municipality, managed by its admin in the staff portal: made with a name,
//! scopes, an optional role and expiry; shown once; listed by prefix with last use; revoked.

use crate::WebState;
use crate::pages::{TenantView, render};
use crate::requests::jalali_fa;
use crate::staff::{StaffSession, failure};
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{Duration, Utc};
use desk_authz::{Action, Resource};
use desk_core::DomainError;
use desk_db::api_keys;
use serde::Deserialize;
use serde_json::json;

pub(crate) fn api_key_routes() -> Router<WebState> {
    Router::new()
        .route("/staff/api-keys", get(show_keys).post(create_key))
        .route("/staff/api-keys/{id}/revoke", post(revoke_key))
}

async fn page(state: &WebState, me: &StaffSession, new_key: Option<&str>) -> Response {
    let listed = async {
        me.require_on(state, Resource::Settings, Action::Update)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let keys = api_keys::list(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, DomainError>(keys)
    }
    .await;
    match listed {
        Ok(keys) => {
            let now = Utc::now();
            let items: Vec<_> = keys
                .iter()
                .map(|k| {
                    json!({
                        "id": k.id, "name": k.name, "prefix": k.prefix,
                        "scopes": k.scopes.iter().map(|s| api_keys::SCOPES.iter().find(|(c, _)| c == s).map_or(s.as_str(), |(_, l)| l)).collect::<Vec<_>>(),
                        "role": k.role,
                        "created": jalali_fa(k.created_at.date_naive()),
                        "expires": k.expires_at.map(|e| jalali_fa(e.date_naive())),
                        "last_used": k.last_used_at.map(|e| jalali_fa(e.date_naive())),
                        "live": k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > now),
                    })
                })
                .collect();
            let scopes: Vec<_> = api_keys::SCOPES
                .iter()
                .map(|(c, l)| json!({ "code": c, "label": l }))
                .collect();
            render(
                state,
                if new_key.is_some() {
                    StatusCode::CREATED
                } else {
                    StatusCode::OK
                },
                "staff_api_keys.html.j2",
                json!({ "tenant": TenantView::of(&me.tenant), "keys": items, "scopes": scopes,
                        "new_key": new_key, "csrf": me.csrf() }),
            )
        }
        Err(e) => failure(state, &me.tenant, &e),
    }
}

async fn show_keys(State(state): State<WebState>, me: StaffSession) -> Response {
    page(&state, &me, None).await
}

#[derive(Debug, Deserialize)]
struct NewKey {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    role: String,
    /// Days until it expires; empty for never.
    #[serde(default)]
    days: String,
}

async fn create_key(
    State(state): State<WebState>,
    me: StaffSession,
    axum::extract::RawForm(body): axum::extract::RawForm,
) -> Response {
    // Scopes repeat (`scope=a&scope=b`), which a plain struct form cannot hold.
    let pairs: Vec<(String, String)> = form_pairs(&body);
    let get = |k: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map_or(String::new(), |(_, v)| v.clone())
    };
    let form = NewKey {
        csrf: get("csrf"),
        name: get("name"),
        role: get("role"),
        days: get("days"),
    };
    let scopes: Vec<String> = pairs
        .iter()
        .filter(|(n, _)| n == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let made = async {
        me.csrf_ok(&form.csrf)?;
        me.require_on(&state, Resource::Settings, Action::Update)
            .await?;
        let expires = match form.days.trim() {
            "" => None,
            d => Some(
                Utc::now()
                    + Duration::days(
                        desk_core::mobile::ascii_digits(d)
                            .parse::<i64>()
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
        let role = match form.role.as_str() {
            "" => None,
            r @ ("desk_staff" | "department_head" | "tenant_admin") => Some(r),
            _ => return Err(DomainError::NotFound),
        };
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let (key, _) = api_keys::create(
            &mut tx,
            &form.name,
            &scopes,
            role,
            expires,
            Some(me.staff.id),
        )
        .await?;
        tx.commit().await?;
        Ok::<_, DomainError>(key)
    }
    .await;
    match made {
        Ok(key) => page(&state, &me, Some(&key)).await,
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

/// Decodes `application/x-www-form-urlencoded` into pairs, keeping repeats.
pub(crate) fn form_pairs(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

async fn revoke_key(
    State(state): State<WebState>,
    me: StaffSession,
    Path(id): Path<i64>,
    Form(form): Form<crate::CsrfForm>,
) -> Response {
    let done = async {
        me.csrf_ok(&form.csrf)?;
        me.require_on(&state, Resource::Settings, Action::Update)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        api_keys::revoke(&mut tx, id).await?;
        tx.commit().await
    }
    .await;
    match done {
        Ok(()) => Redirect::to("/staff/api-keys").into_response(),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}
