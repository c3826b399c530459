//! Appointments (نوبت‌دهی) on a municipality's site and in its staff portal: citizens book a
//! slot of the desk hours (working days only), see and cancel their bookings; staff see the
//! day's list with the day's walk-ins and mark arrivals; the admin sets the desk hours.

use crate::WebState;
use crate::citizen::{CitizenSession, failure as citizen_failure};
use crate::pages::{TenantView, render};
use crate::requests::{jalali_fa, local_today, no_service, published_card};
use crate::staff::{StaffSession, failure};
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{NaiveDate, NaiveTime};
use desk_authz::{Action, Resource};
use desk_core::appointments::{DeskHours, is_offered, slots};
use desk_core::text::persian_digits;
use desk_core::{DomainError, FieldErrors};
use desk_db::appointments;
use serde::Deserialize;
use serde_json::json;

/// Days ahead a citizen may book.
const BOOKING_DAYS: u32 = 14;

pub(crate) fn appointment_routes() -> Router<WebState> {
    Router::new()
        .route("/services/{code}/appointments", get(show_slots).post(book))
        .route("/my-appointments", get(my_appointments))
        .route("/appointments/{id}/cancel", post(cancel))
        .route("/staff/appointments", get(day_list))
        .route("/staff/appointments/{id}/arrived", post(arrived))
        .route("/staff/settings/desk-hours", post(change_desk_hours))
}

fn hhmm(t: NaiveTime) -> String {
    persian_digits(&t.format("%H:%M").to_string())
}

/// Iran time of day now.
fn local_now() -> NaiveTime {
    (chrono::Utc::now() + chrono::Duration::minutes(210)).time()
}

async fn load_hours(
    state: &WebState,
    tenant: &desk_db::Tenant,
) -> Result<(Vec<DeskHours>, desk_core::calendar::WorkingCalendar), DomainError> {
    let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
    let hours = appointments::desk_hours(&mut tx).await?;
    let calendar = desk_db::settings::working_calendar(&mut tx, local_today()).await?;
    tx.commit().await?;
    Ok((hours.into_iter().map(|(_, h)| h).collect(), calendar))
}

async fn show_slots(
    State(state): State<WebState>,
    me: CitizenSession,
    Path(code): Path<String>,
) -> Response {
    let service = match published_card(&state, &me.tenant, &code).await {
        Ok(Some(s)) => s,
        Ok(None) => return no_service(&state, &me.tenant),
        Err(e) => return citizen_failure(&state, &me.tenant, &e),
    };
    let found = async {
        let (hours, calendar) = load_hours(&state, &me.tenant).await?;
        let today = local_today();
        let offered = slots(&hours, &calendar, today, BOOKING_DAYS);
        let last = today + chrono::Duration::days(i64::from(BOOKING_DAYS));
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let taken = appointments::booked(&mut tx, today, last).await?;
        tx.commit().await?;
        Ok::<_, DomainError>((offered, taken))
    }
    .await;
    match found {
        Ok((offered, taken)) => {
            let now = local_now();
            let today = local_today();
            let items: Vec<_> = offered
                .iter()
                .filter(|s| s.day > today || s.starts > now)
                .filter_map(|s| {
                    let used = taken
                        .iter()
                        .find(|(d, t, _)| *d == s.day && *t == s.starts)
                        .map_or(0, |x| x.2);
                    let left = i64::from(s.capacity) - used;
                    (left > 0).then(|| {
                        json!({
                            "day": s.day.to_string(), "starts": s.starts.format("%H:%M").to_string(),
                            "day_fa": jalali_fa(s.day), "starts_fa": hhmm(s.starts),
                            "left": persian_digits(&left.to_string()),
                        })
                    })
                })
                .collect();
            render(
                &state,
                StatusCode::OK,
                "appointments.html.j2",
                json!({ "tenant": TenantView::of(&me.tenant), "s": { "code": service.card.code, "title": service.card.title_fa },
                        "slots": items, "csrf": me.csrf }),
            )
        }
        Err(e) => citizen_failure(&state, &me.tenant, &e),
    }
}

#[derive(Debug, Deserialize)]
struct BookForm {
    #[serde(default)]
    csrf: String,
    /// `yyyy-mm-dd HH:MM`, as the slot list offers it.
    #[serde(default)]
    slot: String,
}

async fn book(
    State(state): State<WebState>,
    me: CitizenSession,
    Path(code): Path<String>,
    Form(form): Form<BookForm>,
) -> Response {
    let done = async {
        me.check_csrf(&form.csrf)?;
        let service = published_card(&state, &me.tenant, &code)
            .await?
            .ok_or(DomainError::NotFound)?;
        let not_offered = || {
            DomainError::from(FieldErrors::single(
                "starts",
                "slot",
                "این نوبت ارائه نمی‌شود؛ یکی از نوبت‌های فهرست را برگزینید.",
            ))
        };
        let (day, starts) = form.slot.split_once(' ').ok_or_else(not_offered)?;
        let day: NaiveDate = day.parse().map_err(|_| not_offered())?;
        let starts = NaiveTime::parse_from_str(starts, "%H:%M").map_err(|_| not_offered())?;
        let (hours, calendar) = load_hours(&state, &me.tenant).await?;
        let today = local_today();
        let in_window = day >= today
            && day < today + chrono::Duration::days(i64::from(BOOKING_DAYS))
            && (day > today || starts > local_now());
        let slot = is_offered(&hours, &calendar, day, starts)
            .filter(|_| in_window)
            .ok_or_else(not_offered)?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let body = desk_db::sms_templates::render(
            &mut tx,
            desk_core::sms_templates::Event::AppointmentBooked,
            &json!({
                "municipality": me.tenant.name_fa, "service": service.card.title_fa,
                "date": jalali_fa(day), "time": hhmm(starts),
            }),
        )
        .await?;
        appointments::book(
            &mut tx,
            &service.card.code,
            &slot,
            Some(me.citizen.id),
            &me.citizen.mobile,
            &body,
        )
        .await
        .map_err(|e| match e {
            DomainError::Conflict(_) => DomainError::from(FieldErrors::single(
                "starts",
                "slot_full",
                "این نوبت پر شد یا پیش‌تر آن را گرفته‌اید؛ نوبت دیگری برگزینید.",
            )),
            other => other,
        })?;
        tx.commit().await
    }
    .await;
    match done {
        Ok(()) => Redirect::to("/my-appointments").into_response(),
        Err(e) => citizen_failure(&state, &me.tenant, &e),
    }
}

async fn my_appointments(State(state): State<WebState>, me: CitizenSession) -> Response {
    let found = async {
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let list = appointments::of_mobile(&mut tx, &me.citizen.mobile).await?;
        tx.commit().await?;
        Ok::<_, DomainError>(list)
    }
    .await;
    match found {
        Ok(list) => render(
            &state,
            StatusCode::OK,
            "my_appointments.html.j2",
            json!({
                "tenant": TenantView::of(&me.tenant), "csrf": me.csrf,
                "items": list.iter().map(|a| json!({
                    "id": a.id, "service": a.service_code, "day": jalali_fa(a.day), "starts": hhmm(a.starts),
                })).collect::<Vec<_>>(),
            }),
        ),
        Err(e) => citizen_failure(&state, &me.tenant, &e),
    }
}

#[derive(Debug, Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

async fn cancel(
    State(state): State<WebState>,
    me: CitizenSession,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let done = async {
        me.check_csrf(&form.csrf)?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        appointments::cancel(&mut tx, id, &me.citizen.mobile).await?;
        tx.commit().await
    }
    .await;
    match done {
        Ok(()) => Redirect::to("/my-appointments").into_response(),
        Err(e) => citizen_failure(&state, &me.tenant, &e),
    }
}

#[derive(Debug, Deserialize, Default)]
struct DayQuery {
    #[serde(default)]
    day: String,
}

/// The desk's list for a day: appointments in order and the day's walk-ins (the desk screen).
async fn day_list(
    State(state): State<WebState>,
    me: StaffSession,
    Query(q): Query<DayQuery>,
) -> Response {
    let day = q.day.parse().unwrap_or_else(|_| local_today());
    let found = async {
        me.require_on(&state, Resource::Request, Action::Read)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let list = appointments::of_day(&mut tx, day).await?;
        let walk_ins = desk_db::requests::walk_ins_of_day(&mut tx, day).await?;
        tx.commit().await?;
        Ok::<_, DomainError>((list, walk_ins))
    }
    .await;
    match found {
        Ok((list, walk_ins)) => render(
            &state,
            StatusCode::OK,
            "staff_appointments.html.j2",
            json!({
                "tenant": TenantView::of(&me.tenant), "csrf": me.csrf(), "day": jalali_fa(day),
                "items": list.iter().map(|a| json!({
                    "id": a.id, "service": a.service_code, "starts": hhmm(a.starts),
                    "mobile": persian_digits(&format!("0{}", a.mobile.trim_start_matches("+98"))),
                    "arrived": a.status == "arrived",
                })).collect::<Vec<_>>(),
                "walk_ins": walk_ins.iter().map(crate::requests::summary_view).collect::<Vec<_>>(),
            }),
        ),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

async fn arrived(
    State(state): State<WebState>,
    me: StaffSession,
    Path(id): Path<i64>,
    Form(form): Form<CsrfForm>,
) -> Response {
    let done = async {
        me.csrf_ok(&form.csrf)?;
        me.require_on(&state, Resource::Request, Action::Update)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        appointments::mark_arrived(&mut tx, id).await?;
        tx.commit().await
    }
    .await;
    match done {
        Ok(()) => Redirect::to("/staff/appointments").into_response(),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

#[derive(Debug, Deserialize)]
struct HoursForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    op: String,
    #[serde(default)]
    id: String,
    #[serde(default)]
    weekday: String,
    #[serde(default)]
    opens: String,
    #[serde(default)]
    closes: String,
    #[serde(default)]
    slot_minutes: String,
    #[serde(default)]
    capacity: String,
}

async fn change_desk_hours(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<HoursForm>,
) -> Response {
    let done = async {
        me.csrf_ok(&form.csrf)?;
        me.require_on(&state, Resource::Settings, Action::Update)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        if form.op == "delete" {
            let id = form.id.parse().map_err(|_| DomainError::NotFound)?;
            appointments::delete_desk_hours(&mut tx, id).await?;
        } else {
            let bad = || {
                DomainError::from(FieldErrors::single(
                    "desk_hours",
                    "desk_hours",
                    "روز، ساعت آغاز و پایان (مانند ۰۸:۰۰)، طول نوبت و ظرفیت را وارد کنید.",
                ))
            };
            let digits = |s: &str| desk_core::mobile::ascii_digits(s.trim());
            let time = |s: &str| NaiveTime::parse_from_str(&digits(s), "%H:%M").map_err(|_| bad());
            appointments::add_desk_hours(
                &mut tx,
                digits(&form.weekday).parse().map_err(|_| bad())?,
                time(&form.opens)?,
                time(&form.closes)?,
                digits(&form.slot_minutes).parse().map_err(|_| bad())?,
                digits(&form.capacity).parse().map_err(|_| bad())?,
            )
            .await?;
        }
        tx.commit().await
    }
    .await;
    match done {
        Ok(()) => Redirect::to("/staff/settings").into_response(),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}
