//! Tenant repository: the service catalog (versioned identity cards).

use crate::internal;
use crate::tenant_tx::TenantTx;
use desk_core::DomainError;
use desk_core::catalog::ServiceCard;
use sqlx::Row;

/// A published service as citizens see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedService {
    /// The card.
    pub card: ServiceCard,
    /// Its version.
    pub version: i32,
}

/// Adds cards as published version 1 (seeding a new municipality from the template).
pub async fn seed_published(tx: &mut TenantTx, cards: &[ServiceCard]) -> Result<(), DomainError> {
    for card in cards {
        let json = serde_json::to_value(card).map_err(|e| DomainError::Internal(e.into()))?;
        sqlx::query(
            "insert into services (code, version, status, category, title, card, search_text, from_template, published_at)
             values ($1, 1, 'published', $2, $3, $4, $5, true, now())",
        )
        .bind(&card.code)
        .bind(&card.category)
        .bind(&card.title_fa)
        .bind(json)
        .bind(card.search_text())
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    }
    Ok(())
}

fn published_from_row(r: &sqlx::postgres::PgRow) -> Result<PublishedService, DomainError> {
    let card: serde_json::Value = r.try_get("card").map_err(internal)?;
    Ok(PublishedService {
        card: serde_json::from_value(card).map_err(|e| DomainError::Internal(e.into()))?,
        version: r.try_get("version").map_err(internal)?,
    })
}

/// Published, visible services, optionally in one category and matching a folded query
/// (every word must occur), by title.
pub async fn published_services(
    tx: &mut TenantTx,
    category: Option<&str>,
    folded_query: Option<&str>,
) -> Result<Vec<PublishedService>, DomainError> {
    let words: Vec<String> = folded_query
        .unwrap_or_default()
        .split_whitespace()
        .map(|w| {
            format!(
                "%{}%",
                w.replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_")
            )
        })
        .collect();
    let rows = sqlx::query(
        "select card, version from services
         where status = 'published' and not hidden
           and ($1::text is null or category = $1)
           and search_text like all ($2::text[])
         order by title",
    )
    .bind(category)
    .bind(&words)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    rows.iter().map(published_from_row).collect()
}

/// The published version of one service, if visible.
pub async fn published_service(
    tx: &mut TenantTx,
    code: &str,
) -> Result<Option<PublishedService>, DomainError> {
    let row = sqlx::query(
        "select card, version from services where code = $1 and status = 'published' and not hidden",
    )
    .bind(code)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    row.as_ref().map(published_from_row).transpose()
}
