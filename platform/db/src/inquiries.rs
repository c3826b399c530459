//! Tenant repository: agencies and inquiries to them (استعلام). An inquiry is written with its
//! `inquiry` job in one transaction; the job talks to the agency (never holding a connection
//! during the call) and records here what happened. An answer lands on the request's timeline
//! and, when it was the last one awaited, moves the request back to review.

use crate::internal;
use crate::requests::{self, Actor, Request};
use crate::tenant_tx::TenantTx;
use chrono::{DateTime, NaiveDate, Utc};
use desk_core::jobs::InquiryStep;
use desk_core::secret::Sealed;
use desk_core::{DomainError, FieldError, FieldErrors};
use sqlx::Row;

/// An agency the municipality sends inquiries to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agency {
    /// Row id.
    pub id: i64,
    /// Name (Persian).
    pub name: String,
    /// `http_json` or `manual`.
    pub kind: String,
    /// Connector endpoint (`http_json`).
    pub endpoint: Option<String>,
    /// Seconds to wait for the agency's HTTP answer.
    pub timeout_secs: i32,
    /// Working days the agency has to answer.
    pub sla_days: i32,
    /// Whether a token is stored (it is never shown).
    pub has_credentials: bool,
    /// Offered to staff.
    pub enabled: bool,
}

const AGENCY_SELECT: &str = "select id, name, kind, endpoint, timeout_secs, sla_days,
        credentials_nonce is not null as has_credentials, enabled from agencies";

fn agency_from_row(r: &sqlx::postgres::PgRow) -> Result<Agency, DomainError> {
    Ok(Agency {
        id: r.try_get("id").map_err(internal)?,
        name: r.try_get("name").map_err(internal)?,
        kind: r.try_get("kind").map_err(internal)?,
        endpoint: r.try_get("endpoint").map_err(internal)?,
        timeout_secs: r.try_get("timeout_secs").map_err(internal)?,
        sla_days: r.try_get("sla_days").map_err(internal)?,
        has_credentials: r.try_get("has_credentials").map_err(internal)?,
        enabled: r.try_get("enabled").map_err(internal)?,
    })
}

/// The municipality's agencies, by name.
pub async fn agencies(tx: &mut TenantTx) -> Result<Vec<Agency>, DomainError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{AGENCY_SELECT} order by name"
    )))
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    rows.iter().map(agency_from_row).collect()
}

/// One agency.
pub async fn agency(tx: &mut TenantTx, id: i64) -> Result<Option<Agency>, DomainError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{AGENCY_SELECT} where id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    row.as_ref().map(agency_from_row).transpose()
}

/// A new agency as the admin describes it.
#[derive(Debug, Clone)]
pub struct NewAgency<'a> {
    /// Name.
    pub name: &'a str,
    /// `http_json` or `manual`.
    pub kind: &'a str,
    /// Endpoint for `http_json`.
    pub endpoint: &'a str,
    /// HTTP timeout.
    pub timeout_secs: i32,
    /// Answer deadline in working days.
    pub sla_days: i32,
}

impl NewAgency<'_> {
    /// Checks the fields; Persian messages per field.
    pub fn check(&self) -> Result<(), FieldErrors> {
        let mut errors = Vec::new();
        let mut err = |field: &str, code: &'static str, message: &str| {
            errors.push(FieldError {
                field: field.to_owned(),
                code,
                message: message.to_owned(),
            });
        };
        let name = self.name.trim().chars().count();
        if name == 0 || name > 100 {
            err("name", "name", "نام دستگاه باید بین ۱ تا ۱۰۰ نویسه باشد.");
        }
        match self.kind {
            "manual" => {}
            "http_json" => {
                let e = self.endpoint.trim();
                let ok = (e.starts_with("https://") || e.starts_with("http://"))
                    && e.len() <= 500
                    && !e.contains(char::is_whitespace)
                    && reqwest_like_host(e);
                if !ok {
                    err(
                        "endpoint",
                        "endpoint",
                        "نشانی سامانه دستگاه باید با https:// آغاز شود.",
                    );
                }
            }
            _ => err("kind", "kind", "نوع ارتباط را برگزینید."),
        }
        if !(1..=120).contains(&self.timeout_secs) {
            err(
                "timeout_secs",
                "timeout",
                "مهلت پاسخ سامانه باید بین ۱ تا ۱۲۰ ثانیه باشد.",
            );
        }
        if !(0..=365).contains(&self.sla_days) {
            err(
                "sla_days",
                "sla_days",
                "مهلت پاسخ دستگاه باید بین ۰ تا ۳۶۵ روز کاری باشد.",
            );
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(FieldErrors(errors))
        }
    }
}

/// A URL with a non-empty host part after the scheme.
fn reqwest_like_host(url: &str) -> bool {
    url.split_once("://")
        .map(|(_, rest)| rest.split(['/', '?', '#']).next().unwrap_or(""))
        .is_some_and(|host| !host.is_empty() && !host.contains('@'))
}

/// Adds an agency; `seal` seals its token for the new row id (none for a manual agency).
pub async fn add_agency(
    tx: &mut TenantTx,
    new: &NewAgency<'_>,
    seal: impl FnOnce(i64) -> Result<Option<Sealed>, DomainError>,
) -> Result<i64, DomainError> {
    new.check()?;
    let endpoint = (new.kind == "http_json").then(|| new.endpoint.trim());
    let id: i64 = sqlx::query_scalar(
        "insert into agencies (name, kind, endpoint, timeout_secs, sla_days)
         values ($1, $2, $3, $4, $5) returning id",
    )
    .bind(new.name.trim())
    .bind(new.kind)
    .bind(endpoint)
    .bind(new.timeout_secs)
    .bind(new.sla_days)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| {
        if crate::unique_violation(&e).is_some() {
            FieldErrors::single("name", "duplicate", "دستگاهی با این نام هست.").into()
        } else {
            internal(e)
        }
    })?;
    if let Some(sealed) = seal(id)? {
        sqlx::query(
            "update agencies set credentials_nonce = $2, credentials_ciphertext = $3 where id = $1",
        )
        .bind(id)
        .bind(&sealed.nonce)
        .bind(&sealed.ciphertext)
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    }
    Ok(id)
}

/// Points an agency's connector at another endpoint (the demo's fake agency moves ports).
pub async fn set_agency_endpoint(
    tx: &mut TenantTx,
    id: i64,
    endpoint: &str,
) -> Result<(), DomainError> {
    sqlx::query("update agencies set endpoint = $2 where id = $1 and kind = 'http_json'")
        .bind(id)
        .bind(endpoint)
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    Ok(())
}

/// The sealed token of an agency.
pub async fn sealed_agency_credentials(
    tx: &mut TenantTx,
    id: i64,
) -> Result<Option<Sealed>, DomainError> {
    let row: Option<(Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "select credentials_nonce, credentials_ciphertext from agencies
          where id = $1 and credentials_nonce is not null and credentials_ciphertext is not null",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(row.map(|(nonce, ciphertext)| Sealed { nonce, ciphertext }))
}

/// An inquiry as pages and the job see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inquiry {
    /// Row id.
    pub id: i64,
    /// The request it is for.
    pub request_id: i64,
    /// The agency.
    pub agency_id: i64,
    /// Its name.
    pub agency_name: String,
    /// What is asked.
    pub subject: String,
    /// `created`, `sent`, `answered`, `failed`, `timed_out`.
    pub status: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When the agency must have answered.
    pub due_on: NaiveDate,
    /// When the agency took it.
    pub sent_at: Option<DateTime<Utc>>,
    /// When it answered.
    pub answered_at: Option<DateTime<Utc>>,
    /// Calls made.
    pub attempts: i32,
    /// The agency's reference.
    pub external_ref: Option<String>,
    /// The answer.
    pub answer: Option<String>,
    /// `approved`, `rejected` or `info`.
    pub outcome: Option<String>,
    /// Last failure (a code, never a secret).
    pub last_error: Option<String>,
}

impl Inquiry {
    /// Still waiting for the agency.
    pub fn open(&self) -> bool {
        matches!(self.status.as_str(), "created" | "sent")
    }
}

const INQUIRY_SELECT: &str =
    "select i.id, i.request_id, i.agency_id, a.name as agency_name, i.subject, i.status,
        i.created_at, i.due_on, i.sent_at, i.answered_at, i.attempts, i.external_ref, i.answer,
        i.outcome, i.last_error
   from inquiries i join agencies a on a.id = i.agency_id";

fn inquiry_from_row(r: &sqlx::postgres::PgRow) -> Result<Inquiry, DomainError> {
    Ok(Inquiry {
        id: r.try_get("id").map_err(internal)?,
        request_id: r.try_get("request_id").map_err(internal)?,
        agency_id: r.try_get("agency_id").map_err(internal)?,
        agency_name: r.try_get("agency_name").map_err(internal)?,
        subject: r.try_get("subject").map_err(internal)?,
        status: r.try_get("status").map_err(internal)?,
        created_at: r.try_get("created_at").map_err(internal)?,
        due_on: r.try_get("due_on").map_err(internal)?,
        sent_at: r.try_get("sent_at").map_err(internal)?,
        answered_at: r.try_get("answered_at").map_err(internal)?,
        attempts: r.try_get("attempts").map_err(internal)?,
        external_ref: r.try_get("external_ref").map_err(internal)?,
        answer: r.try_get("answer").map_err(internal)?,
        outcome: r.try_get("outcome").map_err(internal)?,
        last_error: r.try_get("last_error").map_err(internal)?,
    })
}

/// The inquiries of a request, oldest first.
pub async fn of_request(tx: &mut TenantTx, request_id: i64) -> Result<Vec<Inquiry>, DomainError> {
    let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{INQUIRY_SELECT} where i.request_id = $1 order by i.id"
    )))
    .bind(request_id)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    rows.iter().map(inquiry_from_row).collect()
}

/// One inquiry.
pub async fn inquiry(tx: &mut TenantTx, id: i64) -> Result<Option<Inquiry>, DomainError> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "{INQUIRY_SELECT} where i.id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    row.as_ref().map(inquiry_from_row).transpose()
}

/// Records an inquiry of `request` to an enabled agency and queues its first step.
pub async fn create(
    tx: &mut TenantTx,
    request: &Request,
    agency_id: i64,
    subject: &str,
    staff_id: Option<i64>,
    due_on: NaiveDate,
) -> Result<i64, DomainError> {
    let subject = subject.trim();
    if subject.is_empty() || subject.chars().count() > 500 {
        return Err(FieldErrors::single(
            "subject",
            "subject",
            "موضوع استعلام باید بین ۱ تا ۵۰۰ نویسه باشد.",
        )
        .into());
    }
    if !agency(tx, agency_id).await?.is_some_and(|a| a.enabled) {
        return Err(DomainError::NotFound);
    }
    let id: i64 = sqlx::query_scalar(
        "insert into inquiries (request_id, agency_id, subject, status, created_by, due_on)
         values ($1, $2, $3, 'created', $4, $5) returning id",
    )
    .bind(request.id)
    .bind(agency_id)
    .bind(subject)
    .bind(staff_id)
    .bind(due_on)
    .fetch_one(&mut **tx)
    .await
    .map_err(internal)?;
    let tenant_id = tx.tenant_id();
    crate::jobs::enqueue(
        tx,
        &InquiryStep {
            tenant_id,
            inquiry_id: id,
            step: 0,
        },
    )
    .await?;
    Ok(id)
}

/// Queues the next step of an inquiry at `run_at` (Unix seconds).
pub async fn schedule(
    tx: &mut TenantTx,
    inquiry_id: i64,
    step: u32,
    run_at: i64,
) -> Result<(), DomainError> {
    let tenant_id = tx.tenant_id();
    crate::jobs::enqueue_once_at(
        tx,
        &InquiryStep {
            tenant_id,
            inquiry_id,
            step,
        },
        run_at,
    )
    .await
    .map(|_| ())
}

/// The agency took the inquiry (its reference, if it gave one).
pub async fn mark_sent(
    tx: &mut TenantTx,
    id: i64,
    external_ref: Option<&str>,
) -> Result<(), DomainError> {
    sqlx::query(
        "update inquiries set status = 'sent', sent_at = coalesce(sent_at, now()),
                external_ref = coalesce($2, external_ref), last_error = null
          where id = $1 and status in ('created', 'sent')",
    )
    .bind(id)
    .bind(external_ref.map(|r| r.chars().take(200).collect::<String>()))
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(())
}

/// A call failed; `give_up` ends the inquiry as failed. Returns the attempts made so far.
pub async fn record_failure(
    tx: &mut TenantTx,
    id: i64,
    error: &str,
    give_up: bool,
) -> Result<i32, DomainError> {
    let attempts: Option<i32> = sqlx::query_scalar(
        "update inquiries set attempts = attempts + 1, last_error = $2,
                status = case when $3 then 'failed' else status end
          where id = $1 and status in ('created', 'sent') returning attempts",
    )
    .bind(id)
    .bind(error.chars().take(300).collect::<String>())
    .bind(give_up)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    if give_up && attempts.is_some() {
        note_on_timeline(tx, id, "inquiry_failed", "استعلام ناموفق ماند").await?;
    }
    Ok(attempts.unwrap_or(0))
}

/// The agency did not answer in time.
pub async fn time_out(tx: &mut TenantTx, id: i64) -> Result<bool, DomainError> {
    let done = sqlx::query(
        "update inquiries set status = 'timed_out' where id = $1 and status in ('created', 'sent')",
    )
    .bind(id)
    .execute(&mut **tx)
    .await
    .map_err(internal)?
    .rows_affected()
        == 1;
    if done {
        note_on_timeline(tx, id, "inquiry_timed_out", "مهلت پاسخ استعلام گذشت").await?;
    }
    Ok(done)
}

/// Stores the agency's answer once: the inquiry, if it was still open (a later answer to a
/// closed inquiry is ignored: `None`). What follows on the request is the use case's
/// (`desk_app::inquiries::record_answer`).
pub async fn mark_answered(
    tx: &mut TenantTx,
    id: i64,
    answer: &str,
    outcome: &str,
) -> Result<Option<Inquiry>, DomainError> {
    let updated = sqlx::query(
        "update inquiries set status = 'answered', answered_at = now(), answer = $2, outcome = $3
          where id = $1 and status in ('created', 'sent')",
    )
    .bind(id)
    .bind(answer)
    .bind(outcome)
    .execute(&mut **tx)
    .await
    .map_err(internal)?
    .rows_affected();
    if updated != 1 {
        return Ok(None);
    }
    inquiry(tx, id).await
}

/// An event on the request's timeline about its inquiry (the state stays).
async fn note_on_timeline(
    tx: &mut TenantTx,
    inquiry_id: i64,
    action: &str,
    text: &str,
) -> Result<(), DomainError> {
    let Some(inq) = inquiry(tx, inquiry_id).await? else {
        return Ok(());
    };
    let Some(request) = requests::request_by_id(tx, inq.request_id)
        .await?
        .filter(|r| !r.closed)
    else {
        return Ok(());
    };
    let note = format!("{text}: «{}»", inq.agency_name);
    requests::note(tx, &request, Actor::System, action, &note).await?;
    Ok(())
}
