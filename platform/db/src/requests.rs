//! Tenant repository: citizens' requests, their timeline (events) and files, units, and the
//! staff inbox.
//!
//! Rules (forms, workflow, promised dates) are decided by the caller with desk-core; this
//! module stores their outcome atomically: a submission writes the request, its first event,
//! its files' records and its notification with the `send_sms` job in the caller's one
//! transaction.

use crate::tenant_tx::TenantTx;
use crate::{internal, unique_violation};
use chrono::{DateTime, NaiveDate, Utc};
use desk_core::DomainError;
use desk_core::jobs::RefreshIndicators;
use desk_core::jobs::Windowed;
use desk_core::tracking::TrackingCode;
use sqlx::Row;

/// How a request reached the municipality.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// The citizen portal.
    Web,
    /// The in-person desk.
    InPerson,
    /// The tenant GraphQL API.
    Api,
    /// Open311 GeoReport v2.
    Open311,
}

impl Channel {
    /// Stored key.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Web => "web",
            Self::InPerson => "in_person",
            Self::Api => "api",
            Self::Open311 => "open311",
        }
    }

    /// Persian label.
    pub fn label_fa(key: &str) -> &'static str {
        match key {
            "web" => "اینترنتی",
            "in_person" => "حضوری",
            "api" => "سامانه‌ای",
            "open311" => "Open311",
            _ => "نامشخص",
        }
    }
}

/// A file already written to the object store, to be recorded with the request.
#[derive(Debug, Clone)]
pub struct NewFile {
    /// Form field it answers.
    pub field: String,
    /// Sanitized name.
    pub file_name: String,
    /// Type detected from the content.
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    /// SHA-256 of the content.
    pub sha256: Vec<u8>,
    /// Key in the object store (under the tenant's prefix).
    pub storage_key: String,
}

/// Everything a submission stores.
#[derive(Debug, Clone)]
pub struct NewRequest {
    /// Row id of the published card version it is filed under.
    pub service_id: i64,
    /// Service code.
    pub service_code: String,
    /// The signed-in citizen, if any.
    pub citizen_id: Option<i64>,
    /// Canonical mobile number for updates and lookup.
    pub mobile: String,
    /// National code of the applicant, if the form has one.
    pub national_code: Option<String>,
    /// Name of the applicant, if the form has one.
    pub applicant_name: Option<String>,
    /// Channel.
    pub channel: Channel,
    /// The validated form values.
    pub form: serde_json::Map<String, serde_json::Value>,
    /// Day of submission (municipality's calendar).
    pub submitted_on: NaiveDate,
    /// Promised answer date.
    pub promised_on: NaiveDate,
    /// The workflow's initial state.
    pub state: String,
    /// When the initial state's SLA ends.
    pub state_due_on: Option<NaiveDate>,
    /// Staff member who registered it (in-person desk).
    pub registered_by: Option<i64>,
    /// Name of the unit responsible for the service (found or added).
    pub unit_name: Option<String>,
    /// Makes a repeated submission return the first one.
    pub idempotency_key: Option<String>,
    /// Files.
    pub files: Vec<NewFile>,
}

/// A request as its pages show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Row id (never shown to citizens).
    pub id: i64,
    /// Tracking code.
    pub tracking_code: String,
    /// Service code.
    pub service_code: String,
    /// Card version id.
    pub service_id: i64,
    /// Service title (of the version filed under).
    pub service_title: String,
    /// Citizen row, if filed signed in.
    pub citizen_id: Option<i64>,
    /// Mobile.
    pub mobile: String,
    /// National code.
    pub national_code: Option<String>,
    /// Applicant name.
    pub applicant_name: Option<String>,
    /// Channel key.
    pub channel: String,
    /// Current state key.
    pub state: String,
    /// In a terminal state.
    pub closed: bool,
    /// Form values.
    pub form: serde_json::Value,
    /// When filed.
    pub submitted_at: DateTime<Utc>,
    /// Day filed.
    pub submitted_on: NaiveDate,
    /// Promised answer date.
    pub promised_on: NaiveDate,
    /// When the current state's SLA ends.
    pub state_due_on: Option<NaiveDate>,
    /// Responsible unit.
    pub unit: Option<(i64, String)>,
    /// Responsible staff member.
    pub assignee: Option<(i64, String)>,
    /// Who registered it at the desk.
    pub registered_by: Option<(i64, String)>,
    /// Last change (state, assignment).
    pub updated_at: DateTime<Utc>,
}

const REQUEST_SELECT: &str = "select r.id, r.tracking_code, r.service_code, r.service_id, s.title as service_title,
            r.citizen_id, r.mobile, r.national_code, r.applicant_name, r.channel, r.state, r.closed, r.form,
            r.submitted_at, r.submitted_on, r.promised_on, r.state_due_on, r.updated_at,
            u.id as unit_id, u.name as unit_name, a.id as assignee_id, a.display_name as assignee_name,
            g.id as registrar_id, g.display_name as registrar_name
       from requests r
       join services s on s.id = r.service_id
       left join units u on u.id = r.unit_id
       left join staff a on a.id = r.assignee_id
       left join staff g on g.id = r.registered_by";

fn pair(
    r: &sqlx::postgres::PgRow,
    id: &str,
    name: &str,
) -> Result<Option<(i64, String)>, DomainError> {
    let id: Option<i64> = r.try_get(id).map_err(internal)?;
    let name: Option<String> = r.try_get(name).map_err(internal)?;
    Ok(id.zip(name))
}

fn request_from_row(r: &sqlx::postgres::PgRow) -> Result<Request, DomainError> {
    Ok(Request {
        id: r.try_get("id").map_err(internal)?,
        tracking_code: r.try_get("tracking_code").map_err(internal)?,
        service_code: r.try_get("service_code").map_err(internal)?,
        service_id: r.try_get("service_id").map_err(internal)?,
        service_title: r.try_get("service_title").map_err(internal)?,
        citizen_id: r.try_get("citizen_id").map_err(internal)?,
        mobile: r.try_get("mobile").map_err(internal)?,
        national_code: r.try_get("national_code").map_err(internal)?,
        applicant_name: r.try_get("applicant_name").map_err(internal)?,
        channel: r.try_get("channel").map_err(internal)?,
        state: r.try_get("state").map_err(internal)?,
        closed: r.try_get("closed").map_err(internal)?,
        form: r.try_get("form").map_err(internal)?,
        submitted_at: r.try_get("submitted_at").map_err(internal)?,
        submitted_on: r.try_get("submitted_on").map_err(internal)?,
        promised_on: r.try_get("promised_on").map_err(internal)?,
        state_due_on: r.try_get("state_due_on").map_err(internal)?,
        unit: pair(r, "unit_id", "unit_name")?,
        assignee: pair(r, "assignee_id", "assignee_name")?,
        registered_by: pair(r, "registrar_id", "registrar_name")?,
        updated_at: r.try_get("updated_at").map_err(internal)?,
    })
}

/// The outcome of a submission.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// A new request.
    Created(Request),
    /// The same idempotency key was seen before: the first request, unchanged.
    Replayed(Request),
}

impl Submitted {
    /// The request either way.
    pub fn request(&self) -> &Request {
        match self {
            Self::Created(r) | Self::Replayed(r) => r,
        }
    }
}

/// Stores a submission: the request, its first event, its files and the SMS with the tracking
/// code (and its job), all in `tx`. A replayed idempotency key returns the first request
/// when it belongs to the same mobile number, and is refused otherwise.
pub async fn submit(
    tx: &mut TenantTx,
    new: &NewRequest,
) -> Result<(Submitted, Option<i64>), DomainError> {
    if let Some(key) = &new.idempotency_key {
        // Concurrent double submits wait for each other here.
        sqlx::query("select pg_advisory_xact_lock(hashtextextended(current_schema() || ':submit:' || $1, 0))")
            .bind(key)
            .execute(&mut **tx)
            .await
            .map_err(internal)?;
        let first: Option<(i64, String)> =
            sqlx::query_as("select id, mobile from requests where idempotency_key = $1")
                .bind(key)
                .fetch_optional(&mut **tx)
                .await
                .map_err(internal)?;
        if let Some((id, mobile)) = first {
            if mobile != new.mobile {
                return Err(DomainError::Conflict("idempotency key reused".into()));
            }
            let request = request_by_id(tx, id).await?.ok_or(DomainError::NotFound)?;
            return Ok((Submitted::Replayed(request), None));
        }
    }
    let form = serde_json::Value::Object(new.form.clone());
    let unit_id = match &new.unit_name {
        Some(name) => Some(unit_by_name(tx, name).await?),
        None => None,
    };
    let mut attempt = 0;
    let id = loop {
        attempt += 1;
        let tracking = TrackingCode::generate();
        let inserted = sqlx::query_scalar::<_, i64>(
            "insert into requests (tracking_code, service_id, service_code, citizen_id, mobile,
                 national_code, applicant_name, channel, state, form, submitted_on, promised_on,
                 state_due_on, registered_by, idempotency_key, unit_id)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
             on conflict on constraint requests_tracking_code_key do nothing
             returning id",
        )
        .bind(tracking.as_str())
        .bind(new.service_id)
        .bind(&new.service_code)
        .bind(new.citizen_id)
        .bind(&new.mobile)
        .bind(&new.national_code)
        .bind(&new.applicant_name)
        .bind(new.channel.as_str())
        .bind(&new.state)
        .bind(&form)
        .bind(new.submitted_on)
        .bind(new.promised_on)
        .bind(new.state_due_on)
        .bind(new.registered_by)
        .bind(&new.idempotency_key)
        .bind(unit_id)
        .fetch_optional(&mut **tx)
        .await
        .map_err(internal)?;
        match inserted {
            Some(id) => break id,
            // A collision among 10^11 codes: draw again.
            None if attempt < 5 => continue,
            None => {
                return Err(DomainError::Internal(anyhow::anyhow!(
                    "no free tracking code after {attempt} draws"
                )));
            }
        }
    };
    let event_id = insert_event(
        tx,
        id,
        &EventInput {
            actor: new.registered_by.map_or(Actor::Citizen, Actor::Staff),
            action: "submit",
            from_state: None,
            to_state: &new.state,
            note: None,
            unit_id: None,
        },
    )
    .await?;
    insert_files(tx, id, Some(event_id), &new.files).await?;
    let request = request_by_id(tx, id).await?.ok_or(DomainError::NotFound)?;
    Ok((Submitted::Created(request), Some(event_id)))
}

async fn insert_files(
    tx: &mut TenantTx,
    request_id: i64,
    event_id: Option<i64>,
    files: &[NewFile],
) -> Result<(), DomainError> {
    for f in files {
        sqlx::query(
            "insert into request_files (request_id, event_id, field, file_name, content_type, size, sha256, storage_key)
             values ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(request_id)
        .bind(event_id)
        .bind(&f.field)
        .bind(&f.file_name)
        .bind(&f.content_type)
        .bind(f.size)
        .bind(&f.sha256)
        .bind(&f.storage_key)
        .execute(&mut **tx)
        .await
        .map_err(|e| match unique_violation(&e) {
            Some(_) => DomainError::Conflict("file stored twice".into()),
            None => internal(e),
        })?;
    }
    Ok(())
}

/// Who did something on a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The citizen.
    Citizen,
    /// A staff member, by id.
    Staff(i64),
    /// The system (a job).
    System,
    /// An integrator, by the id of the API key it used.
    ApiKey(i64),
}

/// One event to record.
#[derive(Debug, Clone)]
pub struct EventInput<'a> {
    /// Who.
    pub actor: Actor,
    /// Workflow action key.
    pub action: &'a str,
    /// State before.
    pub from_state: Option<&'a str>,
    /// State after.
    pub to_state: &'a str,
    /// Note (reason, message to the citizen).
    pub note: Option<&'a str>,
    /// Unit forwarded to.
    pub unit_id: Option<i64>,
}

async fn insert_event(
    tx: &mut TenantTx,
    request_id: i64,
    e: &EventInput<'_>,
) -> Result<i64, DomainError> {
    let (kind, staff_id, key_id) = match e.actor {
        Actor::Citizen => ("citizen", None, None),
        Actor::Staff(id) => ("staff", Some(id), None),
        Actor::System => ("system", None, None),
        Actor::ApiKey(id) => ("api", None, Some(id)),
    };
    sqlx::query_scalar(
        "insert into request_events (request_id, actor_kind, staff_id, action, from_state, to_state, note, unit_id, api_key_id)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning id",
    )
    .bind(request_id)
    .bind(kind)
    .bind(staff_id)
    .bind(e.action)
    .bind(e.from_state)
    .bind(e.to_state)
    .bind(e.note)
    .bind(e.unit_id)
    .bind(key_id)
    .fetch_one(&mut **tx)
    .await
    .map_err(internal)
}

/// A state change decided by the workflow, to store.
#[derive(Debug, Clone)]
pub struct Change<'a> {
    /// The event.
    pub event: EventInput<'a>,
    /// When the new state's SLA ends.
    pub state_due_on: Option<NaiveDate>,
    /// Whether the new state is terminal (the request leaves the open inbox).
    pub closes: bool,
    /// Files the citizen added with this step.
    pub files: Vec<NewFile>,
}

/// Applies a change if the request is still in `event.from_state` (someone else may have
/// acted meanwhile: then `Conflict`). Forwarding sets the unit and clears the assignee.
/// Returns the event id.
pub async fn apply_change(
    tx: &mut TenantTx,
    request: &Request,
    change: &Change<'_>,
) -> Result<i64, DomainError> {
    let updated = sqlx::query(
        "update requests
            set state = $3,
                state_since = case when state = $3 then state_since else now() end,
                state_due_on = case when state = $3 then state_due_on else $4 end,
                unit_id = coalesce($5, unit_id),
                assignee_id = case when $5::bigint is null then assignee_id else null end,
                closed = $6,
                closed_on = case when $6 then $7::date end,
                updated_at = now()
          where id = $1 and state = $2",
    )
    .bind(request.id)
    .bind(change.event.from_state)
    .bind(change.event.to_state)
    .bind(change.state_due_on)
    .bind(change.event.unit_id)
    .bind(change.closes)
    .bind(desk_core::calendar::today_in_iran())
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    if updated.rows_affected() != 1 {
        return Err(DomainError::Conflict(
            "the request changed meanwhile".into(),
        ));
    }
    let event_id = insert_event(tx, request.id, &change.event).await?;
    insert_files(tx, request.id, Some(event_id), &change.files).await?;
    Ok(event_id)
}

/// An event on an open request's timeline that leaves its state as it is (an inquiry's end,
/// an SLA warning): nothing follows from it but the line. Returns the event id.
pub async fn note(
    tx: &mut TenantTx,
    request: &Request,
    actor: Actor,
    action: &str,
    note: &str,
) -> Result<i64, DomainError> {
    apply_change(
        tx,
        request,
        &Change {
            event: EventInput {
                actor,
                action,
                from_state: Some(&request.state),
                to_state: &request.state,
                note: Some(note),
                unit_id: None,
            },
            state_due_on: request.state_due_on,
            closes: false,
            files: Vec::new(),
        },
    )
    .await
}

/// Makes sure the municipality's dashboard indicators are recomputed at the end of the current
/// window (one job per window, however many changes it sees).
pub async fn refresh_indicators_soon(tx: &mut TenantTx) -> Result<(), DomainError> {
    let job = RefreshIndicators::covering(tx.tenant_id(), Utc::now().timestamp());
    crate::jobs::enqueue_once_at(tx, &job, job.run_at()).await?;
    Ok(())
}

/// Open requests whose step (or answer) is due tomorrow and whose staff were not yet warned
/// today; marks them warned.
pub async fn take_due_tomorrow(
    tx: &mut TenantTx,
    today: NaiveDate,
) -> Result<Vec<Request>, DomainError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "update requests set sla_warned_on = $1
          where not closed and (sla_warned_on is null or sla_warned_on < $1)
            and least(coalesce(state_due_on, promised_on), promised_on) = $1 + 1
          returning id",
    )
    .bind(today)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    by_ids(tx, &ids).await
}

/// Open requests past their promised date and not yet escalated; marks them escalated.
pub async fn take_overdue(
    tx: &mut TenantTx,
    today: NaiveDate,
) -> Result<Vec<Request>, DomainError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "update requests set escalated_at = now()
          where not closed and escalated_at is null and promised_on < $1
          returning id",
    )
    .bind(today)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    by_ids(tx, &ids).await
}

async fn by_ids(tx: &mut TenantTx, ids: &[i64]) -> Result<Vec<Request>, DomainError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(r) = request_by_id(tx, *id).await? {
            out.push(r);
        }
    }
    Ok(out)
}

/// One request by row id.
pub async fn request_by_id(tx: &mut TenantTx, id: i64) -> Result<Option<Request>, DomainError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{REQUEST_SELECT} where r.id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    row.as_ref().map(request_from_row).transpose()
}

/// A request by tracking code, only when `mobile` is the one it was filed with (a public
/// lookup must not confirm that a code exists).
pub async fn request_by_tracking(
    tx: &mut TenantTx,
    tracking_code: &str,
    mobile: &str,
) -> Result<Option<Request>, DomainError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{REQUEST_SELECT} where r.tracking_code = $1 and r.mobile = $2"
    )))
    .bind(tracking_code)
    .bind(mobile)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    row.as_ref().map(request_from_row).transpose()
}

/// A request by tracking code (staff, inside their municipality).
pub async fn request_by_code(
    tx: &mut TenantTx,
    tracking_code: &str,
) -> Result<Option<Request>, DomainError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{REQUEST_SELECT} where r.tracking_code = $1"
    )))
    .bind(tracking_code)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    row.as_ref().map(request_from_row).transpose()
}

/// A citizen's requests, newest first.
pub async fn citizen_requests(
    tx: &mut TenantTx,
    citizen_id: i64,
    mobile: &str,
) -> Result<Vec<Request>, DomainError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{REQUEST_SELECT} where r.citizen_id = $1 or r.mobile = $2
         order by r.submitted_at desc limit 200"
    )))
    .bind(citizen_id)
    .bind(mobile)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    rows.iter().map(request_from_row).collect()
}

/// Which part of the inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Everything open.
    All,
    /// Assigned to this staff member.
    Mine(i64),
    /// In this unit.
    Unit(i64),
    /// Nobody's yet.
    Unassigned,
}

/// What a member whose role reaches only their unit may see: requests of their unit, requests
/// with no unit yet (the intake), and requests assigned to them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnitReach {
    /// The member.
    pub staff_id: i64,
    /// Their unit, if they have one.
    pub unit_id: Option<i64>,
}

impl UnitReach {
    /// Whether work may be given to a member of `unit` within this reach (the same unit).
    pub fn includes_unit(&self, unit: Option<i64>) -> bool {
        self.unit_id.is_some() && unit == self.unit_id
    }

    /// Whether `request` is within reach.
    pub fn covers(&self, request: &Request) -> bool {
        request
            .unit
            .as_ref()
            .is_none_or(|u| Some(u.0) == self.unit_id)
            || request
                .assignee
                .as_ref()
                .is_some_and(|a| a.0 == self.staff_id)
    }
}

/// A page of the inbox: open requests (or those in `state`), overdue and due soon first (by
/// promised date, then id), after the keyset cursor `(promised_on, id)`; only those within
/// `reach` when given.
pub async fn inbox(
    tx: &mut TenantTx,
    scope: Scope,
    reach: Option<UnitReach>,
    state: Option<&str>,
    after: Option<(NaiveDate, i64)>,
    limit: i64,
) -> Result<Vec<Request>, DomainError> {
    let (mine, unit, unassigned) = match scope {
        Scope::All => (None, None, false),
        Scope::Mine(id) => (Some(id), None, false),
        Scope::Unit(id) => (None, Some(id), false),
        Scope::Unassigned => (None, None, true),
    };
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{REQUEST_SELECT}
          where ($1::text is null and not r.closed or r.state = $1)
            and ($2::bigint is null or r.assignee_id = $2)
            and ($3::bigint is null or r.unit_id = $3)
            and (not $4 or r.assignee_id is null)
            and ($5::date is null or (r.promised_on, r.id) > ($5, $6))
            and (not $8 or r.unit_id is null or r.unit_id = $9 or r.assignee_id = $10)
          order by r.promised_on, r.id
          limit $7"
    )))
    .bind(state)
    .bind(mine)
    .bind(unit)
    .bind(unassigned)
    .bind(after.map(|a| a.0))
    .bind(after.map_or(0, |a| a.1))
    .bind(limit.clamp(1, 200))
    .bind(reach.is_some())
    .bind(reach.and_then(|r| r.unit_id))
    .bind(reach.map(|r| r.staff_id))
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    rows.iter().map(request_from_row).collect()
}

/// Assigns a request to a staff member (claim = assign to oneself), recorded on the timeline.
pub async fn assign(
    tx: &mut TenantTx,
    request: &Request,
    by_staff: i64,
    to_staff: i64,
) -> Result<(), DomainError> {
    let exists: Option<i64> = sqlx::query_scalar("select id from staff where id = $1")
        .bind(to_staff)
        .fetch_optional(&mut **tx)
        .await
        .map_err(internal)?;
    if exists.is_none() {
        return Err(DomainError::NotFound);
    }
    let updated = sqlx::query(
        "update requests set assignee_id = $2, updated_at = now()
          where id = $1 and state = $3 and not closed",
    )
    .bind(request.id)
    .bind(to_staff)
    .bind(&request.state)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    if updated.rows_affected() != 1 {
        return Err(DomainError::Conflict(
            "the request is closed or changed meanwhile".into(),
        ));
    }
    insert_event(
        tx,
        request.id,
        &EventInput {
            actor: Actor::Staff(by_staff),
            action: if by_staff == to_staff {
                "claim"
            } else {
                "assign"
            },
            from_state: Some(&request.state),
            to_state: &request.state,
            note: None,
            unit_id: None,
        },
    )
    .await?;
    Ok(())
}

/// One event of a timeline.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Event {
    /// Row id.
    pub id: i64,
    /// When.
    pub at: DateTime<Utc>,
    /// `citizen`, `staff` or `system`.
    pub actor_kind: String,
    /// Staff member's name, or `API: <key name>` for a step an integrator took (staff views
    /// only).
    pub staff_name: Option<String>,
    /// Action key.
    pub action: String,
    /// State before.
    pub from_state: Option<String>,
    /// State after.
    pub to_state: String,
    /// Note.
    pub note: Option<String>,
    /// Unit forwarded to.
    pub unit_name: Option<String>,
    /// Status of the SMS sent for it, if any.
    pub sms_status: Option<String>,
    /// The provider's delivery report of that SMS (`pending`, `delivered`, `failed`).
    pub sms_delivery: Option<String>,
}

/// The timeline of a request, oldest first.
pub async fn events(tx: &mut TenantTx, request_id: i64) -> Result<Vec<Event>, DomainError> {
    sqlx::query_as(
        "select e.id, e.at, e.actor_kind,
                coalesce(s.display_name, 'API: ' || k.name) as staff_name, e.action, e.from_state,
                e.to_state, e.note, u.name as unit_name, n.status as sms_status, n.delivery as sms_delivery
           from request_events e
           left join staff s on s.id = e.staff_id
           left join api_keys k on k.id = e.api_key_id
           left join units u on u.id = e.unit_id
           left join notifications n on n.event_id = e.id
          where e.request_id = $1
          order by e.id",
    )
    .bind(request_id)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)
}

/// A stored file's record.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct StoredFile {
    /// Row id.
    pub id: i64,
    /// Form field.
    pub field: String,
    /// Sanitized name.
    pub file_name: String,
    /// Detected type.
    pub content_type: String,
    /// Bytes.
    pub size: i64,
    /// Object store key.
    pub storage_key: String,
}

/// The files of a request.
pub async fn files(tx: &mut TenantTx, request_id: i64) -> Result<Vec<StoredFile>, DomainError> {
    sqlx::query_as(
        "select id, field, file_name, content_type, size, storage_key
           from request_files where request_id = $1 order by id",
    )
    .bind(request_id)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)
}

/// A unit (department) of the municipality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Row id.
    pub id: i64,
    /// Persian name.
    pub name: String,
}

/// All units by name.
pub async fn units(tx: &mut TenantTx) -> Result<Vec<Unit>, DomainError> {
    let rows: Vec<(i64, String)> = sqlx::query_as("select id, name from units order by name")
        .fetch_all(&mut **tx)
        .await
        .map_err(internal)?;
    Ok(rows
        .into_iter()
        .map(|(id, name)| Unit { id, name })
        .collect())
}

/// The id of the unit of that name, added if missing (without a write when it exists, so
/// concurrent submissions do not queue on the unit's row).
async fn unit_by_name(tx: &mut TenantTx, name: &str) -> Result<i64, DomainError> {
    let found: Option<i64> = sqlx::query_scalar("select id from units where name = $1")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await
        .map_err(internal)?;
    match found {
        Some(id) => Ok(id),
        None => Ok(add_unit(tx, name).await?.id),
    }
}

/// Adds a unit (or returns the existing one of that name).
pub async fn add_unit(tx: &mut TenantTx, name: &str) -> Result<Unit, DomainError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err(desk_core::FieldErrors::single(
            "name",
            "unit_name",
            "نام واحد لازم است و حداکثر ۱۰۰ نویسه.",
        )
        .into());
    }
    let (id, name): (i64, String) = sqlx::query_as(
        "insert into units (name) values ($1)
         on conflict on constraint units_name_key do update set name = excluded.name
         returning id, name",
    )
    .bind(name)
    .fetch_one(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(Unit { id, name })
}

/// Puts a staff member in a unit (or none).
pub async fn set_staff_unit(
    tx: &mut TenantTx,
    staff_id: i64,
    unit_id: Option<i64>,
) -> Result<(), DomainError> {
    sqlx::query("update staff set unit_id = $2 where id = $1")
        .bind(staff_id)
        .bind(unit_id)
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    Ok(())
}

/// How far behind the present change polling stays: `updated_at` is its transaction's start,
/// so a change committing later than one that started after it must still be ahead of every
/// cursor handed out. Transactions here last milliseconds; this leaves ample room.
pub const CHANGES_LAG: std::time::Duration = std::time::Duration::from_secs(2);

/// Requests changed after the keyset cursor `(updated_at, id)` and at least [`CHANGES_LAG`]
/// ago, oldest change first: what an integrator polls to follow status changes.
pub async fn changed_after(
    tx: &mut TenantTx,
    after: Option<(DateTime<Utc>, i64)>,
    limit: i64,
) -> Result<Vec<Request>, DomainError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{REQUEST_SELECT}
          where ($1::timestamptz is null or (r.updated_at, r.id) > ($1, $2))
            and r.updated_at < now() - make_interval(secs => $4)
          order by r.updated_at, r.id
          limit $3"
    )))
    .bind(after.map(|a| a.0))
    .bind(after.map_or(0, |a| a.1))
    .bind(limit.clamp(1, 200))
    .bind(CHANGES_LAG.as_secs_f64())
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    rows.iter().map(request_from_row).collect()
}

/// The most recently changed requests, newest first, optionally of one service and open or
/// closed (Open311's list).
pub async fn recent(
    tx: &mut TenantTx,
    service_code: Option<&str>,
    closed: Option<bool>,
    limit: i64,
) -> Result<Vec<Request>, DomainError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{REQUEST_SELECT}
          where ($1::text is null or r.service_code = $1)
            and ($2::boolean is null or r.closed = $2)
          order by r.updated_at desc, r.id desc
          limit $3"
    )))
    .bind(service_code)
    .bind(closed)
    .bind(limit.clamp(1, 1000))
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    rows.iter().map(request_from_row).collect()
}

/// The tracking code of the request filed with an idempotency key (Open311 tokens).
pub async fn tracking_by_idempotency_key(
    tx: &mut TenantTx,
    key: &str,
) -> Result<Option<String>, DomainError> {
    sqlx::query_scalar("select tracking_code from requests where idempotency_key = $1")
        .bind(key)
        .fetch_optional(&mut **tx)
        .await
        .map_err(internal)
}

/// The requests registered at the in-person desk on `day`, in order (the desk screen).
pub async fn walk_ins_of_day(
    tx: &mut TenantTx,
    day: NaiveDate,
) -> Result<Vec<Request>, DomainError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{REQUEST_SELECT} where r.channel = 'in_person' and r.submitted_on = $1 order by r.submitted_at"
    )))
    .bind(day)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    rows.iter().map(request_from_row).collect()
}
