//! The one place that decides what follows from something that happened to a request: the
//! SMS to the citizen, the municipality's webhooks, the satisfaction survey, the dashboard's
//! indicators. Every use case that changes a request calls [`dispatch`] in the same tenant
//! transaction, so what follows is queued exactly when the change commits.

use desk_core::DomainError;
use desk_core::jobs::InviteSurvey;
use desk_core::sms_templates::SmsBody;
use desk_core::webhook::WebhookEvent;
use desk_db::TenantTx;
use desk_db::notifications::{self, Kind};
use desk_db::requests::{self, Request};

/// Something that happened to a request.
#[derive(Debug)]
pub enum Happened<'a> {
    /// It was filed: its first event.
    Filed {
        /// The new request.
        request: &'a Request,
        /// Its first event.
        event_id: i64,
        /// The SMS telling the citizen the tracking code (`{tracking}` is filled in here).
        sms: Option<SmsBody>,
    },
    /// It moved on (or took a step that leaves its state).
    Changed {
        /// The request as it was before.
        request: &'a Request,
        /// The event of the change.
        event_id: i64,
        /// Its state before.
        from: &'a str,
        /// Its state now.
        to: &'a str,
        /// Whether it is now closed (answered).
        closes: bool,
        /// The SMS to the citizen, if the step notifies.
        sms: Option<SmsBody>,
    },
    /// Its satisfaction survey was answered.
    SurveyAnswered {
        /// The stored answer and its request.
        answered: &'a desk_db::surveys::Answered,
        /// The scores and comment.
        answer: &'a desk_core::survey::Answer,
        /// Recorded at the desk (else by the citizen's link).
        desk: bool,
    },
}

/// Queues what follows from `happened`, in `tx`:
///
/// | happened | SMS to the citizen | webhook | survey invitation, indicators |
/// |---|---|---|---|
/// | filed | the tracking code (if the template gives one) | `request.filed` | |
/// | changed state | if the step notifies | `request.status_changed` | |
/// | closed | if the step notifies | `request.answered` | both |
/// | note (same state) | if given | | |
/// | survey answered | | `survey.answered` | indicators |
pub async fn dispatch(tx: &mut TenantTx, happened: Happened<'_>) -> Result<(), DomainError> {
    match happened {
        Happened::Filed {
            request,
            event_id,
            sms,
        } => {
            if let Some(mut body) = sms {
                body.replace("{tracking}", request.tracking_code.as_str());
                sms_to_citizen(tx, request, event_id, body).await?;
            }
            webhook(
                tx,
                WebhookEvent::RequestFiled,
                request,
                None,
                &request.state,
            )
            .await
        }
        Happened::Changed {
            request,
            event_id,
            from,
            to,
            closes,
            sms,
        } => {
            if let Some(body) = sms {
                sms_to_citizen(tx, request, event_id, body).await?;
            }
            if from != to {
                let event = if closes {
                    WebhookEvent::RequestAnswered
                } else {
                    WebhookEvent::RequestStatusChanged
                };
                webhook(tx, event, request, Some(from), to).await?;
            }
            if closes {
                let tenant_id = tx.tenant_id();
                desk_db::jobs::enqueue(
                    tx,
                    &InviteSurvey {
                        tenant_id,
                        request_id: request.id,
                    },
                )
                .await?;
                requests::refresh_indicators_soon(tx).await?;
            }
            Ok(())
        }
        Happened::SurveyAnswered {
            answered,
            answer,
            desk,
        } => {
            requests::refresh_indicators_soon(tx).await?;
            let event = WebhookEvent::SurveyAnswered;
            let scores: serde_json::Map<String, serde_json::Value> = answer
                .scores
                .iter()
                .map(|(k, s)| (k.clone(), serde_json::json!(s)))
                .collect();
            let payload = serde_json::json!({
                "event": event.as_str(),
                "occurredAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "request": { "trackingCode": answered.tracking_code, "serviceCode": answered.service_code },
                "survey": { "via": if desk { "desk" } else { "link" }, "scores": scores },
            });
            desk_db::webhooks::fan_out(tx, event, &payload)
                .await
                .map(|_| ())
        }
    }
}

async fn sms_to_citizen(
    tx: &mut TenantTx,
    request: &Request,
    event_id: i64,
    body: SmsBody,
) -> Result<(), DomainError> {
    notifications::queue_sms(
        tx,
        Kind::RequestEvent {
            request_id: request.id,
            event_id,
        },
        &request.mobile,
        body,
        None,
    )
    .await
    .map(|_| ())
}

async fn webhook(
    tx: &mut TenantTx,
    event: WebhookEvent,
    request: &Request,
    from: Option<&str>,
    to: &str,
) -> Result<(), DomainError> {
    let payload = desk_db::webhooks::request_payload(event, request, from, to);
    desk_db::webhooks::fan_out(tx, event, &payload)
        .await
        .map(|_| ())
}

/// Applies `change` to `request` (see [`requests::apply_change`]) and queues what follows,
/// with `sms` to the citizen if the step notifies. Returns the event id.
pub async fn change(
    tx: &mut TenantTx,
    request: &Request,
    change: &requests::Change<'_>,
    sms: Option<SmsBody>,
) -> Result<i64, DomainError> {
    let event_id = requests::apply_change(tx, request, change).await?;
    dispatch(
        tx,
        Happened::Changed {
            request,
            event_id,
            from: change.event.from_state.unwrap_or(&request.state),
            to: change.event.to_state,
            closes: change.closes,
            sms,
        },
    )
    .await?;
    Ok(event_id)
}
