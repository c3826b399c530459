//! A fake agency for `desk demo` and the tests: a real HTTP server on loopback speaking the
//! inquiry exchange of [`crate::inquiry`]. It records what it received, checks the bearer token,
//! and behaves as told: answer at once, accept and answer after some polls, fail with a status,
//! or hang (so the caller's timeout fires).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the agency behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Answer in the reply to the inquiry.
    Answer,
    /// Accept, then answer on the `polls`-th poll.
    Defer {
        /// Polls before the answer.
        polls: u32,
    },
    /// Fail every call with this HTTP status.
    Fail(u16),
    /// Never answer in time.
    Hang,
}

/// An inquiry the agency received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// The caller's reference.
    pub reference: String,
    /// Subject.
    pub subject: String,
    /// Tracking code of the request.
    pub tracking_code: String,
    /// National code of the applicant.
    pub national_code: String,
}

#[derive(Debug)]
struct Inner {
    token: String,
    mode: Mode,
    received: Vec<Received>,
    polls: HashMap<String, u32>,
    calls: u32,
}

/// Handle on a running fake agency.
#[derive(Debug, Clone)]
pub struct FakeAgency(Arc<Mutex<Inner>>);

impl FakeAgency {
    /// Changes how it behaves from now on.
    pub fn set_mode(&self, mode: Mode) {
        if let Ok(mut i) = self.0.lock() {
            i.mode = mode;
        }
    }

    /// Inquiries received (one per distinct reference).
    pub fn received(&self) -> Vec<Received> {
        self.0
            .lock()
            .map(|i| i.received.clone())
            .unwrap_or_default()
    }

    /// Every call made to it (sends and polls, failed ones too).
    pub fn calls(&self) -> u32 {
        self.0.lock().map(|i| i.calls).unwrap_or(0)
    }
}

fn answered() -> Value {
    json!({ "status": "answered", "answer": "بر پایه سوابق این دستگاه، انجام کار بلامانع است.", "outcome": "approved" })
}

/// What the mode says, after the token check; `None` means go on normally.
async fn gate(agency: &FakeAgency, headers: &HeaderMap) -> Option<Response> {
    let (token, mode) = {
        let Ok(mut i) = agency.0.lock() else {
            return Some(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        };
        i.calls += 1;
        (i.token.clone(), i.mode)
    };
    let sent = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if sent != format!("Bearer {token}") {
        return Some(
            (
                StatusCode::UNAUTHORIZED,
                Json(json!({ "error": "bad token" })),
            )
                .into_response(),
        );
    }
    match mode {
        Mode::Fail(status) => Some(
            (
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                Json(json!({ "error": "scripted failure" })),
            )
                .into_response(),
        ),
        Mode::Hang => {
            tokio::time::sleep(Duration::from_secs(300)).await;
            Some(StatusCode::GATEWAY_TIMEOUT.into_response())
        }
        Mode::Answer | Mode::Defer { .. } => None,
    }
}

async fn take(
    State(agency): State<FakeAgency>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    if let Some(r) = gate(&agency, &headers).await {
        return r;
    }
    let reference = body["reference"].as_str().unwrap_or_default().to_owned();
    let Ok(mut i) = agency.0.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if !i.received.iter().any(|r| r.reference == reference) {
        i.received.push(Received {
            reference: reference.clone(),
            subject: body["subject"].as_str().unwrap_or_default().to_owned(),
            tracking_code: body["tracking_code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            national_code: body["applicant"]["national_code"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        });
    }
    match i.mode {
        Mode::Defer { .. } => (
            StatusCode::ACCEPTED,
            Json(
                json!({ "status": "accepted", "ref": format!("AG-{reference}"), "retry_after": 1 }),
            ),
        )
            .into_response(),
        _ => Json(answered()).into_response(),
    }
}

async fn ask(
    State(agency): State<FakeAgency>,
    headers: HeaderMap,
    Path(reference): Path<String>,
) -> Response {
    if let Some(r) = gate(&agency, &headers).await {
        return r;
    }
    let Ok(mut i) = agency.0.lock() else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let Some(ours) = reference.strip_prefix("AG-").map(str::to_owned) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    if !i.received.iter().any(|r| r.reference == ours) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let wanted = match i.mode {
        Mode::Defer { polls } => polls,
        _ => 0,
    };
    let n = i.polls.entry(ours).or_insert(0);
    *n += 1;
    if *n >= wanted {
        Json(answered()).into_response()
    } else {
        Json(json!({ "status": "pending", "retry_after": 1 })).into_response()
    }
}

/// Starts a fake agency on a free loopback port that expects `token`; returns its base URL.
pub async fn spawn(token: &str, mode: Mode) -> anyhow::Result<(String, FakeAgency)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let agency = FakeAgency(Arc::new(Mutex::new(Inner {
        token: token.to_owned(),
        mode,
        received: Vec::new(),
        polls: HashMap::new(),
        calls: 0,
    })));
    let app = Router::new()
        .route("/inquiries", post(take))
        .route("/inquiries/{reference}", get(ask))
        .with_state(agency.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "fake agency stopped");
        }
    });
    Ok((base, agency))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inquiry::{Connector, ConnectorError, HttpJson, Outgoing, Reply};

    fn outgoing() -> Outgoing {
        Outgoing {
            reference: "t:1".into(),
            subject: "استعلام سوابق".into(),
            service_code: "BLD-PERMIT".into(),
            tracking_code: "123456789012".into(),
            national_code: Some("0499370899".into()),
            name: Some("نرگس".into()),
        }
    }

    #[tokio::test]
    async fn the_http_json_connector_speaks_to_the_fake_agency() {
        let (base, agency) = spawn("agency-token", Mode::Answer).await.unwrap();
        let c = |token: &str| HttpJson {
            outbound: crate::outbound::Outbound::new(true, Vec::new()),
            endpoint: &base,
            token: Some(token.to_owned()),
            timeout: Duration::from_millis(500),
        };
        assert!(matches!(
            c("agency-token").send(&outgoing()).await,
            Ok(Reply::Answered { .. })
        ));
        assert_eq!(agency.received()[0].national_code, "0499370899");
        assert_eq!(
            c("wrong").send(&outgoing()).await,
            Err(ConnectorError::Refused(401))
        );

        agency.set_mode(Mode::Defer { polls: 2 });
        let Ok(Reply::Pending {
            reference: Some(r), ..
        }) = c("agency-token").send(&outgoing()).await
        else {
            panic!("not deferred")
        };
        assert!(matches!(
            c("agency-token").poll(&r).await,
            Ok(Reply::Pending { .. })
        ));
        assert!(matches!(
            c("agency-token").poll(&r).await,
            Ok(Reply::Answered { .. })
        ));
        assert_eq!(
            c("agency-token").poll("AG-unknown").await,
            Err(ConnectorError::Refused(404))
        );

        agency.set_mode(Mode::Fail(503));
        let e = c("agency-token").send(&outgoing()).await.unwrap_err();
        assert!(e.retryable());
        agency.set_mode(Mode::Hang);
        let e = c("agency-token").send(&outgoing()).await.unwrap_err();
        assert_eq!(e, ConnectorError::Unavailable("timeout".into()));
    }
}
