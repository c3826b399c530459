//! `invite_survey`: when a request closes, its citizen gets a personal survey link by SMS
//! (random token, only its hash stored, single use, 30 days). The link lives only sealed in the
//! outbox row until `send_sms` fills in `{link}`. Idempotent: a request has one survey, so a
//! rerun (or a survey already answered at the desk) sends nothing.

use crate::JobContext;
use apalis::prelude::*;
use desk_core::jobs::InviteSurvey;
use desk_db::notifications::{self, Kind};
use desk_db::{requests, surveys};
use tracing::Instrument;

/// Handles one `invite_survey` job.
pub async fn handle(
    job: InviteSurvey,
    ctx: Data<JobContext>,
    task_id: TaskId,
) -> Result<(), BoxDynError> {
    let span = tracing::info_span!("job", job.queue = "invite_survey", job.id = %task_id, tenant.id = %job.tenant_id);
    invite(job, &ctx).instrument(span).await
}

async fn invite(job: InviteSurvey, ctx: &JobContext) -> Result<(), BoxDynError> {
    let Some(tenant) = crate::active_tenant(ctx, &job, false).await? else {
        return Ok(());
    };
    let Some(host) = ctx
        .platform
        .tenant_domains(tenant.id)
        .await?
        .into_iter()
        .next()
    else {
        return Err("the municipality has no domain".into());
    };
    let Some(key) = &ctx.secrets else {
        return Err(
            "no master key configured (secrets.master_key): cannot seal the survey link".into(),
        );
    };
    let mut tx = ctx.platform.tenant_db().begin(tenant.scope()).await?;
    let Some(request) = requests::request_by_id(&mut tx, job.request_id).await? else {
        tracing::warn!("request no longer exists; dropping job");
        return Ok(());
    };
    if !request.closed {
        return Ok(());
    }
    let token = desk_core::secret::new_token();
    if !surveys::invite(&mut tx, request.id, &token).await? {
        tx.rollback().await?;
        tracing::info!("request already has a survey");
        return Ok(());
    }
    let link = ctx.urls.url(&host, &format!("/survey/{token}"));
    let sealed = key.seal(
        tenant.id,
        &format!("survey_link:{}", request.mobile),
        link.as_bytes(),
    )?;
    let body = desk_db::sms_templates::render(
        &mut tx,
        desk_core::sms_templates::Event::SurveyLink,
        &serde_json::json!({
            "municipality": tenant.name_fa, "tracking_code": request.tracking_code,
            // The sender fills in the sealed link.
            "link": "{link}",
        }),
    )
    .await?;
    notifications::queue_sms(
        &mut tx,
        Kind::Survey {
            request_id: request.id,
        },
        &request.mobile,
        &body,
        Some(&sealed),
    )
    .await?;
    tx.commit().await?;
    tracing::info!("survey invitation queued");
    Ok(())
}
