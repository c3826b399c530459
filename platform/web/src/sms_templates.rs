//! The SMS template editor in the staff portal (`/staff/settings/sms-templates`): each event's
//! Persian text with its variables, a preview with the sample values, its segment count
//! (UCS-2 70 / 67 per part, GSM-7 160 / 153) and cost estimate before saving, and the prices
//! per part the estimate uses. And each account's provider templates
//! (`/staff/settings/sms/{id}/templates`): the id of the provider's pre-approved template for
//! an event and which variable fills each of its parameters.

use crate::WebState;
use crate::pages::{TenantView, render};
use crate::staff::{StaffSession, failure};
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use desk_authz::{Action, Resource};
use desk_core::sms_templates::{self, Event, ProviderTemplate};
use desk_core::sms_text::{cost_rials, summary_fa};
use desk_core::text::persian_digits;
use desk_core::{DomainError, FieldErrors};
use desk_db::sms_templates as repo;
use serde::Deserialize;
use serde_json::{Value, json};

pub(crate) fn sms_template_routes() -> Router<WebState> {
    Router::new()
        .route("/staff/settings/sms-templates", get(show).post(change))
        .route(
            "/staff/settings/sms/{id}/templates",
            get(show_provider_templates).post(change_provider_template),
        )
}

#[derive(Debug, Deserialize, Default)]
struct EditForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    op: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    body: String,
    #[serde(default)]
    gsm7: String,
    #[serde(default)]
    ucs2: String,
}

/// What the page shows about one event: its source, and the preview or the error.
fn event_view(event: Event, source: &str, custom: bool, prices: (u64, u64)) -> Value {
    let (preview, summary, cost, error) = match sms_templates::preview(event, source) {
        Ok((text, s)) => (
            Some(text),
            Some(summary_fa(&s)),
            Some(persian_digits(
                &cost_rials(&s, prices.0, prices.1).to_string(),
            )),
            None,
        ),
        Err(FieldErrors(e)) => (None, None, None, e.first().map(|e| e.message.clone())),
    };
    json!({
        "key": event.key(), "label": event.label_fa(), "source": source, "custom": custom,
        "variables": event.variables().iter().map(|(k, _)| *k).collect::<Vec<_>>(),
        "preview": preview, "summary": summary, "cost": cost, "error": error,
    })
}

async fn page(
    state: &WebState,
    me: &StaffSession,
    status: StatusCode,
    draft: Option<(Event, &str)>,
) -> Response {
    let loaded = async {
        me.require_on(state, Resource::Settings, Action::Update)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let all = repo::all(&mut tx).await?;
        let prices = repo::prices(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, DomainError>((all, prices))
    }
    .await;
    match loaded {
        Ok((all, prices)) => {
            let events: Vec<Value> = all
                .iter()
                .map(|(e, stored)| match draft {
                    Some((d, body)) if d == *e => event_view(*e, body, true, prices),
                    _ => event_view(
                        *e,
                        stored.as_deref().unwrap_or(e.default_body()),
                        stored.is_some(),
                        prices,
                    ),
                })
                .collect();
            render(
                state,
                status,
                "staff_sms_templates.html.j2",
                json!({
                    "tenant": TenantView::of(&me.tenant), "csrf": me.csrf(), "events": events,
                    "gsm7": prices.0, "ucs2": prices.1,
                    "draft": draft.map(|(e, _)| e.key()),
                }),
            )
        }
        Err(e) => failure(state, &me.tenant, &e),
    }
}

async fn show(State(state): State<WebState>, me: StaffSession) -> Response {
    page(&state, &me, StatusCode::OK, None).await
}

fn price(raw: &str) -> Result<u64, DomainError> {
    let digits = desk_core::mobile::ascii_digits(raw.trim());
    digits
        .parse::<u64>()
        .ok()
        .filter(|p| *p <= 1_000_000)
        .ok_or_else(|| {
            FieldErrors::single(
                "price",
                "price",
                "بهای هر پیامک را به ریال و به عدد بنویسید (حداکثر ۱٬۰۰۰٬۰۰۰).",
            )
            .into()
        })
}

async fn change(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<EditForm>,
) -> Response {
    let event = Event::parse(&form.event);
    if let ("preview", Some(e)) = (form.op.as_str(), event) {
        // Shown with its segments and cost, not saved.
        if let Err(err) = me.csrf_ok(&form.csrf) {
            return failure(&state, &me.tenant, &err);
        }
        return page(&state, &me, StatusCode::OK, Some((e, &form.body))).await;
    }
    let done = async {
        me.csrf_ok(&form.csrf)?;
        me.require_on(&state, Resource::Settings, Action::Update)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        match (form.op.as_str(), event) {
            ("save", Some(e)) => repo::save(&mut tx, e, &form.body).await?,
            ("reset", Some(e)) => repo::save(&mut tx, e, "").await?,
            ("prices", _) => {
                repo::set_prices(&mut tx, price(&form.gsm7)?, price(&form.ucs2)?).await?;
            }
            _ => return Err(DomainError::NotFound),
        }
        tx.commit().await
    }
    .await;
    match (done, form.op.as_str(), event) {
        (Ok(()), _, _) => Redirect::to("/staff/settings/sms-templates").into_response(),
        // A template that does not render: the page shows it with the reason, unsaved.
        (Err(DomainError::Validation(_)), "save", Some(e)) => {
            page(
                &state,
                &me,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some((e, &form.body)),
            )
            .await
        }
        (Err(e), _, _) => failure(&state, &me.tenant, &e),
    }
}

#[derive(Debug, Deserialize, Default)]
struct ProviderTemplateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    op: String,
    #[serde(default)]
    event: String,
    #[serde(default)]
    template: String,
    #[serde(default)]
    params: String,
}

/// The page of account `id`'s provider templates; `draft` is an unsaved form with its error.
async fn provider_templates_page(
    state: &WebState,
    me: &StaffSession,
    id: i64,
    status: StatusCode,
    draft: Option<(Event, &ProviderTemplateForm, String)>,
) -> Response {
    let loaded = async {
        me.require_on(state, Resource::Settings, Action::Update)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let account = desk_db::settings::sms_account(&mut tx, id)
            .await?
            .ok_or(DomainError::NotFound)?;
        let stored = repo::provider_templates(&mut tx, id).await?;
        tx.commit().await?;
        Ok::<_, DomainError>((account, stored))
    }
    .await;
    let (account, stored) = match loaded {
        Ok(v) => v,
        Err(e) => return failure(state, &me.tenant, &e),
    };
    let events: Vec<Value> = Event::ALL
        .into_iter()
        .map(|e| {
            let saved = stored.iter().find(|(s, _)| *s == e).map(|(_, t)| t);
            let (template, params, error) = match &draft {
                Some((d, form, error)) if *d == e => (
                    form.template.clone(),
                    form.params.clone(),
                    Some(error.clone()),
                ),
                _ => (
                    saved.map(|t| t.template.clone()).unwrap_or_default(),
                    saved.map(ProviderTemplate::params_text).unwrap_or_default(),
                    None,
                ),
            };
            json!({
                "key": e.key(), "label": e.label_fa(), "template": template, "params": params,
                "saved": saved.is_some(), "error": error,
                "variables": e.variables().iter().map(|(k, _)| *k).collect::<Vec<_>>(),
            })
        })
        .collect();
    render(
        state,
        status,
        "staff_sms_provider_templates.html.j2",
        json!({
            "tenant": TenantView::of(&me.tenant), "csrf": me.csrf(), "events": events,
            "account": { "id": account.id, "label": account.label, "provider": account.provider },
            "supported": ProviderTemplate::supported_by(&account.provider),
            "kavenegar": account.provider == "kavenegar",
        }),
    )
}

async fn show_provider_templates(
    State(state): State<WebState>,
    me: StaffSession,
    Path(id): Path<i64>,
) -> Response {
    provider_templates_page(&state, &me, id, StatusCode::OK, None).await
}

async fn change_provider_template(
    State(state): State<WebState>,
    me: StaffSession,
    Path(id): Path<i64>,
    Form(form): Form<ProviderTemplateForm>,
) -> Response {
    let Some(event) = Event::parse(&form.event) else {
        return failure(&state, &me.tenant, &DomainError::NotFound);
    };
    let done = async {
        me.csrf_ok(&form.csrf)?;
        me.require_on(&state, Resource::Settings, Action::Update)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let account = desk_db::settings::sms_account(&mut tx, id)
            .await?
            .ok_or(DomainError::NotFound)?;
        let template = match form.op.as_str() {
            "remove" => None,
            _ => Some(ProviderTemplate::parse(
                &account.provider,
                event,
                &form.template,
                &form.params,
            )?),
        };
        repo::set_provider_template(&mut tx, id, event, template.as_ref()).await?;
        tx.commit().await
    }
    .await;
    match done {
        Ok(()) => Redirect::to(&format!(
            "/staff/settings/sms/{id}/templates#event-{}",
            event.key()
        ))
        .into_response(),
        Err(DomainError::Validation(FieldErrors(errors))) => {
            let message = errors
                .first()
                .map(|e| e.message.clone())
                .unwrap_or_default();
            provider_templates_page(
                &state,
                &me,
                id,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some((event, &form, message)),
            )
            .await
        }
        Err(e) => failure(&state, &me.tenant, &e),
    }
}
