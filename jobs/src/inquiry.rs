//! `inquiry`: the steps of an inquiry to another agency (استعلام). The agency's connector is
//! behind [`Connector`]; [`HttpJson`] speaks Miz's JSON exchange:
//!
//! - `POST {endpoint}/inquiries` with `Authorization: Bearer <token>`, `Idempotency-Key`, and
//!   `{"reference", "subject", "service_code", "tracking_code", "applicant": {"national_code",
//!   "name"}}`; the agency answers `200 {"status":"answered","answer","outcome"}` (outcome
//!   `approved`, `rejected` or `info`) or `202 {"status":"accepted","ref","retry_after"}`;
//! - `GET {endpoint}/inquiries/{ref}` answers the same way, or `{"status":"pending"}`.
//!
//! Busy agencies (5xx, timeouts, transport errors) are retried with backoff up to
//! [`MAX_FAILURES`]; refusals (4xx) fail the inquiry at once; an inquiry still open after its
//! due date times out. Letters (`manual` agencies) are answered by staff. No database
//! connection is held during a call to the agency.

use crate::JobContext;
use apalis::prelude::*;
use desk_core::jobs::InquiryStep;
use desk_db::inquiries::{self, Agency, Inquiry};
use desk_db::requests::{self, Actor};
use serde_json::{Value, json};
use std::time::Duration;
use tracing::Instrument;

/// Failed calls after which an inquiry is given up.
pub const MAX_FAILURES: i32 = 5;

/// What an agency said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// The answer.
    Answered {
        /// Text of the answer.
        answer: String,
        /// `approved`, `rejected` or `info`.
        outcome: String,
    },
    /// Taken, not answered yet.
    Pending {
        /// The agency's reference to ask about it later.
        reference: Option<String>,
        /// Seconds until asking again is worthwhile.
        retry_after: u64,
    },
}

/// Why a call to an agency failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectorError {
    /// Busy, down, slow or unreachable: worth trying again.
    #[error("agency unavailable: {0}")]
    Unavailable(String),
    /// The agency refused the inquiry (bad token, unknown reference, bad input).
    #[error("agency refused with HTTP {0}")]
    Refused(u16),
    /// The agency answered something that is not the exchange format.
    #[error("agency reply not understood")]
    Malformed,
    /// The agency's address is not one we call (not public, or breaks the URL rules).
    #[error("agency address refused: {0}")]
    Forbidden(String),
}

impl ConnectorError {
    /// Whether trying again may succeed.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }

    /// A short code for the inquiry's record (never a secret).
    pub fn code(&self) -> String {
        match self {
            Self::Unavailable(why) => format!("unavailable: {why}"),
            Self::Refused(status) => format!("refused: HTTP {status}"),
            Self::Malformed => "malformed reply".to_owned(),
            Self::Forbidden(why) => format!("address refused: {why}"),
        }
    }
}

/// What is sent to an agency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// Our reference (municipality and inquiry), also the idempotency key.
    pub reference: String,
    /// What is asked.
    pub subject: String,
    /// The service's code.
    pub service_code: String,
    /// The request's tracking code.
    pub tracking_code: String,
    /// The applicant's national code.
    pub national_code: Option<String>,
    /// The applicant's name.
    pub name: Option<String>,
}

/// One agency's way of taking inquiries.
pub trait Connector {
    /// Sends an inquiry.
    fn send(
        &self,
        inquiry: &Outgoing,
    ) -> impl std::future::Future<Output = Result<Reply, ConnectorError>> + Send;
    /// Asks about an inquiry sent earlier.
    fn poll(
        &self,
        reference: &str,
    ) -> impl std::future::Future<Output = Result<Reply, ConnectorError>> + Send;
}

/// The HTTP JSON connector. Calls go through the guarded [`crate::outbound::Outbound`] door:
/// the agency's address is checked and pinned at every call, and no redirect is followed.
#[derive(Debug, Clone)]
pub struct HttpJson<'a> {
    /// The guarded outbound door.
    pub outbound: crate::outbound::Outbound,
    /// Base URL of the agency's exchange.
    pub endpoint: &'a str,
    /// Bearer token, if the agency gave one.
    pub token: Option<String>,
    /// Per-call timeout.
    pub timeout: Duration,
}

impl HttpJson<'_> {
    /// A request to `url` through a client pinned to the checked addresses.
    async fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, ConnectorError> {
        use crate::outbound::Refusal;
        let (target, addrs) = self.outbound.check(url).await.map_err(|r| match r {
            Refusal::Private(why) => ConnectorError::Forbidden(why),
            Refusal::Unresolved(why) => ConnectorError::Unavailable(why),
        })?;
        let client = self
            .outbound
            .client(&target, &addrs, self.timeout, "Miz-Inquiries/1")
            .map_err(ConnectorError::Unavailable)?;
        Ok(client.request(method, target.url.as_str()))
    }

    async fn call(&self, req: reqwest::RequestBuilder) -> Result<Reply, ConnectorError> {
        let req = match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let mut res = req.timeout(self.timeout).send().await.map_err(|e| {
            ConnectorError::Unavailable(if e.is_timeout() {
                "timeout".into()
            } else {
                "transport".into()
            })
        })?;
        let status = res.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(ConnectorError::Unavailable(format!(
                "HTTP {}",
                status.as_u16()
            )));
        }
        if !status.is_success() {
            return Err(ConnectorError::Refused(status.as_u16()));
        }
        let body = crate::outbound::read_limited(&mut res, MAX_REPLY)
            .await
            .map_err(|_| ConnectorError::Malformed)?;
        let body: Value = serde_json::from_slice(&body).map_err(|_| ConnectorError::Malformed)?;
        parse_reply(&body)
    }
}

/// Longest agency reply read (a reply is a small JSON document).
const MAX_REPLY: usize = 256 * 1024;

/// Reads an agency's JSON reply.
pub fn parse_reply(body: &Value) -> Result<Reply, ConnectorError> {
    let retry_after = body["retry_after"].as_u64().unwrap_or(60).clamp(1, 3600);
    match body["status"].as_str() {
        Some("answered") => {
            let answer = body["answer"].as_str().filter(|a| !a.trim().is_empty());
            let answer = answer.ok_or(ConnectorError::Malformed)?;
            Ok(Reply::Answered {
                answer: answer.to_owned(),
                outcome: body["outcome"].as_str().unwrap_or("info").to_owned(),
            })
        }
        Some("accepted" | "pending") => Ok(Reply::Pending {
            reference: body["ref"].as_str().map(str::to_owned),
            retry_after,
        }),
        _ => Err(ConnectorError::Malformed),
    }
}

impl Connector for HttpJson<'_> {
    async fn send(&self, q: &Outgoing) -> Result<Reply, ConnectorError> {
        let url = format!("{}/inquiries", self.endpoint.trim_end_matches('/'));
        let body = json!({
            "reference": q.reference, "subject": q.subject, "service_code": q.service_code,
            "tracking_code": q.tracking_code,
            "applicant": { "national_code": q.national_code, "name": q.name },
        });
        self.call(
            self.request(reqwest::Method::POST, &url)
                .await?
                .header("idempotency-key", &q.reference)
                .json(&body),
        )
        .await
    }

    async fn poll(&self, reference: &str) -> Result<Reply, ConnectorError> {
        let encoded: String = form_urlencoded::byte_serialize(reference.as_bytes()).collect();
        let url = format!(
            "{}/inquiries/{encoded}",
            self.endpoint.trim_end_matches('/')
        );
        self.call(self.request(reqwest::Method::GET, &url).await?)
            .await
    }
}

/// Handles one `inquiry` job.
pub async fn handle(
    job: InquiryStep,
    ctx: Data<JobContext>,
    task_id: TaskId,
) -> Result<(), BoxDynError> {
    let span = tracing::info_span!("job", job.queue = "inquiry", job.id = %task_id, tenant.id = %job.tenant_id, inquiry.id = job.inquiry_id);
    step(job, &ctx).instrument(span).await
}

async fn step(job: InquiryStep, ctx: &JobContext) -> Result<(), BoxDynError> {
    let Some(tenant) = crate::active_tenant(ctx, &job, false).await? else {
        return Ok(());
    };
    let db = ctx.platform.tenant_db();
    let mut tx = db.begin(tenant.scope()).await?;
    let Some(inq) = inquiries::inquiry(&mut tx, job.inquiry_id).await? else {
        return Ok(());
    };
    let agency = inquiries::agency(&mut tx, inq.agency_id).await?;
    let request = requests::request_by_id(&mut tx, inq.request_id).await?;
    let sealed = inquiries::sealed_agency_credentials(&mut tx, inq.agency_id).await?;
    tx.commit().await?;
    let (Some(agency), Some(request)) = (agency, request) else {
        return Ok(());
    };
    if !inq.open() {
        return Ok(());
    }
    let now = chrono::Utc::now().timestamp();
    let mut tx = db.begin(tenant.scope()).await?;
    if desk_core::calendar::today_in_iran() > inq.due_on {
        inquiries::time_out(&mut tx, inq.id).await?;
        tx.commit().await?;
        tracing::info!("inquiry timed out");
        return Ok(());
    }
    tx.commit().await?;
    let next = job.step.saturating_add(1);
    if agency.kind != "http_json" {
        // A letter: staff type in the answer; this step only times it out after its due day.
        let mut tx = db.begin(tenant.scope()).await?;
        inquiries::mark_sent(&mut tx, inq.id, None).await?;
        inquiries::schedule(&mut tx, inq.id, next, end_of(inq.due_on)).await?;
        tx.commit().await?;
        return Ok(());
    }
    let token = match (&sealed, &ctx.secrets) {
        (None, _) => None,
        (Some(s), Some(key)) => match key.open(tenant.id, &format!("agency:{}", agency.id), s) {
            Ok(plain) => Some(String::from_utf8_lossy(&plain).into_owned()),
            Err(_) => {
                return give_up(ctx, &tenant, &inq, "credentials unreadable").await;
            }
        },
        (Some(_), None) => return Err("no master key configured (secrets.master_key)".into()),
    };
    let connector = HttpJson {
        outbound: ctx.outbound.clone(),
        endpoint: agency.endpoint.as_deref().unwrap_or_default(),
        token,
        timeout: Duration::from_secs(u64::try_from(agency.timeout_secs).unwrap_or(10)),
    };
    let reply = call(&connector, &agency, &inq, &request, tenant.id).await;
    let mut tx = db.begin(tenant.scope()).await?;
    match reply {
        Ok(Reply::Answered { answer, outcome }) => {
            desk_app::inquiries::record_answer(&mut tx, inq.id, &answer, &outcome, Actor::System)
                .await?;
            tracing::info!(outcome, "inquiry answered");
        }
        Ok(Reply::Pending {
            reference,
            retry_after,
        }) => {
            inquiries::mark_sent(&mut tx, inq.id, reference.as_deref()).await?;
            let at = (now + i64::try_from(retry_after).unwrap_or(60)).min(end_of(inq.due_on));
            inquiries::schedule(&mut tx, inq.id, next, at).await?;
            tracing::info!(retry_after, "inquiry pending at the agency");
        }
        Err(e) => {
            let give_up = !e.retryable() || inq.attempts + 1 >= MAX_FAILURES;
            let failures = inquiries::record_failure(&mut tx, inq.id, &e.code(), give_up).await?;
            if !give_up {
                inquiries::schedule(
                    &mut tx,
                    inq.id,
                    next,
                    now + crate::backoff_secs(u32::try_from(failures).unwrap_or(1)),
                )
                .await?;
            }
            tracing::warn!(error = %e, failures, give_up, "inquiry call failed");
        }
    }
    tx.commit().await?;
    Ok(())
}

async fn call(
    connector: &impl Connector,
    agency: &Agency,
    inq: &Inquiry,
    request: &requests::Request,
    tenant: desk_core::TenantId,
) -> Result<Reply, ConnectorError> {
    match (&inq.status[..], &inq.external_ref) {
        ("sent", Some(reference)) => connector.poll(reference).await,
        _ => connector
            .send(&Outgoing {
                reference: format!("{tenant}:{}", inq.id),
                subject: inq.subject.clone(),
                service_code: request.service_code.clone(),
                tracking_code: request.tracking_code.clone(),
                national_code: request.national_code.clone(),
                name: request.applicant_name.clone(),
            })
            .await
            .inspect(|_| tracing::debug!(agency = agency.id, "inquiry sent")),
    }
}

async fn give_up(
    ctx: &JobContext,
    tenant: &desk_db::Tenant,
    inq: &Inquiry,
    why: &str,
) -> Result<(), BoxDynError> {
    let mut tx = ctx.platform.tenant_db().begin(tenant.scope()).await?;
    inquiries::record_failure(&mut tx, inq.id, why, true).await?;
    tx.commit().await?;
    Ok(())
}

/// The first second after `day` ends in Iran, as Unix seconds.
fn end_of(day: chrono::NaiveDate) -> i64 {
    day.succ_opt()
        .map_or(0, |d| desk_core::calendar::start_of_iran_day(d).timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_parse_and_errors_classify() {
        assert_eq!(
            parse_reply(&json!({"status": "answered", "answer": "بلامانع", "outcome": "approved"})),
            Ok(Reply::Answered {
                answer: "بلامانع".into(),
                outcome: "approved".into()
            })
        );
        assert_eq!(
            parse_reply(&json!({"status": "accepted", "ref": "A-1", "retry_after": 0})),
            Ok(Reply::Pending {
                reference: Some("A-1".into()),
                retry_after: 1
            })
        );
        assert_eq!(
            parse_reply(&json!({"status": "answered", "answer": " "})),
            Err(ConnectorError::Malformed)
        );
        assert_eq!(
            parse_reply(&json!({"ok": true})),
            Err(ConnectorError::Malformed)
        );
        assert!(ConnectorError::Unavailable("timeout".into()).retryable());
        assert!(!ConnectorError::Refused(401).retryable());
        assert_eq!(crate::backoff_secs(1), 5);
        assert_eq!(crate::backoff_secs(3), 20);
        assert_eq!(crate::backoff_secs(20), 600);
        let day = chrono::NaiveDate::from_ymd_opt(2026, 12, 2).unwrap();
        // 2026-12-03 00:00 in Tehran = 2026-12-02 20:30 UTC.
        assert_eq!(
            end_of(day),
            chrono::NaiveDate::from_ymd_opt(2026, 12, 2)
                .unwrap()
                .and_hms_opt(20, 30, 0)
                .unwrap()
                .and_utc()
                .timestamp()
        );
    }
}
