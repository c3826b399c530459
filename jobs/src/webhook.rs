//! `deliver_webhook`: POSTs one delivery to a municipality's receiver, signed with the webhook's
//! secret (`X-Miz-Signature`, see `desk_core::webhook`), with `X-Miz-Event` and
//! `X-Miz-Delivery` (the delivery id, for receivers to drop duplicates: delivery is at least
//! once). A 2xx answer within [`TIMEOUT`] delivers it; anything else is tried again with backoff
//! up to [`MAX_ATTEMPTS`] tries. The target is checked again before every try: the URL's rules,
//! then every address its host resolves to must be public (unless the deployment allows private
//! receivers), and the connection goes to the address that was checked, never to a second
//! lookup; redirects are not followed. No database connection is held during the call.

use crate::JobContext;
use crate::outbound::{Outbound, Refusal};
use apalis::prelude::*;
use desk_core::jobs::DeliverWebhook;
use desk_core::webhook::{self, TargetUrl};
use desk_db::webhooks::{self, Attempt, Outgoing};
use std::net::SocketAddr;
use std::time::Duration;
use tracing::Instrument;

/// Tries before a delivery is given up (about 20 minutes of backoff in all).
pub const MAX_ATTEMPTS: u32 = 8;
/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Most of an answer read (the excerpt kept is shorter).
const READ_LIMIT: usize = 4096;

/// Handles one `deliver_webhook` job.
pub async fn handle(
    job: DeliverWebhook,
    ctx: Data<JobContext>,
    task_id: TaskId,
) -> Result<(), BoxDynError> {
    let span = tracing::info_span!("job", job.queue = "deliver_webhook", job.id = %task_id, tenant.id = %job.tenant_id, delivery.id = job.delivery_id);
    deliver(job, &ctx).instrument(span).await
}

async fn deliver(job: DeliverWebhook, ctx: &JobContext) -> Result<(), BoxDynError> {
    let Some(tenant) = crate::active_tenant(ctx, &job, false).await? else {
        return Ok(());
    };
    let mut tx = ctx.platform.tenant_db().begin(tenant.scope()).await?;
    let out = webhooks::outgoing(&mut tx, job.delivery_id).await?;
    tx.commit().await?;
    // Done already, or this try already ran (a job fetched twice).
    let Some(out) = out else { return Ok(()) };
    if u32::try_from(out.delivery.attempts).unwrap_or(u32::MAX) > job.attempt {
        return Ok(());
    }
    let attempt = try_once(ctx, &tenant, &out, job.attempt).await;
    tracing::info!(
        status = attempt.status,
        outcome = ?attempt.outcome,
        attempt = job.attempt + 1,
        "webhook delivery tried"
    );
    let mut tx = ctx.platform.tenant_db().begin(tenant.scope()).await?;
    webhooks::record_attempt(&mut tx, job.delivery_id, &attempt).await?;
    if attempt.outcome.is_none() {
        let next = job.attempt + 1;
        let retry = DeliverWebhook {
            attempt: next,
            ..job
        };
        let at = chrono::Utc::now().timestamp() + crate::backoff_secs(next);
        desk_db::jobs::enqueue_once_at(&mut tx, &retry, at).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// One try: checks, signs, sends, and says how it ended (never an error: every failure is an
/// attempt to record).
async fn try_once(
    ctx: &JobContext,
    tenant: &desk_db::Tenant,
    out: &Outgoing,
    attempt: u32,
) -> Attempt {
    let last = attempt + 1 >= MAX_ATTEMPTS;
    let gave_up = |excerpt: &str| Attempt {
        status: None,
        excerpt: excerpt.to_owned(),
        outcome: Some(false),
    };
    if !out.enabled {
        return gave_up("webhook disabled");
    }
    let Some(key) = &ctx.secrets else {
        return gave_up("no master key configured: cannot sign");
    };
    let secret = match key.open(
        tenant.id,
        &webhooks::secret_purpose(out.delivery.webhook_id),
        &out.secret,
    ) {
        Ok(s) => s,
        Err(_) => return gave_up("the signing secret cannot be opened"),
    };
    let outbound = &ctx.outbound;
    let (target, addrs) = match outbound.check(&out.url).await {
        Ok(a) => a,
        Err(Refusal::Private(why)) => return gave_up(&why),
        Err(Refusal::Unresolved(why)) => {
            return Attempt {
                status: None,
                excerpt: why,
                outcome: last.then_some(false),
            };
        }
    };
    let body = match serde_json::to_vec(&out.delivery.payload) {
        Ok(b) => b,
        Err(_) => return gave_up("payload cannot be encoded"),
    };
    let signature = webhook::signature_header(&secret, chrono::Utc::now().timestamp(), &body);
    match post(outbound, &target, &addrs, &out.delivery, &signature, body).await {
        Ok((status, excerpt)) => {
            let ok = (200..300).contains(&status);
            Attempt {
                status: Some(status),
                excerpt,
                outcome: if ok {
                    Some(true)
                } else {
                    last.then_some(false)
                },
            }
        }
        Err(why) => Attempt {
            status: None,
            excerpt: why,
            outcome: last.then_some(false),
        },
    }
}

/// POSTs `body` to the target, connecting only to `addrs`; returns the status and the start of
/// the answer, or why there was none.
async fn post(
    outbound: &Outbound,
    target: &TargetUrl,
    addrs: &[SocketAddr],
    delivery: &webhooks::Delivery,
    signature: &str,
    body: Vec<u8>,
) -> Result<(u16, String), String> {
    let client = outbound.client(target, addrs, TIMEOUT, "Miz-Webhooks/1")?;
    let mut res = client
        .post(&target.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(webhook::SIGNATURE_HEADER, signature)
        .header(webhook::EVENT_HEADER, &delivery.event)
        .header(webhook::DELIVERY_HEADER, delivery.id.to_string())
        .body(body)
        .send()
        .await
        .map_err(|e| {
            if e.is_timeout() {
                format!("no answer within {} s", TIMEOUT.as_secs())
            } else {
                format!("could not connect: {}", e.without_url())
            }
        })?;
    let status = res.status().as_u16();
    let mut read = Vec::new();
    while read.len() < READ_LIMIT {
        match res.chunk().await {
            Ok(Some(chunk)) => read.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    read.truncate(READ_LIMIT);
    Ok((
        status,
        String::from_utf8_lossy(&read).chars().take(500).collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::checked_addresses;

    #[tokio::test]
    async fn loopback_and_private_targets_are_refused_unless_allowed() {
        for url in [
            "http://127.0.0.1:9/hook",
            "http://[::1]:9/hook",
            "http://10.1.2.3/hook",
        ] {
            let target = webhook::parse_target(url, true).unwrap();
            assert!(matches!(
                checked_addresses(&target, false).await,
                Err(Refusal::Private(_))
            ));
            assert!(checked_addresses(&target, true).await.is_ok());
        }
        // A name that resolves to loopback is judged by its addresses, not its text.
        let target = webhook::parse_target("http://localhost:9/hook", true).unwrap();
        assert!(matches!(
            checked_addresses(&target, false).await,
            Err(Refusal::Private(_))
        ));
    }
}
