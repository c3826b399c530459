//! `refresh_indicators`: recomputes one municipality's monthly indicators from its own schema
//! and replaces its rows in `platform.tenant_indicators`, which the province and platform
//! dashboards read (so no page view scans tenant schemas). Enqueued, at most once a minute per
//! municipality, by the changes that move the figures (a request closing, a survey answered),
//! and for every municipality by [`sweep`].

use crate::JobContext;
use apalis::prelude::*;
use desk_core::jobs::RefreshIndicators;
use desk_db::PlatformDb;
use desk_db::reports;
use tracing::Instrument;

/// Handles one `refresh_indicators` job.
pub async fn handle(
    job: RefreshIndicators,
    ctx: Data<JobContext>,
    task_id: TaskId,
) -> Result<(), BoxDynError> {
    let span = tracing::info_span!("job", job.queue = "refresh_indicators", job.id = %task_id, tenant.id = %job.tenant_id);
    async {
        refresh(&ctx.platform, job.tenant_id).await?;
        Ok(())
    }
    .instrument(span)
    .await
}

/// Recomputes and stores one municipality's indicators (archived ones keep their last figures).
pub async fn refresh(
    platform: &PlatformDb,
    tenant_id: desk_core::TenantId,
) -> Result<usize, desk_core::DomainError> {
    let Some(tenant) = platform.tenant_by_id(tenant_id).await? else {
        return Ok(0);
    };
    if tenant.status == desk_core::TenantStatus::Archived {
        return Ok(0);
    }
    let mut tx = platform.tenant_db().begin(tenant.scope()).await?;
    let months = reports::monthly_indicators(&mut tx, desk_core::calendar::today_in_iran()).await?;
    tx.commit().await?;
    platform.store_indicators(tenant.id, &months).await?;
    tracing::info!(months = months.len(), "indicators refreshed");
    Ok(months.len())
}
