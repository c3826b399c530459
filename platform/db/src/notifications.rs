//! Tenant repository: the SMS outbox (`notifications`). A row is written in the same
//! transaction as the change it reports, together with the `send_sms` job that delivers it.

use crate::internal;
use crate::tenant_tx::TenantTx;
use desk_core::DomainError;
use desk_core::jobs::SendSms;
use desk_core::secret::Sealed;
use desk_core::sms_templates::{Event, SmsBody};
use sqlx::Row;

/// What a notification is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A one-time sign-in code (the code itself is sealed; the body holds `{code}`).
    SignInCode,
    /// An appointment booked (confirmation).
    Appointment,
    /// An alert to a staff member about a request (SLA warning or escalation).
    StaffAlert {
        /// The request.
        request_id: i64,
    },
    /// The survey invitation of a closed request (the link is sealed; the body holds `{link}`).
    Survey {
        /// The request.
        request_id: i64,
    },
    /// A step of a request.
    RequestEvent {
        /// The request.
        request_id: i64,
        /// The event on its timeline.
        event_id: i64,
    },
}

/// Records an SMS to `recipient` and enqueues its delivery. `secret`, when given, is sealed
/// text that replaces `{code}` in the body at send time. The body's event and variables are
/// kept until it is sent, for accounts that send the provider's template for the event.
pub async fn queue_sms(
    tx: &mut TenantTx,
    kind: Kind,
    recipient: &str,
    body: impl Into<SmsBody>,
    secret: Option<&Sealed>,
) -> Result<i64, DomainError> {
    let body: SmsBody = body.into();
    let (kind_key, request_id, event_id) = match kind {
        Kind::SignInCode => ("sign_in_code", None, None),
        Kind::Appointment => ("appointment", None, None),
        Kind::StaffAlert { request_id } => ("staff_alert", Some(request_id), None),
        Kind::Survey { request_id } => ("survey", Some(request_id), None),
        Kind::RequestEvent {
            request_id,
            event_id,
        } => ("request_event", Some(request_id), Some(event_id)),
    };
    let id: i64 = sqlx::query_scalar(
        "insert into notifications (kind, recipient, body, request_id, event_id, secret_nonce, secret_ciphertext,
                                    event, vars)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9) returning id",
    )
    .bind(kind_key)
    .bind(recipient)
    .bind(&body.text)
    .bind(request_id)
    .bind(event_id)
    .bind(secret.map(|s| &s.nonce))
    .bind(secret.map(|s| &s.ciphertext))
    .bind(body.event.map(|e| e.key()))
    .bind(body.event.map(|_| &body.vars))
    .fetch_one(&mut **tx)
    .await
    .map_err(internal)?;
    let tenant_id = tx.tenant_id();
    crate::jobs::enqueue(
        tx,
        &SendSms {
            tenant_id,
            notification_id: id,
            attempt: 0,
        },
    )
    .await?;
    Ok(id)
}

/// A queued SMS as the sender needs it.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// Row id.
    pub id: i64,
    /// `sign_in_code`, `request_event`, `staff_welcome`.
    pub kind: String,
    /// Canonical mobile number.
    pub recipient: Option<String>,
    /// The staff member a welcome is for.
    pub staff_id: Option<i64>,
    /// Text, possibly with a `{code}` or `{link}` placeholder.
    pub body: String,
    /// The sealed secret for the placeholder.
    pub secret: Option<Sealed>,
    /// `queued`, `sent` or `failed`.
    pub status: String,
    /// The event it reports and its variables (for the provider's template of the event).
    pub event: Option<Event>,
    /// The event's variables.
    pub vars: serde_json::Value,
    /// The account an earlier run handed it to without recording the answer (it may have
    /// died during the call): ask that provider before sending again.
    pub handed_to: Option<i64>,
}

/// One notification by id.
pub async fn outgoing(tx: &mut TenantTx, id: i64) -> Result<Option<Outgoing>, DomainError> {
    let row = sqlx::query(
        "select id, kind, recipient, staff_id, body, secret_nonce, secret_ciphertext, status, event, vars,
                case when sending_since is not null then account_id end as handed_to
           from notifications where id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    row.map(|r| {
        let nonce: Option<Vec<u8>> = r.try_get("secret_nonce").map_err(internal)?;
        let ciphertext: Option<Vec<u8>> = r.try_get("secret_ciphertext").map_err(internal)?;
        Ok(Outgoing {
            id: r.try_get("id").map_err(internal)?,
            kind: r.try_get("kind").map_err(internal)?,
            recipient: r.try_get("recipient").map_err(internal)?,
            staff_id: r.try_get("staff_id").map_err(internal)?,
            body: r.try_get("body").map_err(internal)?,
            secret: nonce
                .zip(ciphertext)
                .map(|(nonce, ciphertext)| Sealed { nonce, ciphertext }),
            status: r.try_get("status").map_err(internal)?,
            event: r
                .try_get::<Option<String>, _>("event")
                .map_err(internal)?
                .as_deref()
                .and_then(Event::parse),
            vars: r
                .try_get::<Option<serde_json::Value>, _>("vars")
                .map_err(internal)?
                .unwrap_or_default(),
            handed_to: r.try_get("handed_to").map_err(internal)?,
        })
    })
    .transpose()
}

/// Records the provider's answer. A sent message forgets its secret (the code has left).
pub async fn finish(
    tx: &mut TenantTx,
    id: i64,
    outcome: Result<&str, &str>,
) -> Result<(), DomainError> {
    let (status, message_id, error) = match outcome {
        Ok(message_id) => ("sent", Some(message_id), None),
        Err(code) => ("failed", None, Some(code)),
    };
    sqlx::query(
        "update notifications
            set status = $2, provider_message_id = $3, error_code = $4, sent_at = now(),
                vars = null,
                secret_nonce = case when $2 = 'sent' then null else secret_nonce end,
                secret_ciphertext = case when $2 = 'sent' then null else secret_ciphertext end
          where id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(message_id)
    .bind(error)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(())
}

/// Failures in a row after which an account is passed over.
pub const FAILING_AFTER: i32 = 3;
/// How long a failing account is passed over before it gets another chance (seconds).
pub const FAILING_COOL_DOWN_SECS: i32 = 300;

/// The municipality's enabled SMS accounts with their sealed credentials, in the order to try
/// them: healthy accounts first (oldest first), then those failing recently (least recently
/// failing first), so a provider that keeps failing is passed over for another.
pub async fn sending_accounts(
    tx: &mut TenantTx,
) -> Result<Vec<(crate::settings::SmsAccount, Sealed)>, DomainError> {
    let rows = sqlx::query(
        "select id, provider, label, sender_line, credentials_set_at, enabled,
                credentials_nonce, credentials_ciphertext
           from sms_accounts where enabled
          order by (failures >= $1 and failing_since > now() - make_interval(secs => $2)),
                   failing_since nulls first, id",
    )
    .bind(FAILING_AFTER)
    .bind(FAILING_COOL_DOWN_SECS)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    rows.iter()
        .map(|r| {
            Ok((
                crate::settings::SmsAccount {
                    id: r.try_get("id").map_err(internal)?,
                    provider: r.try_get("provider").map_err(internal)?,
                    label: r.try_get("label").map_err(internal)?,
                    sender_line: r.try_get("sender_line").map_err(internal)?,
                    credentials_set_at: r.try_get("credentials_set_at").map_err(internal)?,
                    enabled: r.try_get("enabled").map_err(internal)?,
                },
                Sealed {
                    nonce: r.try_get("credentials_nonce").map_err(internal)?,
                    ciphertext: r.try_get("credentials_ciphertext").map_err(internal)?,
                },
            ))
        })
        .collect()
}

/// Records a message the provider took (id `message_id`) through `account_id`, in one
/// statement: the message is sent (its secret forgotten, the try counted) and the account's
/// run of failures, if any, ends.
pub async fn record_sent(
    tx: &mut TenantTx,
    id: i64,
    account_id: i64,
    message_id: &str,
) -> Result<(), DomainError> {
    sqlx::query(
        "with healthy as (
             update sms_accounts set failures = 0, failing_since = null
              where id = $2 and (failures > 0 or failing_since is not null)
         )
         update notifications
            set status = 'sent', provider_message_id = $3, error_code = null, sent_at = now(),
                attempts = attempts + 1, account_id = $2, sending_since = null, vars = null,
                polls = 0, next_poll_at = now() + make_interval(secs => $4),
                secret_nonce = null, secret_ciphertext = null
          where id = $1",
    )
    .bind(id)
    .bind(account_id)
    .bind(message_id)
    .bind(desk_core::jobs::SmsDelivery::SCHEDULE_SECS[0] as f64)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(())
}

/// Records how a call through an account went (a success ends its run of failures).
pub async fn record_account_result(
    tx: &mut TenantTx,
    account_id: i64,
    ok: bool,
) -> Result<(), DomainError> {
    sqlx::query(
        "update sms_accounts
            set failures = case when $2 then 0 else failures + 1 end,
                failing_since = case when $2 then null else coalesce(failing_since, now()) end
          where id = $1",
    )
    .bind(account_id)
    .bind(ok)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(())
}

/// Notes that a message is being handed to `account_id` now (committed before the call, so a
/// run that dies during it leaves a trace for the next one).
pub async fn mark_sending(tx: &mut TenantTx, id: i64, account_id: i64) -> Result<(), DomainError> {
    sqlx::query("update notifications set sending_since = now(), account_id = $2 where id = $1")
        .bind(id)
        .bind(account_id)
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    Ok(())
}

/// Counts one more try at sending a message; returns the tries so far. `answered`: the
/// provider said no (the message did not go); otherwise (no answer) whether it went is unknown
/// and the next run asks the provider first.
pub async fn count_attempt(tx: &mut TenantTx, id: i64, answered: bool) -> Result<i32, DomainError> {
    sqlx::query_scalar(
        "update notifications
            set attempts = attempts + 1,
                sending_since = case when $2 then null else sending_since end
          where id = $1 returning attempts",
    )
    .bind(id)
    .bind(answered)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)
    .map(Option::unwrap_or_default)
}

/// Records which account sent (or last tried) a message.
pub async fn set_account(tx: &mut TenantTx, id: i64, account_id: i64) -> Result<(), DomainError> {
    sqlx::query("update notifications set account_id = $2 where id = $1")
        .bind(id)
        .bind(account_id)
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    Ok(())
}

/// A sent message whose delivery-report poll is due.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DuePoll {
    /// Row id.
    pub id: i64,
    /// The provider's message id.
    pub provider_message_id: String,
    /// The account it went through.
    pub account_id: i64,
    /// Polls it has had.
    pub polls: i16,
}

/// Up to `limit` sent messages whose delivery-report poll is due, the longest due first.
pub async fn due_polls(tx: &mut TenantTx, limit: i64) -> Result<Vec<DuePoll>, DomainError> {
    sqlx::query_as(
        "select id, provider_message_id, account_id, polls from notifications
          where next_poll_at <= now() and status = 'sent'
            and provider_message_id is not null and account_id is not null
          order by next_poll_at limit $1",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)
}

/// Records a poll of message `id`: its report (`delivered`, `failed`, `pending`; `None` when
/// the provider could not say), never overriding a final one, and when the next poll is due
/// (`next_after_sent` seconds after sending; `None`: no more polls).
pub async fn record_poll(
    tx: &mut TenantTx,
    id: i64,
    report: Option<(&str, Option<&str>)>,
    next_after_sent: Option<i64>,
) -> Result<(), DomainError> {
    sqlx::query(
        "update notifications
            set delivery = case when coalesce(delivery, 'pending') = 'pending'
                                then coalesce($2, delivery) else delivery end,
                delivery_code = case when coalesce(delivery, 'pending') = 'pending' and $2 is not null
                                     then $3 else delivery_code end,
                delivered_at = case when coalesce(delivery, 'pending') = 'pending' and $2 = 'delivered'
                                    then now() else delivered_at end,
                polls = polls + 1,
                next_poll_at = case when $4::float8 is null then null
                                    else greatest(sent_at + make_interval(secs => $4::float8),
                                                  now() + interval '1 second') end
          where id = $1",
    )
    .bind(id)
    .bind(report.map(|(d, _)| d))
    .bind(report.and_then(|(_, c)| c))
    .bind(next_after_sent.map(|s| s as f64))
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(())
}

/// When the municipality's next delivery-report poll is due, if any.
pub async fn next_poll_due(
    tx: &mut TenantTx,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, DomainError> {
    sqlx::query_scalar("select min(next_poll_at) from notifications where next_poll_at is not null")
        .fetch_one(&mut **tx)
        .await
        .map_err(internal)
}

/// One outbox row as the staff outbox page shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct OutboxRow {
    /// Row id.
    pub id: i64,
    /// `request_event`, `sign_in_code`, ...
    pub kind: String,
    /// The mobile number it goes to.
    pub recipient: Option<String>,
    /// The text (secrets stay placeholders: `{code}`, `{link}`).
    pub body: String,
    /// `queued`, `sent`, `failed`.
    pub status: String,
    /// The provider's delivery report, if any.
    pub delivery: Option<String>,
    /// The provider's error code of the last failure.
    pub error_code: Option<String>,
    /// Tries so far.
    pub attempts: i32,
    /// The account it went through.
    pub account: Option<String>,
    /// Queued at.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The latest outbox rows, newest first, optionally of one status (`queued`, `sent`, `failed`).
pub async fn recent(
    tx: &mut TenantTx,
    status: Option<&str>,
    limit: i64,
) -> Result<Vec<OutboxRow>, DomainError> {
    sqlx::query_as(
        "select n.id, n.kind, n.recipient, n.body, n.status, n.delivery, n.error_code, n.attempts,
                a.label as account, n.created_at
           from notifications n left join sms_accounts a on a.id = n.account_id
          where ($1::text is null or n.status = $1)
          order by n.id desc limit $2",
    )
    .bind(status)
    .bind(limit.clamp(1, 500))
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)
}
