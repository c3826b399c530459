//! Composing the application state and router; `serve` and `worker`.

use crate::config::Config;
use anyhow::Context;
use desk_authz::Authorizer;
use desk_core::Hostname;
use desk_db::{DbConfig, PlatformDb};
use desk_web::{Metrics, SiteResolver, Themes, WebState};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// The database settings of `config`, or a clear error when no URL is configured.
pub fn db_config(config: &Config) -> anyhow::Result<DbConfig> {
    let url = config.database.url.as_deref().context(
        "no database configured: set DATABASE_URL (or DESK_DATABASE__URL), \
         or run `desk demo`, which starts its own PostgreSQL",
    )?;
    with_pool_settings(DbConfig::from_url(url)?, config)
}

/// Applies the pool settings of `config`.
pub fn with_pool_settings(mut db: DbConfig, config: &Config) -> anyhow::Result<DbConfig> {
    db.max_connections = config.database.max_connections;
    db.max_lifetime = Duration::from_secs(config.database.max_lifetime_secs);
    Ok(db)
}

/// Builds the whole HTTP application over a connected platform database.
pub async fn build(
    config: &Config,
    platform: PlatformDb,
    authz: Authorizer,
) -> anyhow::Result<axum::Router> {
    Ok(build_all(config, platform, authz).await?.0)
}

/// The public application and the operations routes (`/healthz`, `/readyz`, `/metrics`), which
/// share their metrics.
pub async fn build_all(
    config: &Config,
    platform: PlatformDb,
    authz: Authorizer,
) -> anyhow::Result<(axum::Router, axum::Router)> {
    let themes = Themes::new(&config.web.themes_dir, config.web.auto_reload)?;
    let platform_host = Hostname::parse(&config.platform_host())
        .map_err(|e| anyhow::anyhow!("platform host: {e}"))?;
    let web = WebState {
        platform: platform.clone(),
        themes: Arc::new(themes),
        sites: Arc::new(SiteResolver::new(
            platform.clone(),
            platform_host,
            Duration::from_millis(config.http.site_cache_ttl_ms),
        )),
        metrics: Arc::new(Metrics::default()),
        authz: authz.clone(),
        secrets: config.master_key(),
        secure_cookies: config.secure_cookies(),
        trust_forwarded_for: config.http.trust_forwarded_for,
        files: config.file_store(),
        limits: Arc::default(),
        allow_private_webhooks: config.webhooks.allow_private_targets,
        outbound: config.outbound(),
        pages: Arc::new(desk_web::PageCache::new(Duration::from_millis(
            config.http.site_cache_ttl_ms,
        ))),
    };
    let tenant_app = desk_web::tenant_router(web.clone()).merge(desk_graphql::tenant_router(
        desk_graphql::tenant_schema(),
        desk_graphql::Services {
            platform: platform.clone(),
            files: web.files.clone(),
            lookups: web.limits.lookups.clone(),
            rates: web.limits.api.clone(),
            authz: web.authz.clone(),
            trust_forwarded_for: config.http.trust_forwarded_for,
        },
    ));
    let mut portal = desk_tenant_admin::PlatformPortal::new(
        platform.clone(),
        authz,
        config.http.base_domain.clone(),
        config.secure_cookies(),
        config.http.trust_forwarded_for,
    )?;
    portal.urls = config.public_urls();
    let platform_app = desk_tenant_admin::platform_router(portal);
    let ops = desk_web::ops_app(web.clone());
    Ok((desk_web::app(web, tenant_app, platform_app), ops))
}

/// Serves the operations routes on `http.ops_listen` until `shutdown` resolves. An address
/// already taken is logged, not fatal: the service itself does not depend on it.
pub fn spawn_ops(
    config: &Config,
    ops: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let addr = config.http.ops_listen;
    tokio::spawn(async move {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => {
                tracing::info!(listen = %addr, "serving /healthz, /readyz and /metrics");
                if let Err(e) = serve_on(listener, ops, shutdown).await {
                    tracing::warn!(error = %e, "operations listener stopped");
                }
            }
            Err(e) => {
                tracing::warn!(listen = %addr, error = %e, "cannot serve the operations routes")
            }
        }
    });
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down");
}

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve_on(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service)
        .with_graceful_shutdown(shutdown)
        .await
        .context("HTTP server failed")
}

/// `desk serve`.
pub async fn serve(config: &Config) -> anyhow::Result<ExitCode> {
    let platform = PlatformDb::connect(&db_config(config)?).await?;
    let authz = Authorizer::load(&platform).await?;
    authz.watch(&platform).await?;
    let (router, ops) = build_all(config, platform, authz).await?;
    spawn_ops(config, ops, shutdown_signal());
    let listener = tokio::net::TcpListener::bind(config.http.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.http.listen))?;
    tracing::info!(listen = %config.http.listen, "serving");
    serve_on(listener, router, shutdown_signal()).await?;
    Ok(ExitCode::SUCCESS)
}

/// `desk worker`.
pub async fn worker(config: &Config) -> anyhow::Result<ExitCode> {
    let platform = PlatformDb::connect(&db_config(config)?).await?;
    // A worker's liveness: the process answers. (It needs no database for that: a database
    // outage must not get every worker restarted; the workers reconnect by themselves.)
    spawn_ops(
        config,
        axum::Router::new().route("/healthz", axum::routing::get(|| async { "ok" })),
        shutdown_signal(),
    );
    desk_jobs::run_workers(
        platform,
        config.public_urls(),
        config.master_key(),
        config.sms_endpoints(),
        config.outbound(),
        shutdown_signal(),
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}
