//! `send_sms`: delivers one message of a municipality's SMS outbox (sign-in codes, staff
//! welcomes with their one-time link, request steps, survey links) through its provider
//! accounts. The secret part of a message (a code, a link) is opened only in memory; no
//! database connection is held during the provider call; sends are paced per municipality.
//! An account with the provider's approved template for the message's event sends the
//! template with its parameters filled from the event's variables, otherwise the text.
//! Failover: bad credentials, no credit or a template the provider does not know pass the
//! message to the next account at once, and
//! accounts that keep failing sort last for a while. A busy provider (or no answer) is retried
//! as a new job after a growing delay, up to [`MAX_ATTEMPTS`]; refusals of the message itself
//! (invalid number, rejected text) are recorded and not retried. A sent message gets
//! delivery-report polls (`sms_delivery`).

use crate::JobContext;
use crate::sms::SmsError;
use apalis::prelude::*;
use desk_core::jobs::Windowed;
use desk_core::jobs::{SendSms, SmsDelivery};
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

/// Tries a busy provider gets before the message is given up.
pub const MAX_ATTEMPTS: u32 = 6;

async fn send(job: SendSms, ctx: &JobContext) -> Result<(), BoxDynError> {
    let Some(tenant) = crate::active_tenant(ctx, &job, true).await? else {
        return Ok(());
    };
    let db = ctx.platform.tenant_db();
    let mut tx = db.begin(tenant.scope()).await?;
    let Some(message) = notifications::outgoing(&mut tx, job.notification_id).await? else {
        return Ok(());
    };
    let accounts = notifications::sending_accounts(&mut tx).await?;
    let templates = match message.event {
        Some(event) => desk_db::sms_templates::provider_templates_for(&mut tx, event).await?,
        None => Vec::new(),
    };
    // The usual case (queued, never handed over, someone to send to): note the hand-over to
    // the first account in this same transaction, saving one per message.
    let first_marked = match accounts.first() {
        Some((first, _))
            if message.status == "queued"
                && message.handed_to.is_none()
                && message.recipient.is_some()
                && ctx.secrets.is_some() =>
        {
            notifications::mark_sending(&mut tx, job.notification_id, first.id).await?;
            Some(first.id)
        }
        _ => None,
    };
    tx.commit().await?;
    if message.status != "queued" {
        // Already sent or given up by an earlier run: never send twice.
        return Ok(());
    }
    let Some(recipient) = message.recipient.clone() else {
        return record(ctx, &tenant, job.notification_id, Err("no_recipient")).await;
    };
    if accounts.is_empty() {
        return record(ctx, &tenant, job.notification_id, Err("no_sms_account")).await;
    }
    let Some(key) = &ctx.secrets else {
        return Err("no master key configured (secrets.master_key)".into());
    };
    let mut body = desk_core::sms_templates::SmsBody {
        text: message.body.clone(),
        event: message.event,
        vars: message.vars.clone(),
    };
    if let Some(secret) = &message.secret {
        // Each kind seals its secret for its own purpose, and fills its own placeholder.
        let (purpose, placeholder) = match (message.kind.as_str(), message.staff_id) {
            ("sign_in_code", _) => (format!("sign_in_code:{recipient}"), "{code}"),
            ("staff_welcome", Some(staff)) => (format!("notification_secret:{staff}"), "{link}"),
            ("survey", _) => (format!("survey_link:{recipient}"), "{link}"),
            _ => {
                return record(ctx, &tenant, job.notification_id, Err("secret_unreadable")).await;
            }
        };
        match key.open(tenant.id, &purpose, secret) {
            Ok(plain) => {
                body.replace(placeholder, &String::from_utf8_lossy(&plain));
            }
            Err(_) => {
                return record(ctx, &tenant, job.notification_id, Err("secret_unreadable")).await;
            }
        }
    }
    let local_id = client_reference(tenant.id, job.notification_id);
    // An earlier run handed it to a provider and died before recording the answer: ask that
    // provider by our id before sending again (SMS.ir keeps no client reference; it may repeat).
    if let Some((account, sealed_creds)) = message
        .handed_to
        .and_then(|a| accounts.iter().find(|(acc, _)| acc.id == a))
    {
        let plain = key.open(
            tenant.id,
            &format!("sms_account:{}", account.id),
            sealed_creds,
        );
        if let Ok(plain) = plain {
            let creds: serde_json::Value = serde_json::from_slice(&plain)?;
            let found = crate::sms::find_by_local_id(
                &ctx.sms_client,
                &ctx.sms_endpoints,
                &account.provider,
                &creds,
                &local_id,
            )
            .await;
            match found {
                Ok(Some(id)) => {
                    sent(ctx, &tenant, &job, account.id, &id).await?;
                    tracing::info!(
                        account.id = account.id,
                        "SMS had reached the provider; not sent again"
                    );
                    return Ok(());
                }
                Ok(None) => {}
                Err(e) => {
                    // Unknown whether it went: ask again later rather than risk a second copy.
                    let mut tx = db.begin(tenant.scope()).await?;
                    retry_later(&mut tx, &job, e.code()).await?;
                    tx.commit().await?;
                    return Ok(());
                }
            }
        }
    }
    ctx.sms_rate.acquire(tenant.id).await;
    let mut last_code = "no_sms_account";
    // Failover: an account whose credentials or credit fail is passed for the next one now;
    // accounts failing again and again sort last for a while (`sending_accounts`).
    for (account, sealed_creds) in &accounts {
        let purpose = format!("sms_account:{}", account.id);
        if first_marked != Some(account.id) {
            let mut tx = db.begin(tenant.scope()).await?;
            notifications::mark_sending(&mut tx, job.notification_id, account.id).await?;
            tx.commit().await?;
        }
        let outcome = match key.open(tenant.id, &purpose, sealed_creds) {
            Ok(plain) => {
                let creds: serde_json::Value = serde_json::from_slice(&plain)?;
                // The account's approved template for the event, if it has one; else the text.
                match templates.iter().find(|(a, _)| *a == account.id) {
                    Some((_, template)) => {
                        crate::sms::send_template(
                            &ctx.sms_client,
                            &ctx.sms_endpoints,
                            &account.provider,
                            &creds,
                            &crate::sms::TemplateSend {
                                to: &recipient,
                                template: &template.template,
                                params: &template.fill(&body.vars),
                                local_id: Some(&local_id),
                            },
                        )
                        .await
                    }
                    None => {
                        crate::sms::send_text(
                            &ctx.sms_client,
                            &ctx.sms_endpoints,
                            &account.provider,
                            &creds,
                            &crate::sms::Text {
                                sender: &account.sender_line,
                                to: &recipient,
                                text: &body.text,
                                local_id: Some(&local_id),
                            },
                        )
                        .await
                    }
                }
            }
            Err(_) => Err(SmsError::Auth),
        };
        if let Ok(id) = &outcome {
            sent(ctx, &tenant, &job, account.id, id).await?;
            tracing::info!(account.id = account.id, "SMS sent");
            return Ok(());
        }
        let mut tx = db.begin(tenant.scope()).await?;
        let answered = !matches!(outcome, Err(SmsError::Transport));
        notifications::count_attempt(&mut tx, job.notification_id, answered).await?;
        notifications::set_account(&mut tx, job.notification_id, account.id).await?;
        match outcome {
            Ok(_) => {}
            Err(e @ (SmsError::Auth | SmsError::NoCredit | SmsError::TemplateNotFound)) => {
                notifications::record_account_result(&mut tx, account.id, false).await?;
                tx.commit().await?;
                tracing::warn!(
                    account.id = account.id,
                    error = e.code(),
                    "SMS account failed; trying the next"
                );
                last_code = match e {
                    SmsError::Auth => "auth",
                    SmsError::NoCredit => "no_credit",
                    _ => "template_not_found",
                };
            }
            Err(e) if e.retryable() => {
                notifications::record_account_result(&mut tx, account.id, false).await?;
                retry_later(&mut tx, &job, e.code()).await?;
                tx.commit().await?;
                return Ok(());
            }
            Err(e) => {
                // The message itself was refused (recipient, content): no account does better.
                notifications::finish(&mut tx, job.notification_id, Err(e.code())).await?;
                tx.commit().await?;
                return Ok(());
            }
        }
    }
    record(ctx, &tenant, job.notification_id, Err(last_code)).await
}

/// Our id of a message at the provider (Kavenegar `localid`, Ghasedak `clientReferenceId`,
/// Magfa `uids`, all numeric): 31 bits of the municipality's id above 32 bits of the
/// notification's, so municipalities sharing one provider account do not mistake each
/// other's messages when asking whether one arrived (that two of 1,400 municipalities share
/// the 31 bits has odds of about 1 in 2,000; even then only messages with the same number
/// could be mistaken, and only if both shared one account).
pub fn client_reference(tenant: desk_core::TenantId, notification_id: i64) -> String {
    let bytes = tenant.0.as_bytes();
    let high =
        u64::from(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) & 0x7fff_ffff);
    let low = u64::try_from(notification_id).unwrap_or_default() & 0xffff_ffff;
    ((high << 32) | low).to_string()
}

/// Records that the provider took the message (in a transaction of its own) and makes sure a
/// delivery-report job covers its first poll.
async fn sent(
    ctx: &JobContext,
    tenant: &desk_db::Tenant,
    job: &SendSms,
    account_id: i64,
    message_id: &str,
) -> Result<(), desk_core::DomainError> {
    // Its first poll is due in SCHEDULE_SECS[0]; the job of that window polls every message
    // then due (queued once per window: its key names the window).
    let due = chrono::Utc::now().timestamp() + SmsDelivery::SCHEDULE_SECS[0];
    let poll = SmsDelivery::covering(tenant.id, due);
    let mut tx = ctx.platform.tenant_db().begin(tenant.scope()).await?;
    notifications::record_sent(&mut tx, job.notification_id, account_id, message_id).await?;
    desk_db::jobs::enqueue_once_at(&mut tx, &poll, poll.run_at()).await?;
    tx.commit().await?;
    Ok(())
}

/// Schedules the next try after a growing delay, or gives the message up after
/// [`MAX_ATTEMPTS`].
async fn retry_later(
    tx: &mut desk_db::TenantTx,
    job: &SendSms,
    code: &str,
) -> Result<(), desk_core::DomainError> {
    let next = job.attempt.saturating_add(1);
    if next >= MAX_ATTEMPTS {
        notifications::finish(tx, job.notification_id, Err(code)).await?;
    } else {
        let retry = SendSms {
            attempt: next,
            ..job.clone()
        };
        let at = chrono::Utc::now().timestamp() + crate::backoff_secs(next);
        desk_db::jobs::enqueue_once_at(tx, &retry, at).await?;
    }
    tracing::warn!(
        error = code,
        attempt = next,
        "SMS not sent now; will retry later"
    );
    Ok(())
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
