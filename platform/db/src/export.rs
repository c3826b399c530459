//! Copying one municipality's tables out as JSON and back in (export/import).
//!
//! Runs inside a `TenantTx`, so it sees exactly one tenant. Tables are discovered from the
//! tenant's schema (the ledger excepted) and ordered so that referenced tables come first.

use crate::internal;
use crate::tenant_tx::TenantTx;
use desk_core::DomainError;
use serde_json::{Map, Value};
use sqlx::AssertSqlSafe;
use std::collections::{BTreeMap, BTreeSet};

const LEDGER: &str = "_desk_migrations";
/// Tables that never leave a municipality: its migration ledger (rebuilt by the importer) and
/// live sign-in secrets (sessions and one-time links must not work on a copy).
const NOT_EXPORTED: &[&str] = &[
    LEDGER,
    "staff_sessions",
    "staff_sign_in_tokens",
    "staff_challenges",
    "sso_flows",
    "citizen_sessions",
    "citizen_sign_in_codes",
];

fn safe_ident(name: &str) -> Result<&str, DomainError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(name)
    } else {
        Err(DomainError::Internal(anyhow::anyhow!(
            "unexpected table name {name:?}"
        )))
    }
}

/// The tenant's tables, referenced tables before the tables that reference them.
async fn tables_in_order(tx: &mut TenantTx) -> Result<Vec<String>, DomainError> {
    let tables: Vec<String> = sqlx::query_scalar(
        "select tablename::text from pg_tables where schemaname = current_schema()
           and tablename <> all ($1::text[])
         order by tablename",
    )
    .bind(NOT_EXPORTED)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    let edges: Vec<(String, String)> = sqlx::query_as(
        "select c.conrelid::regclass::text, c.confrelid::regclass::text from pg_constraint c
         where c.contype = 'f' and c.connamespace = current_schema()::regnamespace
           and c.conrelid <> c.confrelid",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    let mut deps: BTreeMap<&str, BTreeSet<&str>> = tables
        .iter()
        .map(|t| (t.as_str(), BTreeSet::new()))
        .collect();
    for (from, to) in &edges {
        if let Some(d) = deps.get_mut(from.as_str()) {
            d.insert(to.as_str());
        }
    }
    let mut ordered: Vec<String> = Vec::with_capacity(tables.len());
    while ordered.len() < tables.len() {
        let ready: Vec<&str> = deps
            .iter()
            .filter(|(t, d)| {
                !ordered.iter().any(|o| o == *t)
                    && d.iter()
                        .all(|x| ordered.iter().any(|o| o == x) || !deps.contains_key(x))
            })
            .map(|(t, _)| *t)
            .collect();
        if ready.is_empty() {
            return Err(DomainError::Internal(anyhow::anyhow!(
                "foreign keys form a cycle"
            )));
        }
        ordered.extend(ready.into_iter().map(str::to_owned));
    }
    Ok(ordered)
}

/// Every row of every table of the tenant, as `{table: [row, ...]}` in dependency order
/// (rows ordered by their first column).
pub async fn export_tables(tx: &mut TenantTx) -> Result<Map<String, Value>, DomainError> {
    let mut out = Map::new();
    for table in tables_in_order(tx).await? {
        let t = safe_ident(&table)?;
        let sql = format!(
            "select coalesce(jsonb_agg(to_jsonb(x) order by 1), '[]'::jsonb) from (select * from {t} order by 1) x"
        );
        let rows: Value = sqlx::query_scalar(AssertSqlSafe(sql))
            .persistent(false)
            .fetch_one(&mut **tx)
            .await
            .map_err(internal)?;
        out.insert(table, rows);
    }
    Ok(out)
}

/// The versions recorded in the tenant's migration ledger.
pub async fn ledger_versions(tx: &mut TenantTx) -> Result<Vec<i64>, DomainError> {
    sqlx::query_scalar("select version from _desk_migrations order by version")
        .fetch_all(&mut **tx)
        .await
        .map_err(internal)
}

/// Loads exported rows into the (empty, freshly migrated) tenant of `tx`, keeping ids, and moves
/// identity sequences past them.
pub async fn import_tables(
    tx: &mut TenantTx,
    tables: &Map<String, Value>,
) -> Result<(), DomainError> {
    let known = tables_in_order(tx).await?;
    if let Some(unknown) = tables.keys().find(|k| !known.contains(k)) {
        return Err(DomainError::Validation(desk_core::FieldErrors::single(
            "archive",
            "archive_table_unknown",
            format!("جدول «{unknown}» در این نسخه وجود ندارد."),
        )));
    }
    for table in &known {
        let Some(rows) = tables.get(table) else {
            continue;
        };
        let t = safe_ident(table)?;
        let insert = format!(
            "insert into {t} overriding system value select * from jsonb_populate_recordset(null::{t}, $1)"
        );
        sqlx::query(AssertSqlSafe(insert))
            .persistent(false)
            .bind(rows)
            .execute(&mut **tx)
            .await
            .map_err(internal)?;
        let identities: Vec<String> = sqlx::query_scalar(
            "select column_name::text from information_schema.columns
             where table_schema = current_schema() and table_name = $1 and is_identity = 'YES'",
        )
        .bind(table)
        .fetch_all(&mut **tx)
        .await
        .map_err(internal)?;
        for col in identities {
            let c = safe_ident(&col)?;
            let sql = format!(
                "select setval(pg_get_serial_sequence('{t}', '{c}'), coalesce((select max({c}) from {t}), 0) + 1, false)"
            );
            sqlx::query(AssertSqlSafe(sql))
                .persistent(false)
                .execute(&mut **tx)
                .await
                .map_err(internal)?;
        }
    }
    // API keys come along (the timeline names the key behind each step) but never work on
    // the copy: only their hashes are exported, and they arrive revoked.
    sqlx::query("update api_keys set revoked_at = coalesce(revoked_at, now())")
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    Ok(())
}
