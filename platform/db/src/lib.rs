//! Database access of Miz: the platform registry, tenant-scoped transactions, the migration
//! runner, transactional job enqueue and the embedded PostgreSQL used by `desk demo` and tests.
//!
//! Owns every SQL statement. Tenant data is reachable only through a [`TenantTx`], which scopes
//! its transaction to one tenant's schema *and* database role, so a query naming another
//! tenant's schema fails in PostgreSQL itself. Platform data is reachable through
//! [`PlatformDb`]. Other crates never see a bare `PgPool`, except the job system and casbin
//! through `PlatformDb::pool_for_infrastructure`, which their APIs require.

pub mod api_keys;
pub mod appointments;
pub mod catalog;
pub mod citizens;
pub mod embedded;
pub mod export;
pub mod files;
pub mod indicators;
pub mod inquiries;
pub mod jobs;
pub mod migrate;
pub mod notifications;
pub mod overrides;
mod platform;
pub mod policy;
pub mod reports;
pub mod requests;
pub mod scratch;
pub mod settings;
pub mod sms_templates;
pub mod sso;
pub mod staff;
pub mod surveys;
mod tenant_tx;
pub mod tenants;
pub mod users;
pub mod webhooks;

pub use platform::{AuditBreak, AuditEntry, DbConfig, InstallId, PlatformDb};
pub use tenant_tx::{TenantDb, TenantScope, TenantTx};
pub use tenants::{Design, NewTenant, Tenant};

use desk_core::DomainError;

/// Wraps an unexpected database error as an internal domain error (logged, never shown).
pub(crate) fn internal(err: sqlx::Error) -> DomainError {
    // Text PostgreSQL cannot store (a NUL character; in JSON, `\u0000`) is the input's fault,
    // whichever form it came through: say so instead of failing as a server error.
    if let sqlx::Error::Database(db) = &err
        && matches!(db.code().as_deref(), Some("22021" | "22P05"))
    {
        return desk_core::FieldErrors::single(
            "text",
            "invalid_character",
            "متن نویسه‌ای دارد که پذیرفته نیست (مانند نویسه تهی NUL)؛ آن را بردارید.",
        )
        .into();
    }
    if unreachable(&err) {
        tracing::warn!(error = %err, "database unreachable");
        return DomainError::Unavailable;
    }
    DomainError::Internal(anyhow::Error::new(err))
}

/// Whether `err` says the database cannot be reached now (so nothing was done and a retry may
/// succeed): no connection, a pool without one free in time, a server shutting down or
/// starting, a connection cut.
pub(crate) fn unreachable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P01-57P03: admin/crash shutdown, cannot connect now.
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

/// `Ok` when a statement changed exactly one row, `NotFound` when it changed none (an id of
/// another municipality's, or one that is gone).
pub(crate) fn one_row(done: sqlx::postgres::PgQueryResult) -> Result<(), DomainError> {
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(DomainError::NotFound)
    }
}

/// The name of the unique constraint a database error violated, if any.
pub(crate) fn unique_violation(err: &sqlx::Error) -> Option<&str> {
    match err {
        sqlx::Error::Database(db) if db.code().as_deref() == Some("23505") => db.constraint(),
        _ => None,
    }
}
