//! Tenant repository: staff accounts and their notifications.

use crate::internal;
use crate::tenant_tx::TenantTx;
use desk_core::{DomainError, FieldErrors};
use sqlx::{AssertSqlSafe, Row};

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
    /// Not deactivated.
    pub active: bool,
    /// The member's unit (department), if any.
    pub unit_id: Option<i64>,
    /// Whether the member accepted their invitation (set a password or linked their account at
    /// the municipality's identity provider).
    pub joined: bool,
    /// The latest sign-in.
    pub last_sign_in_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When the latest invitation was sent.
    pub invited_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Whether the member signs in with an authenticator app instead of SMS codes.
    pub totp_enabled: bool,
    /// Whether the member's account at the municipality's identity provider is linked.
    pub sso_linked: bool,
}

/// The columns [`staff_from_row`] reads.
const STAFF_COLUMNS: &str = "id, username, display_name, mobile, is_admin, active, unit_id,
     (password_hash is not null or sso_subject is not null) as joined, last_sign_in_at,
     invited_at, totp_enabled_at is not null as totp_enabled, sso_subject is not null as sso_linked";

fn staff_from_row(r: &sqlx::postgres::PgRow) -> Result<Staff, DomainError> {
    Ok(Staff {
        id: r.try_get("id").map_err(internal)?,
        username: r.try_get("username").map_err(internal)?,
        display_name: r.try_get("display_name").map_err(internal)?,
        mobile: r.try_get("mobile").map_err(internal)?,
        is_admin: r.try_get("is_admin").map_err(internal)?,
        active: r.try_get("active").map_err(internal)?,
        unit_id: r.try_get("unit_id").map_err(internal)?,
        joined: r.try_get("joined").map_err(internal)?,
        last_sign_in_at: r.try_get("last_sign_in_at").map_err(internal)?,
        invited_at: r.try_get("invited_at").map_err(internal)?,
        totp_enabled: r.try_get("totp_enabled").map_err(internal)?,
        sso_linked: r.try_get("sso_linked").map_err(internal)?,
    })
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
        Some("staff_mobile_key") => DomainError::Validation(FieldErrors::single(
            "mobile",
            "mobile_taken",
            "این شماره همراه برای یکی دیگر از کارکنان ثبت شده است.",
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
    let id: i64 = row.try_get("id").map_err(internal)?;
    staff_by_id(tx, id).await?.ok_or(DomainError::NotFound)
}

/// One staff member by id.
pub async fn staff_by_id(tx: &mut TenantTx, id: i64) -> Result<Option<Staff>, DomainError> {
    let row = sqlx::query(AssertSqlSafe(format!(
        "select {STAFF_COLUMNS} from staff where id = $1"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    row.as_ref().map(staff_from_row).transpose()
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
         on conflict on constraint notifications_kind_staff_job_key do nothing
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

/// Issues a fresh one-time sign-in link for a staff member at `host`. It skips the password and
/// the second factor, so only operator tools on the server issue it (the demo's banner, tests);
/// members are invited with [`issue_invitation`] and sign in with their password.
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
    let id: Option<i64> = sqlx::query_scalar("select id from staff where username = lower($1)")
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
        "update staff_sign_in_tokens t set used_at = now()
           from staff s
          where t.token_hash = sha256(convert_to($1, 'UTF8')) and t.used_at is null
            and t.expires_at > now() and t.purpose = 'sign_in' and s.id = t.staff_id and s.active
          returning t.staff_id",
    )
    .bind(token)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)
}

/// Where a session was started from (shown to the member in their list of sessions).
#[derive(Debug, Clone, Default)]
pub struct Device<'a> {
    /// The browser's `User-Agent`, cut to 300 characters.
    pub user_agent: Option<&'a str>,
    /// The client address.
    pub address: Option<&'a str>,
}

/// How long sessions live: ended after `idle` without a request, and after `absolute` in any
/// case.
#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    /// Idle timeout.
    pub idle: std::time::Duration,
    /// Absolute limit from sign-in.
    pub absolute: std::time::Duration,
}

/// Starts a staff session (only the token's hash is stored) and notes the sign-in.
pub async fn create_staff_session(
    tx: &mut TenantTx,
    staff_id: i64,
    token: &str,
    csrf: &str,
    limits: SessionLimits,
    device: &Device<'_>,
) -> Result<(), DomainError> {
    let agent: Option<String> = device.user_agent.map(|a| a.chars().take(300).collect());
    let address: Option<String> = device.address.map(|a| a.chars().take(100).collect());
    sqlx::query(
        "insert into staff_sessions (token_hash, staff_id, csrf, expires_at, absolute_expires_at,
                                     user_agent, address)
         values (sha256(convert_to($1, 'UTF8')), $2, $3, now() + make_interval(secs => $4),
                 now() + make_interval(secs => $5), $6, $7)",
    )
    .bind(token)
    .bind(staff_id)
    .bind(csrf)
    .bind(limits.idle.as_secs_f64().min(limits.absolute.as_secs_f64()))
    .bind(limits.absolute.as_secs_f64())
    .bind(agent)
    .bind(address)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    sqlx::query("update staff set last_sign_in_at = now() where id = $1")
        .bind(staff_id)
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(internal)
}

/// The active staff member and CSRF token of a live session; a request extends the idle
/// deadline (written at most once a minute, up to the absolute limit).
pub async fn staff_session(
    tx: &mut TenantTx,
    token: &str,
    limits: SessionLimits,
) -> Result<Option<(Staff, String)>, DomainError> {
    // The member comes with the session (every staff request asks): one round trip.
    let row = sqlx::query(AssertSqlSafe(format!(
        "select {STAFF_COLUMNS}, x.csrf from staff_sessions x join staff s on s.id = x.staff_id
          where x.token_hash = sha256(convert_to($1, 'UTF8')) and x.expires_at > now()
            and x.absolute_expires_at > now() and s.active"
    )))
    .bind(token)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let member = staff_from_row(&row)?;
    let csrf: String = row.try_get("csrf").map_err(internal)?;
    sqlx::query(
        "update staff_sessions
            set last_seen_at = now(),
                expires_at = least(now() + make_interval(secs => $2), absolute_expires_at)
          where token_hash = sha256(convert_to($1, 'UTF8'))
            and last_seen_at < now() - interval '1 minute'",
    )
    .bind(token)
    .bind(limits.idle.as_secs_f64())
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(Some((member, csrf)))
}

/// Ends a staff session (and sweeps expired ones).
pub async fn delete_staff_session(tx: &mut TenantTx, token: &str) -> Result<(), DomainError> {
    sqlx::query(
        "delete from staff_sessions
          where token_hash = sha256(convert_to($1, 'UTF8')) or expires_at < now()
             or absolute_expires_at < now()",
    )
    .bind(token)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(internal)
}

/// A live session of a member, as their list shows it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SessionInfo {
    /// Hex of the token's hash: names the session without revealing it.
    pub id: String,
    /// When it started.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Its latest request (to the minute).
    pub last_seen_at: chrono::DateTime<chrono::Utc>,
    /// Browser.
    pub user_agent: Option<String>,
    /// Client address.
    pub address: Option<String>,
    /// Whether it is the session asking.
    pub current: bool,
}

/// The live sessions of a member, newest first; `current` marks the asking session.
pub async fn sessions_of(
    tx: &mut TenantTx,
    staff_id: i64,
    current_token: &str,
) -> Result<Vec<SessionInfo>, DomainError> {
    sqlx::query_as(
        "select encode(token_hash, 'hex') as id, created_at, last_seen_at, user_agent, address,
                token_hash = sha256(convert_to($2, 'UTF8')) as current
           from staff_sessions
          where staff_id = $1 and expires_at > now() and absolute_expires_at > now()
          order by last_seen_at desc",
    )
    .bind(staff_id)
    .bind(current_token)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)
}

/// Ends one of a member's sessions by its id (see [`SessionInfo::id`]); whether one ended.
pub async fn revoke_session(
    tx: &mut TenantTx,
    staff_id: i64,
    session_id: &str,
) -> Result<bool, DomainError> {
    let done = sqlx::query(
        "delete from staff_sessions where staff_id = $1 and encode(token_hash, 'hex') = $2",
    )
    .bind(staff_id)
    .bind(session_id)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(done.rows_affected() > 0)
}

/// Ends every session of a member but `keep` (the token of the session to keep, if any).
pub async fn end_sessions(
    tx: &mut TenantTx,
    staff_id: i64,
    keep: Option<&str>,
) -> Result<u64, DomainError> {
    let done = sqlx::query(
        "delete from staff_sessions
          where staff_id = $1
            and ($2::text is null or token_hash <> sha256(convert_to($2, 'UTF8')))",
    )
    .bind(staff_id)
    .bind(keep)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(done.rows_affected())
}

// ----- passwords, invitations and codes -----

/// A member and their stored password hash, by username (deactivated members too: the caller
/// checks `active` after the password, so only the member learns their account is off).
pub async fn password_of(
    tx: &mut TenantTx,
    username: &str,
) -> Result<Option<(Staff, String)>, DomainError> {
    let row: Option<(i64, Option<String>)> =
        sqlx::query_as("select id, password_hash from staff where username = lower($1)")
            .bind(username.trim())
            .fetch_optional(&mut **tx)
            .await
            .map_err(internal)?;
    let Some((id, Some(hash))) = row else {
        return Ok(None);
    };
    Ok(staff_by_id(tx, id).await?.map(|s| (s, hash)))
}

/// The stored password hash of a member by id.
pub async fn password_hash(
    tx: &mut TenantTx,
    staff_id: i64,
) -> Result<Option<String>, DomainError> {
    let hash: Option<Option<String>> =
        sqlx::query_scalar("select password_hash from staff where id = $1")
            .bind(staff_id)
            .fetch_optional(&mut **tx)
            .await
            .map_err(internal)?;
    Ok(hash.flatten())
}

/// Sets a member's password (an argon2id PHC string); the first one marks them as joined.
pub async fn set_password(tx: &mut TenantTx, staff_id: i64, hash: &str) -> Result<(), DomainError> {
    sqlx::query(
        "update staff set password_hash = $2, joined_at = coalesce(joined_at, now()) where id = $1",
    )
    .bind(staff_id)
    .bind(hash)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(internal)
}

/// Issues a fresh invitation link (`/staff/welcome/<token>`, valid three days) for a member;
/// earlier unused invitations of theirs stop working.
pub async fn issue_invitation(
    tx: &mut TenantTx,
    staff_id: i64,
    host: &desk_core::Hostname,
    urls: &desk_core::PublicUrls,
) -> Result<String, DomainError> {
    let token = issue_invitation_token(tx, staff_id).await?;
    Ok(urls.url(host, &format!("/staff/welcome/{token}")))
}

/// [`issue_invitation`], returning the token (for a caller that builds the link itself).
pub async fn issue_invitation_token(
    tx: &mut TenantTx,
    staff_id: i64,
) -> Result<String, DomainError> {
    revoke_invitations(tx, staff_id).await?;
    let token = desk_core::secret::new_token();
    sqlx::query(
        "insert into staff_sign_in_tokens (token_hash, staff_id, expires_at, purpose)
         values (sha256(convert_to($1, 'UTF8')), $2, now() + make_interval(secs => $3), 'invitation')",
    )
    .bind(&token)
    .bind(staff_id)
    .bind(SIGN_IN_LINK_TTL.as_secs_f64())
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    sqlx::query("update staff set invited_at = now() where id = $1")
        .bind(staff_id)
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    Ok(token)
}

/// Ends a member's unused invitations at once (a new one is on its way).
pub async fn revoke_invitations(tx: &mut TenantTx, staff_id: i64) -> Result<(), DomainError> {
    sqlx::query(
        "update staff_sign_in_tokens set used_at = now()
          where staff_id = $1 and purpose = 'invitation' and used_at is null",
    )
    .bind(staff_id)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(internal)
}

/// How the latest invitation SMS of a member fared: `queued`, `sent` or `failed`, with the
/// sender's error code when it failed.
pub async fn invitation_delivery(
    tx: &mut TenantTx,
    staff_id: i64,
) -> Result<Option<(String, Option<String>)>, DomainError> {
    sqlx::query_as(
        "select status, error_code from notifications
          where kind = 'staff_welcome' and staff_id = $1 order by id desc limit 1",
    )
    .bind(staff_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)
}

/// The state of a member's latest invitation, for the operator and the team page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvitationState {
    /// No invitation was issued yet (the welcome job has not run).
    NotSent,
    /// Issued and still usable.
    Pending,
    /// Issued and expired unused.
    Expired,
    /// Accepted: the member set a password or linked single sign-on.
    Accepted,
}

impl InvitationState {
    /// From whether the member set a password and whether any invitation is live (`None`: none
    /// was ever issued).
    fn of(joined: bool, live: Option<bool>) -> Self {
        match (joined, live) {
            (true, _) => Self::Accepted,
            (false, Some(true)) => Self::Pending,
            (false, Some(false)) => Self::Expired,
            (false, None) => Self::NotSent,
        }
    }
}

/// The invitation state of every member, in one query (the team page).
pub async fn invitation_states(
    tx: &mut TenantTx,
) -> Result<std::collections::HashMap<i64, InvitationState>, DomainError> {
    let rows: Vec<(i64, bool, Option<bool>)> = sqlx::query_as(
        "select s.id, s.password_hash is not null or s.sso_subject is not null,
                (select bool_or(t.used_at is null and t.expires_at > now())
                   from staff_sign_in_tokens t where t.staff_id = s.id and t.purpose = 'invitation')
           from staff s",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(rows
        .into_iter()
        .map(|(id, joined, live)| (id, InvitationState::of(joined, live)))
        .collect())
}

/// The active member a live invitation is for (the token is not used up).
pub async fn invitation(tx: &mut TenantTx, token: &str) -> Result<Option<Staff>, DomainError> {
    let id: Option<i64> = sqlx::query_scalar(
        "select t.staff_id from staff_sign_in_tokens t join staff s on s.id = t.staff_id
          where t.token_hash = sha256(convert_to($1, 'UTF8')) and t.purpose = 'invitation'
            and t.used_at is null and t.expires_at > now() and s.active",
    )
    .bind(token)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    match id {
        Some(id) => staff_by_id(tx, id).await,
        None => Ok(None),
    }
}

/// Uses up a live invitation; the member's id if it was one.
pub async fn redeem_invitation(tx: &mut TenantTx, token: &str) -> Result<Option<i64>, DomainError> {
    sqlx::query_scalar(
        "update staff_sign_in_tokens t set used_at = now()
           from staff s
          where t.token_hash = sha256(convert_to($1, 'UTF8')) and t.purpose = 'invitation'
            and t.used_at is null and t.expires_at > now() and s.id = t.staff_id and s.active
          returning t.staff_id",
    )
    .bind(token)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)
}

/// What a code challenge proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengePurpose {
    /// The second step of a sign-in.
    SignIn,
    /// A forgotten password.
    Reset,
}

impl ChallengePurpose {
    fn key(self) -> &'static str {
        match self {
            Self::SignIn => "sign_in",
            Self::Reset => "reset",
        }
    }
}

/// Where the code of a challenge comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeMethod {
    /// Sent by SMS (its hash is stored).
    Sms,
    /// Shown by the member's authenticator app (checked against their secret).
    Totp,
}

/// How long a code is valid.
pub const CODE_TTL: std::time::Duration = std::time::Duration::from_secs(5 * 60);
/// Wrong codes a challenge survives.
pub const CODE_ATTEMPTS: i32 = 5;
/// Codes a member may be sent in ten minutes.
const CODES_PER_10_MIN: i64 = 5;

/// Starts a challenge for `staff_id`: stores the hashes of the browser's `token` and the
/// `code` sent by SMS. Refused when the member was sent too many codes lately.
pub async fn create_challenge(
    tx: &mut TenantTx,
    staff_id: i64,
    purpose: ChallengePurpose,
    method: ChallengeMethod,
    token: &str,
    code: &str,
) -> Result<(), DomainError> {
    sqlx::query("select id from staff where id = $1 for update")
        .bind(staff_id)
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    let recent: i64 = sqlx::query_scalar(
        "select count(*) from staff_challenges
          where staff_id = $1 and method = 'sms' and created_at > now() - interval '10 minutes'",
    )
    .bind(staff_id)
    .fetch_one(&mut **tx)
    .await
    .map_err(internal)?;
    if method == ChallengeMethod::Sms && recent >= CODES_PER_10_MIN {
        return Err(DomainError::RateLimited {
            retry_after: 600,
            message: "کدهای زیادی فرستاده شده است؛ ده دقیقه دیگر دوباره تلاش کنید.".to_owned(),
        });
    }
    sqlx::query(
        "insert into staff_challenges (token_hash, staff_id, purpose, code_hash, expires_at, method)
         values (sha256(convert_to($1, 'UTF8')), $2, $3,
                 sha256(convert_to($1 || ':' || $4, 'UTF8')), now() + make_interval(secs => $5), $6)",
    )
    .bind(token)
    .bind(staff_id)
    .bind(purpose.key())
    .bind(code)
    .bind(CODE_TTL.as_secs_f64())
    .bind(match method {
        ChallengeMethod::Sms => "sms",
        ChallengeMethod::Totp => "totp",
    })
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(internal)
}

/// The active member of a live challenge and where its code comes from.
pub async fn challenge_staff(
    tx: &mut TenantTx,
    token: &str,
    purpose: ChallengePurpose,
) -> Result<Option<(Staff, ChallengeMethod)>, DomainError> {
    let row: Option<(i64, String)> = sqlx::query_as(
        "select c.staff_id, c.method from staff_challenges c join staff s on s.id = c.staff_id
          where c.token_hash = sha256(convert_to($1, 'UTF8')) and c.purpose = $2
            and c.used_at is null and c.expires_at > now() and c.attempts < $3 and s.active",
    )
    .bind(token)
    .bind(purpose.key())
    .bind(CODE_ATTEMPTS)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    let Some((id, method)) = row else {
        return Ok(None);
    };
    let method = if method == "totp" {
        ChallengeMethod::Totp
    } else {
        ChallengeMethod::Sms
    };
    Ok(staff_by_id(tx, id).await?.map(|s| (s, method)))
}

// ----- authenticator apps -----

/// A member's authenticator secret (sealed), whether it is enabled, and the last step used.
pub async fn totp_secret(
    tx: &mut TenantTx,
    staff_id: i64,
) -> Result<Option<(desk_core::secret::Sealed, bool, Option<i64>)>, DomainError> {
    let row = sqlx::query(
        "select totp_nonce, totp_ciphertext, totp_enabled_at is not null as enabled, totp_last_step
           from staff where id = $1",
    )
    .bind(staff_id)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    let Some(r) = row else { return Ok(None) };
    let nonce: Option<Vec<u8>> = r.try_get("totp_nonce").map_err(internal)?;
    let ciphertext: Option<Vec<u8>> = r.try_get("totp_ciphertext").map_err(internal)?;
    let (Some(nonce), Some(ciphertext)) = (nonce, ciphertext) else {
        return Ok(None);
    };
    Ok(Some((
        desk_core::secret::Sealed { nonce, ciphertext },
        r.try_get("enabled").map_err(internal)?,
        r.try_get("totp_last_step").map_err(internal)?,
    )))
}

/// Every member's sealed authenticator secret (an imported copy re-seals them).
pub async fn sealed_totp_secrets(
    tx: &mut TenantTx,
) -> Result<Vec<(i64, desk_core::secret::Sealed)>, DomainError> {
    let rows: Vec<(i64, Vec<u8>, Vec<u8>)> = sqlx::query_as(
        "select id, totp_nonce, totp_ciphertext from staff
          where totp_nonce is not null and totp_ciphertext is not null",
    )
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(rows
        .into_iter()
        .map(|(id, nonce, ciphertext)| (id, desk_core::secret::Sealed { nonce, ciphertext }))
        .collect())
}

/// Swaps a member's sealed authenticator secret for the same secret sealed anew, keeping its
/// state.
pub async fn reseal_totp(
    tx: &mut TenantTx,
    staff_id: i64,
    sealed: &desk_core::secret::Sealed,
) -> Result<(), DomainError> {
    sqlx::query("update staff set totp_nonce = $2, totp_ciphertext = $3 where id = $1")
        .bind(staff_id)
        .bind(&sealed.nonce)
        .bind(&sealed.ciphertext)
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(internal)
}

/// Stores a new authenticator secret, not yet enabled (until a code from it is typed).
pub async fn set_totp_pending(
    tx: &mut TenantTx,
    staff_id: i64,
    sealed: &desk_core::secret::Sealed,
) -> Result<(), DomainError> {
    sqlx::query(
        "update staff set totp_nonce = $2, totp_ciphertext = $3, totp_enabled_at = null,
                          totp_last_step = null
          where id = $1",
    )
    .bind(staff_id)
    .bind(&sealed.nonce)
    .bind(&sealed.ciphertext)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(internal)
}

/// Records that the code of `step` was used; false when it (or a later one) already was, so a
/// code is accepted once. Enables the app when `enable`.
pub async fn use_totp_step(
    tx: &mut TenantTx,
    staff_id: i64,
    step: i64,
    enable: bool,
) -> Result<bool, DomainError> {
    let done = sqlx::query(
        "update staff
            set totp_last_step = $2,
                totp_enabled_at = case when $3 then coalesce(totp_enabled_at, now())
                                       else totp_enabled_at end
          where id = $1 and totp_nonce is not null
            and (totp_last_step is null or totp_last_step < $2)",
    )
    .bind(staff_id)
    .bind(step)
    .bind(enable)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(done.rows_affected() == 1)
}

/// Removes a member's authenticator app (SMS codes again).
pub async fn disable_totp(tx: &mut TenantTx, staff_id: i64) -> Result<(), DomainError> {
    sqlx::query(
        "update staff set totp_nonce = null, totp_ciphertext = null, totp_enabled_at = null,
                          totp_last_step = null
          where id = $1",
    )
    .bind(staff_id)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(internal)
}

/// What answers a challenge.
#[derive(Debug, Clone, Copy)]
pub enum Proof<'a> {
    /// The code the member typed, checked against the stored hash (SMS codes).
    Code(&'a str),
    /// The outcome of a check made elsewhere (an authenticator app's code).
    Checked(bool),
}

/// Answers a live challenge. Every answer uses up an attempt (the caller commits either way);
/// the right one uses the challenge up and yields the member's id.
pub async fn redeem_challenge(
    tx: &mut TenantTx,
    token: &str,
    purpose: ChallengePurpose,
    proof: Proof<'_>,
) -> Result<Option<i64>, DomainError> {
    let (code, checked) = match proof {
        Proof::Code(code) => (Some(code), false),
        Proof::Checked(ok) => (None, ok),
    };
    let row: Option<(i64, bool)> = sqlx::query_as(
        "update staff_challenges c
            set attempts = attempts + 1,
                used_at = case when $5 or code_hash = sha256(convert_to($1 || ':' || $3, 'UTF8'))
                               then now() end
           from staff s
          where c.token_hash = sha256(convert_to($1, 'UTF8')) and c.purpose = $2
            and c.used_at is null and c.expires_at > now() and c.attempts < $4
            and s.id = c.staff_id and s.active
          returning c.staff_id, c.used_at is not null",
    )
    .bind(token)
    .bind(purpose.key())
    .bind(code)
    .bind(CODE_ATTEMPTS)
    .bind(checked)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(row.and_then(|(id, ok)| ok.then_some(id)))
}

// ----- the team -----

/// Serializes changes to the team (roles, deactivation) within a municipality, so two admins
/// cannot each demote the other and leave none.
pub async fn lock_team(tx: &mut TenantTx) -> Result<(), DomainError> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended(current_schema() || ':team', 0))")
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(internal)
}

/// Active admins of the municipality (call after [`lock_team`]).
pub async fn active_admins(tx: &mut TenantTx) -> Result<Vec<i64>, DomainError> {
    sqlx::query_scalar("select id from staff where is_admin and active order by id")
        .fetch_all(&mut **tx)
        .await
        .map_err(internal)
}

/// Changes a member's name, admin flag (kept with the `tenant_admin` role) and unit.
pub async fn update_member(
    tx: &mut TenantTx,
    staff_id: i64,
    is_admin: bool,
    unit_id: Option<i64>,
) -> Result<(), DomainError> {
    let done = sqlx::query("update staff set is_admin = $2, unit_id = $3 where id = $1")
        .bind(staff_id)
        .bind(is_admin)
        .bind(unit_id)
        .execute(&mut **tx)
        .await
        .map_err(|e| match &e {
            sqlx::Error::Database(d) if d.code().as_deref() == Some("23503") => {
                DomainError::Validation(FieldErrors::single(
                    "unit_id",
                    "unknown_unit",
                    "این واحد پیدا نشد.",
                ))
            }
            _ => internal(e),
        })?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(DomainError::NotFound)
    }
}

/// Deactivates a member: their sessions and API keys end at once, their open assigned requests
/// go back to their unit's queue with a note on each timeline. Returns how many requests went
/// back.
pub async fn deactivate(
    tx: &mut TenantTx,
    staff_id: i64,
    by_staff: i64,
) -> Result<u64, DomainError> {
    let done = sqlx::query(
        "update staff set active = false, deactivated_at = now() where id = $1 and active",
    )
    .bind(staff_id)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    if done.rows_affected() != 1 {
        return Err(DomainError::Conflict("not an active member".into()));
    }
    end_sessions(tx, staff_id, None).await?;
    sqlx::query(
        "update api_keys set revoked_at = now() where created_by = $1 and revoked_at is null",
    )
    .bind(staff_id)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    sqlx::query(
        "update staff_challenges set used_at = now() where staff_id = $1 and used_at is null",
    )
    .bind(staff_id)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    // Their open work goes back to the unit's queue, each with a note on its timeline.
    let returned: i64 = sqlx::query_scalar(
        "with returned as (
             update requests set assignee_id = null, updated_at = now()
              where assignee_id = $1 and not closed
              returning id, state)
         , noted as (
             insert into request_events (request_id, actor_kind, staff_id, action, from_state, to_state, note)
             select id, 'staff', $2, 'unassign', state, state, $3 from returned
             returning 1)
         select count(*) from noted",
    )
    .bind(staff_id)
    .bind(by_staff)
    .bind("کارشناس این درخواست غیرفعال شد؛ درخواست به صف واحد بازگشت.")
    .fetch_one(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(u64::try_from(returned).unwrap_or(0))
}

/// Reactivates a member (they sign in again with their password).
pub async fn reactivate(tx: &mut TenantTx, staff_id: i64) -> Result<(), DomainError> {
    let done = sqlx::query(
        "update staff set active = true, deactivated_at = null where id = $1 and not active",
    )
    .bind(staff_id)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    if done.rows_affected() == 1 {
        Ok(())
    } else {
        Err(DomainError::Conflict("not a deactivated member".into()))
    }
}

// ----- the activity log -----

/// One line to append to the activity log.
#[derive(Debug, Clone)]
pub struct Activity<'a> {
    /// The member who acted, if a member did.
    pub staff_id: Option<i64>,
    /// Who acted, as shown (a username, `system`, `operator:<name>`).
    pub actor: &'a str,
    /// What was done (`sign_in`, `sign_in.failed`, `team.invite`, `request.act`, ...).
    pub action: &'a str,
    /// Details (never secrets).
    pub detail: serde_json::Value,
    /// The client address.
    pub address: Option<&'a str>,
}

/// Appends a line to the activity log.
pub async fn log_activity(tx: &mut TenantTx, a: &Activity<'_>) -> Result<(), DomainError> {
    sqlx::query(
        "insert into audit_log (staff_id, actor, action, detail, address) values ($1, $2, $3, $4, $5)",
    )
    .bind(a.staff_id)
    .bind(a.actor)
    .bind(a.action)
    .bind(&a.detail)
    .bind(a.address.map(|s| s.chars().take(100).collect::<String>()))
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(internal)
}

/// A line of the activity log.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ActivityRow {
    /// Row id (the order of appending).
    pub id: i64,
    /// When.
    pub at: chrono::DateTime<chrono::Utc>,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// Details.
    pub detail: serde_json::Value,
    /// From where.
    pub address: Option<String>,
}

/// What part of the log to read.
#[derive(Debug, Clone, Default)]
pub struct ActivityFilter {
    /// Actions starting with this (`sign_in`, `team`, `request`, ...).
    pub action_prefix: Option<String>,
    /// Actors whose name starts with this.
    pub actor: Option<String>,
    /// From this instant.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Before this instant.
    pub until: Option<chrono::DateTime<chrono::Utc>>,
    /// Lines older than this id (keyset paging).
    pub before_id: Option<i64>,
}

/// Lines of the activity log, newest first.
pub async fn activity(
    tx: &mut TenantTx,
    f: &ActivityFilter,
    limit: i64,
) -> Result<Vec<ActivityRow>, DomainError> {
    sqlx::query_as(
        "select id, at, actor, action, detail, address from audit_log
          where ($1::text is null or action like $1 || '%')
            and ($2::text is null or actor like $2 || '%')
            and ($3::timestamptz is null or at >= $3)
            and ($4::timestamptz is null or at < $4)
            and ($5::bigint is null or id < $5)
          order by id desc limit $6",
    )
    .bind(&f.action_prefix)
    .bind(&f.actor)
    .bind(f.from)
    .bind(f.until)
    .bind(f.before_id)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)
}

/// Every staff member, by name.
pub async fn list_staff(tx: &mut TenantTx) -> Result<Vec<Staff>, DomainError> {
    let rows = sqlx::query(AssertSqlSafe(format!(
        "select {STAFF_COLUMNS} from staff order by display_name"
    )))
    .fetch_all(&mut **tx)
    .await
    .map_err(internal)?;
    rows.iter().map(staff_from_row).collect()
}
