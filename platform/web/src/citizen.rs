//! Citizens on a municipality's site: sign-in by mobile number and a one-time SMS code, their
//! session (in the municipality's own schema; the cookie is host-only), "my requests", and the
//! public lookup by tracking code and mobile number.

use crate::WebState;
use crate::limits::client_address;
use crate::pages::{TenantView, error_page, render};
use axum::Router;
use axum::extract::{ConnectInfo, Extension, Form, FromRequestParts, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use desk_core::tracking::TrackingCode;
use desk_core::{DomainError, FieldErrors, MobileNumber};
use desk_db::citizens::{self, Citizen};
use desk_db::notifications::{self, Kind};
use desk_db::{Tenant, requests};
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

const COOKIE: &str = "desk_citizen_session";
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);

pub(crate) fn citizen_routes() -> Router<WebState> {
    Router::new()
        .route("/sign-in", get(show_sign_in).post(send_code))
        .route("/sign-in/code", post(check_code))
        .route("/sign-out", post(sign_out))
        .route("/my-requests", get(my_requests))
        .route("/track", get(show_track).post(track))
}

/// The client address of a request to a municipality's site.
pub(crate) struct Source(pub(crate) String);

impl FromRequestParts<WebState> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>();
        Ok(Self(client_address(
            state.trust_forwarded_for,
            peer,
            &parts.headers,
        )))
    }
}

fn token_from(headers: &HeaderMap) -> Option<String> {
    crate::cookies::session_token(headers, COOKIE)
}

/// Path `/` and host-only: the cookie never reaches another municipality's host.
fn cookie(token: &str, secure: bool) -> HeaderValue {
    crate::cookies::session_cookie(COOKIE, token, "/", SESSION_TTL, secure)
}

/// A signed-in citizen of the municipality whose host received the request. Pages that need
/// one send everyone else to the sign-in page and back.
pub(crate) struct CitizenSession {
    pub(crate) tenant: Arc<Tenant>,
    pub(crate) citizen: Citizen,
    pub(crate) csrf: String,
    token: String,
}

impl CitizenSession {
    /// `Forbidden` unless `sent` is this session's CSRF token.
    pub(crate) fn check_csrf(&self, sent: &str) -> Result<(), DomainError> {
        if !sent.is_empty() && sent == self.csrf {
            Ok(())
        } else {
            Err(DomainError::Forbidden)
        }
    }
}

/// Only a plain local path may be a place to return to: `/` then letters, digits and
/// `/_.-` (no `//host`, no scheme, no whitespace or controls a browser would drop).
pub(crate) fn safe_next(next: &str) -> &str {
    let plain = next.starts_with('/')
        && !next.starts_with("//")
        && next
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_.-".contains(&b));
    if plain { next } else { "/my-requests" }
}

impl FromRequestParts<WebState> for CitizenSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<Self, Self::Rejection> {
        let Some(tenant) = parts.extensions.get::<Arc<Tenant>>().cloned() else {
            return Err(StatusCode::NOT_FOUND.into_response());
        };
        let back = parts.uri.path().to_owned();
        let sign_in = || {
            let encoded: String = back
                .bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"/-_.".contains(&b) {
                        char::from(b).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect();
            Redirect::to(&format!("/sign-in?next={encoded}")).into_response()
        };
        let Some(token) = token_from(&parts.headers) else {
            return Err(sign_in());
        };
        let found = async {
            let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
            let found = citizens::citizen_session(&mut tx, &token).await?;
            tx.commit().await?;
            Ok::<_, DomainError>(found)
        }
        .await;
        match found {
            Ok(Some((citizen, csrf))) => Ok(Self {
                tenant,
                citizen,
                csrf,
                token,
            }),
            Ok(None) => Err(sign_in()),
            Err(e) => Err(failure(state, &tenant, &e)),
        }
    }
}

/// The themed page for a domain error on a citizen page (a 5xx never shows its cause).
pub(crate) fn failure(state: &WebState, tenant: &Tenant, e: &DomainError) -> Response {
    crate::staff::failure_back(state, tenant, e, Some(("/", "صفحه نخست میز خدمت")))
}

#[derive(Debug, Deserialize, Default)]
struct NextQuery {
    #[serde(default)]
    next: String,
}

async fn show_sign_in(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Query(q): Query<NextQuery>,
) -> Response {
    render(
        &state,
        StatusCode::OK,
        "sign_in.html.j2",
        json!({ "tenant": TenantView::of(&tenant), "next": safe_next(&q.next) }),
    )
}

#[derive(Debug, Deserialize)]
struct MobileForm {
    mobile: String,
    #[serde(default)]
    next: String,
}

/// A fresh six-digit code.
fn new_code() -> String {
    format!("{:06}", uuid::Uuid::new_v4().as_u128() % 1_000_000)
}

async fn send_code(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Source(source): Source,
    Form(form): Form<MobileForm>,
) -> Response {
    let next = safe_next(&form.next).to_owned();
    let address_key = format!("{}:{source}", tenant.id);
    if !state.limits.code_sends.may_try(&address_key) {
        let e = DomainError::RateLimited {
            retry_after: state.limits.code_sends.retry_after(&address_key),
            message: "از این نشانی درخواست‌های زیادی رسیده است؛ کمی بعد دوباره تلاش کنید.".to_owned(),
        };
        return failure(&state, &tenant, &e);
    }
    let mobile = match MobileNumber::parse(&form.mobile) {
        Ok(m) => m,
        Err(e) => {
            return render(
                &state,
                StatusCode::UNPROCESSABLE_ENTITY,
                "sign_in.html.j2",
                json!({ "tenant": TenantView::of(&tenant), "next": next,
                        "mobile_input": form.mobile, "errors": e.0 }),
            );
        }
    };
    let Some(key) = &state.secrets else {
        tracing::error!("sign-in codes need secrets.master_key");
        return error_page(
            &state,
            StatusCode::SERVICE_UNAVAILABLE,
            Some(&tenant),
            "ورود موقتاً ممکن نیست",
            "ارسال کد ورود در این سامانه هنوز راه‌اندازی نشده است.",
        );
    };
    state.limits.code_sends.record(&address_key, false);
    let sent = async {
        let code = new_code();
        let sealed = key.seal(
            tenant.id,
            &format!("sign_in_code:{}", mobile.as_str()),
            code.as_bytes(),
        )?;
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        // Say so plainly rather than claim a code was sent that nothing can carry.
        let sms_ready = desk_db::settings::list_sms_accounts(&mut tx)
            .await?
            .iter()
            .any(|a| a.enabled);
        if !sms_ready {
            tx.rollback().await?;
            return Ok(false);
        }
        citizens::create_sign_in_code(&mut tx, &mobile, &code).await?;
        // The sender fills in the sealed code.
        let body = desk_db::sms_templates::render(
            &mut tx,
            desk_core::sms_templates::Event::SignInCode,
            &json!({ "municipality": tenant.name_fa, "code": "{code}" }),
        )
        .await?;
        notifications::queue_sms(
            &mut tx,
            Kind::SignInCode,
            mobile.as_str(),
            &body,
            Some(&sealed),
        )
        .await?;
        tx.commit().await?;
        Ok::<_, DomainError>(true)
    }
    .await;
    match sent {
        Ok(true) => code_page(&state, &tenant, &mobile, &next, StatusCode::OK, None),
        Ok(false) => {
            let errors = FieldErrors::single(
                "mobile",
                "sms_unavailable",
                "ارسال پیامک در میز خدمت این شهرداری هنوز راه‌اندازی نشده است، پس کد ورود فرستاده \
                 نمی‌شود. برای ثبت درخواست به میز خدمت حضوری شهرداری مراجعه کنید یا بعداً دوباره \
                 سر بزنید.",
            );
            render(
                &state,
                StatusCode::SERVICE_UNAVAILABLE,
                "sign_in.html.j2",
                json!({ "tenant": TenantView::of(&tenant), "next": next,
                        "mobile_input": form.mobile, "errors": errors.0 }),
            )
        }
        Err(e) => failure(&state, &tenant, &e),
    }
}

fn code_page(
    state: &WebState,
    tenant: &Tenant,
    mobile: &MobileNumber,
    next: &str,
    status: StatusCode,
    errors: Option<&FieldErrors>,
) -> Response {
    let local = desk_core::mobile::local_form(mobile.as_str());
    render(
        state,
        status,
        "sign_in.html.j2",
        json!({ "tenant": TenantView::of(tenant), "next": next, "mobile": mobile.as_str(),
                "mobile_fa": desk_core::text::persian_digits(&local),
                "errors": errors.map(|e| &e.0) }),
    )
}

#[derive(Debug, Deserialize)]
struct CodeForm {
    mobile: String,
    code: String,
    #[serde(default)]
    next: String,
}

async fn check_code(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Source(source): Source,
    Form(form): Form<CodeForm>,
) -> Response {
    let next = safe_next(&form.next).to_owned();
    let address_key = format!("{}:{source}", tenant.id);
    if !state.limits.code_checks.may_try(&address_key) {
        let e = DomainError::RateLimited {
            retry_after: state.limits.code_checks.retry_after(&address_key),
            message: "تلاش‌های نادرست زیادی از این نشانی رسیده است؛ کمی بعد دوباره تلاش کنید."
                .to_owned(),
        };
        return failure(&state, &tenant, &e);
    }
    // Counted before checking, so concurrent guesses cannot all pass the limit; a success
    // clears the count.
    state.limits.code_checks.record(&address_key, false);
    let mobile = match MobileNumber::parse(&form.mobile) {
        Ok(m) => m,
        Err(e) => return failure(&state, &tenant, &e.into()),
    };
    let code = desk_core::mobile::ascii_digits(form.code.trim());
    let redeemed = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let citizen = if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            citizens::redeem_sign_in_code(&mut tx, &mobile, &code).await?
        } else {
            None
        };
        let session = match &citizen {
            Some(c) => {
                let (token, csrf) = (
                    desk_core::secret::new_token(),
                    desk_core::secret::new_token(),
                );
                citizens::create_citizen_session(&mut tx, c.id, &token, &csrf, SESSION_TTL).await?;
                Some(token)
            }
            None => None,
        };
        // A wrong code uses up an attempt: commit either way.
        tx.commit().await?;
        Ok::<_, DomainError>(session)
    }
    .await;
    match redeemed {
        Ok(Some(token)) => {
            state.limits.code_checks.record(&address_key, true);
            let mut response = Redirect::to(&next).into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, cookie(&token, state.secure_cookies));
            response
        }
        Ok(None) => {
            let errors = FieldErrors::single(
                "code",
                "sign_in_code",
                "کد نادرست است یا زمانش گذشته است؛ دوباره وارد کنید یا کد تازه بخواهید.",
            );
            code_page(
                &state,
                &tenant,
                &mobile,
                &next,
                StatusCode::UNPROCESSABLE_ENTITY,
                Some(&errors),
            )
        }
        Err(e) => failure(&state, &tenant, &e),
    }
}

async fn sign_out(
    State(state): State<WebState>,
    me: CitizenSession,
    Form(form): Form<crate::CsrfForm>,
) -> Response {
    if let Err(e) = me.check_csrf(&form.csrf) {
        return failure(&state, &me.tenant, &e);
    }
    let done = async {
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        citizens::delete_citizen_session(&mut tx, &me.token).await?;
        tx.commit().await
    }
    .await;
    match done {
        Ok(()) => {
            let mut response = Redirect::to("/").into_response();
            response
                .headers_mut()
                .insert(header::SET_COOKIE, cookie("", state.secure_cookies));
            response
        }
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

async fn my_requests(State(state): State<WebState>, me: CitizenSession) -> Response {
    let found = async {
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let found = requests::citizen_requests(&mut tx, me.citizen.id, &me.citizen.mobile).await?;
        tx.commit().await?;
        Ok::<_, DomainError>(found)
    }
    .await;
    match found {
        Ok(list) => {
            let items: Vec<_> = list.iter().map(crate::requests::summary_view).collect();
            render(
                &state,
                StatusCode::OK,
                "my_requests.html.j2",
                json!({ "tenant": TenantView::of(&me.tenant), "requests": items, "csrf": me.csrf }),
            )
        }
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

async fn show_track(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
) -> Response {
    render(
        &state,
        StatusCode::OK,
        "track.html.j2",
        json!({ "tenant": TenantView::of(&tenant) }),
    )
}

#[derive(Debug, Deserialize)]
struct TrackForm {
    tracking_code: String,
    mobile: String,
}

/// Public lookup: the status shows only when the tracking code and the mobile number match;
/// a miss never says which of the two was wrong.
async fn track(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Source(source): Source,
    Form(form): Form<TrackForm>,
) -> Response {
    let address_key = format!("{}:{source}", tenant.id);
    if !state.limits.lookups.may_try(&address_key) {
        let e = DomainError::RateLimited {
            retry_after: state.limits.lookups.retry_after(&address_key),
            message: "جست‌وجوهای زیادی از این نشانی رسیده است؛ کمی بعد دوباره تلاش کنید.".to_owned(),
        };
        return failure(&state, &tenant, &e);
    }
    // Every lookup counts (before it runs, so concurrent ones cannot slip past the limit).
    state.limits.lookups.record(&address_key, false);
    let mut errors = Vec::new();
    let code = TrackingCode::parse(&form.tracking_code).map_err(|e| errors.extend(e.0));
    let mobile = MobileNumber::parse(&form.mobile).map_err(|e| errors.extend(e.0));
    let (Ok(code), Ok(mobile)) = (code, mobile) else {
        return render(
            &state,
            StatusCode::UNPROCESSABLE_ENTITY,
            "track.html.j2",
            json!({ "tenant": TenantView::of(&tenant), "errors": errors,
                    "tracking_input": form.tracking_code, "mobile_input": form.mobile }),
        );
    };
    let found = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let found =
            match requests::request_by_tracking(&mut tx, code.as_str(), mobile.as_str()).await? {
                Some(r) => Some(crate::requests::load_detail(&mut tx, r).await?),
                None => None,
            };
        tx.commit().await?;
        Ok::<_, DomainError>(found)
    }
    .await;
    match found {
        Ok(Some(detail)) => crate::requests::render_detail(&state, &tenant, &detail, None),
        Ok(None) => render(
            &state,
            StatusCode::NOT_FOUND,
            "track.html.j2",
            json!({ "tenant": TenantView::of(&tenant),
                        "errors": [{"field": "tracking_code", "message": "درخواستی با این کد رهگیری و شماره همراه پیدا نشد."}],
                        "tracking_input": form.tracking_code, "mobile_input": form.mobile }),
        ),
        Err(e) => failure(&state, &tenant, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_local_paths_are_returned_to() {
        for ok in [
            "/my-requests",
            "/requests/123456789012",
            "/services/MUN-BLD-001/apply",
        ] {
            assert_eq!(safe_next(ok), ok);
        }
        for bad in [
            "//evil.example",
            "/\t/evil.example",
            "/\\evil.example",
            "https://evil.example",
            "/a\r\nSet-Cookie: x=1",
            "",
            "evil",
        ] {
            assert_eq!(safe_next(bad), "/my-requests", "{bad:?}");
        }
    }
}
