//! Single sign-on for a municipality's staff with its own identity provider (OpenID Connect,
//! authorization code with PKCE, the `openidconnect` crate), optional per municipality:
//!
//! - the admin sets it up at `/staff/settings/sso` (issuer, client id and secret, the button's
//!   words); the issuer is discovered when saved, the secret sealed and never shown again;
//! - a member links their account there by accepting their invitation with it
//!   (`/staff/welcome/<token>/sso`) or from their account page (`/staff/account/sso`);
//! - `/staff/sign-in` then offers the provider's button (`/staff/sso/start`), and the provider
//!   sends the member back to `/staff/sso/callback`, which signs in the member linked to the
//!   subject. The provider does the second factor, so no SMS code follows.
//!
//! The browser holds a random token in a cookie for the sign-in in flight; it is the PKCE
//! verifier too, and only its hash is stored (with `state`, `nonce` and what the sign-in is
//! for). So a code sent back to another browser, a replayed `state` or an ID token minted for
//! another sign-in are all refused. Every call to the provider (discovery, keys, token) goes
//! through the guarded outbound client.

use crate::WebState;
use crate::citizen::Source;
use crate::pages::{TenantView, render};
use crate::staff::{StaffSession, failure};
use axum::Router;
use axum::extract::{Extension, Form, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use desk_authz::{Action, Resource};
use desk_core::{DomainError, FieldErrors};
use desk_db::Tenant;
use desk_db::sso::{self, Flow, Purpose};
use desk_db::staff;
use desk_http::outbound::{CallError, Outbound};
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet,
    EndpointSet, IssuerUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse,
};
use serde::Deserialize;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const FLOW_COOKIE: &str = "desk_staff_sso";
const CALLBACK: &str = "/staff/sso/callback";
/// Each call to the provider: time and answer size.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_ANSWER: usize = 512 * 1024;

pub(crate) fn sso_routes() -> Router<WebState> {
    Router::new()
        .route("/staff/sso/start", post(start_sign_in))
        .route(CALLBACK, get(callback))
        .route("/staff/welcome/{token}/sso", post(start_join))
        .route("/staff/account/sso", post(start_link))
        .route("/staff/account/sso/remove", post(unlink_own))
        .route("/staff/team/{id}/sso/remove", post(unlink_member))
        .route(
            "/staff/settings/sso",
            get(show_settings).post(save_settings),
        )
        .route("/staff/settings/sso/remove", post(remove_settings))
}

// ----- the provider -----

type Client = CoreClient<
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointMaybeSet,
    EndpointMaybeSet,
>;

/// Why a sign-in with the provider did not happen, as the member is told.
#[derive(Debug)]
enum Failure {
    /// The provider could not be reached or answered nonsense (discovery, keys, token).
    Unreachable(String),
    /// The provider refused (the member cancelled, or it said no).
    Refused(String),
    /// What came back does not belong to this sign-in (state, issuer, nonce, signature).
    Invalid(String),
    /// The sign-in in flight is gone (too old, used, another browser).
    Expired,
    /// No member is linked to this account at the provider.
    Unknown,
    /// The member is deactivated.
    Deactivated,
    /// Single sign-on is not set up or switched off.
    Off,
    Domain(DomainError),
}

impl From<DomainError> for Failure {
    fn from(e: DomainError) -> Self {
        Self::Domain(e)
    }
}

fn unreachable(e: impl std::fmt::Display) -> Failure {
    Failure::Unreachable(e.to_string())
}

/// The guarded client, in the shape `openidconnect` calls.
fn http(
    outbound: Outbound,
) -> impl Fn(
    openidconnect::HttpRequest,
) -> std::pin::Pin<
    Box<dyn Future<Output = Result<openidconnect::HttpResponse, CallError>> + Send>,
> {
    move |request| {
        let outbound = outbound.clone();
        Box::pin(async move {
            outbound
                .send(request, CALL_TIMEOUT, "Miz-SSO/1", MAX_ANSWER)
                .await
        })
    }
}

fn outbound(state: &WebState) -> Outbound {
    state.outbound.clone()
}

/// The address the provider sends members back to (registered at the provider).
fn redirect_url(state: &WebState, headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let scheme = if state.secure_cookies {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}{CALLBACK}")
}

/// Discovers the provider at `issuer` and makes a client for it.
async fn discover(
    state: &WebState,
    issuer: &str,
    client_id: &str,
    secret: String,
    redirect: String,
) -> Result<Client, Failure> {
    let issuer = IssuerUrl::new(issuer.to_owned()).map_err(unreachable)?;
    let metadata = CoreProviderMetadata::discover_async(issuer, &http(outbound(state)))
        .await
        .map_err(unreachable)?;
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(client_id.to_owned()),
        Some(ClientSecret::new(secret)),
    )
    .set_redirect_uri(RedirectUrl::new(redirect).map_err(unreachable)?))
}

/// The municipality's enabled provider, opened, and a client for it.
async fn provider_client(
    state: &WebState,
    tenant: &Tenant,
    headers: &HeaderMap,
) -> Result<(sso::Provider, Client), Failure> {
    let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
    let provider = sso::provider(&mut tx).await?;
    tx.commit().await?;
    let Some(provider) = provider.filter(|p| p.enabled) else {
        return Err(Failure::Off);
    };
    let key = state.secrets.as_ref().ok_or(Failure::Off)?;
    let secret = key.open(tenant.id, sso::SECRET_PURPOSE, &provider.secret)?;
    let secret =
        String::from_utf8(secret).map_err(|e| Failure::Domain(DomainError::Internal(e.into())))?;
    let client = discover(
        state,
        &provider.issuer,
        &provider.client_id,
        secret,
        redirect_url(state, headers),
    )
    .await?;
    Ok((provider, client))
}

/// The sign-in button of an enabled provider.
#[derive(Debug, Clone, serde::Serialize)]
pub(crate) struct Button {
    /// Its words.
    pub label: String,
    /// The provider's origin, which the button's form leads to (by a redirect).
    #[serde(skip)]
    pub origin: Option<String>,
}

/// Lets the forms of a page that shows `button` lead to the provider (the page's CSP
/// `form-action` names its origin).
pub(crate) fn allow_forms(res: &mut Response, button: Option<&Button>) {
    if let Some(origin) = button.and_then(|b| b.origin.clone()) {
        res.extensions_mut()
            .insert(desk_http::csp::FormTarget(origin));
    }
}

/// The enabled provider's button, for the sign-in, welcome and account pages (`None`: none).
pub(crate) async fn button(state: &WebState, tenant: &Tenant) -> Option<Button> {
    let found = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let provider = sso::provider(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, DomainError>(provider)
    }
    .await;
    match found {
        Ok(Some(p)) if p.enabled && state.secrets.is_some() => Some(Button {
            origin: desk_http::csp::origin_of(&p.issuer),
            label: p.label,
        }),
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "single sign-on settings unreadable");
            None
        }
    }
}

// ----- starting a sign-in -----

/// Sends the browser to the provider for `purpose`: a flow recorded under a fresh browser
/// token (cookie), PKCE challenge, state and nonce.
async fn send_to_provider(
    state: &WebState,
    tenant: &Tenant,
    headers: &HeaderMap,
    purpose: Purpose,
) -> Result<Response, Failure> {
    let (_, client) = provider_client(state, tenant, headers).await?;
    let token = desk_core::secret::new_token();
    let flow = Flow {
        state: desk_core::secret::new_token(),
        nonce: desk_core::secret::new_token(),
        purpose,
    };
    let challenge =
        PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(token.clone()));
    let (sent_state, sent_nonce) = (flow.state.clone(), flow.nonce.clone());
    let (url, _, _) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            move || CsrfToken::new(sent_state),
            move || Nonce::new(sent_nonce),
        )
        .add_scope(Scope::new("profile".to_owned()))
        .set_pkce_challenge(challenge)
        .url();
    let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
    sso::start_flow(&mut tx, &token, &flow).await?;
    tx.commit().await?;
    let mut res = Redirect::to(url.as_str()).into_response();
    res.headers_mut().append(
        header::SET_COOKIE,
        flow_cookie(&token, state.secure_cookies),
    );
    Ok(res)
}

fn flow_cookie(token: &str, secure: bool) -> axum::http::HeaderValue {
    // Lax (the default of our cookies) is what lets the provider's top-level redirect back
    // carry it; the path keeps it to the callback and the start routes.
    crate::cookies::session_cookie(FLOW_COOKIE, token, "/staff", sso::FLOW_TTL, secure)
}

#[derive(Debug, Deserialize)]
struct PreForm {
    #[serde(default)]
    csrf: String,
}

async fn start_sign_in(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    headers: HeaderMap,
    Form(form): Form<PreForm>,
) -> Response {
    if crate::staff_sign_in::check_pre(&headers, &form.csrf).is_err() {
        return crate::staff_sign_in::expired_form(&state, &tenant, &headers).await;
    }
    send_to_provider(&state, &tenant, &headers, Purpose::SignIn)
        .await
        .unwrap_or_else(|f| failure_page(&state, &tenant, f))
}

async fn start_join(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<PreForm>,
) -> Response {
    if crate::staff_sign_in::check_pre(&headers, &form.csrf).is_err() {
        return crate::staff_sign_in::expired_form(&state, &tenant, &headers).await;
    }
    let member = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let member = staff::invitation(&mut tx, &token).await?;
        tx.commit().await?;
        Ok::<_, DomainError>(member)
    }
    .await;
    let member = match member {
        Ok(Some(m)) => m,
        Ok(None) => return crate::staff_sign_in::invitation_gone(&state, &tenant),
        Err(e) => return failure(&state, &tenant, &e),
    };
    let purpose = Purpose::Join {
        staff_id: member.id,
        invitation_hash: desk_core::secret::sha256(token.as_bytes()).to_vec(),
    };
    send_to_provider(&state, &tenant, &headers, purpose)
        .await
        .unwrap_or_else(|f| failure_page(&state, &tenant, f))
}

async fn start_link(
    State(state): State<WebState>,
    me: StaffSession,
    headers: HeaderMap,
    Form(form): Form<PreForm>,
) -> Response {
    if let Err(e) = me.csrf_ok(&form.csrf) {
        return failure(&state, &me.tenant, &e);
    }
    let purpose = Purpose::Link {
        staff_id: me.staff.id,
    };
    send_to_provider(&state, &me.tenant, &headers, purpose)
        .await
        .unwrap_or_else(|f| failure_page(&state, &me.tenant, f))
}

// ----- the return -----

#[derive(Debug, Deserialize)]
struct Callback {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

/// Where the member's browser lands after a sign-in with the provider.
async fn callback(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Source(source): Source,
    headers: HeaderMap,
    Query(back): Query<Callback>,
) -> Response {
    let outcome = finish(&state, &tenant, &source, &headers, back).await;
    let mut res = match outcome {
        Ok(res) => res,
        Err(f) => failure_page(&state, &tenant, f),
    };
    res.headers_mut()
        .append(header::SET_COOKIE, flow_cookie("", state.secure_cookies));
    res
}

async fn finish(
    state: &WebState,
    tenant: &Tenant,
    source: &str,
    headers: &HeaderMap,
    back: Callback,
) -> Result<Response, Failure> {
    let token = crate::cookies::session_token(headers, FLOW_COOKIE).ok_or(Failure::Expired)?;
    // The flow is used up whatever follows: its own transaction.
    let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
    let flow = sso::take_flow(&mut tx, &token).await?;
    tx.commit().await?;
    let flow = flow.ok_or(Failure::Expired)?;
    if back.state.as_deref() != Some(flow.state.as_str()) {
        return Err(Failure::Invalid("state does not match".into()));
    }
    if let Some(error) = back.error {
        return Err(Failure::Refused(format!(
            "{error}: {}",
            back.error_description.unwrap_or_default()
        )));
    }
    let code = back.code.ok_or(Failure::Invalid("no code".into()))?;
    let (provider, client) = provider_client(state, tenant, headers).await?;
    // RFC 9207: a provider that names itself must name the one we sent the member to.
    if back
        .iss
        .as_deref()
        .is_some_and(|iss| iss.trim_end_matches('/') != provider.issuer.trim_end_matches('/'))
    {
        return Err(Failure::Invalid("iss does not match".into()));
    }
    let answer = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(unreachable)?
        .set_pkce_verifier(PkceCodeVerifier::new(token))
        .request_async(&http(outbound(state)))
        .await
        .map_err(|e| Failure::Refused(format!("token: {e}")))?;
    let id_token = answer
        .id_token()
        .ok_or(Failure::Invalid("no ID token".into()))?;
    let claims = id_token
        .claims(&client.id_token_verifier(), &Nonce::new(flow.nonce.clone()))
        .map_err(|e| Failure::Invalid(format!("ID token: {e}")))?;
    let subject = claims.subject().as_str().to_owned();
    signed_in_as(state, tenant, source, headers, flow.purpose, &subject).await
}

/// Acts on a proven `subject` for `purpose`.
async fn signed_in_as(
    state: &WebState,
    tenant: &Tenant,
    source: &str,
    headers: &HeaderMap,
    purpose: Purpose,
    subject: &str,
) -> Result<Response, Failure> {
    let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
    let log = async |tx: &mut desk_db::TenantTx, member: &staff::Staff, action: &str| {
        staff::log_activity(
            tx,
            &staff::Activity {
                staff_id: Some(member.id),
                actor: &member.username,
                action,
                detail: json!({ "via": "sso" }),
                address: Some(source),
            },
        )
        .await
    };
    match purpose {
        Purpose::SignIn => {
            let Some(member) = sso::member_of_subject(&mut tx, subject).await? else {
                return Err(Failure::Unknown);
            };
            if !member.active {
                log(&mut tx, &member, "sign_in.failed").await?;
                tx.commit().await?;
                return Err(Failure::Deactivated);
            }
            let session =
                crate::staff_sign_in::start_session(&mut tx, member.id, headers, source).await?;
            log(&mut tx, &member, "sign_in").await?;
            tx.commit().await?;
            Ok(crate::staff_sign_in::signed_in(state, &session))
        }
        Purpose::Join {
            staff_id,
            invitation_hash,
        } => {
            if !sso::redeem_invitation_hash(&mut tx, staff_id, &invitation_hash).await? {
                return Ok(crate::staff_sign_in::invitation_gone(state, tenant));
            }
            let member = staff::staff_by_id(&mut tx, staff_id)
                .await?
                .ok_or(Failure::Expired)?;
            sso::link(&mut tx, staff_id, subject).await?;
            let session =
                crate::staff_sign_in::start_session(&mut tx, staff_id, headers, source).await?;
            log(&mut tx, &member, "team.joined").await?;
            tx.commit().await?;
            Ok(crate::staff_sign_in::signed_in(state, &session))
        }
        Purpose::Link { staff_id } => {
            // Still the same member's live session in this browser.
            let session = crate::staff::token_from(headers).ok_or(Failure::Expired)?;
            let current = staff::staff_session(&mut tx, &session, crate::staff::SESSION_LIMITS)
                .await?
                .filter(|(member, _)| member.id == staff_id)
                .ok_or(Failure::Expired)?;
            sso::link(&mut tx, staff_id, subject).await?;
            log(&mut tx, &current.0, "account.sso_linked").await?;
            tx.commit().await?;
            Ok(Redirect::to("/staff/account?done=sso").into_response())
        }
    }
}

fn failure_page(state: &WebState, tenant: &Tenant, f: Failure) -> Response {
    let expired = || {
        (
            StatusCode::UNAUTHORIZED,
            "ورود انجام نشد",
            "این ورود کهنه شده یا از مرورگر دیگری آغاز شده است. از صفحه ورود کارکنان دوباره آغاز \
             کنید."
                .to_owned(),
        )
    };
    let (status, title, message) = match f {
        Failure::Domain(DomainError::Validation(errors)) => (
            StatusCode::CONFLICT,
            "پیوند انجام نشد",
            errors
                .0
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        Failure::Domain(e) => return failure(state, tenant, &e),
        Failure::Unreachable(cause) => {
            tracing::warn!(tenant = %tenant.slug, %cause, "identity provider unreachable");
            (
                StatusCode::BAD_GATEWAY,
                "سامانه ورود یکپارچه پاسخ نداد",
                "سامانه ورود یکپارچه شهرداری اکنون در دسترس نیست. کمی بعد دوباره بکوشید، یا با \
                 نام کاربری و گذرواژه وارد شوید."
                    .to_owned(),
            )
        }
        Failure::Refused(cause) => {
            tracing::info!(tenant = %tenant.slug, %cause, "identity provider refused a sign-in");
            (
                StatusCode::UNAUTHORIZED,
                "ورود انجام نشد",
                "ورود در سامانه ورود یکپارچه انجام نشد یا لغو شد. دوباره بکوشید.".to_owned(),
            )
        }
        Failure::Invalid(cause) => {
            tracing::info!(tenant = %tenant.slug, %cause, "single sign-on answer refused");
            expired()
        }
        Failure::Expired => expired(),
        Failure::Unknown => (
            StatusCode::FORBIDDEN,
            "حساب سازمانی پیوند نخورده است",
            "این حساب سازمانی به هیچ‌یک از کارکنان میز خدمت پیوند نخورده است. بار نخست با پیوند \
             دعوت‌نامه یا از صفحه «حساب من» پیوندش دهید، یا از مدیر میز خدمت دعوت‌نامه بخواهید."
                .to_owned(),
        ),
        Failure::Deactivated => (
            StatusCode::FORBIDDEN,
            "حساب غیرفعال است",
            "حساب کاربری شما در میز خدمت غیرفعال شده است. اگر اشتباهی رخ داده، به مدیر میز خدمت \
             بگویید."
                .to_owned(),
        ),
        Failure::Off => (
            StatusCode::NOT_FOUND,
            "ورود یکپارچه راه‌اندازی نشده است",
            "ورود یکپارچه برای این میز خدمت روشن نیست. با نام کاربری و گذرواژه وارد شوید."
                .to_owned(),
        ),
    };
    crate::pages::error_page_back(
        state,
        status,
        Some(tenant),
        title,
        &message,
        Some(("/staff/sign-in", "بازگشت به صفحه ورود کارکنان")),
    )
}

// ----- links -----

/// A member removes their own link (only with a password to sign in with instead).
async fn unlink_own(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<PreForm>,
) -> Response {
    let result = async {
        me.csrf_ok(&form.csrf)?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        if staff::password_hash(&mut tx, me.staff.id).await?.is_none() {
            return Err(DomainError::Validation(FieldErrors::single(
                "sso",
                "password_first",
                "شما گذرواژه‌ای ندارید: پیش از برداشتن پیوند، از «گذرواژه را فراموش کرده‌ام» در \
                 صفحه ورود یک گذرواژه بگذارید.",
            )));
        }
        if sso::unlink(&mut tx, me.staff.id).await? {
            me.log_in(&mut tx, "account.sso_unlinked", json!({}))
                .await?;
        }
        tx.commit().await
    }
    .await;
    done_or_failure(&state, &me, result, "/staff/account?done=sso_off")
}

/// Back to `to` after a change, or the page of what went wrong.
fn done_or_failure(
    state: &WebState,
    me: &StaffSession,
    result: Result<(), DomainError>,
    to: &str,
) -> Response {
    match result {
        Ok(()) => Redirect::to(to).into_response(),
        Err(e) => failure(state, &me.tenant, &e),
    }
}

/// The admin removes a member's link (their account at the provider went to someone else).
async fn unlink_member(
    State(state): State<WebState>,
    me: StaffSession,
    Path(id): Path<i64>,
    Form(form): Form<PreForm>,
) -> Response {
    let result = async {
        let (mut tx, member) = crate::team::open_member(&state, &me, &form.csrf, id).await?;
        if sso::unlink(&mut tx, member.id).await? {
            me.log_in(
                &mut tx,
                "team.sso_unlinked",
                json!({ "member": member.username }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(member.username)
    }
    .await;
    crate::team::team_answer(&state, &me, "sso_removed", result).await
}

// ----- settings -----

#[derive(Debug, Deserialize, Default)]
struct SettingsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    issuer: String,
    #[serde(default)]
    client_id: String,
    #[serde(default)]
    client_secret: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    enabled: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
struct SettingsQuery {
    #[serde(default)]
    done: String,
}

async fn show_settings(
    State(state): State<WebState>,
    me: StaffSession,
    headers: HeaderMap,
    Query(q): Query<SettingsQuery>,
) -> Response {
    let notice = match q.done.as_str() {
        "saved" => Some("تنظیمات ورود یکپارچه ثبت شد؛ سامانه ورود یکپارچه پاسخ درست داد."),
        "removed" => Some("ورود یکپارچه برداشته شد و پیوند همه کارکنان با آن پاک شد."),
        _ => None,
    };
    settings_page(&state, &me, &headers, StatusCode::OK, notice, None, None)
        .await
        .unwrap_or_else(|e| failure(&state, &me.tenant, &e))
}

async fn settings_page(
    state: &WebState,
    me: &StaffSession,
    headers: &HeaderMap,
    status: StatusCode,
    notice: Option<&str>,
    errors: Option<&FieldErrors>,
    typed: Option<&SettingsForm>,
) -> Result<Response, DomainError> {
    me.require_on(state, Resource::Settings, Action::Update)
        .await?;
    let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
    let provider = sso::provider(&mut tx).await?;
    let linked = staff::list_staff(&mut tx)
        .await?
        .iter()
        .filter(|m| m.sso_linked)
        .count();
    tx.commit().await?;
    let saved = provider.as_ref();
    let form = match typed {
        Some(f) => {
            json!({ "issuer": f.issuer, "client_id": f.client_id, "label": f.label, "enabled": f.enabled.is_some() })
        }
        None => json!({
            "issuer": saved.map(|p| p.issuer.as_str()),
            "client_id": saved.map(|p| p.client_id.as_str()),
            "label": saved.map_or("ورود با حساب سازمانی", |p| p.label.as_str()),
            "enabled": saved.is_some_and(|p| p.enabled),
        }),
    };
    Ok(render(
        state,
        status,
        "staff_sso.html.j2",
        json!({
            "tenant": TenantView::of(&me.tenant),
            "csrf": me.csrf(),
            "notice": notice,
            "errors": errors.map(|e| &e.0),
            "form": form,
            "saved": saved.is_some(),
            "saved_on": saved.map(|p| crate::requests::jalali_moment(p.updated_at)),
            "linked": desk_core::text::persian_digits(&linked.to_string()),
            "redirect_uri": redirect_url(state, headers),
            "secrets_ready": state.secrets.is_some(),
        }),
    ))
}

async fn save_settings(
    State(state): State<WebState>,
    me: StaffSession,
    headers: HeaderMap,
    Form(form): Form<SettingsForm>,
) -> Response {
    let result = save(&state, &me, &headers, &form).await;
    match result {
        Ok(()) => Redirect::to("/staff/settings/sso?done=saved").into_response(),
        Err(DomainError::Validation(errors)) => settings_page(
            &state,
            &me,
            &headers,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(&errors),
            Some(&form),
        )
        .await
        .unwrap_or_else(|e| failure(&state, &me.tenant, &e)),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

async fn save(
    state: &WebState,
    me: &StaffSession,
    headers: &HeaderMap,
    form: &SettingsForm,
) -> Result<(), DomainError> {
    me.csrf_ok(&form.csrf)?;
    me.require_on(state, Resource::Settings, Action::Update)
        .await?;
    let key = state.secrets.as_ref().ok_or(DomainError::Unavailable)?;
    let issuer = form.issuer.trim().trim_end_matches('/').to_owned();
    let client_id = form.client_id.trim().to_owned();
    let label = form.label.trim().to_owned();
    let mut errors = FieldErrors::default();
    if !(issuer.starts_with("https://") || issuer.starts_with("http://"))
        || issuer.chars().count() > 300
    {
        errors.push(
            "issuer",
            "issuer",
            "نشانی صادرکننده (issuer) را کامل بنویسید، مانند https://login.example.ir/realms/city.",
        );
    }
    if client_id.is_empty() || client_id.chars().count() > 200 {
        errors.push(
            "client_id",
            "client_id",
            "شناسه کارخواه (client id) را از سامانه ورود یکپارچه بنویسید.",
        );
    }
    if label.is_empty() || label.chars().count() > 80 {
        errors.push(
            "label",
            "label",
            "نوشته دکمه ورود را بنویسید (حداکثر ۸۰ نویسه).",
        );
    }
    let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
    let saved = sso::provider(&mut tx).await?;
    tx.commit().await?;
    let secret = match (form.client_secret.trim(), &saved) {
        ("", Some(p)) => {
            String::from_utf8(key.open(me.tenant.id, sso::SECRET_PURPOSE, &p.secret)?)
                .map_err(|e| DomainError::Internal(e.into()))?
        }
        ("", None) => {
            errors.push(
                "client_secret",
                "client_secret",
                "رمز کارخواه (client secret) را بنویسید.",
            );
            String::new()
        }
        (typed, _) => typed.to_owned(),
    };
    if !errors.0.is_empty() {
        return Err(DomainError::Validation(errors));
    }
    // The issuer must answer discovery (through the guarded client) before it is kept.
    if let Err(f) = discover(
        state,
        &issuer,
        &client_id,
        secret.clone(),
        redirect_url(state, headers),
    )
    .await
    {
        let cause = match f {
            Failure::Unreachable(cause) => cause,
            other => format!("{other:?}"),
        };
        return Err(DomainError::Validation(FieldErrors::single(
            "issuer",
            "issuer_unreachable",
            format!(
                "سامانه ورود یکپارچه در این نشانی پاسخ درستی نداد ({cause}). نشانی صادرکننده را \
                 بررسی کنید؛ باید {issuer}/.well-known/openid-configuration در دسترس باشد."
            ),
        )));
    }
    let sealed = key.seal(me.tenant.id, sso::SECRET_PURPOSE, secret.as_bytes())?;
    let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
    sso::save_provider(
        &mut tx,
        &sso::Provider {
            issuer: issuer.clone(),
            client_id: client_id.clone(),
            secret: sealed,
            label,
            enabled: form.enabled.is_some(),
            updated_at: chrono::Utc::now(),
        },
    )
    .await?;
    me.log_in(
        &mut tx,
        "settings.sso",
        json!({ "issuer": issuer, "client_id": client_id, "enabled": form.enabled.is_some() }),
    )
    .await?;
    tx.commit().await
}

async fn remove_settings(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<PreForm>,
) -> Response {
    let result = async {
        me.csrf_ok(&form.csrf)?;
        me.require_on(&state, Resource::Settings, Action::Update)
            .await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        sso::remove_provider(&mut tx).await?;
        me.log_in(&mut tx, "settings.sso_removed", json!({}))
            .await?;
        tx.commit().await
    }
    .await;
    done_or_failure(&state, &me, result, "/staff/settings/sso?done=removed")
}
