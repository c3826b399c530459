//! `sms_delivery`: asks the providers whether a municipality's sent SMS reached the phones and
//! records the answers on the messages (the request's timeline shows them). Each sent message
//! is polled at growing intervals after sending (`SmsDelivery::SCHEDULE_SECS`, kept on the row
//! as `next_poll_at`); one job per short window polls every message of the municipality that
//! is due, so a burst of messages costs a few jobs, not one per message and poll. After the
//! last poll the report stays unknown. No database connection is held during the calls.

use crate::JobContext;
use crate::sms::{Delivery, delivery_status};
use apalis::prelude::*;
use desk_core::jobs::SmsDelivery;
use desk_core::jobs::Windowed;
use desk_db::notifications::{self, DuePoll};
use desk_db::settings;
use futures::StreamExt;
use std::collections::HashMap;
use tracing::Instrument;

/// Messages one job polls at most (the rest are left to the next window).
const BATCH: i64 = 500;
/// Provider calls in flight at once.
const CONCURRENT_CALLS: usize = 16;

/// Handles one `sms_delivery` job.
pub async fn handle(
    job: SmsDelivery,
    ctx: Data<JobContext>,
    task_id: TaskId,
) -> Result<(), BoxDynError> {
    let span = tracing::info_span!("job", job.queue = "sms_delivery", job.id = %task_id, tenant.id = %job.tenant_id);
    poll(job, &ctx).instrument(span).await
}

/// An account's provider and opened credentials.
type Opened = (String, serde_json::Value);

async fn poll(job: SmsDelivery, ctx: &JobContext) -> Result<(), BoxDynError> {
    let Some(tenant) = crate::active_tenant(ctx, &job, true).await? else {
        return Ok(());
    };
    let Some(key) = &ctx.secrets else {
        return Err("no master key configured (secrets.master_key)".into());
    };
    let db = ctx.platform.tenant_db();
    let mut tx = db.begin(tenant.scope()).await?;
    let due = notifications::due_polls(&mut tx, BATCH).await?;
    let mut ids: Vec<i64> = due.iter().map(|d| d.account_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let sealed = settings::sms_credentials(&mut tx, &ids).await?;
    tx.commit().await?;
    // An account whose credentials cannot be opened (or that is gone) is missing here.
    let accounts: HashMap<i64, Opened> = sealed
        .into_iter()
        .filter_map(|(id, provider, sealed)| {
            let plain = key
                .open(tenant.id, &format!("sms_account:{id}"), &sealed)
                .ok()?;
            let creds = serde_json::from_slice(&plain).ok()?;
            Some((id, (provider, creds)))
        })
        .collect();

    let reports: Vec<(DuePoll, Option<Delivery>)> = futures::stream::iter(due)
        .map(|d| {
            let opened = accounts.get(&d.account_id).cloned();
            async move {
                let Some((provider, creds)) = opened else {
                    // The account is gone or cannot be opened: no more polls for it.
                    return (d, Some(Delivery::Failed("account".into())));
                };
                let report = delivery_status(
                    &ctx.sms_client,
                    &ctx.sms_endpoints,
                    &provider,
                    &creds,
                    &d.provider_message_id,
                )
                .await;
                match report {
                    Ok(r) => (d, Some(r)),
                    Err(e) => {
                        tracing::warn!(error = e.code(), "delivery report unavailable");
                        (d, None)
                    }
                }
            }
        })
        .buffer_unordered(CONCURRENT_CALLS)
        .collect()
        .await;

    let mut tx = db.begin(tenant.scope()).await?;
    for (d, report) in &reports {
        let (recorded, again) = match report {
            Some(Delivery::Delivered) => (Some(("delivered", None)), false),
            Some(Delivery::Failed(code)) => (Some(("failed", Some(code.as_str()))), false),
            Some(Delivery::Pending) => (Some(("pending", None)), true),
            None => (None, true),
        };
        let next = usize::try_from(d.polls)
            .ok()
            .and_then(|p| SmsDelivery::SCHEDULE_SECS.get(p + 1))
            .copied()
            .filter(|_| again);
        notifications::record_poll(&mut tx, d.id, recorded, next).await?;
    }
    // The next window with a poll due (never this job's own window, which has run).
    if let Some(at) = notifications::next_poll_due(&mut tx).await? {
        let at = at.timestamp().max(job.run_at());
        let next = SmsDelivery::covering(tenant.id, at);
        desk_db::jobs::enqueue_once_at(&mut tx, &next, next.run_at()).await?;
    }
    tx.commit().await?;
    tracing::info!(polled = reports.len(), "delivery reports");
    Ok(())
}
