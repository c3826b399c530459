//! `desk bench submit`: request submission through the real stack (HTTP, GraphQL, API key,
//! form validation, one tenant transaction with event, SMS and job), each request for a random
//! municipality; then pgbench sends the same SQL statements, in the same order and
//! transactions, to the same database, so the app's overhead shows as a ratio.

use crate::bench::{BenchExtras, SubmitArgs, bench_municipality, ms, stats};
use crate::config::Config;
use desk_core::catalog::ServiceCard;
use desk_db::DbConfig;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// The code of the benchmark's service.
pub const SERVICE: &str = "BENCH-001";

/// The submission mutation the benchmarks send.
pub const SUBMIT: &str =
    "mutation($input: SubmitRequestInput!) { submitRequest(input: $input) { trackingCode } }";

/// A service whose default form has no file fields (the national cards all ask for
/// documents, which would make this a file-store benchmark).
pub fn bench_card() -> anyhow::Result<ServiceCard> {
    let base = desk_core::template::national_template()?
        .first()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("empty national template"))?;
    Ok(ServiceCard {
        code: SERVICE.to_owned(),
        documents: Vec::new(),
        form: None,
        ..base
    })
}

/// The statements one submission runs, for pgbench: the key check, the service, then the
/// filing transaction (settings, holidays, idempotency lock and check, request, event,
/// notification, job, read back). `ROLE_PREFIX` is replaced before writing.
const PGBENCH_SCRIPT: &str = r#"\set t random(0, TENANTS_MINUS_ONE)
\set m random(100000000, 999999999)
BEGIN;
SET LOCAL search_path TO t_sub:t, public;
SET LOCAL ROLE ROLE_PREFIXsub:t;
UPDATE api_keys SET last_used_at = now() WHERE key_hash = sha256(convert_to('miz_bench_:m', 'UTF8')) AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now()) RETURNING id;
COMMIT;
BEGIN;
SET LOCAL search_path TO t_sub:t, public;
SET LOCAL ROLE ROLE_PREFIXsub:t;
SELECT id, card, version FROM services WHERE code = 'BENCH-001' AND status = 'published' AND NOT hidden;
COMMIT;
BEGIN;
SET LOCAL search_path TO t_sub:t, public;
SET LOCAL ROLE ROLE_PREFIXsub:t;
SELECT value FROM settings WHERE key = 'work_week';
SELECT day FROM holidays WHERE day >= current_date ORDER BY day;
SELECT body FROM sms_templates WHERE event = 'request_registered';
SELECT pg_advisory_xact_lock(hashtextextended(current_schema() || ':submit:' || 'pgb-:client_id-:m-key', 0));
SELECT id, mobile FROM requests WHERE idempotency_key = 'pgb-:client_id-:m-key';
INSERT INTO requests (tracking_code, service_id, service_code, mobile, national_code, applicant_name, channel, state, form, submitted_on, promised_on, state_due_on, idempotency_key) SELECT lpad((random() * 999999999999)::bigint::text, 12, '0'), id, code, '+989:m', '0499370899', 'bench', 'api', 'submitted', '{"full_name": "bench", "address": "اصفهان", "applicant_national_code": "0499370899"}', current_date, current_date + 10, current_date + 1, 'pgb-:client_id-:m-key' FROM services WHERE code = 'BENCH-001' AND status = 'published' ON CONFLICT ON CONSTRAINT requests_tracking_code_key DO NOTHING RETURNING id AS rid \gset
INSERT INTO request_events (request_id, actor_kind, action, to_state) VALUES (:rid, 'citizen', 'submit', 'submitted') RETURNING id AS eid \gset
INSERT INTO notifications (kind, recipient, body, request_id, event_id) VALUES ('request_event', '+989:m', 'درخواست شما ثبت شد. کد رهگیری: 123456789012', :rid, :eid) RETURNING id;
INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at, priority, metadata, idempotency_key) VALUES (gen_random_uuid()::text, 'send_sms', convert_to('{"tenant_id":"x","notification_id":1}', 'UTF8'), 'Pending', 0, 25, now(), 0, ''::hstore, 'pgb-:client_id-:m');
SELECT r.id, r.tracking_code, s.title FROM requests r JOIN services s ON s.id = r.service_id LEFT JOIN units u ON u.id = r.unit_id LEFT JOIN staff a ON a.id = r.assignee_id LEFT JOIN staff g ON g.id = r.registered_by WHERE r.id = :rid;
COMMIT;
"#;

/// Runs the benchmark in the scratch database `db`.
pub(crate) async fn submit_in(
    config: &Config,
    args: &SubmitArgs,
    db: &DbConfig,
) -> anyhow::Result<ExitCode> {
    let title = format!(
        "desk bench submit --tenants {} --seconds {} --concurrency {}",
        args.tenants, args.seconds, args.concurrency
    );
    let (db, platform, authz) = crate::bench::bench_start(config, db, &title).await?;
    let card = bench_card()?;
    let started = Instant::now();
    let mut targets = Vec::with_capacity(args.tenants);
    for i in 0..args.tenants {
        let slug = format!("sub{i}");
        let extras = BenchExtras {
            card: Some(&card),
            submit_keys: 1,
            sms: None,
        };
        let (_, keys) = bench_municipality(&platform, &authz, &slug, extras).await?;
        let key = keys.into_iter().next().unwrap_or_default();
        targets.push((slug, key));
    }
    println!(
        "onboarded {} municipalities with a bench service and an API key in {:.1} s",
        args.tenants,
        started.elapsed().as_secs_f64()
    );

    let mut bench_config = config.clone();
    bench_config.http.base_domain = "bench.test".to_owned();
    let uploads = std::env::temp_dir().join(format!("desk-bench-uploads-{}", std::process::id()));
    bench_config.web.uploads_dir = uploads.clone();
    let router = crate::app::build(&bench_config, platform.clone(), authz).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::app::serve_on(listener, router, async {
        let _ = stop_rx.await;
    }));
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let (http, targets) = (http.clone(), targets.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1);
            let mut n = 0u64;
            while Instant::now() < deadline {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                n += 1;
                let (slug, key) = &targets[(x % targets.len() as u64) as usize];
                let body = serde_json::json!({
                    "query": SUBMIT,
                    "variables": { "input": {
                        "serviceCode": SERVICE,
                        "mobile": format!("0912{:07}", x % 10_000_000),
                        "idempotencyKey": format!("bench-{w}-{n}-{x:016x}"),
                        "values": {
                            "applicant_national_code": "0499370899",
                            "full_name": "کاربر آزمون",
                            "address": "اصفهان، خیابان چهارباغ",
                        },
                    }},
                });
                let t = Instant::now();
                let ok = match http
                    .post(format!("http://{addr}/graphql"))
                    .header("host", format!("{slug}.bench.test"))
                    .header("authorization", format!("Bearer {key}"))
                    .json(&body)
                    .send()
                    .await
                {
                    Ok(r) if r.status().is_success() => {
                        r.json::<serde_json::Value>().await.is_ok_and(|v| {
                            v["errors"].is_null()
                                && v["data"]["submitRequest"]["trackingCode"].is_string()
                        })
                    }
                    _ => false,
                };
                if ok {
                    latencies.push(t.elapsed());
                } else {
                    errors += 1;
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for w in workers {
        let (l, e) = w.await?;
        all.extend(l);
        errors += e;
    }
    let _ = stop_tx.send(());
    server.await??;
    let count = all.len();
    anyhow::ensure!(count > 0, "no submission succeeded ({errors} failed)");
    let s = stats(all);
    let app_rate = count as f64 / args.seconds as f64;
    println!(
        "app submissions: {} ok, {} failed in {} s = {:.0} req/s; median {}, p90 {}, p99 {}, max {}",
        count,
        errors,
        args.seconds,
        app_rate,
        ms(s.median),
        ms(s.p90),
        ms(s.p99),
        ms(s.max)
    );

    // pgbench: the same statements against the same municipalities.
    let role: String =
        sqlx::query_scalar("select db_role from platform.tenants where slug = 'sub0'")
            .fetch_one(platform.pool_for_infrastructure())
            .await?;
    let prefix = role
        .strip_suffix("sub0")
        .ok_or_else(|| anyhow::anyhow!("unexpected role name {role}"))?;
    let dir = std::env::temp_dir().join(format!("desk-bench-pgbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("submit.sql");
    std::fs::write(
        &script,
        PGBENCH_SCRIPT
            .replace("TENANTS_MINUS_ONE", &(args.tenants - 1).to_string())
            .replace("ROLE_PREFIX", prefix),
    )?;
    let c = &db.connect;
    let output = tokio::process::Command::new("pgbench")
        .arg("-n")
        .args(["-M", "simple"])
        .args(["-c", &args.concurrency.to_string()])
        .args(["-j", "2"])
        .args(["-T", &args.seconds.to_string()])
        .args(["-f", &script.to_string_lossy()])
        .arg("-l")
        .arg(format!(
            "--log-prefix={}",
            dir.join("log").to_string_lossy()
        ))
        .args(["-h", c.get_host()])
        .args(["-p", &c.get_port().to_string()])
        .args(["-U", c.get_username()])
        .arg(c.get_database().unwrap_or("postgres"))
        .current_dir(&dir)
        .output()
        .await;
    match output {
        Ok(out) if out.status.success() => {
            let mut latencies = Vec::new();
            for entry in std::fs::read_dir(&dir)?.flatten() {
                if entry.file_name().to_string_lossy().starts_with("log") {
                    for line in std::fs::read_to_string(entry.path())?.lines() {
                        if let Some(us) = line
                            .split_whitespace()
                            .nth(2)
                            .and_then(|v| v.parse::<u64>().ok())
                        {
                            latencies.push(Duration::from_micros(us));
                        }
                    }
                }
            }
            let text = String::from_utf8_lossy(&out.stdout);
            let failed = text
                .lines()
                .find(|l| l.contains("number of failed transactions"))
                .unwrap_or("")
                .trim()
                .to_owned();
            anyhow::ensure!(
                !latencies.is_empty(),
                "pgbench logged no transactions:\n{text}"
            );
            let n = latencies.len();
            let p = stats(latencies);
            let pg_rate = n as f64 / args.seconds as f64;
            println!(
                "pgbench, same SQL: {} transactions in {} s = {:.0} tx/s; median {}, p90 {}, p99 {}, max {} ({failed})",
                n,
                args.seconds,
                pg_rate,
                ms(p.median),
                ms(p.p90),
                ms(p.p99),
                ms(p.max)
            );
            println!(
                "app/pgbench: throughput {:.2}x, p99 {:.2}x",
                app_rate / pg_rate,
                s.p99.as_secs_f64() / p.p99.as_secs_f64()
            );
        }
        Ok(out) => println!(
            "pgbench failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(e) => println!("pgbench not run ({e}); install PostgreSQL's client tools to compare"),
    }
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&uploads);
    platform.close().await;
    Ok(ExitCode::SUCCESS)
}
