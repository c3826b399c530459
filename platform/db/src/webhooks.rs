//! Tenant repository: webhooks and their deliveries. A change that makes an event calls
//! [`fan_out`] in its own transaction: one delivery per enabled webhook subscribed to the event,
//! each with its `deliver_webhook` job, so a delivery exists if and only if the change committed.

use crate::internal;
use crate::tenant_tx::TenantTx;
use chrono::{DateTime, Utc};
use desk_core::jobs::DeliverWebhook;
use desk_core::secret::Sealed;
use desk_core::webhook::WebhookEvent;
use desk_core::{DomainError, FieldErrors};
use serde_json::Value;

/// Webhooks a municipality may have.
pub const MAX_WEBHOOKS: i64 = 20;

/// A webhook as the admin's list shows it (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Webhook {
    /// Row id.
    pub id: i64,
    /// Target URL.
    pub url: String,
    /// Subscribed event names.
    pub events: Vec<String>,
    /// Whether deliveries are made.
    pub enabled: bool,
    /// Made at.
    pub created_at: DateTime<Utc>,
}

/// One delivery and the receiver's last answer.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Delivery {
    /// Row id (also the `X-Miz-Delivery` header).
    pub id: i64,
    /// Its webhook.
    pub webhook_id: i64,
    /// Event name.
    pub event: String,
    /// The JSON body sent.
    pub payload: Value,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// Tries so far.
    pub attempts: i32,
    /// HTTP status of the last answer, if one came.
    pub response_status: Option<i32>,
    /// The start of the last answer, or why none came.
    pub response_excerpt: Option<String>,
    /// Made at.
    pub created_at: DateTime<Utc>,
    /// Last try.
    pub last_attempt_at: Option<DateTime<Utc>>,
}

/// What a delivery job needs: the delivery, its webhook's URL and sealed secret.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The delivery.
    pub delivery: Delivery,
    /// Where to.
    pub url: String,
    /// Whether the webhook is still enabled.
    pub enabled: bool,
    /// The signing secret, sealed.
    pub secret: Sealed,
}

/// The purpose a webhook's secret is sealed for (binds the ciphertext to that webhook).
pub fn secret_purpose(webhook_id: i64) -> String {
    format!("webhook_secret:{webhook_id}")
}

/// Makes a webhook for `url` (already checked by the caller against the SSRF rules) and
/// `events`; `seal` receives the new id and returns the sealed secret.
pub async fn create(
    tx: &mut TenantTx,
    url: &str,
    events: &[WebhookEvent],
    created_by: Option<i64>,
    seal: impl FnOnce(i64) -> Result<Sealed, DomainError>,
) -> Result<i64, DomainError> {
    if events.is_empty() {
        return Err(FieldErrors::single("events", "events", "دست‌کم یک رویداد برگزینید.").into());
    }
    let count: i64 = sqlx::query_scalar("select count(*) from webhooks")
        .fetch_one(&mut **tx)
        .await
        .map_err(internal)?;
    if count >= MAX_WEBHOOKS {
        return Err(FieldErrors::single(
            "url",
            "webhooks_full",
            "بیش از ۲۰ وبهوک نمی‌توان داشت؛ یکی را حذف کنید.",
        )
        .into());
    }
    let names: Vec<&str> = events.iter().map(|e| e.as_str()).collect();
    let id: i64 = sqlx::query_scalar(
        "insert into webhooks (url, events, secret_nonce, secret_sealed, created_by)
         values ($1, $2, '', '', $3) returning id",
    )
    .bind(url)
    .bind(&names)
    .bind(created_by)
    .fetch_one(&mut **tx)
    .await
    .map_err(internal)?;
    let sealed = seal(id)?;
    sqlx::query("update webhooks set secret_nonce = $2, secret_sealed = $3 where id = $1")
        .bind(id)
        .bind(&sealed.nonce)
        .bind(&sealed.ciphertext)
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    Ok(id)
}

/// The webhooks, newest first.
pub async fn list(tx: &mut TenantTx) -> Result<Vec<Webhook>, DomainError> {
    sqlx::query_as("select id, url, events, enabled, created_at from webhooks order by id desc")
        .fetch_all(&mut **tx)
        .await
        .map_err(internal)
}

/// Turns deliveries of a webhook on or off (`NotFound` for an unknown id).
pub async fn set_enabled(tx: &mut TenantTx, id: i64, enabled: bool) -> Result<(), DomainError> {
    let done = sqlx::query("update webhooks set enabled = $2 where id = $1")
        .bind(id)
        .bind(enabled)
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    crate::one_row(done)
}

/// Deletes a webhook and its deliveries (`NotFound` for an unknown id).
pub async fn delete(tx: &mut TenantTx, id: i64) -> Result<(), DomainError> {
    let done = sqlx::query("delete from webhooks where id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    crate::one_row(done)
}

/// Records `event` with body `payload` for every enabled webhook subscribed to it and queues
/// their deliveries, in the caller's transaction. Returns the number of deliveries.
pub async fn fan_out(
    tx: &mut TenantTx,
    event: WebhookEvent,
    payload: &Value,
) -> Result<usize, DomainError> {
    let ids: Vec<i64> = sqlx::query_scalar(
        "insert into webhook_deliveries (webhook_id, event, payload)
         select id, $1, $2 from webhooks where enabled and $1 = any(events)
         returning id",
    )
    .bind(event.as_str())
    .bind(payload)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    let tenant_id = tx.tenant_id();
    for delivery_id in &ids {
        crate::jobs::enqueue(
            tx,
            &DeliverWebhook {
                tenant_id,
                delivery_id: *delivery_id,
                attempt: 0,
            },
        )
        .await?;
    }
    Ok(ids.len())
}

const DELIVERY_COLUMNS: &str = "d.id, d.webhook_id, d.event, d.payload, d.status, d.attempts, \
     d.response_status, d.response_excerpt, d.created_at, d.last_attempt_at";

/// A delivery still pending, with what sending it needs (`None` when it is done or gone).
pub async fn outgoing(
    tx: &mut TenantTx,
    delivery_id: i64,
) -> Result<Option<Outgoing>, DomainError> {
    let row: Option<DeliveryRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {DELIVERY_COLUMNS}, w.url, w.enabled, w.secret_nonce, w.secret_sealed
           from webhook_deliveries d join webhooks w on w.id = d.webhook_id
          where d.id = $1 and d.status = 'pending'"
    )))
    .bind(delivery_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(row.map(|r| Outgoing {
        delivery: r.delivery,
        url: r.url,
        enabled: r.enabled,
        secret: Sealed {
            nonce: r.secret_nonce,
            ciphertext: r.secret_sealed,
        },
    }))
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    #[sqlx(flatten)]
    delivery: Delivery,
    url: String,
    enabled: bool,
    secret_nonce: Vec<u8>,
    secret_sealed: Vec<u8>,
}

/// How one try ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The receiver's HTTP status, if it answered.
    pub status: Option<u16>,
    /// The start of its answer, or why there was none.
    pub excerpt: String,
    /// Whether the delivery is now done: `Some(true)` delivered, `Some(false)` given up,
    /// `None` to be tried again.
    pub outcome: Option<bool>,
}

/// Records a try of a pending delivery.
pub async fn record_attempt(
    tx: &mut TenantTx,
    delivery_id: i64,
    a: &Attempt,
) -> Result<(), DomainError> {
    let status = match a.outcome {
        Some(true) => "delivered",
        Some(false) => "failed",
        None => "pending",
    };
    let excerpt: String = a.excerpt.chars().take(500).collect();
    sqlx::query(
        "update webhook_deliveries
            set attempts = attempts + 1, last_attempt_at = now(), status = $2,
                response_status = $3, response_excerpt = $4,
                delivered_at = case when $2 = 'delivered' then now() end
          where id = $1 and status = 'pending'",
    )
    .bind(delivery_id)
    .bind(status)
    .bind(a.status.map(i32::from))
    .bind(excerpt)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(())
}

/// The latest deliveries of a webhook, newest first.
pub async fn recent_deliveries(
    tx: &mut TenantTx,
    webhook_id: i64,
    limit: i64,
) -> Result<Vec<Delivery>, DomainError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {DELIVERY_COLUMNS} from webhook_deliveries d where d.webhook_id = $1 order by d.id desc limit $2"
    )))
    .bind(webhook_id)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)
}

/// The body of a request event: what changed and where to read more (the integrator reads
/// the request itself through the API with a key that may; no personal data travels here).
pub fn request_payload(
    event: WebhookEvent,
    request: &crate::requests::Request,
    previous_state: Option<&str>,
    state: &str,
) -> Value {
    serde_json::json!({
        "event": event.as_str(),
        "occurredAt": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "request": {
            "trackingCode": request.tracking_code,
            "serviceCode": request.service_code,
            "channel": request.channel,
            "state": state,
            "previousState": previous_state,
            "promisedOn": request.promised_on.to_string(),
        },
    })
}
