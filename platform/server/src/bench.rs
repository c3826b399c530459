//! `desk bench tenancy`: provisioning and migration figures at municipality scale, printed, never
//! asserted. Runs in a scratch database on the configured server (or the embedded one), which it
//! drops at the end.

use crate::app::with_pool_settings;
use crate::config::Config;
use anyhow::Context;
use clap::{Args, Subcommand};
use desk_authz::Authorizer;
use desk_core::{Hostname, MobileNumber, TenantSlug};
use desk_db::embedded::{EmbeddedOptions, EmbeddedPostgres};
use desk_db::migrate::{MigrateOptions, TenantMigrations};
use desk_db::scratch::ScratchDatabase;
use desk_db::{DbConfig, NewTenant, PlatformDb};
use desk_tenant_admin::{Actor, FirstAdmin, Onboarding};
use futures::StreamExt;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Onboarding time with 0 and N existing tenants; `migrate` no-op and one new migration.
    Tenancy(TenancyArgs),
    /// Service card page throughput and latency, each request for a random municipality.
    Cards(CardsArgs),
    /// Request submission throughput and latency (GraphQL with API keys, random
    /// municipalities), next to pgbench running the same SQL on the same database.
    Submit(SubmitArgs),
    /// SMS pipeline throughput (a burst) and latency from commit to the provider (paced),
    /// through the workers to the fake provider on loopback.
    Sms(SmsArgs),
    /// Minutes of steady mixed load (card pages, submissions and their SMS through the
    /// workers), printing throughput, p99 and memory every interval.
    Soak(SoakArgs),
}

/// Options of `desk bench soak`.
#[derive(Debug, Args)]
pub struct SoakArgs {
    /// Municipalities (each with the national catalog, a bench service, API keys and an SMS
    /// account at the fake provider).
    #[arg(long, default_value_t = 50)]
    pub(crate) tenants: usize,
    /// Minutes of load.
    #[arg(long, default_value_t = 10)]
    pub(crate) minutes: u64,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    pub(crate) concurrency: usize,
    /// Every n-th request of a client is a submission (the rest are card pages).
    #[arg(long, default_value_t = 20)]
    pub(crate) submit_every: u64,
    /// Seconds between printed samples.
    #[arg(long, default_value_t = 30)]
    pub(crate) interval_secs: u64,
    /// Where the embedded PostgreSQL lives when DATABASE_URL is not set.
    #[arg(long, default_value = ".desk-bench")]
    pub(crate) data_dir: PathBuf,
}

/// Options of `desk bench sms`.
#[derive(Debug, Args)]
pub struct SmsArgs {
    /// Municipalities, each with its own provider account.
    #[arg(long, default_value_t = 20)]
    pub(crate) tenants: usize,
    /// Messages in the burst.
    #[arg(long, default_value_t = 5000)]
    pub(crate) messages: usize,
    /// Transactions writing the burst at once.
    #[arg(long, default_value_t = 8)]
    pub(crate) producers: usize,
    /// Messages per second in the paced phase.
    #[arg(long, default_value_t = 200.0)]
    pub(crate) rate: f64,
    /// Seconds of the paced phase.
    #[arg(long, default_value_t = 10)]
    pub(crate) seconds: u64,
    /// Where the embedded PostgreSQL lives when DATABASE_URL is not set.
    #[arg(long, default_value = ".desk-bench")]
    pub(crate) data_dir: PathBuf,
}

/// Options of `desk bench submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Municipalities (each onboarded with the national catalog and one bench service).
    #[arg(long, default_value_t = 200)]
    pub(crate) tenants: usize,
    /// Seconds of load, for the app and again for pgbench.
    #[arg(long, default_value_t = 10)]
    pub(crate) seconds: u64,
    /// Requests in flight (and pgbench clients).
    #[arg(long, default_value_t = 16)]
    pub(crate) concurrency: usize,
    /// Where the embedded PostgreSQL lives when DATABASE_URL is not set.
    #[arg(long, default_value = ".desk-bench")]
    pub(crate) data_dir: PathBuf,
}

/// Options of `desk bench cards`.
#[derive(Debug, Args)]
pub struct CardsArgs {
    /// Municipalities (each onboarded with the national catalog).
    #[arg(long, default_value_t = 200)]
    tenants: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Requests in flight.
    #[arg(long, default_value_t = 16)]
    concurrency: usize,
    /// Where the embedded PostgreSQL lives when DATABASE_URL is not set.
    #[arg(long, default_value = ".desk-bench")]
    data_dir: PathBuf,
}

/// Options of `desk bench tenancy`.
#[derive(Debug, Args)]
pub struct TenancyArgs {
    /// Tenants that exist for the second round of samples and the migration runs.
    #[arg(long, default_value_t = 1500)]
    tenants: usize,
    /// Onboardings timed in each round.
    #[arg(long, default_value_t = 20)]
    samples: usize,
    /// Where the embedded PostgreSQL lives when DATABASE_URL is not set (fsync stays on).
    #[arg(long, default_value = ".desk-bench")]
    data_dir: PathBuf,
}

/// Runs a benchmark.
pub async fn run(config: &Config, cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BenchCommand::Tenancy(args) => tenancy(config, &args).await,
        BenchCommand::Cards(args) => {
            with_scratch(config, &args.data_dir, async |db| {
                cards_in(config, &args, db).await
            })
            .await
        }
        BenchCommand::Sms(args) => {
            with_scratch(config, &args.data_dir, async |db| {
                crate::bench_sms::sms_in(config, &args, db).await
            })
            .await
        }
        BenchCommand::Soak(args) => {
            with_scratch(config, &args.data_dir, async |db| {
                crate::bench_soak::soak_in(config, &args, db).await
            })
            .await
        }
        BenchCommand::Submit(args) => {
            with_scratch(config, &args.data_dir, async |db| {
                crate::bench_submit::submit_in(config, &args, db).await
            })
            .await
        }
    }
}

pub(crate) struct Stats {
    pub(crate) median: Duration,
    pub(crate) p90: Duration,
    pub(crate) p99: Duration,
    pub(crate) min: Duration,
    pub(crate) max: Duration,
}

pub(crate) fn stats(mut xs: Vec<Duration>) -> Stats {
    xs.sort();
    let at = |q: f64| xs[((xs.len() - 1) as f64 * q).round() as usize];
    Stats {
        median: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        min: xs[0],
        max: xs[xs.len() - 1],
    }
}

pub(crate) fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Connects to the scratch database `db` with the configured pool, migrates it, loads the
/// policies and prints the command line `title` and the machine.
pub(crate) async fn bench_start(
    config: &Config,
    db: &DbConfig,
    title: &str,
) -> anyhow::Result<(DbConfig, desk_db::PlatformDb, desk_authz::Authorizer)> {
    let db = crate::app::with_pool_settings(db.clone(), config)?;
    let platform = desk_db::PlatformDb::connect_and_migrate(&db).await?;
    let authz = desk_authz::Authorizer::load(&platform).await?;
    println!("{title}");
    println!(
        "machine: {}; pool {} connections",
        machine(),
        db.max_connections
    );
    Ok((db, platform, authz))
}

/// What a benchmark municipality gets besides onboarding (national catalog, first admin).
#[derive(Default)]
pub(crate) struct BenchExtras<'a> {
    /// A card to publish.
    pub(crate) card: Option<&'a desk_core::catalog::ServiceCard>,
    /// API keys that may submit requests.
    pub(crate) submit_keys: usize,
    /// A Kavenegar account with this API key, sealed with the master key.
    pub(crate) sms: Option<(&'a desk_core::secret::MasterKey, String)>,
}

/// Onboards `slug` for a benchmark with `extras`; returns it and its API keys.
pub(crate) async fn bench_municipality(
    platform: &desk_db::PlatformDb,
    authz: &desk_authz::Authorizer,
    slug: &str,
    extras: BenchExtras<'_>,
) -> anyhow::Result<(desk_db::Tenant, Vec<String>)> {
    let (tenant, _) = desk_tenant_admin::onboard(
        platform,
        authz,
        &desk_tenant_admin::Actor::Cli,
        "bench",
        &onboarding(slug)?,
    )
    .await?;
    let mut tx = platform.tenant_db().begin(tenant.scope()).await?;
    if let Some(card) = extras.card {
        desk_db::catalog::seed_published(&mut tx, std::slice::from_ref(card)).await?;
    }
    let mut keys = Vec::with_capacity(extras.submit_keys);
    for _ in 0..extras.submit_keys {
        let (key, _) = desk_db::api_keys::create(
            &mut tx,
            "bench",
            &["requests:submit".to_owned()],
            None,
            None,
            None,
        )
        .await?;
        keys.push(key);
    }
    if let Some((master, api_key)) = extras.sms {
        let creds = serde_json::json!({ "api_key": api_key }).to_string();
        desk_db::settings::add_sms_account(&mut tx, "kavenegar", "bench", "3000505", |id| {
            master.seal(tenant.id, &format!("sms_account:{id}"), creds.as_bytes())
        })
        .await?;
    }
    tx.commit().await?;
    Ok((tenant, keys))
}

pub(crate) fn onboarding(slug: &str) -> anyhow::Result<Onboarding> {
    Ok(Onboarding {
        theme: desk_tenant_admin::DEFAULT_THEME.to_owned(),
        tenant: new_tenant(slug)?,
        first_admin: Some(FirstAdmin {
            username: format!("admin-{slug}"),
            display_name: "مدیر".to_owned(),
            mobile: MobileNumber::parse("09130000000").map_err(|e| anyhow::anyhow!("{e}"))?,
        }),
    })
}

fn new_tenant(slug: &str) -> anyhow::Result<NewTenant> {
    Ok(NewTenant {
        slug: TenantSlug::parse(slug).map_err(|e| anyhow::anyhow!("{e}"))?,
        name_fa: "شهرداری نمونه".to_owned(),
        name_en: String::new(),
        province_id: 4,
        domains: vec![
            Hostname::parse(&format!("{slug}.bench.test")).map_err(|e| anyhow::anyhow!("{e}"))?,
        ],
    })
}

async fn sample_onboarding(
    db: &PlatformDb,
    authz: &Authorizer,
    prefix: &str,
    n: usize,
) -> anyhow::Result<Stats> {
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let req = onboarding(&format!("{prefix}{i}"))?;
        let started = Instant::now();
        desk_tenant_admin::onboard(db, authz, &Actor::Cli, "bench", &req).await?;
        times.push(started.elapsed());
    }
    Ok(stats(times))
}

/// A `kB` field of a `/proc/<pid>/status` file, in MiB.
fn status_mib(status: &str, field: &str) -> Option<f64> {
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
}

/// Memory figures after a run: this process's peak and current resident set (server and load
/// generator together: an upper bound for the server), and the embedded PostgreSQL's processes
/// (the postmaster in `data_dir/pgdata` and its children) by proportional set size, so shared
/// buffers are counted once.
pub(crate) fn memory_report(data_dir: &std::path::Path) -> String {
    let (peak, now) = (own_mib("VmHWM:"), own_mib("VmRSS:"));
    format!(
        "memory: this process peak RSS {peak:.0} MiB (now {now:.0} MiB); {}",
        postgres_memory(data_dir)
    )
}

/// A `kB` field of this process's status (`VmRSS:`, `VmHWM:`), in MiB.
pub(crate) fn own_mib(field: &str) -> f64 {
    let me = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status_mib(&me, field).unwrap_or(0.0)
}

/// The embedded PostgreSQL's processes in `data_dir` by proportional set size.
pub(crate) fn postgres_memory(data_dir: &std::path::Path) -> String {
    let postmaster: Option<u32> =
        std::fs::read_to_string(data_dir.join("pgdata").join("postmaster.pid"))
            .ok()
            .and_then(|s| s.lines().next().and_then(|l| l.trim().parse().ok()));
    let Some(postmaster) = postmaster else {
        return "PostgreSQL not the embedded one here, not measured".to_owned();
    };
    let (mut pss, mut count, mut largest) = (0.0_f64, 0, 0.0_f64);
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let path = entry.path();
            let Some(pid) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let status = std::fs::read_to_string(path.join("status")).unwrap_or_default();
            let ppid = status
                .lines()
                .find(|l| l.starts_with("PPid:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|p| p.parse::<u32>().ok());
            if pid != postmaster && ppid != Some(postmaster) {
                continue;
            }
            let rollup = std::fs::read_to_string(path.join("smaps_rollup")).unwrap_or_default();
            let p = status_mib(&rollup, "Pss:").unwrap_or(0.0);
            pss += p;
            largest = largest.max(p);
            count += 1;
        }
    }
    format!("PostgreSQL {count} processes, PSS {pss:.0} MiB in all, largest {largest:.0} MiB")
}

pub(crate) fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .next()
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|kb| kb.parse::<u64>().ok())
        .map_or_else(
            || "?".to_owned(),
            |kb| format!("{:.0} GiB", kb as f64 / 1048576.0),
        );
    format!("{cores} cores, {mem} RAM")
}

/// Runs `body` against a scratch database on the configured server (or the embedded one, which
/// it stops afterwards if it started it), then drops the scratch database.
async fn with_scratch(
    config: &Config,
    data_dir: &std::path::Path,
    body: impl AsyncFnOnce(&DbConfig) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let embedded = match &config.database.url {
        Some(_) => None,
        None => {
            let opts = EmbeddedOptions {
                dir: data_dir.to_path_buf(),
                fsync: true,
            };
            Some(tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&opts)).await??)
        }
    };
    let admin = match (&embedded, &config.database.url) {
        (Some(pg), _) => DbConfig::from_url(&pg.database_url())?,
        (None, Some(url)) => DbConfig::from_url(url)?,
        (None, None) => anyhow::bail!("no database"),
    };
    let scratch = ScratchDatabase::create(&admin).await?;
    let result = body(&scratch.config).await;
    scratch.drop_now().await?;
    if let Some(pg) = embedded.filter(EmbeddedPostgres::started_here) {
        tokio::task::spawn_blocking(move || pg.stop()).await??;
    }
    result
}

async fn tenancy(config: &Config, args: &TenancyArgs) -> anyhow::Result<ExitCode> {
    with_scratch(config, &args.data_dir, async |db| {
        tenancy_in(config, args, db).await
    })
    .await
}

async fn tenancy_in(
    config: &Config,
    args: &TenancyArgs,
    db: &DbConfig,
) -> anyhow::Result<ExitCode> {
    let db = with_pool_settings(db.clone(), config)?;
    let platform = PlatformDb::connect_and_migrate(&db).await?;
    let authz = Authorizer::load(&platform).await?;
    authz
        .ensure_default_policies(&platform.province_ids().await?)
        .await?;
    let pool = platform.pool_for_infrastructure();
    let (version, fsync): (String, String) =
        sqlx::query_as("select current_setting('server_version'), current_setting('fsync')")
            .fetch_one(pool)
            .await?;
    println!(
        "desk bench tenancy --tenants {} --samples {}",
        args.tenants, args.samples
    );
    println!(
        "machine: {}; PostgreSQL {version}, fsync={fsync}",
        machine()
    );
    println!(
        "onboarding = registry row + domain + role + schema + tenant migrations + first admin + job + policies, one transaction"
    );

    let empty = sample_onboarding(&platform, &authz, "empty", args.samples).await?;
    println!(
        "onboard with 0 existing:     median {}  p90 {}  min {}  max {}",
        ms(empty.median),
        ms(empty.p90),
        ms(empty.min),
        ms(empty.max)
    );

    let fill_started = Instant::now();
    let existing = args.samples;
    let missing = args.tenants.saturating_sub(existing);
    let set = TenantMigrations::embedded();
    let mut created = futures::stream::iter(0..missing)
        .map(|i| {
            let platform = platform.clone();
            let set = set.clone();
            async move {
                let t = new_tenant(&format!("fill{i}"))?;
                platform
                    .create_tenant(&t, &set)
                    .await
                    .map_err(anyhow::Error::new)
            }
        })
        .buffer_unordered(2);
    let mut done = 0;
    while let Some(r) = created.next().await {
        r.context("creating filler tenants")?;
        done += 1;
        if done % 250 == 0 {
            eprintln!("  ... {} tenants", done + existing);
        }
    }
    println!(
        "created {} more tenants in {:.1} s (2 at a time)",
        missing,
        fill_started.elapsed().as_secs_f64()
    );

    let full = sample_onboarding(&platform, &authz, "full", args.samples).await?;
    println!(
        "onboard with {} existing:  median {}  p90 {}  min {}  max {}",
        args.tenants,
        ms(full.median),
        ms(full.p90),
        ms(full.min),
        ms(full.max)
    );

    // What `desk migrate` does end to end: connect, platform and job-queue migrations,
    // default policies, then every tenant.
    let whole_started = Instant::now();
    let (whole_db, whole) = crate::commands::prepare_database(config, &db, false, None).await?;
    whole_db.close().await;
    println!(
        "desk migrate (whole command path), nothing to apply ({} tenants): {:.3} s",
        whole.tenants,
        whole_started.elapsed().as_secs_f64()
    );

    let opts = MigrateOptions {
        concurrency: config.migrate.concurrency,
        ..MigrateOptions::default()
    };
    let noop = platform.migrate_tenants(&set, &opts, |_, _| {}).await?;
    println!(
        "tenant runner alone, nothing to apply ({} tenants): {:.3} s (checked {})",
        noop.tenants,
        noop.elapsed.as_secs_f64(),
        noop.checked
    );
    let verify = MigrateOptions {
        verify_all: true,
        ..opts.clone()
    };
    let verified = platform.migrate_tenants(&set, &verify, |_, _| {}).await?;
    println!(
        "desk migrate --verify, nothing to apply: {:.3} s (every ledger read, {} failures)",
        verified.elapsed.as_secs_f64(),
        verified.failures.len()
    );

    let next = set.clone().with_sql(
        29_991_231_000_000,
        "bench: add a column and an index",
        "alter table staff add column bench_note text;
         create index staff_bench_note_idx on staff (bench_note);"
            .to_owned(),
    );
    let one = platform.migrate_tenants(&next, &opts, |_, _| {}).await?;
    println!(
        "desk migrate, one new migration (column + index) on {} tenants: {:.3} s, {} failures (concurrency {})",
        one.migrated,
        one.elapsed.as_secs_f64(),
        one.failures.len(),
        opts.concurrency
    );

    // The same change as plain SQL in the database, one transaction per schema, for scale.
    let baseline_started = Instant::now();
    sqlx::raw_sql(
        "do $$
         declare t record;
         begin
             for t in select schema_name, db_role from platform.tenants loop
                 execute format('set local role %I', t.db_role);
                 execute format('alter table %I.staff add column bench_plain text', t.schema_name);
                 execute format('create index on %I.staff (bench_plain)', t.schema_name);
                 set local role none;
             end loop;
         end $$",
    )
    .execute(pool)
    .await?;
    let baseline = baseline_started.elapsed();
    println!(
        "plain SQL, same change in one DO block (one transaction, all schemas): {:.3} s; runner/plain = {:.1}x",
        baseline.as_secs_f64(),
        one.elapsed.as_secs_f64() / baseline.as_secs_f64()
    );
    platform.close().await;
    Ok(ExitCode::SUCCESS)
}

async fn cards_in(config: &Config, args: &CardsArgs, db: &DbConfig) -> anyhow::Result<ExitCode> {
    let db = with_pool_settings(db.clone(), config)?;
    let platform = PlatformDb::connect_and_migrate(&db).await?;
    let authz = Authorizer::load(&platform).await?;
    println!(
        "desk bench cards --tenants {} --seconds {} --concurrency {}",
        args.tenants, args.seconds, args.concurrency
    );
    println!(
        "machine: {}; pool {} connections",
        machine(),
        db.max_connections
    );
    let started = Instant::now();
    let mut slugs = Vec::with_capacity(args.tenants);
    for i in 0..args.tenants {
        let slug = format!("card{i}");
        let req = Onboarding {
            theme: desk_tenant_admin::DEFAULT_THEME.to_owned(),
            ..onboarding(&slug)?
        };
        desk_tenant_admin::onboard(&platform, &authz, &Actor::Cli, "bench", &req).await?;
        slugs.push(slug);
    }
    println!(
        "onboarded {} municipalities (24 cards each) in {:.1} s",
        args.tenants,
        started.elapsed().as_secs_f64()
    );

    let mut bench_config = config.clone();
    bench_config.http.base_domain = "bench.test".to_owned();
    let router = crate::app::build(&bench_config, platform.clone(), authz).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::app::serve_on(listener, router, async {
        let _ = stop_rx.await;
    }));

    let codes: Vec<String> = desk_core::template::national_template()?
        .iter()
        .map(|c| c.code.clone())
        .collect();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency)
        .build()?;
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let mut workers = Vec::new();
    for w in 0..args.concurrency {
        let (http, slugs, codes) = (http.clone(), slugs.clone(), codes.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            // A cheap per-worker pseudo-random walk over municipalities and cards.
            let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ (w as u64 + 1);
            while Instant::now() < deadline {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let slug = &slugs[(x % slugs.len() as u64) as usize];
                let code = &codes[((x >> 32) % codes.len() as u64) as usize];
                let t = Instant::now();
                let ok = http
                    .get(format!("http://{addr}/services/{code}"))
                    .header("host", format!("{slug}.bench.test"))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
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
    let s = stats(all);
    println!(
        "card pages: {} ok, {} failed in {} s = {:.0} req/s; median {}, p90 {}, p99 {}, max {}",
        count,
        errors,
        args.seconds,
        count as f64 / args.seconds as f64,
        ms(s.median),
        ms(s.p90),
        ms(s.p99),
        ms(s.max)
    );
    println!("{}", memory_report(&args.data_dir));
    platform.close().await;
    Ok(ExitCode::SUCCESS)
}
