//! `desk`: the one binary of Miz. `serve`, `worker`, `migrate`, `tenant`, `demo`, plus `db`
//! (the embedded PostgreSQL used by the test suite) and `bench`. Stays thin over the libraries.

use clap::{Parser, Subcommand};
use desk::config::{Config, LogFormat};
use desk::{app, bench, commands, demo};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(
    name = "desk",
    version,
    about = "Miz (میز خدمت): the service desk of Iran's municipalities"
)]
struct Cli {
    /// Configuration file (TOML); `DESK_*` environment variables override it.
    #[arg(long, global = true, env = "DESK_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the web portals and the GraphQL API.
    Serve,
    /// Run the background workers.
    Worker,
    /// Migrate the platform schema, then every municipality's schema.
    Migrate(commands::MigrateArgs),
    /// Create and list municipalities.
    #[command(subcommand)]
    Tenant(commands::TenantCommand),
    /// Create platform users and set their passwords.
    #[command(subcommand)]
    User(commands::UserCommand),
    /// Run everything with demo data on a private PostgreSQL (unless DATABASE_URL is set).
    Demo(demo::DemoArgs),
    /// Start or stop the embedded PostgreSQL (used by the test suite).
    #[command(subcommand)]
    Db(commands::DbCommand),
    /// Measure provisioning and migration at scale (figures printed, nothing asserted).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
}

fn init_tracing(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Compact => builder.compact().init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("desk: {e:#}");
            return ExitCode::from(2);
        }
    };
    init_tracing(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("desk: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve => app::serve(&config).await,
            Command::Worker => app::worker(&config).await,
            Command::Migrate(args) => commands::migrate(&config, &args).await,
            Command::Tenant(cmd) => commands::tenant(&config, cmd).await,
            Command::User(cmd) => commands::user(&config, cmd).await,
            Command::Demo(args) => demo::run(config, args).await,
            Command::Db(cmd) => commands::db(cmd),
            Command::Bench(cmd) => bench::run(&config, cmd).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("desk: {e:#}");
            ExitCode::FAILURE
        }
    }
}
