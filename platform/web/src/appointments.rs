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
use desk_core::appointments::{DeskHours, Slot, hours_of_service, is_offered, slots};
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
        .route("/appointments/{id}/move", get(show_move).post(move_booking))
        .route("/staff/appointments", get(day_list))
        .route("/staff/appointments/{id}/arrived", post(arrived))
        .route("/staff/settings/desk-hours", post(change_desk_hours))
}

fn hhmm(t: NaiveTime) -> String {
    persian_digits(&t.format("%H:%M").to_string())
}

/// Iran time of day now.
fn local_now() -> NaiveTime {
    desk_core::calendar::iran_time(chrono::Utc::now()).time()
}

/// The hours that apply to one service, the pool of places they share, and the working calendar.
async fn load_hours(
    state: &WebState,
    tenant: &desk_db::Tenant,
    service_code: &str,
) -> Result<(String, Vec<DeskHours>, desk_core::calendar::WorkingCalendar), DomainError> {
    let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
    let rows = appointments::desk_hours(&mut tx).await?;
    let calendar = desk_db::settings::working_calendar(&mut tx, local_today()).await?;
    tx.commit().await?;
    let rows: Vec<_> = rows
        .into_iter()
        .map(|r| (r.service_code, r.hours))
        .collect();
    let (pool, hours) = hours_of_service(&rows, service_code);
    Ok((pool, hours, calendar))
}

/// The slots of a service still open in the booking window, with the places left in each.
async fn open_slots(
    state: &WebState,
    tenant: &desk_db::Tenant,
    service_code: &str,
) -> Result<Vec<(Slot, i64)>, DomainError> {
    let (pool, hours, calendar) = load_hours(state, tenant, service_code).await?;
    let today = local_today();
    let offered = slots(&hours, &calendar, today, BOOKING_DAYS);
    let last = today + chrono::Duration::days(i64::from(BOOKING_DAYS));
    let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
    let taken = appointments::booked(&mut tx, &pool, today, last).await?;
    tx.commit().await?;
    let now = local_now();
    Ok(offered
        .into_iter()
        .filter(|s| s.day > today || s.starts > now)
        .filter_map(|s| {
            let used = taken
                .iter()
                .find(|(d, t, _)| *d == s.day && *t == s.starts)
                .map_or(0, |x| x.2);
            let left = i64::from(s.capacity) - used;
            (left > 0).then_some((s, left))
        })
        .collect())
}

/// The slot a form names (`yyyy-mm-dd HH:MM`), if the service offers it in the booking window,
/// with the pool it takes a place of.
async fn chosen_slot(
    state: &WebState,
    tenant: &desk_db::Tenant,
    service_code: &str,
    value: &str,
) -> Result<(String, Slot), DomainError> {
    let not_offered = || {
        DomainError::from(FieldErrors::single(
            "starts",
            "slot",
            "این نوبت ارائه نمی‌شود؛ یکی از نوبت‌های فهرست را برگزینید.",
        ))
    };
    let (day, starts) = value.split_once(' ').ok_or_else(not_offered)?;
    let day: NaiveDate = day.parse().map_err(|_| not_offered())?;
    let starts = NaiveTime::parse_from_str(starts, "%H:%M").map_err(|_| not_offered())?;
    let (pool, hours, calendar) = load_hours(state, tenant, service_code).await?;
    let today = local_today();
    let in_window = day >= today
        && day < today + chrono::Duration::days(i64::from(BOOKING_DAYS))
        && (day > today || starts > local_now());
    let slot = is_offered(&hours, &calendar, day, starts)
        .filter(|_| in_window)
        .ok_or_else(not_offered)?;
    Ok((pool, slot))
}

/// The confirmation SMS of a booking (or a move) in the municipality's words.
async fn booked_sms(
    tx: &mut desk_db::TenantTx,
    tenant: &desk_db::Tenant,
    service_title: &str,
    slot: &Slot,
) -> Result<desk_core::sms_templates::SmsBody, DomainError> {
    desk_db::sms_templates::render(
        tx,
        desk_core::sms_templates::Event::AppointmentBooked,
        &json!({
            "municipality": tenant.name_fa, "service": service_title,
            "date": jalali_fa(slot.day), "time": hhmm(slot.starts),
        }),
    )
    .await
}

fn slot_full(e: DomainError) -> DomainError {
    match e {
        DomainError::Conflict(_) => DomainError::from(FieldErrors::single(
            "starts",
            "slot_full",
            "این نوبت پر شد یا پیش‌تر آن را گرفته‌اید؛ نوبت دیگری برگزینید.",
        )),
        other => other,
    }
}

/// The slot list page, for a new booking or (with `moving`) for moving one.
fn slots_page(
    state: &WebState,
    me: &CitizenSession,
    service: &desk_db::catalog::PublishedService,
    open: &[(Slot, i64)],
    moving: Option<i64>,
) -> Response {
    let items: Vec<_> = open
        .iter()
        .map(|(s, left)| {
            json!({
                "day": s.day.to_string(), "starts": s.starts.format("%H:%M").to_string(),
                "day_fa": jalali_fa(s.day), "starts_fa": hhmm(s.starts),
                "left": persian_digits(&left.to_string()),
            })
        })
        .collect();
    let action = match moving {
        Some(id) => format!("/appointments/{id}/move"),
        None => format!("/services/{}/appointments", service.card.code),
    };
    render(
        state,
        StatusCode::OK,
        "appointments.html.j2",
        json!({ "tenant": TenantView::of(&me.tenant), "s": { "code": service.card.code, "title": service.card.title_fa },
                "slots": items, "csrf": me.csrf, "action": action, "moving": moving.is_some() }),
    )
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
    match open_slots(&state, &me.tenant, &service.card.code).await {
        Ok(open) => slots_page(&state, &me, &service, &open, None),
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
        let (pool, slot) = chosen_slot(&state, &me.tenant, &service.card.code, &form.slot).await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let body = booked_sms(&mut tx, &me.tenant, &service.card.title_fa, &slot).await?;
        appointments::book(
            &mut tx,
            &service.card.code,
            &pool,
            &slot,
            Some(me.citizen.id),
            &me.citizen.mobile,
            &body,
        )
        .await
        .map_err(slot_full)?;
        tx.commit().await
    }
    .await;
    match done {
        Ok(()) => Redirect::to("/my-appointments").into_response(),
        Err(e) => citizen_failure(&state, &me.tenant, &e),
    }
}

/// The citizen's own booking and its service (`NotFound` for anyone else's).
async fn own_booking(
    state: &WebState,
    me: &CitizenSession,
    id: i64,
) -> Result<
    (
        appointments::Appointment,
        desk_db::catalog::PublishedService,
    ),
    DomainError,
> {
    let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
    let booking = appointments::own(&mut tx, id, &me.citizen.mobile).await?;
    tx.commit().await?;
    let service = published_card(state, &me.tenant, &booking.service_code)
        .await?
        .ok_or(DomainError::NotFound)?;
    Ok((booking, service))
}

async fn show_move(
    State(state): State<WebState>,
    me: CitizenSession,
    Path(id): Path<i64>,
) -> Response {
    let found = async {
        let (_, service) = own_booking(&state, &me, id).await?;
        let open = open_slots(&state, &me.tenant, &service.card.code).await?;
        Ok::<_, DomainError>((service, open))
    }
    .await;
    match found {
        Ok((service, open)) => slots_page(&state, &me, &service, &open, Some(id)),
        Err(e) => citizen_failure(&state, &me.tenant, &e),
    }
}

/// Moves a booking to another open slot of the same service in one transaction: the new place
/// is taken (or the move refused) and the old one freed together.
async fn move_booking(
    State(state): State<WebState>,
    me: CitizenSession,
    Path(id): Path<i64>,
    Form(form): Form<BookForm>,
) -> Response {
    let done = async {
        me.check_csrf(&form.csrf)?;
        let (_, service) = own_booking(&state, &me, id).await?;
        let (pool, slot) = chosen_slot(&state, &me.tenant, &service.card.code, &form.slot).await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let body = booked_sms(&mut tx, &me.tenant, &service.card.title_fa, &slot).await?;
        appointments::reschedule(&mut tx, id, &me.citizen.mobile, &pool, &slot, &body)
            .await
            .map_err(slot_full)?;
        tx.commit().await
    }
    .await;
    match done {
        Ok(()) => Redirect::to("/my-appointments").into_response(),
        Err(e) => citizen_failure(&state, &me.tenant, &e),
    }
}

/// A service's title by code (the code itself if it is no longer published).
fn service_title(services: &[desk_db::catalog::PublishedService], code: &str) -> String {
    services
        .iter()
        .find(|s| s.card.code == code)
        .map_or_else(|| code.to_owned(), |s| s.card.title_fa.clone())
}

async fn my_appointments(State(state): State<WebState>, me: CitizenSession) -> Response {
    let found = async {
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let list = appointments::of_mobile(&mut tx, &me.citizen.mobile).await?;
        let services = desk_db::catalog::published_services(&mut tx, None, None).await?;
        tx.commit().await?;
        Ok::<_, DomainError>((list, services))
    }
    .await;
    match found {
        Ok((list, services)) => render(
            &state,
            StatusCode::OK,
            "my_appointments.html.j2",
            json!({
                "tenant": TenantView::of(&me.tenant), "csrf": me.csrf,
                "items": list.iter().map(|a| json!({
                    "id": a.id, "service": service_title(&services, &a.service_code), "day": jalali_fa(a.day), "starts": hhmm(a.starts),
                })).collect::<Vec<_>>(),
            }),
        ),
        Err(e) => citizen_failure(&state, &me.tenant, &e),
    }
}

async fn cancel(
    State(state): State<WebState>,
    me: CitizenSession,
    Path(id): Path<i64>,
    Form(form): Form<crate::CsrfForm>,
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
        me.require_requests(&state, Action::Read).await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let list = appointments::of_day(&mut tx, day).await?;
        let walk_ins = desk_db::requests::walk_ins_of_day(&mut tx, day).await?;
        let services = desk_db::catalog::published_services(&mut tx, None, None).await?;
        tx.commit().await?;
        Ok::<_, DomainError>((list, walk_ins, services))
    }
    .await;
    match found {
        Ok((list, walk_ins, services)) => render(
            &state,
            StatusCode::OK,
            "staff_appointments.html.j2",
            json!({
                "tenant": TenantView::of(&me.tenant), "csrf": me.csrf(), "day": jalali_fa(day),
                "is_today": day == local_today(),
                "items": list.iter().map(|a| json!({
                    "id": a.id, "service": service_title(&services, &a.service_code), "starts": hhmm(a.starts),
                    "mobile": persian_digits(&desk_core::mobile::local_form(&a.mobile)),
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
    Form(form): Form<crate::CsrfForm>,
) -> Response {
    let done = async {
        me.csrf_ok(&form.csrf)?;
        me.require_requests(&state, Action::Update).await?;
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
    /// Empty for the shared desk, else the service whose own desk these hours are.
    #[serde(default)]
    service: String,
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
            let service = form.service.trim();
            let service = if service.is_empty() {
                None
            } else if desk_db::catalog::published_service(&mut tx, service)
                .await?
                .is_some()
            {
                Some(service)
            } else {
                return Err(FieldErrors::single(
                    "service",
                    "service",
                    "خدمت برگزیده در فهرست خدمت‌های منتشرشده نیست.",
                )
                .into());
            };
            appointments::add_desk_hours(
                &mut tx,
                service,
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
