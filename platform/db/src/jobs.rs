//! Enqueueing background jobs in the same transaction as the domain change.

use crate::tenant_tx::TenantTx;
use desk_core::DomainError;
use desk_core::jobs::JobPayload;

/// Enqueues `job` on its queue inside `tx`: the job exists if and only if the transaction
/// commits. The job must belong to the transaction's tenant.
#[tracing::instrument(skip_all, fields(tenant.id = %tx.tenant_id(), job.queue = J::QUEUE))]
pub async fn enqueue<J: JobPayload>(tx: &mut TenantTx, job: &J) -> Result<(), DomainError> {
    push(tx, job, None)
        .await?
        .map_err(|e| enqueue_failed(J::QUEUE, e))
}

/// Enqueues `job` to run at `run_at` (Unix seconds) unless a job with its idempotency key
/// already exists; returns whether it was added. A savepoint keeps the duplicate's error from
/// aborting `tx`, so many changes can share one debounced job. (Tenant roles may insert into
/// the queue but not read it, so the duplicate is found by the unique key, not by a lookup.)
#[tracing::instrument(skip_all, fields(tenant.id = %tx.tenant_id(), job.queue = J::QUEUE))]
pub async fn enqueue_once_at<J: JobPayload>(
    tx: &mut TenantTx,
    job: &J,
    run_at: i64,
) -> Result<bool, DomainError> {
    sqlx::raw_sql("savepoint desk_enqueue_once")
        .execute(&mut **tx)
        .await
        .map_err(crate::internal)?;
    let pushed = push(tx, job, Some(run_at)).await?;
    let end = if pushed.is_ok() {
        "release savepoint desk_enqueue_once"
    } else {
        "rollback to savepoint desk_enqueue_once"
    };
    sqlx::raw_sql(end)
        .execute(&mut **tx)
        .await
        .map_err(crate::internal)?;
    match pushed {
        Ok(()) => Ok(true),
        // Another transaction added the same job (the unique key).
        Err(e) if is_duplicate(&e) => Ok(false),
        Err(e) => Err(enqueue_failed(J::QUEUE, e)),
    }
}

fn task<J: JobPayload>(
    job: &J,
    run_at: Option<i64>,
) -> Result<apalis_postgres::PgTask, DomainError> {
    let bytes = serde_json::to_vec(job).map_err(|e| DomainError::Internal(e.into()))?;
    let mut builder =
        apalis_core::task::builder::TaskBuilder::new(bytes).idempotency_key(job.idempotency_key());
    if let Some(at) = run_at.and_then(|t| u64::try_from(t).ok()) {
        builder = builder.run_at_timestamp(at);
    }
    Ok(builder.build())
}

fn is_duplicate(e: &apalis_postgres::Error) -> bool {
    matches!(e, apalis_postgres::Error::Database(sqlx::Error::Database(d)) if d.is_unique_violation())
}

async fn push<J: JobPayload>(
    tx: &mut TenantTx,
    job: &J,
    run_at: Option<i64>,
) -> Result<Result<(), apalis_postgres::Error>, DomainError> {
    if job.tenant_id() != tx.tenant_id() {
        return Err(DomainError::Internal(anyhow::anyhow!(
            "refusing to enqueue a job of another tenant"
        )));
    }
    let task = task(job, run_at)?;
    Ok(apalis_postgres::queries::push_tasks(&mut **tx, J::QUEUE, vec![task]).await)
}

fn enqueue_failed(queue: &str, e: apalis_postgres::Error) -> DomainError {
    DomainError::Internal(anyhow::anyhow!("enqueueing {queue}: {e}"))
}

impl crate::PlatformDb {
    /// Sets aside a job of a municipality that is not active; [`Self::unpark_jobs`] puts it back.
    pub async fn park_job<J: JobPayload>(&self, job: &J) -> Result<(), DomainError> {
        let bytes = serde_json::to_vec(job).map_err(|e| DomainError::Internal(e.into()))?;
        sqlx::query(
            "insert into platform.parked_jobs (tenant_id, queue, job, idempotency_key)
             values ($1, $2, $3, $4)",
        )
        .bind(job.tenant_id().0)
        .bind(J::QUEUE)
        .bind(bytes)
        .bind(job.idempotency_key())
        .execute(&self.pool)
        .await
        .map_err(crate::internal)?;
        Ok(())
    }

    /// Puts a municipality's parked jobs back on their queues, in the order they were parked
    /// (each under a key of its own, since its first key is taken). Returns how many.
    pub async fn unpark_jobs(&self, tenant: desk_core::TenantId) -> Result<usize, DomainError> {
        let mut tx = self.pool.begin().await.map_err(crate::internal)?;
        let rows: Vec<(i64, String, Vec<u8>, String)> = sqlx::query_as(
            "delete from platform.parked_jobs where tenant_id = $1
             returning id, queue, job, idempotency_key",
        )
        .bind(tenant.0)
        .fetch_all(&mut *tx)
        .await
        .map_err(crate::internal)?;
        let mut rows = rows;
        rows.sort_by_key(|r| r.0);
        for (id, queue, job, key) in &rows {
            let task = apalis_core::task::builder::TaskBuilder::new(job.clone())
                .idempotency_key(format!("{key}:resumed:{id}"))
                .build();
            apalis_postgres::queries::push_tasks(&mut *tx, queue, vec![task])
                .await
                .map_err(|e| enqueue_failed(queue, e))?;
        }
        tx.commit().await.map_err(crate::internal)?;
        Ok(rows.len())
    }

    /// Deletes finished jobs: done more than `keep_done` ago, and given up for good (failed
    /// with no attempt left, or killed) more than `keep_failed` ago. Jobs still to run or being
    /// retried stay. In batches of 5,000, so no statement holds many locks; returns how many
    /// went.
    pub async fn prune_finished_jobs(
        &self,
        keep_done: std::time::Duration,
        keep_failed: std::time::Duration,
    ) -> Result<u64, DomainError> {
        const BATCH: u64 = 5_000;
        let mut pruned = 0;
        loop {
            let done = sqlx::query(
                "delete from apalis.jobs where id in (
                     select id from apalis.jobs
                      where (status = 'Done' and done_at < now() - make_interval(secs => $1))
                         or (status in ('Failed', 'Killed') and attempts >= max_attempts
                             and done_at < now() - make_interval(secs => $2))
                      limit $3)",
            )
            .bind(keep_done.as_secs_f64())
            .bind(keep_failed.as_secs_f64())
            .bind(i64::try_from(BATCH).unwrap_or(i64::MAX))
            .execute(&self.pool)
            .await
            .map_err(crate::internal)?
            .rows_affected();
            pruned += done;
            if done < BATCH {
                return Ok(pruned);
            }
        }
    }

    /// Enqueues scheduled work outside any tenant transaction (a sweep over municipalities);
    /// a job already queued under the same key is left alone. Returns whether it was added.
    pub async fn enqueue_once_at<J: JobPayload>(
        &self,
        job: &J,
        run_at: i64,
    ) -> Result<bool, DomainError> {
        let task = task(job, Some(run_at))?;
        let mut conn = self.pool.acquire().await.map_err(crate::internal)?;
        match apalis_postgres::queries::push_tasks(&mut *conn, J::QUEUE, vec![task]).await {
            Ok(()) => Ok(true),
            Err(e) if is_duplicate(&e) => Ok(false),
            Err(e) => Err(enqueue_failed(J::QUEUE, e)),
        }
    }
}
