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

/// Records a welcome notification for a staff member once; a second call is a no-op.
/// Returns whether a row was written.
pub async fn record_welcome(
    tx: &mut TenantTx,
    staff: &Staff,
    body: &str,
    job_id: &str,
) -> Result<bool, DomainError> {
    let done = sqlx::query(
        "insert into notifications (kind, staff_id, recipient, body, job_id)
         values ('staff_welcome', $1, $2, $3, $4)
         on conflict on constraint notifications_kind_staff_key do nothing",
    )
    .bind(staff.id)
    .bind(&staff.mobile)
    .bind(body)
    .bind(job_id)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(done.rows_affected() == 1)
}
