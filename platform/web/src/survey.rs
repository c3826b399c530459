//! The satisfaction survey (نظرسنجی): the citizen's page behind the personal link from the
//! SMS (no sign-in; the link works once, on its own municipality's host, until it expires);
//! staff recording the answers at the desk on the citizen's behalf; and the municipality
//! admin's questionnaire (hide or show the national axes, add own questions).

use crate::WebState;
use crate::pages::{TenantView, render};
use crate::staff::{StaffSession, failure};
use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::{Extension, Router};
use desk_authz::{Action, Resource};
use desk_core::survey::{self, Question, SCALE_FA};
use desk_core::tracking::TrackingCode;
use desk_core::{DomainError, FieldErrors};
use desk_db::surveys::{self, Survey, Via};
use desk_db::{Tenant, requests};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) fn survey_routes() -> Router<WebState> {
    Router::new()
        .route("/survey/{token}", get(show_survey).post(answer_survey))
        .route(
            "/staff/requests/{tracking}/survey",
            get(show_desk_survey).post(answer_desk_survey),
        )
        .route(
            "/staff/settings/survey",
            get(show_questions).post(change_questions),
        )
}

/// Link tokens are 64 lowercase hex characters; anything else is not looked up.
fn token_shape(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

fn questions_view(questions: &[Question], values: &HashMap<String, String>) -> Vec<Value> {
    questions
        .iter()
        .filter(|q| !q.hidden)
        .map(|q| {
            json!({
                "key": q.key, "axis": q.axis_fa, "text": q.text_fa,
                "value": values.get(&format!("q_{}", q.key)).cloned().unwrap_or_default(),
            })
        })
        .collect()
}

fn scale_view() -> Vec<Value> {
    SCALE_FA
        .iter()
        .zip(1..)
        .map(|(label, n)| json!({ "value": n, "label": label, "digit": desk_core::text::persian_digits(&n.to_string()) }))
        .collect()
}

/// What the person typed and what was wrong with it (empty on a fresh form).
#[derive(Default)]
struct Entered<'a> {
    values: Option<&'a HashMap<String, String>>,
    errors: &'a [desk_core::FieldError],
}

impl Entered<'_> {
    fn values(&self) -> HashMap<String, String> {
        self.values.cloned().unwrap_or_default()
    }
}

/// Everything the survey page shows about the survey and its request.
fn survey_view(s: &Survey, questions: &[Question]) -> Value {
    let answered: Vec<Value> = questions
        .iter()
        .filter_map(|q| {
            let score = s.scores.iter().find(|(k, _)| *k == q.key)?.1;
            Some(json!({ "text": q.axis_fa.unwrap_or(q.text_fa.as_str()), "score": desk_core::text::persian_digits(&score.to_string()) }))
        })
        .collect();
    json!({
        "tracking_code": s.tracking_code, "service_title": s.service_title,
        "answered": s.answered_at.is_some(), "expired": s.answered_at.is_none() && !s.open(),
        "via_desk": s.answered_via.as_deref() == Some("desk"), "recorded_by": s.recorded_by,
        "comment": s.comment, "scores": answered,
    })
}

async fn load_by_token(
    state: &WebState,
    tenant: &Tenant,
    token: &str,
) -> Result<(Survey, Vec<Question>), DomainError> {
    if !token_shape(token) {
        return Err(DomainError::NotFound);
    }
    let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
    let found = surveys::by_token(&mut tx, token).await?;
    let questions = surveys::questionnaire(&mut tx).await?;
    tx.commit().await?;
    Ok((found.ok_or(DomainError::NotFound)?, questions))
}

fn survey_page(
    state: &WebState,
    tenant: &Tenant,
    status: StatusCode,
    s: &Survey,
    questions: &[Question],
    entered: &Entered<'_>,
    action: &str,
) -> Response {
    let values = entered.values();
    render(
        state,
        status,
        "survey.html.j2",
        json!({
            "tenant": TenantView::of(tenant), "survey": survey_view(s, questions),
            "questions": questions_view(questions, &values), "scale": scale_view(),
            "comment": values.get("comment").cloned().unwrap_or_default(),
            "errors": entered.errors, "action": action,
        }),
    )
}

fn not_found_page(state: &WebState, tenant: &Tenant) -> Response {
    crate::pages::error_page(
        state,
        StatusCode::NOT_FOUND,
        Some(tenant),
        "نظرسنجی پیدا نشد",
        "این پیوند نظرسنجی معتبر نیست. پیوند را همان‌گونه که در پیامک آمده باز کنید.",
    )
}

async fn show_survey(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(token): Path<String>,
) -> Response {
    match load_by_token(&state, &tenant, &token).await {
        Ok((s, questions)) => survey_page(
            &state,
            &tenant,
            StatusCode::OK,
            &s,
            &questions,
            &Entered::default(),
            &format!("/survey/{token}"),
        ),
        Err(DomainError::NotFound) => not_found_page(&state, &tenant),
        Err(e) => crate::citizen::failure(&state, &tenant, &e),
    }
}

async fn answer_survey(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(token): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let (s, questions) = match load_by_token(&state, &tenant, &token).await {
        Ok(found) => found,
        Err(DomainError::NotFound) => return not_found_page(&state, &tenant),
        Err(e) => return crate::citizen::failure(&state, &tenant, &e),
    };
    let action = format!("/survey/{token}");
    if !s.open() {
        return survey_page(
            &state,
            &tenant,
            StatusCode::CONFLICT,
            &s,
            &questions,
            &Entered {
                values: Some(&form),
                errors: &[],
            },
            &action,
        );
    }
    let answer = match survey::check_answer(&questions, &form) {
        Ok(a) => a,
        Err(FieldErrors(errors)) => {
            return survey_page(
                &state,
                &tenant,
                StatusCode::UNPROCESSABLE_ENTITY,
                &s,
                &questions,
                &Entered {
                    values: Some(&form),
                    errors: &errors,
                },
                &action,
            );
        }
    };
    let stored = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        desk_app::surveys::answer(&mut tx, Via::Link(&token), &answer).await?;
        tx.commit().await
    }
    .await;
    match stored {
        Ok(()) => thanks(&state, &tenant, &s.tracking_code),
        Err(DomainError::Conflict(_)) => match load_by_token(&state, &tenant, &token).await {
            // Answered by a racing submission meanwhile: show the stored answer.
            Ok((s, q)) => survey_page(
                &state,
                &tenant,
                StatusCode::CONFLICT,
                &s,
                &q,
                &Entered {
                    values: Some(&form),
                    errors: &[],
                },
                &action,
            ),
            Err(e) => crate::citizen::failure(&state, &tenant, &e),
        },
        Err(e) => crate::citizen::failure(&state, &tenant, &e),
    }
}

fn thanks(state: &WebState, tenant: &Tenant, tracking: &str) -> Response {
    render(
        state,
        StatusCode::OK,
        "survey_thanks.html.j2",
        json!({ "tenant": TenantView::of(tenant), "tracking_code": tracking }),
    )
}

/// A closed request of this municipality whose survey staff may record.
async fn desk_target(
    state: &WebState,
    me: &StaffSession,
    tracking: &str,
) -> Result<(requests::Request, Option<Survey>, Vec<Question>), DomainError> {
    let reach = me.reach(state, Action::Update).await?;
    let code = TrackingCode::parse(tracking).map_err(|_| DomainError::NotFound)?;
    let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
    let request = requests::request_by_code(&mut tx, code.as_str())
        .await?
        .ok_or(DomainError::NotFound)?;
    if reach.is_some_and(|r| !r.covers(&request)) {
        return Err(DomainError::Forbidden);
    }
    let existing = surveys::for_request(&mut tx, request.id).await?;
    let questions = surveys::questionnaire(&mut tx).await?;
    tx.commit().await?;
    if !request.closed {
        return Err(DomainError::Conflict(
            "survey of an open request".to_owned(),
        ));
    }
    Ok((request, existing, questions))
}

fn desk_page(
    state: &WebState,
    me: &StaffSession,
    status: StatusCode,
    request: &requests::Request,
    existing: Option<&Survey>,
    questions: &[Question],
    entered: &Entered<'_>,
) -> Response {
    let values = entered.values();
    render(
        state,
        status,
        "staff_survey.html.j2",
        json!({
            "tenant": TenantView::of(&me.tenant), "csrf": me.csrf(),
            "tracking_code": request.tracking_code, "service_title": request.service_title,
            "survey": existing.map(|s| survey_view(s, questions)),
            "questions": questions_view(questions, &values), "scale": scale_view(),
            "comment": values.get("comment").cloned().unwrap_or_default(), "errors": entered.errors,
        }),
    )
}

async fn show_desk_survey(
    State(state): State<WebState>,
    me: StaffSession,
    Path(tracking): Path<String>,
) -> Response {
    match desk_target(&state, &me, &tracking).await {
        Ok((request, existing, questions)) => desk_page(
            &state,
            &me,
            StatusCode::OK,
            &request,
            existing.as_ref(),
            &questions,
            &Entered::default(),
        ),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

async fn answer_desk_survey(
    State(state): State<WebState>,
    me: StaffSession,
    Path(tracking): Path<String>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let done = async {
        me.csrf_ok(form.get("csrf").map_or("", String::as_str))?;
        let (request, existing, questions) = desk_target(&state, &me, &tracking).await?;
        if existing.as_ref().is_some_and(|s| s.answered_at.is_some()) {
            return Err(surveys::already_answered());
        }
        let answer = match survey::check_answer(&questions, &form) {
            Ok(a) => a,
            Err(FieldErrors(errors)) => {
                return Ok(Err((request, existing, questions, errors)));
            }
        };
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        desk_app::surveys::answer(
            &mut tx,
            Via::Desk {
                request_id: request.id,
                staff_id: me.staff.id,
            },
            &answer,
        )
        .await?;
        tx.commit().await?;
        Ok(Ok(request.tracking_code))
    }
    .await;
    match done {
        Ok(Ok(code)) => Redirect::to(&format!("/staff/requests/{code}/survey")).into_response(),
        Ok(Err((request, existing, questions, errors))) => desk_page(
            &state,
            &me,
            StatusCode::UNPROCESSABLE_ENTITY,
            &request,
            existing.as_ref(),
            &questions,
            &Entered {
                values: Some(&form),
                errors: &errors,
            },
        ),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

async fn show_questions(State(state): State<WebState>, me: StaffSession) -> Response {
    questions_page(&state, &me, StatusCode::OK, &[]).await
}

async fn questions_page(
    state: &WebState,
    me: &StaffSession,
    status: StatusCode,
    errors: &[desk_core::FieldError],
) -> Response {
    let loaded = async {
        me.require_on(state, Resource::Settings, Action::Update)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let q = surveys::questionnaire(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, DomainError>(q)
    }
    .await;
    match loaded {
        Ok(questions) => render(
            state,
            status,
            "staff_survey_settings.html.j2",
            json!({
                "tenant": TenantView::of(&me.tenant), "csrf": me.csrf(),
                "questions": questions, "errors": errors,
            }),
        ),
        Err(e) => failure(state, &me.tenant, &e),
    }
}

async fn change_questions(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let done = async {
        me.csrf_ok(form.get("csrf").map_or("", String::as_str))?;
        me.require_on(&state, Resource::Settings, Action::Update)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        match (form.get("op").map(String::as_str), form.get("key")) {
            (Some("add"), _) => {
                surveys::add_question(&mut tx, form.get("label_fa").map_or("", String::as_str))
                    .await?;
            }
            (Some("hide"), Some(key)) => surveys::set_hidden(&mut tx, key, true).await?,
            (Some("show"), Some(key)) => surveys::set_hidden(&mut tx, key, false).await?,
            _ => {
                return Err(DomainError::Validation(FieldErrors::single(
                    "op",
                    "unknown_operation",
                    "درخواست نامعتبر است.",
                )));
            }
        }
        tx.commit().await
    }
    .await;
    match done {
        Ok(()) => Redirect::to("/staff/settings/survey").into_response(),
        Err(DomainError::Validation(FieldErrors(errors))) => {
            questions_page(&state, &me, StatusCode::UNPROCESSABLE_ENTITY, &errors).await
        }
        Err(e) => failure(&state, &me.tenant, &e),
    }
}
