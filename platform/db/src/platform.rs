//! Connecting, migrating the platform schema, and the install id.

use crate::tenant_tx::TenantDb;
use desk_core::DomainError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{AssertSqlSafe, PgPool};
use std::str::FromStr;
use std::time::Duration;

static PLATFORM_MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/platform");

/// How to reach the database and how big the pool is.
#[derive(Debug, Clone)]
pub struct DbConfig {
    /// Where and as whom to connect.
    pub connect: PgConnectOptions,
    /// Upper bound of pooled connections. Each backend caches metadata of every tenant it touched
    /// (up to ~0.6 GB at 1,500 tenants), so keep this modest.
    pub max_connections: u32,
    /// Connections are recycled after this long, which returns that cache to the OS.
    pub max_lifetime: Duration,
    /// How long a caller waits for a free connection.
    pub acquire_timeout: Duration,
}

impl DbConfig {
    /// Parses a libpq-style URL (`postgres://user@host:port/db`), with pool defaults suited to
    /// a 2-core machine.
    pub fn from_url(url: &str) -> anyhow::Result<Self> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| anyhow::anyhow!("the database URL is not a valid PostgreSQL URL: {e}"))?
            .application_name("desk");
        Ok(Self {
            connect,
            max_connections: 8,
            max_lifetime: Duration::from_secs(600),
            acquire_timeout: Duration::from_secs(10),
        })
    }

    /// The same server and credentials, another database.
    pub fn with_database(&self, name: &str) -> Self {
        Self {
            connect: self.connect.clone().database(name),
            ..self.clone()
        }
    }
}

/// The id of this installation (8 lowercase alphanumerics), prefixed to cluster-wide role names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallId(String);

impl InstallId {
    fn parse(raw: &str) -> anyhow::Result<Self> {
        if raw.len() == 8
            && raw
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            Ok(Self(raw.to_owned()))
        } else {
            anyhow::bail!("platform.install holds an invalid id {raw:?}")
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The group role every tenant role belongs to (it may enqueue jobs, nothing else).
    pub fn tenant_group_role(&self) -> String {
        format!("desk_{}_tenants", self.0)
    }

    /// The owner role of one tenant schema.
    pub fn tenant_role(&self, schema: &desk_core::SchemaName) -> String {
        format!("desk_{}_{}", self.0, schema.as_str())
    }
}

/// Handle on the platform registry; also hands out [`TenantDb`] handles on the same pool.
#[derive(Debug, Clone)]
pub struct PlatformDb {
    pub(crate) pool: PgPool,
    pub(crate) install: InstallId,
}

async fn open_pool(cfg: &DbConfig) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(cfg.max_connections)
        .max_lifetime(cfg.max_lifetime)
        .acquire_timeout(cfg.acquire_timeout)
        // A ping per checkout would add a round trip to every request.
        .test_before_acquire(false)
        .connect_with(cfg.connect.clone())
        .await
        .map_err(|e| anyhow::anyhow!("cannot connect to PostgreSQL: {e}"))?;
    Ok(pool)
}

impl PlatformDb {
    /// Connects to an already migrated database.
    pub async fn connect(cfg: &DbConfig) -> anyhow::Result<Self> {
        let pool = open_pool(cfg).await?;
        Self::from_pool(pool).await
    }

    /// Connects, runs the platform and job-queue migrations (a fast no-op when current) and
    /// makes sure the roles of this install exist.
    pub async fn connect_and_migrate(cfg: &DbConfig) -> anyhow::Result<Self> {
        let pool = open_pool(cfg).await?;
        migrate_platform(&pool).await?;
        let db = Self::from_pool(pool).await?;
        db.ensure_roles().await?;
        Ok(db)
    }

    async fn from_pool(pool: PgPool) -> anyhow::Result<Self> {
        let raw: Option<String> = sqlx::query_scalar(
            "select id from platform.install
             where to_regclass('platform.install') is not null",
        )
        .fetch_optional(&pool)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.code().as_deref() == Some("42P01") => {
                anyhow::anyhow!("the database is not migrated yet: run `desk migrate` first")
            }
            _ => anyhow::Error::new(e).context("reading the install id"),
        })?;
        let raw = raw.ok_or_else(|| {
            anyhow::anyhow!("the database is not migrated yet: run `desk migrate` first")
        })?;
        // Defence in depth needs a login that holds no tenant privileges of its own.
        let login: Option<(bool, bool)> = sqlx::query_as(
            "select rolsuper, rolinherit from pg_roles where rolname = session_user",
        )
        .fetch_optional(&pool)
        .await
        .unwrap_or(None);
        if let Some((superuser, inherit)) = login
            && (superuser || inherit)
        {
            tracing::warn!(
                superuser,
                inherit,
                "the database login is a superuser or INHERITs roles: a query that forgets its tenant \
                 scope would not fail closed; use a NOINHERIT, non-superuser login in production"
            );
        }
        Ok(Self {
            pool,
            install: InstallId::parse(&raw)?,
        })
    }

    /// The install id of this database.
    pub fn install(&self) -> &InstallId {
        &self.install
    }

    /// A handle for tenant-scoped transactions on the same pool.
    pub fn tenant_db(&self) -> TenantDb {
        TenantDb {
            pool: self.pool.clone(),
        }
    }

    /// Checks that the database answers (for `/readyz`).
    pub async fn ping(&self) -> Result<(), DomainError> {
        sqlx::query("select 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(crate::internal)
    }

    /// The pool, for crates that need a `PgPool` by API contract (apalis storage, casbin adapter).
    /// Never use it for tenant data.
    pub fn pool_for_infrastructure(&self) -> &PgPool {
        &self.pool
    }

    /// Closes every pooled connection (waits for borrowed ones to come back).
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Pool statistics for `/metrics`: (open connections, idle connections).
    pub fn pool_stats(&self) -> (u32, usize) {
        (self.pool.size(), self.pool.num_idle())
    }

    /// Creates the tenant group role and gives it what every tenant needs outside its schema:
    /// inserting jobs into the apalis queue table (and nothing else there); tunes the queue
    /// table's autovacuum.
    async fn ensure_roles(&self) -> anyhow::Result<()> {
        let group = self.install.tenant_group_role();
        // Identifiers built from the validated install id: safe to splice.
        let sql = format!(
            "do $$
             begin
                 if not exists (select from pg_roles where rolname = '{group}') then
                     create role {group} nologin;
                     execute format('comment on role {group} is %L', 'desk:' || current_database());
                 end if;
             end $$;
             grant usage on schema apalis to {group};
             grant insert on apalis.jobs to {group};
             -- A queue table churns (every job is inserted, updated three times, deleted):
             -- vacuum it after 2% of its rows change rather than PostgreSQL's 20%, so dead
             -- entries do not pile up in the index the workers fetch through.
             alter table apalis.jobs set (autovacuum_vacuum_scale_factor = 0.02,
                 autovacuum_vacuum_threshold = 1000, autovacuum_analyze_scale_factor = 0.02);"
        );
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&self.pool)
            .await
            .map_err(|e| anyhow::Error::new(e).context("creating the tenant group role"))?;
        Ok(())
    }
}

/// Platform schema migrations, then apalis's own.
async fn migrate_platform(pool: &PgPool) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    // apalis's older migrations create functions unqualified; with `apalis` first on the path
    // they land there instead of `public`, where a NOINHERIT login may not create anything.
    let steps = [
        (
            "create schema if not exists platform; set search_path = platform",
            &PLATFORM_MIGRATOR,
            "platform",
        ),
        (
            "create schema if not exists apalis; set search_path = apalis, public",
            &*APALIS_MIGRATOR,
            "job-queue",
        ),
    ];
    for (prepare, migrator, what) in steps {
        sqlx::raw_sql(prepare)
            .execute(&mut *conn)
            .await
            .map_err(|e| anyhow::Error::new(e).context(format!("preparing {what} migrations")))?;
        let result = migrator.run(&mut *conn).await;
        // A session-level setting must not reach the next borrower of this connection.
        sqlx::raw_sql("reset search_path")
            .execute(&mut *conn)
            .await?;
        result.map_err(|e| anyhow::Error::new(e).context(format!("running {what} migrations")))?;
    }
    Ok(())
}

static APALIS_MIGRATOR: std::sync::LazyLock<sqlx::migrate::Migrator> =
    std::sync::LazyLock::new(apalis_postgres::PostgresStorage::<()>::migrations);

/// One line of the platform audit log.
#[derive(Debug, Clone)]
pub struct AuditEntry<'a> {
    /// Who (`user:1`, `cli`, `demo`).
    pub actor: &'a str,
    /// What (`tenant.create`, `tenant.suspend`).
    pub action: &'a str,
    /// Which municipality, if any.
    pub tenant: Option<desk_core::TenantId>,
    /// From where (client address, `cli`).
    pub source: &'a str,
    /// Details (never secrets or citizens' personal data).
    pub detail: serde_json::Value,
}

/// Appends one audit line on `conn` (inside the caller's transaction, if any).
pub(crate) async fn append_audit(
    conn: &mut sqlx::PgConnection,
    entry: &AuditEntry<'_>,
) -> Result<(), DomainError> {
    sqlx::query("select platform.audit_append($1, $2, $3, $4, $5)")
        .bind(entry.actor)
        .bind(entry.action)
        .bind(entry.tenant.map(|t| t.0))
        .bind(entry.source)
        .bind(&entry.detail)
        .execute(&mut *conn)
        .await
        .map(|_| ())
        .map_err(crate::internal)
}

/// Where the audit chain breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditBreak {
    /// The first row whose hash or link does not check out.
    pub id: i64,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl PlatformDb {
    /// Appends to the hash-chained platform audit log.
    pub async fn audit(&self, entry: AuditEntry<'_>) -> Result<(), DomainError> {
        let mut conn = self.pool.acquire().await.map_err(crate::internal)?;
        append_audit(&mut conn, &entry).await
    }

    /// Re-computes the audit chain; `None` when every row checks out. (A changed newest row
    /// with a recomputed hash can only be caught against an external copy of the last hash.)
    pub async fn verify_audit_chain(&self) -> Result<Option<AuditBreak>, DomainError> {
        // (id, prev_hash, hash, expected hash)
        type ChainRow = (i64, Option<Vec<u8>>, Option<Vec<u8>>, Vec<u8>);
        let rows: Vec<ChainRow> = sqlx::query_as(
            "select id, prev_hash, hash,
                    sha256(coalesce(prev_hash, ''::bytea) || convert_to(platform.audit_content(a), 'UTF8'))
             from platform.audit_log a order by id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(crate::internal)?;
        let mut prev: Option<Vec<u8>> = None;
        for (id, prev_hash, hash, expected) in rows {
            if prev_hash != prev {
                return Ok(Some(AuditBreak {
                    id,
                    reason: "link to the previous row broken",
                }));
            }
            if hash.as_deref() != Some(&expected[..]) {
                return Ok(Some(AuditBreak {
                    id,
                    reason: "content does not match its hash",
                }));
            }
            prev = hash;
        }
        Ok(None)
    }

    /// Ids of all provinces.
    pub async fn province_ids(&self) -> Result<Vec<i16>, DomainError> {
        sqlx::query_scalar("select id from platform.provinces order by id")
            .fetch_all(&self.pool)
            .await
            .map_err(crate::internal)
    }

    /// The province with this code (`isfahan`), as (id, Persian name).
    pub async fn province_by_code(&self, code: &str) -> Result<Option<(i16, String)>, DomainError> {
        sqlx::query_as("select id, name_fa from platform.provinces where code = $1")
            .bind(code)
            .fetch_optional(&self.pool)
            .await
            .map_err(crate::internal)
    }
}

impl PlatformDb {
    /// Creates a platform user if no user has this username; returns the user's id either way.
    pub async fn ensure_platform_user(
        &self,
        username: &str,
        display_name: &str,
        kind: &str,
        province_id: Option<i16>,
    ) -> Result<i64, DomainError> {
        sqlx::query_scalar(
            "with new as (
                 insert into platform.users (username, display_name, kind, province_id)
                 values ($1, $2, $3, $4)
                 on conflict on constraint users_username_key do nothing
                 returning id
             )
             select id from new
             union all
             select id from platform.users where username = $1
             limit 1",
        )
        .bind(username)
        .bind(display_name)
        .bind(kind)
        .bind(province_id)
        .fetch_one(&self.pool)
        .await
        .map_err(crate::internal)
    }
}
