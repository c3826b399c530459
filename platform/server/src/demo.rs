//! `desk demo`: the whole system with demo data, on a private PostgreSQL unless DATABASE_URL
//! is set. Idempotent: a second run reuses the data. Ctrl-C stops web, workers and database.

use crate::app::{self, db_config, with_pool_settings};
use crate::commands::{self, CreateArgs};
use crate::config::Config;
use anyhow::Context;
use clap::Args;
use desk_authz::{Authorizer, Role, Subject};
use desk_core::TenantSlug;
use desk_db::embedded::{EmbeddedOptions, EmbeddedPostgres};
use desk_db::{DbConfig, PlatformDb};
use desk_tenant_admin::Actor;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

/// Options of `desk demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where the private PostgreSQL keeps its data (ignored when DATABASE_URL is set).
    #[arg(long, default_value = ".desk")]
    data_dir: PathBuf,
}

/// The demo municipalities of province Isfahan: slug, Persian and English name.
const DEMO_TENANTS: &[(&str, &str, &str)] = &[
    ("isfahan", "شهرداری اصفهان", "Isfahan Municipality"),
    ("najafabad", "شهرداری نجف‌آباد", "Najafabad Municipality"),
    ("kashan", "شهرداری کاشان", "Kashan Municipality"),
];

/// Each demo municipality's look: theme and brand colour (all three shipped themes show).
const DEMO_DESIGNS: &[(&str, &str, &str)] = &[
    ("isfahan", "base", "#0a6e5c"),
    ("najafabad", "firouzeh", "#0b6b73"),
    ("kashan", "sepid", "#7a1f3d"),
];

/// Runs the demo.
pub async fn run(config: Config, args: DemoArgs) -> anyhow::Result<ExitCode> {
    let embedded = if config.database.url.is_none() {
        let opts = EmbeddedOptions {
            dir: args.data_dir.clone(),
            fsync: true,
        };
        println!(
            "starting the embedded PostgreSQL in {} ...",
            args.data_dir.display()
        );
        Some(
            tokio::task::spawn_blocking(move || EmbeddedPostgres::start(&opts))
                .await
                .context("starting the embedded PostgreSQL")??,
        )
    } else {
        None
    };
    let db = match &embedded {
        Some(pg) => with_pool_settings(DbConfig::from_url(&pg.database_url())?, &config)?,
        None => db_config(&config)?,
    };
    let result = run_on(&config, &args, &db).await;
    if let Some(pg) = embedded.filter(EmbeddedPostgres::started_here) {
        println!("stopping the embedded PostgreSQL ...");
        tokio::task::spawn_blocking(move || pg.stop()).await??;
    }
    result
}

async fn run_on(config: &Config, args: &DemoArgs, db: &DbConfig) -> anyhow::Result<ExitCode> {
    let (platform, report) = commands::prepare_database(config, db, false, None).await?;
    if commands::print_report(&report) {
        anyhow::bail!("some municipalities could not be migrated");
    }
    seed(config, &platform).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {} (use --listen)", args.listen))?;
    let port = listener.local_addr()?.port();
    // Links in messages point at this demo; secrets get a key kept beside the demo's data.
    let mut config = config.clone();
    config.http.public_scheme = "http".to_owned();
    config.http.public_port = Some(port);
    // A newcomer tries webhooks against a receiver on this machine.
    config.webhooks.allow_private_targets = true;
    config.web.uploads_dir = args.data_dir.join("uploads");
    if config.secrets.master_key.is_none() {
        config.secrets.master_key = Some(demo_master_key(&args.data_dir)?);
    }
    // The demo never reaches real SMS providers: a fake one on loopback speaks their APIs.
    let (fake_sms, _outbox) = desk_jobs::fake_sms::spawn().await?;
    let fake = desk_jobs::sms::Endpoints::all_at(&fake_sms);
    config.sms = crate::config::SmsConfig {
        kavenegar_url: fake.kavenegar,
        smsir_url: fake.smsir,
        ghasedak_url: fake.ghasedak,
        magfa_url: fake.magfa,
    };
    // Nor real agencies: a fake one takes inquiries and answers after one poll.
    let (fake_agency, _agency) = desk_jobs::fake_agency::spawn(
        DEMO_AGENCY_TOKEN,
        desk_jobs::fake_agency::Mode::Defer { polls: 1 },
    )
    .await?;
    let config = &config;
    if let Some(key) = config.master_key() {
        ensure_demo_sms_accounts(&platform, &key).await?;
        ensure_demo_agencies(&platform, &key, &fake_agency).await?;
    }
    ensure_demo_team(&platform).await?;
    let authz = Authorizer::load(&platform).await?;
    authz.watch(&platform).await?;
    let (router, ops) = app::build_all(config, platform.clone(), authz).await?;
    print_welcome(config, port);
    println!("  SMS the demo \"sent\" (sign-in codes for citizens): {fake_sms}/outbox");
    println!();
    print_staff_links(config, &platform).await?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    tokio::spawn(async move {
        app::shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    app::spawn_ops(config, ops, stopped(stop_rx.clone()));
    let server = app::serve_on(listener, router, stopped(stop_rx.clone()));
    // Workers get their own pool, as `desk worker` has in its own process: their listeners and
    // polls never starve the web requests.
    let worker_db = PlatformDb::connect(db).await?;
    let workers = desk_jobs::run_workers(
        worker_db,
        config.public_urls(),
        config.master_key(),
        config.sms_endpoints(),
        config.outbound(),
        stopped(stop_rx),
    );
    let (served, worked) = tokio::join!(server, workers);
    served?;
    worked?;
    Ok(ExitCode::SUCCESS)
}

/// Creates what is missing of the demo data (idempotent).
pub async fn seed(config: &Config, platform: &PlatformDb) -> anyhow::Result<()> {
    let authz = Authorizer::load(platform).await?;
    let admin = platform
        .ensure_platform_user("admin", "مدیر سامانه", "platform_admin", None)
        .await?;
    ensure_demo_password(platform, "admin").await?;
    authz
        .assign(&Subject::PlatformUser(admin), Role::PlatformAdmin, None)
        .await?;
    let (isfahan, _) = platform
        .province_by_code("isfahan")
        .await?
        .context("province isfahan is missing")?;
    let operator = platform
        .ensure_platform_user(
            "isfahan-operator",
            "کارشناس استان اصفهان",
            "province_operator",
            Some(isfahan),
        )
        .await?;
    authz
        .assign(
            &Subject::PlatformUser(operator),
            Role::ProvinceOperator(isfahan),
            None,
        )
        .await?;
    ensure_demo_password(platform, "isfahan-operator").await?;

    for (i, (slug, name_fa, name_en)) in DEMO_TENANTS.iter().enumerate() {
        let parsed = TenantSlug::parse(slug).map_err(|e| anyhow::anyhow!("{e}"))?;
        if platform.tenant_by_slug(&parsed).await?.is_some() {
            continue;
        }
        let args = CreateArgs::demo(
            slug,
            name_fa,
            name_en,
            "isfahan",
            &format!("0913000000{}", i + 1),
        );
        let req = commands::onboarding_from(platform, &config.http.base_domain, &args).await?;
        desk_tenant_admin::onboard(platform, &authz, &Actor::Cli, "demo", &req).await?;
        println!("created demo municipality {slug}");
    }
    // Each demo municipality's look, unless someone changed it (an existing demo keeps its own).
    for (slug, theme, brand) in DEMO_DESIGNS {
        let parsed = TenantSlug::parse(slug).map_err(|e| anyhow::anyhow!("{e}"))?;
        let Some(tenant) = platform.tenant_by_slug(&parsed).await? else {
            continue;
        };
        if tenant.design.brand.is_some() {
            continue;
        }
        let design = desk_db::Design {
            theme: (*theme).to_owned(),
            brand: Some(desk_core::design::check_brand(brand).map_err(|e| anyhow::anyhow!("{e}"))?),
            ..tenant.design.clone()
        };
        platform.set_design(tenant.id, &design).await?;
    }
    Ok(())
}

/// Gives each demo municipality an SMS account at the fake provider (once), so sign-in codes
/// and request updates are "sent" and show on the fake provider's outbox page.
async fn ensure_demo_sms_accounts(
    platform: &PlatformDb,
    key: &desk_core::secret::MasterKey,
) -> anyhow::Result<()> {
    for (slug, _, _) in DEMO_TENANTS {
        let parsed = TenantSlug::parse(slug).map_err(|e| anyhow::anyhow!("{e}"))?;
        let Some(tenant) = platform.tenant_by_slug(&parsed).await? else {
            continue;
        };
        let mut tx = platform.tenant_db().begin(tenant.scope()).await?;
        if desk_db::settings::list_sms_accounts(&mut tx)
            .await?
            .is_empty()
        {
            let creds = serde_json::json!({ "api_key": format!("demo-{slug}") }).to_string();
            desk_db::settings::add_sms_account(
                &mut tx,
                "kavenegar",
                "خط نمایشی",
                "3000505",
                |id| key.seal(tenant.id, &format!("sms_account:{id}"), creds.as_bytes()),
            )
            .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

/// The demo agency's token (it only guards the loopback fake agency).
const DEMO_AGENCY_TOKEN: &str = "demo-agency-token";

/// Gives each demo municipality an agency to send inquiries to, at the fake agency's address of
/// this run.
async fn ensure_demo_agencies(
    platform: &PlatformDb,
    key: &desk_core::secret::MasterKey,
    endpoint: &str,
) -> anyhow::Result<()> {
    const NAME: &str = "اداره ثبت اسناد و املاک (نمایشی)";
    for (slug, _, _) in DEMO_TENANTS {
        let parsed = TenantSlug::parse(slug).map_err(|e| anyhow::anyhow!("{e}"))?;
        let Some(tenant) = platform.tenant_by_slug(&parsed).await? else {
            continue;
        };
        let mut tx = platform.tenant_db().begin(tenant.scope()).await?;
        let existing = desk_db::inquiries::agencies(&mut tx)
            .await?
            .into_iter()
            .find(|a| a.name == NAME);
        match existing {
            Some(a) => desk_db::inquiries::set_agency_endpoint(&mut tx, a.id, endpoint).await?,
            None => {
                desk_db::inquiries::add_agency(
                    &mut tx,
                    &desk_db::inquiries::NewAgency {
                        name: NAME,
                        kind: "http_json",
                        endpoint,
                        timeout_secs: 5,
                        sla_days: 3,
                    },
                    |id| {
                        key.seal(
                            tenant.id,
                            &format!("agency:{id}"),
                            DEMO_AGENCY_TOKEN.as_bytes(),
                        )
                        .map(Some)
                    },
                )
                .await?;
            }
        }
        tx.commit().await?;
    }
    Ok(())
}

/// Each demo municipality's team, so every role can be tried: the first admin, a desk clerk of
/// the urban planning unit and a department head of the revenue unit, all with the demo
/// password (set once; a password changed in the demo stays).
async fn ensure_demo_team(platform: &PlatformDb) -> anyhow::Result<()> {
    let hash = desk_core::password::hash(DEMO_PASSWORD)?;
    for (i, (slug, _, _)) in DEMO_TENANTS.iter().enumerate() {
        let parsed = TenantSlug::parse(slug).map_err(|e| anyhow::anyhow!("{e}"))?;
        let Some(tenant) = platform.tenant_by_slug(&parsed).await? else {
            continue;
        };
        let mut tx = platform.tenant_db().begin(tenant.scope()).await?;
        let planning = desk_db::requests::add_unit(&mut tx, "شهرسازی").await?;
        let revenue = desk_db::requests::add_unit(&mut tx, "درآمد").await?;
        let members = [
            (
                format!("clerk-{slug}"),
                "زهرا احمدی",
                1,
                "desk_staff",
                planning.id,
            ),
            (
                format!("head-{slug}"),
                "رضا کریمی",
                2,
                "department_head",
                revenue.id,
            ),
        ];
        for (username, name, line, role, unit) in members {
            if desk_db::staff::staff_by_username(&mut tx, &username)
                .await?
                .is_some()
            {
                continue;
            }
            let mobile = format!("+98913{line}00000{}", i + 1);
            let member =
                desk_db::staff::insert_staff(&mut tx, &username, name, Some(&mobile), false)
                    .await?;
            desk_db::staff::update_member(&mut tx, member.id, false, Some(unit)).await?;
            desk_db::staff::set_password(&mut tx, member.id, &hash).await?;
            tx.set_staff_role(member.id, role).await?;
        }
        if let Some(admin) =
            desk_db::staff::staff_by_username(&mut tx, &format!("admin-{slug}")).await?
            && !admin.joined
        {
            desk_db::staff::set_password(&mut tx, admin.id, &hash).await?;
        }
        ensure_demo_requests(&mut tx).await?;
        tx.commit().await?;
    }
    Ok(())
}

/// Two sample requests per municipality (one for each demo unit), so the clerk and the head
/// each find work in their inbox and can see where their reach ends. Only into an empty table.
async fn ensure_demo_requests(tx: &mut desk_db::TenantTx) -> anyhow::Result<()> {
    if !desk_db::requests::inbox(tx, desk_db::requests::Scope::All, None, None, None, 1)
        .await?
        .is_empty()
    {
        return Ok(());
    }
    let Some(service) = desk_db::catalog::published_services(tx, None, None)
        .await?
        .into_iter()
        .next()
    else {
        return Ok(());
    };
    let today = desk_core::calendar::today_in_iran();
    for (unit, name, mobile) in [
        ("شهرسازی", "مریم رضایی", "+989120000101"),
        ("درآمد", "علی محمدی", "+989120000102"),
    ] {
        let mut form = serde_json::Map::new();
        form.insert("full_name".into(), name.into());
        desk_db::requests::submit(
            tx,
            &desk_db::requests::NewRequest {
                service_id: service.id,
                service_code: service.card.code.clone(),
                citizen_id: None,
                mobile: mobile.to_owned(),
                national_code: None,
                applicant_name: Some(name.to_owned()),
                channel: desk_db::requests::Channel::Web,
                form,
                submitted_on: today,
                promised_on: today + chrono::Duration::days(10),
                state: "submitted".into(),
                state_due_on: None,
                registered_by: None,
                unit_name: Some(unit.to_owned()),
                idempotency_key: None,
                files: Vec::new(),
            },
        )
        .await?;
    }
    Ok(())
}

/// Fresh one-time sign-in links for the demo municipalities' first admins.
async fn print_staff_links(config: &Config, platform: &PlatformDb) -> anyhow::Result<()> {
    println!(
        "  or skip the password once: one-time admin links (demo only, fresh on every start):"
    );
    for (slug, _, _) in DEMO_TENANTS {
        let parsed = TenantSlug::parse(slug).map_err(|e| anyhow::anyhow!("{e}"))?;
        let Some(tenant) = platform.tenant_by_slug(&parsed).await? else {
            continue;
        };
        let Some(host) = platform.tenant_domains(tenant.id).await?.into_iter().next() else {
            continue;
        };
        let mut tx = platform.tenant_db().begin(tenant.scope()).await?;
        if let Some(admin) =
            desk_db::staff::staff_by_username(&mut tx, &format!("admin-{slug}")).await?
        {
            let link =
                desk_db::staff::issue_sign_in_link(&mut tx, admin.id, &host, &config.public_urls())
                    .await?;
            println!("    {slug:<10} {link}");
        }
        tx.commit().await?;
    }
    println!();
    Ok(())
}

/// The demo's master key: read from `<data-dir>/master.key`, created there on first use.
fn demo_master_key(dir: &std::path::Path) -> anyhow::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join("master.key");
    if let Ok(key) = std::fs::read_to_string(&path) {
        return Ok(key.trim().to_owned());
    }
    std::fs::create_dir_all(dir)?;
    let key = desk_core::secret::MasterKey::generate_hex();
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    std::io::Write::write_all(&mut file, key.as_bytes())?;
    Ok(key)
}

/// The demo's one password, printed with the accounts (never use it anywhere else).
pub const DEMO_PASSWORD: &str = "miz-demo-1404";

async fn ensure_demo_password(platform: &PlatformDb, username: &str) -> anyhow::Result<()> {
    if let Some((user, None)) = platform.user_for_sign_in(username).await? {
        let hash = desk_tenant_admin::auth::hash_password(DEMO_PASSWORD)?;
        platform.set_password_hash(user.id, &hash).await?;
    }
    Ok(())
}

fn print_welcome(config: &Config, port: u16) {
    let base = &config.http.base_domain;
    println!();
    println!("Miz (میز خدمت) demo is running. Press Ctrl-C to stop.");
    println!();
    println!(
        "  platform portal   http://{}:{port}/",
        config.platform_host()
    );
    for (slug, name_fa, _) in DEMO_TENANTS {
        println!("  {name_fa:<18} http://{slug}.{base}:{port}/   (GraphQL: /graphql)");
    }
    println!();
    println!("  platform portal accounts (password {DEMO_PASSWORD}):");
    println!("    platform admin          admin");
    println!("    Isfahan operator        isfahan-operator");
    println!("  staff of each municipality at /staff/sign-in (password {DEMO_PASSWORD}, then the");
    println!("  six-digit code from the demo's SMS outbox below):");
    println!("    admin-<slug>   tenant admin      (mobiles 09130000001..3)");
    println!("    clerk-<slug>   desk clerk, unit شهرسازی   (09131000001..3)");
    println!("    head-<slug>    department head, unit درآمد (09132000001..3)");
    println!(
        "  e.g. clerk-isfahan on http://isfahan.{base}:{port}/staff/sign-in; each municipality"
    );
    println!("  has two sample requests, one per unit, so each role sees where its reach ends");
    println!();
    println!("  health: http://127.0.0.1:{port}/healthz  readiness: /readyz  metrics: /metrics");
}
