//! Tenant repository: the municipality's own settings (theme, contact, working week), holidays
//! and SMS provider accounts. Credentials go in and out only sealed; listing never returns them.

use crate::internal;
use crate::tenant_tx::TenantTx;
use chrono::{DateTime, NaiveDate, Utc};
use desk_core::secret::Sealed;
use desk_core::{DomainError, FieldErrors};
use serde_json::Value;
use sqlx::Row;

/// One setting by key.
pub async fn get_setting(tx: &mut TenantTx, key: &str) -> Result<Option<Value>, DomainError> {
    sqlx::query_scalar("select value from settings where key = $1")
        .bind(key)
        .fetch_optional(&mut **tx)
        .await
        .map_err(internal)
}

/// Creates or replaces one setting.
pub async fn put_setting(tx: &mut TenantTx, key: &str, value: &Value) -> Result<(), DomainError> {
    sqlx::query(
        "insert into settings (key, value) values ($1, $2)
         on conflict (key) do update set value = excluded.value, updated_at = now()",
    )
    .bind(key)
    .bind(value)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(internal)
}

/// An SMS provider account, without its credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsAccount {
    /// Row id.
    pub id: i64,
    /// `kavenegar`, `smsir`, `ghasedak` or `magfa`.
    pub provider: String,
    /// Name the admin gave it.
    pub label: String,
    /// Sender line number.
    pub sender_line: String,
    /// When the credentials were last set (all that is ever shown of them).
    pub credentials_set_at: DateTime<Utc>,
    /// In use?
    pub enabled: bool,
}

/// The municipality's SMS accounts, oldest first.
pub async fn list_sms_accounts(tx: &mut TenantTx) -> Result<Vec<SmsAccount>, DomainError> {
    let rows = sqlx::query(
        "select id, provider, label, sender_line, credentials_set_at, enabled
         from sms_accounts order by id",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    rows.iter()
        .map(|r| {
            Ok(SmsAccount {
                id: r.try_get("id").map_err(internal)?,
                provider: r.try_get("provider").map_err(internal)?,
                label: r.try_get("label").map_err(internal)?,
                sender_line: r.try_get("sender_line").map_err(internal)?,
                credentials_set_at: r.try_get("credentials_set_at").map_err(internal)?,
                enabled: r.try_get("enabled").map_err(internal)?,
            })
        })
        .collect()
}

fn check_violation(e: sqlx::Error) -> DomainError {
    match &e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("23514") => {
            DomainError::Validation(FieldErrors::single(
                "sms",
                "sms_account_invalid",
                "نام حساب یا شماره خط فرستنده معتبر نیست.",
            ))
        }
        _ => internal(e),
    }
}

/// Adds an SMS account; `seal` receives the new account's id (credentials are sealed for that
/// account alone) and returns the sealed credentials. Returns the id.
pub async fn add_sms_account(
    tx: &mut TenantTx,
    provider: &str,
    label: &str,
    sender_line: &str,
    seal: impl FnOnce(i64) -> Result<Sealed, DomainError>,
) -> Result<i64, DomainError> {
    let id: i64 = sqlx::query_scalar(
        "insert into sms_accounts (provider, label, sender_line, credentials_nonce, credentials_ciphertext)
         values ($1, $2, $3, '', '') returning id",
    )
    .bind(provider)
    .bind(label)
    .bind(sender_line)
    .fetch_one(&mut **tx)
    .await
    .map_err(check_violation)?;
    replace_sms_credentials(tx, id, &seal(id)?).await?;
    Ok(id)
}

/// One SMS account, without its credentials.
pub async fn sms_account(tx: &mut TenantTx, id: i64) -> Result<Option<SmsAccount>, DomainError> {
    Ok(list_sms_accounts(tx)
        .await?
        .into_iter()
        .find(|a| a.id == id))
}

/// Forgets the sealed secrets of notifications (an imported copy cannot open them anyway).
pub async fn clear_notification_secrets(tx: &mut TenantTx) -> Result<(), DomainError> {
    sqlx::query("update notifications set secret_nonce = null, secret_ciphertext = null where secret_nonce is not null")
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(internal)
}

/// Replaces an account's credentials (and records when they were set).
pub async fn replace_sms_credentials(
    tx: &mut TenantTx,
    id: i64,
    credentials: &Sealed,
) -> Result<(), DomainError> {
    store_sms_credentials(tx, id, credentials, true).await
}

/// Swaps an account's sealed credentials for the same secret sealed anew (import under a new
/// tenant id), keeping when they were set.
pub async fn reseal_sms_credentials(
    tx: &mut TenantTx,
    id: i64,
    credentials: &Sealed,
) -> Result<(), DomainError> {
    store_sms_credentials(tx, id, credentials, false).await
}

async fn store_sms_credentials(
    tx: &mut TenantTx,
    id: i64,
    credentials: &Sealed,
    new_secret: bool,
) -> Result<(), DomainError> {
    let done = sqlx::query(
        "update sms_accounts set credentials_nonce = $2, credentials_ciphertext = $3,
                credentials_set_at = case when $4 then now() else credentials_set_at end
         where id = $1",
    )
    .bind(id)
    .bind(&credentials.nonce)
    .bind(&credentials.ciphertext)
    .bind(new_secret)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    if done.rows_affected() == 0 {
        return Err(DomainError::NotFound);
    }
    Ok(())
}

/// Removes an account.
pub async fn delete_sms_account(tx: &mut TenantTx, id: i64) -> Result<(), DomainError> {
    let done = sqlx::query("delete from sms_accounts where id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    if done.rows_affected() == 0 {
        return Err(DomainError::NotFound);
    }
    Ok(())
}

/// The provider and sealed credentials of accounts `ids` (enabled or not), by id.
pub async fn sms_credentials(
    tx: &mut TenantTx,
    ids: &[i64],
) -> Result<Vec<(i64, String, Sealed)>, DomainError> {
    let rows: Vec<(i64, String, Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "select id, provider, credentials_nonce, credentials_ciphertext from sms_accounts
          where id = any($1)",
    )
    .bind(ids)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(rows
        .into_iter()
        .map(|(id, provider, nonce, ciphertext)| (id, provider, Sealed { nonce, ciphertext }))
        .collect())
}

/// The sealed credentials of an account (for the SMS worker, which opens them in memory).
pub async fn sealed_sms_credentials(
    tx: &mut TenantTx,
    id: i64,
) -> Result<Option<Sealed>, DomainError> {
    let row: Option<(Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "select credentials_nonce, credentials_ciphertext from sms_accounts where id = $1",
    )
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(row.map(|(nonce, ciphertext)| Sealed { nonce, ciphertext }))
}

/// Holidays, by day.
pub async fn list_holidays(tx: &mut TenantTx) -> Result<Vec<(NaiveDate, String)>, DomainError> {
    sqlx::query_as("select day, title from holidays order by day")
        .fetch_all(&mut **tx)
        .await
        .map_err(internal)
}

/// Adds or renames a holiday.
pub async fn put_holiday(
    tx: &mut TenantTx,
    day: NaiveDate,
    title: &str,
) -> Result<(), DomainError> {
    sqlx::query("insert into holidays (day, title) values ($1, $2) on conflict (day) do update set title = excluded.title")
        .bind(day)
        .bind(title)
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.code().as_deref() == Some("23514") => {
                DomainError::Validation(FieldErrors::single("title", "holiday_title", "عنوان تعطیلی لازم است."))
            }
            _ => internal(e),
        })
}

/// Removes a holiday.
pub async fn delete_holiday(tx: &mut TenantTx, day: NaiveDate) -> Result<(), DomainError> {
    sqlx::query("delete from holidays where day = $1")
        .bind(day)
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(internal)
}

/// Stores a theme asset (the logo), replacing the previous one.
pub async fn put_theme_asset(
    tx: &mut TenantTx,
    name: &str,
    content_type: &str,
    bytes: &[u8],
) -> Result<(), DomainError> {
    sqlx::query(
        "insert into theme_assets (name, content_type, bytes) values ($1, $2, $3)
         on conflict (name) do update
         set content_type = excluded.content_type, bytes = excluded.bytes, updated_at = now()",
    )
    .bind(name)
    .bind(content_type)
    .bind(bytes)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(internal)
}

/// A theme asset: (content type, bytes).
pub async fn theme_asset(
    tx: &mut TenantTx,
    name: &str,
) -> Result<Option<(String, Vec<u8>)>, DomainError> {
    sqlx::query_as("select content_type, bytes from theme_assets where name = $1")
        .bind(name)
        .fetch_optional(&mut **tx)
        .await
        .map_err(internal)
}

/// Records a requested test send; returns its id.
pub async fn request_sms_test(
    tx: &mut TenantTx,
    account_id: i64,
    recipient: &str,
) -> Result<i64, DomainError> {
    sqlx::query_scalar(
        "insert into sms_test_sends (account_id, recipient) values ($1, $2) returning id",
    )
    .bind(account_id)
    .bind(recipient)
    .fetch_one(&mut **tx)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("23503") => DomainError::NotFound,
        _ => internal(e),
    })
}

/// What the worker needs to run a test send: the account and the recipient.
#[derive(Debug, Clone)]
pub struct SmsTestRequest {
    /// The account to send through.
    pub account: SmsAccount,
    /// Canonical mobile.
    pub recipient: String,
    /// Still pending?
    pub pending: bool,
}

/// A test send by id.
pub async fn sms_test_request(
    tx: &mut TenantTx,
    id: i64,
) -> Result<Option<SmsTestRequest>, DomainError> {
    let row: Option<(i64, String, String)> =
        sqlx::query_as("select account_id, recipient, outcome from sms_test_sends where id = $1")
            .bind(id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(internal)?;
    let Some((account_id, recipient, outcome)) = row else {
        return Ok(None);
    };
    Ok(sms_account(tx, account_id)
        .await?
        .map(|account| SmsTestRequest {
            account,
            recipient,
            pending: outcome == "pending",
        }))
}

/// Completes a test send with the provider's answer.
pub async fn finish_sms_test(
    tx: &mut TenantTx,
    id: i64,
    provider_message_id: Option<&str>,
    error: Option<(&str, &str)>,
) -> Result<(), DomainError> {
    sqlx::query(
        "update sms_test_sends set finished_at = now(), outcome = case when $2::text is null then 'sent' else 'failed' end,
                provider_message_id = $3, error_code = $2, error_message = $4
         where id = $1 and outcome = 'pending'",
    )
    .bind(id)
    .bind(error.map(|e| e.0))
    .bind(provider_message_id)
    .bind(error.map(|e| e.1))
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(internal)
}

/// The newest test send of each account: (account id, outcome, Persian error message).
pub async fn latest_sms_tests(
    tx: &mut TenantTx,
) -> Result<Vec<(i64, String, Option<String>)>, DomainError> {
    sqlx::query_as(
        "select distinct on (account_id) account_id, outcome, error_message
         from sms_test_sends order by account_id, id desc",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)
}

/// The municipality's working calendar: its weekly days off (the `work_week` setting, ISO
/// weekday numbers, Friday when unset) and its holidays from `from` on.
pub async fn working_calendar(
    tx: &mut TenantTx,
    from: NaiveDate,
) -> Result<desk_core::calendar::WorkingCalendar, DomainError> {
    let days_off: Vec<u32> = match get_setting(tx, "work_week").await? {
        Some(week) => serde_json::from_value(week["days_off"].clone()).unwrap_or_default(),
        None => vec![5],
    };
    let weekly_off = days_off
        .into_iter()
        .filter_map(desk_core::calendar::weekday_from_iso)
        .collect();
    let days: Vec<NaiveDate> =
        sqlx::query_scalar("select day from holidays where day >= $1 order by day")
            .bind(from)
            .fetch_all(&mut **tx)
            .await
            .map_err(internal)?;
    Ok(desk_core::calendar::WorkingCalendar::new(weekly_off, days))
}
