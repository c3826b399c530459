//! Fault suite: the real `desk worker` binary and the real app against a PostgreSQL cluster
//! of each scenario's own (so it can be restarted), with the fake SMS provider on loopback.
//! A worker killed with SIGKILL in the middle of a batch, a provider that refuses as busy and
//! then takes messages without answering, and PostgreSQL restarted under submission load:
//! in each, every acknowledged request is stored once and every SMS reaches the provider
//! exactly once. Figures are printed (`cargo test -p desk-tests --test fault -- --nocapture`);
//! only the guarantees are asserted.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test code: a failed setup must fail the test loudly"
)]

use desk_db::embedded::{EmbeddedOptions, EmbeddedPostgres};
use desk_db::notifications::{self, Kind};
use desk_db::{DbConfig, PlatformDb, Tenant};
use desk_jobs::fake_sms::{Mode, Outbox};
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A scenario's world: its own cluster, municipalities with one Kavenegar account each, and
/// the fake provider.
struct Rig {
    dir: PathBuf,
    pg: Option<EmbeddedPostgres>,
    url: String,
    platform: PlatformDb,
    tenants: Vec<Tenant>,
    fake: String,
    outbox: Outbox,
}

/// The `desk` binary `scripts/test` builds before the suite.
fn desk_binary() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    );
    let bin = target.join("debug/desk");
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build -p desk` (scripts/test does)",
        bin.display()
    );
    bin
}

fn start_cluster(dir: &std::path::Path) -> EmbeddedPostgres {
    EmbeddedPostgres::start(&EmbeddedOptions {
        dir: dir.to_owned(),
        fsync: false,
    })
    .unwrap()
}

impl Rig {
    async fn start(name: &str, municipalities: usize) -> Self {
        let dir = std::env::temp_dir().join(format!("miz-fault-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let pg = start_cluster(&dir);
        let url = pg.database_url();
        let mut cfg = DbConfig::from_url(&url).unwrap();
        cfg.max_connections = 16;
        let platform = PlatformDb::connect_and_migrate(&cfg).await.unwrap();
        let authz = desk_authz::Authorizer::load(&platform).await.unwrap();
        let mut tenants = Vec::new();
        for i in 0..municipalities {
            let slug = format!("f{name}{i}").replace('_', "");
            let tenant = desk_tests::onboard(&platform, &authz, &slug).await;
            desk_tests::add_sms_account(&platform, &tenant, "kavenegar", &format!("key-{slug}"))
                .await;
            tenants.push(tenant);
        }
        let (fake, outbox) = desk_jobs::fake_sms::spawn().await.unwrap();
        Self {
            dir,
            pg: Some(pg),
            url,
            platform,
            tenants,
            fake,
            outbox,
        }
    }

    /// A transaction in `tenant`'s schema.
    async fn tx(&self, tenant: &Tenant) -> desk_db::TenantTx {
        self.platform
            .tenant_db()
            .begin(tenant.scope())
            .await
            .unwrap()
    }

    /// Starts a `desk worker` process (its log goes to `<dir>/worker-<n>.log`).
    fn worker(&self, n: usize) -> Child {
        let log = std::fs::File::create(self.dir.join(format!("worker-{n}.log"))).unwrap();
        let mut cmd = Command::new(desk_binary());
        cmd.arg("worker")
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.url)
            .env("DESK_SECRETS__MASTER_KEY", desk_tests::TEST_MASTER_KEY)
            .env("DESK_DATABASE__MAX_CONNECTIONS", "8")
            .env("DESK_HTTP__OPS_LISTEN", "127.0.0.1:0")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log));
        for (provider, var) in [
            ("kavenegar", "DESK_SMS__KAVENEGAR_URL"),
            ("smsir", "DESK_SMS__SMSIR_URL"),
            ("ghasedak", "DESK_SMS__GHASEDAK_URL"),
            ("magfa", "DESK_SMS__MAGFA_URL"),
        ] {
            cmd.env(var, format!("{}/{provider}", self.fake));
        }
        cmd.spawn().unwrap()
    }

    /// Queues `per_tenant` messages in each municipality (one transaction each), to numbers
    /// the fake scripts no fault for; returns (municipality index, notification id) of each.
    async fn queue(&self, per_tenant: usize) -> Vec<(usize, i64)> {
        let mut queued = Vec::new();
        for (t, tenant) in self.tenants.iter().enumerate() {
            let mut tx = self.tx(tenant).await;
            for i in 0..per_tenant {
                let to = format!("+98912{:07}", 1_000_005 + (t * 10_000 + i) * 10);
                let id =
                    notifications::queue_sms(&mut tx, Kind::Appointment, &to, "نوبت شما", None)
                        .await
                        .unwrap();
                queued.push((t, id));
            }
            tx.commit().await.unwrap();
        }
        queued
    }

    /// Notifications still queued across the municipalities (`None` while the database is
    /// unreachable).
    async fn unsent(&self, kind: &str) -> Option<i64> {
        let mut total = 0;
        for tenant in &self.tenants {
            let mut tx = self.platform.tenant_db().begin(tenant.scope()).await.ok()?;
            let n: i64 = sqlx::query_scalar(
                "select count(*) from notifications where kind = $1 and status <> 'sent'",
            )
            .bind(kind)
            .fetch_one(&mut *tx)
            .await
            .ok()?;
            tx.commit().await.ok()?;
            total += n;
        }
        Some(total)
    }

    /// Waits until no notification of `kind` is left unsent; returns how long it took.
    async fn all_sent(&self, kind: &str, limit: Duration) -> Duration {
        let started = Instant::now();
        loop {
            let left = self.unsent(kind).await;
            if left == Some(0) {
                return started.elapsed();
            }
            assert!(
                started.elapsed() < limit,
                "{left:?} {kind} messages still unsent after {limit:?} (logs in {})",
                self.dir.display()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// How many times the provider received each of the `messages`, by its client reference.
    fn receipts(&self, messages: &[(usize, i64)]) -> Vec<usize> {
        let mut seen: HashMap<(String, String), usize> = HashMap::new();
        for m in self.outbox.messages() {
            if let Some(local) = m.local_id {
                *seen.entry((m.account, local)).or_default() += 1;
            }
        }
        messages
            .iter()
            .map(|(t, id)| {
                let tenant = &self.tenants[*t];
                let key = (
                    format!("key-{}", tenant.slug.as_str()),
                    desk_jobs::send_sms::client_reference(tenant.id, *id),
                );
                seen.get(&key).copied().unwrap_or_default()
            })
            .collect()
    }

    /// Stops PostgreSQL (fast shutdown: sessions are cut) and starts it again on the same port
    /// after `down`.
    fn restart_postgres(&mut self, down: Duration) {
        if let Some(pg) = self.pg.take() {
            pg.stop().unwrap();
        }
        std::thread::sleep(down);
        self.pg = Some(start_cluster(&self.dir));
    }

    async fn finish(mut self) {
        self.platform.close().await;
        if let Some(pg) = self.pg.take() {
            pg.stop().unwrap();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Asks a worker process to stop (SIGTERM) and checks it drains and exits cleanly.
fn stop_gracefully(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "worker exited with {status}");
            return;
        }
        assert!(Instant::now() < deadline, "worker did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn assert_each_once(rig: &Rig, messages: &[(usize, i64)]) {
    let receipts = rig.receipts(messages);
    let lost = receipts.iter().filter(|n| **n == 0).count();
    let twice = receipts.iter().filter(|n| **n > 1).count();
    assert_eq!(
        (lost, twice),
        (0, 0),
        "of {} messages: {lost} never reached the provider, {twice} reached it more than once",
        messages.len()
    );
}

/// A worker killed (SIGKILL) with a batch in flight: its jobs are taken up by the next worker
/// once the dead one misses its heartbeats; messages it had handed to the provider are found
/// there by our client reference and not sent again; the rest are sent. Each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_batch_loses_no_sms_and_sends_none_twice() {
    let rig = Rig::start("kill", 3).await;
    // Slow answers keep a batch in flight when the worker dies.
    rig.outbox.set_mode(Mode::Slow(Duration::from_millis(150)));
    let messages = rig.queue(100).await;
    let mut first = rig.worker(1);
    let started = Instant::now();
    while rig.outbox.len() < 60 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first worker sent too little"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let at_kill = rig.outbox.len();
    rig.outbox.set_mode(Mode::Normal);
    let second = rig.worker(2);
    let took = rig.all_sent("appointment", Duration::from_secs(120)).await;
    stop_gracefully(second);
    println!(
        "fault kill: {} messages; the provider had {at_kill} when the worker was killed (SIGKILL); the second worker finished the rest {:.1} s later",
        messages.len(),
        took.as_secs_f64()
    );
    assert_each_once(&rig, &messages);
    rig.finish().await;
}

/// The provider refuses every send as busy, then takes messages without answering (the call
/// times out after 15 s), then recovers: every message is retried with backoff, looked up by
/// client reference where the provider may have it, and arrives exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_then_hanging_provider_gets_each_sms_once() {
    let rig = Rig::start("hang", 2).await;
    rig.outbox.set_mode(Mode::Busy);
    let worker = rig.worker(1);
    let busy = rig.queue(20).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        rig.receipts(&busy).iter().sum::<usize>(),
        0,
        "busy: nothing taken"
    );
    rig.outbox.set_mode(Mode::HangAfterAccept);
    let hung = rig.queue(10).await;
    // Wait for the retries of the busy ones and the new ones to reach the hanging provider.
    tokio::time::sleep(Duration::from_secs(7)).await;
    let taken_while_hanging = rig.outbox.len();
    rig.outbox.set_mode(Mode::Normal);
    let took = rig.all_sent("appointment", Duration::from_secs(150)).await;
    stop_gracefully(worker);
    let all: Vec<_> = busy.iter().chain(&hung).copied().collect();
    println!(
        "fault provider: {} messages; {taken_while_hanging} taken without an answer while the provider hung; all sent {:.1} s after it recovered",
        all.len(),
        took.as_secs_f64()
    );
    assert!(taken_while_hanging > 0, "the hang was exercised");
    assert_each_once(&rig, &all);
    rig.finish().await;
}

const SUBMIT: &str = "mutation($input: SubmitRequestInput!) { submitRequest(input: $input) { trackingCode replayed } }";

/// What one client saw.
#[derive(Default)]
struct ClientLog {
    /// (municipality index, idempotency key, tracking code) of each acknowledged submission.
    acknowledged: Vec<(usize, String, String)>,
    /// Answers that were not an acknowledgment, by kind.
    failures: HashMap<String, usize>,
    /// Submissions given up (never acknowledged).
    abandoned: usize,
}

/// PostgreSQL stopped (fast shutdown) and started again while clients submit requests through
/// the real app and a worker process sends their SMS: clients retry with their idempotency key
/// until acknowledged; afterwards every acknowledged request is stored exactly once, nothing
/// unacknowledged is left half-stored, and each request's SMS reached the provider once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_restarted_under_load_loses_no_acknowledged_request() {
    let rig = Rig::start("restart", 3).await;
    let card = desk::bench_submit::bench_card().unwrap();
    // A key per client and municipality: each stays under the API's rate per key.
    let clients_n = 6usize;
    let mut keys = Vec::new();
    for tenant in &rig.tenants {
        let mut tx = rig.tx(tenant).await;
        desk_db::catalog::seed_published(&mut tx, std::slice::from_ref(&card))
            .await
            .unwrap();
        let mut mine = Vec::new();
        for _ in 0..clients_n {
            let (key, _) = desk_db::api_keys::create(
                &mut tx,
                "fault",
                &["requests:submit".to_owned()],
                None,
                None,
                None,
            )
            .await
            .unwrap();
            mine.push(key);
        }
        tx.commit().await.unwrap();
        keys.push(mine);
    }
    let mut config = desk::config::Config::default();
    config.http.base_domain = "test".to_owned();
    config.web.uploads_dir = rig.dir.join("uploads");
    config.secrets.master_key = Some(desk_tests::TEST_MASTER_KEY.to_owned());
    let authz = desk_authz::Authorizer::load(&rig.platform).await.unwrap();
    let router = desk::app::build(&config, rig.platform.clone(), authz)
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(desk::app::serve_on(listener, router, async {
        let _ = stop_rx.await;
    }));
    let worker = rig.worker(1);

    let load_for = Duration::from_secs(10);
    let give_up = Duration::from_secs(60);
    let started = Instant::now();
    let slugs: Vec<String> = rig
        .tenants
        .iter()
        .map(|t| t.slug.as_str().to_owned())
        .collect();
    let mut clients = Vec::new();
    for c in 0..clients_n {
        let (keys, slugs) = (keys.clone(), slugs.clone());
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap();
            let mut log = ClientLog::default();
            let mut n = 0usize;
            while started.elapsed() < load_for {
                n += 1;
                let t = (c + n) % slugs.len();
                let idempotency = format!("fault-restart-{c:02}-{n:06}");
                let body = serde_json::json!({
                    "query": SUBMIT,
                    "variables": { "input": {
                        "serviceCode": desk::bench_submit::SERVICE,
                        "mobile": format!("0912{:07}", 1_000_005 + (c * 10_000 + n) * 10),
                        "idempotencyKey": idempotency,
                        "values": {
                            "applicant_national_code": "0499370899",
                            "full_name": "کاربر آزمون",
                            "address": "اصفهان، خیابان چهارباغ",
                        },
                    }},
                });
                // Retried with the same key until acknowledged.
                loop {
                    let answer = http
                        .post(format!("http://{addr}/graphql"))
                        .header("host", format!("{}.test", slugs[t]))
                        .header("authorization", format!("Bearer {}", keys[t][c]))
                        .json(&body)
                        .send()
                        .await;
                    let kind = match answer {
                        Ok(r) => {
                            let status = r.status();
                            let v: serde_json::Value = r.json().await.unwrap_or_default();
                            match v["data"]["submitRequest"]["trackingCode"].as_str() {
                                Some(code) if status.is_success() => {
                                    log.acknowledged.push((
                                        t,
                                        idempotency.clone(),
                                        code.to_owned(),
                                    ));
                                    break;
                                }
                                _ => format!(
                                    "HTTP {} {} {}",
                                    status.as_u16(),
                                    v["errors"][0]["extensions"]["code"].as_str().unwrap_or(""),
                                    v["errors"][0]["message"]
                                        .as_str()
                                        .unwrap_or("")
                                        .chars()
                                        .take(60)
                                        .collect::<String>()
                                ),
                            }
                        }
                        Err(e) if e.is_timeout() => "timeout".to_owned(),
                        Err(_) => "connection".to_owned(),
                    };
                    let refused = kind.contains("BAD_USER_INPUT");
                    *log.failures.entry(kind).or_default() += 1;
                    if refused || started.elapsed() > give_up {
                        log.abandoned += 1;
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
            log
        }));
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = rig.unsent("request_event").await;
    let down_at = Instant::now();
    let mut moved = rig;
    let rig = tokio::task::spawn_blocking(move || {
        moved.restart_postgres(Duration::from_secs(2));
        moved
    })
    .await
    .unwrap();
    let restart_took = down_at.elapsed();
    let mut logs = Vec::new();
    for c in clients {
        logs.push(c.await.unwrap());
    }
    let acknowledged: Vec<_> = logs.iter().flat_map(|l| l.acknowledged.clone()).collect();
    let abandoned: usize = logs.iter().map(|l| l.abandoned).sum();
    let mut failures: HashMap<String, usize> = HashMap::new();
    for l in &logs {
        for (k, n) in &l.failures {
            *failures.entry(k.clone()).or_default() += n;
        }
    }
    let took = rig
        .all_sent("request_event", Duration::from_secs(120))
        .await;
    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    stop_gracefully(worker);
    println!(
        "fault restart: {} submissions acknowledged ({abandoned} abandoned) by {clients_n} clients in {:.0} s; PostgreSQL down and up again in {:.1} s (unsent before: {before:?}); failed answers meanwhile: {failures:?}; all SMS sent {:.1} s after the load",
        acknowledged.len(),
        load_for.as_secs_f64(),
        restart_took.as_secs_f64(),
        took.as_secs_f64()
    );
    assert_eq!(abandoned, 0, "every submission was acknowledged in the end");
    assert!(
        !failures.keys().any(|k| k.starts_with("HTTP 500")),
        "a database outage is not an internal error: {failures:?}"
    );
    // Every acknowledged request is stored once; nothing else is stored.
    let mut sms = Vec::new();
    for (t, tenant) in rig.tenants.iter().enumerate() {
        let mut tx = rig.tx(tenant).await;
        let stored: Vec<(String, String)> =
            sqlx::query_as("select idempotency_key, tracking_code from requests")
                .fetch_all(&mut *tx)
                .await
                .unwrap();
        let ids: Vec<i64> =
            sqlx::query_scalar("select id from notifications where kind = 'request_event'")
                .fetch_all(&mut *tx)
                .await
                .unwrap();
        tx.commit().await.unwrap();
        let mut mine: Vec<(String, String)> = acknowledged
            .iter()
            .filter(|(i, _, _)| *i == t)
            .map(|(_, k, c)| (k.clone(), c.clone()))
            .collect();
        let mut stored = stored;
        mine.sort();
        stored.sort();
        assert_eq!(
            stored,
            mine,
            "{}: stored requests are exactly the acknowledged ones",
            tenant.slug.as_str()
        );
        assert_eq!(ids.len(), mine.len(), "one registration SMS per request");
        sms.extend(ids.into_iter().map(|id| (t, id)));
    }
    assert!(!acknowledged.is_empty());
    assert_each_once(&rig, &sms);
    rig.finish().await;
}
