//! Tenant repository: desk hours and appointments. Booking serializes on the slot (an advisory
//! lock per municipality, pool, day and time), counts the pool's live bookings and inserts only
//! below the slot's capacity, so concurrent bookings for the last place produce exactly one
//! booking. A service with desk hours of its own has its own pool of places; the others share
//! the desk's.

use crate::internal;
use crate::notifications::{self, Kind};
use crate::tenant_tx::TenantTx;
use chrono::{NaiveDate, NaiveTime};
use desk_core::appointments::{DeskHours, Slot};
use desk_core::sms_templates::SmsBody;
use desk_core::{DomainError, FieldErrors};
use sqlx::Row;

/// One row of desk hours: the shared desk's (no service) or one service's own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeskRow {
    /// Row id.
    pub id: i64,
    /// The service these hours belong to; `None` for the shared desk.
    pub service_code: Option<String>,
    /// The hours.
    pub hours: DeskHours,
}

/// The desk hours: the shared desk's first, then each service's, by weekday and opening time.
pub async fn desk_hours(tx: &mut TenantTx) -> Result<Vec<DeskRow>, DomainError> {
    let rows = sqlx::query(
        "select id, service_code, weekday, opens, closes, slot_minutes, capacity from desk_hours
          order by service_code nulls first, weekday, opens",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let iso: i16 = r.try_get("weekday").map_err(internal)?;
        let Some(weekday) = u32::try_from(iso)
            .ok()
            .and_then(desk_core::calendar::weekday_from_iso)
        else {
            continue;
        };
        let minutes: i32 = r.try_get("slot_minutes").map_err(internal)?;
        let capacity: i32 = r.try_get("capacity").map_err(internal)?;
        out.push(DeskRow {
            id: r.try_get("id").map_err(internal)?,
            service_code: r.try_get("service_code").map_err(internal)?,
            hours: DeskHours {
                weekday,
                opens: r.try_get("opens").map_err(internal)?,
                closes: r.try_get("closes").map_err(internal)?,
                slot_minutes: u32::try_from(minutes).unwrap_or(0),
                capacity: u32::try_from(capacity).unwrap_or(0),
            },
        });
    }
    Ok(out)
}

/// Adds desk hours for one ISO weekday, to the shared desk or to one service's own desk.
pub async fn add_desk_hours(
    tx: &mut TenantTx,
    service_code: Option<&str>,
    iso_weekday: u32,
    opens: NaiveTime,
    closes: NaiveTime,
    slot_minutes: u32,
    capacity: u32,
) -> Result<(), DomainError> {
    if closes <= opens
        || !(5..=240).contains(&slot_minutes)
        || !(1..=100).contains(&capacity)
        || !(1..=7).contains(&iso_weekday)
    {
        return Err(FieldErrors::single(
            "desk_hours",
            "desk_hours",
            "ساعت پایان باید پس از آغاز باشد، طول هر نوبت ۵ تا ۲۴۰ دقیقه و ظرفیت ۱ تا ۱۰۰ نفر.",
        )
        .into());
    }
    sqlx::query(
        "insert into desk_hours (service_code, weekday, opens, closes, slot_minutes, capacity)
         values ($1, $2, $3, $4, $5, $6)",
    )
    .bind(service_code)
    .bind(i16::try_from(iso_weekday).unwrap_or(1))
    .bind(opens)
    .bind(closes)
    .bind(i32::try_from(slot_minutes).unwrap_or(5))
    .bind(i32::try_from(capacity).unwrap_or(1))
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(())
}

/// Removes one row of desk hours (existing bookings stay).
pub async fn delete_desk_hours(tx: &mut TenantTx, id: i64) -> Result<(), DomainError> {
    sqlx::query("delete from desk_hours where id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    Ok(())
}

/// Live bookings per slot of one pool between two days (inclusive).
pub async fn booked(
    tx: &mut TenantTx,
    pool: &str,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<Vec<(NaiveDate, NaiveTime, i64)>, DomainError> {
    sqlx::query_as(
        "select day, starts, count(*) from appointments
          where pool = $1 and day between $2 and $3 and status <> 'cancelled'
          group by day, starts",
    )
    .bind(pool)
    .bind(from)
    .bind(to)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)
}

/// An appointment.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Appointment {
    /// Row id.
    pub id: i64,
    /// Service code.
    pub service_code: String,
    /// Day.
    pub day: NaiveDate,
    /// Start time.
    pub starts: NaiveTime,
    /// Mobile of the person.
    pub mobile: String,
    /// `booked`, `cancelled`, `arrived`.
    pub status: String,
}

/// Serializes bookings of one slot of one pool (until the transaction ends) and fails with
/// `Conflict` when its places are taken.
async fn hold_place(tx: &mut TenantTx, pool: &str, slot: &Slot) -> Result<(), DomainError> {
    sqlx::query(
        "select pg_advisory_xact_lock(hashtextextended(current_schema() || ':slot:' || $1 || ' ' || $2 || ' ' || $3, 0))",
    )
    .bind(pool)
    .bind(slot.day.to_string())
    .bind(slot.starts.to_string())
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    let taken: i64 = sqlx::query_scalar(
        "select count(*) from appointments
          where pool = $1 and day = $2 and starts = $3 and status <> 'cancelled'",
    )
    .bind(pool)
    .bind(slot.day)
    .bind(slot.starts)
    .fetch_one(&mut **tx)
    .await
    .map_err(internal)?;
    if taken >= i64::from(slot.capacity) {
        return Err(DomainError::Conflict("the slot is full".into()));
    }
    Ok(())
}

fn taken_slot(e: sqlx::Error) -> DomainError {
    match crate::unique_violation(&e) {
        Some(_) => DomainError::Conflict("already booked in this slot".into()),
        None => internal(e),
    }
}

/// Books `slot` of `pool` (see [`desk_core::appointments::hours_of_service`]) for `mobile` if a
/// place is left; queues the confirmation SMS `sms_body`.
pub async fn book(
    tx: &mut TenantTx,
    service_code: &str,
    pool: &str,
    slot: &Slot,
    citizen_id: Option<i64>,
    mobile: &str,
    sms_body: &SmsBody,
) -> Result<Appointment, DomainError> {
    hold_place(tx, pool, slot).await?;
    let appointment: Appointment = sqlx::query_as(
        "insert into appointments (service_code, pool, day, starts, citizen_id, mobile)
         values ($1, $2, $3, $4, $5, $6)
         returning id, service_code, day, starts, mobile, status",
    )
    .bind(service_code)
    .bind(pool)
    .bind(slot.day)
    .bind(slot.starts)
    .bind(citizen_id)
    .bind(mobile)
    .fetch_one(&mut **tx)
    .await
    .map_err(taken_slot)?;
    notifications::queue_sms(tx, Kind::Appointment, mobile, sms_body, None).await?;
    Ok(appointment)
}

/// One live appointment of `mobile` (`NotFound` for anyone else's or a past one's).
pub async fn own(tx: &mut TenantTx, id: i64, mobile: &str) -> Result<Appointment, DomainError> {
    sqlx::query_as(
        "select id, service_code, day, starts, mobile, status from appointments
          where id = $1 and mobile = $2 and status = 'booked'",
    )
    .bind(id)
    .bind(mobile)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?
    .ok_or(DomainError::NotFound)
}

/// Moves a citizen's own booking to `slot` of `pool` if a place is left there (the old place
/// is freed in the same transaction); queues the confirmation SMS `sms_body` and sends a new
/// reminder the day before.
pub async fn reschedule(
    tx: &mut TenantTx,
    id: i64,
    mobile: &str,
    pool: &str,
    slot: &Slot,
    sms_body: &SmsBody,
) -> Result<Appointment, DomainError> {
    own(tx, id, mobile).await?;
    hold_place(tx, pool, slot).await?;
    let moved: Appointment = sqlx::query_as(
        "update appointments set day = $3, starts = $4, pool = $5, reminded_at = null, changed_at = now()
          where id = $1 and mobile = $2 and status = 'booked'
         returning id, service_code, day, starts, mobile, status",
    )
    .bind(id)
    .bind(mobile)
    .bind(slot.day)
    .bind(slot.starts)
    .bind(pool)
    .fetch_optional(&mut **tx)
    .await
    .map_err(taken_slot)?
    .ok_or(DomainError::NotFound)?;
    notifications::queue_sms(tx, Kind::Appointment, mobile, sms_body, None).await?;
    Ok(moved)
}

/// Takes the live appointments of `day` not yet reminded, marking them reminded (the caller
/// queues the SMS in the same transaction, so each is reminded once).
pub async fn take_reminders(
    tx: &mut TenantTx,
    day: NaiveDate,
) -> Result<Vec<Appointment>, DomainError> {
    sqlx::query_as(
        "update appointments set reminded_at = now()
          where day = $1 and status = 'booked' and reminded_at is null
         returning id, service_code, day, starts, mobile, status",
    )
    .bind(day)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)
}

/// The live appointments of a mobile number, soonest first.
pub async fn of_mobile(tx: &mut TenantTx, mobile: &str) -> Result<Vec<Appointment>, DomainError> {
    sqlx::query_as(
        "select id, service_code, day, starts, mobile, status from appointments
          where mobile = $1 and status = 'booked' order by day, starts",
    )
    .bind(mobile)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)
}

/// A day's appointments in order (the desk's list).
pub async fn of_day(tx: &mut TenantTx, day: NaiveDate) -> Result<Vec<Appointment>, DomainError> {
    sqlx::query_as(
        "select id, service_code, day, starts, mobile, status from appointments
          where day = $1 and status <> 'cancelled' order by starts, id",
    )
    .bind(day)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)
}

/// Cancels a citizen's own booking (by mobile); `NotFound` for anyone else's.
pub async fn cancel(tx: &mut TenantTx, id: i64, mobile: &str) -> Result<(), DomainError> {
    let done = sqlx::query(
        "update appointments set status = 'cancelled', changed_at = now()
          where id = $1 and mobile = $2 and status = 'booked'",
    )
    .bind(id)
    .bind(mobile)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    crate::one_row(done)
}

/// Marks that the person arrived at the desk.
pub async fn mark_arrived(tx: &mut TenantTx, id: i64) -> Result<(), DomainError> {
    let done = sqlx::query(
        "update appointments set status = 'arrived', changed_at = now() where id = $1 and status = 'booked'",
    )
    .bind(id)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    crate::one_row(done)
}
