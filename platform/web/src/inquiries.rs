//! Inquiries to other agencies (استعلام) in the staff portal: start one from a request (the
//! `inquiry` job sends it; the request waits in «در انتظار پاسخ استعلام» where its workflow
//! allows), type in an answer that came by letter or phone, and the admin's list of agencies
//! with their connector (endpoint, write-only token, timeout, answer deadline).

use crate::WebState;
use crate::pages::{TenantView, render};
use crate::requests::local_today;
use crate::staff::{StaffSession, failure, seal_secret};
use axum::Router;
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use desk_app::intake;
use desk_authz::{Action, Resource};
use desk_core::tracking::TrackingCode;
use desk_core::{DomainError, FieldErrors};
use desk_db::inquiries::{self, NewAgency};
use desk_db::requests;
use serde::Deserialize;
use serde_json::json;

pub(crate) fn inquiry_routes() -> Router<WebState> {
    Router::new()
        .route("/staff/requests/{tracking}/inquiries", post(start))
        .route(
            "/staff/requests/{tracking}/inquiries/{id}/answer",
            post(answer),
        )
        .route(
            "/staff/settings/agencies",
            get(show_agencies).post(add_agency),
        )
}

/// An open request of this municipality that the staff member may act on.
async fn actionable(
    state: &WebState,
    me: &StaffSession,
    tracking: &str,
) -> Result<requests::Request, DomainError> {
    let reach = me.reach(state, Action::Update).await?;
    let code = TrackingCode::parse(tracking).map_err(|_| DomainError::NotFound)?;
    let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
    let found = requests::request_by_code(&mut tx, code.as_str())
        .await?
        .ok_or(DomainError::NotFound)?;
    tx.commit().await?;
    if reach.is_some_and(|r| !r.covers(&found)) {
        return Err(DomainError::Forbidden);
    }
    if found.closed {
        return Err(DomainError::Conflict("the request is closed".into()));
    }
    Ok(found)
}

#[derive(Debug, Deserialize)]
struct StartForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    agency_id: String,
    #[serde(default)]
    subject: String,
}

async fn start(
    State(state): State<WebState>,
    me: StaffSession,
    Path(tracking): Path<String>,
    Form(form): Form<StartForm>,
) -> Response {
    let done = async {
        me.csrf_ok(&form.csrf)?;
        let request = actionable(&state, &me, &tracking).await?;
        let agency_id: i64 = form.agency_id.parse().map_err(|_| DomainError::NotFound)?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let agency = inquiries::agency(&mut tx, agency_id)
            .await?
            .ok_or(DomainError::NotFound)?;
        let today = local_today();
        let calendar = desk_db::settings::working_calendar(&mut tx, today).await?;
        let due = calendar.promised_date(today, u32::try_from(agency.sla_days).unwrap_or(5));
        inquiries::create(
            &mut tx,
            &request,
            agency.id,
            &form.subject,
            Some(me.staff.id),
            due,
        )
        .await?;
        tx.commit().await?;
        // The request waits for the answer where its workflow has that step for these roles.
        let workflow = {
            let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
            let card = desk_db::catalog::card_by_id(&mut tx, request.service_id).await?;
            tx.commit().await?;
            card.map(|c| c.workflow())
        };
        let roles = state.authz.staff_role_keys(me.tenant.id, me.staff.id).await;
        let role_refs: Vec<&str> = roles.iter().map(String::as_str).collect();
        if let Some(workflow) = workflow
            && workflow
                .transition(&request.state, "start_inquiry", &role_refs, None)
                .is_ok()
        {
            let note = format!("استعلام از «{}»", agency.name);
            intake::act(
                &state.platform,
                &state.files,
                &me.tenant,
                &request,
                &workflow,
                &intake::Act {
                    action: "start_inquiry",
                    roles: &role_refs,
                    actor: requests::Actor::Staff(me.staff.id),
                    note: Some(&note),
                    unit_id: None,
                    files: &intake::Submission::default(),
                },
            )
            .await?;
        }
        Ok::<_, DomainError>(request.tracking_code)
    }
    .await;
    match done {
        Ok(code) => Redirect::to(&format!("/staff/requests/{code}")).into_response(),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

#[derive(Debug, Deserialize)]
struct AnswerForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    answer: String,
    #[serde(default)]
    outcome: String,
}

async fn answer(
    State(state): State<WebState>,
    me: StaffSession,
    Path((tracking, id)): Path<(String, i64)>,
    Form(form): Form<AnswerForm>,
) -> Response {
    let done = async {
        me.csrf_ok(&form.csrf)?;
        let request = actionable(&state, &me, &tracking).await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        // Only an inquiry of this request (ids of other requests are not found here).
        let found = inquiries::inquiry(&mut tx, id)
            .await?
            .filter(|i| i.request_id == request.id)
            .ok_or(DomainError::NotFound)?;
        let recorded = desk_app::inquiries::record_answer(
            &mut tx,
            found.id,
            &form.answer,
            &form.outcome,
            requests::Actor::Staff(me.staff.id),
        )
        .await?;
        if !recorded {
            return Err(DomainError::Conflict("the inquiry is closed".into()));
        }
        tx.commit().await?;
        Ok::<_, DomainError>(request.tracking_code)
    }
    .await;
    match done {
        Ok(code) => Redirect::to(&format!("/staff/requests/{code}")).into_response(),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

async fn show_agencies(State(state): State<WebState>, me: StaffSession) -> Response {
    agencies_page(&state, &me, StatusCode::OK, &[], &AgencyForm::default()).await
}

#[derive(Debug, Deserialize, Default, serde::Serialize)]
struct AgencyForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    endpoint: String,
    #[serde(default, skip_serializing)]
    token: String,
    #[serde(default)]
    timeout_secs: String,
    #[serde(default)]
    sla_days: String,
}

async fn agencies_page(
    state: &WebState,
    me: &StaffSession,
    status: StatusCode,
    errors: &[desk_core::FieldError],
    form: &AgencyForm,
) -> Response {
    let loaded = async {
        me.require_on(state, Resource::Settings, Action::Update)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let list = inquiries::agencies(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, DomainError>(list)
    }
    .await;
    match loaded {
        Ok(list) => {
            let rows: Vec<_> = list
                .iter()
                .map(|a| {
                    json!({
                        "name": a.name, "manual": a.kind == "manual", "endpoint": a.endpoint,
                        "timeout": desk_core::text::persian_digits(&a.timeout_secs.to_string()),
                        "sla": desk_core::text::persian_digits(&a.sla_days.to_string()),
                        "has_token": a.has_credentials, "enabled": a.enabled,
                    })
                })
                .collect();
            render(
                state,
                status,
                "staff_agencies.html.j2",
                json!({
                    "tenant": TenantView::of(&me.tenant), "csrf": me.csrf(), "agencies": rows,
                    "errors": errors, "form": form,
                }),
            )
        }
        Err(e) => failure(state, &me.tenant, &e),
    }
}

async fn add_agency(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<AgencyForm>,
) -> Response {
    let done = async {
        me.csrf_ok(&form.csrf)?;
        me.require_on(&state, Resource::Settings, Action::Update)
            .await?;
        let new = NewAgency {
            name: &form.name,
            kind: &form.kind,
            endpoint: &form.endpoint,
            timeout_secs: desk_core::mobile::ascii_digits(&form.timeout_secs)
                .trim()
                .parse()
                .unwrap_or(10),
            sla_days: desk_core::mobile::ascii_digits(&form.sla_days)
                .trim()
                .parse()
                .unwrap_or(-1),
        };
        // The address is checked by the rules every outbound call obeys (public addresses
        // only, no numeric tricks, no internal names); the job checks it again at each call.
        // An address the public rules refuse may still lie in the deployment's allowed private
        // networks (`webhooks.private_networks`), which only resolving it can tell.
        if new.kind == "http_json" && !new.endpoint.trim().is_empty() {
            let endpoint = new.endpoint.trim();
            if let Err(e) = desk_core::webhook::parse_target(endpoint, state.allow_private_webhooks)
                && state.outbound.check(endpoint).await.is_err()
            {
                return Err(DomainError::from(FieldErrors::single(
                    "endpoint",
                    e.code(),
                    e.message_fa(),
                )));
            }
        }
        let token = form.token.trim();
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        inquiries::add_agency(&mut tx, &new, |id| {
            (new.kind == "http_json" && !token.is_empty())
                .then(|| {
                    seal_secret(
                        &state,
                        &me.tenant,
                        &format!("agency:{id}"),
                        token.as_bytes(),
                    )
                })
                .transpose()
        })
        .await?;
        tx.commit().await
    }
    .await;
    match done {
        Ok(()) => Redirect::to("/staff/settings/agencies").into_response(),
        Err(DomainError::Validation(FieldErrors(errors))) => {
            agencies_page(
                &state,
                &me,
                StatusCode::UNPROCESSABLE_ENTITY,
                &errors,
                &form,
            )
            .await
        }
        Err(e) => failure(&state, &me.tenant, &e),
    }
}
