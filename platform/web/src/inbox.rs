//! The staff inbox (کارتابل) on a municipality's host: open requests, overdue and due soon
//! first, by scope (mine, my unit, unassigned, all) and state; the full request with its
//! documents and timeline; workflow actions, claim and assign. casbin decides who may read or
//! act on requests in this municipality; the service's workflow decides which action each of
//! the staff member's roles allows from the current state.

use crate::WebState;
use crate::pages::{TenantView, render};
use crate::requests::{Detail, detail_view, jalali_fa, load_detail, local_today, summary_view};
use crate::staff::{StaffSession, failure};
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::NaiveDate;
use desk_app::intake;
use desk_authz::Action;
use desk_core::DomainError;
use desk_core::tracking::TrackingCode;
use desk_db::requests::{self, Actor, Scope};
use serde::Deserialize;
use serde_json::json;

pub(crate) fn inbox_routes() -> Router<WebState> {
    Router::new()
        .route("/staff/inbox", get(show_inbox))
        .route("/staff/requests/{tracking}", get(show_request))
        .route("/staff/requests/{tracking}/act", post(act))
        .route("/staff/requests/{tracking}/assign", post(assign))
        .route("/staff/requests/{tracking}/files/{id}", get(download))
}

#[derive(Debug, Deserialize, Default)]
struct InboxQuery {
    #[serde(default)]
    scope: String,
    #[serde(default)]
    state: String,
    /// Keyset cursor `yyyy-mm-dd:id` of the last row of the previous page.
    #[serde(default)]
    after: String,
}

const PAGE: i64 = 50;

/// Parses a keyset cursor `yyyy-mm-dd:id`.
pub(crate) fn parse_cursor(raw: &str) -> Option<(NaiveDate, i64)> {
    let (day, id) = raw.split_once(':')?;
    Some((day.parse().ok()?, id.parse().ok()?))
}

async fn show_inbox(
    State(state): State<WebState>,
    me: StaffSession,
    Query(q): Query<InboxQuery>,
) -> Response {
    let listed = async {
        let reach = me.reach(&state, Action::Read).await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let unit = me.staff.unit_id;
        let scope = match q.scope.as_str() {
            "mine" => Scope::Mine(me.staff.id),
            "unit" => unit.map_or(Scope::All, Scope::Unit),
            "unassigned" => Scope::Unassigned,
            _ => Scope::All,
        };
        let state_filter = (!q.state.is_empty()).then_some(q.state.as_str());
        let rows = requests::inbox(
            &mut tx,
            scope,
            reach,
            state_filter,
            parse_cursor(&q.after),
            PAGE + 1,
        )
        .await?;
        // State names come from each service's own workflow (a few distinct cards per page).
        let mut workflows = std::collections::HashMap::new();
        for r in &rows {
            if !workflows.contains_key(&r.service_id)
                && let Some(card) = desk_db::catalog::card_by_id(&mut tx, r.service_id).await?
            {
                workflows.insert(r.service_id, card.workflow());
            }
        }
        tx.commit().await?;
        Ok::<_, DomainError>((rows, unit.is_some(), workflows))
    }
    .await;
    match listed {
        Ok((mut rows, has_unit, workflows)) => {
            let more = rows.len() > usize::try_from(PAGE).unwrap_or(50);
            rows.truncate(usize::try_from(PAGE).unwrap_or(50));
            let next = more
                .then(|| rows.last().map(|r| format!("{}:{}", r.promised_on, r.id)))
                .flatten();
            let workflow = desk_core::workflow::Workflow::default_municipal();
            let items: Vec<_> = rows
                .iter()
                .map(|r| {
                    let mut v = summary_view(r);
                    v["state_label"] = json!(
                        workflows
                            .get(&r.service_id)
                            .unwrap_or(&workflow)
                            .state(&r.state)
                            .map_or(r.state.as_str(), |s| s.label_fa.as_str())
                    );
                    v["due_soon"] =
                        json!(r.promised_on <= local_today() + chrono::Duration::days(2));
                    v
                })
                .collect();
            let states: Vec<_> = workflow
                .states
                .iter()
                .map(|s| json!({ "key": s.key, "label": s.label_fa }))
                .collect();
            render(
                &state,
                StatusCode::OK,
                "staff_inbox.html.j2",
                json!({
                    "tenant": TenantView::of(&me.tenant), "items": items, "next": next,
                    "scope": q.scope, "state": q.state, "states": states, "has_unit": has_unit,
                    "today": jalali_fa(local_today()),
                }),
            )
        }
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

/// A request of this municipality by tracking code, if the member's role reaches it for
/// `action` (a desk clerk: their unit's, the intake and their own; see
/// [`StaffSession::reach`]).
pub(crate) async fn staff_request(
    state: &WebState,
    me: &StaffSession,
    tracking: &str,
    action: Action,
) -> Result<Detail, DomainError> {
    let reach = me.reach(state, action).await?;
    let code = TrackingCode::parse(tracking).map_err(|_| DomainError::NotFound)?;
    let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
    let found = requests::request_by_code(&mut tx, code.as_str())
        .await?
        .ok_or(DomainError::NotFound)?;
    if reach.is_some_and(|r| !r.covers(&found)) {
        return Err(DomainError::Forbidden);
    }
    let detail = load_detail(&mut tx, found).await?;
    tx.commit().await?;
    Ok(detail)
}

async fn show_request(
    State(state): State<WebState>,
    me: StaffSession,
    Path(tracking): Path<String>,
) -> Response {
    let loaded = async {
        let detail = staff_request(&state, &me, &tracking, Action::Read).await?;
        let may_act = me
            .require_request(&state, &detail.request, Action::Update)
            .await
            .is_ok();
        // Assigning to others: anyone (tenant admins) or within one's unit (department heads).
        let assign_reach = me.reach(&state, Action::Manage).await.ok();
        let roles = state
            .authz
            .staff_role_keys(me.tenant.id, me.staff.id)
            .await;
        let role_refs: Vec<&str> = roles.iter().map(String::as_str).collect();
        let actions: Vec<_> = if may_act {
            detail
                .workflow
                .available(&detail.request.state, &role_refs)
                .into_iter()
                .map(|t| json!({ "action": t.action, "label": t.label_fa, "needs_note": t.needs_note }))
                .collect()
        } else {
            Vec::new()
        };
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let units = requests::units(&mut tx).await?;
        let staff: Vec<_> = desk_db::staff::list_staff(&mut tx)
            .await?
            .into_iter()
            .filter(|s| s.active && s.joined && s.id != me.staff.id)
            .filter(|s| match assign_reach {
                Some(None) => true,
                Some(Some(reach)) => reach.includes_unit(s.unit_id),
                None => false,
            })
            .collect();
        let agencies: Vec<_> = desk_db::inquiries::agencies(&mut tx)
            .await?
            .into_iter()
            .filter(|a| a.enabled)
            .map(|a| json!({ "id": a.id, "name": a.name, "manual": a.kind == "manual" }))
            .collect();
        tx.commit().await?;
        Ok::<_, DomainError>((detail, may_act, actions, units, staff, agencies))
    }
    .await;
    match loaded {
        Ok((detail, may_act, actions, units, staff, agencies)) => render(
            &state,
            StatusCode::OK,
            "staff_request.html.j2",
            json!({
                "tenant": TenantView::of(&me.tenant),
                "r": detail_view(&detail, true),
                "actions": actions,
                "may_act": may_act,
                "agencies": agencies,
                "units": units.iter().map(|u| json!({"id": u.id, "name": u.name})).collect::<Vec<_>>(),
                "staff": staff.iter().map(|s| json!({
                    "id": s.id, "name": s.display_name,
                    "unit": units.iter().find(|u| Some(u.id) == s.unit_id).map(|u| u.name.clone()),
                })).collect::<Vec<_>>(),
                "me": { "id": me.staff.id },
                "csrf": me.csrf(),
            }),
        ),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

#[derive(Debug, Deserialize)]
struct ActForm {
    #[serde(default)]
    csrf: String,
    action: String,
    #[serde(default)]
    note: String,
    #[serde(default)]
    unit_id: String,
}

async fn act(
    State(state): State<WebState>,
    me: StaffSession,
    Path(tracking): Path<String>,
    Form(form): Form<ActForm>,
) -> Response {
    let done = async {
        me.csrf_ok(&form.csrf)?;
        let detail = staff_request(&state, &me, &tracking, Action::Update).await?;
        let roles = state.authz.staff_role_keys(me.tenant.id, me.staff.id).await;
        let role_refs: Vec<&str> = roles.iter().map(String::as_str).collect();
        let note = form.note.trim();
        let unit_id = if form.action == "forward" {
            form.unit_id.parse().ok()
        } else {
            None
        };
        intake::act(
            &state.platform,
            &state.files,
            &me.tenant,
            &detail.request,
            &detail.workflow,
            &intake::Act {
                action: &form.action,
                roles: &role_refs,
                actor: Actor::Staff(me.staff.id),
                note: (!note.is_empty()).then_some(note),
                unit_id,
                files: &intake::Submission::default(),
            },
        )
        .await?;
        me.log(
            &state,
            "request.act",
            json!({ "tracking": detail.request.tracking_code, "action": form.action }),
        )
        .await?;
        Ok::<_, DomainError>(detail.request.tracking_code)
    }
    .await;
    match done {
        Ok(code) => Redirect::to(&format!("/staff/requests/{code}")).into_response(),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

#[derive(Debug, Deserialize)]
struct AssignForm {
    #[serde(default)]
    csrf: String,
    /// Empty: claim for oneself.
    #[serde(default)]
    staff_id: String,
}

async fn assign(
    State(state): State<WebState>,
    me: StaffSession,
    Path(tracking): Path<String>,
    Form(form): Form<AssignForm>,
) -> Response {
    let done = async {
        me.csrf_ok(&form.csrf)?;
        let detail = staff_request(&state, &me, &tracking, Action::Update).await?;
        let to = if form.staff_id.is_empty() {
            me.staff.id
        } else {
            form.staff_id.parse().map_err(|_| DomainError::NotFound)?
        };
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        if to != me.staff.id {
            // Giving work to someone else: tenant admins anyone, department heads the members of
            // their own unit, and only requests of that unit.
            let target = desk_db::staff::staff_by_id(&mut tx, to)
                .await?
                .filter(|s| s.active)
                .ok_or(DomainError::NotFound)?;
            if let Some(reach) = me.reach(&state, Action::Manage).await?
                && (!reach.includes_unit(target.unit_id) || !reach.covers(&detail.request))
            {
                return Err(DomainError::Forbidden);
            }
        }
        requests::assign(&mut tx, &detail.request, me.staff.id, to).await?;
        me.log_in(
            &mut tx,
            "request.assign",
            json!({ "tracking": detail.request.tracking_code, "to": to }),
        )
        .await?;
        tx.commit().await?;
        Ok::<_, DomainError>(detail.request.tracking_code)
    }
    .await;
    match done {
        Ok(code) => Redirect::to(&format!("/staff/requests/{code}")).into_response(),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

async fn download(
    State(state): State<WebState>,
    me: StaffSession,
    Path((tracking, id)): Path<(String, i64)>,
) -> Response {
    match staff_request(&state, &me, &tracking, Action::Read).await {
        Ok(d) => match d.files.iter().find(|f| f.id == id) {
            Some(f) => crate::requests::serve_file(&state, &me.tenant, f).await,
            None => failure(&state, &me.tenant, &DomainError::NotFound),
        },
        Err(e) => failure(&state, &me.tenant, &e),
    }
}
