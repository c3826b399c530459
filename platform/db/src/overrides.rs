//! Tenant repository: template overrides (see `desk_core::overrides`).

use crate::internal;
use crate::tenant_tx::TenantTx;
use desk_core::DomainError;
use std::collections::HashMap;

/// One override as the editor shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Override {
    /// Template name.
    pub name: String,
    /// Draft source, if any.
    pub draft: Option<String>,
    /// Published source, if any.
    pub published: Option<String>,
}

/// Every override row.
pub async fn list(tx: &mut TenantTx) -> Result<Vec<Override>, DomainError> {
    sqlx::query_as("select name, draft, published from template_overrides order by name")
        .fetch_all(&mut **tx)
        .await
        .map_err(internal)
}

/// The published sources by template name.
pub async fn published(tx: &mut TenantTx) -> Result<HashMap<String, String>, DomainError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "select name, published from template_overrides where published is not null",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(rows.into_iter().collect())
}

/// The sources a preview renders with: each draft, else the published source.
pub async fn preview(tx: &mut TenantTx) -> Result<HashMap<String, String>, DomainError> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "select name, coalesce(draft, published) from template_overrides
          where coalesce(draft, published) is not null",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(rows.into_iter().collect())
}

/// Saves a draft (already checked with `desk_core::overrides::check_source`); `None` drafts
/// going back to the theme's page.
pub async fn save_draft(
    tx: &mut TenantTx,
    name: &str,
    draft: Option<&str>,
) -> Result<(), DomainError> {
    sqlx::query(
        "insert into template_overrides (name, draft) values ($1, $2)
         on conflict (name) do update set draft = excluded.draft, updated_at = now()",
    )
    .bind(name)
    .bind(draft)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(())
}

/// Publishes every draft (an empty draft withdraws that page's override); returns whether any
/// override is now published.
pub async fn publish(tx: &mut TenantTx) -> Result<bool, DomainError> {
    sqlx::query(
        "update template_overrides
            set published = nullif(draft, ''), draft = null, published_at = now()
          where draft is not null",
    )
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    sqlx::query_scalar(
        "select exists (select 1 from template_overrides where published is not null)",
    )
    .fetch_one(&mut **tx)
    .await
    .map_err(internal)
}
