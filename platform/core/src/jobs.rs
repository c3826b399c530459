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

/// A job that gathers the work of a municipality's time window (Unix time divided by
/// [`Windowed::WINDOW_SECS`]) into one run at the window's end; its idempotency key names the
/// window, so enqueueing it again within the window is a no-op.
pub trait Windowed: Sized {
    /// Width of a window in seconds.
    const WINDOW_SECS: i64;
    /// The job of `window` for `tenant_id`.
    fn for_window(tenant_id: TenantId, window: i64) -> Self;
    /// Its window.
    fn window(&self) -> i64;

    /// The job for the window holding `unix_secs`.
    fn covering(tenant_id: TenantId, unix_secs: i64) -> Self {
        Self::for_window(tenant_id, unix_secs.div_euclid(Self::WINDOW_SECS))
    }

    /// When the job runs: the end of its window (Unix seconds).
    fn run_at(&self) -> i64 {
        (self.window() + 1) * Self::WINDOW_SECS
    }
}

/// Tell a newly created staff member that their account exists (first admin at onboarding).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WelcomeStaff {
    /// Tenant of the staff member.
    pub tenant_id: TenantId,
    /// Id of the row in the tenant's `staff` table.
    pub staff_id: i64,
    /// Which invitation of the member this is (a resend is a new one; 0 for the first).
    #[serde(default)]
    pub round: i64,
}

impl WelcomeStaff {
    /// A new invitation of `staff_id` (its round from the clock, so each resend is its own job).
    pub fn new(tenant_id: TenantId, staff_id: i64) -> Self {
        Self {
            tenant_id,
            staff_id,
            round: chrono::Utc::now().timestamp_micros(),
        }
    }
}

impl JobPayload for WelcomeStaff {
    const QUEUE: &'static str = "welcome_staff";
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
    fn idempotency_key(&self) -> String {
        format!("{}:{}:{}", self.tenant_id, self.staff_id, self.round)
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
    /// 0 for the first try; a retry after a busy provider is a new job with the next number.
    #[serde(default)]
    pub attempt: u32,
}

impl JobPayload for SendSms {
    const QUEUE: &'static str = "send_sms";
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
    fn idempotency_key(&self) -> String {
        match self.attempt {
            0 => format!("{}:{}", self.tenant_id, self.notification_id),
            n => format!("{}:{}:{n}", self.tenant_id, self.notification_id),
        }
    }
}

/// Ask the providers whether a municipality's sent SMS reached the phones (delivery reports):
/// every message whose poll is due (`notifications.next_poll_at`). Polls falling due within one
/// window share one job, which runs when the window ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SmsDelivery {
    /// Tenant of the outbox.
    pub tenant_id: TenantId,
    /// Unix time divided by its [`Windowed::WINDOW_SECS`].
    pub window: i64,
}

impl SmsDelivery {
    /// Seconds after sending at which each poll runs; after the last the report stays unknown.
    pub const SCHEDULE_SECS: [i64; 5] = [3, 30, 120, 600, 3600];
}

impl Windowed for SmsDelivery {
    /// A report is read at most this much later than due.
    const WINDOW_SECS: i64 = 2;
    fn for_window(tenant_id: TenantId, window: i64) -> Self {
        Self { tenant_id, window }
    }
    fn window(&self) -> i64 {
        self.window
    }
}

impl JobPayload for SmsDelivery {
    const QUEUE: &'static str = "sms_delivery";
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
    fn idempotency_key(&self) -> String {
        format!("{}:w{}", self.tenant_id, self.window)
    }
}

/// Invite the citizen of a closed request to the satisfaction survey (a personal link by SMS).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteSurvey {
    /// Tenant of the request.
    pub tenant_id: TenantId,
    /// The closed request.
    pub request_id: i64,
}

impl JobPayload for InviteSurvey {
    const QUEUE: &'static str = "invite_survey";
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
    fn idempotency_key(&self) -> String {
        format!("{}:{}", self.tenant_id, self.request_id)
    }
}

/// Recompute a municipality's indicators for the province and platform dashboards. Changes
/// within one window share one job, which runs when the window ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshIndicators {
    /// The municipality.
    pub tenant_id: TenantId,
    /// Unix time divided by its [`Windowed::WINDOW_SECS`].
    pub window: i64,
}

impl Windowed for RefreshIndicators {
    /// At most one refresh per municipality per window.
    const WINDOW_SECS: i64 = 60;
    fn for_window(tenant_id: TenantId, window: i64) -> Self {
        Self { tenant_id, window }
    }
    fn window(&self) -> i64 {
        self.window
    }
}

impl JobPayload for RefreshIndicators {
    const QUEUE: &'static str = "refresh_indicators";
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
    fn idempotency_key(&self) -> String {
        format!("{}:{}", self.tenant_id, self.window)
    }
}

/// Take the next step of an inquiry to another agency: send it, ask whether it is answered,
/// or give up when its time is over. Each step is its own job (a retry or poll is a new step).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InquiryStep {
    /// Tenant of the inquiry.
    pub tenant_id: TenantId,
    /// The `inquiries` row.
    pub inquiry_id: i64,
    /// 0 for the first call; each retry or poll adds one.
    pub step: u32,
}

impl JobPayload for InquiryStep {
    const QUEUE: &'static str = "inquiry";
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
    fn idempotency_key(&self) -> String {
        format!("{}:{}:{}", self.tenant_id, self.inquiry_id, self.step)
    }
}

/// Look over one municipality's open requests: warn about steps due tomorrow, escalate
/// requests past their promised date to the department heads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlaSweep {
    /// The municipality.
    pub tenant_id: TenantId,
    /// Unix time divided by 3,600 (one sweep per municipality per hour).
    pub hour: i64,
}

impl JobPayload for SlaSweep {
    const QUEUE: &'static str = "sla_sweep";
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
    fn idempotency_key(&self) -> String {
        format!("{}:{}", self.tenant_id, self.hour)
    }
}

/// Deliver one webhook delivery (a POST to the municipality's receiver); a retry after a
/// failed try is a new job with the next attempt number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliverWebhook {
    /// The municipality.
    pub tenant_id: TenantId,
    /// The `webhook_deliveries` row.
    pub delivery_id: i64,
    /// 0 for the first try.
    #[serde(default)]
    pub attempt: u32,
}

impl JobPayload for DeliverWebhook {
    const QUEUE: &'static str = "deliver_webhook";
    fn tenant_id(&self) -> TenantId {
        self.tenant_id
    }
    fn idempotency_key(&self) -> String {
        format!("{}:{}:{}", self.tenant_id, self.delivery_id, self.attempt)
    }
}
