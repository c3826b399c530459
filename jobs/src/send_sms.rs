//! `send_sms`: delivers one message of a municipality's SMS outbox (sign-in codes, staff
//! welcomes with their one-time link, request steps) through its first enabled provider account. The secret part of a message (a sign-in
//! code) is opened only in memory; no database connection is held during the provider call.
//! Retryable provider errors (busy, rate-limited, transport) fail the job so apalis retries it;
//! the rest are recorded on the message and not retried.

use crate::JobContext;
use apalis::prelude::*;
use desk_core::TenantStatus;
use desk_core::jobs::SendSms;
use desk_db::notifications;
use tracing::Instrument;

/// Handles one `send_sms` job.
pub async fn handle(
    job: SendSms,
    ctx: Data<JobContext>,
    task_id: TaskId,
) -> Result<(), BoxDynError> {
    let span = tracing::info_span!("job", job.queue = "send_sms", job.id = %task_id, tenant.id = %job.tenant_id);
    send(job, &ctx).instrument(span).await
}

async fn send(job: SendSms, ctx: &JobContext) -> Result<(), BoxDynError> {
    let Some(tenant) = ctx.platform.tenant_by_id(job.tenant_id).await? else {
        return Ok(());
    };
    if tenant.status != TenantStatus::Active {
        return Err(format!("tenant is {}", tenant.status.as_str()).into());
    }
    let mut tx = ctx.platform.tenant_db().begin(tenant.scope()).await?;
    let Some(message) = notifications::outgoing(&mut tx, job.notification_id).await? else {
        return Ok(());
    };
    let account = notifications::sending_account(&mut tx).await?;
    tx.commit().await?;
    if message.status != "queued" {
        // Already sent or given up by an earlier run: never send twice.
        return Ok(());
    }
    let Some(recipient) = message.recipient.clone() else {
        return record(ctx, &tenant, job.notification_id, Err("no_recipient")).await;
    };
    let Some((account, sealed_creds)) = account else {
        return record(ctx, &tenant, job.notification_id, Err("no_sms_account")).await;
    };
    let Some(key) = &ctx.secrets else {
        return Err("no master key configured (secrets.master_key)".into());
    };
    let mut body = message.body.clone();
    if let Some(secret) = &message.secret {
        // Each kind seals its secret for its own purpose, and fills its own placeholder.
        let (purpose, placeholder) = match (message.kind.as_str(), message.staff_id) {
            ("sign_in_code", _) => (format!("sign_in_code:{recipient}"), "{code}"),
            ("staff_welcome", Some(staff)) => (format!("notification_secret:{staff}"), "{link}"),
            ("survey", _) => (format!("survey_link:{recipient}"), "{link}"),
            _ => return record(ctx, &tenant, job.notification_id, Err("secret_unreadable")).await,
        };
        match key.open(tenant.id, &purpose, secret) {
            Ok(plain) => body = body.replace(placeholder, &String::from_utf8_lossy(&plain)),
            Err(_) => {
                return record(ctx, &tenant, job.notification_id, Err("secret_unreadable")).await;
            }
        }
    }
    let purpose = format!("sms_account:{}", account.id);
    let outcome = match key.open(tenant.id, &purpose, &sealed_creds) {
        Ok(plain) => {
            let creds: serde_json::Value = serde_json::from_slice(&plain)?;
            crate::sms::send_text(
                &ctx.sms_client,
                &ctx.sms_endpoints,
                &account.provider,
                &creds,
                &account.sender_line,
                &recipient,
                &body,
            )
            .await
        }
        Err(_) => Err(crate::sms::SmsError::Auth),
    };
    match outcome {
        Ok(id) => record(ctx, &tenant, job.notification_id, Ok(&id)).await,
        Err(e) if e.retryable() => {
            tracing::warn!(error = e.code(), "SMS provider busy; will retry");
            Err(format!("retryable SMS error: {}", e.code()).into())
        }
        Err(e) => record(ctx, &tenant, job.notification_id, Err(e.code())).await,
    }
}

async fn record(
    ctx: &JobContext,
    tenant: &desk_db::Tenant,
    id: i64,
    outcome: Result<&str, &str>,
) -> Result<(), BoxDynError> {
    let mut tx = ctx.platform.tenant_db().begin(tenant.scope()).await?;
    notifications::finish(&mut tx, id, outcome).await?;
    tx.commit().await?;
    tracing::info!(sent = outcome.is_ok(), "SMS done");
    Ok(())
}
