//! `desk bench sms`: the SMS pipeline end to end: outbox rows written in tenant transactions
//! with their `send_sms` jobs, the workers of this process sending through each
//! municipality's own (sealed) provider account to the fake provider on loopback, which
//! records when each message arrived. Two phases: a burst (throughput: how fast the whole
//! backlog drains) and a paced load (latency from commit to the provider, p50/p99).

use crate::bench::{BenchExtras, SmsArgs, bench_municipality, ms, stats};
use crate::config::Config;
use desk_db::notifications::{self, Kind};
use desk_db::{DbConfig, PlatformDb, Tenant};
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Committed = Arc<Mutex<HashMap<String, Instant>>>;

/// Writes message `seq` for `tenant` and notes when it committed.
async fn write_one(
    platform: &PlatformDb,
    tenant: &Tenant,
    seq: usize,
    committed: &Committed,
) -> anyhow::Result<()> {
    let tag = format!("#{seq}#");
    let mut tx = platform.tenant_db().begin(tenant.scope()).await?;
    notifications::queue_sms(
        &mut tx,
        Kind::Appointment,
        // Never a number the fake provider scripts a fault for (those end in 0000, 1111, ...).
        &format!("+98912{:07}", 1_000_005 + (seq % 800_000) * 10),
        &format!("میز خدمت: نوبت شما ثبت شد {tag}"),
        None,
    )
    .await?;
    tx.commit().await?;
    if let Ok(mut c) = committed.lock() {
        c.insert(tag, Instant::now());
    }
    Ok(())
}

fn tag_of(text: &str) -> Option<String> {
    let start = text.find('#')?;
    let end = text[start + 1..].find('#')? + start + 2;
    Some(text[start..end].to_owned())
}

/// Waits until the fake provider has `n` bench messages (or `limit` passes); returns their
/// arrival times by tag.
async fn arrivals(
    outbox: &desk_jobs::fake_sms::Outbox,
    n: usize,
    limit: Duration,
) -> HashMap<String, Instant> {
    let until = Instant::now() + limit;
    loop {
        let got: HashMap<String, Instant> = outbox
            .messages()
            .into_iter()
            .filter_map(|m| Some((tag_of(&m.text)?, m.at)))
            .collect();
        if got.len() >= n || Instant::now() > until {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs the benchmark in the scratch database `db`.
pub(crate) async fn sms_in(
    config: &Config,
    args: &SmsArgs,
    db: &DbConfig,
) -> anyhow::Result<ExitCode> {
    let title = format!(
        "desk bench sms --tenants {} --messages {} --rate {} --producers {}",
        args.tenants, args.messages, args.rate, args.producers
    );
    let (db, platform, authz) = crate::bench::bench_start(config, db, &title).await?;
    // A throwaway key: 64 random hex characters.
    let key = desk_core::secret::MasterKey::from_hex(&desk_core::secret::new_token())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut tenants = Vec::with_capacity(args.tenants);
    for i in 0..args.tenants {
        let extras = BenchExtras {
            sms: Some((&key, format!("bench-{i}"))),
            ..BenchExtras::default()
        };
        let (tenant, _) = bench_municipality(&platform, &authz, &format!("sms{i}"), extras).await?;
        tenants.push(tenant);
    }
    let (fake, outbox) = desk_jobs::fake_sms::spawn().await?;
    let worker_db = PlatformDb::connect(&db).await?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let workers = tokio::spawn(desk_jobs::run_workers(
        worker_db,
        config.public_urls(),
        Some(key.clone()),
        desk_jobs::sms::Endpoints::all_at(&fake),
        desk_jobs::outbound::Outbound::default(),
        async {
            let _ = stop_rx.await;
        },
    ));
    // Let the onboarding welcomes (to the admins' numbers) go first.
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Phase 1: a burst, written as fast as the producers can.
    let committed: Committed = Arc::default();
    let started = Instant::now();
    let mut producers = Vec::new();
    for p in 0..args.producers {
        let (platform, tenants, committed) = (platform.clone(), tenants.clone(), committed.clone());
        let (n, producers_n) = (args.messages, args.producers);
        producers.push(tokio::spawn(async move {
            for seq in (p..n).step_by(producers_n) {
                write_one(&platform, &tenants[seq % tenants.len()], seq, &committed).await?;
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for p in producers {
        p.await??;
    }
    let written = started.elapsed();
    let got = arrivals(&outbox, args.messages, Duration::from_secs(120)).await;
    let last = got.values().max().copied().unwrap_or(started);
    let drained = last.duration_since(started);
    println!(
        "burst: {} messages written in {:.2} s ({:.0}/s), {} at the provider after {:.2} s: {:.0} messages/s",
        args.messages,
        written.as_secs_f64(),
        args.messages as f64 / written.as_secs_f64(),
        got.len(),
        drained.as_secs_f64(),
        got.len() as f64 / drained.as_secs_f64().max(1e-9)
    );

    // Phase 2: paced below capacity, for the latency of one status change.
    let offset = args.messages;
    let paced: Committed = Arc::default();
    let interval = Duration::from_secs_f64(1.0 / args.rate.max(1.0));
    let n = (args.rate * args.seconds as f64) as usize;
    let begun = Instant::now();
    let mut handles = Vec::new();
    for i in 0..n {
        let due = begun + interval.mul_f64(i as f64);
        tokio::time::sleep_until(due.into()).await;
        let (platform, tenant, paced) = (
            platform.clone(),
            tenants[i % tenants.len()].clone(),
            paced.clone(),
        );
        handles.push(tokio::spawn(async move {
            write_one(&platform, &tenant, offset + i, &paced).await
        }));
    }
    for h in handles {
        h.await??;
    }
    let got = arrivals(&outbox, args.messages + n, Duration::from_secs(60)).await;
    let commits = paced.lock().map(|c| c.clone()).unwrap_or_default();
    let latencies: Vec<Duration> = commits
        .iter()
        .filter_map(|(tag, at)| Some(got.get(tag)?.saturating_duration_since(*at)))
        .collect();
    let _ = stop_tx.send(());
    workers.await??;
    if latencies.is_empty() {
        anyhow::bail!("no paced message reached the provider");
    }
    let s = stats(latencies.clone());
    println!(
        "paced: {} messages at {:.0}/s over {} s, {} arrived; commit → provider p50 {} p90 {} p99 {} max {}",
        n,
        args.rate,
        args.seconds,
        latencies.len(),
        ms(s.median),
        ms(s.p90),
        ms(s.p99),
        ms(s.max)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    #[test]
    fn tags_are_found_in_texts() {
        assert_eq!(super::tag_of("نوبت #12# ثبت").as_deref(), Some("#12#"));
        assert_eq!(super::tag_of("no tag"), None);
    }
}
