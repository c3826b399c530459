//! The tenant migration runner: every tenant schema with its own ledger, one transaction per
//! tenant, bounded parallelism, lock timeouts retried later, and a per-tenant failure report.

use crate::platform::PlatformDb;
use crate::tenant_tx::TenantScope;
use desk_core::{SchemaName, TenantId};
use futures::StreamExt;
use sqlx::migrate::{Migration, MigrationType};
use sqlx::{AssertSqlSafe, PgConnection, Row, SqlSafeStr};
use std::borrow::Cow;
use std::time::{Duration, Instant};

static TENANT_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/tenant");

/// An ordered set of tenant migrations.
#[derive(Debug, Clone)]
pub struct TenantMigrations {
    items: Vec<Migration>,
}

impl TenantMigrations {
    /// The migrations shipped in `migrations/tenant`.
    pub fn embedded() -> Self {
        Self {
            items: TENANT_MIGRATOR
                .iter()
                .filter(|m| {
                    matches!(
                        m.migration_type,
                        MigrationType::Simple | MigrationType::ReversibleUp
                    )
                })
                .cloned()
                .collect(),
        }
    }

    /// Adds one migration (tests and benchmarks use this to simulate a new release).
    pub fn with_sql(mut self, version: i64, description: &str, sql: String) -> Self {
        self.items.push(Migration::new(
            version,
            Cow::Owned(description.to_owned()),
            MigrationType::Simple,
            AssertSqlSafe(sql).into_sql_str(),
            false,
        ));
        self.items.sort_by_key(|m| m.version);
        self
    }

    /// Every version in the set, oldest first.
    pub fn versions(&self) -> Vec<i64> {
        self.items.iter().map(|m| m.version).collect()
    }

    /// The newest version in the set (0 when empty).
    pub fn latest(&self) -> i64 {
        self.items.last().map_or(0, |m| m.version)
    }
}

/// Why one tenant could not be migrated.
#[derive(Debug, thiserror::Error)]
pub enum TenantMigrationError {
    /// Another transaction held a lock longer than the lock timeout; retried later.
    #[error("lock timeout")]
    LockTimeout,
    /// The tenant's ledger disagrees with the migrations of this build.
    #[error("ledger mismatch: {0}")]
    Ledger(String),
    /// The SQL failed.
    #[error("{0}")]
    Database(#[from] sqlx::Error),
}

fn classify(err: sqlx::Error) -> TenantMigrationError {
    match &err {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("55P03") => {
            TenantMigrationError::LockTimeout
        }
        _ => TenantMigrationError::Database(err),
    }
}

/// Applies the pending migrations of one tenant inside the caller's open transaction, as the
/// tenant's role, records them in the tenant's ledger and the registry's cached version, and
/// leaves the transaction with the login role and default search path. Returns how many ran.
pub(crate) async fn apply_pending(
    conn: &mut PgConnection,
    scope: &TenantScope,
    set: &TenantMigrations,
    lock_timeout: Duration,
) -> Result<usize, TenantMigrationError> {
    let enter = format!(
        "{enter}; set local lock_timeout = '{ms}ms';
         create table if not exists _desk_migrations (
             version bigint primary key,
             description text not null,
             checksum bytea not null,
             applied_at timestamptz not null default now()
         )",
        enter = scope.enter_sql(),
        ms = lock_timeout.as_millis()
    );
    sqlx::raw_sql(AssertSqlSafe(enter))
        .execute(&mut *conn)
        .await
        .map_err(classify)?;
    let applied = sqlx::query("select version, checksum from _desk_migrations order by version")
        .fetch_all(&mut *conn)
        .await
        .map_err(classify)?;
    for row in &applied {
        let version: i64 = row.try_get("version")?;
        let checksum: Vec<u8> = row.try_get("checksum")?;
        match set.items.iter().find(|m| m.version == version) {
            None => {
                return Err(TenantMigrationError::Ledger(format!(
                    "version {version} is applied but unknown to this build (is the database newer than the code?)"
                )));
            }
            Some(m) if *m.checksum != checksum[..] => {
                return Err(TenantMigrationError::Ledger(format!(
                    "version {version} was changed after it was applied"
                )));
            }
            Some(_) => {}
        }
    }
    let mut count = 0;
    for m in &set.items {
        if applied
            .iter()
            .any(|r| r.try_get::<i64, _>("version").ok() == Some(m.version))
        {
            continue;
        }
        sqlx::raw_sql(m.sql.clone())
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
        sqlx::query(
            "insert into _desk_migrations (version, description, checksum) values ($1, $2, $3)",
        )
        .bind(m.version)
        .bind(&*m.description)
        .bind(&*m.checksum)
        .execute(&mut *conn)
        .await
        .map_err(classify)?;
        count += 1;
    }
    let leave = format!(
        "set local role none; reset search_path;
         update platform.tenants set schema_version = {v}, updated_at = now() where id = '{id}'",
        v = set.latest(),
        id = scope.id
    );
    sqlx::raw_sql(AssertSqlSafe(leave))
        .execute(&mut *conn)
        .await
        .map_err(classify)?;
    Ok(count)
}

/// How `desk migrate` runs.
#[derive(Debug, Clone)]
pub struct MigrateOptions {
    /// Tenants migrated at once (bounded by the pool too).
    pub concurrency: usize,
    /// Per-tenant lock timeout; a tenant that cannot get its locks is retried in a later pass.
    pub lock_timeout: Duration,
    /// Passes over tenants that hit the lock timeout.
    pub lock_retries: u32,
    /// Check every tenant's ledger, not only those the registry says are behind.
    pub verify_all: bool,
}

impl Default for MigrateOptions {
    fn default() -> Self {
        Self {
            concurrency: 4,
            lock_timeout: Duration::from_secs(1),
            lock_retries: 3,
            verify_all: false,
        }
    }
}

/// One tenant that could not be migrated.
#[derive(Debug, Clone)]
pub struct TenantFailure {
    /// Its slug.
    pub slug: String,
    /// What went wrong.
    pub error: String,
}

/// What a run of the tenant migrator did.
#[derive(Debug, Clone, Default)]
pub struct MigrationReport {
    /// Tenants in the registry.
    pub tenants: usize,
    /// Tenants that were (or were checked as) behind.
    pub checked: usize,
    /// Tenants that had at least one migration applied.
    pub migrated: usize,
    /// Migrations applied over all tenants.
    pub applied: usize,
    /// Tenants that failed, with the reason.
    pub failures: Vec<TenantFailure>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

struct Target {
    slug: String,
    scope: TenantScope,
}

impl PlatformDb {
    /// Brings every tenant schema to the newest migration of `set`. `progress(done, total)` is
    /// called after each tenant. Failures are collected per tenant and never stop the others.
    pub async fn migrate_tenants(
        &self,
        set: &TenantMigrations,
        opts: &MigrateOptions,
        mut progress: impl FnMut(usize, usize),
    ) -> anyhow::Result<MigrationReport> {
        let started = Instant::now();
        let tenants: i64 = sqlx::query_scalar("select count(*) from platform.tenants")
            .fetch_one(&self.pool)
            .await?;
        let rows = sqlx::query(
            "select id, slug, schema_name, db_role from platform.tenants
             where schema_version <> $1 or $2
             order by slug",
        )
        .bind(set.latest())
        .bind(opts.verify_all)
        .fetch_all(&self.pool)
        .await?;
        let mut pending = Vec::with_capacity(rows.len());
        let mut report = MigrationReport {
            tenants: usize::try_from(tenants).unwrap_or_default(),
            checked: rows.len(),
            ..MigrationReport::default()
        };
        for row in rows {
            let slug: String = row.try_get("slug")?;
            let schema: String = row.try_get("schema_name")?;
            let role: String = row.try_get("db_role")?;
            match SchemaName::parse(&schema)
                .ok()
                .filter(|_| crate::tenant_tx::valid_role_name(&role))
            {
                Some(schema) => pending.push(Target {
                    slug,
                    scope: TenantScope {
                        id: TenantId(row.try_get("id")?),
                        schema,
                        role,
                    },
                }),
                None => report.failures.push(TenantFailure {
                    slug,
                    error: "invalid schema or role name in registry".into(),
                }),
            }
        }

        let total = pending.len();
        let mut done = 0;
        for pass in 0..=opts.lock_retries {
            if pending.is_empty() {
                break;
            }
            if pass > 0 {
                tokio::time::sleep(opts.lock_timeout).await;
            }
            let last_pass = pass == opts.lock_retries;
            let mut results = futures::stream::iter(pending.drain(..))
                .map(|target| async move {
                    let outcome = self
                        .migrate_one(&target.scope, set, opts.lock_timeout)
                        .await;
                    (target, outcome)
                })
                .buffer_unordered(opts.concurrency.max(1));
            let mut retry = Vec::new();
            while let Some((target, outcome)) = results.next().await {
                match outcome {
                    Ok(n) => {
                        report.applied += n;
                        report.migrated += usize::from(n > 0);
                    }
                    Err(TenantMigrationError::LockTimeout) if !last_pass => {
                        tracing::warn!(tenant.slug = %target.slug, "lock timeout, will retry");
                        retry.push(target);
                        continue;
                    }
                    Err(e) => {
                        tracing::error!(tenant.slug = %target.slug, error = %e, "tenant migration failed");
                        report.failures.push(TenantFailure {
                            slug: target.slug,
                            error: e.to_string(),
                        });
                    }
                }
                done += 1;
                progress(done, total);
            }
            drop(results);
            pending = retry;
        }
        report.failures.sort_by(|a, b| a.slug.cmp(&b.slug));
        report.elapsed = started.elapsed();
        Ok(report)
    }

    async fn migrate_one(
        &self,
        scope: &TenantScope,
        set: &TenantMigrations,
        lock_timeout: Duration,
    ) -> Result<usize, TenantMigrationError> {
        let mut tx = self.pool.begin().await?;
        let n = apply_pending(&mut tx, scope, set, lock_timeout).await?;
        tx.commit().await.map_err(classify)?;
        Ok(n)
    }
}
