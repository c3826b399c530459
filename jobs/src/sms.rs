//! SMS provider adapters: Kavenegar, SMS.ir, Ghasedak and Magfa, each speaking its real HTTP
//! request shape, auth and result codes, behind one function with normalized errors.
//! See research/domain.md §3 for the wire formats.

use serde_json::{Value, json};
use std::time::Duration;

/// Where each provider's API lives (the real hosts by default; the fake provider in the demo
/// and the tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    /// Kavenegar base (`…/v1/{key}/sms/send.json` is appended).
    pub kavenegar: String,
    /// SMS.ir base (`…/v1/send/bulk`).
    pub smsir: String,
    /// Ghasedak base (`…/Rest/api/v1/WebService/SendSingleSMS`).
    pub ghasedak: String,
    /// Magfa base (`…/api/http/sms/v2/send`).
    pub magfa: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Self {
            kavenegar: "https://api.kavenegar.com".to_owned(),
            smsir: "https://api.sms.ir".to_owned(),
            ghasedak: "https://gw.ghasedak.me".to_owned(),
            magfa: "https://sms.magfa.com".to_owned(),
        }
    }
}

impl Endpoints {
    /// All four providers at one base URL (the fake provider serves them under prefixes).
    pub fn all_at(base: &str) -> Self {
        Self {
            kavenegar: format!("{base}/kavenegar"),
            smsir: format!("{base}/smsir"),
            ghasedak: format!("{base}/ghasedak"),
            magfa: format!("{base}/magfa"),
        }
    }
}

/// Why a send failed, normalized across providers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmsError {
    /// Wrong or disabled credentials.
    Auth,
    /// Not enough credit.
    NoCredit,
    /// The recipient was refused.
    InvalidRecipient,
    /// The provider has no approved template by that id for this account.
    TemplateNotFound,
    /// The provider is busy or rate-limiting: retry later.
    Busy,
    /// Refused for another reason (provider code kept).
    Rejected(String),
    /// No answer, or not one we understand: retry later.
    Transport,
}

impl SmsError {
    /// Whether trying again later can help.
    pub fn retryable(&self) -> bool {
        matches!(self, Self::Busy | Self::Transport)
    }

    /// A stable code.
    pub fn code(&self) -> &str {
        match self {
            Self::Auth => "auth",
            Self::NoCredit => "no_credit",
            Self::InvalidRecipient => "invalid_recipient",
            Self::TemplateNotFound => "template_not_found",
            Self::Busy => "busy",
            Self::Rejected(_) => "rejected",
            Self::Transport => "transport",
        }
    }

    /// What the municipality admin reads.
    pub fn message_fa(&self) -> String {
        match self {
            Self::Auth => "اطلاعات ورود به سامانه پیامک پذیرفته نشد.".to_owned(),
            Self::NoCredit => "اعتبار حساب پیامک کافی نیست.".to_owned(),
            Self::InvalidRecipient => "شماره گیرنده را سامانه پیامک نپذیرفت.".to_owned(),
            Self::TemplateNotFound => {
                "سامانه پیامک الگویی با این شناسه ندارد یا هنوز آن را تأیید نکرده است.".to_owned()
            }
            Self::Busy => "سامانه پیامک مشغول است؛ بعداً دوباره تلاش کنید.".to_owned(),
            Self::Rejected(code) => format!("سامانه پیامک درخواست را رد کرد (کد {code})."),
            Self::Transport => "سامانه پیامک پاسخ نداد.".to_owned(),
        }
    }
}

fn field<'a>(creds: &'a Value, name: &str) -> Result<&'a str, SmsError> {
    creds[name]
        .as_str()
        .filter(|s| !s.is_empty())
        .ok_or(SmsError::Auth)
}

/// Kavenegar's key, which goes in the URL path: it must not be able to change the path.
fn kavenegar_key(credentials: &Value) -> Result<&str, SmsError> {
    let key = field(credentials, "api_key")?;
    if key
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        Ok(key)
    } else {
        Err(SmsError::Auth)
    }
}

/// Magfa's basic-auth user (`username/domain`) and password.
fn magfa_login(credentials: &Value) -> Result<(String, &str), SmsError> {
    let user = format!(
        "{}/{}",
        field(credentials, "username")?,
        field(credentials, "domain")?
    );
    Ok((user, field(credentials, "password")?))
}

async fn body(
    response: Result<reqwest::Response, reqwest::Error>,
) -> Result<(u16, Value), SmsError> {
    let response = response.map_err(|_| SmsError::Transport)?;
    let status = response.status().as_u16();
    let value = response
        .json::<Value>()
        .await
        .map_err(|_| SmsError::Transport)?;
    Ok((status, value))
}

/// A client with the timeouts a provider call gets.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .build()
        .unwrap_or_default()
}

/// One plain text to send.
#[derive(Debug, Clone, Copy)]
pub struct Text<'a> {
    /// Sender line.
    pub sender: &'a str,
    /// Recipient (`+989…`).
    pub to: &'a str,
    /// The text.
    pub text: &'a str,
    /// Our own id of the message, sent as the provider's client reference where it has one.
    pub local_id: Option<&'a str>,
}

/// Sends one plain text through `provider`; returns the provider's message id. `local_id`, our
/// own id of the message, goes along where the provider keeps one (Kavenegar `localid`,
/// Ghasedak `clientReferenceId`, Magfa `uids`), so [`find_by_local_id`] can tell later whether
/// the provider took it.
pub async fn send_text(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    provider: &str,
    credentials: &Value,
    message: &Text<'_>,
) -> Result<String, SmsError> {
    let Text {
        sender,
        to,
        text,
        local_id,
    } = *message;
    let to = desk_core::mobile::local_form(to);
    match provider {
        "kavenegar" => {
            let key = kavenegar_key(credentials)?;
            let url = format!("{}/v1/{key}/sms/send.json", endpoints.kavenegar);
            let mut form = vec![
                ("receptor", to.as_str()),
                ("sender", sender),
                ("message", text),
            ];
            if let Some(id) = local_id {
                form.push(("localid", id));
            }
            let (_, v) = body(
                http.post(url)
                    .header("Accept", "application/json")
                    .form(&form)
                    .send()
                    .await,
            )
            .await?;
            kavenegar_sent(&v)
        }
        "smsir" => {
            let key = field(credentials, "api_key")?;
            let line: i64 = sender
                .trim_start_matches('+')
                .parse()
                .map_err(|_| SmsError::Rejected("line".into()))?;
            let payload = json!({ "lineNumber": line, "messageText": text, "mobiles": [to], "sendDateTime": null });
            let request = http
                .post(format!("{}/v1/send/bulk", endpoints.smsir))
                .header("X-API-KEY", key)
                .header("Accept", "application/json")
                .json(&payload);
            let (_, v) = body(request.send().await).await?;
            smsir_sent(&v, &v["data"]["messageIds"][0])
        }
        "ghasedak" => {
            let key = field(credentials, "api_key")?;
            let payload = json!({ "lineNumber": sender, "receptor": to, "message": text,
                                  "clientReferenceId": local_id });
            let request = http
                .post(format!(
                    "{}/Rest/api/v1/WebService/SendSingleSMS",
                    endpoints.ghasedak
                ))
                .header("ApiKey", key)
                .json(&payload);
            let (status, v) = body(request.send().await).await?;
            ghasedak_sent(status, &v, &v["data"]["messageId"])
        }
        "magfa" => {
            let (user, password) = magfa_login(credentials)?;
            let mut payload =
                json!({ "senders": [sender], "recipients": [to], "messages": [text] });
            if let Some(uid) = local_id.and_then(|id| id.parse::<i64>().ok()) {
                payload["uids"] = json!([uid]);
            }
            let request = http
                .post(format!("{}/api/http/sms/v2/send", endpoints.magfa))
                .basic_auth(user, Some(password))
                .json(&payload);
            let (_, v) = body(request.send().await).await?;
            let status = v["status"]
                .as_i64()
                .or_else(|| v["messages"][0]["status"].as_i64());
            let first = v["messages"][0]["status"].as_i64().unwrap_or(0);
            match (status, first) {
                (Some(0), 0) => v["messages"][0]["id"]
                    .as_i64()
                    .map(|id| id.to_string())
                    .ok_or(SmsError::Transport),
                (Some(16..=19), _) | (_, 18 | 19) => Err(SmsError::Auth),
                (Some(14), _) | (_, 14) => Err(SmsError::NoCredit),
                (Some(1), _) | (_, 1) => Err(SmsError::InvalidRecipient),
                (Some(15 | 23), _) => Err(SmsError::Busy),
                (Some(code), _) => Err(SmsError::Rejected(code.to_string())),
                (None, _) => Err(SmsError::Transport),
            }
        }
        other => Err(SmsError::Rejected(format!("unknown provider {other}"))),
    }
}

/// Kavenegar's answer to `sms/send` and `verify/lookup`.
fn kavenegar_sent(v: &Value) -> Result<String, SmsError> {
    match v["return"]["status"].as_i64() {
        Some(200) => v["entries"][0]["messageid"]
            .as_i64()
            .map(|id| id.to_string())
            .ok_or(SmsError::Transport),
        Some(401 | 403) => Err(SmsError::Auth),
        Some(418) => Err(SmsError::NoCredit),
        Some(411) => Err(SmsError::InvalidRecipient),
        Some(424) => Err(SmsError::TemplateNotFound),
        Some(409) => Err(SmsError::Busy),
        Some(code) => Err(SmsError::Rejected(code.to_string())),
        None => Err(SmsError::Transport),
    }
}

/// SMS.ir's answer to `send/bulk` and `send/verify`; `id` is where the message id sits.
fn smsir_sent(v: &Value, id: &Value) -> Result<String, SmsError> {
    match v["status"].as_i64() {
        Some(1) => id
            .as_i64()
            .map(|id| id.to_string())
            .ok_or(SmsError::Transport),
        Some(10..=14) => Err(SmsError::Auth),
        Some(102) => Err(SmsError::NoCredit),
        Some(104) => Err(SmsError::InvalidRecipient),
        Some(113) => Err(SmsError::TemplateNotFound),
        Some(20) => Err(SmsError::Busy),
        Some(code) => Err(SmsError::Rejected(code.to_string())),
        None => Err(SmsError::Transport),
    }
}

/// Ghasedak's answer (HTTP status and envelope); `id` is where the message id sits.
fn ghasedak_sent(status: u16, v: &Value, id: &Value) -> Result<String, SmsError> {
    match (v["isSuccess"].as_bool(), status) {
        (Some(true), _) => id
            .as_str()
            .map(str::to_owned)
            .or_else(|| id.as_i64().map(|i| i.to_string()))
            .ok_or(SmsError::Transport),
        (_, 401 | 403) => Err(SmsError::Auth),
        (_, 429) => Err(SmsError::Busy),
        // Ghasedak's error codes are not published in what we read: keep the code.
        (Some(false), _) => Err(SmsError::Rejected(v["statusCode"].to_string())),
        (None, _) => Err(SmsError::Transport),
    }
}

/// One pre-approved template to send.
#[derive(Debug, Clone, Copy)]
pub struct TemplateSend<'a> {
    /// Recipient (`+989…`).
    pub to: &'a str,
    /// The template's id or name at the provider.
    pub template: &'a str,
    /// (provider's parameter name, value), in order.
    pub params: &'a [(String, String)],
    /// Our own id of the message, where the provider's template call keeps one (Ghasedak).
    pub local_id: Option<&'a str>,
}

/// Sends a provider's pre-approved template (Kavenegar `verify/lookup`, SMS.ir `send/verify`,
/// Ghasedak `SendOtpSMS`) with its parameters; returns the provider's message id. Only
/// Ghasedak's call takes our id; a message lost in a crash is looked up there, and sent again
/// through the others (as with SMS.ir's plain sends).
pub async fn send_template(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    provider: &str,
    credentials: &Value,
    message: &TemplateSend<'_>,
) -> Result<String, SmsError> {
    let to = desk_core::mobile::local_form(message.to);
    match provider {
        "kavenegar" => {
            let key = kavenegar_key(credentials)?;
            let url = format!("{}/v1/{key}/verify/lookup.json", endpoints.kavenegar);
            let mut form = vec![
                ("receptor".to_owned(), to),
                ("template".to_owned(), message.template.to_owned()),
            ];
            for (name, value) in message.params {
                // token..token3 take no space (error 431): a zero-width non-joiner keeps
                // Persian words apart without one.
                let value = if desk_core::sms_templates::KAVENEGAR_SPACELESS_TOKENS
                    .contains(&name.as_str())
                {
                    value
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join("\u{200c}")
                } else {
                    value.clone()
                };
                form.push((name.clone(), value));
            }
            let (_, v) = body(
                http.post(url)
                    .header("Accept", "application/json")
                    .form(&form)
                    .send()
                    .await,
            )
            .await?;
            kavenegar_sent(&v)
        }
        "smsir" => {
            let key = field(credentials, "api_key")?;
            let template: i64 = message
                .template
                .parse()
                .map_err(|_| SmsError::TemplateNotFound)?;
            let parameters: Vec<Value> = message
                .params
                .iter()
                .map(|(name, value)| json!({ "name": name, "value": value }))
                .collect();
            let request = http
                .post(format!("{}/v1/send/verify", endpoints.smsir))
                .header("X-API-KEY", key)
                .header("Accept", "application/json")
                .json(&json!({ "mobile": to, "templateId": template, "parameters": parameters }));
            let (_, v) = body(request.send().await).await?;
            smsir_sent(&v, &v["data"]["messageId"])
        }
        "ghasedak" => {
            let key = field(credentials, "api_key")?;
            let inputs: Vec<Value> = message
                .params
                .iter()
                .map(|(name, value)| json!({ "param": name, "value": value }))
                .collect();
            let payload = json!({
                "sendDate": null,
                "receptors": [{ "mobile": to, "clientReferenceId": message.local_id }],
                "templateName": message.template,
                "inputs": inputs,
                "udh": false,
            });
            let request = http
                .post(format!(
                    "{}/Rest/api/v1/WebService/SendOtpSMS",
                    endpoints.ghasedak
                ))
                .header("ApiKey", key)
                .json(&payload);
            let (status, v) = body(request.send().await).await?;
            // The answer's item list is read as `data.items`, falling back to `data`
            // (research/domain.md §3.3 does not give the response shape).
            let id = if v["data"]["items"].is_array() {
                &v["data"]["items"][0]["messageId"]
            } else {
                &v["data"]["messageId"]
            };
            ghasedak_sent(status, &v, id)
        }
        other => Err(SmsError::Rejected(format!("no templates at {other}"))),
    }
}

/// Where a sent message is, normalized across providers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Not on the handset yet (queued, sent to the operator).
    Pending,
    /// On the citizen's phone.
    Delivered,
    /// It will not arrive (provider's state kept).
    Failed(String),
}

/// Asks `provider` where message `id` is (its delivery report).
pub async fn delivery_status(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    provider: &str,
    credentials: &Value,
    id: &str,
) -> Result<Delivery, SmsError> {
    match provider {
        "kavenegar" => {
            let key = kavenegar_key(credentials)?;
            let url = format!("{}/v1/{key}/sms/status.json", endpoints.kavenegar);
            let (_, v) = body(http.post(url).form(&[("messageid", id)]).send().await).await?;
            match (
                v["return"]["status"].as_i64(),
                v["entries"][0]["status"].as_i64(),
            ) {
                // 10 Delivered; 6 Failed, 11 Undelivered, 13 Canceled, 14 Filtered, 100 Incorrect.
                (Some(200), Some(10)) => Ok(Delivery::Delivered),
                (Some(200), Some(s @ (6 | 11 | 13 | 14 | 100))) => {
                    Ok(Delivery::Failed(s.to_string()))
                }
                (Some(200), Some(_)) => Ok(Delivery::Pending),
                (Some(401 | 403), _) => Err(SmsError::Auth),
                (Some(409), _) => Err(SmsError::Busy),
                _ => Err(SmsError::Transport),
            }
        }
        "smsir" => {
            let key = field(credentials, "api_key")?;
            let encoded: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
            let request = http
                .get(format!("{}/v1/send/{encoded}", endpoints.smsir))
                .header("X-API-KEY", key)
                .header("Accept", "application/json");
            let (_, v) = body(request.send().await).await?;
            // deliveryState: 1 delivered, 2 not delivered, other values pending (the published
            // table was not found; research/domain.md §3.2 marks it to verify).
            match (v["status"].as_i64(), v["data"]["deliveryState"].as_i64()) {
                (Some(1), Some(1)) => Ok(Delivery::Delivered),
                (Some(1), Some(2)) => Ok(Delivery::Failed("2".into())),
                (Some(1), _) => Ok(Delivery::Pending),
                (Some(10..=14), _) => Err(SmsError::Auth),
                (Some(20), _) => Err(SmsError::Busy),
                (Some(code), _) => Err(SmsError::Rejected(code.to_string())),
                (None, _) => Err(SmsError::Transport),
            }
        }
        "ghasedak" => {
            let key = field(credentials, "api_key")?;
            let encoded: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
            let request = http
                .get(format!(
                    "{}/Rest/api/v1/WebService/CheckSmsStatus?Type=1&Ids={encoded}",
                    endpoints.ghasedak
                ))
                .header("ApiKey", key);
            let (status, v) = body(request.send().await).await?;
            match (
                v["isSuccess"].as_bool(),
                v["data"][0]["status"].as_i64(),
                status,
            ) {
                // 14 Delivered; 1 Rejected, 6 InternalFailed, 7 Canceled, 8/12 Blacklisted,
                // 13 NotDelivered, 15 Blocked, 16 Failed.
                (Some(true), Some(14), _) => Ok(Delivery::Delivered),
                (Some(true), Some(s @ (1 | 6 | 7 | 8 | 12 | 13 | 15 | 16)), _) => {
                    Ok(Delivery::Failed(s.to_string()))
                }
                (Some(true), Some(_), _) => Ok(Delivery::Pending),
                (_, _, 401 | 403) => Err(SmsError::Auth),
                (_, _, 429) => Err(SmsError::Busy),
                _ => Err(SmsError::Transport),
            }
        }
        "magfa" => {
            let (user, password) = magfa_login(credentials)?;
            let encoded: String = form_urlencoded::byte_serialize(id.as_bytes()).collect();
            let request = http
                .get(format!(
                    "{}/api/http/sms/v2/statuses/{encoded}",
                    endpoints.magfa
                ))
                .basic_auth(user, Some(password));
            let (_, v) = body(request.send().await).await?;
            match (v["status"].as_i64(), v["dlrs"][0]["status"].as_i64()) {
                // 1 delivered to the handset; 2 not delivered, 16 did not reach the operator,
                // -1 unknown id (or older than a day).
                (Some(0), Some(1)) => Ok(Delivery::Delivered),
                (Some(0), Some(s @ (-1 | 2 | 16))) => Ok(Delivery::Failed(s.to_string())),
                (Some(0), _) => Ok(Delivery::Pending),
                (Some(18 | 19), _) => Err(SmsError::Auth),
                (Some(15 | 23), _) => Err(SmsError::Busy),
                _ => Err(SmsError::Transport),
            }
        }
        other => Err(SmsError::Rejected(format!("unknown provider {other}"))),
    }
}

/// The provider's message id of the message we sent with `local_id`, if the provider took it.
/// SMS.ir keeps no client reference: `Ok(None)` (the caller sends again).
pub async fn find_by_local_id(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    provider: &str,
    credentials: &Value,
    local_id: &str,
) -> Result<Option<String>, SmsError> {
    let encoded: String = form_urlencoded::byte_serialize(local_id.as_bytes()).collect();
    match provider {
        "kavenegar" => {
            let key = kavenegar_key(credentials)?;
            let url = format!(
                "{}/v1/{key}/sms/statuslocalmessageid.json",
                endpoints.kavenegar
            );
            let (_, v) = body(http.post(url).form(&[("localid", local_id)]).send().await).await?;
            match (
                v["return"]["status"].as_i64(),
                v["entries"][0]["messageid"].as_i64(),
            ) {
                // Status 100 means "no such message".
                (Some(200), Some(id)) if v["entries"][0]["status"].as_i64() != Some(100) => {
                    Ok(Some(id.to_string()))
                }
                (Some(200), _) => Ok(None),
                (Some(401 | 403), _) => Err(SmsError::Auth),
                _ => Err(SmsError::Transport),
            }
        }
        "ghasedak" => {
            let key = field(credentials, "api_key")?;
            let request = http
                .get(format!(
                    "{}/Rest/api/v1/WebService/CheckSmsStatus?Type=2&Ids={encoded}",
                    endpoints.ghasedak
                ))
                .header("ApiKey", key);
            let (status, v) = body(request.send().await).await?;
            match (v["isSuccess"].as_bool(), status) {
                (Some(true), _) => Ok(v["data"][0]["messageId"]
                    .as_str()
                    .map(str::to_owned)
                    .or_else(|| v["data"][0]["messageId"].as_i64().map(|i| i.to_string()))),
                (_, 401 | 403) => Err(SmsError::Auth),
                _ => Err(SmsError::Transport),
            }
        }
        "magfa" => {
            let (user, password) = magfa_login(credentials)?;
            let request = http
                .get(format!("{}/api/http/sms/v2/mid/{encoded}", endpoints.magfa))
                .basic_auth(user, Some(password));
            let (_, v) = body(request.send().await).await?;
            match (v["status"].as_i64(), v["mid"].as_i64()) {
                (Some(0), Some(mid)) if mid > 0 => Ok(Some(mid.to_string())),
                (Some(0 | 24), _) => Ok(None),
                (Some(18 | 19), _) => Err(SmsError::Auth),
                _ => Err(SmsError::Transport),
            }
        }
        _ => Ok(None),
    }
}
