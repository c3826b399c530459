//! Platform users (admins and provincial operators) and their sessions.

use crate::internal;
use crate::platform::PlatformDb;
use desk_core::DomainError;
use sqlx::Row;
use sqlx::postgres::PgRow;
use std::time::Duration;

/// A platform user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformUser {
    /// `platform.users.id`.
    pub id: i64,
    /// Sign-in name.
    pub username: String,
    /// Name shown in the portal.
    pub display_name: String,
    /// `platform_admin` or `province_operator`.
    pub kind: String,
    /// The operator's province.
    pub province_id: Option<i16>,
    /// The province's Persian name.
    pub province_name_fa: Option<String>,
}

macro_rules! user_select {
    ($($tail:literal)*) => {
        concat!(
            "select u.id, u.username, u.display_name, u.kind, u.province_id,
                    p.name_fa as province_name_fa, u.password_hash
             from platform.users u left join platform.provinces p on p.id = u.province_id ",
            $($tail),*
        )
    };
}

fn user_from_row(r: &PgRow) -> Result<PlatformUser, DomainError> {
    Ok(PlatformUser {
        id: r.try_get("id").map_err(internal)?,
        username: r.try_get("username").map_err(internal)?,
        display_name: r.try_get("display_name").map_err(internal)?,
        kind: r.try_get("kind").map_err(internal)?,
        province_id: r.try_get("province_id").map_err(internal)?,
        province_name_fa: r.try_get("province_name_fa").map_err(internal)?,
    })
}

/// A province with how many municipalities it has.
#[derive(Debug, Clone)]
pub struct ProvinceSummary {
    /// Id (1..=31).
    pub id: i16,
    /// Code (`isfahan`).
    pub code: String,
    /// Persian name.
    pub name_fa: String,
    /// Municipalities not archived.
    pub tenants: i64,
}

impl PlatformDb {
    /// An enabled user by username, with the stored password hash (if a password is set).
    pub async fn user_for_sign_in(
        &self,
        username: &str,
    ) -> Result<Option<(PlatformUser, Option<String>)>, DomainError> {
        let row = sqlx::query(user_select!(
            "where u.username = $1 and u.disabled_at is null"
        ))
        .bind(username)
        .fetch_optional(&self.pool)
        .await
        .map_err(internal)?;
        row.map(|r| {
            Ok((
                user_from_row(&r)?,
                r.try_get("password_hash").map_err(internal)?,
            ))
        })
        .transpose()
    }

    /// Stores a user's password hash (PHC string, never the password).
    pub async fn set_password_hash(&self, user_id: i64, hash: &str) -> Result<(), DomainError> {
        sqlx::query("update platform.users set password_hash = $2 where id = $1")
            .bind(user_id)
            .bind(hash)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(internal)
    }

    /// All users, operators by province.
    pub async fn list_users(&self) -> Result<Vec<PlatformUser>, DomainError> {
        let rows = sqlx::query(user_select!(
            "where u.disabled_at is null order by u.kind, u.province_id, u.username"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(internal)?;
        rows.iter().map(user_from_row).collect()
    }

    /// Provinces with their number of (not archived) municipalities.
    pub async fn province_summaries(&self) -> Result<Vec<ProvinceSummary>, DomainError> {
        let rows = sqlx::query(
            "select p.id, p.code, p.name_fa,
                    count(t.id) filter (where t.status <> 'archived') as tenants
             from platform.provinces p left join platform.tenants t on t.province_id = p.id
             group by p.id order by p.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(internal)?;
        rows.iter()
            .map(|r| {
                Ok(ProvinceSummary {
                    id: r.try_get("id").map_err(internal)?,
                    code: r.try_get("code").map_err(internal)?,
                    name_fa: r.try_get("name_fa").map_err(internal)?,
                    tenants: r.try_get("tenants").map_err(internal)?,
                })
            })
            .collect()
    }

    /// Starts a session; only a hash of `token` is stored.
    pub async fn create_session(
        &self,
        user_id: i64,
        token: &str,
        csrf: &str,
        ttl: Duration,
        source: &str,
    ) -> Result<(), DomainError> {
        sqlx::query(
            "insert into platform.sessions (token_hash, user_id, csrf, source, expires_at)
             values (sha256(convert_to($1, 'UTF8')), $2, $3, $4, now() + make_interval(secs => $5))",
        )
        .bind(token)
        .bind(user_id)
        .bind(csrf)
        .bind(source)
        .bind(ttl.as_secs_f64())
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(internal)
    }

    /// The user and CSRF token of a live session.
    pub async fn session_user(
        &self,
        token: &str,
    ) -> Result<Option<(PlatformUser, String)>, DomainError> {
        let row = sqlx::query(
            "select u.id, u.username, u.display_name, u.kind, u.province_id,
                    p.name_fa as province_name_fa, s.csrf
             from platform.sessions s
             join platform.users u on u.id = s.user_id and u.disabled_at is null
             left join platform.provinces p on p.id = u.province_id
             where s.token_hash = sha256(convert_to($1, 'UTF8')) and s.expires_at > now()",
        )
        .bind(token)
        .fetch_optional(&self.pool)
        .await
        .map_err(internal)?;
        let Some(r) = row else { return Ok(None) };
        let csrf: String = r.try_get("csrf").map_err(internal)?;
        Ok(Some((user_from_row(&r)?, csrf)))
    }

    /// Ends a session (and sweeps expired ones).
    pub async fn delete_session(&self, token: &str) -> Result<(), DomainError> {
        sqlx::query(
            "delete from platform.sessions
             where token_hash = sha256(convert_to($1, 'UTF8')) or expires_at < now()",
        )
        .bind(token)
        .execute(&self.pool)
        .await
        .map(|_| ())
        .map_err(internal)
    }
}

/// A platform API key as lists show it (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PlatformKey {
    /// Row id.
    pub id: i64,
    /// Name given.
    pub name: String,
    /// First characters, to tell keys apart.
    pub prefix: String,
    /// Made at.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Expires at, if ever.
    pub expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Revoked at.
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Last used.
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

const PLATFORM_KEY_COLUMNS: &str =
    "id, name, prefix, created_at, expires_at, revoked_at, last_used_at";

impl PlatformDb {
    /// Makes an API key that acts as `user_id`; returns the key (to show once) and its record.
    pub async fn create_platform_key(
        &self,
        user_id: i64,
        name: &str,
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(String, PlatformKey), DomainError> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(desk_core::FieldErrors::single(
                "name",
                "name",
                "نام کلید لازم است و حداکثر ۱۰۰ نویسه.",
            )
            .into());
        }
        let secret = desk_core::secret::new_token();
        let key = format!("mizp_{secret}");
        let prefix = format!("mizp_{}", &secret[..8]);
        let row = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "insert into platform.api_keys (user_id, name, prefix, key_hash, expires_at)
             values ($1, $2, $3, sha256(convert_to($4, 'UTF8')), $5)
             returning {PLATFORM_KEY_COLUMNS}"
        )))
        .bind(user_id)
        .bind(name)
        .bind(&prefix)
        .bind(&key)
        .bind(expires_at)
        .fetch_one(&self.pool)
        .await
        .map_err(internal)?;
        Ok((key, row))
    }

    /// The enabled user a live platform key acts as, with the key's id, marking the key used.
    pub async fn platform_key_user(
        &self,
        key: &str,
    ) -> Result<Option<(PlatformUser, i64)>, DomainError> {
        if !(key.len() == 69 && key.starts_with("mizp_")) {
            return Ok(None);
        }
        let row = sqlx::query(
            "with k as (
                update platform.api_keys set last_used_at = now()
                 where key_hash = sha256(convert_to($1, 'UTF8')) and revoked_at is null
                   and (expires_at is null or expires_at > now())
             returning id as key_id, user_id)
             select k.key_id, u.id, u.username, u.display_name, u.kind, u.province_id,
                    p.name_fa as province_name_fa
               from k join platform.users u on u.id = k.user_id and u.disabled_at is null
               left join platform.provinces p on p.id = u.province_id",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await
        .map_err(internal)?;
        row.as_ref()
            .map(|r| Ok((user_from_row(r)?, r.try_get("key_id").map_err(internal)?)))
            .transpose()
    }

    /// The keys of one user, newest first.
    pub async fn platform_keys(&self, user_id: i64) -> Result<Vec<PlatformKey>, DomainError> {
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "select {PLATFORM_KEY_COLUMNS} from platform.api_keys where user_id = $1 order by id desc"
        )))
        .bind(user_id)
        .fetch_all(&self.pool)
        .await
        .map_err(internal)
    }

    /// Revokes one of the user's own keys (`NotFound` for anyone else's).
    pub async fn revoke_platform_key(&self, user_id: i64, id: i64) -> Result<(), DomainError> {
        let done = sqlx::query(
            "update platform.api_keys set revoked_at = coalesce(revoked_at, now())
              where id = $1 and user_id = $2",
        )
        .bind(id)
        .bind(user_id)
        .execute(&self.pool)
        .await
        .map_err(internal)?;
        crate::one_row(done)
    }
}
