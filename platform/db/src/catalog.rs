//! Tenant repository: the service catalog (versioned identity cards).

use crate::internal;
use crate::tenant_tx::TenantTx;
use desk_core::DomainError;
use desk_core::catalog::ServiceCard;
use sqlx::Row;

/// A published service as citizens see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishedService {
    /// Row id of this version (what a request records).
    pub id: i64,
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
        id: r.try_get("id").map_err(internal)?,
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
        "select id, card, version from services
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
        "select id, card, version from services where code = $1 and status = 'published' and not hidden",
    )
    .bind(code)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    row.as_ref().map(published_from_row).transpose()
}

/// A service as the catalog editor lists it: its published and draft versions.
#[derive(Debug, Clone)]
pub struct EditorService {
    /// Code.
    pub code: String,
    /// Title of the newest version.
    pub title: String,
    /// Published version, if any.
    pub published: Option<i32>,
    /// Draft version, if any.
    pub draft: Option<i32>,
    /// Hidden from citizens?
    pub hidden: bool,
    /// Seeded from the national template?
    pub from_template: bool,
    /// The published card (to compare with the template).
    pub published_card: Option<ServiceCard>,
}

/// Every service with its published and draft versions, by code.
pub async fn editor_services(tx: &mut TenantTx) -> Result<Vec<EditorService>, DomainError> {
    let rows = sqlx::query(
        "select code,
                (array_agg(title order by version desc) filter (where status <> 'retired'))[1] as title,
                max(version) filter (where status = 'published') as published,
                max(version) filter (where status = 'draft') as draft,
                bool_or(hidden) filter (where status = 'published') as hidden,
                -- Retired versions count here: a card edited from the template stays template-born.
                bool_or(from_template) as from_template,
                (array_agg(card) filter (where status = 'published'))[1] as published_card
         from services
         group by code having count(*) filter (where status <> 'retired') > 0
         order by code",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    rows.iter()
        .map(|r| {
            let card: Option<serde_json::Value> = r.try_get("published_card").map_err(internal)?;
            Ok(EditorService {
                code: r.try_get("code").map_err(internal)?,
                title: r.try_get("title").map_err(internal)?,
                published: r.try_get("published").map_err(internal)?,
                draft: r.try_get("draft").map_err(internal)?,
                hidden: r
                    .try_get::<Option<bool>, _>("hidden")
                    .map_err(internal)?
                    .unwrap_or(false),
                from_template: r
                    .try_get::<Option<bool>, _>("from_template")
                    .map_err(internal)?
                    .unwrap_or(false),
                published_card: card
                    .map(serde_json::from_value)
                    .transpose()
                    .map_err(|e| DomainError::Internal(e.into()))?,
            })
        })
        .collect()
}

/// The card to edit: the draft if there is one, else the published version.
pub async fn editable_card(
    tx: &mut TenantTx,
    code: &str,
) -> Result<Option<ServiceCard>, DomainError> {
    let card: Option<serde_json::Value> = sqlx::query_scalar(
        "select card from services where code = $1 and status in ('draft', 'published')
         order by (status = 'draft') desc, version desc limit 1",
    )
    .bind(code)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    card.map(serde_json::from_value)
        .transpose()
        .map_err(|e| DomainError::Internal(e.into()))
}

/// Saves `card` as the draft of its code (a new version; the published one is untouched).
pub async fn save_draft(tx: &mut TenantTx, card: &ServiceCard) -> Result<i32, DomainError> {
    card.validate().map_err(DomainError::Validation)?;
    let json = serde_json::to_value(card).map_err(|e| DomainError::Internal(e.into()))?;
    let updated: Option<i32> = sqlx::query_scalar(
        "update services set card = $2, title = $3, category = $4, search_text = $5
         where code = $1 and status = 'draft' returning version",
    )
    .bind(&card.code)
    .bind(&json)
    .bind(&card.title_fa)
    .bind(&card.category)
    .bind(card.search_text())
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    if let Some(v) = updated {
        return Ok(v);
    }
    sqlx::query_scalar(
        "insert into services (code, version, status, category, title, card, search_text)
         values ($1, coalesce((select max(version) from services where code = $1), 0) + 1, 'draft', $2, $3, $4, $5)
         returning version",
    )
    .bind(&card.code)
    .bind(&card.category)
    .bind(&card.title_fa)
    .bind(&json)
    .bind(card.search_text())
    .fetch_one(&mut **tx)
    .await
    .map_err(internal)
}

/// Publishes the draft of `code`: the published version retires (requests keep pointing at it).
pub async fn publish_draft(tx: &mut TenantTx, code: &str) -> Result<(), DomainError> {
    let hidden: Option<bool> = sqlx::query_scalar(
        "update services set status = 'retired' where code = $1 and status = 'published' returning hidden",
    )
    .bind(code)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    let done = sqlx::query(
        "update services set status = 'published', published_at = now(), hidden = $2
         where code = $1 and status = 'draft'",
    )
    .bind(code)
    .bind(hidden.unwrap_or(false))
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    if done.rows_affected() == 0 {
        return Err(DomainError::NotFound);
    }
    Ok(())
}

/// Hides or shows the published version of `code`.
pub async fn set_hidden(tx: &mut TenantTx, code: &str, hidden: bool) -> Result<(), DomainError> {
    let done =
        sqlx::query("update services set hidden = $2 where code = $1 and status = 'published'")
            .bind(code)
            .bind(hidden)
            .execute(&mut **tx)
            .await
            .map_err(internal)?;
    if done.rows_affected() == 0 {
        return Err(DomainError::NotFound);
    }
    Ok(())
}

/// One card version by row id (the version a request was filed under), whatever its status.
pub async fn card_by_id(tx: &mut TenantTx, id: i64) -> Result<Option<ServiceCard>, DomainError> {
    let card: Option<serde_json::Value> =
        sqlx::query_scalar("select card from services where id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(internal)?;
    card.map(|c| serde_json::from_value(c).map_err(|e| DomainError::Internal(e.into())))
        .transpose()
}

/// The municipality's general FAQ (not about one service).
pub async fn general_faq(tx: &mut TenantTx) -> Result<Vec<desk_core::catalog::Faq>, DomainError> {
    Ok(crate::settings::get_setting(tx, "general_faq")
        .await?
        .and_then(|v| serde_json::from_value(v).ok())
        .unwrap_or_default())
}

/// Replaces the general FAQ.
pub async fn put_general_faq(
    tx: &mut TenantTx,
    faq: &[desk_core::catalog::Faq],
) -> Result<(), DomainError> {
    let value = serde_json::to_value(faq).map_err(|e| DomainError::Internal(e.into()))?;
    crate::settings::put_setting(tx, "general_faq", &value).await
}
