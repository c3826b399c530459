//! Payloads of background jobs. Every payload names its tenant; the worker re-checks it.

use crate::tenant::TenantId;
use serde::{Deserialize, Serialize};

/// A job payload: serializable, tied to one explicitly named queue and one tenant.
pub trait JobPayload: Serialize + for<'de> Deserialize<'de> + Send + Sync + 'static {
    /// The queue name (never the Rust type path, so renaming a type cannot orphan jobs).
    const QUEUE: &'static str;
    /// The tenant the job acts for.
    fn tenant_id(&self) -> TenantId;
    /// Key that makes enqueueing the same logical job twice a no-op.
    fn idempotency_key(&self) -> String;
}

/// Tell a newly created staff member that their account exists (first admin at onboarding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WelcomeStaff {
    /// Tenant of the staff member.
    pub tenant_id: TenantId,
    /// Id of the row in the tenant's `staff` table.
    pub staff_id: i64,
}

impl JobPayload for WelcomeStaff {
    const QUEUE: &'static str = "welcome_staff";
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
    fn idempotency_key(&self) -> String {
        format!("{}:{}", self.tenant_id, self.staff_id)
    }
}

/// Send a test SMS through one of the municipality's SMS accounts (the settings page's button).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsTestSend {
    /// Tenant of the account.
    pub tenant_id: TenantId,
    /// The `sms_test_sends` row to complete.
    pub test_id: i64,
}

impl JobPayload for SmsTestSend {
    const QUEUE: &'static str = "sms_test_send";
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
    fn idempotency_key(&self) -> String {
        format!("{}:{}", self.tenant_id, self.test_id)
    }
}

/// Send one queued SMS of the municipality's outbox (`notifications` row) through its provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendSms {
    /// Tenant of the outbox.
    pub tenant_id: TenantId,
    /// The `notifications` row to send.
    pub notification_id: i64,
}

impl JobPayload for SendSms {
    const QUEUE: &'static str = "send_sms";
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
    fn idempotency_key(&self) -> String {
        format!("{}:{}", self.tenant_id, self.notification_id)
    }
}
