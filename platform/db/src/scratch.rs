//! Throwaway databases for tests and benchmarks, on the same server as a given database.
//!
//! Roles are cluster-wide while databases are not, so every role we create carries the comment
//! `desk:<database>`; dropping a scratch database drops its roles too, and [`sweep`] removes
//! roles and scratch databases left behind by runs that crashed.

use crate::platform::DbConfig;
use anyhow::Context;
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use std::time::{SystemTime, UNIX_EPOCH};

const PREFIX: &str = "desk_scratch_";

/// A database created for one test or benchmark. Call [`ScratchDatabase::drop_now`] at the end.
#[derive(Debug)]
pub struct ScratchDatabase {
    admin: DbConfig,
    name: String,
    /// Connection settings for the scratch database.
    pub config: DbConfig,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl ScratchDatabase {
    /// Creates an empty database next to the one `admin` points at (the login needs CREATEDB).
    pub async fn create(admin: &DbConfig) -> anyhow::Result<Self> {
        let name = format!(
            "{PREFIX}{}_{}",
            now_secs(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        let mut conn = PgConnection::connect_with(&admin.connect)
            .await
            .context("connecting to the server for a scratch database")?;
        sqlx::raw_sql(AssertSqlSafe(format!("create database {name}")))
            .execute(&mut conn)
            .await
            .context("creating a scratch database (does the login have CREATEDB?)")?;
        conn.close().await?;
        Ok(Self {
            admin: admin.clone(),
            config: admin.with_database(&name),
            name,
        })
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the database and the roles created for it.
    pub async fn drop_now(self) -> anyhow::Result<()> {
        let mut conn = PgConnection::connect_with(&self.admin.connect).await?;
        drop_database(&mut conn, &self.name).await?;
        conn.close().await?;
        Ok(())
    }
}

async fn drop_database(conn: &mut PgConnection, name: &str) -> anyhow::Result<()> {
    // A backend of the database may still be closing (or be one `force` may not signal without
    // pg_signal_backend): retry briefly before giving up.
    let mut attempt = 0;
    loop {
        let sql = format!("drop database if exists {name} with (force)");
        match sqlx::raw_sql(AssertSqlSafe(sql)).execute(&mut *conn).await {
            Ok(_) => break,
            Err(_) if attempt < 20 => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
            }
            Err(e) => return Err(anyhow::Error::new(e).context(format!("dropping {name}"))),
        }
    }
    drop_roles_of(conn, name).await
}

async fn drop_roles_of(conn: &mut PgConnection, database: &str) -> anyhow::Result<()> {
    let roles: Vec<String> = sqlx::query_scalar(
        "select rolname from pg_roles where shobj_description(oid, 'pg_authid') = 'desk:' || $1
         order by rolname desc",
    )
    .bind(database)
    .fetch_all(&mut *conn)
    .await?;
    for role in roles {
        // Another sweeper may have dropped it first; that is fine.
        let _ = sqlx::raw_sql(AssertSqlSafe(format!(
            "drop role if exists \"{}\"",
            role.replace('"', "\"\"")
        )))
        .execute(&mut *conn)
        .await;
    }
    Ok(())
}

/// Drops scratch databases older than an hour and roles whose database no longer exists.
pub async fn sweep(admin: &DbConfig) -> anyhow::Result<()> {
    let mut conn = PgConnection::connect_with(&admin.connect).await?;
    let stale: Vec<String> = sqlx::query_scalar(
        "select datname from pg_database where datname like 'desk\\_scratch\\_%'",
    )
    .fetch_all(&mut conn)
    .await?;
    let cutoff = now_secs().saturating_sub(3600);
    for name in stale {
        let born: u64 = name
            .trim_start_matches(PREFIX)
            .split('_')
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX);
        if born < cutoff {
            let _ = drop_database(&mut conn, &name).await;
        }
    }
    let orphans: Vec<String> = sqlx::query_scalar(
        "select distinct substr(shobj_description(r.oid, 'pg_authid'), 6) from pg_roles r
         where shobj_description(r.oid, 'pg_authid') like 'desk:%'
           and not exists (select from pg_database d
                           where d.datname = substr(shobj_description(r.oid, 'pg_authid'), 6))",
    )
    .fetch_all(&mut conn)
    .await?;
    for db in orphans {
        drop_roles_of(&mut conn, &db).await?;
    }
    conn.close().await?;
    Ok(())
}
