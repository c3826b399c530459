//! `sla_sweep`: once an hour per municipality, looks over its open requests. A request whose
//! step (or answer) is due tomorrow warns its assignee (or, unassigned, the department heads);
//! a request past the promised date on its receipt is escalated to the department heads. Each
//! is done once (the request records it), noted on the timeline, and sent by SMS to staff with
//! a mobile number. The same sweep reminds citizens by SMS of tomorrow's appointments, once each.

use crate::JobContext;
use apalis::prelude::*;
use desk_core::jobs::SlaSweep;
use desk_db::notifications::{self, Kind};
use desk_db::requests::{self, Actor, Request};
use desk_db::{TenantTx, staff};
use tracing::Instrument;

/// Handles one `sla_sweep` job.
pub async fn handle(
    job: SlaSweep,
    ctx: Data<JobContext>,
    task_id: TaskId,
) -> Result<(), BoxDynError> {
    let span = tracing::info_span!("job", job.queue = "sla_sweep", job.id = %task_id, tenant.id = %job.tenant_id);
    sweep(job, &ctx).instrument(span).await
}

/// What the sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Requests whose staff were warned.
    pub warned: usize,
    /// Requests escalated.
    pub escalated: usize,
    /// Alerts queued.
    pub alerts: usize,
    /// Appointment reminders queued.
    pub reminded: usize,
}

async fn sweep(job: SlaSweep, ctx: &JobContext) -> Result<(), BoxDynError> {
    let Some(tenant) = crate::active_tenant(ctx, &job, false).await? else {
        return Ok(());
    };
    let swept = run(&ctx.platform, &tenant, desk_core::calendar::today_in_iran()).await?;
    tracing::info!(
        warned = swept.warned,
        escalated = swept.escalated,
        alerts = swept.alerts,
        reminded = swept.reminded,
        "SLA sweep"
    );
    Ok(())
}

/// One sweep of `tenant` as of `today` (the job's work, callable on its own).
pub async fn run(
    platform: &desk_db::PlatformDb,
    tenant: &desk_db::Tenant,
    today: chrono::NaiveDate,
) -> Result<Swept, desk_core::DomainError> {
    let heads = platform
        .staff_with_role(tenant.id, "department_head")
        .await?;
    let mut tx = platform.tenant_db().begin(tenant.scope()).await?;
    let mut swept = Swept::default();
    for r in requests::take_due_tomorrow(&mut tx, today).await? {
        let to: Vec<i64> = match r.assignee {
            Some((id, _)) => vec![id],
            None => heads.clone(),
        };
        let note = "هشدار موعد: مهلت این مرحله فردا به پایان می‌رسد.";
        note_and_alert(&mut tx, &r, "sla_warning", note, &to, &mut swept).await?;
        swept.warned += 1;
    }
    for r in requests::take_overdue(&mut tx, today).await? {
        let note = "موعد پاسخ گذشت؛ درخواست به مدیران واحد ارجاع شد.";
        note_and_alert(&mut tx, &r, "escalated", note, &heads, &mut swept).await?;
        swept.escalated += 1;
    }
    swept.reminded = remind(&mut tx, tenant, today + chrono::Duration::days(1)).await?;
    tx.commit().await?;
    Ok(swept)
}

/// Queues the reminder SMS of each live appointment on `day` not yet reminded.
async fn remind(
    tx: &mut TenantTx,
    tenant: &desk_db::Tenant,
    day: chrono::NaiveDate,
) -> Result<usize, desk_core::DomainError> {
    let due = desk_db::appointments::take_reminders(tx, day).await?;
    for a in &due {
        let service = desk_db::catalog::published_service(tx, &a.service_code)
            .await?
            .map_or_else(|| a.service_code.clone(), |s| s.card.title_fa);
        let time = desk_core::text::persian_digits(&a.starts.format("%H:%M").to_string());
        let date = desk_core::jalali::JalaliDate::persian_of(a.day);
        let body = desk_db::sms_templates::render(
            tx,
            desk_core::sms_templates::Event::AppointmentReminder,
            &serde_json::json!({
                "municipality": tenant.name_fa, "service": service, "date": date, "time": time,
            }),
        )
        .await?;
        notifications::queue_sms(tx, Kind::Appointment, &a.mobile, &body, None).await?;
    }
    Ok(due.len())
}

async fn note_and_alert(
    tx: &mut TenantTx,
    r: &Request,
    action: &str,
    note: &str,
    staff_ids: &[i64],
    swept: &mut Swept,
) -> Result<(), desk_core::DomainError> {
    requests::note(tx, r, Actor::System, action, note).await?;
    for id in staff_ids {
        let Some(mobile) = staff::staff_by_id(tx, *id).await?.and_then(|s| s.mobile) else {
            continue;
        };
        let body = format!(
            "میز خدمت: درخواست {} ({}) — {note}",
            r.tracking_code, r.service_title
        );
        notifications::queue_sms(
            tx,
            Kind::StaffAlert { request_id: r.id },
            &mobile,
            &body,
            None,
        )
        .await?;
        swept.alerts += 1;
    }
    Ok(())
}
