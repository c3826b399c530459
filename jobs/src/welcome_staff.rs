//! `welcome_staff`: records the welcome message of a new staff member in the tenant's
//! notification outbox (the SMS pipeline of issue #6 sends it).

use crate::JobContext;
use apalis::prelude::*;
use desk_core::TenantStatus;
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
    let Some(tenant) = ctx.platform.tenant_by_id(job.tenant_id).await? else {
        tracing::warn!("tenant no longer exists; dropping job");
        return Ok(());
    };
    if tenant.status != TenantStatus::Active {
        // Suspended or archived municipalities get no new work; the job stays for a retry.
        return Err(format!("tenant is {}", tenant.status.as_str()).into());
    }
    let mut tx = ctx.platform.tenant_db().begin(tenant.scope()).await?;
    let Some(member) = staff::staff_by_id(&mut tx, job.staff_id).await? else {
        tracing::warn!(
            staff.id = job.staff_id,
            "staff member no longer exists; dropping job"
        );
        return Ok(());
    };
    let body = format!(
        "{} گرامی، حساب کاربری شما در میز خدمت {} ساخته شد. نام کاربری: {}",
        member.display_name, tenant.name_fa, member.username
    );
    let written = staff::record_welcome(&mut tx, &member, &body, &task_id.to_string()).await?;
    tx.commit().await?;
    tracing::info!(written, "welcome recorded");
    Ok(())
}
