//! Tenant repository: citizens, their one-time sign-in codes and their sessions.
//!
//! A code is kept only as `sha256(id:mobile:code)` (salted by its row), expires after a few
//! minutes, allows a handful of attempts, and sends are limited per number; the per-address
//! limit lives in the web layer, which sees the address.

use crate::internal;
use crate::tenant_tx::TenantTx;
use desk_core::{DomainError, MobileNumber};
use sqlx::Row;
use std::time::Duration;

/// How long a sign-in code works.
pub const CODE_TTL: Duration = Duration::from_secs(5 * 60);
/// Wrong guesses allowed per code.
pub const MAX_ATTEMPTS: i32 = 5;
/// Codes one number may be sent per 10 minutes, and per day.
const SENDS_PER_10_MIN: i64 = 3;
const SENDS_PER_DAY: i64 = 10;

/// A citizen known to this municipality.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Citizen {
    /// Row id.
    pub id: i64,
    /// Canonical mobile number.
    pub mobile: String,
    /// National code, once given.
    pub national_code: Option<String>,
    /// Name, once given.
    pub full_name: Option<String>,
}

fn rate_limited(retry_after: u64) -> DomainError {
    DomainError::RateLimited {
        retry_after,
        message: "برای این شماره به تازگی چند کد فرستاده شده است؛ چند دقیقه دیگر دوباره بخواهید."
            .to_owned(),
    }
}

/// Stores a new code for `mobile` (its hash only) unless the number has had too many codes
/// lately. Returns the code's row id.
pub async fn create_sign_in_code(
    tx: &mut TenantTx,
    mobile: &MobileNumber,
    code: &str,
) -> Result<i64, DomainError> {
    // Serialize concurrent sends for one number so the limit cannot be raced past.
    sqlx::query(
        "select pg_advisory_xact_lock(hashtextextended(current_schema() || ':sign_in:' || $1, 0))",
    )
    .bind(mobile.as_str())
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    let row = sqlx::query(
        "select count(*) filter (where sent_at > now() - interval '10 minutes') as recent,
                count(*) as today
           from citizen_sign_in_codes
          where mobile = $1 and sent_at > now() - interval '1 day'",
    )
    .bind(mobile.as_str())
    .fetch_one(&mut **tx)
    .await
    .map_err(internal)?;
    let recent: i64 = row.try_get("recent").map_err(internal)?;
    let today: i64 = row.try_get("today").map_err(internal)?;
    if recent >= SENDS_PER_10_MIN {
        return Err(rate_limited(600));
    }
    if today >= SENDS_PER_DAY {
        return Err(rate_limited(86_400));
    }
    let id: i64 = sqlx::query_scalar(
        "insert into citizen_sign_in_codes (mobile, code_hash, expires_at)
         values ($1, '\\x', now() + make_interval(secs => $2)) returning id",
    )
    .bind(mobile.as_str())
    .bind(CODE_TTL.as_secs_f64())
    .fetch_one(&mut **tx)
    .await
    .map_err(internal)?;
    sqlx::query(
        "update citizen_sign_in_codes
            set code_hash = sha256(convert_to(id::text || ':' || mobile || ':' || $2, 'UTF8'))
          where id = $1",
    )
    .bind(id)
    .bind(code)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(id)
}

/// Checks a code against the newest live code of `mobile`. A wrong code uses up an attempt
/// (the caller commits either way); the right one is used up and yields the citizen (created
/// on first sign-in).
pub async fn redeem_sign_in_code(
    tx: &mut TenantTx,
    mobile: &MobileNumber,
    code: &str,
) -> Result<Option<Citizen>, DomainError> {
    let row = sqlx::query(
        "select id, attempts,
                code_hash = sha256(convert_to(id::text || ':' || mobile || ':' || $2, 'UTF8')) as matches
           from citizen_sign_in_codes
          where mobile = $1 and used_at is null and expires_at > now()
          order by sent_at desc, id desc limit 1
          for update",
    )
    .bind(mobile.as_str())
    .bind(code)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let id: i64 = row.try_get("id").map_err(internal)?;
    let attempts: i32 = row.try_get("attempts").map_err(internal)?;
    let matches: bool = row.try_get("matches").map_err(internal)?;
    if attempts >= MAX_ATTEMPTS {
        return Err(DomainError::RateLimited {
            retry_after: CODE_TTL.as_secs(),
            message: "تعداد تلاش‌ها برای این کد بیش از حد شد؛ کد تازه‌ای بخواهید.".to_owned(),
        });
    }
    if !matches {
        sqlx::query("update citizen_sign_in_codes set attempts = attempts + 1 where id = $1")
            .bind(id)
            .execute(&mut **tx)
            .await
            .map_err(internal)?;
        return Ok(None);
    }
    sqlx::query("update citizen_sign_in_codes set used_at = now() where id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    upsert_citizen(tx, mobile).await.map(Some)
}

/// The citizen with this mobile number, created if new.
pub async fn upsert_citizen(
    tx: &mut TenantTx,
    mobile: &MobileNumber,
) -> Result<Citizen, DomainError> {
    sqlx::query_as(
        "insert into citizens (mobile) values ($1)
         on conflict on constraint citizens_mobile_key do update set mobile = excluded.mobile
         returning id, mobile, national_code, full_name",
    )
    .bind(mobile.as_str())
    .fetch_one(&mut **tx)
    .await
    .map_err(internal)
}

/// Remembers the citizen's national code and name from their latest request.
pub async fn update_citizen_identity(
    tx: &mut TenantTx,
    citizen_id: i64,
    national_code: Option<&str>,
    full_name: Option<&str>,
) -> Result<(), DomainError> {
    sqlx::query(
        "update citizens set national_code = coalesce($2, national_code),
                             full_name = coalesce($3, full_name)
          where id = $1",
    )
    .bind(citizen_id)
    .bind(national_code)
    .bind(full_name)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(())
}

/// Opens a session for a citizen; only the token's hash is stored.
pub async fn create_citizen_session(
    tx: &mut TenantTx,
    citizen_id: i64,
    token: &str,
    csrf: &str,
    ttl: Duration,
) -> Result<(), DomainError> {
    sqlx::query(
        "insert into citizen_sessions (token_hash, citizen_id, csrf, expires_at)
         values (sha256(convert_to($1, 'UTF8')), $2, $3, now() + make_interval(secs => $4))",
    )
    .bind(token)
    .bind(citizen_id)
    .bind(csrf)
    .bind(ttl.as_secs_f64())
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(())
}

/// The citizen and CSRF token of a live session.
pub async fn citizen_session(
    tx: &mut TenantTx,
    token: &str,
) -> Result<Option<(Citizen, String)>, DomainError> {
    #[derive(sqlx::FromRow)]
    struct Live {
        #[sqlx(flatten)]
        citizen: Citizen,
        csrf: String,
    }
    let live: Option<Live> = sqlx::query_as(
        "select c.id, c.mobile, c.national_code, c.full_name, s.csrf
           from citizen_sessions s join citizens c on c.id = s.citizen_id
          where s.token_hash = sha256(convert_to($1, 'UTF8')) and s.expires_at > now()",
    )
    .bind(token)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(live.map(|l| (l.citizen, l.csrf)))
}

/// Ends a session (and sweeps expired ones).
pub async fn delete_citizen_session(tx: &mut TenantTx, token: &str) -> Result<(), DomainError> {
    sqlx::query(
        "delete from citizen_sessions where token_hash = sha256(convert_to($1, 'UTF8')) or expires_at < now()",
    )
    .bind(token)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(())
}
