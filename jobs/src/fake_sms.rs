//! A fake SMS provider for the demo and the tests: a real HTTP server on loopback that speaks
//! the Kavenegar, SMS.ir, Ghasedak and Magfa request shapes (under `/kavenegar`, `/smsir`,
//! `/ghasedak`, `/magfa`), records what it received and injects faults on demand:
//! the credential `bad-key` (or Magfa password `bad`) is refused, a recipient ending in `0000`
//! has no credit, one ending in `3333` finds the provider busy, one ending in `4444` is taken by
//! Kavenegar but answered only after the caller gave up, and the recipient `09999999999` is
//! invalid. Template sends (Kavenegar `verify/lookup`, SMS.ir `send/verify`, Ghasedak
//! `SendOtpSMS`) are recorded with their template and parameters; the template `missing` (SMS.ir
//! id `404`) is not found. Delivery reports (each provider's status call): recipients ending in `1111` are
//! never delivered, in `2222` stay pending, the rest arrive.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use axum::{Form, Json, Router};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One message the fake provider accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    /// `kavenegar`, `smsir`, `ghasedak` or `magfa`.
    pub provider: &'static str,
    /// The credential it came with (API key, or Magfa `user/domain`).
    pub account: String,
    /// Sender line.
    pub sender: String,
    /// Recipient as sent.
    pub to: String,
    /// Text.
    pub text: String,
    /// When it arrived (for latency measurements).
    pub at: std::time::Instant,
    /// The sender's own id of the message (client reference), where the provider keeps one.
    pub local_id: Option<String>,
    /// The provider template it was sent with, if any.
    pub template: Option<String>,
    /// The template's parameters (name, value), in the order received.
    pub params: Vec<(String, String)>,
}

/// How the fake answers sends, set by a test at any time (faults for every recipient, on top
/// of the scripted recipients).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Mode {
    /// Answers at once.
    #[default]
    Normal,
    /// Takes each message, then answers after this long.
    Slow(std::time::Duration),
    /// Refuses every send as busy (Kavenegar 409, SMS.ir 20, Ghasedak 429, Magfa 15).
    Busy,
    /// Takes each message but answers only after the caller has given up (20 s).
    HangAfterAccept,
}

/// The fake provider's record of accepted messages, and its mode.
#[derive(Debug, Clone, Default)]
pub struct Outbox(
    Arc<Mutex<Vec<Received>>>,
    Arc<Mutex<Mode>>,
    Arc<std::sync::atomic::AtomicI64>,
);

impl Outbox {
    /// Everything accepted so far.
    pub fn messages(&self) -> Vec<Received> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// Number of messages accepted so far.
    pub fn len(&self) -> usize {
        self.0.lock().map(|m| m.len()).unwrap_or_default()
    }

    /// Whether nothing was accepted yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets the messages recorded so far (long runs keep its memory flat); later ids and
    /// delivery reports of forgotten messages are not looked up again.
    pub fn forget(&self) -> usize {
        self.0
            .lock()
            .map(|mut m| {
                let n = m.len();
                // Ids go on from where they were; forgotten ones report as delivered.
                self.2.fetch_add(
                    i64::try_from(n).unwrap_or(i64::MAX),
                    std::sync::atomic::Ordering::Relaxed,
                );
                m.clear();
                m.shrink_to_fit();
                n
            })
            .unwrap_or_default()
    }

    /// Sets how sends are answered from now on.
    pub fn set_mode(&self, mode: Mode) {
        if let Ok(mut m) = self.1.lock() {
            *m = mode;
        }
    }

    fn mode(&self) -> Mode {
        self.1.lock().map(|m| *m).unwrap_or_default()
    }

    /// The fault the mode forces on a send, if any.
    fn forced(&self) -> Option<Fault> {
        (self.mode() == Mode::Busy).then_some(Fault::Busy)
    }

    /// Waits as the mode says after taking a message.
    async fn answer_late(&self) {
        match self.mode() {
            Mode::Slow(d) => tokio::time::sleep(d).await,
            Mode::HangAfterAccept => tokio::time::sleep(std::time::Duration::from_secs(20)).await,
            Mode::Normal | Mode::Busy => {}
        }
    }

    /// The delivery state of message `id` as the fake reports it: recipients ending in `1111`
    /// are never delivered, in `2222` stay pending, the rest arrive.
    fn delivery(&self, id: &str) -> Option<FakeDelivery> {
        let m = self.0.lock().ok()?;
        let index = id.trim().parse::<i64>().ok()?
            - 1_000_001
            - self.2.load(std::sync::atomic::Ordering::Relaxed);
        if index < 0 {
            return Some(FakeDelivery::Delivered);
        }
        let r = m.get(usize::try_from(index).ok()?)?;
        Some(if r.to.ends_with("1111") {
            FakeDelivery::Failed
        } else if r.to.ends_with("2222") {
            FakeDelivery::Pending
        } else {
            FakeDelivery::Delivered
        })
    }

    /// The message id of the message `provider` took for `account` with client reference
    /// `local_id` (each account sees only its own, as at the real providers).
    fn by_local_id(&self, provider: &str, account: &str, local_id: &str) -> Option<i64> {
        let m = self.0.lock().ok()?;
        let index = m.iter().position(|r| {
            r.provider == provider
                && r.account == account
                && r.local_id.as_deref() == Some(local_id)
        })?;
        i64::try_from(index)
            .ok()
            .map(|i| i + 1_000_001 + self.2.load(std::sync::atomic::Ordering::Relaxed))
    }

    fn push(&self, r: Received) -> i64 {
        let Ok(mut m) = self.0.lock() else { return 0 };
        m.push(r);
        i64::try_from(m.len()).unwrap_or(i64::MAX)
            + 1_000_000
            + self.2.load(std::sync::atomic::Ordering::Relaxed)
    }
}

#[derive(Debug, Clone, Copy)]
enum FakeDelivery {
    Delivered,
    Failed,
    Pending,
}

async fn kavenegar_status(
    State(out): State<Outbox>,
    Path(key): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> impl IntoResponse {
    if fault(&key, "").is_some() {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({ "return": { "status": 403 } })),
        );
    }
    let id = f.get("messageid").cloned().unwrap_or_default();
    let status = match out.delivery(&id) {
        Some(FakeDelivery::Delivered) => 10,
        Some(FakeDelivery::Failed) => 11,
        Some(FakeDelivery::Pending) => 4,
        None => 100,
    };
    (
        StatusCode::OK,
        Json(
            json!({ "return": { "status": 200 }, "entries": [{ "messageid": id, "status": status }] }),
        ),
    )
}

async fn smsir_status(State(out): State<Outbox>, Path(id): Path<String>) -> impl IntoResponse {
    let state = match out.delivery(&id) {
        Some(FakeDelivery::Delivered) => 1,
        Some(FakeDelivery::Failed) => 2,
        Some(FakeDelivery::Pending) => 0,
        None => return Json(json!({ "status": 16, "message": "unknown id" })),
    };
    Json(json!({ "status": 1, "data": { "messageId": id, "deliveryState": state } }))
}

async fn ghasedak_status(
    State(out): State<Outbox>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<HashMap<String, String>>,
) -> impl IntoResponse {
    let mut id = q.get("Ids").cloned().unwrap_or_default();
    if q.get("Type").map(String::as_str) == Some("2") {
        // Type 2: the ids are the sender's client references.
        match out.by_local_id("ghasedak", &header(&headers, "apikey"), &id) {
            Some(mid) => id = mid.to_string(),
            None => return Json(json!({ "isSuccess": true, "statusCode": 200, "data": [] })),
        }
    }
    let status = match out.delivery(&id) {
        Some(FakeDelivery::Delivered) => 14,
        Some(FakeDelivery::Failed) => 13,
        Some(FakeDelivery::Pending) => 10,
        None => 1,
    };
    Json(
        json!({ "isSuccess": true, "statusCode": 200, "data": [{ "messageId": id, "status": status }] }),
    )
}

async fn kavenegar_by_local_id(
    State(out): State<Outbox>,
    Path(key): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> impl IntoResponse {
    if fault(&key, "").is_some() {
        return (
            StatusCode::FORBIDDEN,
            Json(json!({ "return": { "status": 403 } })),
        );
    }
    let local = f.get("localid").cloned().unwrap_or_default();
    let entry = match out.by_local_id("kavenegar", &key, &local) {
        Some(mid) => json!({ "messageid": mid, "localid": local, "status": 4 }),
        None => json!({ "messageid": 0, "localid": local, "status": 100 }),
    };
    (
        StatusCode::OK,
        Json(json!({ "return": { "status": 200 }, "entries": [entry] })),
    )
}

async fn magfa_mid(
    State(out): State<Outbox>,
    headers: HeaderMap,
    Path(uid): Path<String>,
) -> impl IntoResponse {
    let (user, _) =
        base64_free::decode_basic(&header(&headers, "authorization")).unwrap_or_default();
    match out.by_local_id("magfa", &user, &uid) {
        Some(mid) => Json(json!({ "status": 0, "mid": mid })),
        None => Json(json!({ "status": 24 })),
    }
}

async fn magfa_status(State(out): State<Outbox>, Path(mid): Path<String>) -> impl IntoResponse {
    let status = match out.delivery(&mid) {
        Some(FakeDelivery::Delivered) => 1,
        Some(FakeDelivery::Failed) => 2,
        Some(FakeDelivery::Pending) => 0,
        None => -1,
    };
    Json(
        json!({ "status": 0, "dlrs": [{ "mid": mid, "status": status, "date": "1405-09-11 10:00:00" }] }),
    )
}

enum Fault {
    Auth,
    NoCredit,
    BadRecipient,
    Busy,
}

fn fault(credential: &str, to: &str) -> Option<Fault> {
    if credential == "bad-key" || credential == "bad" {
        Some(Fault::Auth)
    } else if to.ends_with("0000") {
        Some(Fault::NoCredit)
    } else if to == "09999999999" {
        Some(Fault::BadRecipient)
    } else if to.ends_with("3333") {
        Some(Fault::Busy)
    } else {
        None
    }
}

async fn kavenegar(
    State(out): State<Outbox>,
    Path(key): Path<String>,
    Form(f): Form<HashMap<String, String>>,
) -> impl IntoResponse {
    let to = f.get("receptor").cloned().unwrap_or_default();
    let (code, text) = match fault(&key, &to).or_else(|| out.forced()) {
        Some(f) => kavenegar_code(f),
        None => {
            let id = out.push(Received {
                provider: "kavenegar",
                account: key,
                sender: f.get("sender").cloned().unwrap_or_default(),
                to: to.clone(),
                text: f.get("message").cloned().unwrap_or_default(),
                at: std::time::Instant::now(),
                local_id: f.get("localid").cloned(),
                template: None,
                params: Vec::new(),
            });
            if to.ends_with("4444") {
                // Taken, but the answer comes too late for the caller (its timeout is 15 s).
                tokio::time::sleep(std::time::Duration::from_secs(20)).await;
            }
            out.answer_late().await;
            let body = json!({ "return": { "status": 200, "message": "تایید شد" },
                               "entries": [{ "messageid": id, "receptor": to, "status": 1 }] });
            return (StatusCode::OK, Json(body));
        }
    };
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST);
    (
        status,
        Json(json!({ "return": { "status": code, "message": text }, "entries": null })),
    )
}

/// Kavenegar's `return.status` and message for a scripted fault.
fn kavenegar_code(fault: Fault) -> (u16, &'static str) {
    match fault {
        Fault::Auth => (403, "کلید نامعتبر"),
        Fault::NoCredit => (418, "اعتبار کافی نیست"),
        Fault::BadRecipient => (411, "گیرنده نامعتبر"),
        Fault::Busy => (409, "سرور مشغول است"),
    }
}

/// SMS.ir's status for a scripted fault.
fn smsir_code(fault: Fault) -> i64 {
    match fault {
        Fault::Auth => 10,
        Fault::NoCredit => 102,
        Fault::BadRecipient => 104,
        Fault::Busy => 20,
    }
}

/// SMS.ir's refusal with `status` (a bad key is HTTP 401, the rest 400).
fn smsir_refused(status: i64) -> (StatusCode, Json<Value>) {
    let http = if status == 10 {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::BAD_REQUEST
    };
    (
        http,
        Json(json!({ "status": status, "message": "refused", "data": null })),
    )
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

async fn smsir(
    State(out): State<Outbox>,
    headers: HeaderMap,
    Json(b): Json<Value>,
) -> impl IntoResponse {
    let key = header(&headers, "x-api-key");
    let to = b["mobiles"][0].as_str().unwrap_or_default().to_owned();
    let status = match fault(&key, &to).or_else(|| out.forced()) {
        Some(f) => smsir_code(f),
        None => {
            let id = out.push(Received {
                provider: "smsir",
                account: key,
                sender: b["lineNumber"].to_string(),
                to,
                text: b["messageText"].as_str().unwrap_or_default().to_owned(),
                at: std::time::Instant::now(),
                local_id: None,
                template: None,
                params: Vec::new(),
            });
            out.answer_late().await;
            return (
                StatusCode::OK,
                Json(
                    json!({ "status": 1, "message": "ok", "data": { "packId": "p", "messageIds": [id], "cost": 1 } }),
                ),
            );
        }
    };
    smsir_refused(status)
}

fn ghasedak_refused(status: StatusCode, code: u16, message: &str) -> (StatusCode, Json<Value>) {
    (
        status,
        Json(json!({ "isSuccess": false, "statusCode": code, "message": message })),
    )
}

/// Ghasedak's answer to a scripted fault.
fn ghasedak_refusal(fault: Fault) -> (StatusCode, Json<Value>) {
    match fault {
        Fault::Auth => ghasedak_refused(StatusCode::UNAUTHORIZED, 401, "unauthorized"),
        Fault::NoCredit => ghasedak_refused(StatusCode::OK, 418, "credit"),
        Fault::BadRecipient => ghasedak_refused(StatusCode::OK, 400, "receptor"),
        Fault::Busy => ghasedak_refused(StatusCode::TOO_MANY_REQUESTS, 429, "too many requests"),
    }
}

async fn ghasedak(
    State(out): State<Outbox>,
    headers: HeaderMap,
    Json(b): Json<Value>,
) -> impl IntoResponse {
    let key = header(&headers, "apikey");
    let to = b["receptor"].as_str().unwrap_or_default().to_owned();
    match fault(&key, &to).or_else(|| out.forced()) {
        Some(f) => ghasedak_refusal(f),
        None => {
            let id = out.push(Received {
                provider: "ghasedak",
                account: key,
                sender: b["lineNumber"].as_str().unwrap_or_default().to_owned(),
                to,
                text: b["message"].as_str().unwrap_or_default().to_owned(),
                at: std::time::Instant::now(),
                local_id: b["clientReferenceId"].as_str().map(str::to_owned),
                template: None,
                params: Vec::new(),
            });
            out.answer_late().await;
            (
                StatusCode::OK,
                Json(
                    json!({ "isSuccess": true, "statusCode": 200, "message": "ok", "data": { "messageId": id.to_string() } }),
                ),
            )
        }
    }
}

async fn magfa(
    State(out): State<Outbox>,
    headers: HeaderMap,
    Json(b): Json<Value>,
) -> impl IntoResponse {
    use base64_free::decode_basic;
    let (user, password) = decode_basic(&header(&headers, "authorization")).unwrap_or_default();
    let to = b["recipients"][0].as_str().unwrap_or_default().to_owned();
    let status = match fault(&password, &to).or_else(|| out.forced()) {
        Some(Fault::Auth) => 18,
        Some(Fault::NoCredit) => 14,
        Some(Fault::BadRecipient) => 1,
        Some(Fault::Busy) => 15,
        None => {
            let id = out.push(Received {
                provider: "magfa",
                account: user,
                sender: b["senders"][0].as_str().unwrap_or_default().to_owned(),
                to: to.clone(),
                text: b["messages"][0].as_str().unwrap_or_default().to_owned(),
                at: std::time::Instant::now(),
                local_id: b["uids"][0].as_i64().map(|u| u.to_string()),
                template: None,
                params: Vec::new(),
            });
            out.answer_late().await;
            return Json(
                json!({ "status": 0, "messages": [{ "status": 0, "id": id, "recipient": to, "parts": 1 }] }),
            );
        }
    };
    Json(json!({ "status": status, "messages": [] }))
}

/// What the fake shows as the text of a template send: the template and its parameters.
fn template_text(template: &str, params: &[(String, String)]) -> String {
    let shown: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!("[{template}] {}", shown.join(" "))
}

#[allow(clippy::too_many_arguments)]
fn template_received(
    provider: &'static str,
    account: String,
    to: String,
    template: &str,
    params: Vec<(String, String)>,
    local_id: Option<String>,
) -> Received {
    Received {
        provider,
        account,
        sender: String::new(),
        to,
        text: template_text(template, &params),
        at: std::time::Instant::now(),
        local_id,
        template: Some(template.to_owned()),
        params,
    }
}

async fn kavenegar_lookup(
    State(out): State<Outbox>,
    Path(key): Path<String>,
    Form(f): Form<Vec<(String, String)>>,
) -> impl IntoResponse {
    let get = |name: &str| {
        f.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let (to, template) = (get("receptor"), get("template"));
    let (code, text) = match fault(&key, &to).or_else(|| out.forced()) {
        Some(f) => kavenegar_code(f),
        None if template == "missing" => (424, "الگو یافت نشد"),
        None if f.iter().any(|(k, v)| {
            desk_core::sms_templates::KAVENEGAR_SPACELESS_TOKENS.contains(&k.as_str())
                && v.contains(' ')
        }) =>
        {
            (431, "ساختار کد صحیح نمی‌باشد")
        }
        None => {
            let params = f
                .iter()
                .filter(|(k, _)| k.starts_with("token"))
                .cloned()
                .collect();
            let id = out.push(template_received(
                "kavenegar",
                key,
                to.clone(),
                &template,
                params,
                None,
            ));
            out.answer_late().await;
            let body = json!({ "return": { "status": 200, "message": "تایید شد" },
                               "entries": [{ "messageid": id, "receptor": to, "status": 5 }] });
            return (StatusCode::OK, Json(body));
        }
    };
    (
        StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST),
        Json(json!({ "return": { "status": code, "message": text }, "entries": null })),
    )
}

async fn smsir_verify(
    State(out): State<Outbox>,
    headers: HeaderMap,
    Json(b): Json<Value>,
) -> impl IntoResponse {
    let key = header(&headers, "x-api-key");
    let to = b["mobile"].as_str().unwrap_or_default().to_owned();
    let template = b["templateId"]
        .as_i64()
        .map(|t| t.to_string())
        .unwrap_or_default();
    let status = match fault(&key, &to).or_else(|| out.forced()) {
        Some(f) => smsir_code(f),
        None if template == "404" => 113,
        None => {
            let params = b["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let s = |f: &str| p[f].as_str().unwrap_or_default().to_owned();
                    (s("name"), s("value"))
                })
                .collect();
            let id = out.push(template_received("smsir", key, to, &template, params, None));
            out.answer_late().await;
            return (
                StatusCode::OK,
                Json(
                    json!({ "status": 1, "message": "ok", "data": { "messageId": id, "cost": 1 } }),
                ),
            );
        }
    };
    smsir_refused(status)
}

async fn ghasedak_otp(
    State(out): State<Outbox>,
    headers: HeaderMap,
    Json(b): Json<Value>,
) -> impl IntoResponse {
    let key = header(&headers, "apikey");
    let to = b["receptors"][0]["mobile"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let template = b["templateName"].as_str().unwrap_or_default().to_owned();
    match fault(&key, &to).or_else(|| out.forced()) {
        Some(f) => ghasedak_refusal(f),
        None if template == "missing" => {
            ghasedak_refused(StatusCode::OK, 404, "template not found")
        }
        None => {
            let params = b["inputs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    let s = |f: &str| p[f].as_str().unwrap_or_default().to_owned();
                    (s("param"), s("value"))
                })
                .collect();
            let local = b["receptors"][0]["clientReferenceId"]
                .as_str()
                .map(str::to_owned);
            let id = out.push(template_received(
                "ghasedak", key, to, &template, params, local,
            ));
            out.answer_late().await;
            (
                StatusCode::OK,
                Json(
                    json!({ "isSuccess": true, "statusCode": 200, "message": "ok",
                             "data": { "items": [{ "messageId": id.to_string() }] } }),
                ),
            )
        }
    }
}

/// Decoding HTTP Basic credentials without a base64 dependency (the fake only).
mod base64_free {
    fn value(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    }

    pub(super) fn decode_basic(header: &str) -> Option<(String, String)> {
        let encoded = header.strip_prefix("Basic ")?.trim_end_matches('=');
        let mut bytes = Vec::new();
        let mut acc = 0u32;
        let mut bits = 0;
        for c in encoded.bytes() {
            acc = (acc << 6) | value(c)?;
            bits += 6;
            if bits >= 8 {
                bits -= 8;
                bytes.push(u8::try_from((acc >> bits) & 0xff).ok()?);
            }
        }
        let text = String::from_utf8(bytes).ok()?;
        let (user, password) = text.split_once(':')?;
        Some((user.to_owned(), password.to_owned()))
    }
}

/// The fake provider's routes.
pub fn router(outbox: Outbox) -> Router {
    Router::new()
        .route("/kavenegar/v1/{key}/sms/send.json", post(kavenegar))
        .route("/smsir/v1/send/bulk", post(smsir))
        .route(
            "/ghasedak/Rest/api/v1/WebService/SendSingleSMS",
            post(ghasedak),
        )
        .route("/magfa/api/http/sms/v2/send", post(magfa))
        .route(
            "/kavenegar/v1/{key}/verify/lookup.json",
            post(kavenegar_lookup),
        )
        .route("/smsir/v1/send/verify", post(smsir_verify))
        .route(
            "/ghasedak/Rest/api/v1/WebService/SendOtpSMS",
            post(ghasedak_otp),
        )
        .route(
            "/kavenegar/v1/{key}/sms/status.json",
            post(kavenegar_status),
        )
        .route(
            "/kavenegar/v1/{key}/sms/statuslocalmessageid.json",
            post(kavenegar_by_local_id),
        )
        .route(
            "/magfa/api/http/sms/v2/mid/{uid}",
            axum::routing::get(magfa_mid),
        )
        .route("/smsir/v1/send/{id}", axum::routing::get(smsir_status))
        .route(
            "/ghasedak/Rest/api/v1/WebService/CheckSmsStatus",
            axum::routing::get(ghasedak_status),
        )
        .route(
            "/magfa/api/http/sms/v2/statuses/{mid}",
            axum::routing::get(magfa_status),
        )
        .route("/outbox", axum::routing::get(show_outbox))
        .with_state(outbox)
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The demo's window on what was "sent": newest first, so a newcomer can read the sign-in
/// code a citizen would get on their phone.
async fn show_outbox(State(outbox): State<Outbox>) -> axum::response::Html<String> {
    let rows: String = outbox
        .messages()
        .iter()
        .rev()
        .take(200)
        .map(|m| {
            format!(
                "<tr><td>{}</td><td dir=\"ltr\">{}</td><td>{}</td></tr>",
                m.provider,
                escape_html(&m.to),
                escape_html(&m.text).replace('\n', "<br>")
            )
        })
        .collect();
    axum::response::Html(format!(
        "<!doctype html><html lang=\"fa\" dir=\"rtl\"><meta charset=\"utf-8\">\
         <meta http-equiv=\"refresh\" content=\"5\"><title>پیامک‌های نمایشی</title>\
         <body style=\"font-family: Vazirmatn, Tahoma, sans-serif\"><h1>پیامک‌های فرستاده‌شده (نمایشی)</h1>\
         <p>این صفحه پیامک‌هایی را نشان می‌دهد که در حالت نمایشی به جای اپراتور واقعی دریافت شده‌اند.</p>\
         <table border=\"1\" cellpadding=\"6\"><tr><th>اپراتور</th><th>گیرنده</th><th>متن</th></tr>{rows}</table></body></html>"
    ))
}

/// Starts the fake provider on a loopback port; returns its base URL and outbox.
pub async fn spawn() -> anyhow::Result<(String, Outbox)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let outbox = Outbox::default();
    let app = router(outbox.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "fake SMS provider stopped");
        }
    });
    Ok((base, outbox))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sms::{Endpoints, SmsError, client, send_text};

    #[tokio::test]
    async fn every_adapter_speaks_its_provider_and_maps_its_errors() {
        let (base, outbox) = spawn().await.unwrap();
        let endpoints = Endpoints::all_at(&base);
        let http = client();
        let good = [
            ("kavenegar", json!({ "api_key": "good-key" })),
            ("smsir", json!({ "api_key": "good-key" })),
            ("ghasedak", json!({ "api_key": "good-key" })),
            (
                "magfa",
                json!({ "username": "u", "password": "p", "domain": "d" }),
            ),
        ];
        for (provider, creds) in &good {
            let id = send_text(
                &http,
                &endpoints,
                provider,
                creds,
                &crate::sms::Text {
                    sender: "3000123",
                    to: "+989121112233",
                    text: "سلام",
                    local_id: None,
                },
            )
            .await;
            assert!(id.is_ok(), "{provider}: {id:?}");
            let last = outbox.messages().pop().unwrap();
            assert_eq!(
                (last.provider, last.to.as_str(), last.text.as_str()),
                (*provider, "09121112233", "سلام")
            );
            let no_credit = send_text(
                &http,
                &endpoints,
                provider,
                creds,
                &crate::sms::Text {
                    sender: "3000123",
                    to: "+989120000000",
                    text: "x",
                    local_id: None,
                },
            )
            .await;
            // Ghasedak's error status codes are not published in what we read: they map to
            // `Rejected` with the code kept (never retried).
            let expected = if *provider == "ghasedak" {
                SmsError::Rejected("418".into())
            } else {
                SmsError::NoCredit
            };
            assert_eq!(no_credit, Err(expected), "{provider}");
        }
        assert_eq!(
            outbox.messages()[3].account,
            "u/d",
            "Magfa user is username/domain"
        );
        for (provider, creds) in [
            ("kavenegar", json!({ "api_key": "bad-key" })),
            ("smsir", json!({ "api_key": "bad-key" })),
            ("ghasedak", json!({ "api_key": "bad-key" })),
            (
                "magfa",
                json!({ "username": "u", "password": "bad", "domain": "d" }),
            ),
        ] {
            let refused = send_text(
                &http,
                &endpoints,
                provider,
                &creds,
                &crate::sms::Text {
                    sender: "3000123",
                    to: "+989121112233",
                    text: "x",
                    local_id: None,
                },
            )
            .await;
            assert_eq!(refused, Err(SmsError::Auth), "{provider}");
            assert!(!refused.unwrap_err().retryable());
        }
        let invalid = send_text(
            &http,
            &endpoints,
            "kavenegar",
            &good[0].1,
            &crate::sms::Text {
                sender: "3000",
                to: "+989999999999",
                text: "x",
                local_id: None,
            },
        )
        .await;
        assert_eq!(invalid, Err(SmsError::InvalidRecipient));
        let nobody = send_text(
            &http,
            &Endpoints::all_at("http://127.0.0.1:9"),
            "smsir",
            &good[1].1,
            &crate::sms::Text {
                sender: "3000",
                to: "+989121112233",
                text: "x",
                local_id: None,
            },
        )
        .await;
        assert!(
            nobody.is_err_and(|e| e.retryable()),
            "an unreachable provider is retryable"
        );
        assert_eq!(outbox.messages().len(), 4, "refused sends are not recorded");
    }

    #[tokio::test]
    async fn delivery_reports_and_busy_providers_in_each_format() {
        use crate::sms::{Delivery, delivery_status};
        let (base, _outbox) = spawn().await.unwrap();
        let endpoints = Endpoints::all_at(&base);
        let http = client();
        for (provider, creds) in [
            ("kavenegar", json!({ "api_key": "good-key" })),
            ("smsir", json!({ "api_key": "good-key" })),
            ("ghasedak", json!({ "api_key": "good-key" })),
            (
                "magfa",
                json!({ "username": "u", "password": "p", "domain": "d" }),
            ),
        ] {
            for (to, expected) in [
                ("+989121112233", Delivery::Delivered),
                ("+989121111111", Delivery::Failed(String::new())),
                ("+989121112222", Delivery::Pending),
            ] {
                let id = send_text(
                    &http,
                    &endpoints,
                    provider,
                    &creds,
                    &crate::sms::Text {
                        sender: "3000123",
                        to,
                        text: "x",
                        local_id: None,
                    },
                )
                .await
                .unwrap();
                let got = delivery_status(&http, &endpoints, provider, &creds, &id)
                    .await
                    .unwrap();
                match (&got, &expected) {
                    (Delivery::Failed(code), Delivery::Failed(_)) => assert!(!code.is_empty()),
                    _ => assert_eq!(got, expected, "{provider} {to}"),
                }
            }
            // The message sent with a client reference is found by it (SMS.ir keeps none).
            let local = crate::sms::Text {
                sender: "3000123",
                to: "+989121112255",
                text: "x",
                local_id: Some("4242"),
            };
            let id = send_text(&http, &endpoints, provider, &creds, &local)
                .await
                .unwrap();
            let found = crate::sms::find_by_local_id(&http, &endpoints, provider, &creds, "4242")
                .await
                .unwrap();
            let missing = crate::sms::find_by_local_id(&http, &endpoints, provider, &creds, "4343")
                .await
                .unwrap();
            if provider == "smsir" {
                assert_eq!((found, missing), (None, None));
            } else {
                assert_eq!((found, missing), (Some(id), None), "{provider}");
            }
            let busy = send_text(
                &http,
                &endpoints,
                provider,
                &creds,
                &crate::sms::Text {
                    sender: "3000123",
                    to: "+989121113333",
                    text: "x",
                    local_id: None,
                },
            )
            .await;
            assert_eq!(busy, Err(SmsError::Busy), "{provider}");
        }
    }
    #[tokio::test]
    async fn template_sends_in_each_format_and_their_errors() {
        use crate::sms::{TemplateSend, send_template};
        let (base, outbox) = spawn().await.unwrap();
        let endpoints = Endpoints::all_at(&base);
        let http = client();
        let creds = json!({ "api_key": "good-key" });
        for (provider, template, params) in [
            (
                "kavenegar",
                "miz-registered",
                vec![("token", "140509123456"), ("token10", "پروانه ساختمانی")],
            ),
            ("smsir", "100200", vec![("TRACKING", "140509123456")]),
            (
                "ghasedak",
                "mizRegistered",
                vec![("tracking", "140509123456")],
            ),
        ] {
            let params: Vec<(String, String)> = params
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            let message = TemplateSend {
                to: "+989121112233",
                template,
                params: &params,
                local_id: Some("77"),
            };
            let id = send_template(&http, &endpoints, provider, &creds, &message)
                .await
                .unwrap();
            let last = outbox.messages().pop().unwrap();
            assert_eq!(last.provider, provider);
            assert_eq!(last.to, "09121112233");
            assert_eq!(last.template.as_deref(), Some(template), "{provider}");
            assert_eq!(last.params, params, "{provider}");
            // A template send gets delivery reports like any message.
            let report = crate::sms::delivery_status(&http, &endpoints, provider, &creds, &id)
                .await
                .unwrap();
            assert_eq!(report, crate::sms::Delivery::Delivered, "{provider}");
            let missing = TemplateSend {
                template: if provider == "smsir" {
                    "404"
                } else {
                    "missing"
                },
                ..message
            };
            let refused = send_template(&http, &endpoints, provider, &creds, &missing).await;
            if provider == "ghasedak" {
                assert_eq!(refused, Err(SmsError::Rejected("404".into())));
            } else {
                assert_eq!(refused, Err(SmsError::TemplateNotFound), "{provider}");
            }
            let busy = TemplateSend {
                to: "+989121113333",
                ..message
            };
            assert_eq!(
                send_template(&http, &endpoints, provider, &creds, &busy).await,
                Err(SmsError::Busy)
            );
            let bad = send_template(
                &http,
                &endpoints,
                provider,
                &json!({ "api_key": "bad-key" }),
                &message,
            )
            .await;
            assert_eq!(bad, Err(SmsError::Auth), "{provider}");
            let poor = TemplateSend {
                to: "+989120000000",
                ..message
            };
            let no_credit = send_template(&http, &endpoints, provider, &creds, &poor).await;
            if provider != "ghasedak" {
                assert_eq!(no_credit, Err(SmsError::NoCredit), "{provider}");
            }
        }
        // Ghasedak keeps our id: a lost template send is found by it.
        assert!(
            crate::sms::find_by_local_id(&http, &endpoints, "ghasedak", &creds, "77")
                .await
                .unwrap()
                .is_some()
        );
        // Kavenegar's token..token3 never carry a space (its error 431): joined by ZWNJ.
        let spaced = [("token".to_owned(), "پروانه ساختمانی".to_owned())];
        let message = TemplateSend {
            to: "+989121112233",
            template: "t",
            params: &spaced,
            local_id: None,
        };
        send_template(&http, &endpoints, "kavenegar", &creds, &message)
            .await
            .unwrap();
        assert_eq!(
            outbox.messages().pop().unwrap().params[0].1,
            "پروانه\u{200c}ساختمانی"
        );
        // Magfa has no template call.
        assert!(
            send_template(
                &http,
                &endpoints,
                "magfa",
                &json!({ "username": "u", "password": "p", "domain": "d" }),
                &message
            )
            .await
            .is_err()
        );
    }
}
