//! Tenant repository: single sign-on (OpenID Connect) for the staff: the municipality's
//! identity provider, members' linked subjects and the sign-ins in flight.

use crate::internal;
use crate::staff::{self, Staff};
use crate::tenant_tx::TenantTx;
use desk_core::secret::Sealed;
use desk_core::{DomainError, FieldErrors};
use std::time::Duration;

/// How long a sign-in may stay at the provider before its return is refused.
pub const FLOW_TTL: Duration = Duration::from_secs(10 * 60);

/// The municipality's identity provider.
#[derive(Debug, Clone)]
pub struct Provider {
    /// The issuer URL (discovery at `<issuer>/.well-known/openid-configuration`).
    pub issuer: String,
    /// This deployment's client id at the provider.
    pub client_id: String,
    /// The client secret, sealed for purpose [`SECRET_PURPOSE`].
    pub secret: Sealed,
    /// The sign-in button's words.
    pub label: String,
    /// Whether staff may sign in with it.
    pub enabled: bool,
    /// When it was last saved.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// The sealing purpose of the client secret.
pub const SECRET_PURPOSE: &str = "sso_client_secret";

/// The provider, if one was set up.
pub async fn provider(tx: &mut TenantTx) -> Result<Option<Provider>, DomainError> {
    type Row = (
        String,
        String,
        Vec<u8>,
        Vec<u8>,
        String,
        bool,
        chrono::DateTime<chrono::Utc>,
    );
    let row: Option<Row> = sqlx::query_as(
        "select issuer, client_id, secret_nonce, secret_ciphertext, label, enabled, updated_at
               from sso_provider",
    )
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(row.map(
        |(issuer, client_id, nonce, ciphertext, label, enabled, updated_at)| Provider {
            issuer,
            client_id,
            secret: Sealed { nonce, ciphertext },
            label,
            enabled,
            updated_at,
        },
    ))
}

/// Sets up or replaces the provider.
pub async fn save_provider(tx: &mut TenantTx, p: &Provider) -> Result<(), DomainError> {
    sqlx::query(
        "insert into sso_provider (issuer, client_id, secret_nonce, secret_ciphertext, label, enabled)
         values ($1, $2, $3, $4, $5, $6)
         on conflict (id) do update set issuer = excluded.issuer, client_id = excluded.client_id,
             secret_nonce = excluded.secret_nonce, secret_ciphertext = excluded.secret_ciphertext,
             label = excluded.label, enabled = excluded.enabled, updated_at = now()",
    )
    .bind(&p.issuer)
    .bind(&p.client_id)
    .bind(&p.secret.nonce)
    .bind(&p.secret.ciphertext)
    .bind(&p.label)
    .bind(p.enabled)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(internal)
}

/// Swaps the sealed client secret for the same secret sealed anew (an imported copy).
pub async fn reseal_secret(tx: &mut TenantTx, secret: &Sealed) -> Result<(), DomainError> {
    sqlx::query("update sso_provider set secret_nonce = $1, secret_ciphertext = $2")
        .bind(&secret.nonce)
        .bind(&secret.ciphertext)
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(internal)
}

/// Removes the provider and every member's link to it.
pub async fn remove_provider(tx: &mut TenantTx) -> Result<(), DomainError> {
    sqlx::query("delete from sso_provider")
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    sqlx::query("update staff set sso_subject = null where sso_subject is not null")
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    sqlx::query("delete from sso_flows")
        .execute(&mut **tx)
        .await
        .map(|_| ())
        .map_err(internal)
}

// ----- sign-ins in flight -----

/// What a sign-in at the provider is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// Sign in the member linked to the returned subject.
    SignIn,
    /// Accept the invitation whose token hashes to these bytes, linking the subject.
    Join {
        /// The invitation's member.
        staff_id: i64,
        /// SHA-256 of the invitation token.
        invitation_hash: Vec<u8>,
    },
    /// Link the subject to this signed-in member.
    Link {
        /// The member.
        staff_id: i64,
    },
}

/// A sign-in in flight, as stored.
#[derive(Debug, Clone)]
pub struct Flow {
    /// Sent as `state`; must come back unchanged.
    pub state: String,
    /// Sent as `nonce`; must be in the ID token.
    pub nonce: String,
    /// What it is for.
    pub purpose: Purpose,
}

/// Records a sign-in in flight under the browser's `token` (only its hash is kept); forgets the
/// expired ones.
pub async fn start_flow(tx: &mut TenantTx, token: &str, flow: &Flow) -> Result<(), DomainError> {
    sqlx::query("delete from sso_flows where expires_at < now()")
        .execute(&mut **tx)
        .await
        .map_err(internal)?;
    let (purpose, staff_id, invitation_hash) = match &flow.purpose {
        Purpose::SignIn => ("sign_in", None, None),
        Purpose::Join {
            staff_id,
            invitation_hash,
        } => ("join", Some(*staff_id), Some(invitation_hash.as_slice())),
        Purpose::Link { staff_id } => ("link", Some(*staff_id), None),
    };
    sqlx::query(
        "insert into sso_flows (token_hash, state, nonce, purpose, staff_id, invitation_hash, expires_at)
         values (sha256(convert_to($1, 'UTF8')), $2, $3, $4, $5, $6,
                 now() + make_interval(secs => $7))",
    )
    .bind(token)
    .bind(&flow.state)
    .bind(&flow.nonce)
    .bind(purpose)
    .bind(staff_id)
    .bind(invitation_hash)
    .bind(FLOW_TTL.as_secs_f64())
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(internal)
}

/// Takes (uses up) the live sign-in of the browser's `token`.
pub async fn take_flow(tx: &mut TenantTx, token: &str) -> Result<Option<Flow>, DomainError> {
    type Row = (String, String, String, Option<i64>, Option<Vec<u8>>, bool);
    let row: Option<Row> = sqlx::query_as(
        "delete from sso_flows where token_hash = sha256(convert_to($1, 'UTF8'))
         returning state, nonce, purpose, staff_id, invitation_hash, expires_at > now()",
    )
    .bind(token)
    .fetch_optional(&mut **tx)
    .await
    .map_err(internal)?;
    let Some((state, nonce, purpose, staff_id, hash, true)) = row else {
        return Ok(None);
    };
    let purpose = match (purpose.as_str(), staff_id, hash) {
        ("sign_in", None, None) => Purpose::SignIn,
        ("join", Some(staff_id), Some(invitation_hash)) => Purpose::Join {
            staff_id,
            invitation_hash,
        },
        ("link", Some(staff_id), None) => Purpose::Link { staff_id },
        other => {
            return Err(DomainError::Internal(anyhow::anyhow!(
                "sso flow of an unknown shape: {other:?}"
            )));
        }
    };
    Ok(Some(Flow {
        state,
        nonce,
        purpose,
    }))
}

// ----- members' links -----

/// The member linked to the provider's `subject` (deactivated ones too: the caller refuses).
pub async fn member_of_subject(
    tx: &mut TenantTx,
    subject: &str,
) -> Result<Option<Staff>, DomainError> {
    let id: Option<i64> = sqlx::query_scalar("select id from staff where sso_subject = $1")
        .bind(subject)
        .fetch_optional(&mut **tx)
        .await
        .map_err(internal)?;
    match id {
        Some(id) => staff::staff_by_id(tx, id).await,
        None => Ok(None),
    }
}

fn taken() -> DomainError {
    DomainError::Validation(FieldErrors::single(
        "sso",
        "sso_subject_taken",
        "این حساب سازمانی پیش‌تر به عضو دیگری از کارکنان پیوند خورده است.",
    ))
}

/// Links `subject` to member `staff_id` (replacing an earlier link of theirs); refused when
/// another member holds it.
pub async fn link(tx: &mut TenantTx, staff_id: i64, subject: &str) -> Result<(), DomainError> {
    let holder: Option<i64> = sqlx::query_scalar("select id from staff where sso_subject = $1")
        .bind(subject)
        .fetch_optional(&mut **tx)
        .await
        .map_err(internal)?;
    if holder.is_some_and(|id| id != staff_id) {
        return Err(taken());
    }
    sqlx::query(
        "update staff set sso_subject = $2, joined_at = coalesce(joined_at, now()) where id = $1",
    )
    .bind(staff_id)
    .bind(subject)
    .execute(&mut **tx)
    .await
    .map(|_| ())
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_unique_violation() => taken(),
        _ => internal(e),
    })
}

/// Removes member `staff_id`'s link; whether there was one.
pub async fn unlink(tx: &mut TenantTx, staff_id: i64) -> Result<bool, DomainError> {
    let done = sqlx::query(
        "update staff set sso_subject = null where id = $1 and sso_subject is not null",
    )
    .bind(staff_id)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(done.rows_affected() > 0)
}

/// Uses up the live invitation of `staff_id` whose token hashes to `hash`; whether it was one.
pub async fn redeem_invitation_hash(
    tx: &mut TenantTx,
    staff_id: i64,
    hash: &[u8],
) -> Result<bool, DomainError> {
    let done = sqlx::query(
        "update staff_sign_in_tokens t set used_at = now()
           from staff s
          where t.token_hash = $2 and t.staff_id = $1 and t.purpose = 'invitation'
            and t.used_at is null and t.expires_at > now() and s.id = t.staff_id and s.active",
    )
    .bind(staff_id)
    .bind(hash)
    .execute(&mut **tx)
    .await
    .map_err(internal)?;
    Ok(done.rows_affected() > 0)
}
