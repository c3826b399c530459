//! Daily sign-in of a municipality's staff at `/staff/sign-in`: username and password (argon2id),
//! then a six-digit code sent by SMS to the member's mobile (`/staff/sign-in/code`); accepting an
//! invitation (`/staff/welcome/<token>`: set a password, signed in at once); a forgotten password
//! reset by SMS code (`/staff/forgot`).
//!
//! Before there is a session, forms carry a CSRF token that must equal a cookie of this host
//! (double submit), and a browser's `Origin`/`Sec-Fetch-Site` must name this very host: a
//! sibling municipality's page cannot sign a member into an account of the attacker's choosing.
//! Guessing is slowed per account and address and per address (progressive delay), never by
//! locking the account itself.

use crate::WebState;
use crate::citizen::Source;
use crate::pages::{TenantView, render};
use crate::staff::{SESSION_LIMITS, failure};
use axum::Router;
use axum::extract::{Extension, Form, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use desk_core::{DomainError, FieldErrors, MobileNumber};
use desk_db::notifications::{self, Kind};
use desk_db::staff::{self, ChallengeMethod, ChallengePurpose, Staff};
use desk_db::{Tenant, settings};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const PRE_COOKIE: &str = "desk_staff_pre";
const CHALLENGE_COOKIE: &str = "desk_staff_challenge";

pub(crate) fn sign_in_routes() -> Router<WebState> {
    Router::new()
        .route("/staff/sign-in", get(show_sign_in).post(check_password))
        .route("/staff/sign-in/code", get(show_code).post(check_code))
        .route(
            "/staff/welcome/{token}",
            get(show_welcome).post(accept_invitation),
        )
        .route(
            "/staff/forgot",
            get(|s, t, h| empty_form(s, t, h, "staff_forgot.html.j2")).post(send_reset_code),
        )
        .route(
            "/staff/forgot/code",
            get(|s, t, h| empty_form(s, t, h, "staff_reset.html.j2")).post(reset_password),
        )
}

// ----- the pre-session token (login CSRF) -----

/// The browser's pre-session token, or a fresh one to set.
struct Pre {
    token: String,
    fresh: bool,
}

impl Pre {
    fn of(headers: &HeaderMap) -> Self {
        match crate::cookies::session_token(headers, PRE_COOKIE) {
            Some(token) => Self {
                token,
                fresh: false,
            },
            None => Self {
                token: desk_core::secret::new_token(),
                fresh: true,
            },
        }
    }

    /// Sets the cookie on `res` if it is new.
    fn keep(&self, mut res: Response, secure: bool) -> Response {
        if self.fresh {
            res.headers_mut().append(
                header::SET_COOKIE,
                crate::cookies::session_cookie(
                    PRE_COOKIE,
                    &self.token,
                    "/staff",
                    Duration::from_secs(24 * 3600),
                    secure,
                ),
            );
        }
        res
    }
}

/// A page with a pre-session form: the view gets the municipality, the form's CSRF nonce (its
/// cookie set when new) and the errors to summarise.
fn pre_page(
    state: &WebState,
    tenant: &Tenant,
    headers: &HeaderMap,
    status: StatusCode,
    template: &str,
    errors: Option<&FieldErrors>,
    mut view: serde_json::Value,
) -> Response {
    let pre = Pre::of(headers);
    view["tenant"] = json!(TenantView::of(tenant));
    view["csrf"] = json!(pre.token);
    view["errors"] = json!(errors.map(|e| &e.0));
    view["min_length"] = json!(desk_core::text::persian_digits(
        &desk_core::password::MIN_LENGTH.to_string()
    ));
    let res = render(state, status, template, view);
    pre.keep(res, state.secure_cookies)
}

/// A pre-session form with nothing filled in yet.
async fn empty_form(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    headers: HeaderMap,
    template: &'static str,
) -> Response {
    pre_page(
        &state,
        &tenant,
        &headers,
        StatusCode::OK,
        template,
        None,
        json!({}),
    )
}

/// `Forbidden` unless the form's token matches the pre-session cookie and the request is
/// same-origin.
pub(crate) fn check_pre(headers: &HeaderMap, sent: &str) -> Result<(), DomainError> {
    let cookie = crate::cookies::session_token(headers, PRE_COOKIE);
    if !crate::dispatch::foreign_origin(headers)
        && !sent.is_empty()
        && cookie.as_deref() == Some(sent)
    {
        Ok(())
    } else {
        Err(DomainError::Forbidden)
    }
}

fn challenge_cookie(token: &str, secure: bool) -> HeaderValue {
    crate::cookies::session_cookie(CHALLENGE_COOKIE, token, "/staff", staff::CODE_TTL, secure)
}

pub(crate) async fn expired_form(
    state: &WebState,
    tenant: &Tenant,
    headers: &HeaderMap,
) -> Response {
    let errors = FieldErrors::single(
        "csrf",
        "form_expired",
        "این فرم از صفحه دیگری آمده یا کهنه شده است؛ صفحه را دوباره باز کنید و بفرستید.",
    );
    sign_in_page(state, tenant, headers, StatusCode::FORBIDDEN, Some(&errors)).await
}

// ----- password step -----

/// The sign-in form (also what a signed-out visitor of a staff page sees).
pub(crate) async fn sign_in_page(
    state: &WebState,
    tenant: &Tenant,
    headers: &HeaderMap,
    status: StatusCode,
    errors: Option<&FieldErrors>,
) -> Response {
    sign_in_page_with(state, tenant, headers, status, errors, "", None).await
}

async fn sign_in_page_with(
    state: &WebState,
    tenant: &Tenant,
    headers: &HeaderMap,
    status: StatusCode,
    errors: Option<&FieldErrors>,
    username: &str,
    notice: Option<&str>,
) -> Response {
    let sso = crate::sso::button(state, tenant).await;
    let mut res = pre_page(
        state,
        tenant,
        headers,
        status,
        "staff_login.html.j2",
        errors,
        json!({ "username": username, "notice": notice, "sso": sso }),
    );
    crate::sso::allow_forms(&mut res, sso.as_ref());
    res
}

#[derive(Debug, Deserialize, Default)]
struct SignInQuery {
    #[serde(default)]
    reset: Option<u8>,
}

async fn show_sign_in(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    headers: HeaderMap,
    axum::extract::Query(q): axum::extract::Query<SignInQuery>,
) -> Response {
    let notice = q
        .reset
        .is_some()
        .then_some("گذرواژه تازه ثبت شد و نشست‌های پیشین بسته شد. اکنون با آن وارد شوید.");
    sign_in_page_with(&state, &tenant, &headers, StatusCode::OK, None, "", notice).await
}

#[derive(Debug, Deserialize)]
struct PasswordForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    csrf: String,
}

/// An argon2 hash of a random string, checked when the username is unknown (timing).
static DUMMY_HASH: std::sync::LazyLock<Option<String>> =
    std::sync::LazyLock::new(|| desk_core::password::hash(&desk_core::secret::new_token()).ok());

/// Checks a password off the async workers.
async fn verify_password(password: String, hash: Option<String>) -> bool {
    let hash = hash.or_else(|| DUMMY_HASH.clone());
    let Some(hash) = hash else { return false };
    tokio::task::spawn_blocking(move || desk_core::password::verify(&password, &hash))
        .await
        .unwrap_or(false)
}

/// A fresh six-digit code.
fn new_code() -> String {
    format!("{:06}", uuid::Uuid::new_v4().as_u128() % 1_000_000)
}

/// Whether the municipality has an SMS account that can carry codes.
async fn sms_ready(tx: &mut desk_db::TenantTx) -> Result<bool, DomainError> {
    Ok(settings::list_sms_accounts(tx)
        .await?
        .iter()
        .any(|a| a.enabled))
}

/// Sends `member` a code for `purpose`; returns the challenge token for the browser's cookie.
async fn send_code(
    state: &WebState,
    tenant: &Tenant,
    tx: &mut desk_db::TenantTx,
    member: &Staff,
    mobile: &MobileNumber,
    purpose: ChallengePurpose,
) -> Result<String, DomainError> {
    let Some(key) = &state.secrets else {
        tracing::error!("staff sign-in codes need secrets.master_key");
        return Err(DomainError::Unavailable);
    };
    let code = new_code();
    let token = desk_core::secret::new_token();
    staff::create_challenge(tx, member.id, purpose, ChallengeMethod::Sms, &token, &code).await?;
    let sealed = key.seal(
        tenant.id,
        &format!("sign_in_code:{}", mobile.as_str()),
        code.as_bytes(),
    )?;
    // The sender fills in the sealed code. A reset says what it is for, so someone who did not
    // ask for one knows to ignore it (and to tell the admin).
    let body = match purpose {
        ChallengePurpose::SignIn => {
            desk_db::sms_templates::render(
                tx,
                desk_core::sms_templates::Event::SignInCode,
                &json!({ "municipality": tenant.name_fa, "code": "{code}" }),
            )
            .await?
        }
        ChallengePurpose::Reset => desk_core::sms_templates::SmsBody::from(format!(
            "کد بازنشانی گذرواژه شما در میز خدمت {}: {{code}}\nاگر شما نخواسته‌اید، این پیامک را نادیده بگیرید و به مدیر میز خدمت خبر دهید.",
            tenant.name_fa
        )),
    };
    notifications::queue_sms(tx, Kind::SignInCode, mobile.as_str(), body, Some(&sealed)).await?;
    Ok(token)
}

/// A sign-in refused for a reason the person can act on: the answer's status and the message
/// for the form's error summary.
type Refusal = (StatusCode, FieldErrors);

fn refused(status: StatusCode, field: &str, code: &'static str, message: &str) -> Refusal {
    (status, FieldErrors::single(field, code, message))
}

async fn check_password(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Source(source): Source,
    headers: HeaderMap,
    Form(form): Form<PasswordForm>,
) -> Response {
    if check_pre(&headers, &form.csrf).is_err() {
        return expired_form(&state, &tenant, &headers).await;
    }
    let username = form.username.trim().to_lowercase();
    let account_key = format!("{}:{username}", tenant.id);
    let address_key = format!("{}:{source}", tenant.id);
    if let Err(wait) = state.limits.staff_sign_in.check(&account_key, &address_key) {
        let errors = FieldErrors::single(
            "password",
            "slow_down",
            desk_core::limiter::SignInDelays::message(wait),
        );
        return sign_in_page_with(
            &state,
            &tenant,
            &headers,
            StatusCode::TOO_MANY_REQUESTS,
            Some(&errors),
            &username,
            None,
        )
        .await;
    }
    let found = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let found = staff::password_of(&mut tx, &username).await?;
        tx.commit().await?;
        Ok::<_, DomainError>(found)
    }
    .await;
    let found = match found {
        Ok(f) => f,
        Err(e) => return failure(&state, &tenant, &e),
    };
    let (member, hash) = match found {
        Some((m, h)) => (Some(m), Some(h)),
        None => (None, None),
    };
    let ok = verify_password(form.password, hash).await && member.is_some();
    state
        .limits
        .staff_sign_in
        .record(&account_key, &address_key, ok);
    let result = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let member = match member {
            Some(m) if ok && m.active => m,
            other => {
                // The right password of a deactivated member: say so (only they can know it).
                let (staff_id, actor, step, refusal) = match other {
                    Some(m) if ok => (
                        Some(m.id),
                        m.username,
                        "deactivated",
                        refused(
                            StatusCode::FORBIDDEN,
                            "username",
                            "deactivated",
                            "حساب شما غیرفعال شده است. اگر باید فعال باشد، به مدیر میز خدمت بگویید.",
                        ),
                    ),
                    _ => (
                        None,
                        username.chars().take(40).collect(),
                        "password",
                        refused(
                            StatusCode::UNAUTHORIZED,
                            "password",
                            "wrong_password",
                            "نام کاربری یا گذرواژه درست نیست.",
                        ),
                    ),
                };
                staff::log_activity(
                    &mut tx,
                    &staff::Activity {
                        staff_id,
                        actor: &actor,
                        action: "sign_in.failed",
                        detail: json!({ "step": step }),
                        address: Some(&source),
                    },
                )
                .await?;
                tx.commit().await?;
                return Ok(Err(refusal));
            }
        };
        if member.totp_enabled {
            // The member's authenticator app shows the code: nothing to send.
            let token = desk_core::secret::new_token();
            let unusable = desk_core::secret::new_token();
            staff::create_challenge(
                &mut tx,
                member.id,
                ChallengePurpose::SignIn,
                ChallengeMethod::Totp,
                &token,
                &unusable,
            )
            .await?;
            tx.commit().await?;
            return Ok(Ok(token));
        }
        let Some(mobile) = member
            .mobile
            .as_deref()
            .and_then(|m| MobileNumber::parse(m).ok())
        else {
            return Ok(Err(refused(
                StatusCode::CONFLICT,
                "username",
                "no_mobile",
                "برای شما شماره همراهی ثبت نشده است؛ از مدیر میز خدمت بخواهید آن را ثبت کند.",
            )));
        };
        if !sms_ready(&mut tx).await? {
            return Ok(Err(refused(
                StatusCode::SERVICE_UNAVAILABLE,
                "username",
                "sms_unavailable",
                "ورود دومرحله‌ای با پیامک انجام می‌شود و سامانه پیامک این شهرداری هنوز راه‌اندازی نشده \
                 است. مدیر میز خدمت باید حساب پیامک را در تنظیمات بیفزاید؛ اگر خود مدیر هستید، از \
                 کارشناس استان پیوند ورود یک‌بار مصرف بخواهید.",
            )));
        }
        let token = send_code(
            &state,
            &tenant,
            &mut tx,
            &member,
            &mobile,
            ChallengePurpose::SignIn,
        )
        .await?;
        tx.commit().await?;
        Ok::<_, DomainError>(Ok(token))
    }
    .await;
    match result {
        Ok(Ok(token)) => {
            let mut res = Redirect::to("/staff/sign-in/code").into_response();
            res.headers_mut().append(
                header::SET_COOKIE,
                challenge_cookie(&token, state.secure_cookies),
            );
            res
        }
        Ok(Err((status, errors))) => {
            sign_in_page_with(
                &state,
                &tenant,
                &headers,
                status,
                Some(&errors),
                &username,
                None,
            )
            .await
        }
        Err(e) => failure(&state, &tenant, &e),
    }
}

// ----- code step -----

fn code_page(
    state: &WebState,
    tenant: &Tenant,
    headers: &HeaderMap,
    (member, method): &(Staff, ChallengeMethod),
    status: StatusCode,
    errors: Option<&FieldErrors>,
) -> Response {
    let mobile = member
        .mobile
        .as_deref()
        .map(|m| desk_core::text::persian_digits(&desk_core::mobile::masked(m)))
        .unwrap_or_default();
    pre_page(
        state,
        tenant,
        headers,
        status,
        "staff_code.html.j2",
        errors,
        json!({ "mobile": mobile, "app": *method == ChallengeMethod::Totp }),
    )
}

async fn live_challenge(
    state: &WebState,
    tenant: &Tenant,
    headers: &HeaderMap,
    purpose: ChallengePurpose,
) -> Result<Option<(String, (Staff, ChallengeMethod))>, DomainError> {
    let Some(token) = crate::cookies::session_token(headers, CHALLENGE_COOKIE) else {
        return Ok(None);
    };
    let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
    let member = staff::challenge_staff(&mut tx, &token, purpose).await?;
    tx.commit().await?;
    Ok(member.map(|m| (token, m)))
}

async fn start_again(state: &WebState, tenant: &Tenant, headers: &HeaderMap) -> Response {
    let errors = FieldErrors::single(
        "code",
        "code_expired",
        "زمان کد گذشته یا تلاش‌های نادرست زیاد بوده است؛ دوباره وارد شوید تا کد تازه‌ای فرستاده شود.",
    );
    sign_in_page(
        state,
        tenant,
        headers,
        StatusCode::UNAUTHORIZED,
        Some(&errors),
    )
    .await
}

async fn show_code(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    headers: HeaderMap,
) -> Response {
    match live_challenge(&state, &tenant, &headers, ChallengePurpose::SignIn).await {
        Ok(Some((_, member))) => {
            code_page(&state, &tenant, &headers, &member, StatusCode::OK, None)
        }
        Ok(None) => start_again(&state, &tenant, &headers).await,
        Err(e) => failure(&state, &tenant, &e),
    }
}

#[derive(Debug, Deserialize)]
struct CodeForm {
    #[serde(default)]
    code: String,
    #[serde(default)]
    csrf: String,
}

fn device<'a>(headers: &'a HeaderMap, address: &'a str) -> staff::Device<'a> {
    staff::Device {
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok()),
        address: Some(address),
    }
}

/// Starts a session for `staff_id` in `tx`; returns the session token.
pub(crate) async fn start_session(
    tx: &mut desk_db::TenantTx,
    staff_id: i64,
    headers: &HeaderMap,
    address: &str,
) -> Result<String, DomainError> {
    let token = desk_core::secret::new_token();
    let csrf = desk_core::secret::new_token();
    staff::create_staff_session(
        tx,
        staff_id,
        &token,
        &csrf,
        SESSION_LIMITS,
        &device(headers, address),
    )
    .await?;
    Ok(token)
}

pub(crate) fn signed_in(state: &WebState, session: &str) -> Response {
    let mut res = Redirect::to("/staff").into_response();
    let headers = res.headers_mut();
    headers.append(
        header::SET_COOKIE,
        crate::staff::cookie(session, state.secure_cookies),
    );
    headers.append(
        header::SET_COOKIE,
        challenge_cookie("", state.secure_cookies),
    );
    res
}

async fn check_code(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Source(source): Source,
    headers: HeaderMap,
    Form(form): Form<CodeForm>,
) -> Response {
    if check_pre(&headers, &form.csrf).is_err() {
        return expired_form(&state, &tenant, &headers).await;
    }
    let Some(token) = crate::cookies::session_token(&headers, CHALLENGE_COOKIE) else {
        return start_again(&state, &tenant, &headers).await;
    };
    let code = desk_core::mobile::ascii_digits(form.code.trim());
    let result = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let challenge = staff::challenge_staff(&mut tx, &token, ChallengePurpose::SignIn).await?;
        let Some(challenge) = challenge else {
            tx.commit().await?;
            return Ok(Err(None));
        };
        let member = &challenge.0;
        let redeemed = match challenge.1 {
            ChallengeMethod::Sms if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) => {
                staff::redeem_challenge(
                    &mut tx,
                    &token,
                    ChallengePurpose::SignIn,
                    staff::Proof::Code(&code),
                )
                .await?
            }
            ChallengeMethod::Sms => None,
            ChallengeMethod::Totp => {
                let ok = totp_matches(&state, &tenant, &mut tx, member.id, &code).await?;
                staff::redeem_challenge(
                    &mut tx,
                    &token,
                    ChallengePurpose::SignIn,
                    staff::Proof::Checked(ok),
                )
                .await?
            }
        };
        let activity = |action| staff::Activity {
            staff_id: Some(member.id),
            actor: &member.username,
            action,
            detail: json!({}),
            address: Some(&source),
        };
        let outcome = match redeemed {
            Some(id) => {
                let session = start_session(&mut tx, id, &headers, &source).await?;
                staff::log_activity(&mut tx, &activity("sign_in")).await?;
                Ok(session)
            }
            None => {
                staff::log_activity(&mut tx, &activity("sign_in.failed")).await?;
                Err(Some(challenge.clone()))
            }
        };
        // A wrong code uses up an attempt: commit either way.
        tx.commit().await?;
        Ok::<_, DomainError>(outcome)
    }
    .await;
    match result {
        Ok(Ok(session)) => signed_in(&state, &session),
        Ok(Err(Some(member))) => {
            let errors = FieldErrors::single(
                "code",
                "wrong_code",
                "کد درست نیست یا پیش‌تر به کار رفته است؛ کد شش‌رقمی تازه را وارد کنید.",
            );
            code_page(
                &state,
                &tenant,
                &headers,
                &member,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&errors),
            )
        }
        Ok(Err(None)) => start_again(&state, &tenant, &headers).await,
        Err(e) => failure(&state, &tenant, &e),
    }
}

/// Whether `code` is the member's authenticator code of now, not used before (the step is
/// recorded in `tx`, so a code works once).
pub(crate) async fn totp_matches(
    state: &WebState,
    tenant: &Tenant,
    tx: &mut desk_db::TenantTx,
    staff_id: i64,
    code: &str,
) -> Result<bool, DomainError> {
    let Some(key) = &state.secrets else {
        return Err(DomainError::Unavailable);
    };
    let Some((sealed, _, last_step)) = staff::totp_secret(tx, staff_id).await? else {
        return Ok(false);
    };
    let secret = key.open(tenant.id, &format!("staff_totp:{staff_id}"), &sealed)?;
    let now = chrono::Utc::now().timestamp();
    match desk_core::totp::verify(&secret, code, now, last_step) {
        Some(step) => staff::use_totp_step(tx, staff_id, step, false).await,
        None => Ok(false),
    }
}

// ----- invitations -----

pub(crate) fn invitation_gone(state: &WebState, tenant: &Tenant) -> Response {
    crate::pages::error_page(
        state,
        StatusCode::GONE,
        Some(tenant),
        "دعوت‌نامه معتبر نیست",
        "این دعوت‌نامه پیش‌تر به کار رفته، باطل شده یا زمانش (سه روز) گذشته است. از مدیر میز خدمت \
         (یا اگر خود مدیر هستید، از کارشناس استان) بخواهید دعوت‌نامه تازه‌ای بفرستد.",
    )
}

async fn welcome_page(
    state: &WebState,
    tenant: &Tenant,
    headers: &HeaderMap,
    member: &Staff,
    token: &str,
    status: StatusCode,
    errors: Option<&FieldErrors>,
) -> Response {
    let sso = crate::sso::button(state, tenant).await;
    let mut res = pre_page(
        state,
        tenant,
        headers,
        status,
        "staff_welcome.html.j2",
        errors,
        json!({ "token": token, "name": member.display_name, "username": member.username, "sso": sso }),
    );
    crate::sso::allow_forms(&mut res, sso.as_ref());
    res
}

async fn show_welcome(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Response {
    let found = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let member = staff::invitation(&mut tx, &token).await?;
        tx.commit().await?;
        Ok::<_, DomainError>(member)
    }
    .await;
    match found {
        Ok(Some(member)) => {
            welcome_page(
                &state,
                &tenant,
                &headers,
                &member,
                &token,
                StatusCode::OK,
                None,
            )
            .await
        }
        Ok(None) => invitation_gone(&state, &tenant),
        Err(e) => failure(&state, &tenant, &e),
    }
}

#[derive(Debug, Deserialize)]
struct NewPasswordForm {
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

/// Checks and hashes a new password for `member` (off the async workers).
async fn new_password_hash(
    member: &Staff,
    password: &str,
    confirm: &str,
) -> Result<String, DomainError> {
    let mobile = member
        .mobile
        .as_deref()
        .map(desk_core::mobile::local_form)
        .unwrap_or_default();
    desk_core::password::check_new(password, confirm, &[&member.username, &mobile])?;
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || desk_core::password::hash(&password))
        .await
        .map_err(|e| DomainError::Internal(e.into()))?
}

async fn accept_invitation(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Source(source): Source,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<NewPasswordForm>,
) -> Response {
    // A forged or stale form learns nothing of the member, not even whether the link is live.
    if check_pre(&headers, &form.csrf).is_err() {
        return crate::pages::error_page(
            &state,
            StatusCode::FORBIDDEN,
            Some(&tenant),
            "فرم کهنه شده است",
            "این فرم از صفحه دیگری آمده یا کهنه شده است. پیوند دعوت‌نامه را دوباره باز کنید.",
        );
    }
    let result = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let Some(member) = staff::invitation(&mut tx, &token).await? else {
            return Ok(Err(None));
        };
        let hash = match new_password_hash(&member, &form.password, &form.password_confirm).await {
            Ok(h) => h,
            Err(DomainError::Validation(errors)) => {
                return Ok(Err(Some((
                    member,
                    errors,
                    StatusCode::UNPROCESSABLE_ENTITY,
                ))));
            }
            Err(e) => return Err(e),
        };
        if staff::redeem_invitation(&mut tx, &token).await?.is_none() {
            return Ok(Err(None));
        }
        staff::set_password(&mut tx, member.id, &hash).await?;
        let session = start_session(&mut tx, member.id, &headers, &source).await?;
        staff::log_activity(
            &mut tx,
            &staff::Activity {
                staff_id: Some(member.id),
                actor: &member.username,
                action: "team.joined",
                detail: json!({}),
                address: Some(&source),
            },
        )
        .await?;
        tx.commit().await?;
        Ok::<_, DomainError>(Ok(session))
    }
    .await;
    match result {
        Ok(Ok(session)) => signed_in(&state, &session),
        Ok(Err(Some((member, errors, status)))) => {
            welcome_page(
                &state,
                &tenant,
                &headers,
                &member,
                &token,
                status,
                Some(&errors),
            )
            .await
        }
        Ok(Err(None)) => invitation_gone(&state, &tenant),
        Err(e) => failure(&state, &tenant, &e),
    }
}

// ----- forgotten password -----

#[derive(Debug, Deserialize)]
struct ForgotForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    csrf: String,
}

async fn send_reset_code(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Source(source): Source,
    headers: HeaderMap,
    Form(form): Form<ForgotForm>,
) -> Response {
    if check_pre(&headers, &form.csrf).is_err() {
        return expired_form(&state, &tenant, &headers).await;
    }
    let address_key = format!("{}:{source}", tenant.id);
    if !state.limits.code_sends.may_try(&address_key) {
        let e = DomainError::RateLimited {
            retry_after: state.limits.code_sends.retry_after(&address_key),
            message: "از این نشانی درخواست‌های زیادی رسیده است؛ کمی بعد دوباره تلاش کنید.".to_owned(),
        };
        return failure(&state, &tenant, &e);
    }
    state.limits.code_sends.record(&address_key, false);
    let username = form.username.trim().to_lowercase();
    let result = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let member = staff::staff_by_username(&mut tx, &username)
            .await?
            .filter(|m| m.active);
        let mobile = member
            .as_ref()
            .and_then(|m| m.mobile.as_deref())
            .and_then(|m| MobileNumber::parse(m).ok());
        // An unknown username gets a challenge token too (that leads nowhere), so the answer
        // does not tell which usernames exist.
        let token = match (member, mobile) {
            (Some(member), Some(mobile)) if sms_ready(&mut tx).await? => {
                let token = send_code(
                    &state,
                    &tenant,
                    &mut tx,
                    &member,
                    &mobile,
                    ChallengePurpose::Reset,
                )
                .await?;
                staff::log_activity(
                    &mut tx,
                    &staff::Activity {
                        staff_id: Some(member.id),
                        actor: &member.username,
                        action: "password.reset_requested",
                        detail: json!({}),
                        address: Some(&source),
                    },
                )
                .await?;
                token
            }
            _ => desk_core::secret::new_token(),
        };
        tx.commit().await?;
        Ok::<_, DomainError>(token)
    }
    .await;
    match result {
        Ok(token) => {
            let mut res = Redirect::to("/staff/forgot/code").into_response();
            res.headers_mut().append(
                header::SET_COOKIE,
                challenge_cookie(&token, state.secure_cookies),
            );
            res
        }
        Err(e) => failure(&state, &tenant, &e),
    }
}

async fn reset_password(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Source(source): Source,
    headers: HeaderMap,
    Form(form): Form<NewPasswordForm>,
) -> Response {
    if check_pre(&headers, &form.csrf).is_err() {
        return expired_form(&state, &tenant, &headers).await;
    }
    let token = crate::cookies::session_token(&headers, CHALLENGE_COOKIE).unwrap_or_default();
    let code = desk_core::mobile::ascii_digits(form.code.trim());
    let result = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let Some((member, _)) =
            staff::challenge_staff(&mut tx, &token, ChallengePurpose::Reset).await?
        else {
            return Ok(Err(FieldErrors::single(
                "code",
                "code_expired",
                "کد درست نیست یا زمانش گذشته است؛ از «فراموشی گذرواژه» دوباره کد بخواهید.",
            )));
        };
        // The new password is checked first, so a typo there does not use up the code.
        let hash = match new_password_hash(&member, &form.password, &form.password_confirm).await {
            Ok(h) => h,
            Err(DomainError::Validation(errors)) => return Ok(Err(errors)),
            Err(e) => return Err(e),
        };
        let redeemed = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            staff::redeem_challenge(
                &mut tx,
                &token,
                ChallengePurpose::Reset,
                staff::Proof::Code(&code),
            )
            .await?
        } else {
            None
        };
        let Some(id) = redeemed else {
            tx.commit().await?;
            return Ok(Err(FieldErrors::single(
                "code",
                "wrong_code",
                "کد درست نیست؛ کد شش‌رقمی پیامک‌شده را دوباره وارد کنید.",
            )));
        };
        staff::set_password(&mut tx, id, &hash).await?;
        // A reset ends every session: whoever knew the old password is out.
        staff::end_sessions(&mut tx, id, None).await?;
        staff::log_activity(
            &mut tx,
            &staff::Activity {
                staff_id: Some(id),
                actor: &member.username,
                action: "password.reset",
                detail: json!({}),
                address: Some(&source),
            },
        )
        .await?;
        tx.commit().await?;
        Ok::<_, DomainError>(Ok(()))
    }
    .await;
    match result {
        Ok(Ok(())) => {
            let mut res = Redirect::to("/staff/sign-in?reset=1").into_response();
            res.headers_mut().append(
                header::SET_COOKIE,
                challenge_cookie("", state.secure_cookies),
            );
            res
        }
        Ok(Err(errors)) => pre_page(
            &state,
            &tenant,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            "staff_reset.html.j2",
            Some(&errors),
            json!({}),
        ),
        Err(e) => failure(&state, &tenant, &e),
    }
}
