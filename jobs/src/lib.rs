//! Background workers of Miz on apalis 1.0 with PostgreSQL storage.
//!
//! Owns the job handlers, the SMS provider adapters and the fake provider, and the worker
//! process (`desk worker`, and inside `desk demo`). One
//! explicitly named queue per job type; worker names are unique per process so several
//! `desk worker` processes can run side by side. Every handler re-checks the job's tenant in the
//! registry (it must exist and be active) and then works through a `TenantTx` like a request.
//! Must not depend on the web, GraphQL or tenant-admin crates.

pub mod fake_agency;
pub mod fake_sms;
pub mod inquiry;
pub mod invite_survey;
pub use desk_http::outbound;
pub mod refresh_indicators;
pub mod send_sms;
pub mod sla;
pub mod sms;
pub mod sms_delivery;
pub mod sms_test;
pub mod webhook;
pub mod welcome_staff;

use apalis::prelude::*;
use apalis_postgres::{Config, PostgresStorage, Pubsub};
use desk_core::PublicUrls;
use desk_core::jobs::Windowed;
use desk_core::jobs::{
    DeliverWebhook, InquiryStep, InviteSurvey, JobPayload, RefreshIndicators, SendSms, SlaSweep,
    SmsDelivery, SmsTestSend, WelcomeStaff,
};
use desk_db::PlatformDb;
use std::time::Duration;

/// What every handler gets: the platform registry (and through it, tenant transactions).
#[derive(Debug, Clone)]
pub struct JobContext {
    /// Registry and tenant transactions.
    pub platform: PlatformDb,
    /// How links in messages look.
    pub urls: PublicUrls,
    /// Seals secrets a message carries (one-time links); `None` when no master key is configured.
    pub secrets: Option<desk_core::secret::MasterKey>,
    /// Where the SMS providers are.
    pub sms_endpoints: sms::Endpoints,
    /// HTTP client for provider calls.
    pub sms_client: reqwest::Client,
    /// Paces each municipality's sends in this process.
    pub sms_rate: std::sync::Arc<SendRate>,
    /// Registry entries read by the busiest jobs, for a moment.
    pub tenants: std::sync::Arc<TenantCache>,
    /// The guard of calls to addresses municipalities typed (webhooks, agencies).
    pub outbound: outbound::Outbound,
}

/// How long a job may trust a registry entry it read (a suspension takes this long at most to
/// reach the busiest queues of a running worker).
pub const TENANT_CACHE_TTL: Duration = Duration::from_secs(2);

type Cached = std::collections::HashMap<desk_core::TenantId, (desk_db::Tenant, std::time::Instant)>;

/// The registry entries of municipalities, kept for [`TENANT_CACHE_TTL`].
#[derive(Debug, Default)]
pub struct TenantCache(std::sync::Mutex<Cached>);

impl TenantCache {
    /// The municipality `id`, from the cache when fresh.
    pub async fn get(
        &self,
        platform: &PlatformDb,
        id: desk_core::TenantId,
    ) -> Result<Option<desk_db::Tenant>, desk_core::DomainError> {
        if let Ok(cache) = self.0.lock()
            && let Some((t, at)) = cache.get(&id)
            && at.elapsed() < TENANT_CACHE_TTL
        {
            return Ok(Some(t.clone()));
        }
        let found = platform.tenant_by_id(id).await?;
        if let (Some(t), Ok(mut cache)) = (&found, self.0.lock()) {
            cache.insert(id, (t.clone(), std::time::Instant::now()));
        }
        Ok(found)
    }
}

/// Sends per second each municipality may make from one worker process (its burst too).
pub const SMS_PER_SECOND: f64 = 100.0;

type Buckets = std::collections::HashMap<desk_core::TenantId, (f64, std::time::Instant)>;

/// A token bucket per municipality: a municipality sending a flood waits its turn, and cannot
/// take the provider capacity of the others.
#[derive(Debug)]
pub struct SendRate {
    per_second: f64,
    buckets: std::sync::Mutex<Buckets>,
}

impl SendRate {
    /// A bucket of `per_second` tokens per municipality, refilled continuously.
    pub fn new(per_second: f64) -> Self {
        Self {
            per_second: per_second.max(0.1),
            buckets: std::sync::Mutex::new(Buckets::new()),
        }
    }

    /// Waits until `tenant` may send one more message.
    pub async fn acquire(&self, tenant: desk_core::TenantId) {
        loop {
            let wait = {
                let Ok(mut buckets) = self.buckets.lock() else {
                    return;
                };
                let now = std::time::Instant::now();
                let (tokens, at) = buckets.entry(tenant).or_insert((self.per_second, now));
                *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second)
                    .min(self.per_second);
                *at = now;
                if *tokens >= 1.0 {
                    *tokens -= 1.0;
                    return;
                }
                (1.0 - *tokens) / self.per_second
            };
            tokio::time::sleep(Duration::from_secs_f64(wait)).await;
        }
    }
}

/// A worker for one queue. It wakes on the queue's insert notifications and also polls every
/// few seconds: a job inserted while the listener is still connecting (or after a dropped
/// connection) is picked up anyway, and jobs scheduled for later (`run_at`) start on time.
macro_rules! queue_worker {
    ($job:ty, $handler:path, $pool:expr, $ctx:expr, $instance:expr) => {{
        let (ctx, pool, instance) = ($ctx.clone(), $pool.clone(), $instance.clone());
        move |restarts: usize| {
            let storage = PostgresStorage::<$job>::new(&pool).with_config(
                Config::default()
                    .queue(<$job>::QUEUE)
                    .batch_size(BATCH)
                    .heartbeat_interval(HEARTBEAT),
            );
            let wake = Strategy::new()
                .stream(Pubsub::new(pool.clone(), <$job>::QUEUE.to_owned()))
                .interval(POLL_EVERY);
            // A restarted worker registers under a new name: the old name's unfinished jobs
            // go back to the queue once it has missed its heartbeats.
            WorkerBuilder::new(format!("{}-{instance}-{restarts}", <$job>::QUEUE))
                .backend(PollWith::new(storage, wake))
                .data(ctx.clone())
                .build($handler)
        }
    }};
}

/// Seconds before retry number `n` (1, 2, ...) of a call to a busy party: 5, 10, 20, 40, ...
/// at most 10 minutes.
pub fn backoff_secs(n: u32) -> i64 {
    (5_i64 << n.clamp(1, 8).saturating_sub(1)).min(600)
}

/// How often each queue's worker reports to apalis. A job scheduled for later (a retry after
/// backoff) was seen to wait for the next heartbeat after its time had come, rather than for
/// the next poll, so the heartbeat bounds that wait (apalis's default is 30 s).
const HEARTBEAT: Duration = Duration::from_secs(2);

/// Jobs fetched (and run concurrently) at a time per queue.
const BATCH: usize = 64;

/// How often each queue is polled besides its notifications (a notification that arrives while
/// a fetch is running wakes nobody; the poll picks its job up).
const POLL_EVERY: Duration = Duration::from_millis(500);

/// Number of queues this process works (one worker each).
const QUEUES: u32 = 9;

/// The job's municipality, if it exists and is active: the preamble of every job. A job of a
/// suspended or archived municipality is parked (see [`active_or_park`]); one of a municipality
/// that no longer exists is dropped. `cached` reads the registry through the process's short
/// cache ([`TENANT_CACHE_TTL`]), for the busiest queues.
pub(crate) async fn active_tenant<J: JobPayload>(
    ctx: &JobContext,
    job: &J,
    cached: bool,
) -> Result<Option<desk_db::Tenant>, BoxDynError> {
    let found = if cached {
        ctx.tenants.get(&ctx.platform, job.tenant_id()).await?
    } else {
        ctx.platform.tenant_by_id(job.tenant_id()).await?
    };
    let Some(tenant) = found else {
        tracing::warn!("tenant no longer exists; dropping job");
        return Ok(None);
    };
    Ok(active_or_park(ctx, &tenant, job).await?.then_some(tenant))
}

/// Whether the job's municipality is active. A job of a suspended or archived municipality is
/// parked (kept, not failed) until the municipality is resumed or restored, which puts it back.
pub(crate) async fn active_or_park<J: JobPayload>(
    ctx: &JobContext,
    tenant: &desk_db::Tenant,
    job: &J,
) -> Result<bool, BoxDynError> {
    if tenant.status == desk_core::TenantStatus::Active {
        return Ok(true);
    }
    ctx.platform.park_job(job).await?;
    tracing::info!(
        status = tenant.status.as_str(),
        "municipality not active; job parked until it is resumed"
    );
    // Resumed meanwhile (after the status was read, before the job was parked): put it back.
    if ctx
        .platform
        .tenant_by_id(tenant.id)
        .await?
        .is_some_and(|t| t.status == desk_core::TenantStatus::Active)
    {
        ctx.platform.unpark_jobs(tenant.id).await?;
    }
    Ok(false)
}

/// A queue's worker stops when its database connection fails (PostgreSQL restarting or
/// failing over); it is started again, after a pause that grows to a second, so the process
/// recovers by itself without spinning while the database is away. (The pause blocks the
/// monitor's thread: only failing workers restart, and they have nothing else to do.)
fn restart_after_pause(
    worker: &apalis::prelude::WorkerContext,
    error: &apalis::prelude::WorkerError,
) -> bool {
    let restarts = worker.restarts();
    tracing::warn!(worker = worker.name(), restarts, error = %error, "queue worker stopped; restarting it");
    let pause = Duration::from_millis(100 * u64::try_from(restarts.min(10)).unwrap_or(10));
    std::thread::sleep(pause);
    true
}

/// A name unique to this process, for worker registration (apalis refuses duplicates).
fn instance_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "host".to_owned());
    format!("{host}-{}", std::process::id())
}

/// Runs all workers until `shutdown` resolves, then lets running jobs finish (up to 10 s).
pub async fn run_workers(
    platform: PlatformDb,
    urls: PublicUrls,
    secrets: Option<desk_core::secret::MasterKey>,
    sms_endpoints: sms::Endpoints,
    outbound: outbound::Outbound,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    // The queue machinery (fetches, acknowledgements, heartbeats) gets a pool of its own, so
    // jobs holding tenant transactions can never starve it (or the reverse); each queue's
    // listener opens one more connection of its own. These touch only the `apalis` schema, so
    // they stay small.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(QUEUES + 2)
        .connect_lazy_with((*platform.pool_for_infrastructure().connect_options()).clone());
    let ctx = JobContext {
        platform,
        urls,
        secrets,
        sms_endpoints,
        sms_client: sms::client(),
        sms_rate: std::sync::Arc::new(SendRate::new(SMS_PER_SECOND)),
        tenants: std::sync::Arc::default(),
        outbound,
    };
    let instance = instance_name();
    tracing::info!(worker.instance = %instance, "starting workers");
    let sweeper = tokio::spawn(sweep_indicators(ctx.platform.clone()));
    let run = Monitor::new()
        .register(queue_worker!(
            WelcomeStaff,
            welcome_staff::handle,
            pool,
            ctx,
            instance
        ))
        .register(queue_worker!(
            SmsTestSend,
            sms_test::handle,
            pool,
            ctx,
            instance
        ))
        .register(queue_worker!(
            SendSms,
            send_sms::handle,
            pool,
            ctx,
            instance
        ))
        .register(queue_worker!(
            InviteSurvey,
            invite_survey::handle,
            pool,
            ctx,
            instance
        ))
        .register(queue_worker!(
            RefreshIndicators,
            refresh_indicators::handle,
            pool,
            ctx,
            instance
        ))
        .register(queue_worker!(
            InquiryStep,
            inquiry::handle,
            pool,
            ctx,
            instance
        ))
        .register(queue_worker!(
            SmsDelivery,
            sms_delivery::handle,
            pool,
            ctx,
            instance
        ))
        .register(queue_worker!(SlaSweep, sla::handle, pool, ctx, instance))
        .register(queue_worker!(
            DeliverWebhook,
            webhook::handle,
            pool,
            ctx,
            instance
        ))
        .should_restart(restart_after_pause)
        .shutdown_timeout(Duration::from_secs(10))
        .run_with_signal(async move {
            shutdown.await;
            Ok(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("worker monitor stopped: {e}"));
    sweeper.abort();
    run
}

/// How long a finished job is kept (for looking into what happened).
pub const KEEP_DONE_JOBS: Duration = Duration::from_secs(24 * 3600);
/// How long a job given up for good is kept.
pub const KEEP_FAILED_JOBS: Duration = Duration::from_secs(30 * 24 * 3600);

/// Every hour, queues an indicator refresh and an SLA sweep for every municipality, so figures
/// that move without an event (a request becoming overdue, new filings) reach the dashboards and
/// due or overdue requests reach their staff. Several
/// worker processes share the work: a refresh already queued for the window is not added again.
async fn sweep_indicators(platform: PlatformDb) {
    let mut every = tokio::time::interval(Duration::from_secs(3600));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        let tenants = match platform
            .list_tenants(&desk_db::tenants::TenantFilter::default())
            .await
        {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "indicator sweep could not list municipalities");
                continue;
            }
        };
        let now = chrono::Utc::now().timestamp();
        let mut queued = 0usize;
        for t in tenants
            .iter()
            .filter(|t| t.status != desk_core::TenantStatus::Archived)
        {
            let job = RefreshIndicators::covering(t.id, now);
            match platform.enqueue_once_at(&job, job.run_at()).await {
                Ok(added) => queued += usize::from(added),
                Err(e) => tracing::warn!(tenant.id = %t.id, error = %e, "indicator sweep"),
            }
            // SLA alerts only where the desk is working (a suspended desk gets none to catch up).
            if t.status == desk_core::TenantStatus::Active {
                let sla = SlaSweep {
                    tenant_id: t.id,
                    hour: now.div_euclid(3600),
                };
                if let Err(e) = platform.enqueue_once_at(&sla, now).await {
                    tracing::warn!(tenant.id = %t.id, error = %e, "SLA sweep");
                }
            }
        }
        tracing::info!(queued, "indicator sweep");
        // Finished jobs would pile up in the queue table for ever (every SMS leaves one).
        match platform
            .prune_finished_jobs(KEEP_DONE_JOBS, KEEP_FAILED_JOBS)
            .await
        {
            Ok(pruned) => tracing::info!(pruned, "finished jobs deleted"),
            Err(e) => tracing::warn!(error = %e, "deleting finished jobs failed"),
        }
    }
}
