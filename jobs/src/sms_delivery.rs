//! `sms_delivery`: asks the provider whether a sent SMS reached the phone and records the
//! answer on the message (the request's timeline shows it). Polls at growing intervals after
//! sending (`SmsDelivery::SCHEDULE_SECS`); after the last poll the report stays unknown.

use crate::JobContext;
use crate::sms::{Delivery, delivery_status};
use apalis::prelude::*;
use desk_core::jobs::SmsDelivery;
use desk_db::{notifications, settings};
use tracing::Instrument;

/// Handles one `sms_delivery` job.
pub async fn handle(
    job: SmsDelivery,
    ctx: Data<JobContext>,
    task_id: TaskId,
) -> Result<(), BoxDynError> {
    let span = tracing::info_span!("job", job.queue = "sms_delivery", job.id = %task_id, tenant.id = %job.tenant_id);
    poll(job, &ctx).instrument(span).await
}

async fn poll(job: SmsDelivery, ctx: &JobContext) -> Result<(), BoxDynError> {
    let Some(tenant) = ctx.tenants.get(&ctx.platform, job.tenant_id).await? else {
        return Ok(());
    };
    if !crate::active_or_park(ctx, &tenant, &job).await? {
        return Ok(());
    }
    let db = ctx.platform.tenant_db();
    let mut tx = db.begin(tenant.scope()).await?;
    let Some(sent) = notifications::sent(&mut tx, job.notification_id).await? else {
        return Ok(());
    };
    let account = settings::sms_account(&mut tx, sent.account_id).await?;
    let sealed = settings::sealed_sms_credentials(&mut tx, sent.account_id).await?;
    tx.commit().await?;
    if matches!(sent.delivery.as_deref(), Some("delivered" | "failed")) {
        return Ok(());
    }
    let (Some(account), Some(sealed), Some(key)) = (account, sealed, &ctx.secrets) else {
        return Ok(());
    };
    let Ok(plain) = key.open(tenant.id, &format!("sms_account:{}", account.id), &sealed) else {
        return Ok(());
    };
    let creds: serde_json::Value = serde_json::from_slice(&plain)?;
    let report = delivery_status(
        &ctx.sms_client,
        &ctx.sms_endpoints,
        &account.provider,
        &creds,
        &sent.provider_message_id,
    )
    .await;
    let mut tx = db.begin(tenant.scope()).await?;
    let again = match report {
        Ok(Delivery::Delivered) => {
            notifications::record_delivery(&mut tx, job.notification_id, "delivered", None).await?;
            false
        }
        Ok(Delivery::Failed(code)) => {
            notifications::record_delivery(&mut tx, job.notification_id, "failed", Some(&code))
                .await?;
            false
        }
        Ok(Delivery::Pending) => {
            notifications::record_delivery(&mut tx, job.notification_id, "pending", None).await?;
            true
        }
        Err(e) => {
            tracing::warn!(error = e.code(), "delivery report unavailable");
            true
        }
    };
    let next = job.poll.saturating_add(1);
    if let (true, Some(after)) = (
        again,
        SmsDelivery::SCHEDULE_SECS.get(usize::try_from(next).unwrap_or(usize::MAX)),
    ) {
        let previous = SmsDelivery::SCHEDULE_SECS
            .get(usize::try_from(job.poll).unwrap_or(0))
            .copied()
            .unwrap_or(0);
        let at = chrono::Utc::now().timestamp() + (after - previous).max(1);
        desk_db::jobs::enqueue_once_at(
            &mut tx,
            &SmsDelivery {
                poll: next,
                ..job.clone()
            },
            at,
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
