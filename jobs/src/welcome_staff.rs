//! `welcome_staff`: gives a new staff member an invitation link (valid for three days, where they
//! set a password; a new invitation revokes the previous one) and
//! records the welcome message carrying it in the tenant's notification outbox (the SMS
//! pipeline of issue #6 sends it). Never a password in clear.

use crate::JobContext;
use apalis::prelude::*;
use desk_core::jobs::WelcomeStaff;
use desk_db::staff;
use tracing::Instrument;

/// Handles one `welcome_staff` job.
pub async fn handle(
    job: WelcomeStaff,
    ctx: Data<JobContext>,
    task_id: TaskId,
) -> Result<(), BoxDynError> {
    let span = tracing::info_span!(
        "job",
        job.queue = "welcome_staff",
        job.id = %task_id,
        tenant.id = %job.tenant_id
    );
    welcome(job, &ctx, &task_id).instrument(span).await
}

async fn welcome(job: WelcomeStaff, ctx: &JobContext, task_id: &TaskId) -> Result<(), BoxDynError> {
    let Some(tenant) = crate::active_tenant(ctx, &job, false).await? else {
        return Ok(());
    };
    // Registry lookups before the tenant transaction: a job holds one connection at a time.
    let Some(host) = ctx
        .platform
        .tenant_domains(tenant.id)
        .await?
        .into_iter()
        .next()
    else {
        return Err("the municipality has no domain".into());
    };
    let mut tx = ctx.platform.tenant_db().begin(tenant.scope()).await?;
    let Some(member) = staff::staff_by_id(&mut tx, job.staff_id).await? else {
        tracing::warn!(
            staff.id = job.staff_id,
            "staff member no longer exists; dropping job"
        );
        return Ok(());
    };
    let Some(key) = &ctx.secrets else {
        return Err(
            "no master key configured (secrets.master_key): cannot seal the sign-in link".into(),
        );
    };
    if !member.active || member.joined {
        tracing::info!(
            staff.id = member.id,
            "member deactivated or already joined; no invitation"
        );
        return Ok(());
    }
    let link = staff::issue_invitation(&mut tx, member.id, &host, &ctx.urls).await?;
    let sealed = key.seal(
        tenant.id,
        &format!("notification_secret:{}", member.id),
        link.as_bytes(),
    )?;
    // The link lives only sealed; the `send_sms` job opens it and fills in `{link}`.
    let body = format!(
        "{} گرامی، به میز خدمت {} دعوت شده‌اید.\nنام کاربری: {}\nبرای تعیین گذرواژه (تا سه روز):\n{{link}}",
        member.display_name, tenant.name_fa, member.username
    );
    let written = staff::record_welcome(&mut tx, &member, &body, &sealed, &task_id.to_string())
        .await?
        .is_some();
    if written {
        tx.commit().await?;
    } else {
        // Already welcomed by an earlier run of this job: no second link.
        tx.rollback().await?;
    }
    tracing::info!(written, "welcome recorded");
    Ok(())
}
