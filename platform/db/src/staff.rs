//! Tenant repository: staff accounts and their notifications.

use crate::internal;
use crate::tenant_tx::TenantTx;
use desk_core::{DomainError, FieldErrors};
use sqlx::Row;

/// A staff member of a municipality.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staff {
    /// Row id in the tenant's `staff` table.
    pub id: i64,
    /// Sign-in name.
    pub username: String,
    /// Name shown in the portal.
    pub display_name: String,
    /// Canonical mobile (`+989xxxxxxxxx`), if known.
    pub mobile: Option<String>,
    /// Municipality admin?
    pub is_admin: bool,
}

/// Adds a staff member.
pub async fn insert_staff(
    tx: &mut TenantTx,
    username: &str,
    display_name: &str,
    mobile: Option<&str>,
    is_admin: bool,
) -> Result<Staff, DomainError> {
    let row = sqlx::query(
        "insert into staff (username, display_name, mobile, is_admin)
         values ($1, $2, $3, $4)
         returning id",
    )
    .bind(username)
    .bind(display_name)
    .bind(mobile)
    .bind(is_admin)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| match crate::unique_violation(&e) {
        Some("staff_username_key") => DomainError::Validation(FieldErrors::single(
            "username",
            "username_taken",
            "این نام کاربری پیش‌تر گرفته شده است.",
        )),
        _ => match &e {
            sqlx::Error::Database(d) if d.code().as_deref() == Some("23514") => {
                DomainError::Validation(FieldErrors::single(
                    "staff",
                    "invalid_staff",
                    "نام کاربری یا شماره همراه معتبر نیست.",
                ))
            }
            _ => internal(e),
        },
    })?;
    Ok(Staff {
        id: row.try_get("id").map_err(internal)?,
        username: username.to_owned(),
        display_name: display_name.to_owned(),
        mobile: mobile.map(str::to_owned),
        is_admin,
    })
}

/// One staff member by id.
pub async fn staff_by_id(tx: &mut TenantTx, id: i64) -> Result<Option<Staff>, DomainError> {
    let row =
        sqlx::query("select id, username, display_name, mobile, is_admin from staff where id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(internal)?;
    row.map(|r| {
        Ok(Staff {
            id: r.try_get("id").map_err(internal)?,
            username: r.try_get("username").map_err(internal)?,
            display_name: r.try_get("display_name").map_err(internal)?,
            mobile: r.try_get("mobile").map_err(internal)?,
            is_admin: r.try_get("is_admin").map_err(internal)?,
        })
    })
    .transpose()
}

/// Records a welcome notification for a staff member once, with the `send_sms` job that
/// delivers it; a second call is a no-op. The body holds a `{link}` placeholder; the one-time
/// link itself is stored sealed. Returns the notification's id if a row was written.
pub async fn record_welcome(
    tx: &mut TenantTx,
    staff: &Staff,
    body: &str,
    sealed_link: &desk_core::secret::Sealed,
    job_id: &str,
) -> Result<Option<i64>, DomainError> {
    let id: Option<i64> = sqlx::query_scalar(
        "insert into notifications (kind, staff_id, recipient, body, job_id, secret_nonce, secret_ciphertext)
         values ('staff_welcome', $1, $2, $3, $4, $5, $6)
         on conflict on constraint notifications_kind_staff_key do nothing
         returning id",
    )
    .bind(staff.id)
    .bind(&staff.mobile)
    .bind(body)
    .bind(job_id)
    .bind(&sealed_link.nonce)
    .bind(&sealed_link.ciphertext)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    if let Some(id) = id {
        let tenant_id = tx.tenant_id();
        crate::jobs::enqueue(
            tx,
            &desk_core::jobs::SendSms {
                tenant_id,
                notification_id: id,
                attempt: 0,
            },
        )
        .await?;
    }
    Ok(id)
}

/// Stores a one-time sign-in token (its hash) for a staff member.
pub async fn create_sign_in_token(
    tx: &mut TenantTx,
    staff_id: i64,
    token: &str,
    ttl: std::time::Duration,
) -> Result<(), DomainError> {
    sqlx::query(
        "insert into staff_sign_in_tokens (token_hash, staff_id, expires_at)
         values (sha256(convert_to($1, 'UTF8')), $2, now() + make_interval(secs => $3))",
    )
    .bind(token)
    .bind(staff_id)
    .bind(ttl.as_secs_f64())
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(internal)
}

/// How long a one-time sign-in link stays valid.
pub const SIGN_IN_LINK_TTL: std::time::Duration = std::time::Duration::from_secs(3 * 24 * 3600);

/// Issues a fresh one-time sign-in link for a staff member at `host`.
pub async fn issue_sign_in_link(
    tx: &mut TenantTx,
    staff_id: i64,
    host: &desk_core::Hostname,
    urls: &desk_core::PublicUrls,
) -> Result<String, DomainError> {
    let token = desk_core::secret::new_token();
    create_sign_in_token(tx, staff_id, &token, SIGN_IN_LINK_TTL).await?;
    Ok(urls.url(host, &format!("/staff/sign-in/{token}")))
}

/// One staff member by username.
pub async fn staff_by_username(
    tx: &mut TenantTx,
    username: &str,
) -> Result<Option<Staff>, DomainError> {
    let id: Option<i64> = sqlx::query_scalar("select id from staff where username = $1")
        .bind(username)
        .fetch_optional(&mut **tx)
        .await
        .map_err(internal)?;
    match id {
        Some(id) => staff_by_id(tx, id).await,
        None => Ok(None),
    }
}

/// Uses up a sign-in token; the staff member's id if it was valid, unused and unexpired.
pub async fn redeem_sign_in_token(
    tx: &mut TenantTx,
    token: &str,
) -> Result<Option<i64>, DomainError> {
    sqlx::query_scalar(
        "update staff_sign_in_tokens set used_at = now()
         where token_hash = sha256(convert_to($1, 'UTF8')) and used_at is null and expires_at > now()
         returning staff_id",
    )
    .bind(token)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)
}

/// Starts a staff session (only the token's hash is stored).
pub async fn create_staff_session(
    tx: &mut TenantTx,
    staff_id: i64,
    token: &str,
    csrf: &str,
    ttl: std::time::Duration,
) -> Result<(), DomainError> {
    sqlx::query(
        "insert into staff_sessions (token_hash, staff_id, csrf, expires_at)
         values (sha256(convert_to($1, 'UTF8')), $2, $3, now() + make_interval(secs => $4))",
    )
    .bind(token)
    .bind(staff_id)
    .bind(csrf)
    .bind(ttl.as_secs_f64())
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(internal)
}

/// The staff member and CSRF token of a live session.
pub async fn staff_session(
    tx: &mut TenantTx,
    token: &str,
) -> Result<Option<(Staff, String)>, DomainError> {
    let row: Option<(i64, String)> = sqlx::query_as(
        "select staff_id, csrf from staff_sessions
         where token_hash = sha256(convert_to($1, 'UTF8')) and expires_at > now()",
    )
    .bind(token)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    let Some((id, csrf)) = row else {
        return Ok(None);
    };
    Ok(staff_by_id(tx, id).await?.map(|s| (s, csrf)))
}

/// Ends a staff session (and sweeps expired ones).
pub async fn delete_staff_session(tx: &mut TenantTx, token: &str) -> Result<(), DomainError> {
    sqlx::query(
        "delete from staff_sessions where token_hash = sha256(convert_to($1, 'UTF8')) or expires_at < now()",
    )
    .bind(token)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(internal)
}

/// Every staff member, by name.
pub async fn list_staff(tx: &mut TenantTx) -> Result<Vec<Staff>, DomainError> {
    let rows = sqlx::query(
        "select id, username, display_name, mobile, is_admin from staff order by display_name",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    rows.iter()
        .map(|r| {
            Ok(Staff {
                id: r.try_get("id").map_err(internal)?,
                username: r.try_get("username").map_err(internal)?,
                display_name: r.try_get("display_name").map_err(internal)?,
                mobile: r.try_get("mobile").map_err(internal)?,
                is_admin: r.try_get("is_admin").map_err(internal)?,
            })
        })
        .collect()
}
