//! `sms_test_send`: sends the test SMS an admin asked for from the settings page, through that
//! account, and records the provider's answer. The credentials are opened in memory only, and no
//! database connection is held while the provider is called.

use crate::JobContext;
use apalis::prelude::*;
use desk_core::jobs::SmsTestSend;
use desk_db::settings;
use tracing::Instrument;

/// Handles one `sms_test_send` job.
pub async fn handle(
    job: SmsTestSend,
    ctx: Data<JobContext>,
    task_id: TaskId,
) -> Result<(), BoxDynError> {
    let span = tracing::info_span!("job", job.queue = "sms_test_send", job.id = %task_id, tenant.id = %job.tenant_id);
    send(job, &ctx).instrument(span).await
}

async fn send(job: SmsTestSend, ctx: &JobContext) -> Result<(), BoxDynError> {
    let Some(tenant) = crate::active_tenant(ctx, &job, false).await? else {
        return Ok(());
    };
    let Some(key) = &ctx.secrets else {
        return Err("no master key configured (secrets.master_key)".into());
    };
    let mut tx = ctx.platform.tenant_db().begin(tenant.scope()).await?;
    let Some(request) = settings::sms_test_request(&mut tx, job.test_id).await? else {
        return Ok(());
    };
    let sealed = settings::sealed_sms_credentials(&mut tx, request.account.id).await?;
    tx.commit().await?;
    if !request.pending {
        return Ok(());
    }
    let purpose = format!("sms_account:{}", request.account.id);
    let outcome = match sealed.map(|s| key.open(tenant.id, &purpose, &s)) {
        Some(Ok(plain)) => {
            let creds: serde_json::Value = serde_json::from_slice(&plain)?;
            let text = format!("پیام آزمایشی میز خدمت {}", tenant.name_fa);
            crate::sms::send_text(
                &ctx.sms_client,
                &ctx.sms_endpoints,
                &request.account.provider,
                &creds,
                &crate::sms::Text {
                    sender: &request.account.sender_line,
                    to: &request.recipient,
                    text: &text,
                    local_id: None,
                },
            )
            .await
        }
        _ => Err(crate::sms::SmsError::Auth),
    };
    let mut tx = ctx.platform.tenant_db().begin(tenant.scope()).await?;
    match &outcome {
        Ok(id) => settings::finish_sms_test(&mut tx, job.test_id, Some(id), None).await?,
        Err(e) => {
            settings::finish_sms_test(
                &mut tx,
                job.test_id,
                None,
                Some((e.code(), &e.message_fa())),
            )
            .await?
        }
    }
    tx.commit().await?;
    tracing::info!(sent = outcome.is_ok(), "test SMS done");
    Ok(())
}
