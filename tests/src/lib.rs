//! Test harness of Miz: a throwaway database per test on the server named by `DATABASE_URL`
//! (`scripts/test` starts a private one), migrated with the real migrations, and a `TestApp`
//! that drives the real router in process.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a failed setup must fail the test loudly"
)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use desk_core::{Hostname, TenantSlug};
use desk_db::migrate::TenantMigrations;
use desk_db::scratch::{self, ScratchDatabase};
use desk_db::{DbConfig, NewTenant, PlatformDb, Tenant};
use http_body_util::BodyExt;
use tokio::sync::OnceCell;
use tower::ServiceExt;

static SWEPT: OnceCell<()> = OnceCell::const_new();

/// The master key the test app seals secrets with.
pub const TEST_MASTER_KEY: &str =
    "6d697a2d746573742d6d61737465722d6b65792d666f722d6f6e6c792d746573";

/// Onboards `slug` through the real onboarding (national catalog, theme) with a first admin
/// `admin-<slug>` (mobile 09130000000).
pub async fn onboard(platform: &PlatformDb, authz: &desk_authz::Authorizer, slug: &str) -> Tenant {
    let req = desk_tenant_admin::Onboarding {
        theme: desk_tenant_admin::DEFAULT_THEME.to_owned(),
        tenant: TestDb::new_tenant(slug),
        first_admin: Some(desk_tenant_admin::FirstAdmin {
            username: format!("admin-{slug}"),
            display_name: "مدیر".into(),
            mobile: desk_core::MobileNumber::parse("09130000000").unwrap(),
        }),
    };
    desk_tenant_admin::onboard(
        platform,
        authz,
        &desk_tenant_admin::Actor::Cli,
        "test",
        &req,
    )
    .await
    .unwrap()
    .0
}

/// Job workers running for a test; [`Workers::stop`] lets running jobs finish.
pub struct Workers {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Workers {
    /// Stops the workers and waits for them.
    pub async fn stop(self) {
        let _ = self.stop.send(());
        self.task.await.unwrap().unwrap();
    }
}

/// An app with two municipalities of Isfahan, `alpha` and `beta`, each with its admin, the
/// default policies in place and the app rebuilt to load them.
pub async fn two_municipalities() -> (TestApp, Tenant, Tenant) {
    two_municipalities_with(|_| {}).await
}

/// [`two_municipalities`] with the configuration changed by `adjust`.
pub async fn two_municipalities_with(
    adjust: impl Fn(&mut desk::config::Config) + Send + Sync + 'static,
) -> (TestApp, Tenant, Tenant) {
    let app = TestApp::with_config(adjust).await;
    let authz = desk_authz::Authorizer::load(&app.db.platform)
        .await
        .unwrap();
    authz
        .ensure_default_policies(&app.db.platform.province_ids().await.unwrap())
        .await
        .unwrap();
    let alpha = onboard(&app.db.platform, &authz, "alpha").await;
    let beta = onboard(&app.db.platform, &authz, "beta").await;
    (app.rebuild().await, alpha, beta)
}

/// Gives `tenant` an SMS account at `provider` with this API key (sealed with the test key).
pub async fn add_sms_account(
    platform: &PlatformDb,
    tenant: &Tenant,
    provider: &str,
    api_key: &str,
) {
    let key = desk_core::secret::MasterKey::from_hex(TEST_MASTER_KEY).unwrap();
    let creds = serde_json::json!({ "api_key": api_key }).to_string();
    let mut tx = platform.tenant_db().begin(tenant.scope()).await.unwrap();
    desk_db::settings::add_sms_account(&mut tx, provider, "خط اصلی", "3000505", |id| {
        key.seal(tenant.id, &format!("sms_account:{id}"), creds.as_bytes())
    })
    .await
    .unwrap();
    tx.commit().await.unwrap();
}

/// The province id of Isfahan in the seeded provinces.
pub const ISFAHAN: i16 = 4;
/// The province id of Tehran.
pub const TEHRAN: i16 = 8;

/// A distinct Persian name for a test slug (each Latin letter mapped to a Persian one).
pub fn persian_name(slug: &str) -> String {
    const LETTERS: [char; 26] = [
        'ا', 'ب', 'ج', 'د', 'ه', 'ف', 'گ', 'ح', 'ی', 'ژ', 'ک', 'ل', 'م', 'ن', 'و', 'پ', 'ق', 'ر',
        'س', 'ت', 'ع', 'ذ', 'ص', 'خ', 'ئ', 'ز',
    ];
    let body: String = slug
        .chars()
        .map(|c| match c {
            'a'..='z' => LETTERS[(c as u8 - b'a') as usize],
            '-' => ' ',
            other => other,
        })
        .collect();
    format!("شهرداری {}", desk_core::text::persian_digits(&body))
}

/// A migrated throwaway database.
pub struct TestDb {
    scratch: Option<ScratchDatabase>,
    /// Its platform handle.
    pub platform: PlatformDb,
}

fn admin_config() -> DbConfig {
    let url = std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!("DATABASE_URL is not set: run the suite with `scripts/test`, which starts a private PostgreSQL")
    });
    DbConfig::from_url(&url).unwrap()
}

impl TestDb {
    /// A fresh database with the platform migrated (pool of 4).
    pub async fn new() -> Self {
        Self::with_pool_size(4).await
    }

    /// A fresh database with a pool of `size` connections.
    pub async fn with_pool_size(size: u32) -> Self {
        let admin = admin_config();
        SWEPT
            .get_or_init(|| async {
                if let Err(e) = scratch::sweep(&admin).await {
                    eprintln!("sweeping old scratch databases failed: {e:#}");
                }
            })
            .await;
        let scratch = ScratchDatabase::create(&admin).await.unwrap();
        let mut cfg = scratch.config.clone();
        cfg.max_connections = size;
        let platform = PlatformDb::connect_and_migrate(&cfg).await.unwrap();
        Self {
            scratch: Some(scratch),
            platform,
        }
    }

    /// Another handle on the same database with its own pool of `size` connections.
    pub async fn second_pool(&self, size: u32) -> PlatformDb {
        let mut cfg = self.scratch.as_ref().unwrap().config.clone();
        cfg.max_connections = size;
        PlatformDb::connect(&cfg).await.unwrap()
    }

    /// Starts the job workers on a pool of their own (as `desk worker` runs in its own
    /// process), with the test master key, sending SMS to the fake provider at `sms_base`.
    /// Webhooks may go to loopback receivers.
    pub async fn start_workers(&self, sms_base: &str) -> Workers {
        self.start_workers_with(sms_base, true).await
    }

    /// [`TestDb::start_workers`], saying whether webhooks may go to private addresses.
    pub async fn start_workers_with(
        &self,
        sms_base: &str,
        allow_private_webhooks: bool,
    ) -> Workers {
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(desk_jobs::run_workers(
            self.second_pool(6).await,
            desk_core::PublicUrls {
                scheme: "http".into(),
                port: None,
            },
            Some(desk_core::secret::MasterKey::from_hex(TEST_MASTER_KEY).unwrap()),
            desk_jobs::sms::Endpoints::all_at(sms_base),
            desk_jobs::outbound::Outbound::new(allow_private_webhooks, Vec::new()),
            async {
                let _ = stop_rx.await;
            },
        ));
        Workers { stop, task }
    }

    /// Seconds between the start of the queued job `first_key` and the time its retry
    /// `retry_key` (same queue) is due.
    pub async fn retry_delay(&self, queue: &str, retry_key: &str, first_key: &str) -> f64 {
        sqlx::query_scalar(
            "select extract(epoch from r.run_at - f.lock_at)::float8
               from apalis.jobs r, apalis.jobs f
              where r.job_type = $1 and r.idempotency_key = $2
                and f.job_type = $1 and f.idempotency_key = $3",
        )
        .bind(queue)
        .bind(retry_key)
        .bind(first_key)
        .fetch_one(self.platform.pool_for_infrastructure())
        .await
        .unwrap()
    }

    /// The registry entry for a municipality `slug` in Isfahan at `<slug>.test`.
    pub fn new_tenant(slug: &str) -> NewTenant {
        Self::new_tenant_in(slug, ISFAHAN)
    }

    /// Like [`TestDb::new_tenant`], in another province.
    pub fn new_tenant_in(slug: &str, province_id: i16) -> NewTenant {
        NewTenant {
            slug: TenantSlug::parse(slug).unwrap(),
            name_fa: persian_name(slug),
            name_en: format!("{slug} municipality"),
            province_id,
            domains: vec![Hostname::parse(&format!("{slug}.test")).unwrap()],
        }
    }

    /// Creates a municipality with the shipped migrations.
    pub async fn tenant(&self, slug: &str) -> Tenant {
        self.platform
            .create_tenant(&Self::new_tenant(slug), &TenantMigrations::embedded())
            .await
            .unwrap()
    }

    /// Drops the database and its roles.
    pub async fn finish(mut self) {
        self.platform.close().await;
        if let Some(s) = self.scratch.take() {
            s.drop_now().await.unwrap();
        }
    }
}

/// The real application router over a test database.
pub struct TestApp {
    /// The database.
    pub db: TestDb,
    /// Where this app stores uploads (a fresh directory per app).
    pub uploads: std::path::PathBuf,
    adjust: Adjust,
    router: axum::Router,
    ops: axum::Router,
}

/// A change to the app's configuration, kept for rebuilds.
type Adjust = std::sync::Arc<dyn Fn(&mut desk::config::Config) + Send + Sync>;

/// A response as a test reads it.
pub struct TestResponse {
    /// Status.
    pub status: StatusCode,
    /// Body as text.
    pub text: String,
    /// `Location` header, if any.
    pub location: Option<String>,
    /// `name=value` of the first `Set-Cookie`, if any.
    pub cookie: Option<String>,
    /// `Retry-After` header, if any.
    pub retry_after: Option<String>,
    /// `name=value` of every `Set-Cookie`.
    pub cookies: Vec<String>,
    /// Every header of the answer.
    pub headers: axum::http::HeaderMap,
}

impl TestResponse {
    /// The value of the first hidden `csrf` field on the page.
    pub fn csrf(&self) -> String {
        let start = self
            .text
            .find("name=\"csrf\" value=\"")
            .expect("page has a csrf field")
            + 19;
        self.text[start..].split('"').next().unwrap().to_owned()
    }
}

impl TestApp {
    /// Serves the app on a loopback port (for clients that need a real connection, such as
    /// WebSockets); returns its address. The server lives as long as the test's runtime.
    pub async fn serve(&self) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = self
            .router
            .clone()
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }

    /// Builds the app (host cache disabled so status changes show at once).
    pub async fn new() -> Self {
        Self::with_config(|_| {}).await
    }

    /// Builds the app with a configuration changed by `adjust` (on top of the test defaults).
    pub async fn with_config(
        adjust: impl Fn(&mut desk::config::Config) + Send + Sync + 'static,
    ) -> Self {
        let db = TestDb::new().await;
        let uploads =
            std::env::temp_dir().join(format!("desk-test-uploads-{}", uuid::Uuid::new_v4()));
        let adjust: Adjust = std::sync::Arc::new(adjust);
        let (router, ops) = Self::router(&db, &uploads, &adjust).await;
        Self {
            db,
            uploads,
            adjust,
            router,
            ops,
        }
    }

    async fn router(
        db: &TestDb,
        uploads: &std::path::Path,
        adjust: &Adjust,
    ) -> (axum::Router, axum::Router) {
        let mut config = desk::config::Config::default();
        config.web.uploads_dir = uploads.to_owned();
        config.http.base_domain = "test".to_owned();
        config.http.site_cache_ttl_ms = 0;
        config.secrets.master_key = Some(TEST_MASTER_KEY.to_owned());
        adjust(&mut config);
        let authz = desk_authz::Authorizer::load(&db.platform).await.unwrap();
        desk::app::build_all(&config, db.platform.clone(), authz)
            .await
            .unwrap()
    }

    /// Staff member `cookie` takes `action` on request `tracking` of `host` (through the
    /// request page's form, with its CSRF token); returns the answer.
    pub async fn staff_act(
        &self,
        cookie: &str,
        host: &str,
        tracking: &str,
        action: &str,
    ) -> TestResponse {
        let page = self
            .get_as(cookie, host, &format!("/staff/requests/{tracking}"))
            .await;
        self.post_form(
            Some(cookie),
            host,
            &format!("/staff/requests/{tracking}/act"),
            &[("csrf", &page.csrf()), ("action", action)],
        )
        .await
    }

    /// A `GET` of `path` on the operations listener (`/healthz`, `/readyz`, `/metrics`).
    pub async fn ops_get(&self, path: &str) -> TestResponse {
        let req = Request::builder().uri(path).body(Body::empty()).unwrap();
        Self::read(self.ops.clone().oneshot(req).await.unwrap()).await
    }

    /// Builds the router again (the app loads the policies when it is built).
    pub async fn rebuild(self) -> Self {
        let (router, ops) = Self::router(&self.db, &self.uploads, &self.adjust).await;
        Self {
            db: self.db,
            uploads: self.uploads,
            adjust: self.adjust,
            router,
            ops,
        }
    }

    /// Sends a request for `host` + `path` (a body is sent as JSON).
    pub async fn request(
        &self,
        method: &str,
        host: &str,
        path: &str,
        body: Option<&str>,
    ) -> TestResponse {
        let headers: &[(&str, &str)] = if body.is_some() {
            &[("content-type", "application/json")]
        } else {
            &[]
        };
        self.send(method, host, path, body, headers).await
    }

    /// Sends a request with explicit headers.
    pub async fn send(
        &self,
        method: &str,
        host: &str,
        path: &str,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let req = req
            .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
            .unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        Self::read(res).await
    }

    /// A `multipart/form-data` `POST` with text fields and one file field.
    pub async fn post_multipart(
        &self,
        cookie: &str,
        host: &str,
        path: &str,
        fields: &[(&str, &str)],
        file: (&str, &str, &[u8]),
    ) -> TestResponse {
        self.post_multipart_files(cookie, host, path, fields, &[file])
            .await
    }

    /// A `multipart/form-data` `POST` with text fields and any number of file fields (each
    /// claims `image/png`, which the server must not believe).
    pub async fn post_multipart_files(
        &self,
        cookie: &str,
        host: &str,
        path: &str,
        fields: &[(&str, &str)],
        files: &[(&str, &str, &[u8])],
    ) -> TestResponse {
        const BOUNDARY: &str = "miz-test-boundary-7d1f";
        let mut body = Vec::new();
        for (name, value) in fields {
            body.extend_from_slice(
                format!("--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n").as_bytes(),
            );
        }
        for (name, filename, bytes) in files {
            body.extend_from_slice(
                format!(
                    "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{filename}\"\r\nContent-Type: image/png\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
        let content_type = format!("multipart/form-data; boundary={BOUNDARY}");
        self.send_bytes(
            "POST",
            host,
            path,
            body,
            &[("cookie", cookie), ("content-type", &content_type)],
        )
        .await
    }

    /// Sends a request with a raw body.
    pub async fn send_bytes(
        &self,
        method: &str,
        host: &str,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, &str)],
    ) -> TestResponse {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", host);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let res = self
            .router
            .clone()
            .oneshot(req.body(Body::from(body)).unwrap())
            .await
            .unwrap();
        Self::read(res).await
    }

    async fn read(res: axum::response::Response) -> TestResponse {
        let status = res.status();
        let header = |name| {
            res.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let location = header("location");
        let retry_after = header("retry-after");
        let cookie =
            header("set-cookie").map(|c| c.split(';').next().unwrap_or_default().to_owned());
        let cookies = res
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|c| c.split(';').next().unwrap_or_default().to_owned())
            .collect();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        TestResponse {
            headers,
            status,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            location,
            cookie,
            retry_after,
            cookies,
        }
    }

    /// Signs a citizen in on `host` by mobile number: asks for a code, reads it the way the
    /// SMS sender does (opening the sealed code with the master key), and types it. Returns
    /// the session cookie.
    pub async fn citizen_sign_in(&self, tenant: &Tenant, host: &str, mobile: &str) -> String {
        self.ensure_sms_account(tenant).await;
        let res = self
            .post_form(
                None,
                host,
                "/sign-in",
                &[("mobile", mobile), ("next", "/my-requests")],
            )
            .await;
        assert_eq!(res.status, StatusCode::OK, "{}", res.text);
        let code = self.last_sign_in_code(tenant, mobile).await;
        let res = self
            .post_form(
                None,
                host,
                "/sign-in/code",
                &[
                    ("mobile", mobile),
                    ("code", &code),
                    ("next", "/my-requests"),
                ],
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
        res.cookie.unwrap()
    }

    /// Gives `tenant` an SMS account (Kavenegar, key `test-key`) unless it has one: sign-in
    /// codes are only promised where an account can carry them.
    pub async fn ensure_sms_account(&self, tenant: &Tenant) {
        if self
            .scalar(tenant, "select count(*) from sms_accounts where enabled")
            .await
            == 0
        {
            add_sms_account(&self.db.platform, tenant, "kavenegar", "test-key").await;
        }
    }

    /// The newest sign-in code sent to `mobile` in `tenant`, opened from the SMS outbox.
    pub async fn last_sign_in_code(&self, tenant: &Tenant, mobile: &str) -> String {
        let canonical = desk_core::MobileNumber::parse(mobile).unwrap();
        let mut tx = self
            .db
            .platform
            .tenant_db()
            .begin(tenant.scope())
            .await
            .unwrap();
        let (nonce, ciphertext): (Vec<u8>, Vec<u8>) = sqlx::query_as(
            "select secret_nonce, secret_ciphertext from notifications
              where kind = 'sign_in_code' and recipient = $1 order by id desc limit 1",
        )
        .bind(canonical.as_str())
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        let key = desk_core::secret::MasterKey::from_hex(TEST_MASTER_KEY).unwrap();
        let plain = key
            .open(
                tenant.id,
                &format!("sign_in_code:{}", canonical.as_str()),
                &desk_core::secret::Sealed { nonce, ciphertext },
            )
            .unwrap();
        String::from_utf8(plain).unwrap()
    }

    /// A transaction in `tenant`'s schema, as its role (what the app's code gets).
    pub async fn tx(&self, tenant: &Tenant) -> desk_db::TenantTx {
        self.db
            .platform
            .tenant_db()
            .begin(tenant.scope())
            .await
            .unwrap()
    }

    /// One `bigint` from `sql` run in `tenant`'s schema (as the tenant's role).
    pub async fn scalar(&self, tenant: &Tenant, sql: &str) -> i64 {
        let mut tx = self.tx(tenant).await;
        let n: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        n
    }

    /// `GET` returning the raw body and its content type.
    pub async fn get_bytes(&self, host: &str, path: &str) -> (StatusCode, Option<String>, Vec<u8>) {
        self.get_bytes_as("", host, path).await
    }

    /// Like [`TestApp::get_bytes`], with a session cookie (`name=value`; empty for none).
    pub async fn get_bytes_as(
        &self,
        cookie: &str,
        host: &str,
        path: &str,
    ) -> (StatusCode, Option<String>, Vec<u8>) {
        let mut req = Request::builder().uri(path).header("host", host);
        if !cookie.is_empty() {
            req = req.header("cookie", cookie);
        }
        let req = req.body(Body::empty()).unwrap();
        let res = self.router.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let ct = res
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = res.into_body().collect().await.unwrap().to_bytes().to_vec();
        (status, ct, bytes)
    }

    /// A fresh one-time sign-in path (`/staff/sign-in/<token>`) for `username` of `tenant`.
    pub async fn staff_sign_in_path(&self, tenant: &Tenant, username: &str) -> String {
        let mut tx = self
            .db
            .platform
            .tenant_db()
            .begin(tenant.scope())
            .await
            .unwrap();
        let member = desk_db::staff::staff_by_username(&mut tx, username)
            .await
            .unwrap()
            .unwrap();
        let host = Hostname::parse("x.test").unwrap();
        let urls = desk_core::PublicUrls {
            scheme: "http".into(),
            port: None,
        };
        let url = desk_db::staff::issue_sign_in_link(&mut tx, member.id, &host, &urls)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        url.trim_start_matches("http://x.test").to_owned()
    }

    /// Uses a sign-in path on `host`; returns the session cookie.
    pub async fn staff_sign_in_with(&self, host: &str, path: &str) -> String {
        let res = self.send("POST", host, path, None, &[]).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
        res.cookie.unwrap()
    }

    /// Signs `username` of `tenant` in to the staff portal on its default host; returns the
    /// session cookie.
    pub async fn staff_sign_in(&self, tenant: &Tenant, username: &str) -> String {
        let path = self.staff_sign_in_path(tenant, username).await;
        let domain = self.db.platform.tenant_domains(tenant.id).await.unwrap()[0].to_string();
        self.staff_sign_in_with(&domain, &path).await
    }

    /// `GET` with a session cookie.
    pub async fn get_as(&self, cookie: &str, host: &str, path: &str) -> TestResponse {
        self.send("GET", host, path, None, &[("cookie", cookie)])
            .await
    }

    /// A form `POST` (`application/x-www-form-urlencoded`), optionally with a session cookie.
    pub async fn post_form(
        &self,
        cookie: Option<&str>,
        host: &str,
        path: &str,
        fields: &[(&str, &str)],
    ) -> TestResponse {
        let body: String = fields
            .iter()
            .map(|(k, v)| format!("{}={}", urlencode(k), urlencode(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut headers = vec![("content-type", "application/x-www-form-urlencoded")];
        if let Some(c) = cookie {
            headers.push(("cookie", c));
        }
        self.send("POST", host, path, Some(&body), &headers).await
    }

    /// `GET`.
    pub async fn get(&self, host: &str, path: &str) -> TestResponse {
        self.request("GET", host, path, None).await
    }

    /// A GraphQL query; returns the JSON response.
    pub async fn graphql(&self, host: &str, query: &str) -> (StatusCode, serde_json::Value) {
        let body = serde_json::json!({ "query": query }).to_string();
        let res = self.request("POST", host, "/graphql", Some(&body)).await;
        let json = serde_json::from_str(&res.text).unwrap_or(serde_json::Value::Null);
        (res.status, json)
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The SQLSTATE of a database error inside a domain error, if any.
pub fn sqlstate(err: &sqlx::Error) -> Option<String> {
    match err {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Everything logged on the current thread since [`capture_logs`] was called.
#[derive(Clone, Default)]
pub struct CapturedLogs(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl CapturedLogs {
    /// The captured text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

thread_local! {
    static CAPTURE: std::cell::RefCell<Option<CapturedLogs>> = const { std::cell::RefCell::new(None) };
}

struct ThreadWriter;

impl std::io::Write for ThreadWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        CAPTURE.with(|c| {
            if let Some(logs) = c.borrow().as_ref() {
                logs.0.lock().unwrap().extend_from_slice(buf);
            }
        });
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Captures what this thread logs (at every level), through one global subscriber, so that
/// tracing's per-callsite caches cannot hide events from a thread-local one.
pub fn capture_logs() -> CapturedLogs {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(|| ThreadWriter)
            .finish();
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
    let logs = CapturedLogs::default();
    CAPTURE.with(|c| *c.borrow_mut() = Some(logs.clone()));
    logs
}

/// `text` with every `nonce="…"` value replaced by `[nonce]`.
pub fn redact_nonces(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find("nonce=\"") {
        let (head, tail) = rest.split_at(at + 7);
        out.push_str(head);
        let end = tail.find('"').unwrap_or(tail.len());
        out.push_str("[nonce]");
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Compares `text` with the committed snapshot `tests/snapshots/<name>`, showing the first line
/// that differs; with `UPDATE_SNAPSHOTS=1` it writes the snapshot instead (review the diff).
pub fn assert_snapshot(name: &str, text: &str) {
    // Each answer's CSP nonce is fresh: the snapshot names its place only.
    let text = redact_nonces(text);
    let text = text.as_str();
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("snapshots")
        .join(name);
    if std::env::var_os("UPDATE_SNAPSHOTS").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "no snapshot {} ({e}); run with UPDATE_SNAPSHOTS=1 to write it",
            path.display()
        )
    });
    if expected != text {
        let (n, (want, got)) = expected
            .lines()
            .chain(std::iter::repeat("<end>"))
            .zip(text.lines().chain(std::iter::repeat("<end>")))
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .unwrap();
        panic!(
            "{name} differs from its snapshot at line {}:\n  snapshot: {want}\n  rendered: {got}\n(UPDATE_SNAPSHOTS=1 rewrites it)",
            n + 1
        );
    }
}
