//! The in-person desk (میز خدمت حضوری) in the staff portal: a staff member registers a walk-in's
//! request on their behalf — the same form, checks, transaction, tracking code, promised date
//! and SMS updates as online, with channel «حضوری» and the registering staff member recorded —
//! and prints the receipt.

use crate::WebState;
use crate::pages::{TenantView, render};
use crate::requests::{FormFor, form_page, no_service, published_card, read_multipart};
use crate::staff::{StaffSession, failure};
use axum::Router;
use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use desk_app::intake::{self, Intake};
use desk_authz::Action;
use desk_core::{DomainError, FieldError, MobileNumber};
use desk_db::requests::Channel;
use serde_json::json;
use std::collections::HashMap;

pub(crate) fn desk_routes() -> Router<WebState> {
    Router::new()
        .route("/staff/desk", get(choose_service))
        .route(
            "/staff/desk/{code}",
            get(show_form)
                .post(register)
                .layer(DefaultBodyLimit::max(crate::requests::UPLOAD_BODY_LIMIT)),
        )
}

async fn choose_service(State(state): State<WebState>, me: StaffSession) -> Response {
    let listed = async {
        me.require_requests(&state, Action::Update).await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let services = desk_db::catalog::published_services(&mut tx, None, None).await?;
        tx.commit().await?;
        Ok::<_, DomainError>(services)
    }
    .await;
    match listed {
        Ok(services) => render(
            &state,
            StatusCode::OK,
            "staff_desk.html.j2",
            json!({
                "tenant": TenantView::of(&me.tenant),
                "services": services.iter().map(|s| json!({ "code": s.card.code, "title": s.card.title_fa })).collect::<Vec<_>>(),
            }),
        ),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

async fn show_form(
    State(state): State<WebState>,
    me: StaffSession,
    Path(code): Path<String>,
) -> Response {
    if let Err(e) = me.require_requests(&state, Action::Update).await {
        return failure(&state, &me.tenant, &e);
    }
    match published_card(&state, &me.tenant, &code).await {
        Ok(Some(service)) => {
            let key = desk_core::secret::new_token();
            form_page(
                &state,
                &me.tenant,
                &service.card,
                me.csrf(),
                &key[..32],
                &HashMap::new(),
                &[],
                FormFor::Desk,
            )
        }
        Ok(None) => no_service(&state, &me.tenant),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

async fn register(
    State(state): State<WebState>,
    me: StaffSession,
    Path(code): Path<String>,
    multipart: Multipart,
) -> Response {
    let tenant = me.tenant.clone();
    let submission = match read_multipart(multipart).await {
        Ok(s) => s,
        Err(e) => return failure(&state, &tenant, &e),
    };
    let allowed = async {
        me.csrf_ok(submission.value("csrf"))?;
        me.require_requests(&state, Action::Update).await
    }
    .await;
    if let Err(e) = allowed {
        return failure(&state, &tenant, &e);
    }
    let service = match published_card(&state, &tenant, &code).await {
        Ok(Some(s)) => s,
        Ok(None) => return no_service(&state, &tenant),
        Err(e) => return failure(&state, &tenant, &e),
    };
    let again = |errors: &[FieldError]| {
        form_page(
            &state,
            &tenant,
            &service.card,
            me.csrf(),
            submission.value("idempotency_key"),
            &submission.values,
            errors,
            FormFor::Desk,
        )
    };
    let mobile = match MobileNumber::parse(submission.value("citizen_mobile")) {
        Ok(m) => m,
        Err(e) => {
            let errors: Vec<FieldError> =
                e.0.into_iter()
                    .map(|f| FieldError {
                        field: "citizen_mobile".to_owned(),
                        ..f
                    })
                    .collect();
            return again(&errors);
        }
    };
    // The walk-in becomes a citizen of this municipality, so the request shows under "my
    // requests" when they sign in with that number.
    let citizen = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let c = desk_db::citizens::upsert_citizen(&mut tx, &mobile).await?;
        tx.commit().await?;
        Ok::<_, DomainError>(c)
    }
    .await;
    let citizen = match citizen {
        Ok(c) => c,
        Err(e) => return failure(&state, &tenant, &e),
    };
    let intake = Intake {
        citizen_id: Some(citizen.id),
        mobile: mobile.as_str().to_owned(),
        channel: Channel::InPerson,
        registered_by: Some(me.staff.id),
    };
    match intake::file_request(
        &state.platform,
        &state.files,
        &tenant,
        &service,
        &submission,
        intake,
    )
    .await
    {
        Ok(done) => Redirect::to(&format!("/staff/requests/{}", done.request().tracking_code))
            .into_response(),
        Err(DomainError::Validation(errors)) => again(&errors.0),
        Err(e) => failure(&state, &tenant, &e),
    }
}
