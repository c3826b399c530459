//! Tenant repository: API keys for integrators. A key is `miz_` + 64 hex characters; only its
//! SHA-256 is stored. A key found in one municipality's schema means nothing in another's.

use crate::internal;
use crate::tenant_tx::TenantTx;
use chrono::{DateTime, Utc};
use desk_core::{DomainError, FieldErrors};

/// What a key may do (the catalog is public and needs no key).
pub const SCOPES: &[(&str, &str)] = &[
    ("requests:submit", "ثبت درخواست"),
    ("requests:read", "خواندن درخواست‌ها"),
    ("requests:act", "اقدام روی درخواست‌ها"),
    ("reports:read", "خواندن گزارش‌ها (بدون داده شخصی)"),
    (
        "catalog:write",
        "ویرایش شناسنامه خدمات و پرسش‌های متداول (با نقش کلید)",
    ),
];

/// A key as lists show it (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ApiKey {
    /// Row id.
    pub id: i64,
    /// Name given by the admin.
    pub name: String,
    /// `miz_` and its first 8 hex characters.
    pub prefix: String,
    /// Scopes.
    pub scopes: Vec<String>,
    /// Staff role it acts as for workflow actions.
    pub role: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// Revoked, if so.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Last successful use.
    pub last_used_at: Option<DateTime<Utc>>,
}

impl ApiKey {
    /// Whether the key carries `scope`.
    pub fn has(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

const COLUMNS: &str =
    "id, name, prefix, scopes, role, created_at, expires_at, revoked_at, last_used_at";

/// Makes a key; returns it (to show once) and its record.
pub async fn create(
    tx: &mut TenantTx,
    name: &str,
    scopes: &[String],
    role: Option<&str>,
    expires_at: Option<DateTime<Utc>>,
    created_by: Option<i64>,
) -> Result<(String, ApiKey), DomainError> {
    let name = name.trim();
    let mut errors = Vec::new();
    if name.is_empty() || name.chars().count() > 100 {
        errors
            .extend(FieldErrors::single("name", "name", "نام کلید لازم است و حداکثر ۱۰۰ نویسه.").0);
    }
    if scopes.is_empty() || scopes.iter().any(|s| !SCOPES.iter().any(|(k, _)| k == s)) {
        errors.extend(FieldErrors::single("scopes", "scopes", "دست‌کم یک دسترسی معتبر برگزینید.").0);
    }
    if scopes
        .iter()
        .any(|s| s == "requests:act" || s == "catalog:write")
        && role.is_none()
    {
        errors.extend(
            FieldErrors::single(
                "role",
                "role",
                "برای اقدام روی درخواست‌ها نقش کلید را تعیین کنید.",
            )
            .0,
        );
    }
    if !errors.is_empty() {
        return Err(FieldErrors(errors).into());
    }
    let secret = desk_core::secret::new_token();
    let key = format!("miz_{secret}");
    let prefix = format!("miz_{}", &secret[..8]);
    let key_row: ApiKey = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "insert into api_keys (name, prefix, key_hash, scopes, role, expires_at, created_by)
         values ($1, $2, sha256(convert_to($3, 'UTF8')), $4, $5, $6, $7)
         returning {COLUMNS}"
    )))
    .bind(name)
    .bind(&prefix)
    .bind(&key)
    .bind(scopes)
    .bind(role)
    .bind(expires_at)
    .bind(created_by)
    .fetch_one(&mut **tx)
    .await
    .map_err(internal)?;
    Ok((key, key_row))
}

/// The live key (not revoked, not expired) matching `key`, marking it used.
pub async fn authenticate(tx: &mut TenantTx, key: &str) -> Result<Option<ApiKey>, DomainError> {
    if !(key.len() == 68 && key.starts_with("miz_")) {
        return Ok(None);
    }
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "update api_keys set last_used_at = now()
          where key_hash = sha256(convert_to($1, 'UTF8')) and revoked_at is null
            and (expires_at is null or expires_at > now())
          returning {COLUMNS}"
    )))
    .bind(key)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)
}

/// Every key, newest first.
pub async fn list(tx: &mut TenantTx) -> Result<Vec<ApiKey>, DomainError> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "select {COLUMNS} from api_keys order by id desc"
    )))
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)
}

/// Revokes a key (idempotent).
pub async fn revoke(tx: &mut TenantTx, id: i64) -> Result<(), DomainError> {
    let done =
        sqlx::query("update api_keys set revoked_at = coalesce(revoked_at, now()) where id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(internal)?;
    if done.rows_affected() == 0 {
        return Err(DomainError::NotFound);
    }
    Ok(())
}
