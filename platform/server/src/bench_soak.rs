//! `desk bench soak`: the whole system in one process for minutes (the app, the workers, the
//! fake SMS provider), under a steady mix of service card pages and request submissions whose
//! SMS go through the workers, printing every interval the requests served, their p99, this
//! process's resident memory and the embedded PostgreSQL's. Memory is stable when the figures
//! after the warm-up stop climbing; the closing line compares the first sample after the
//! warm-up with the last.

use crate::bench::{
    BenchExtras, SoakArgs, bench_municipality, memory_report, ms, own_mib, postgres_memory, stats,
};
use crate::bench_submit::{SERVICE, SUBMIT, bench_card};
use crate::config::Config;
use desk_db::{DbConfig, PlatformDb};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// One client's tally for the current interval.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    errors: usize,
}

/// Runs the soak in the scratch database `db`.
pub(crate) async fn soak_in(
    config: &Config,
    args: &SoakArgs,
    db: &DbConfig,
) -> anyhow::Result<ExitCode> {
    let title = format!(
        "desk bench soak --tenants {} --minutes {} --concurrency {} --submit-every {}",
        args.tenants, args.minutes, args.concurrency, args.submit_every
    );
    let (db, platform, authz) = crate::bench::bench_start(config, db, &title).await?;
    let key = desk_core::secret::MasterKey::from_hex(&desk_core::secret::new_token())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let card = bench_card()?;
    let mut targets = Vec::with_capacity(args.tenants);
    for i in 0..args.tenants {
        let slug = format!("soak{i}");
        let extras = BenchExtras {
            card: Some(&card),
            submit_keys: args.concurrency,
            sms: Some((&key, format!("soak-{i}"))),
        };
        let (_, keys) = bench_municipality(&platform, &authz, &slug, extras).await?;
        targets.push((slug, keys));
    }
    let targets = Arc::new(targets);

    let mut soak_config = config.clone();
    soak_config.http.base_domain = "bench.test".to_owned();
    soak_config.web.uploads_dir =
        std::env::temp_dir().join(format!("desk-soak-uploads-{}", std::process::id()));
    let router = crate::app::build(&soak_config, platform.clone(), authz).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let server = tokio::spawn(crate::app::serve_on(
        listener,
        router,
        stopped(stop_rx.clone()),
    ));
    let (fake, outbox) = desk_jobs::fake_sms::spawn().await?;
    let workers = tokio::spawn(desk_jobs::run_workers(
        PlatformDb::connect(&db).await?,
        config.public_urls(),
        Some(key),
        desk_jobs::sms::Endpoints::all_at(&fake),
        desk_jobs::outbound::Outbound::default(),
        stopped(stop_rx),
    ));

    let done = Arc::new(AtomicBool::new(false));
    let tallies: Vec<Arc<std::sync::Mutex<Tally>>> =
        (0..args.concurrency).map(|_| Arc::default()).collect();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let mut clients = Vec::new();
    for (c, tally) in tallies.iter().enumerate() {
        let (http, targets, done, tally) =
            (http.clone(), targets.clone(), done.clone(), tally.clone());
        let submit_every = args.submit_every.max(1);
        clients.push(tokio::spawn(async move {
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (c as u64 + 1);
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                n += 1;
                let (slug, keys) = &targets[(x % targets.len() as u64) as usize];
                let host = format!("{slug}.bench.test");
                let t = Instant::now();
                let ok = if n.is_multiple_of(submit_every) {
                    let body = serde_json::json!({
                        "query": SUBMIT,
                        "variables": { "input": {
                            "serviceCode": SERVICE,
                            "mobile": format!("0912{:07}", 1_000_005 + (x % 800_000) * 10),
                            "idempotencyKey": format!("soak-{c}-{n}-{x:016x}"),
                            "values": {
                                "applicant_national_code": "0499370899",
                                "full_name": "کاربر آزمون",
                                "address": "اصفهان، خیابان چهارباغ",
                            },
                        }},
                    });
                    match http
                        .post(format!("http://{addr}/graphql"))
                        .header("host", &host)
                        .header("authorization", format!("Bearer {}", keys[c % keys.len()]))
                        .json(&body)
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => r
                            .json::<serde_json::Value>()
                            .await
                            .is_ok_and(|v| v["errors"].is_null()),
                        _ => false,
                    }
                } else {
                    match http
                        .get(format!("http://{addr}/services/{SERVICE}"))
                        .header("host", &host)
                        .send()
                        .await
                    {
                        Ok(r) if r.status().is_success() => r.bytes().await.is_ok(),
                        _ => false,
                    }
                };
                if let Ok(mut t2) = tally.lock() {
                    if ok {
                        t2.latencies.push(t.elapsed());
                    } else {
                        t2.errors += 1;
                    }
                }
            }
        }));
    }

    let started = Instant::now();
    let total = Duration::from_secs(args.minutes * 60);
    let every = Duration::from_secs(args.interval_secs.max(1));
    let warm_up = Duration::from_secs(60).min(total / 2);
    let mut samples: Vec<(Duration, f64)> = Vec::new();
    let (mut served, mut failed, mut sent_sms) = (0usize, 0usize, 0usize);
    println!("   time   req/s   errors   p99      RSS MiB   SMS at provider   PostgreSQL");
    while started.elapsed() < total {
        tokio::time::sleep(every).await;
        let mut interval = Vec::new();
        let mut errors = 0;
        for t in &tallies {
            if let Ok(mut t) = t.lock() {
                interval.append(&mut t.latencies);
                errors += std::mem::take(&mut t.errors);
            }
        }
        let count = interval.len();
        served += count;
        failed += errors;
        let p99 = if interval.is_empty() {
            "-".to_owned()
        } else {
            ms(stats(interval).p99)
        };
        // The fake provider's record lives in this process: forget it, so only the system's
        // own memory is measured.
        sent_sms += outbox.forget();
        let rss = own_mib("VmRSS:");
        let at = started.elapsed();
        samples.push((at, rss));
        let pg = postgres_memory(&args.data_dir);
        println!(
            "{:>5.0} s {:>7.0} {:>8} {:>8} {:>9.0} {:>17}   {pg}",
            at.as_secs_f64(),
            count as f64 / every.as_secs_f64(),
            errors,
            p99,
            rss,
            sent_sms
        );
    }
    done.store(true, Ordering::Relaxed);
    for c in clients {
        c.await?;
    }
    let _ = stop_tx.send(true);
    server.await??;
    workers.await??;
    let after_warm_up = samples
        .iter()
        .find(|(at, _)| *at >= warm_up)
        .or(samples.first())
        .map_or(0.0, |(_, r)| *r);
    let last = samples.last().map_or(0.0, |(_, r)| *r);
    let peak = samples.iter().map(|(_, r)| *r).fold(0.0, f64::max);
    println!(
        "soak: {served} requests served, {failed} failed in {:.0} s; RSS {after_warm_up:.0} MiB after the {:.0} s warm-up, {last:.0} MiB at the end ({:+.1}%), peak {peak:.0} MiB; {} SMS reached the provider",
        started.elapsed().as_secs_f64(),
        warm_up.as_secs_f64(),
        if after_warm_up > 0.0 {
            (last - after_warm_up) / after_warm_up * 100.0
        } else {
            0.0
        },
        sent_sms + outbox.forget()
    );
    println!("{}", memory_report(&args.data_dir));
    let _ = std::fs::remove_dir_all(&soak_config.web.uploads_dir);
    Ok(ExitCode::SUCCESS)
}
