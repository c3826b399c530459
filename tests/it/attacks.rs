//! The cross-tenant attack suite (issue #8). Municipality `beta` holds requests with files,
//! notes and an assignee, a closed request with a survey link, an appointment, a clerk, a unit,
//! its own service, question, holiday, logo, SMS account and API keys. From `alpha` (its staff,
//! its citizens, its API key) and with beta's own credentials used on the wrong host, several
//! hundred attempts try to reach any of it over the citizen portal, the staff portal, GraphQL,
//! Open311, file downloads, cookie and host games, the platform portal and job payloads.
//!
//! One test per surface (staff portal, staff team, citizen portal, public pages, GraphQL,
//! Open311, replays, cookies and hosts, job payloads), each on its own fixture, so one surface's
//! failure does not hide another's.
//!
//! Every attempt is a real request through the app router (or, for job payloads, a real
//! database call). It passes only when its status hands nothing out, its body carries none of
//! beta's secret markers (unless the attacker sent that very value, which an echo may repeat),
//! and nothing changed in beta: every table of beta's schema (row count and content hash), its
//! registry rows, indicators and queued jobs are compared after each attempt.

use axum::http::StatusCode;
use chrono::{Duration, NaiveDate, NaiveTime};
use desk_core::jobs::{
    InviteSurvey, JobPayload, RefreshIndicators, SendSms, SmsTestSend, WelcomeStaff,
};
use desk_core::report::Period;
use desk_core::text::persian_digits;
use desk_core::tracking::TrackingCode;
use desk_db::Tenant;
use desk_tests::{TestApp, TestResponse};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const ALPHA: &str = "alpha.test";
const BETA: &str = "beta.test";
const PORTAL: &str = "admin.test";

const ALPHA_MOBILE: &str = "09121234567";
const BETA_MOBILE: &str = "09351112233";
const BETA_MOBILE_CANON: &str = "+989351112233";
const BETA_NAME: &str = "فریدون گلستانه";
const BETA_NATIONAL: &str = "2741983569";
const BETA_ADDRESS: &str = "خیابان بتاسرا کوچه محرمانه";
const BETA_DESCRIPTION: &str = "شرح محرمانه پرونده بتا";
const BETA_NOTE: &str = "یادداشت محرمانه کارشناس بتا";
const BETA_FILE_MARK: &str = "BETA-FILE-SECRET-5E1F";
const BETA_FILE_NAME: &str = "betadeedsecret.pdf";
const BETA_SERVICE: &str = "BETA-SECRET-77";
const BETA_SERVICE_TITLE: &str = "خدمت ویژه شهرداری بتا";
const BETA_UNIT: &str = "واحد محرمانه بتا";
const BETA_CLERK: &str = "beta-clerk-kambiz";
const BETA_CLERK_NAME: &str = "کامبیز بتاپور";
const BETA_CLERK_MOBILE: &str = "+989357778899";
const BETA_QUESTION: &str = "آیا کارمند بتا مودب بود";
const BETA_HOLIDAY: &str = "جشن محرمانه بتا";
const BETA_LOGO_MARK: &str = "BETA-LOGO-SECRET-91";
const BETA_SMS_SECRET: &str = "beta-sms-secret-7731";
/// Idempotency keys of beta's requests (web, web, Open311); Open311 calls them tokens.
const BETA_IDEM: [&str; 3] = [
    "beta-idem-secret-000001",
    "beta-idem-secret-000002",
    "beta-idem-secret-000003",
];

/// Workflow actions an attacker tries on beta's requests.
const ACTIONS: [&str; 6] = [
    "accept",
    "request_documents",
    "forward",
    "approve",
    "reject",
    "deliver",
];

/// Host spellings that all name beta's site.
const BETA_SPELLINGS: [&str; 6] = [
    "BETA.TEST",
    "Beta.Test",
    "beta.test.",
    "beta.test:80",
    "beta.test:8080",
    "beta.test:443",
];

fn pdf(mark: &str) -> Vec<u8> {
    format!("%PDF-1.4\n% {mark}\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n").into_bytes()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| char::from(b).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What an attacker's input and a secret are compared as: decoded, ASCII digits, lowercase,
/// without spaces, dashes, plus signs and ZWNJ (so `۰۹۳۵ ۱۱۱ ۲۲۳۳` is `09351112233`).
fn normalize(s: &str) -> String {
    desk_core::mobile::ascii_digits(&percent_decode(s))
        .to_lowercase()
        .chars()
        .filter(|c| !c.is_whitespace() && !matches!(c, '-' | '+' | '\u{200c}'))
        .collect()
}

/// A value of beta's and the ways a page may spell it.
struct Secret {
    label: String,
    variants: Vec<String>,
}

impl Secret {
    fn text(label: impl Into<String>, value: &str) -> Self {
        Self {
            label: label.into(),
            variants: vec![value.to_owned()],
        }
    }

    /// ASCII digits, Persian digits, and groups of `group` separated by a space.
    fn digits(label: impl Into<String>, ascii: &str, group: usize) -> Self {
        let grouped: Vec<String> = ascii
            .as_bytes()
            .chunks(group)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let spaced = grouped.join(" ");
        Self {
            label: label.into(),
            variants: vec![
                ascii.to_owned(),
                persian_digits(ascii),
                spaced.clone(),
                persian_digits(&spaced),
                grouped.join("-"),
            ],
        }
    }
}

/// One HTTP request as an attacker sends it.
#[derive(Clone)]
struct Req {
    method: &'static str,
    host: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Req {
    fn get(host: &str, path: impl Into<String>) -> Self {
        Self {
            method: "GET",
            host: host.to_owned(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn post(host: &str, path: impl Into<String>) -> Self {
        Self {
            method: "POST",
            ..Self::get(host, path)
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    fn cookie(self, cookie: &str) -> Self {
        if cookie.is_empty() {
            self
        } else {
            self.header("cookie", cookie)
        }
    }

    fn form(mut self, fields: &[(&str, &str)]) -> Self {
        self.body = fields
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&")
            .into_bytes();
        self.header("content-type", "application/x-www-form-urlencoded")
    }

    fn json(mut self, v: &Value) -> Self {
        self.body = v.to_string().into_bytes();
        self.header("content-type", "application/json")
    }

    fn bearer(self, key: Option<&str>) -> Self {
        match key {
            Some(k) => self.header("authorization", format!("Bearer {k}")),
            None => self,
        }
    }

    fn multipart(mut self, fields: &[(&str, &str)], files: &[(&str, &str, &[u8])]) -> Self {
        const B: &str = "attack-boundary-8c2e";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!(
                    "--{B}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        for (name, filename, bytes) in files {
            body.extend_from_slice(
                format!("--{B}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: application/pdf\r\n\r\n")
                    .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{B}--\r\n").as_bytes());
        self.body = body;
        self.header("content-type", format!("multipart/form-data; boundary={B}"))
    }

    /// Everything the attacker typed (what an echo may legitimately repeat).
    fn input(&self) -> String {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        format!(
            "{} {}{}\n{}\n{}",
            self.method,
            self.host,
            self.path,
            headers.join("\n"),
            String::from_utf8_lossy(&self.body)
        )
    }
}

/// A GraphQL request (JSON) with an optional `Authorization: Bearer` key.
fn gql(host: &str, key: Option<&str>, query: &str, variables: Value) -> Req {
    Req::post(host, "/graphql")
        .json(&json!({ "query": query, "variables": variables }))
        .bearer(key)
}

type Checker = Box<dyn Fn(&TestResponse) -> Result<(), String>>;

/// What an attempt's response must be, besides free of beta's markers.
enum Expect {
    /// Not 2xx, and no session handed out.
    Denied,
    /// 4xx and no session handed out (sign-in attempts: a redirect would mean success).
    Refused,
    /// Any status (a page of alpha's own may show); only the body matters.
    Clean,
    /// GraphQL: `data.<field>` is null or absent, and the API said why (an error with a code,
    /// or an explicit null), so a malformed query cannot pass for a refusal.
    NoData(&'static str),
    /// GraphQL: alpha's own query ran (`data.<field>` present, no error); only the body matters.
    Answered(&'static str),
    /// A check of its own.
    Check(Checker),
}

struct Outcome {
    family: &'static str,
    what: String,
    status: String,
    problems: Vec<String>,
}

const PLATFORM_DIGEST: &str = "
    select 'platform.tenants'::text, coalesce(md5(string_agg(t::text, '|' order by t::text)), '')
      from platform.tenants t where t.id = $1
    union all
    select 'platform.tenant_domains', coalesce(md5(string_agg(d::text, '|' order by d::text)), '')
      from platform.tenant_domains d where d.tenant_id = $1
    union all
    select 'platform.tenant_indicators', count(*)::text || ':' || coalesce(md5(string_agg(i::text, '|' order by i::text)), '')
      from platform.tenant_indicators i where i.tenant_id = $1
    union all
    select 'apalis.jobs', count(*)::text || ':' || coalesce(md5(string_agg(j.id::text || j.status::text, '|' order by j.id::text)), '')
      from apalis.jobs j where convert_from(j.job, 'UTF8') like '%' || $1::text || '%'";

struct Suite<'a> {
    app: &'a TestApp,
    beta: &'a Tenant,
    secrets: Vec<Secret>,
    digest_sql: String,
    tables: usize,
    state: BTreeMap<String, String>,
    family: &'static str,
    outcomes: Vec<Outcome>,
    statuses: BTreeMap<String, usize>,
}

impl<'a> Suite<'a> {
    async fn new(app: &'a TestApp, beta: &'a Tenant, secrets: Vec<Secret>) -> Self {
        let mut tx = app.tx(beta).await;
        let tables: Vec<(String, bool)> = sqlx::query_as(
            "select c.relname::text, has_table_privilege(c.oid, 'select')
               from pg_class c join pg_namespace n on n.oid = c.relnamespace
              where n.nspname = current_schema() and c.relkind in ('r', 'p')
              order by 1",
        )
        .fetch_all(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let unreadable: Vec<&str> = tables
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(t, _)| t.as_str())
            .collect();
        assert!(
            unreadable.is_empty(),
            "beta's role cannot read {unreadable:?}"
        );
        let digest_sql = tables
            .iter()
            .map(|(t, _)| {
                format!(
                    "select '{t}'::text, count(*)::text || ':' || coalesce(md5(string_agg(x::text, '|' order by x::text)), '') from \"{t}\" x"
                )
            })
            .collect::<Vec<_>>()
            .join(" union all ");
        let mut suite = Self {
            app,
            beta,
            secrets,
            digest_sql,
            tables: tables.len(),
            state: BTreeMap::new(),
            family: "",
            outcomes: Vec::new(),
            statuses: BTreeMap::new(),
        };
        suite.state = suite.beta_state().await;
        suite
    }

    /// Row count and content hash of every table of beta's schema, and beta's rows outside it.
    async fn beta_state(&self) -> BTreeMap<String, String> {
        let mut tx = self
            .app
            .db
            .platform
            .tenant_db()
            .begin(self.beta.scope())
            .await
            .unwrap();
        let rows: Vec<(String, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(self.digest_sql.clone()))
                .fetch_all(&mut *tx)
                .await
                .unwrap();
        tx.commit().await.unwrap();
        let platform: Vec<(String, String)> = sqlx::query_as(PLATFORM_DIGEST)
            .bind(self.beta.id.0)
            .fetch_all(self.app.db.platform.pool_for_infrastructure())
            .await
            .unwrap();
        rows.into_iter().chain(platform).collect()
    }

    fn rows(state: &BTreeMap<String, String>) -> i64 {
        state
            .iter()
            .filter(|(k, _)| !k.starts_with("platform.tenants") && !k.contains("domains"))
            .filter_map(|(_, v)| v.split(':').next()?.parse::<i64>().ok())
            .sum()
    }

    async fn check_state(&mut self, problems: &mut Vec<String>) {
        let now = self.beta_state().await;
        if now != self.state {
            let changed: Vec<String> = now
                .iter()
                .filter(|(k, v)| self.state.get(*k) != Some(*v))
                .map(|(k, v)| {
                    format!(
                        "{k} {} -> {v}",
                        self.state.get(k).map_or("-", String::as_str)
                    )
                })
                .collect();
            problems.push(format!("beta's data changed: {}", changed.join(", ")));
            self.state = now;
        }
    }

    /// Beta's secrets in `seen` that the attacker did not send in `input`, each with the text
    /// around it.
    fn leaked(&self, seen: &str, input: &str) -> Vec<String> {
        let input = normalize(input);
        self.secrets
            .iter()
            .filter(|s| !s.variants.iter().any(|v| input.contains(&normalize(v))))
            .filter_map(|s| {
                let (at, v) = s
                    .variants
                    .iter()
                    .find_map(|v| seen.find(v.as_str()).map(|at| (at, v)))?;
                let from = seen.floor_char_boundary(at.saturating_sub(80));
                let to = seen.ceil_char_boundary((at + v.len() + 80).min(seen.len()));
                Some(format!("{} in «{}»", s.label, &seen[from..to]))
            })
            .collect()
    }

    async fn hit(&mut self, what: impl Into<String>, req: Req, expect: Expect) -> TestResponse {
        self.hit_knowing(what, req, expect, &[]).await
    }

    /// Sends `req`; `known` are values the attacker holds anyway (their own mobile number).
    async fn hit_knowing(
        &mut self,
        what: impl Into<String>,
        req: Req,
        expect: Expect,
        known: &[&str],
    ) -> TestResponse {
        let headers: Vec<(&str, &str)> = req
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let res = self
            .app
            .send_bytes(req.method, &req.host, &req.path, req.body.clone(), &headers)
            .await;
        *self
            .statuses
            .entry(res.status.as_u16().to_string())
            .or_default() += 1;
        let mut problems = Vec::new();
        // A session is any cookie with a value but the staff sign-in form's CSRF nonce
        // (`desk_staff_pre`), which every sign-in page sets and which opens nothing.
        let session = res
            .cookies
            .iter()
            .any(|c| !c.ends_with('=') && !c.starts_with("desk_staff_pre="));
        match &expect {
            Expect::Denied => {
                if res.status.is_success() {
                    problems.push(format!("answered {}", res.status));
                }
                if session {
                    problems.push(format!("handed out a cookie {:?}", res.cookies));
                }
            }
            Expect::Refused => {
                if !res.status.is_client_error() {
                    problems.push(format!("answered {}", res.status));
                }
                if session {
                    problems.push(format!("handed out a cookie {:?}", res.cookies));
                }
            }
            Expect::Clean => {}
            Expect::NoData(field) => {
                let v: Value = serde_json::from_str(&res.text).unwrap_or(Value::Null);
                if !v["data"][*field].is_null() {
                    problems.push(format!("GraphQL gave data.{field}: {}", v["data"][*field]));
                }
                let coded = v["errors"][0]["extensions"]["code"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty());
                if !coded && v["data"].get(*field).is_none() {
                    problems.push(format!("not a refusal of the API: {}", res.text));
                }
            }
            Expect::Answered(field) => {
                let v: Value = serde_json::from_str(&res.text).unwrap_or(Value::Null);
                if v["data"][*field].is_null() || !v["errors"].is_null() {
                    problems.push(format!("alpha's own query did not run: {}", res.text));
                }
            }
            Expect::Check(check) => {
                if let Err(e) = check(&res) {
                    problems.push(e);
                }
            }
        }
        let mut input = req.input();
        for k in known {
            input.push('\n');
            input.push_str(k);
        }
        let seen = format!(
            "{}\n{}\n{}",
            res.text,
            res.location.as_deref().unwrap_or_default(),
            res.cookie.as_deref().unwrap_or_default()
        );
        for label in self.leaked(&seen, &input) {
            problems.push(format!("response shows beta's {label}"));
        }
        self.check_state(&mut problems).await;
        self.outcomes.push(Outcome {
            family: self.family,
            what: format!(
                "{} {}{}{} ({})",
                req.method,
                req.host,
                if req.path.starts_with('/') { "" } else { " " },
                req.path,
                what.into()
            ),
            status: res.status.as_u16().to_string(),
            problems,
        });
        res
    }

    /// A database attempt (job payloads): `result` is its own verdict, `shown` what it returned.
    async fn record(&mut self, what: impl Into<String>, shown: &str, result: Result<(), String>) {
        let mut problems = Vec::new();
        if let Err(e) = result {
            problems.push(e);
        }
        for label in self.leaked(shown, "") {
            problems.push(format!("returned beta's {label}"));
        }
        self.check_state(&mut problems).await;
        *self.statuses.entry("db".to_owned()).or_default() += 1;
        self.outcomes.push(Outcome {
            family: self.family,
            what: what.into(),
            status: "db".to_owned(),
            problems,
        });
    }
}

/// Everything the attacks aim at and attack with.
struct Fixture {
    base_code: String,
    docs: usize,
    /// Beta's open request (files, note, clerk, unit; waiting for documents) and its closed
    /// one (own service, files, survey link).
    r1: String,
    r2: String,
    r2_id: i64,
    /// Beta's request filed through Open311.
    r3: String,
    /// Alpha's own request (in review).
    ra: String,
    r1_files: Vec<i64>,
    r2_files: Vec<i64>,
    /// File ids that exist only in beta.
    beta_only_files: Vec<i64>,
    appointment: i64,
    clerk: i64,
    unit: i64,
    desk_hours: i64,
    sms_account: i64,
    sms_test: i64,
    notification: i64,
    question: String,
    holiday: NaiveDate,
    survey_token: String,
    beta_only_keys: Vec<i64>,
    alpha_key: String,
    beta_keys: Vec<String>,
    /// Alpha's admin session and CSRF token.
    sa: String,
    sa_csrf: String,
    /// Alpha's citizen.
    ca: String,
    ca_csrf: String,
    /// Alpha's citizen signed in with the mobile number beta's citizen uses.
    cm: String,
    cm_csrf: String,
    /// Beta's admin and citizen sessions (used on the wrong host).
    sb: String,
    cb: String,
    alpha_link: String,
    beta_link: String,
    /// An invitation of beta's clerk (`/staff/welcome/<token>`), not yet used.
    beta_invite: String,
    beta_code: String,
    tomorrow: String,
}

async fn scalar(app: &TestApp, tenant: &Tenant, sql: &str) -> i64 {
    let mut tx = app.tx(tenant).await;
    let n: Option<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    n.unwrap_or_default()
}

async fn ids(app: &TestApp, tenant: &Tenant, sql: &str) -> Vec<i64> {
    let mut tx = app.tx(tenant).await;
    let v: Vec<i64> = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    v
}

fn only_in(beta: &[i64], alpha: &[i64], what: &str) -> Vec<i64> {
    let only: Vec<i64> = beta
        .iter()
        .copied()
        .filter(|id| !alpha.contains(id))
        .collect();
    assert!(
        !only.is_empty(),
        "the fixture needs {what} ids that exist only in beta"
    );
    only
}

fn files_of(tracking: &str) -> String {
    format!(
        "select f.id from request_files f join requests r on r.id = f.request_id
          where r.tracking_code = '{tracking}' order by f.id"
    )
}

async fn make_key(app: &TestApp, tenant: &Tenant, scopes: &[&str], role: Option<&str>) -> String {
    let mut tx = app.tx(tenant).await;
    let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
    let (key, _) = desk_db::api_keys::create(&mut tx, "integration", &scopes, role, None, None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    key
}

fn beta_form(idem: &str) -> Vec<(&'static str, String)> {
    vec![
        ("applicant_national_code", BETA_NATIONAL.to_owned()),
        ("full_name", BETA_NAME.to_owned()),
        ("postal_code", "8173653111".to_owned()),
        ("address", BETA_ADDRESS.to_owned()),
        ("description", BETA_DESCRIPTION.to_owned()),
        ("idempotency_key", idem.to_owned()),
    ]
}

fn alpha_form(idem: &str) -> Vec<(&'static str, String)> {
    vec![
        ("applicant_national_code", "0499370899".to_owned()),
        ("full_name", "مینا رحیمی".to_owned()),
        ("postal_code", "8173653111".to_owned()),
        ("address", "اصفهان، خیابان سعدی".to_owned()),
        ("description", "درخواست آلفا".to_owned()),
        ("idempotency_key", idem.to_owned()),
    ]
}

fn tracking_of(res: &TestResponse) -> String {
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    res.location
        .as_deref()
        .unwrap()
        .trim_start_matches("/requests/")
        .to_owned()
}

/// Staff acts on a request through the staff portal (fixture set-up).
async fn staff_post(app: &TestApp, cookie: &str, host: &str, path: &str, fields: &[(&str, &str)]) {
    let res = app.post_form(Some(cookie), host, path, fields).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{path}: {}", res.text);
}

async fn fixture(app: &TestApp, alpha: &Tenant, beta: &Tenant) -> Fixture {
    let platform = &app.db.platform;
    let (base_code, docs) = crate::requests::service_with_documents();
    let today = desk_core::calendar::today_in_iran();
    let tomorrow = today + Duration::days(1);
    let holiday = today + Duration::days(20);

    // Beta's own things: a service of its own, a clerk, a unit, a question, a holiday, a logo,
    // desk hours and an appointment.
    let mut tx = platform.tenant_db().begin(beta.scope()).await.unwrap();
    let mut card = desk_core::template::national_template()
        .unwrap()
        .iter()
        .find(|c| c.code == base_code)
        .unwrap()
        .clone();
    card.code = BETA_SERVICE.to_owned();
    card.title_fa = BETA_SERVICE_TITLE.to_owned();
    card.national_service_id = None;
    desk_db::catalog::save_draft(&mut tx, &card).await.unwrap();
    desk_db::catalog::publish_draft(&mut tx, BETA_SERVICE)
        .await
        .unwrap();
    let clerk = desk_db::staff::insert_staff(
        &mut tx,
        BETA_CLERK,
        BETA_CLERK_NAME,
        Some(BETA_CLERK_MOBILE),
        false,
    )
    .await
    .unwrap()
    .id;
    // A member who joined (set a password), so beta's admin may give them work.
    desk_db::staff::set_password(
        &mut tx,
        clerk,
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA",
    )
    .await
    .unwrap();
    let unit = desk_db::requests::add_unit(&mut tx, BETA_UNIT)
        .await
        .unwrap()
        .id;
    let question = desk_db::surveys::add_question(&mut tx, &format!("{BETA_QUESTION}؟"))
        .await
        .unwrap();
    desk_db::settings::put_holiday(&mut tx, holiday, BETA_HOLIDAY)
        .await
        .unwrap();
    let mut logo = b"\x89PNG\r\n\x1a\n".to_vec();
    logo.extend_from_slice(BETA_LOGO_MARK.as_bytes());
    desk_db::settings::put_theme_asset(&mut tx, "logo", "image/png", &logo)
        .await
        .unwrap();
    desk_db::appointments::add_desk_hours(
        &mut tx,
        None,
        1,
        NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
        NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
        60,
        2,
    )
    .await
    .unwrap();
    let slot = desk_core::appointments::Slot {
        day: tomorrow,
        starts: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        capacity: 5,
    };
    let appointment = desk_db::appointments::book(
        &mut tx,
        &base_code,
        "",
        &slot,
        None,
        BETA_MOBILE_CANON,
        &"نوبت شما ثبت شد".into(),
    )
    .await
    .unwrap()
    .id;
    tx.commit().await.unwrap();
    // Alpha's citizens sign in with codes, so alpha has an SMS account too: beta's second
    // account id is one alpha does not have.
    {
        let mut tx = platform.tenant_db().begin(beta.scope()).await.unwrap();
        sqlx::raw_sql(
            "insert into sms_accounts (provider, label, sender_line, credentials_nonce, credentials_ciphertext)
             values ('kavenegar', 'burned', '3000', '\\x00', '\\x00');
             delete from sms_accounts",
        )
        .execute(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    desk_tests::add_sms_account(platform, beta, "kavenegar", BETA_SMS_SECRET).await;
    let mut tx = platform.tenant_db().begin(beta.scope()).await.unwrap();
    let sms_account = desk_db::settings::list_sms_accounts(&mut tx).await.unwrap()[0].id;
    let sms_test = desk_db::settings::request_sms_test(&mut tx, sms_account, BETA_MOBILE_CANON)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let desk_hours = scalar(app, beta, "select max(id) from desk_hours").await;

    // Beta's citizen files two requests with documents; beta's admin moves them on.
    let cb = app.citizen_sign_in(beta, BETA, BETA_MOBILE).await;
    let names: Vec<String> = (1..=docs).map(|i| format!("doc_{i}")).collect();
    let beta_pdf = pdf(BETA_FILE_MARK);
    let beta_files: Vec<(&str, &str, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), BETA_FILE_NAME, beta_pdf.as_slice()))
        .collect();
    let r1 = tracking_of(
        &crate::requests::submit(
            app,
            &cb,
            BETA,
            &base_code,
            &beta_form(BETA_IDEM[0]),
            &beta_files,
        )
        .await,
    );
    let r2 = tracking_of(
        &crate::requests::submit(
            app,
            &cb,
            BETA,
            BETA_SERVICE,
            &beta_form(BETA_IDEM[1]),
            &beta_files,
        )
        .await,
    );
    let sb = app.staff_sign_in(beta, "admin-beta").await;
    let csrf = app
        .get_as(&sb, BETA, &format!("/staff/requests/{r1}"))
        .await
        .csrf();
    let act = |t: &str| format!("/staff/requests/{t}/act");
    staff_post(
        app,
        &sb,
        BETA,
        &act(&r1),
        &[("csrf", &csrf), ("action", "accept")],
    )
    .await;
    staff_post(
        app,
        &sb,
        BETA,
        &format!("/staff/requests/{r1}/assign"),
        &[("csrf", &csrf), ("staff_id", &clerk.to_string())],
    )
    .await;
    staff_post(
        app,
        &sb,
        BETA,
        &act(&r1),
        &[
            ("csrf", &csrf),
            ("action", "forward"),
            ("note", BETA_NOTE),
            ("unit_id", &unit.to_string()),
        ],
    )
    .await;
    staff_post(
        app,
        &sb,
        BETA,
        &act(&r1),
        &[
            ("csrf", &csrf),
            ("action", "request_documents"),
            ("note", BETA_NOTE),
        ],
    )
    .await;
    for action in ["accept", "approve", "deliver"] {
        staff_post(
            app,
            &sb,
            BETA,
            &act(&r2),
            &[("csrf", &csrf), ("action", action)],
        )
        .await;
    }
    // The closed request's survey link (the invitation job would draw one like it).
    let survey_token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let r2_id = scalar(
        app,
        beta,
        &format!("select id from requests where tracking_code = '{r2}'"),
    )
    .await;
    let mut tx = platform.tenant_db().begin(beta.scope()).await.unwrap();
    assert!(
        desk_db::surveys::invite(&mut tx, r2_id, &survey_token)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let beta_keys = vec![
        make_key(
            app,
            beta,
            &["requests:submit", "requests:read", "reports:read"],
            None,
        )
        .await,
        make_key(app, beta, &["requests:read"], None).await,
        make_key(
            app,
            beta,
            &["requests:read", "requests:act"],
            Some("department_head"),
        )
        .await,
    ];

    // A third request of beta's, filed by an integrator through Open311.
    let o311: Vec<(String, String)> = vec![
        ("api_key".into(), beta_keys[0].clone()),
        ("service_code".into(), base_code.clone()),
        ("phone".into(), BETA_MOBILE.into()),
        (
            "attribute[applicant_national_code]".into(),
            BETA_NATIONAL.into(),
        ),
        ("attribute[full_name]".into(), BETA_NAME.into()),
        ("attribute[postal_code]".into(), "8173653111".into()),
        ("attribute[address]".into(), BETA_ADDRESS.into()),
        ("description".into(), BETA_DESCRIPTION.into()),
        ("idempotency_key".into(), BETA_IDEM[2].into()),
    ];
    let parts: Vec<String> = names.iter().map(|n| format!("attribute[{n}]")).collect();
    let o311_files: Vec<(&str, &str, &[u8])> = parts
        .iter()
        .map(|n| (n.as_str(), BETA_FILE_NAME, beta_pdf.as_slice()))
        .collect();
    let filed = app
        .post_multipart_files(
            "",
            BETA,
            "/open311/v2/requests.json",
            &pairs(&o311),
            &o311_files,
        )
        .await;
    assert_eq!(filed.status, StatusCode::CREATED, "{}", filed.text);
    let filed: Value = serde_json::from_str(&filed.text).unwrap();
    let r3 = filed[0]["service_request_id"].as_str().unwrap().to_owned();

    // Alpha: its admin, its citizen with a request (accepted), a key with every scope, and a
    // citizen who uses the same mobile number as beta's citizen.
    let sa = app.staff_sign_in(alpha, "admin-alpha").await;
    let ca = app.citizen_sign_in(alpha, ALPHA, ALPHA_MOBILE).await;
    let alpha_pdf = pdf("ALPHA-OWN-FILE");
    let alpha_files: Vec<(&str, &str, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), "alpha.pdf", alpha_pdf.as_slice()))
        .collect();
    let ra = tracking_of(
        &crate::requests::submit(
            app,
            &ca,
            ALPHA,
            &base_code,
            &alpha_form("alpha-idem-key-000001"),
            &alpha_files,
        )
        .await,
    );
    let sa_csrf = app.get_as(&sa, ALPHA, "/staff/settings").await.csrf();
    staff_post(
        app,
        &sa,
        ALPHA,
        &act(&ra),
        &[("csrf", &sa_csrf), ("action", "accept")],
    )
    .await;
    let alpha_key = make_key(
        app,
        alpha,
        &[
            "requests:submit",
            "requests:read",
            "requests:act",
            "reports:read",
        ],
        Some("department_head"),
    )
    .await;
    // Pending sign-in codes for beta's mobile on both hosts: beta's must not open alpha.
    let res = app
        .post_form(None, ALPHA, "/sign-in", &[("mobile", BETA_MOBILE)])
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let res = app
        .post_form(None, BETA, "/sign-in", &[("mobile", BETA_MOBILE)])
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let beta_code = app.last_sign_in_code(beta, BETA_MOBILE).await;
    let ca_csrf = app.get_as(&ca, ALPHA, "/my-requests").await.csrf();
    let alpha_link = app.staff_sign_in_path(alpha, "admin-alpha").await;
    let beta_link = app.staff_sign_in_path(beta, "admin-beta").await;
    let beta_invite = {
        let mut tx = app.tx(beta).await;
        let host = desk_core::Hostname::parse("beta.test").unwrap();
        let urls = desk_core::PublicUrls {
            scheme: "http".into(),
            port: None,
        };
        let link = desk_db::staff::issue_invitation(&mut tx, clerk, &host, &urls)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        link.trim_start_matches("http://beta.test").to_owned()
    };

    // Ids: the attacks aim at ids that exist only in beta, so a hit could only be beta's.
    let r1_files = ids(app, beta, &files_of(&r1)).await;
    let r2_files = ids(app, beta, &files_of(&r2)).await;
    let alpha_files_ids = ids(app, alpha, "select id from request_files").await;
    let beta_files_ids = ids(app, beta, "select id from request_files").await;
    let beta_only_files = only_in(&beta_files_ids, &alpha_files_ids, "file");
    let beta_only_keys = only_in(
        &ids(app, beta, "select id from api_keys").await,
        &ids(app, alpha, "select id from api_keys").await,
        "API key",
    );
    let alpha_max = |sql: &'static str| async move { ids(app, alpha, sql).await };
    for (what, sql, id) in [
        ("appointment", "select id from appointments", appointment),
        ("staff", "select id from staff", clerk),
        ("unit", "select id from units", unit),
        ("desk hours", "select id from desk_hours", desk_hours),
        ("sms account", "select id from sms_accounts", sms_account),
        ("sms test", "select id from sms_test_sends", sms_test),
        ("request", "select id from requests", r2_id),
    ] {
        assert!(
            !alpha_max(sql).await.contains(&id),
            "alpha also has {what} {id}"
        );
    }
    let notification = scalar(app, beta, "select max(id) from notifications").await;
    assert!(
        notification > scalar(app, alpha, "select max(id) from notifications").await,
        "beta's newest notification id also exists in alpha"
    );
    // Refreshed indicators of beta's, which alpha's refresh must leave alone.
    desk_jobs::refresh_indicators::refresh(platform, beta.id)
        .await
        .unwrap();

    Fixture {
        base_code,
        docs,
        r1,
        r2,
        r2_id,
        r3,
        ra,
        r1_files,
        r2_files,
        beta_only_files,
        appointment,
        clerk,
        unit,
        desk_hours,
        sms_account,
        sms_test,
        notification,
        question,
        holiday,
        survey_token,
        beta_only_keys,
        alpha_key,
        beta_keys,
        sa,
        sa_csrf,
        ca,
        ca_csrf,
        cm: String::new(),
        cm_csrf: String::new(),
        sb,
        cb,
        alpha_link,
        beta_link,
        beta_invite,
        beta_code,
        tomorrow: tomorrow.to_string(),
    }
}

/// Beta's secrets as pages and APIs would spell them.
fn secrets(f: &Fixture) -> Vec<Secret> {
    let mut s = vec![
        Secret::digits("tracking code (open request)", &f.r1, 4),
        Secret::digits("tracking code (closed request)", &f.r2, 4),
        Secret::digits("tracking code (Open311 request)", &f.r3, 4),
        Secret::digits("citizen's mobile", &BETA_MOBILE[1..], 3),
        Secret::digits("clerk's mobile", &BETA_CLERK_MOBILE[3..], 3),
        Secret::digits("applicant's national code", BETA_NATIONAL, 5),
        Secret::text("applicant's name", BETA_NAME),
        Secret::text("applicant's address", BETA_ADDRESS),
        Secret::text("request description", BETA_DESCRIPTION),
        Secret::text("staff note", BETA_NOTE),
        Secret::text("file contents", BETA_FILE_MARK),
        Secret::text("file name", "betadeedsecret"),
        Secret::text("own service's title", BETA_SERVICE_TITLE),
        Secret::text("own service's code", BETA_SERVICE),
        Secret::text("unit", BETA_UNIT),
        Secret::text("clerk's username", BETA_CLERK),
        Secret::text("clerk's name", BETA_CLERK_NAME),
        Secret::text("survey question", BETA_QUESTION),
        Secret::text("holiday", BETA_HOLIDAY),
        Secret::text("logo", BETA_LOGO_MARK),
        Secret::text("SMS credentials", BETA_SMS_SECRET),
        Secret::text("survey link token", &f.survey_token),
        Secret::text(
            "staff sign-in token",
            f.beta_link.trim_start_matches("/staff/sign-in/"),
        ),
        Secret::text(
            "staff invitation token",
            f.beta_invite.trim_start_matches("/staff/welcome/"),
        ),
    ];
    for (i, idem) in BETA_IDEM.iter().enumerate() {
        s.push(Secret::text(format!("idempotency key {}", i + 1), idem));
    }
    for (i, k) in f.beta_keys.iter().enumerate() {
        s.push(Secret {
            label: format!("API key {}", i + 1),
            variants: vec![k.clone(), k[..12].to_owned()],
        });
    }
    s
}

/// Proof that the markers are real: beta's own credentials on beta's host show them.
async fn controls(app: &TestApp, f: &Fixture) {
    let page = app
        .get_as(&f.cb, BETA, &format!("/requests/{}", f.r1))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains(BETA_NAME) && page.text.contains(BETA_ADDRESS));
    let (status, _, bytes) = app
        .get_bytes_as(
            &f.cb,
            BETA,
            &format!("/requests/{}/files/{}", f.r1, f.r1_files[0]),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(String::from_utf8_lossy(&bytes).contains(BETA_FILE_MARK));
    let staff = app
        .get_as(&f.sb, BETA, &format!("/staff/requests/{}", f.r1))
        .await;
    for mark in [BETA_NAME, BETA_CLERK_NAME, BETA_UNIT, BETA_NOTE] {
        assert!(staff.text.contains(mark), "beta's staff page lacks {mark}");
    }
    let settings = app.get_as(&f.sb, BETA, "/staff/settings").await;
    assert!(settings.text.contains(BETA_UNIT) && settings.text.contains(BETA_CLERK_NAME));
    let keys = app.get_as(&f.sb, BETA, "/staff/api-keys").await;
    assert!(keys.text.contains(&f.beta_keys[0][..12]));
    let list = app
        .send(
            "POST",
            BETA,
            "/graphql",
            Some(
                &json!({ "query": "{ requests(first: 100) { edges { node { trackingCode nationalCode applicantName } } } }" })
                    .to_string(),
            ),
            &[
                ("content-type", "application/json"),
                ("authorization", &format!("Bearer {}", f.beta_keys[0])),
            ],
        )
        .await;
    assert!(
        list.text.contains(&f.r1) && list.text.contains(BETA_NATIONAL),
        "{}",
        list.text
    );
    let survey = app.get(BETA, &format!("/survey/{}", f.survey_token)).await;
    assert_eq!(survey.status, StatusCode::OK);
    assert!(survey.text.contains(BETA_QUESTION), "{}", survey.text);
    let (_, _, logo) = app.get_bytes(BETA, "/theme/logo").await;
    assert!(String::from_utf8_lossy(&logo).contains(BETA_LOGO_MARK));
    let token = app
        .get(
            BETA,
            &format!(
                "/open311/v2/tokens/{}.json?api_key={}",
                BETA_IDEM[0], f.beta_keys[0]
            ),
        )
        .await;
    assert!(token.text.contains(&f.r1), "{}", token.text);
    let service = app.get(BETA, &format!("/services/{BETA_SERVICE}")).await;
    assert!(service.text.contains(BETA_SERVICE_TITLE));
}

/// The survey answer a form would send (every national axis, plus beta's own question).
fn survey_answer(question: &str) -> Vec<(String, String)> {
    let mut a: Vec<(String, String)> = desk_core::survey::AXES
        .iter()
        .map(|a| (format!("q_{}", a.key), "5".to_owned()))
        .collect();
    a.push((format!("q_{question}"), "5".to_owned()));
    a.push(("comment".to_owned(), "عالی".to_owned()));
    a
}

fn pairs(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Family 1, the staff portal: alpha's admin on beta's host, and beta's ids on alpha's host.
async fn staff_portal(s: &mut Suite<'_>, f: &Fixture) {
    s.family = "staff portal";
    let generic = [
        "/staff".to_owned(),
        "/staff/inbox".to_owned(),
        "/staff/inbox?scope=all".to_owned(),
        "/staff/inbox?state=awaiting_documents".to_owned(),
        format!("/staff/appointments?day={}", f.tomorrow),
        "/staff/desk".to_owned(),
        format!("/staff/desk/{BETA_SERVICE}"),
        "/staff/api-keys".to_owned(),
        "/staff/settings".to_owned(),
        "/staff/settings/survey".to_owned(),
        "/staff/reports".to_owned(),
        "/staff/reports.csv".to_owned(),
        "/staff/catalog".to_owned(),
        format!("/staff/catalog/{BETA_SERVICE}"),
    ];
    for path in &generic {
        s.hit(
            "alpha's admin cookie on beta's host",
            Req::get(BETA, path.as_str()).cookie(&f.sa),
            Expect::Denied,
        )
        .await;
    }
    for (t, file) in [(&f.r1, f.r1_files[0]), (&f.r2, f.r2_files[0])] {
        for path in [
            format!("/staff/requests/{t}"),
            format!("/staff/requests/{t}/files/{file}"),
            format!("/staff/requests/{t}/survey"),
        ] {
            s.hit(
                "alpha's admin cookie on beta's host, beta's request",
                Req::get(BETA, path).cookie(&f.sa),
                Expect::Denied,
            )
            .await;
        }
    }

    // Alpha's host: alpha's own pages may answer, but carry nothing of beta's.
    for path in generic.iter().filter(|p| !p.contains(BETA_SERVICE)) {
        s.hit(
            "alpha's admin, alpha's own page",
            Req::get(ALPHA, path.as_str()).cookie(&f.sa),
            Expect::Clean,
        )
        .await;
    }
    let today = desk_core::calendar::today_in_iran();
    for period in [Period::month_of(today).key(), Period::half_of(today).key()] {
        for path in ["/staff/reports", "/staff/reports.csv"] {
            s.hit(
                "alpha's report",
                Req::get(ALPHA, format!("{path}?period={period}")).cookie(&f.sa),
                Expect::Clean,
            )
            .await;
        }
    }
    for path in [
        format!("/staff/desk/{BETA_SERVICE}"),
        format!("/staff/catalog/{BETA_SERVICE}"),
    ] {
        s.hit(
            "beta's own service on alpha's host",
            Req::get(ALPHA, path).cookie(&f.sa),
            Expect::Denied,
        )
        .await;
    }
    for t in [&f.r1, &f.r2] {
        for path in [
            format!("/staff/requests/{t}"),
            format!("/staff/requests/{t}/survey"),
            format!("/staff/requests/{t}/receipt"),
            format!("/staff/requests/{t}/receipt?layout=narrow"),
            format!("/staff/requests/{t}/letter"),
        ] {
            s.hit(
                "beta's tracking code on alpha's host",
                Req::get(ALPHA, path).cookie(&f.sa),
                Expect::Denied,
            )
            .await;
        }
    }
    for (t, files) in [(&f.r1, &f.r1_files), (&f.r2, &f.r2_files)] {
        for id in files {
            s.hit(
                "download of beta's file on alpha's host",
                Req::get(ALPHA, format!("/staff/requests/{t}/files/{id}")).cookie(&f.sa),
                Expect::Denied,
            )
            .await;
        }
    }
    for id in &f.beta_only_files {
        s.hit(
            "beta's file id under alpha's own request",
            Req::get(ALPHA, format!("/staff/requests/{}/files/{id}", f.ra)).cookie(&f.sa),
            Expect::Denied,
        )
        .await;
    }

    // Writes with a valid CSRF token of alpha's session, on alpha's host then beta's.
    let csrf = f.sa_csrf.as_str();
    let unit = f.unit.to_string();
    let clerk = f.clerk.to_string();
    for host in [ALPHA, BETA] {
        for t in [&f.r1, &f.r2] {
            for action in ACTIONS {
                let mut fields = vec![("csrf", csrf), ("action", action), ("note", "x")];
                if action == "forward" {
                    fields.push(("unit_id", &unit));
                }
                s.hit(
                    format!("act {action} on beta's request"),
                    Req::post(host, format!("/staff/requests/{t}/act"))
                        .cookie(&f.sa)
                        .form(&fields),
                    Expect::Denied,
                )
                .await;
            }
            for to in ["", clerk.as_str()] {
                s.hit(
                    "assign beta's request",
                    Req::post(host, format!("/staff/requests/{t}/assign"))
                        .cookie(&f.sa)
                        .form(&[("csrf", csrf), ("staff_id", to)]),
                    Expect::Denied,
                )
                .await;
            }
            let answer = survey_answer(&f.question);
            let mut fields = pairs(&answer);
            fields.push(("csrf", csrf));
            s.hit(
                "record a desk survey answer for beta's request",
                Req::post(host, format!("/staff/requests/{t}/survey"))
                    .cookie(&f.sa)
                    .form(&fields),
                Expect::Denied,
            )
            .await;
        }
        let alpha_pdf = pdf("ALPHA-ATTACK");
        s.hit(
            "desk registration on beta's own service",
            Req::post(host, format!("/staff/desk/{BETA_SERVICE}"))
                .cookie(&f.sa)
                .multipart(
                    &[
                        ("csrf", csrf),
                        ("citizen_mobile", BETA_MOBILE),
                        ("applicant_national_code", BETA_NATIONAL),
                        ("full_name", "مهاجم"),
                        ("address", "اصفهان"),
                    ],
                    &[("doc_1", "a.pdf", alpha_pdf.as_slice())],
                ),
            Expect::Denied,
        )
        .await;
        for id in &f.beta_only_keys {
            s.hit(
                "revoke beta's API key",
                Req::post(host, format!("/staff/api-keys/{id}/revoke"))
                    .cookie(&f.sa)
                    .form(&[("csrf", csrf)]),
                Expect::Denied,
            )
            .await;
        }
        s.hit(
            "mark beta's appointment arrived",
            Req::post(
                host,
                format!("/staff/appointments/{}/arrived", f.appointment),
            )
            .cookie(&f.sa)
            .form(&[("csrf", csrf)]),
            Expect::Denied,
        )
        .await;
        // On alpha's host this deletes alpha's rows of that id (none: a no-op that answers
        // like a success); beta's row must survive, which the state check sees.
        s.hit(
            "delete beta's desk hours",
            Req::post(host, "/staff/settings/desk-hours")
                .cookie(&f.sa)
                .form(&[
                    ("csrf", csrf),
                    ("op", "delete"),
                    ("id", &f.desk_hours.to_string()),
                ]),
            if host == ALPHA {
                Expect::Clean
            } else {
                Expect::Denied
            },
        )
        .await;
        for staff_id in [clerk.as_str(), "1"] {
            s.hit(
                "put staff into beta's unit",
                Req::post(host, "/staff/settings/staff-unit")
                    .cookie(&f.sa)
                    .form(&[("csrf", csrf), ("staff_id", staff_id), ("unit_id", &unit)]),
                Expect::Denied,
            )
            .await;
        }
        s.hit(
            "test-send through beta's SMS account",
            Req::post(host, format!("/staff/settings/sms/{}/test", f.sms_account))
                .cookie(&f.sa)
                .form(&[("csrf", csrf), ("to", ALPHA_MOBILE)]),
            Expect::Denied,
        )
        .await;
        for op in ["delete", "disable"] {
            s.hit(
                format!("{op} beta's SMS account"),
                Req::post(host, format!("/staff/settings/sms/{}", f.sms_account))
                    .cookie(&f.sa)
                    .form(&[("csrf", csrf), ("op", op)]),
                Expect::Denied,
            )
            .await;
        }
        for op in ["hide", "show"] {
            s.hit(
                format!("{op} beta's own survey question"),
                Req::post(host, "/staff/settings/survey")
                    .cookie(&f.sa)
                    .form(&[("csrf", csrf), ("op", op), ("key", &f.question)]),
                Expect::Denied,
            )
            .await;
        }
        for op in ["publish", "hide", "save"] {
            s.hit(
                format!("{op} beta's own service card"),
                Req::post(host, format!("/staff/catalog/{BETA_SERVICE}"))
                    .cookie(&f.sa)
                    .form(&[
                        ("csrf", csrf),
                        ("op", op),
                        ("title_fa", "ربوده"),
                        ("duration_days", "3"),
                    ]),
                Expect::Denied,
            )
            .await;
        }
    }
    // Alpha's own request pointed at beta's clerk and unit.
    s.hit(
        "assign alpha's request to beta's clerk id",
        Req::post(ALPHA, format!("/staff/requests/{}/assign", f.ra))
            .cookie(&f.sa)
            .form(&[("csrf", csrf), ("staff_id", &clerk)]),
        Expect::Denied,
    )
    .await;
    s.hit(
        "forward alpha's request to beta's unit id",
        Req::post(ALPHA, format!("/staff/requests/{}/act", f.ra))
            .cookie(&f.sa)
            .form(&[
                ("csrf", csrf),
                ("action", "forward"),
                ("note", "x"),
                ("unit_id", &unit),
            ]),
        Expect::Denied,
    )
    .await;
    // Deleting beta's holiday date on alpha's host deletes alpha's (none) only.
    s.hit(
        "delete the day of beta's holiday",
        Req::post(ALPHA, "/staff/settings/holidays")
            .cookie(&f.sa)
            .form(&[
                ("csrf", csrf),
                ("op", "delete"),
                ("day", &f.holiday.to_string()),
            ]),
        Expect::Clean,
    )
    .await;
    // Beta's host: alpha's admin may change no setting of beta's.
    for (path, fields) in [
        ("/staff/settings/theme", vec![("brand", "#000000")]),
        ("/staff/settings/contact", vec![("phone", "03100000000")]),
        ("/staff/settings/work-week", vec![("off_5", "on")]),
        (
            "/staff/settings/holidays",
            vec![("op", "delete"), ("day", "")],
        ),
        ("/staff/settings/units", vec![("name", "واحد نفوذی")]),
        (
            "/staff/settings/sms",
            vec![("op", "add"), ("provider", "kavenegar"), ("api_key", "x")],
        ),
        (
            "/staff/settings/survey",
            vec![("op", "add"), ("label_fa", "پرسش نفوذی؟")],
        ),
        (
            "/staff/api-keys",
            vec![("name", "نفوذی"), ("scope", "requests:read")],
        ),
        (
            "/staff/catalog",
            vec![
                ("code", "EVIL-001"),
                ("title_fa", "نفوذی"),
                ("category", "urban"),
                ("duration_days", "1"),
            ],
        ),
        ("/staff/sign-out", vec![]),
    ] {
        let mut all = vec![("csrf", csrf)];
        let holiday = f.holiday.to_string();
        all.extend(fields.into_iter().map(|(k, v)| {
            if k == "day" {
                (k, holiday.as_str())
            } else {
                (k, v)
            }
        }));
        s.hit(
            "alpha's admin changes beta's settings",
            Req::post(BETA, path).cookie(&f.sa).form(&all),
            Expect::Denied,
        )
        .await;
    }
}

/// Family 2, the citizen portal: alpha's citizens (one with beta's citizen's mobile number).
/// The staff team's surfaces: beta's member ids from alpha's admin, beta's invitation on
/// alpha's host and beta's own with a forged origin, alpha's session on beta's team pages, and
/// beta's member names typed as usernames on alpha's sign-in.
async fn team_surfaces(s: &mut Suite<'_>, f: &Fixture) {
    s.family = "staff team";
    let clerk = f.clerk.to_string();
    for path in [
        format!("/staff/team/{clerk}"),
        format!("/staff/team/{clerk}/deactivate"),
        format!("/staff/team/{clerk}/reactivate"),
        format!("/staff/team/{clerk}/invite"),
    ] {
        for host in [ALPHA, BETA] {
            s.hit(
                "alpha's admin on beta's member id",
                Req::post(host, path.as_str()).cookie(&f.sa).form(&[
                    ("csrf", &f.sa_csrf),
                    ("role", "tenant_admin"),
                    ("unit_id", ""),
                ]),
                Expect::Denied,
            )
            .await;
        }
    }
    for path in [
        "/staff/team",
        "/staff/activity",
        "/staff/activity.csv",
        "/staff/activity?actor=beta-clerk-kambiz",
        "/staff/account",
    ] {
        s.hit(
            "alpha's admin cookie on beta's team pages",
            Req::get(BETA, path).cookie(&f.sa),
            Expect::Denied,
        )
        .await;
        s.hit(
            "alpha's own team pages",
            Req::get(ALPHA, path).cookie(&f.sa),
            Expect::Clean,
        )
        .await;
    }
    // Beta's invitation: worthless on alpha's host, and beta's own host refuses it from a
    // sibling's page.
    s.hit(
        "beta's invitation on alpha's host",
        Req::get(ALPHA, f.beta_invite.as_str()),
        Expect::Denied,
    )
    .await;
    s.hit(
        "beta's invitation accepted on alpha's host",
        Req::post(ALPHA, f.beta_invite.as_str()).form(&[
            ("password", "a-long-enough-passphrase"),
            ("password_confirm", "a-long-enough-passphrase"),
            ("csrf", "x"),
        ]),
        Expect::Refused,
    )
    .await;
    s.hit(
        "beta's invitation posted from alpha's origin",
        Req::post(BETA, f.beta_invite.as_str())
            .header("origin", "http://alpha.test")
            .header("sec-fetch-site", "same-site")
            .form(&[
                ("password", "a-long-enough-passphrase"),
                ("password_confirm", "a-long-enough-passphrase"),
                ("csrf", "x"),
            ]),
        Expect::Refused,
    )
    .await;
    // Beta's clerk's username on alpha's sign-in and password reset: nobody there.
    for path in ["/staff/sign-in", "/staff/forgot"] {
        s.hit(
            "beta's clerk's username on alpha's host",
            Req::post(ALPHA, path).form(&[
                ("username", BETA_CLERK),
                ("password", "anything-at-all-1"),
                ("csrf", "x"),
            ]),
            Expect::Refused,
        )
        .await;
    }
    // Beta's session id (the hash of its token) revoked from alpha's account page.
    let beta_token = f.sb.split_once('=').map_or(f.sb.as_str(), |(_, v)| v);
    let beta_session_id: String = {
        use sha2::Digest;
        sha2::Sha256::digest(beta_token.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    };
    s.hit(
        "beta's session id revoked by alpha's admin",
        Req::post(
            ALPHA,
            format!("/staff/account/sessions/{beta_session_id}/revoke"),
        )
        .cookie(&f.sa)
        .form(&[("csrf", &f.sa_csrf)]),
        Expect::Denied,
    )
    .await;
}

async fn citizen_portal(s: &mut Suite<'_>, f: &Fixture) {
    s.family = "citizen portal";
    let alpha_pdf = pdf("ALPHA-CITIZEN");
    for (who, cookie, csrf, known) in [
        ("alpha's citizen", &f.ca, &f.ca_csrf, &[][..]),
        (
            "alpha's citizen with beta's mobile",
            &f.cm,
            &f.cm_csrf,
            &[BETA_MOBILE][..],
        ),
    ] {
        for host in [BETA, ALPHA] {
            for (t, files) in [(&f.r1, &f.r1_files), (&f.r2, &f.r2_files)] {
                for path in [
                    format!("/requests/{t}"),
                    format!("/requests/{t}/receipt"),
                    format!("/requests/{t}/letter"),
                ] {
                    s.hit_knowing(
                        format!("{who}: beta's request, receipt or letter"),
                        Req::get(host, path).cookie(cookie),
                        Expect::Denied,
                        known,
                    )
                    .await;
                }
                let which: &[i64] = if host == ALPHA { files } else { &files[..1] };
                for id in which {
                    s.hit_knowing(
                        format!("{who}: beta's file"),
                        Req::get(host, format!("/requests/{t}/files/{id}")).cookie(cookie),
                        Expect::Denied,
                        known,
                    )
                    .await;
                }
            }
            s.hit_knowing(
                format!("{who}: add documents to beta's request"),
                Req::post(host, format!("/requests/{}/documents", f.r1))
                    .cookie(cookie)
                    .multipart(
                        &[("csrf", csrf.as_str()), ("note", "مدارک")],
                        &[("doc_1", "a.pdf", alpha_pdf.as_slice())],
                    ),
                Expect::Denied,
                known,
            )
            .await;
            s.hit_knowing(
                format!("{who}: cancel beta's appointment"),
                Req::post(host, format!("/appointments/{}/cancel", f.appointment))
                    .cookie(cookie)
                    .form(&[("csrf", csrf.as_str())]),
                Expect::Denied,
                known,
            )
            .await;
            let own = if host == ALPHA {
                Expect::Clean
            } else {
                Expect::Denied
            };
            s.hit_knowing(
                format!("{who}: my requests"),
                Req::get(host, "/my-requests").cookie(cookie),
                own,
                known,
            )
            .await;
            let own = if host == ALPHA {
                Expect::Clean
            } else {
                Expect::Denied
            };
            s.hit_knowing(
                format!("{who}: my appointments"),
                Req::get(host, "/my-appointments").cookie(cookie),
                own,
                known,
            )
            .await;
        }
        for path in [
            format!("/services/{}/apply", f.base_code),
            format!("/services/{}/appointments", f.base_code),
        ] {
            s.hit_knowing(
                format!("{who}: a form on beta's host"),
                Req::get(BETA, path).cookie(cookie),
                Expect::Denied,
                known,
            )
            .await;
        }
        s.hit_knowing(
            format!("{who}: sign out on beta's host"),
            Req::post(BETA, "/sign-out")
                .cookie(cookie)
                .form(&[("csrf", csrf.as_str())]),
            Expect::Denied,
            known,
        )
        .await;
    }
    for id in &f.beta_only_files {
        s.hit(
            "beta's file id under alpha's own request",
            Req::get(ALPHA, format!("/requests/{}/files/{id}", f.ra)).cookie(&f.ca),
            Expect::Denied,
        )
        .await;
    }
    for path in [
        format!("/services/{BETA_SERVICE}/apply"),
        format!("/services/{BETA_SERVICE}/appointments"),
    ] {
        s.hit(
            "beta's own service on alpha's host",
            Req::get(ALPHA, path).cookie(&f.ca),
            Expect::Denied,
        )
        .await;
    }
}

/// Family 3, public pages: lookups, survey links, sign-in links and codes, public pages.
async fn public_pages(s: &mut Suite<'_>, f: &Fixture) {
    s.family = "public pages";
    for t in [&f.r1, &f.r2] {
        let grouped = TrackingCode::parse(t).unwrap().grouped_fa();
        for code in [t.clone(), grouped] {
            for mobile in [
                BETA_MOBILE,
                BETA_MOBILE_CANON,
                "۰۹۳۵۱۱۱۲۲۳۳",
                "9351112233",
                "0935 111 2233",
            ] {
                s.hit(
                    "track beta's request on alpha's host",
                    Req::post(ALPHA, "/track")
                        .form(&[("tracking_code", &code), ("mobile", mobile)]),
                    Expect::Denied,
                )
                .await;
            }
        }
    }
    s.hit(
        "track on the platform host",
        Req::post(PORTAL, "/track").form(&[("tracking_code", &f.r1), ("mobile", BETA_MOBILE)]),
        Expect::Denied,
    )
    .await;
    let answer = survey_answer(&f.question);
    for token in [f.survey_token.clone(), f.survey_token.to_uppercase()] {
        for host in [ALPHA, PORTAL] {
            s.hit(
                "beta's survey link on another host",
                Req::get(host, format!("/survey/{token}")),
                Expect::Denied,
            )
            .await;
            s.hit(
                "answer beta's survey on another host",
                Req::post(host, format!("/survey/{token}")).form(&pairs(&answer)),
                Expect::Denied,
            )
            .await;
        }
    }
    for path in [
        format!("/services/{BETA_SERVICE}"),
        format!("/open311/v2/services/{BETA_SERVICE}.json"),
        format!("/services/{BETA_SERVICE}/apply"),
    ] {
        s.hit(
            "beta's own service on alpha's host",
            Req::get(ALPHA, path),
            Expect::Denied,
        )
        .await;
    }
    for path in [
        "/",
        "/services",
        "/services?q=%D8%A8%D8%AA%D8%A7",
        "/theme/logo",
        "/faq",
        "/charter",
        "/sla",
        "/track",
    ] {
        s.hit("alpha's public page", Req::get(ALPHA, path), Expect::Clean)
            .await;
    }
    // One-time staff sign-in links work only on their own host.
    s.hit(
        "beta's sign-in link shown on alpha's host",
        Req::get(ALPHA, f.beta_link.as_str()),
        Expect::Clean,
    )
    .await;
    for (host, link) in [
        (ALPHA, &f.beta_link),
        (PORTAL, &f.beta_link),
        (BETA, &f.alpha_link),
    ] {
        s.hit(
            "use a sign-in link on another host",
            Req::post(host, link.as_str()),
            Expect::Refused,
        )
        .await;
    }
    // A sign-in code sent by beta does not open alpha (which has a code pending too), nor the
    // other way round.
    s.hit(
        "beta's sign-in code on alpha's host",
        Req::post(ALPHA, "/sign-in/code").form(&[
            ("mobile", BETA_MOBILE),
            ("code", &f.beta_code),
            ("next", "/my-requests"),
        ]),
        Expect::Refused,
    )
    .await;
}

const REQUEST: &str = "query($t: String!, $m: String!) { request(trackingCode: $t, mobile: $m) { trackingCode serviceTitle state timeline { note } } }";
const LIST: &str = "query($s: String) { requests(first: 100, state: $s) { edges { node { trackingCode applicantName nationalCode mobile form unit assignee } } } }";
const CHANGES: &str = "query($a: String) { requestChanges(first: 200, after: $a) { edges { node { trackingCode applicantName mobile form } } } }";
const TRANSITION: &str = "mutation($t: String!, $a: String!, $n: String, $u: Int) { transitionRequest(trackingCode: $t, action: $a, note: $n, unitId: $u) { trackingCode state timeline { note } } }";
const REPORT: &str = "query($p: String!) { report(period: $p) { total { requests closed } byService { key label tally { requests } } byUnit { key label tally { requests } } } }";
const SUBMIT: &str =
    "mutation($i: SubmitRequestInput!) { submitRequest(input: $i) { trackingCode replayed } }";

/// Family 4, the tenant GraphQL API.
async fn graphql(s: &mut Suite<'_>, f: &Fixture, alpha: &Tenant) {
    s.family = "GraphQL";
    let ak = Some(f.alpha_key.as_str());
    let bk = Some(f.beta_keys[0].as_str());
    let bact = Some(f.beta_keys[2].as_str());
    for t in [&f.r1, &f.r2] {
        for (who, key, mobile) in [
            ("no key", None, BETA_MOBILE),
            ("no key", None, BETA_MOBILE_CANON),
            ("alpha's key", ak, BETA_MOBILE),
            ("beta's key", bk, BETA_MOBILE),
        ] {
            s.hit(
                format!("request(): beta's tracking code and mobile, {who}"),
                gql(ALPHA, key, REQUEST, json!({ "t": t, "m": mobile })),
                Expect::NoData("request"),
            )
            .await;
        }
    }
    let both = format!(
        "{{ a: request(trackingCode: \"{}\", mobile: \"{BETA_MOBILE}\") {{ trackingCode }} b: request(trackingCode: \"{}\", mobile: \"{BETA_MOBILE}\") {{ trackingCode }} }}",
        f.r1, f.r2
    );
    s.hit(
        "aliased lookups of both beta requests",
        gql(ALPHA, ak, &both, json!({})),
        Expect::Check(Box::new(|res| {
            let v: Value = serde_json::from_str(&res.text).unwrap_or(Value::Null);
            if v["data"]["a"].is_null() && v["data"]["b"].is_null() {
                Ok(())
            } else {
                Err(format!("aliased lookups answered: {}", v["data"]))
            }
        })),
    )
    .await;
    // Alpha's key lists alpha's requests only.
    for state in [Value::Null, json!("awaiting_documents"), json!("delivered")] {
        s.hit(
            "requests() with alpha's key",
            gql(ALPHA, ak, LIST, json!({ "s": state })),
            Expect::Answered("requests"),
        )
        .await;
    }
    for after in [Value::Null, json!("2000-01-01T00:00:00Z|0")] {
        s.hit(
            "requestChanges() with alpha's key",
            gql(ALPHA, ak, CHANGES, json!({ "a": after })),
            Expect::Answered("requestChanges"),
        )
        .await;
    }
    for (who, key) in [("beta's key", bk), ("no key", None)] {
        s.hit(
            format!("requests() with {who}"),
            gql(ALPHA, key, LIST, json!({})),
            Expect::NoData("requests"),
        )
        .await;
        s.hit(
            format!("requestChanges() with {who}"),
            gql(ALPHA, key, CHANGES, json!({})),
            Expect::NoData("requestChanges"),
        )
        .await;
    }
    let unit = f.unit;
    for t in [&f.r1, &f.r2] {
        for action in ACTIONS {
            s.hit(
                format!("transitionRequest({action}) on beta's request with alpha's key"),
                gql(
                    ALPHA,
                    ak,
                    TRANSITION,
                    json!({ "t": t, "a": action, "n": "x", "u": unit }),
                ),
                Expect::NoData("transitionRequest"),
            )
            .await;
        }
        for action in ["accept", "reject"] {
            s.hit(
                format!("transitionRequest({action}) with beta's acting key on alpha's host"),
                gql(
                    ALPHA,
                    bact,
                    TRANSITION,
                    json!({ "t": t, "a": action, "n": "x" }),
                ),
                Expect::NoData("transitionRequest"),
            )
            .await;
        }
    }
    s.hit(
        "forward alpha's request to beta's unit id",
        gql(
            ALPHA,
            ak,
            TRANSITION,
            json!({ "t": f.ra, "a": "forward", "n": "x", "u": unit }),
        ),
        Expect::NoData("transitionRequest"),
    )
    .await;
    // Reports count alpha's requests only.
    let today = desk_core::calendar::today_in_iran();
    for period in [Period::month_of(today), Period::half_of(today)] {
        let (from, to) = period.days().unwrap();
        let expected = scalar(
            s.app,
            alpha,
            &format!(
                "select count(*) from requests where submitted_on between '{from}' and '{to}'"
            ),
        )
        .await;
        s.hit(
            format!("report({}) with alpha's key", period.key()),
            gql(ALPHA, ak, REPORT, json!({ "p": period.key() })),
            Expect::Check(Box::new(move |res| {
                let v: Value = serde_json::from_str(&res.text).map_err(|e| e.to_string())?;
                let got = v["data"]["report"]["total"]["requests"].as_i64();
                if got == Some(expected) {
                    Ok(())
                } else {
                    Err(format!(
                        "alpha's report counts {got:?} requests; alpha has {expected}: {v}"
                    ))
                }
            })),
        )
        .await;
        for (who, key) in [("beta's key", bk), ("no key", None)] {
            s.hit(
                format!("report({}) with {who}", period.key()),
                gql(ALPHA, key, REPORT, json!({ "p": period.key() })),
                Expect::NoData("report"),
            )
            .await;
        }
    }
    // The catalog of alpha's host has no service of beta's.
    s.hit(
        "services() on alpha's host",
        gql(ALPHA, None, "{ services { code title } }", json!({})),
        Expect::Answered("services"),
    )
    .await;
    s.hit(
        "services(search) for beta's service",
        gql(
            ALPHA,
            None,
            "query($q: String) { services(search: $q) { code title } }",
            json!({ "q": "ویژه شهرداری بتا" }),
        ),
        Expect::Answered("services"),
    )
    .await;
    s.hit(
        "service(code) of beta's own service",
        gql(
            ALPHA,
            None,
            "query($c: String!) { service(code: $c) { code title description } }",
            json!({ "c": BETA_SERVICE }),
        ),
        Expect::NoData("service"),
    )
    .await;
    let values = json!({
        "applicant_national_code": "0499370899",
        "full_name": "مهاجم",
        "address": "اصفهان",
    });
    for (what, key, code, idem, expect) in [
        (
            "submitRequest for beta's own service",
            ak,
            BETA_SERVICE,
            "gql-attack-idem-0001",
            Expect::NoData("submitRequest"),
        ),
        (
            "submitRequest with beta's key",
            bk,
            f.base_code.as_str(),
            "gql-attack-idem-0002",
            Expect::NoData("submitRequest"),
        ),
    ] {
        s.hit(
            what,
            gql(
                ALPHA,
                key,
                SUBMIT,
                json!({ "i": { "serviceCode": code, "mobile": ALPHA_MOBILE, "values": values, "idempotencyKey": idem } }),
            ),
            expect,
        )
        .await;
    }
    // Beta's key in every place a key could be looked for.
    let body = json!({ "query": LIST, "variables": {} });
    for (what, req) in [
        (
            "lowercase bearer",
            Req::post(ALPHA, "/graphql")
                .json(&body)
                .header("authorization", format!("bearer {}", f.beta_keys[0])),
        ),
        (
            "key without a scheme",
            Req::post(ALPHA, "/graphql")
                .json(&body)
                .header("authorization", f.beta_keys[0].clone()),
        ),
        (
            "two spaces after Bearer",
            Req::post(ALPHA, "/graphql")
                .json(&body)
                .header("authorization", format!("Bearer  {}", f.beta_keys[0])),
        ),
        (
            "x-api-key header",
            Req::post(ALPHA, "/graphql")
                .json(&body)
                .header("x-api-key", f.beta_keys[0].clone()),
        ),
        (
            "api_key in the query string",
            Req::post(ALPHA, format!("/graphql?api_key={}", f.beta_keys[0])).json(&body),
        ),
        (
            "api_key cookie",
            Req::post(ALPHA, "/graphql")
                .json(&body)
                .cookie(&format!("api_key={}", f.beta_keys[0])),
        ),
        (
            "beta's key then alpha's",
            Req::post(ALPHA, "/graphql")
                .json(&body)
                .bearer(bk)
                .bearer(ak),
        ),
    ] {
        s.hit(
            format!("requests() with beta's key: {what}"),
            req,
            Expect::NoData("requests"),
        )
        .await;
    }
    s.hit(
        "requests() with alpha's key then beta's",
        Req::post(ALPHA, "/graphql")
            .json(&body)
            .bearer(ak)
            .bearer(bk),
        Expect::Clean,
    )
    .await;
    s.hit(
        "GraphiQL with a query and beta's key",
        Req::get(
            ALPHA,
            format!(
                "/graphql?query=%7Brequests%7Bedges%7Bnode%7BtrackingCode%7D%7D%7D%7D&api_key={}",
                f.beta_keys[0]
            ),
        )
        .bearer(bk),
        Expect::Clean,
    )
    .await;
    // Alpha's key on beta's host.
    for (what, query, vars, field) in [
        ("requests()", LIST, json!({}), "requests"),
        ("requestChanges()", CHANGES, json!({}), "requestChanges"),
        (
            "report()",
            REPORT,
            json!({ "p": Period::month_of(today).key() }),
            "report",
        ),
        (
            "transitionRequest()",
            TRANSITION,
            json!({ "t": f.r1, "a": "reject", "n": "x" }),
            "transitionRequest",
        ),
    ] {
        s.hit(
            format!("{what} with alpha's key on beta's host"),
            gql(BETA, ak, query, vars),
            Expect::NoData(field),
        )
        .await;
    }
}

/// Family 5, Open311.
async fn open311(s: &mut Suite<'_>, f: &Fixture) {
    s.family = "Open311";
    let ak = f.alpha_key.as_str();
    let bk = f.beta_keys[0].as_str();
    for t in [&f.r1, &f.r2] {
        for (who, key) in [("alpha's key", ak), ("beta's key", bk), ("no key", "")] {
            s.hit(
                format!("beta's request by id, {who}"),
                Req::get(
                    ALPHA,
                    format!("/open311/v2/requests/{t}.json?api_key={key}"),
                ),
                Expect::Denied,
            )
            .await;
        }
    }
    let empty: fn(&TestResponse) -> Result<(), String> = |res| {
        if res.text.trim() == "[]" || !res.status.is_success() {
            Ok(())
        } else {
            Err(format!("listed: {}", res.text))
        }
    };
    for (what, query) in [
        (
            "beta's ids in service_request_id",
            format!("service_request_id={},{}", f.r1, f.r2),
        ),
        (
            "beta's ids with spaces",
            format!("service_request_id=%20{}%20,%20{}", f.r1, f.r2),
        ),
        ("beta's own service", format!("service_code={BETA_SERVICE}")),
    ] {
        s.hit(
            format!("list with alpha's key: {what}"),
            Req::get(
                ALPHA,
                format!("/open311/v2/requests.json?api_key={ak}&{query}"),
            ),
            Expect::Check(Box::new(empty)),
        )
        .await;
    }
    for query in ["", "&status=open", "&status=closed"] {
        s.hit(
            "list with alpha's key",
            Req::get(
                ALPHA,
                format!("/open311/v2/requests.json?api_key={ak}{query}"),
            ),
            Expect::Clean,
        )
        .await;
    }
    for key in [bk, f.beta_keys[1].as_str()] {
        s.hit(
            "list with beta's key",
            Req::get(ALPHA, format!("/open311/v2/requests.json?api_key={key}")),
            Expect::Denied,
        )
        .await;
    }
    for idem in BETA_IDEM {
        for (who, key) in [("alpha's key", ak), ("beta's key", bk)] {
            s.hit(
                format!("beta's token, {who}"),
                Req::get(
                    ALPHA,
                    format!("/open311/v2/tokens/{idem}.json?api_key={key}"),
                ),
                Expect::Denied,
            )
            .await;
        }
    }
    s.hit(
        "alpha's service list",
        Req::get(ALPHA, "/open311/v2/services.json"),
        Expect::Clean,
    )
    .await;
    let fields = |key: &'static str, value: &str, code: &str, idem: &str| {
        vec![
            (key, value.to_owned()),
            ("service_code", code.to_owned()),
            ("phone", ALPHA_MOBILE.to_owned()),
            (
                "attribute[applicant_national_code]",
                "0499370899".to_owned(),
            ),
            ("attribute[full_name]", "مهاجم".to_owned()),
            ("attribute[address]", "اصفهان".to_owned()),
            ("description", "تلاش".to_owned()),
            ("idempotency_key", idem.to_owned()),
        ]
    };
    let attack_pdf = pdf("ALPHA-OPEN311");
    let base = f.base_code.as_str();
    for (what, path, body) in [
        (
            "POST with beta's key in the query",
            format!("/open311/v2/requests.json?api_key={bk}"),
            fields("x", "", base, "open311-attack-0001"),
        ),
        (
            "POST with beta's key in the body",
            "/open311/v2/requests.json".to_owned(),
            fields("api_key", bk, base, "open311-attack-0002"),
        ),
        (
            "POST with an empty query key and beta's in the body",
            "/open311/v2/requests.json?api_key=".to_owned(),
            fields("api_key", bk, base, "open311-attack-0003"),
        ),
        (
            "POST with alpha's key for beta's own service",
            format!("/open311/v2/requests.json?api_key={ak}"),
            fields("api_key", bk, BETA_SERVICE, "open311-attack-0004"),
        ),
    ] {
        let body: Vec<(&str, &str)> = body.iter().map(|(k, v)| (*k, v.as_str())).collect();
        s.hit(
            format!("{what} (form)"),
            Req::post(ALPHA, path.as_str()).form(&body),
            Expect::Denied,
        )
        .await;
        s.hit(
            format!("{what} (multipart)"),
            Req::post(ALPHA, path.as_str()).multipart(
                &body,
                &[("attribute[doc_1]", "a.pdf", attack_pdf.as_slice())],
            ),
            Expect::Denied,
        )
        .await;
    }
    // Alpha's key on beta's host.
    for path in [
        format!("/open311/v2/requests/{}.json?api_key={ak}", f.r1),
        format!("/open311/v2/requests.json?api_key={ak}"),
        format!("/open311/v2/tokens/{}.json?api_key={ak}", BETA_IDEM[0]),
    ] {
        s.hit(
            "alpha's key on beta's host",
            Req::get(BETA, path),
            Expect::Denied,
        )
        .await;
    }
    let body = fields("x", "", base, "open311-attack-0005");
    let body: Vec<(&str, &str)> = body.iter().map(|(k, v)| (*k, v.as_str())).collect();
    s.hit(
        "POST with alpha's key on beta's host",
        Req::post(BETA, format!("/open311/v2/requests.json?api_key={ak}")).form(&body),
        Expect::Denied,
    )
    .await;
}

/// Family 5b, replayed idempotency keys: they belong to one municipality, so alpha filing
/// under beta's keys (at the desk, through GraphQL, through Open311) gets fresh requests of its
/// own, never a replay of beta's; afterwards the tokens name alpha's requests on alpha's host.
async fn replays(s: &mut Suite<'_>, f: &Fixture) {
    s.family = "replayed idempotency keys";
    let ak = f.alpha_key.as_str();
    let alpha_pdf = pdf("ALPHA-REPLAY");
    let docs: Vec<String> = (1..=f.docs).map(|i| format!("doc_{i}")).collect();
    let files: Vec<(&str, &str, &[u8])> = docs
        .iter()
        .map(|d| (d.as_str(), "a.pdf", alpha_pdf.as_slice()))
        .collect();
    s.hit(
        "desk registration under beta's first key",
        Req::post(ALPHA, format!("/staff/desk/{}", f.base_code))
            .cookie(&f.sa)
            .multipart(
                &[
                    ("csrf", f.sa_csrf.as_str()),
                    ("citizen_mobile", ALPHA_MOBILE),
                    ("applicant_national_code", "0499370899"),
                    ("full_name", "مراجعه حضوری"),
                    ("postal_code", "8173653111"),
                    ("address", "اصفهان"),
                    ("idempotency_key", BETA_IDEM[0]),
                ],
                &files,
            ),
        Expect::Check(Box::new(|res| {
            if res.status == StatusCode::SEE_OTHER {
                Ok(())
            } else {
                Err(format!("alpha's desk filed nothing: {}", res.status))
            }
        })),
    )
    .await;
    let inputs: Vec<Value> = docs
        .iter()
        .map(|d| json!({ "field": d, "file": null }))
        .collect();
    let operations = json!({
        "query": SUBMIT,
        "variables": { "i": {
            "serviceCode": f.base_code,
            "mobile": ALPHA_MOBILE,
            "idempotencyKey": BETA_IDEM[1],
            "values": {
                "applicant_national_code": "0499370899",
                "full_name": "سامانه آلفا",
                "postal_code": "8173653111",
                "address": "اصفهان",
            },
            "files": inputs,
        }},
    });
    let map: serde_json::Map<String, Value> = (0..docs.len())
        .map(|i| {
            (
                i.to_string(),
                json!([format!("variables.i.files.{i}.file")]),
            )
        })
        .collect();
    let numbers: Vec<String> = (0..docs.len()).map(|i| i.to_string()).collect();
    let uploads: Vec<(&str, &str, &[u8])> = numbers
        .iter()
        .map(|n| (n.as_str(), "a.pdf", alpha_pdf.as_slice()))
        .collect();
    s.hit(
        "submitRequest under beta's second key",
        Req::post(ALPHA, "/graphql")
            .multipart(
                &[
                    ("operations", &operations.to_string()),
                    ("map", &Value::Object(map).to_string()),
                ],
                &uploads,
            )
            .bearer(Some(ak)),
        Expect::Check(Box::new(|res| {
            let v: Value = serde_json::from_str(&res.text).unwrap_or(Value::Null);
            let done = &v["data"]["submitRequest"];
            if done["replayed"] == json!(false) && done["trackingCode"].is_string() {
                Ok(())
            } else {
                Err(format!("not a fresh request of alpha's: {}", res.text))
            }
        })),
    )
    .await;
    let parts: Vec<String> = docs.iter().map(|d| format!("attribute[{d}]")).collect();
    let o311_files: Vec<(&str, &str, &[u8])> = parts
        .iter()
        .map(|p| (p.as_str(), "a.pdf", alpha_pdf.as_slice()))
        .collect();
    s.hit(
        "Open311 POST under beta's Open311 token",
        Req::post(ALPHA, format!("/open311/v2/requests.json?api_key={ak}")).multipart(
            &[
                ("service_code", f.base_code.as_str()),
                ("phone", ALPHA_MOBILE),
                ("attribute[applicant_national_code]", "0499370899"),
                ("attribute[full_name]", "سامانه شهری آلفا"),
                ("attribute[address]", "اصفهان"),
                ("idempotency_key", BETA_IDEM[2]),
            ],
            &o311_files,
        ),
        Expect::Check(Box::new(|res| {
            if res.status == StatusCode::CREATED {
                Ok(())
            } else {
                Err(format!("alpha filed nothing: {} {}", res.status, res.text))
            }
        })),
    )
    .await;
    for idem in BETA_IDEM {
        s.hit(
            "the token now names alpha's own request",
            Req::get(
                ALPHA,
                format!("/open311/v2/tokens/{idem}.json?api_key={ak}"),
            ),
            Expect::Check(Box::new(|res| {
                if res.status == StatusCode::OK {
                    Ok(())
                } else {
                    Err(format!("alpha's own request not found: {}", res.status))
                }
            })),
        )
        .await;
    }
}

/// Family 6, cookie and host games, and the platform portal.
async fn cookies_and_hosts(s: &mut Suite<'_>, f: &Fixture) {
    s.family = "cookies and hosts";
    // Beta's own sessions sent to alpha's host.
    let file = f.r1_files[0];
    for path in [
        "/staff".to_owned(),
        "/staff/inbox".to_owned(),
        format!("/staff/requests/{}", f.r1),
        format!("/staff/requests/{}/files/{file}", f.r1),
        "/staff/api-keys".to_owned(),
        "/staff/settings".to_owned(),
        "/staff/reports.csv".to_owned(),
    ] {
        s.hit(
            "beta's staff cookie on alpha's host",
            Req::get(ALPHA, path).cookie(&f.sb),
            Expect::Denied,
        )
        .await;
    }
    s.hit(
        "beta's staff cookie acting on alpha's host",
        Req::post(ALPHA, format!("/staff/requests/{}/act", f.r1))
            .cookie(&f.sb)
            .form(&[("csrf", &f.sa_csrf), ("action", "reject"), ("note", "x")]),
        Expect::Denied,
    )
    .await;
    for path in [
        "/my-requests".to_owned(),
        "/my-appointments".to_owned(),
        format!("/requests/{}", f.r1),
        format!("/requests/{}/files/{file}", f.r1),
    ] {
        s.hit(
            "beta's citizen cookie on alpha's host",
            Req::get(ALPHA, path).cookie(&f.cb),
            Expect::Denied,
        )
        .await;
    }
    s.hit(
        "beta's citizen cookie cancelling on alpha's host",
        Req::post(ALPHA, format!("/appointments/{}/cancel", f.appointment))
            .cookie(&f.cb)
            .form(&[("csrf", &f.ca_csrf)]),
        Expect::Denied,
    )
    .await;
    // Session tokens under another cookie's name.
    let value = |c: &str| c.split_once('=').map(|(_, v)| v.to_owned()).unwrap();
    let (sa, sb, ca, cb) = (value(&f.sa), value(&f.sb), value(&f.ca), value(&f.cb));
    for (what, host, path, cookie) in [
        (
            "alpha's staff token as a citizen cookie on beta's host",
            BETA,
            format!("/requests/{}", f.r1),
            format!("desk_citizen_session={sa}"),
        ),
        (
            "alpha's citizen token as a staff cookie on beta's host",
            BETA,
            format!("/staff/requests/{}", f.r1),
            format!("desk_staff_session={ca}"),
        ),
        (
            "beta's citizen token as a staff cookie on alpha's host",
            ALPHA,
            format!("/staff/requests/{}", f.r1),
            format!("desk_staff_session={cb}"),
        ),
        (
            "beta's staff token as a citizen cookie on alpha's host",
            ALPHA,
            format!("/requests/{}", f.r1),
            format!("desk_citizen_session={sb}"),
        ),
        (
            "alpha's and beta's staff sessions together on alpha's host",
            ALPHA,
            format!("/staff/requests/{}", f.r1),
            format!("desk_staff_session={sa}; desk_staff_session={sb}"),
        ),
        (
            "beta's and alpha's staff sessions together on alpha's host",
            ALPHA,
            format!("/staff/requests/{}", f.r1),
            format!("desk_staff_session={sb}; desk_staff_session={sa}"),
        ),
        (
            "alpha's and beta's citizen sessions together on alpha's host",
            ALPHA,
            format!("/requests/{}", f.r1),
            format!("desk_citizen_session={ca}; desk_citizen_session={cb}"),
        ),
        (
            "beta's and alpha's citizen sessions together on alpha's host",
            ALPHA,
            format!("/requests/{}/files/{file}", f.r1),
            format!("desk_citizen_session={cb}; desk_citizen_session={ca}"),
        ),
    ] {
        s.hit(what, Req::get(host, path).cookie(&cookie), Expect::Denied)
            .await;
    }
    // The platform portal with alpha's sessions (as they are, and renamed).
    for (who, cookie) in [
        ("alpha's staff cookie", f.sa.clone()),
        ("alpha's citizen cookie", f.ca.clone()),
        (
            "alpha's staff token as a platform cookie",
            format!("desk_platform_session={sa}"),
        ),
        (
            "beta's staff token as a platform cookie",
            format!("desk_platform_session={sb}"),
        ),
    ] {
        for path in [
            "/",
            "/municipalities/beta",
            "/dashboard",
            "/operators",
            "/provinces",
        ] {
            s.hit(
                format!("{who} on the platform portal"),
                Req::get(PORTAL, path).cookie(&cookie),
                Expect::Denied,
            )
            .await;
        }
        for (path, fields) in [
            ("/municipalities/beta/status", vec![("status", "suspended")]),
            (
                "/municipalities/beta/domains",
                vec![("op", "add"), ("host", "stolen.test")],
            ),
        ] {
            s.hit(
                format!("{who} changes beta in the platform portal"),
                Req::post(PORTAL, path).cookie(&cookie).form(&fields),
                Expect::Denied,
            )
            .await;
        }
        for (query, field) in [
            (
                "{ municipality(slug: \"beta\") { slug name status } }",
                "municipality",
            ),
            (
                "{ municipalities { nodes { slug name status } } }",
                "municipalities",
            ),
            (
                "mutation { suspendMunicipality(slug: \"beta\") { slug status } }",
                "suspendMunicipality",
            ),
        ] {
            s.hit(
                format!("{who} on the platform API"),
                Req::post(PORTAL, "/graphql")
                    .cookie(&cookie)
                    .json(&json!({ "query": query })),
                Expect::NoData(field),
            )
            .await;
        }
    }
    // Other spellings of beta's host with alpha's sessions and key.
    for host in BETA_SPELLINGS {
        for path in [
            "/staff/inbox".to_owned(),
            format!("/staff/requests/{}", f.r1),
            format!("/staff/requests/{}/files/{file}", f.r1),
        ] {
            s.hit(
                "alpha's staff cookie on another spelling of beta's host",
                Req::get(host, path).cookie(&f.sa),
                Expect::Denied,
            )
            .await;
        }
        for path in ["/my-requests".to_owned(), format!("/requests/{}", f.r1)] {
            s.hit(
                "alpha's citizen cookie on another spelling of beta's host",
                Req::get(host, path).cookie(&f.ca),
                Expect::Denied,
            )
            .await;
        }
        s.hit(
            "alpha's key on another spelling of beta's host",
            gql(host, Some(&f.alpha_key), LIST, json!({})),
            Expect::NoData("requests"),
        )
        .await;
    }
    // Host header against the URI's authority, forwarded hosts, doubled and odd hosts.
    let staff_path = format!("/staff/requests/{}", f.r1);
    for (what, req) in [
        (
            "absolute URI naming beta, Host alpha",
            Req::get(ALPHA, format!("http://beta.test{staff_path}")).cookie(&f.sa),
        ),
        (
            "absolute URI naming alpha, Host beta",
            Req::get(BETA, format!("http://alpha.test{staff_path}")).cookie(&f.sa),
        ),
        (
            "X-Forwarded-Host beta, Host alpha",
            Req::get(ALPHA, staff_path.as_str())
                .cookie(&f.sa)
                .header("x-forwarded-host", BETA),
        ),
        (
            "X-Forwarded-Host alpha, Host beta",
            Req::get(BETA, staff_path.as_str())
                .cookie(&f.sa)
                .header("x-forwarded-host", ALPHA),
        ),
        (
            "Forwarded host=beta, Host alpha",
            Req::get(ALPHA, staff_path.as_str())
                .cookie(&f.sa)
                .header("forwarded", "host=beta.test"),
        ),
        (
            "a second Host header naming beta",
            Req::get(ALPHA, staff_path.as_str())
                .cookie(&f.sa)
                .header("host", BETA),
        ),
        (
            "a second Host header naming alpha",
            Req::get(BETA, staff_path.as_str())
                .cookie(&f.sa)
                .header("host", ALPHA),
        ),
        (
            "beta's host under alpha's",
            Req::get("beta.test.alpha.test", staff_path.as_str()).cookie(&f.sa),
        ),
        (
            "alpha's host under beta's",
            Req::get("alpha.test.beta.test", staff_path.as_str()).cookie(&f.sa),
        ),
        (
            "userinfo in the Host header",
            Req::get("alpha.test@beta.test", staff_path.as_str()).cookie(&f.sa),
        ),
        (
            "two hosts in one Host header",
            Req::get("alpha.test, beta.test", staff_path.as_str()).cookie(&f.sa),
        ),
        (
            "beta's host with a path-like suffix",
            Req::get("beta.test/..", staff_path.as_str()).cookie(&f.sa),
        ),
        (
            "protocol-relative path naming beta",
            Req::get(ALPHA, format!("//beta.test{staff_path}")).cookie(&f.sa),
        ),
        (
            "encoded slash in the tracking code",
            Req::get(ALPHA, format!("/staff/requests/..%2F{}", f.r1)).cookie(&f.sa),
        ),
    ] {
        s.hit(what, req, Expect::Denied).await;
    }
}

async fn enqueue_as<J: JobPayload>(
    app: &TestApp,
    owner: &Tenant,
    job: &J,
    once: bool,
) -> Result<(), String> {
    let mut tx = app.tx(owner).await;
    let done = if once {
        desk_db::jobs::enqueue_once_at(&mut tx, job, chrono::Utc::now().timestamp() + 3600)
            .await
            .map(|_| ())
    } else {
        desk_db::jobs::enqueue(&mut tx, job).await
    };
    match done {
        // Committed, so a leak would show as a job of the other tenant in the queue.
        Ok(()) => {
            tx.commit().await.unwrap();
            Err(format!("{} accepted a job of another tenant", owner.slug))
        }
        Err(_) => {
            tx.rollback().await.unwrap();
            Ok(())
        }
    }
}

/// Family 7, job payloads: the queue refuses jobs of another tenant; what a handler of alpha's
/// loads with beta's ids is nothing of beta's; refreshing alpha's indicators leaves beta's alone.
async fn job_payloads(s: &mut Suite<'_>, f: &Fixture, alpha: &Tenant, beta: &Tenant) {
    s.family = "job payloads";
    let app = s.app;
    for (owner, victim) in [(alpha, beta), (beta, alpha)] {
        for once in [false, true] {
            let how = if once { "enqueue_once_at" } else { "enqueue" };
            let who = format!("{} transaction, {how}", owner.slug);
            let tid = victim.id;
            let r = enqueue_as(
                app,
                owner,
                &WelcomeStaff {
                    tenant_id: tid,
                    staff_id: f.clerk,
                    round: 0,
                },
                once,
            )
            .await;
            s.record(format!("{who}: welcome_staff of {}", victim.slug), "", r)
                .await;
            let r = enqueue_as(
                app,
                owner,
                &SmsTestSend {
                    tenant_id: tid,
                    test_id: f.sms_test,
                },
                once,
            )
            .await;
            s.record(format!("{who}: sms_test_send of {}", victim.slug), "", r)
                .await;
            let r = enqueue_as(
                app,
                owner,
                &SendSms {
                    tenant_id: tid,
                    notification_id: f.notification,
                    attempt: 0,
                },
                once,
            )
            .await;
            s.record(format!("{who}: send_sms of {}", victim.slug), "", r)
                .await;
            let r = enqueue_as(
                app,
                owner,
                &InviteSurvey {
                    tenant_id: tid,
                    request_id: f.r2_id,
                },
                once,
            )
            .await;
            s.record(format!("{who}: invite_survey of {}", victim.slug), "", r)
                .await;
            let r = enqueue_as(
                app,
                owner,
                &RefreshIndicators {
                    tenant_id: tid,
                    window: 1,
                },
                once,
            )
            .await;
            s.record(
                format!("{who}: refresh_indicators of {}", victim.slug),
                "",
                r,
            )
            .await;
        }
    }

    // What alpha's handlers would load for a job naming alpha with beta's ids.
    macro_rules! in_alpha {
        ($what:expr, |$tx:ident| $call:expr) => {{
            let mut $tx = app.tx(&alpha).await;
            let shown = format!("{:?}", $call.await);
            $tx.rollback().await.unwrap();
            s.record(
                format!("alpha's job with beta's ids: {}", $what),
                &shown,
                Ok(()),
            )
            .await;
        }};
    }
    in_alpha!("invite_survey loads beta's closed request", |tx| {
        desk_db::requests::request_by_id(&mut tx, f.r2_id)
    });
    in_alpha!("request by beta's tracking code", |tx| {
        desk_db::requests::request_by_code(&mut tx, &f.r1)
    });
    in_alpha!("request by beta's tracking code and mobile", |tx| {
        desk_db::requests::request_by_tracking(&mut tx, &f.r1, BETA_MOBILE_CANON)
    });
    in_alpha!("files of beta's request id", |tx| {
        desk_db::requests::files(&mut tx, f.r2_id)
    });
    in_alpha!("events of beta's request id", |tx| {
        desk_db::requests::events(&mut tx, f.r2_id)
    });
    in_alpha!("welcome_staff loads beta's clerk", |tx| {
        desk_db::staff::staff_by_id(&mut tx, f.clerk)
    });
    in_alpha!("send_sms loads beta's notification", |tx| {
        desk_db::notifications::outgoing(&mut tx, f.notification)
    });
    in_alpha!("sms_test_send loads beta's test", |tx| {
        desk_db::settings::sms_test_request(&mut tx, f.sms_test)
    });
    in_alpha!("beta's SMS account", |tx| {
        desk_db::settings::sms_account(&mut tx, f.sms_account)
    });
    in_alpha!("beta's survey token", |tx| {
        desk_db::surveys::by_token(&mut tx, &f.survey_token)
    });
    in_alpha!("the survey of beta's request id", |tx| {
        desk_db::surveys::for_request(&mut tx, f.r2_id)
    });
    for (i, key) in f.beta_keys.iter().enumerate() {
        in_alpha!(format!("beta's API key {}", i + 1), |tx| {
            desk_db::api_keys::authenticate(&mut tx, key)
        });
    }
    for idem in BETA_IDEM {
        in_alpha!("Open311 token of beta's", |tx| {
            desk_db::requests::tracking_by_idempotency_key(&mut tx, idem)
        });
    }
    in_alpha!("appointments of beta's citizen", |tx| {
        desk_db::appointments::of_mobile(&mut tx, BETA_MOBILE_CANON)
    });
    let token = "ab".repeat(32);
    in_alpha!(
        "invite_survey writes a survey for beta's request id",
        |tx| { desk_db::surveys::invite(&mut tx, f.r2_id, &token) }
    );
    in_alpha!("mark beta's appointment arrived", |tx| {
        desk_db::appointments::mark_arrived(&mut tx, f.appointment)
    });
    in_alpha!("revoke beta's API key", |tx| {
        desk_db::api_keys::revoke(&mut tx, f.beta_only_keys[0])
    });
    in_alpha!("delete beta's desk hours", |tx| {
        desk_db::appointments::delete_desk_hours(&mut tx, f.desk_hours)
    });

    // refresh_indicators for alpha writes alpha's figures only.
    let today = desk_core::calendar::today_in_iran();
    let key = desk_core::report::month_key(today);
    for round in 1..=2 {
        let done = desk_jobs::refresh_indicators::refresh(&app.db.platform, alpha.id).await;
        let rows = app.db.platform.indicators(None, key, key).await.unwrap();
        let alpha_row = rows.iter().find(|r| r.tenant_id == alpha.id);
        let month = Period::month_of(today).days().unwrap();
        let own = scalar(
            app,
            alpha,
            &format!(
                "select count(*) from requests where submitted_on between '{}' and '{}'",
                month.0, month.1
            ),
        )
        .await;
        let verdict = match (&done, alpha_row) {
            (Ok(_), Some(r)) if r.sums.requests == own => Ok(()),
            (Ok(_), r) => Err(format!(
                "alpha's indicators count {:?} requests; alpha has {own}",
                r.map(|r| r.sums.requests)
            )),
            (Err(e), _) => Err(format!("refresh failed: {e}")),
        };
        s.record(
            format!("refresh_indicators for alpha (round {round})"),
            &format!("{done:?}"),
            verdict,
        )
        .await;
    }
    let done =
        desk_jobs::refresh_indicators::refresh(&app.db.platform, desk_core::TenantId::new()).await;
    let verdict = match done {
        Ok(0) => Ok(()),
        other => Err(format!("refresh of an unknown tenant gave {other:?}")),
    };
    s.record("refresh_indicators for an unknown tenant id", "", verdict)
        .await;
}

/// The oracle itself: beta's own credentials on beta's host must be caught as a leak (status
/// and markers), a write by beta's admin as a change, a read in beta's transaction as beta's
/// data. Run after the attacks; not counted.
async fn canaries(s: &mut Suite<'_>, f: &Fixture, beta: &Tenant) {
    s.family = "canary";
    let before = s.outcomes.len();
    s.hit(
        "beta's citizen on beta's host",
        Req::get(BETA, format!("/requests/{}", f.r1)).cookie(&f.cb),
        Expect::Denied,
    )
    .await;
    let csrf = s.app.get_as(&f.sb, BETA, "/staff/settings").await.csrf();
    s.hit(
        "beta's admin adds a unit on beta's host",
        Req::post(BETA, "/staff/settings/units")
            .cookie(&f.sb)
            .form(&[("csrf", &csrf), ("name", "واحد قناری")]),
        Expect::Clean,
    )
    .await;
    let mut tx = s.app.tx(beta).await;
    let shown = format!(
        "{:?}",
        desk_db::requests::request_by_code(&mut tx, &f.r1).await
    );
    tx.rollback().await.unwrap();
    s.record("beta's request read in beta's transaction", &shown, Ok(()))
        .await;
    let caught: Vec<Outcome> = s.outcomes.drain(before..).collect();
    let problems: Vec<String> = caught.iter().map(|o| o.problems.join("; ")).collect();
    assert!(
        problems[0].contains("answered 200") && problems[0].contains("applicant's name"),
        "the oracle missed a leak: {problems:?}"
    );
    assert!(
        problems[1].contains("beta's data changed") && problems[1].contains("units"),
        "the oracle missed a change: {problems:?}"
    );
    assert!(
        problems[2].contains("tracking code (open request)"),
        "the oracle missed beta's data in a job's read: {problems:?}"
    );
}

/// Reports one family's attempts and fails the test on any leak or change in beta; then the
/// canaries (the checker still catches beta's own data) and the links the attacks tried on the
/// wrong hosts, which must still work on their own.
async fn report(
    app: &TestApp,
    suite: &mut Suite<'_>,
    f: &Fixture,
    beta: &Tenant,
    before: &BTreeMap<String, String>,
    started: std::time::Instant,
    at_least: usize,
) {
    let after = suite.beta_state().await;
    let n = suite.outcomes.len();
    let failed: Vec<&Outcome> = suite
        .outcomes
        .iter()
        .filter(|o| !o.problems.is_empty())
        .collect();
    let leaks = failed.len();
    let mut families: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for o in &suite.outcomes {
        let e = families.entry(o.family).or_default();
        e.0 += 1;
        if !o.problems.is_empty() {
            e.1 += 1;
        }
    }
    for (family, (tried, bad)) in &families {
        println!("  {family}: {tried} tried, {bad} leaked");
    }
    println!("  answers: {:?}", suite.statuses);
    println!(
        "  beta: {} tables compared after every attempt; rows before {}, after {}",
        suite.tables,
        Suite::rows(before),
        Suite::rows(&after)
    );
    if std::env::var_os("ATTACKS_VERBOSE").is_some() {
        for o in &suite.outcomes {
            println!("  [{}] {} -> {}", o.family, o.what, o.status);
        }
    }
    for o in &failed {
        println!(
            "LEAK [{}] {} -> {}: {}",
            o.family,
            o.what,
            o.status,
            o.problems.join("; ")
        );
    }
    println!("cross-tenant attacks: {n} tried, {leaks} leaked");
    println!("  took {:.1?}", started.elapsed());
    canaries(suite, f, beta).await;

    // The links the attacks tried on the wrong hosts still work on their own.
    let res = app.send("POST", BETA, &f.beta_link, None, &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "beta's link was used up");
    let res = app.send("POST", ALPHA, &f.alpha_link, None, &[]).await;
    assert_eq!(
        res.status,
        StatusCode::SEE_OTHER,
        "alpha's link was used up"
    );
    let survey = app.get(BETA, &format!("/survey/{}", f.survey_token)).await;
    assert!(
        survey.status == StatusCode::OK && !survey.text.contains("پیش‌تر پاسخ داده شده"),
        "beta's survey was answered"
    );

    assert!(n >= at_least, "only {n} attempts");
    assert_eq!(
        leaks, 0,
        "{leaks} of {n} attempts reached beta (see LEAK lines)"
    );
    assert_eq!(before, &after, "beta's data changed");
}

/// One test per surface, each on a fresh pair of municipalities and the same fixture, so one
/// surface's failure does not hide another's.
macro_rules! attack_surface {
    ($test:ident, $at_least:expr, |$suite:ident, $f:ident, $alpha:ident, $beta:ident| $run:expr) => {
        #[tokio::test]
        async fn $test() {
            let started = std::time::Instant::now();
            let (app, $alpha, $beta) = desk_tests::two_municipalities().await;
            let mut $f = fixture(&app, &$alpha, &$beta).await;
            controls(&app, &$f).await;
            // Alpha's citizen who signs in with beta's citizen's mobile number.
            $f.cm = app.citizen_sign_in(&$alpha, ALPHA, BETA_MOBILE).await;
            $f.cm_csrf = app.get_as(&$f.cm, ALPHA, "/my-requests").await.csrf();
            let $f = $f;
            let mut $suite = Suite::new(&app, &$beta, secrets(&$f)).await;
            let before = $suite.state.clone();
            $run;
            report(&app, &mut $suite, &$f, &$beta, &before, started, $at_least).await;
            let _ = std::fs::remove_dir_all(&app.uploads);
            app.db.finish().await;
        }
    };
}

attack_surface!(
    the_staff_portal_reaches_nothing_of_another_municipality,
    125,
    |s, f, alpha, beta| {
        let _ = (&alpha, &beta);
        staff_portal(&mut s, &f).await
    }
);
attack_surface!(
    the_staff_team_reaches_nothing_of_another_municipality,
    20,
    |s, f, alpha, beta| {
        let _ = (&alpha, &beta);
        team_surfaces(&mut s, &f).await
    }
);
attack_surface!(
    the_citizen_portal_reaches_nothing_of_another_municipality,
    60,
    |s, f, alpha, beta| {
        let _ = (&alpha, &beta);
        citizen_portal(&mut s, &f).await
    }
);
attack_surface!(
    public_pages_show_nothing_of_another_municipality,
    40,
    |s, f, alpha, beta| {
        let _ = (&alpha, &beta);
        public_pages(&mut s, &f).await
    }
);
attack_surface!(
    graphql_reaches_nothing_of_another_municipality,
    50,
    |s, f, alpha, beta| {
        let _ = &beta;
        graphql(&mut s, &f, &alpha).await
    }
);
attack_surface!(
    open311_reaches_nothing_of_another_municipality,
    30,
    |s, f, alpha, beta| {
        let _ = (&alpha, &beta);
        open311(&mut s, &f).await
    }
);
attack_surface!(
    replays_reach_nothing_of_another_municipality,
    6,
    |s, f, alpha, beta| {
        let _ = (&alpha, &beta);
        replays(&mut s, &f).await
    }
);
attack_surface!(
    cookies_and_hosts_reach_nothing_of_another_municipality,
    100,
    |s, f, alpha, beta| {
        let _ = (&alpha, &beta);
        cookies_and_hosts(&mut s, &f).await
    }
);
attack_surface!(
    job_payloads_reach_nothing_of_another_municipality,
    40,
    |s, f, alpha, beta| { job_payloads(&mut s, &f, &alpha, &beta).await }
);
