//! Enqueueing background jobs in the same transaction as the domain change.

use crate::tenant_tx::TenantTx;
use desk_core::DomainError;
use desk_core::jobs::JobPayload;

/// Enqueues `job` on its queue inside `tx`: the job exists if and only if the transaction
/// commits. The job must belong to the transaction's tenant.
#[tracing::instrument(skip_all, fields(tenant.id = %tx.tenant_id(), job.queue = J::QUEUE))]
pub async fn enqueue<J: JobPayload>(tx: &mut TenantTx, job: &J) -> Result<(), DomainError> {
    if job.tenant_id() != tx.tenant_id() {
        return Err(DomainError::Internal(anyhow::anyhow!(
            "refusing to enqueue a job of another tenant"
        )));
    }
    let bytes = serde_json::to_vec(job).map_err(|e| DomainError::Internal(e.into()))?;
    let task = apalis_core::task::builder::TaskBuilder::new(bytes)
        .idempotency_key(job.idempotency_key())
        .build();
    apalis_postgres::queries::push_tasks(&mut **tx, J::QUEUE, vec![task])
        .await
        .map_err(|e| DomainError::Internal(anyhow::anyhow!("enqueueing {}: {e}", J::QUEUE)))
}
