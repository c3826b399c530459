//! `desk migrate`, `desk tenant ...` and `desk db ...`.

use crate::app::db_config;
use crate::config::Config;
use clap::{Args, Subcommand};
use desk_authz::Authorizer;
use desk_core::{Hostname, MobileNumber, TenantSlug, TenantStatus};
use desk_db::embedded::{EmbeddedOptions, EmbeddedPostgres};
use desk_db::migrate::{MigrateOptions, MigrationReport, TenantMigrations};
use desk_db::tenants::TenantFilter;
use desk_db::{DbConfig, NewTenant, PlatformDb};
use desk_tenant_admin::{Actor, FirstAdmin, Lifecycle, Onboarding};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// Options of `desk migrate`.
#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Check every tenant's ledger, not only those the registry says are behind.
    #[arg(long)]
    verify: bool,
    /// Tenants migrated at once (default from config).
    #[arg(long)]
    concurrency: Option<usize>,
}

/// Migrates the platform schema, the job queue, the default policies and every tenant.
/// Used by `desk migrate` and `desk demo`.
pub async fn prepare_database(
    config: &Config,
    db: &DbConfig,
    verify: bool,
    concurrency: Option<usize>,
) -> anyhow::Result<(PlatformDb, MigrationReport)> {
    let platform = PlatformDb::connect_and_migrate(db).await?;
    let authz = Authorizer::load(&platform).await?;
    authz
        .ensure_default_policies(&platform.province_ids().await?)
        .await?;
    let opts = MigrateOptions {
        concurrency: concurrency.unwrap_or(config.migrate.concurrency),
        lock_timeout: Duration::from_millis(config.migrate.lock_timeout_ms),
        verify_all: verify,
        ..MigrateOptions::default()
    };
    let tty = std::io::stderr().is_terminal();
    let report = platform
        .migrate_tenants(&TenantMigrations::embedded(), &opts, |done, total| {
            if tty {
                draw_progress(done, total);
            }
        })
        .await?;
    if tty && report.checked > 0 {
        eprintln!();
    }
    Ok((platform, report))
}

fn draw_progress(done: usize, total: usize) {
    const WIDTH: usize = 30;
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    let mut err = std::io::stderr();
    let _ = write!(
        err,
        "\r  tenants [{}{}] {done}/{total}",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled)
    );
    let _ = err.flush();
}

/// Prints a migration report; returns whether it had failures.
pub fn print_report(report: &MigrationReport) -> bool {
    println!(
        "tenants: {} in registry, {} checked, {} migrated ({} migrations applied), {} failed, in {:.2} s",
        report.tenants,
        report.checked,
        report.migrated,
        report.applied,
        report.failures.len(),
        report.elapsed.as_secs_f64()
    );
    for f in &report.failures {
        println!("  FAILED {}: {}", f.slug, f.error);
    }
    !report.failures.is_empty()
}

/// `desk migrate`.
pub async fn migrate(config: &Config, args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let (_, report) =
        prepare_database(config, &db_config(config)?, args.verify, args.concurrency).await?;
    println!("platform: up to date");
    Ok(if print_report(&report) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `desk tenant ...`
#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create a municipality (schema, role, migrations, first admin).
    Create(CreateArgs),
    /// Suspend a municipality: its portal shows a notice, its API and new jobs refuse.
    Suspend {
        /// The municipality's slug.
        slug: String,
    },
    /// Resume a suspended municipality.
    Resume {
        /// The municipality's slug.
        slug: String,
    },
    /// Archive a municipality (hidden, data kept, restorable).
    Archive {
        /// The municipality's slug.
        slug: String,
    },
    /// Restore an archived municipality.
    Restore {
        /// The municipality's slug.
        slug: String,
    },
    /// Add or remove a custom domain.
    Domain {
        /// `add` or `remove`.
        #[arg(value_parser = ["add", "remove"])]
        op: String,
        /// The municipality's slug.
        slug: String,
        /// The host name.
        host: String,
    },
    /// Export a municipality (registry facts, every table, staff roles) to a JSON archive.
    Export {
        /// The municipality's slug.
        slug: String,
        /// Where to write the archive.
        #[arg(long)]
        out: PathBuf,
    },
    /// Import an archive as a new municipality.
    Import {
        /// The archive written by `desk tenant export`.
        file: PathBuf,
        /// The new municipality's slug.
        #[arg(long)]
        slug: String,
    },
    /// Check the hash chain of the platform audit log.
    VerifyAudit,
    /// List municipalities.
    List {
        /// Only this province (code, e.g. `isfahan`).
        #[arg(long)]
        province: Option<String>,
        /// Only this status (active, suspended, archived).
        #[arg(long)]
        status: Option<String>,
    },
}

/// Options of `desk tenant create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// Fixed slug: lowercase letters, digits and inner hyphens (`najafabad`).
    #[arg(long)]
    slug: String,
    /// Persian name (`شهرداری نجف‌آباد`).
    #[arg(long)]
    name_fa: String,
    /// English name.
    #[arg(long, default_value = "")]
    name_en: String,
    /// Province code (`isfahan`).
    #[arg(long)]
    province: String,
    /// Extra custom domains (the default `<slug>.<base-domain>` is always added).
    #[arg(long = "domain")]
    domains: Vec<String>,
    /// First admin's username.
    #[arg(long, requires = "admin_mobile")]
    admin_username: Option<String>,
    /// First admin's display name.
    #[arg(long, default_value = "مدیر میز خدمت")]
    admin_name: String,
    /// First admin's mobile number.
    #[arg(long, requires = "admin_username")]
    admin_mobile: Option<String>,
}

impl CreateArgs {
    /// The arguments for one demo municipality with its first admin.
    pub fn demo(slug: &str, name_fa: &str, name_en: &str, province: &str, mobile: &str) -> Self {
        Self {
            slug: slug.to_owned(),
            name_fa: name_fa.to_owned(),
            name_en: name_en.to_owned(),
            province: province.to_owned(),
            domains: Vec::new(),
            admin_username: Some(format!("admin-{slug}")),
            admin_name: "مدیر میز خدمت".to_owned(),
            admin_mobile: Some(mobile.to_owned()),
        }
    }
}

/// Turns the arguments of `tenant create` into an onboarding request (all validation here,
/// before any SQL).
pub async fn onboarding_from(
    platform: &PlatformDb,
    base_domain: &str,
    args: &CreateArgs,
) -> anyhow::Result<Onboarding> {
    let slug = TenantSlug::parse(&args.slug).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (province_id, _) = platform
        .province_by_code(&args.province)
        .await?
        .ok_or_else(|| anyhow::anyhow!("unknown province code {:?}", args.province))?;
    let mut domains = vec![
        Hostname::parse(&format!("{slug}.{base_domain}")).map_err(|e| anyhow::anyhow!("{e}"))?,
    ];
    for d in &args.domains {
        let host = Hostname::parse(d).map_err(|e| anyhow::anyhow!("{e}"))?;
        desk_tenant_admin::lifecycle::check_custom_domain(&host, base_domain).map_err(cli_error)?;
        domains.push(host);
    }
    let first_admin = match (&args.admin_username, &args.admin_mobile) {
        (Some(username), Some(mobile)) => Some(FirstAdmin {
            username: username.clone(),
            display_name: args.admin_name.clone(),
            mobile: MobileNumber::parse(mobile).map_err(|e| anyhow::anyhow!("{e}"))?,
        }),
        _ => None,
    };
    Ok(Onboarding {
        theme: desk_tenant_admin::DEFAULT_THEME.to_owned(),
        tenant: NewTenant {
            slug,
            name_fa: args.name_fa.clone(),
            name_en: args.name_en.clone(),
            province_id,
            domains,
        },
        first_admin,
    })
}

/// `desk tenant ...`.
pub async fn tenant(config: &Config, cmd: TenantCommand) -> anyhow::Result<ExitCode> {
    let platform = PlatformDb::connect(&db_config(config)?).await?;
    match cmd {
        TenantCommand::Create(args) => {
            let req = onboarding_from(&platform, &config.http.base_domain, &args).await?;
            let authz = Authorizer::load(&platform).await?;
            let started = std::time::Instant::now();
            let (tenant, _) =
                desk_tenant_admin::onboard(&platform, &authz, &Actor::Cli, "cli", &req)
                    .await
                    .map_err(cli_error)?;
            println!(
                "created {} ({}) in {:.0} ms: http://{}/",
                tenant.slug,
                tenant.name_fa,
                started.elapsed().as_secs_f64() * 1000.0,
                req.tenant.domains[0]
            );
        }
        TenantCommand::Suspend { slug } => {
            lifecycle_cli(&platform, &slug, Lifecycle::Suspend).await?
        }
        TenantCommand::Resume { slug } => {
            lifecycle_cli(&platform, &slug, Lifecycle::Resume).await?
        }
        TenantCommand::Archive { slug } => {
            lifecycle_cli(&platform, &slug, Lifecycle::Archive).await?
        }
        TenantCommand::Restore { slug } => {
            lifecycle_cli(&platform, &slug, Lifecycle::Restore).await?
        }
        TenantCommand::Domain { op, slug, host } => {
            let slug = TenantSlug::parse(&slug).map_err(|e| anyhow::anyhow!("{e}"))?;
            let host = Hostname::parse(&host).map_err(|e| anyhow::anyhow!("{e}"))?;
            let authz = Authorizer::load(&platform).await?;
            use desk_tenant_admin::lifecycle::DomainChange;
            desk_tenant_admin::lifecycle::change_domain(
                &platform,
                &authz,
                &Actor::Cli,
                &slug,
                if op == "add" {
                    DomainChange::Add(&host)
                } else {
                    DomainChange::Remove(&host)
                },
                &config.http.base_domain,
                "cli",
            )
            .await
            .map_err(cli_error)?;
            println!(
                "{slug}: domain {host} {}",
                if op == "add" { "added" } else { "removed" }
            );
        }
        TenantCommand::Export { slug, out } => {
            let slug = TenantSlug::parse(&slug).map_err(|e| anyhow::anyhow!("{e}"))?;
            let authz = Authorizer::load(&platform).await?;
            let archive =
                desk_tenant_admin::archive::export(&platform, &authz, &Actor::Cli, &slug, "cli")
                    .await
                    .map_err(cli_error)?;
            std::fs::write(&out, serde_json::to_vec_pretty(&archive)?)
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", out.display()))?;
            println!("{slug}: exported to {}", out.display());
        }
        TenantCommand::Import { file, slug } => {
            let slug = TenantSlug::parse(&slug).map_err(|e| anyhow::anyhow!("{e}"))?;
            let text = std::fs::read(&file)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let archive: serde_json::Value = serde_json::from_slice(&text)
                .map_err(|e| anyhow::anyhow!("{} is not a JSON archive: {e}", file.display()))?;
            let authz = Authorizer::load(&platform).await?;
            let key = config.master_key();
            let tenant = desk_tenant_admin::archive::import(
                &platform,
                &authz,
                key.as_ref(),
                &Actor::Cli,
                "cli",
                &archive,
                slug,
                &config.http.base_domain,
            )
            .await
            .map_err(cli_error)?;
            println!("imported as {} ({})", tenant.slug, tenant.status.as_str());
        }
        TenantCommand::VerifyAudit => match platform.verify_audit_chain().await? {
            None => println!("audit log: chain intact"),
            Some(b) => {
                println!("audit log: chain BROKEN at row {}: {}", b.id, b.reason);
                return Ok(ExitCode::FAILURE);
            }
        },
        TenantCommand::List { province, status } => {
            let province_id = match province {
                Some(code) => Some(
                    platform
                        .province_by_code(&code)
                        .await?
                        .ok_or_else(|| anyhow::anyhow!("unknown province code {code:?}"))?
                        .0,
                ),
                None => None,
            };
            let status = status
                .map(|s| {
                    s.parse::<TenantStatus>()
                        .map_err(|e| anyhow::anyhow!("{e}"))
                })
                .transpose()?;
            let tenants = platform
                .list_tenants(&TenantFilter {
                    province_id,
                    status,
                })
                .await?;
            for t in &tenants {
                println!(
                    "{:<24} {:<10} v{:<16} {} ({})",
                    t.slug.as_str(),
                    t.status.as_str(),
                    t.schema_version,
                    t.name_fa,
                    t.province_name_fa
                );
            }
            println!("{} municipalities", tenants.len());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cli_error(e: desk_core::DomainError) -> anyhow::Error {
    match e {
        desk_core::DomainError::Validation(f) => anyhow::anyhow!("{f}"),
        desk_core::DomainError::NotFound => anyhow::anyhow!("no such municipality"),
        other => anyhow::Error::new(other),
    }
}

async fn lifecycle_cli(platform: &PlatformDb, slug: &str, change: Lifecycle) -> anyhow::Result<()> {
    let slug = TenantSlug::parse(slug).map_err(|e| anyhow::anyhow!("{e}"))?;
    let authz = Authorizer::load(platform).await?;
    let tenant = desk_tenant_admin::lifecycle::change_status(
        platform,
        &authz,
        &Actor::Cli,
        &slug,
        change,
        "cli",
    )
    .await
    .map_err(cli_error)?;
    println!("{}: {}", tenant.slug, tenant.status.as_str());
    Ok(())
}

/// `desk user ...` (the password is read from standard input, never from the command line).
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a platform admin or provincial operator.
    Create {
        /// Sign-in name.
        username: String,
        /// Name shown in the portal.
        #[arg(long)]
        name: String,
        /// `platform_admin` or `province_operator`.
        #[arg(long, value_parser = ["platform_admin", "province_operator"])]
        kind: String,
        /// The operator's province code (`isfahan`).
        #[arg(long)]
        province: Option<String>,
    },
    /// Set a user's password.
    Passwd {
        /// Sign-in name.
        username: String,
    },
}

fn read_password() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.chars().count() < 10 {
        anyhow::bail!("the password (read from standard input) must have at least 10 characters");
    }
    Ok(password)
}

/// `desk user ...`.
pub async fn user(config: &Config, cmd: UserCommand) -> anyhow::Result<ExitCode> {
    let platform = PlatformDb::connect(&db_config(config)?).await?;
    let authz = Authorizer::load(&platform).await?;
    let username = match &cmd {
        UserCommand::Create { username, .. } | UserCommand::Passwd { username } => {
            username.trim().to_lowercase()
        }
    };
    if let UserCommand::Create {
        name,
        kind,
        province,
        ..
    } = &cmd
    {
        let province_id = match province {
            Some(code) => Some(
                platform
                    .province_by_code(code)
                    .await?
                    .ok_or_else(|| anyhow::anyhow!("unknown province code {code:?}"))?
                    .0,
            ),
            None => None,
        };
        let role = match (kind.as_str(), province_id) {
            ("platform_admin", None) => desk_authz::Role::PlatformAdmin,
            ("province_operator", Some(p)) => desk_authz::Role::ProvinceOperator(p),
            _ => anyhow::bail!("operators need --province; platform admins take none"),
        };
        let id = platform
            .ensure_platform_user(&username, name, kind, province_id)
            .await?;
        authz
            .assign(&desk_authz::Subject::PlatformUser(id), role, None)
            .await?;
    }
    let (user, _) = platform
        .user_for_sign_in(&username)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no such user {username:?}"))?;
    let hash = desk_tenant_admin::auth::hash_password(&read_password()?)?;
    platform.set_password_hash(user.id, &hash).await?;
    platform
        .audit(desk_db::AuditEntry {
            actor: "cli",
            action: "user.password",
            tenant: None,
            source: "cli",
            detail: serde_json::json!({ "username": username }),
        })
        .await?;
    println!("{username}: password set");
    Ok(ExitCode::SUCCESS)
}

/// `desk db ...`
#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// Start (or reuse) the embedded PostgreSQL and print `DATABASE_URL=...`.
    Start {
        /// Where the cluster lives.
        #[arg(long, default_value = ".desk")]
        data_dir: PathBuf,
        /// Turn fsync off (throwaway test clusters only).
        #[arg(long)]
        no_fsync: bool,
    },
    /// Stop the embedded PostgreSQL.
    Stop {
        /// Where the cluster lives.
        #[arg(long, default_value = ".desk")]
        data_dir: PathBuf,
    },
}

/// `desk db ...`.
pub fn db(cmd: DbCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DbCommand::Start { data_dir, no_fsync } => {
            let pg = EmbeddedPostgres::start(&EmbeddedOptions {
                dir: data_dir,
                fsync: !no_fsync,
            })?;
            println!("DATABASE_URL={}", pg.database_url());
        }
        DbCommand::Stop { data_dir } => EmbeddedPostgres::stop_at(&data_dir)?,
    }
    Ok(ExitCode::SUCCESS)
}
