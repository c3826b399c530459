//! The staff portal at `/staff` on a municipality's host: one-time-link sign-in, sessions that
//! live in the municipality's own schema (so a session of one municipality is worthless on
//! another's host), and the settings the municipality admin owns: theme, contact details,
//! working week, holidays and SMS provider accounts (credentials write-only, sealed).

use crate::WebState;
use crate::pages::{TenantView, render};
use axum::Router;
use axum::extract::{Extension, Form, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use desk_authz::{Action, Domain, Resource, Subject};
use desk_core::jalali::JalaliDate;
use desk_core::text::persian_digits;
use desk_core::{DomainError, FieldErrors};
use desk_db::staff::{self, Staff};
use desk_db::{Tenant, settings};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

const COOKIE: &str = "desk_staff_session";
/// Staff sessions end after two idle hours, and twelve hours after sign-in in any case.
pub(crate) const SESSION_LIMITS: staff::SessionLimits = staff::SessionLimits {
    idle: Duration::from_secs(2 * 3600),
    absolute: Duration::from_secs(12 * 3600),
};

pub(crate) fn staff_routes() -> Router<WebState> {
    Router::new()
        .route("/staff", get(show_home))
        .route("/staff/sign-in/{token}", get(show_sign_in).post(sign_in))
        .route("/staff/sign-out", post(sign_out))
        .route(
            "/staff/go-live/catalog-reviewed",
            post(mark_catalog_reviewed),
        )
        .route("/staff/settings", get(show_settings))
        .route("/staff/settings/theme", post(save_theme))
        .route("/staff/settings/contact", post(save_contact))
        .route("/staff/settings/work-week", post(save_work_week))
        .route("/staff/settings/holidays", post(change_holiday))
        .route("/staff/settings/units", post(add_unit))
        .route("/staff/settings/staff-unit", post(set_staff_unit))
        .route("/staff/settings/sms", post(add_sms_account))
        .route("/staff/settings/sms/{id}/test", post(test_sms_account))
        .route(
            "/staff/settings/logo",
            post(|s, me, m| upload_asset(s, me, m, Asset::Logo))
                .layer(axum::extract::DefaultBodyLimit::max(ASSET_BODY_LIMIT)),
        )
        .route(
            "/staff/settings/header",
            post(|s, me, m| upload_asset(s, me, m, Asset::Header))
                .layer(axum::extract::DefaultBodyLimit::max(ASSET_BODY_LIMIT)),
        )
        .route("/staff/settings/sms/{id}", post(change_sms_account))
}

pub(crate) fn token_from(headers: &HeaderMap) -> Option<String> {
    crate::cookies::session_token(headers, COOKIE)
}

/// Path `/staff` and host-only: the cookie never reaches another municipality's host.
pub(crate) fn cookie(token: &str, secure: bool) -> HeaderValue {
    crate::cookies::session_cookie(COOKIE, token, "/staff", SESSION_LIMITS.absolute, secure)
}

/// A signed-in staff member of the municipality whose host received the request.
pub(crate) struct StaffSession {
    pub(crate) tenant: Arc<Tenant>,
    pub(crate) staff: Staff,
    csrf: String,
    pub(crate) token: String,
    /// The client address (for the activity log).
    pub(crate) address: String,
}

impl FromRequestParts<WebState> for StaffSession {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &WebState,
    ) -> Result<Self, Self::Rejection> {
        let Some(tenant) = parts.extensions.get::<Arc<Tenant>>().cloned() else {
            return Err(StatusCode::NOT_FOUND.into_response());
        };
        let signed_out = async || {
            crate::staff_sign_in::sign_in_page(
                state,
                &tenant,
                &parts.headers,
                StatusCode::UNAUTHORIZED,
                None,
            )
            .await
        };
        let Some(token) = token_from(&parts.headers) else {
            return Err(signed_out().await);
        };
        let found = async {
            let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
            let found = staff::staff_session(&mut tx, &token, SESSION_LIMITS).await?;
            tx.commit().await?;
            Ok::<_, DomainError>(found)
        }
        .await;
        match found {
            Ok(Some((staff, csrf))) => Ok(Self {
                address: crate::limits::client_address(
                    state.trust_forwarded_for,
                    parts
                        .extensions
                        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>(),
                    &parts.headers,
                ),
                tenant,
                staff,
                csrf,
                token,
            }),
            Ok(None) => Err(signed_out().await),
            Err(e) => Err(failure(state, &tenant, &e)),
        }
    }
}

impl StaffSession {
    pub(crate) fn subject(&self) -> Subject {
        Subject::Staff {
            tenant: self.tenant.id,
            id: self.staff.id,
        }
    }

    async fn require(&self, state: &WebState, action: Action) -> Result<(), DomainError> {
        self.require_on(state, Resource::Settings, action).await
    }

    /// `Forbidden` unless this staff member may do `action` on `resource` here.
    pub(crate) async fn require_on(
        &self,
        state: &WebState,
        resource: Resource,
        action: Action,
    ) -> Result<(), DomainError> {
        state
            .authz
            .require(
                &self.subject(),
                Domain::Tenant(self.tenant.id),
                resource,
                action,
            )
            .await
    }

    /// How far this member reaches among requests for `action`: `None` = every request,
    /// `Some(reach)` = their unit's, the intake and their own; `Forbidden` = none.
    pub(crate) async fn reach(
        &self,
        state: &WebState,
        action: Action,
    ) -> Result<Option<desk_db::requests::UnitReach>, DomainError> {
        let domain = Domain::Tenant(self.tenant.id);
        let subject = self.subject();
        if state
            .authz
            .allowed(&subject, domain, Resource::Request, action)
            .await?
        {
            return Ok(None);
        }
        if state
            .authz
            .allowed(&subject, domain, Resource::UnitRequest, action)
            .await?
        {
            return Ok(Some(desk_db::requests::UnitReach {
                staff_id: self.staff.id,
                unit_id: self.staff.unit_id,
            }));
        }
        Err(DomainError::Forbidden)
    }

    /// `Forbidden` unless this member may take `action` on some requests (any reach).
    pub(crate) async fn require_requests(
        &self,
        state: &WebState,
        action: Action,
    ) -> Result<(), DomainError> {
        self.reach(state, action).await.map(|_| ())
    }

    /// `Forbidden` unless this member may take `action` on `request` (their role's reach).
    pub(crate) async fn require_request(
        &self,
        state: &WebState,
        request: &desk_db::requests::Request,
        action: Action,
    ) -> Result<(), DomainError> {
        match self.reach(state, action).await? {
            Some(reach) if !reach.covers(request) => Err(DomainError::Forbidden),
            _ => Ok(()),
        }
    }

    /// Appends a line to the municipality's activity log, in a transaction of its own.
    pub(crate) async fn log(
        &self,
        state: &WebState,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<(), DomainError> {
        let mut tx = state
            .platform
            .tenant_db()
            .begin(self.tenant.scope())
            .await?;
        self.log_in(&mut tx, action, detail).await?;
        tx.commit().await
    }

    /// Appends a line to the activity log within `tx`.
    pub(crate) async fn log_in(
        &self,
        tx: &mut desk_db::TenantTx,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<(), DomainError> {
        staff::log_activity(
            tx,
            &staff::Activity {
                staff_id: Some(self.staff.id),
                actor: &self.staff.username,
                action,
                detail,
                address: Some(&self.address),
            },
        )
        .await
    }

    /// `Forbidden` unless `sent` is this session's CSRF token.
    pub(crate) fn csrf_ok(&self, sent: &str) -> Result<(), DomainError> {
        self.check_csrf(sent)
    }

    /// The session's CSRF token (for forms).
    pub(crate) fn csrf(&self) -> &str {
        &self.csrf
    }

    fn check_csrf(&self, sent: &str) -> Result<(), DomainError> {
        if !sent.is_empty() && sent == self.csrf {
            Ok(())
        } else {
            Err(DomainError::Forbidden)
        }
    }
}

fn invalid(
    state: &WebState,
    tenant: &Tenant,
    field: &str,
    code: &'static str,
    message: &str,
) -> Response {
    failure(
        state,
        tenant,
        &DomainError::Validation(FieldErrors::single(field, code, message)),
    )
}

/// The themed page for a domain error on a staff page, with the way back to the staff home.
pub(crate) fn failure(state: &WebState, tenant: &Tenant, e: &DomainError) -> Response {
    failure_back(state, tenant, e, Some(("/staff", "بازگشت به صفحه کارکنان")))
}

/// The themed page for a domain error (a 5xx never shows its cause), with an optional way on.
pub(crate) fn failure_back(
    state: &WebState,
    tenant: &Tenant,
    e: &DomainError,
    back: Option<(&str, &str)>,
) -> Response {
    let (status, title, message) = match e {
        DomainError::NotFound => (
            StatusCode::NOT_FOUND,
            "پیدا نشد",
            "آنچه خواستید پیدا نشد.".to_owned(),
        ),
        DomainError::Forbidden => (
            StatusCode::FORBIDDEN,
            "اجازه ندارید",
            "این کار در دسترس نقش شما نیست (برای نمونه، درخواستی از واحدی دیگر یا تنظیماتی که \
             فقط مدیر میز خدمت می‌بیند). اگر باید باشد، به مدیر میز خدمت بگویید."
                .to_owned(),
        ),
        DomainError::RateLimited { message, .. } => (
            StatusCode::TOO_MANY_REQUESTS,
            "کمی صبر کنید",
            message.clone(),
        ),
        DomainError::Conflict(_) => (
            StatusCode::CONFLICT,
            "ناسازگار",
            "این تغییر با وضعیت کنونی سازگار نیست.".to_owned(),
        ),
        DomainError::Validation(f) => (
            StatusCode::UNPROCESSABLE_ENTITY,
            "ورودی نادرست",
            f.0.iter()
                .map(|x| x.message.clone())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        DomainError::Unavailable => (
            StatusCode::SERVICE_UNAVAILABLE,
            "کمی صبر کنید",
            DomainError::UNAVAILABLE_FA.to_owned(),
        ),
        DomainError::Internal(err) => {
            tracing::error!(error = %err, "staff portal request failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "خطای سامانه",
                "خطایی رخ داد. لطفاً دوباره تلاش کنید.".to_owned(),
            )
        }
    };
    crate::pages::error_page_back(state, status, Some(tenant), title, &message, back)
}

#[derive(Serialize)]
struct StaffView<'a> {
    name: &'a str,
    username: &'a str,
    csrf: &'a str,
}

fn staff_view(s: &StaffSession) -> StaffView<'_> {
    StaffView {
        name: &s.staff.display_name,
        username: &s.staff.username,
        csrf: &s.csrf,
    }
}

// ----- sign-in -----

async fn show_sign_in(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(token): Path<String>,
) -> Response {
    // A page with a button, so link previewers that fetch the URL do not use the link up.
    render(
        &state,
        StatusCode::OK,
        "staff_sign_in.html.j2",
        json!({ "tenant": TenantView::of(&tenant), "token": token }),
    )
}

async fn sign_in(
    State(state): State<WebState>,
    Extension(tenant): Extension<Arc<Tenant>>,
    Path(token): Path<String>,
) -> Response {
    let result = async {
        let mut tx = state.platform.tenant_db().begin(tenant.scope()).await?;
        let Some(staff_id) = staff::redeem_sign_in_token(&mut tx, &token).await? else {
            return Ok(None);
        };
        let session = desk_core::secret::new_token();
        let csrf = desk_core::secret::new_token();
        staff::create_staff_session(
            &mut tx,
            staff_id,
            &session,
            &csrf,
            SESSION_LIMITS,
            &staff::Device::default(),
        )
        .await?;
        tx.commit().await?;
        Ok::<_, DomainError>(Some(session))
    }
    .await;
    match result {
        Ok(Some(session)) => {
            let mut res = Redirect::to("/staff").into_response();
            res.headers_mut()
                .insert(header::SET_COOKIE, cookie(&session, state.secure_cookies));
            res
        }
        Ok(None) => crate::pages::error_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some(&tenant),
            "پیوند ورود معتبر نیست",
            "این پیوند پیش‌تر به کار رفته یا زمانش گذشته است. از مدیر میز خدمت پیوند تازه بخواهید.",
        ),
        Err(e) => failure(&state, &tenant, &e),
    }
}

async fn sign_out(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<crate::CsrfForm>,
) -> Response {
    let result = async {
        me.check_csrf(&form.csrf)?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        staff::delete_staff_session(&mut tx, &me.token).await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => {
            let mut res = Redirect::to("/").into_response();
            res.headers_mut()
                .insert(header::SET_COOKIE, cookie("", state.secure_cookies));
            res
        }
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

async fn show_home(State(state): State<WebState>, me: StaffSession) -> Response {
    let can = |resource, action| {
        let me = &me;
        let state = &state;
        async move { me.require_on(state, resource, action).await.is_ok() }
    };
    let can_settings = can(Resource::Settings, Action::Read).await;
    let can_reports = can(Resource::Report, Action::Read).await;
    let can_team = can(Resource::Staff, Action::Manage).await;
    let can_activity = can(Resource::Activity, Action::Read).await;
    let can_requests = me.require_requests(&state, Action::Read).await.is_ok();
    let can_act = me.require_requests(&state, Action::Update).await.is_ok();
    let loaded = async {
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let unit = match me.staff.unit_id {
            Some(id) => desk_db::requests::units(&mut tx)
                .await?
                .into_iter()
                .find(|u| u.id == id)
                .map(|u| u.name),
            None => None,
        };
        let checklist = if can_team {
            Some(go_live_checklist(&mut tx, &me).await?)
        } else {
            None
        };
        tx.commit().await?;
        Ok::<_, DomainError>((unit, checklist))
    }
    .await;
    let (unit, checklist) = match loaded {
        Ok(l) => l,
        Err(e) => return failure(&state, &me.tenant, &e),
    };
    let roles: Vec<&str> = state
        .authz
        .staff_role_keys(me.tenant.id, me.staff.id)
        .await
        .iter()
        .filter_map(|r| desk_authz::Role::tenant_role(r))
        .map(desk_authz::Role::label_fa)
        .collect();
    render(
        &state,
        StatusCode::OK,
        "staff_home.html.j2",
        json!({ "tenant": TenantView::of(&me.tenant), "me": staff_view(&me), "roles": roles, "unit": unit,
                "can_settings": can_settings, "can_reports": can_reports, "can_team": can_team,
                "can_activity": can_activity, "can_requests": can_requests, "can_act": can_act,
                "checklist": checklist }),
    )
}

/// What a municipality's admin should finish before going live, each with where to do it.
async fn go_live_checklist(
    tx: &mut desk_db::TenantTx,
    me: &StaffSession,
) -> Result<serde_json::Value, DomainError> {
    let accounts = settings::list_sms_accounts(tx).await?;
    let tests = settings::latest_sms_tests(tx).await?;
    let contact = settings::get_setting(tx, "contact").await?;
    let go_live = settings::get_setting(tx, "go_live").await?;
    let members = staff::list_staff(tx).await?;
    let sms = accounts.iter().any(|a| {
        a.enabled
            && tests
                .iter()
                .any(|(id, outcome, _)| *id == a.id && outcome == "sent")
    });
    let contact_set = contact
        .as_ref()
        .and_then(|c| c.as_object())
        .is_some_and(|c| {
            c.values()
                .any(|v| v.as_str().is_some_and(|s| !s.trim().is_empty()))
        });
    let catalog = go_live
        .as_ref()
        .and_then(|g| g.get("catalog_reviewed"))
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    let team = members
        .iter()
        .filter(|m| m.active && m.id != me.staff.id)
        .count()
        > 0;
    let items = [
        (
            sms,
            "یک حساب پیامک افزوده و پیامک آزمایشی با موفقیت فرستاده شده است",
            "/staff/settings#sms",
        ),
        (
            contact_set,
            "نشانی و تلفن تماس شهرداری ثبت شده است",
            "/staff/settings#contact",
        ),
        (catalog, "شناسنامه خدمات بازبینی شده است", "/staff/catalog"),
        (
            team,
            "دست‌کم یک عضو دیگر به تیم دعوت شده است",
            "/staff/team#invite",
        ),
    ];
    Ok(json!({
        "done": items.iter().all(|(ok, _, _)| *ok),
        "catalog_reviewed": catalog,
        "items": items.iter().map(|(ok, label, href)| json!({ "ok": ok, "label": label, "href": href })).collect::<Vec<_>>(),
    }))
}

async fn mark_catalog_reviewed(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<crate::CsrfForm>,
) -> Response {
    let result = async {
        me.require(&state, Action::Update).await?;
        me.check_csrf(&form.csrf)?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        settings::put_setting(&mut tx, "go_live", &json!({ "catalog_reviewed": true })).await?;
        me.log_in(&mut tx, "settings.catalog_reviewed", json!({}))
            .await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/staff").into_response(),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

// ----- settings -----

/// Weekdays as Iranians list them, with ISO numbers (Monday = 1).
const WEEKDAYS: [(u32, &str); 7] = [
    (6, "شنبه"),
    (7, "یکشنبه"),
    (1, "دوشنبه"),
    (2, "سه‌شنبه"),
    (3, "چهارشنبه"),
    (4, "پنجشنبه"),
    (5, "جمعه"),
];

const PROVIDERS: [(&str, &str); 4] = [
    ("kavenegar", "کاوه‌نگار"),
    ("smsir", "اس‌ام‌اس دات آی‌آر"),
    ("ghasedak", "قاصدک"),
    ("magfa", "مگفا"),
];

async fn show_settings(State(state): State<WebState>, me: StaffSession) -> Response {
    let result = async {
        me.require(&state, Action::Read).await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let contact = settings::get_setting(&mut tx, "contact").await?.unwrap_or_else(|| json!({}));
        let week = settings::get_setting(&mut tx, "work_week").await?.unwrap_or_else(|| json!({ "days_off": [5] }));
        let holidays = settings::list_holidays(&mut tx).await?;
        let accounts = settings::list_sms_accounts(&mut tx).await?;
        let tests = settings::latest_sms_tests(&mut tx).await?;
        let units = desk_db::requests::units(&mut tx).await?;
        let desk_hours = desk_db::appointments::desk_hours(&mut tx).await?;
        let services = desk_db::catalog::published_services(&mut tx, None, None).await?;
        let members = staff::list_staff(&mut tx).await?;
        let member_units: Vec<_> = members
            .iter()
            .map(|m| json!({ "id": m.id, "name": m.display_name, "unit": m.unit_id }))
            .collect();
        tx.commit().await?;
        let days_off: Vec<u32> = serde_json::from_value(week["days_off"].clone()).unwrap_or_default();
        let weekdays: Vec<_> = WEEKDAYS
            .iter()
            .map(|(iso, name)| json!({ "iso": iso, "name": name, "off": days_off.contains(iso) }))
            .collect();
        let holidays: Vec<_> = holidays
            .iter()
            .map(|(day, title)| {
                let j = JalaliDate::from_gregorian(*day).to_string();
                json!({ "jalali": persian_digits(&j), "value": j, "title": title })
            })
            .collect();
        let provider_name = |code: &str| PROVIDERS.iter().find(|(c, _)| *c == code).map_or(code.to_owned(), |(_, n)| (*n).to_owned());
        let accounts: Vec<_> = accounts
            .iter()
            .map(|a| {
                json!({
                    "id": a.id, "label": a.label, "provider": provider_name(&a.provider), "sender": a.sender_line,
                    "set_on": persian_digits(&JalaliDate::from_gregorian(desk_core::calendar::iran_time(a.credentials_set_at).date()).to_string()),
                    "enabled": a.enabled,
                    "test": tests.iter().find(|(id, _, _)| *id == a.id).map(|(_, outcome, error)| match outcome.as_str() {
                        "sent" => "پیام آزمایشی فرستاده شد.".to_owned(),
                        "pending" => "در حال ارسال پیام آزمایشی…".to_owned(),
                        _ => error.clone().unwrap_or_else(|| "ارسال ناموفق بود.".to_owned()),
                    }),
                })
            })
            .collect();
        let providers: Vec<_> = PROVIDERS.iter().map(|(c, n)| json!({ "code": c, "name": n })).collect();
        Ok::<_, DomainError>(json!({
            "tenant": TenantView::of(&me.tenant), "me": staff_view(&me), "contact": contact,
            "themes": desk_core::design::THEMES.iter().map(|(code, label)| json!({ "code": code, "label": label, "chosen": *code == me.tenant.design.theme })).collect::<Vec<_>>(),
            "weekdays": weekdays, "holidays": holidays, "accounts": accounts, "providers": providers,
            "units": units.iter().map(|u| json!({ "id": u.id, "name": u.name })).collect::<Vec<_>>(),
            "members": member_units,
            "services": services.iter().map(|s| json!({ "code": s.card.code, "title": s.card.title_fa })).collect::<Vec<_>>(),
            "desk_hours": desk_hours.iter().map(|row| (row, &row.hours)).map(|(row, h)| json!({
                "id": row.id,
                "service": row.service_code.as_deref().map(|code| services.iter().find(|s| s.card.code == code).map_or(code, |s| s.card.title_fa.as_str())),
                "weekday": WEEKDAYS.iter().find(|(iso, _)| desk_core::calendar::weekday_from_iso(*iso) == Some(h.weekday)).map_or("", |(_, n)| *n),
                "opens": h.opens.format("%H:%M").to_string(), "closes": h.closes.format("%H:%M").to_string(),
                "slot_minutes": persian_digits(&h.slot_minutes.to_string()), "capacity": persian_digits(&h.capacity.to_string()),
            })).collect::<Vec<_>>(),
            "can_edit": me.require(&state, Action::Update).await.is_ok(),
            "secrets_ready": state.secrets.is_some(),
        }))
    }
    .await;
    match result {
        Ok(view) => render(&state, StatusCode::OK, "staff_settings.html.j2", view),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

/// Runs a settings change for an admin who sent the right CSRF token, then back to the page.
async fn settings_change<F>(state: &WebState, me: &StaffSession, csrf: &str, change: F) -> Response
where
    F: AsyncFnOnce(&mut desk_db::TenantTx) -> Result<(), DomainError>,
{
    let result = async {
        me.check_csrf(csrf)?;
        me.require(state, Action::Update).await?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        change(&mut tx).await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/staff/settings").into_response(),
        Err(e) => failure(state, &me.tenant, &e),
    }
}

#[derive(Deserialize)]
struct ThemeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    brand: String,
    /// One of `desk_core::design::THEMES`; empty keeps the current one.
    #[serde(default)]
    theme: String,
}

async fn save_theme(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<ThemeForm>,
) -> Response {
    let brand = match desk_core::design::check_brand(&form.brand) {
        Ok(b) => b,
        Err(e) => return failure(&state, &me.tenant, &e.into()),
    };
    let theme = match form.theme.trim() {
        "" => me.tenant.design.theme.clone(),
        t if desk_core::design::is_theme(t) => t.to_owned(),
        _ => {
            return invalid(
                &state,
                &me.tenant,
                "theme",
                "theme",
                "این پوسته وجود ندارد.",
            );
        }
    };
    settings_change(&state, &me, &form.csrf, async |_tx| {
        update_design(&state, me.tenant.id, |design| {
            design.theme = theme;
            design.brand = Some(brand);
        })
        .await
    })
    .await
}

/// Changes a municipality's design as the registry has it now (the request's copy comes from
/// the host cache and may be seconds old: a change made meanwhile must not be undone), then
/// forgets this instance's cached hosts so the change shows at once.
async fn update_design(
    state: &WebState,
    tenant: desk_core::TenantId,
    change: impl FnOnce(&mut desk_db::Design),
) -> Result<(), DomainError> {
    let mut design = state
        .platform
        .tenant_by_id(tenant)
        .await?
        .ok_or(DomainError::NotFound)?
        .design;
    change(&mut design);
    state.platform.set_design(tenant, &design).await?;
    state.sites.invalidate();
    Ok(())
}

#[derive(Deserialize)]
struct ContactForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    phone: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    address: String,
}

async fn save_contact(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<ContactForm>,
) -> Response {
    let too_long = [&form.phone, &form.email, &form.address]
        .iter()
        .any(|f| f.chars().count() > 300);
    if too_long {
        return invalid(
            &state,
            &me.tenant,
            "contact",
            "too_long",
            "هر بخش حداکثر ۳۰۰ نویسه باشد.",
        );
    }
    let value = json!({ "phone": form.phone.trim(), "email": form.email.trim(), "address": form.address.trim() });
    settings_change(&state, &me, &form.csrf, async |tx| {
        settings::put_setting(tx, "contact", &value).await
    })
    .await
}

#[derive(Deserialize)]
struct WeekForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    off_1: Option<String>,
    #[serde(default)]
    off_2: Option<String>,
    #[serde(default)]
    off_3: Option<String>,
    #[serde(default)]
    off_4: Option<String>,
    #[serde(default)]
    off_5: Option<String>,
    #[serde(default)]
    off_6: Option<String>,
    #[serde(default)]
    off_7: Option<String>,
}

async fn save_work_week(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<WeekForm>,
) -> Response {
    let flags = [
        &form.off_1,
        &form.off_2,
        &form.off_3,
        &form.off_4,
        &form.off_5,
        &form.off_6,
        &form.off_7,
    ];
    let days_off: Vec<u32> = (1..=7)
        .zip(flags)
        .filter(|(_, f)| f.is_some())
        .map(|(d, _)| d)
        .collect();
    if days_off.len() == 7 {
        return invalid(
            &state,
            &me.tenant,
            "work_week",
            "no_work_days",
            "دست‌کم یک روز کاری لازم است.",
        );
    }
    settings_change(&state, &me, &form.csrf, async |tx| {
        settings::put_setting(tx, "work_week", &json!({ "days_off": days_off })).await
    })
    .await
}

#[derive(Deserialize)]
struct HolidayForm {
    #[serde(default)]
    csrf: String,
    op: String,
    day: String,
    #[serde(default)]
    title: String,
}

async fn change_holiday(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<HolidayForm>,
) -> Response {
    let day = match JalaliDate::parse(&form.day).map(JalaliDate::to_gregorian) {
        Ok(Some(d)) => d,
        Ok(None) | Err(_) => {
            return invalid(
                &state,
                &me.tenant,
                "day",
                "jalali_date",
                "تاریخ را به شکل ۱۴۰۴/۰۱/۱۵ وارد کنید.",
            );
        }
    };
    let title = form.title.trim().to_owned();
    let add = form.op == "add";
    settings_change(&state, &me, &form.csrf, async |tx| {
        if add {
            settings::put_holiday(tx, day, &title).await
        } else {
            settings::delete_holiday(tx, day).await
        }
    })
    .await
}

#[derive(Deserialize)]
struct UnitForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
}

async fn add_unit(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<UnitForm>,
) -> Response {
    settings_change(&state, &me, &form.csrf, async |tx| {
        desk_db::requests::add_unit(tx, &form.name)
            .await
            .map(|_| ())
    })
    .await
}

#[derive(Deserialize)]
struct StaffUnitForm {
    #[serde(default)]
    csrf: String,
    staff_id: i64,
    /// Empty: no unit.
    #[serde(default)]
    unit_id: String,
}

async fn set_staff_unit(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<StaffUnitForm>,
) -> Response {
    settings_change(&state, &me, &form.csrf, async |tx| {
        let unit = match form.unit_id.as_str() {
            "" => None,
            raw => {
                let id: i64 = raw.parse().map_err(|_| DomainError::NotFound)?;
                if !desk_db::requests::units(tx)
                    .await?
                    .iter()
                    .any(|u| u.id == id)
                {
                    return Err(DomainError::NotFound);
                }
                Some(id)
            }
        };
        if staff::staff_by_id(tx, form.staff_id).await?.is_none() {
            return Err(DomainError::NotFound);
        }
        // The team page's rule: a department head heads a unit.
        let role = state
            .authz
            .staff_role_keys(me.tenant.id, form.staff_id)
            .await
            .iter()
            .find_map(|r| desk_authz::Role::tenant_role(r));
        let mut errors = FieldErrors::default();
        crate::team::require_unit(role, unit, &mut errors);
        if !errors.0.is_empty() {
            return Err(errors.into());
        }
        desk_db::requests::set_staff_unit(tx, form.staff_id, unit).await
    })
    .await
}

#[derive(Deserialize)]
struct SmsForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    op: String,
    #[serde(default)]
    provider: String,
    #[serde(default)]
    label: String,
    #[serde(default)]
    sender_line: String,
    #[serde(default)]
    api_key: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    domain: String,
}

/// The credentials a provider needs, as the JSON that gets sealed.
fn credentials(provider: &str, form: &SmsForm) -> Result<serde_json::Value, DomainError> {
    let missing = |field: &str| {
        DomainError::Validation(FieldErrors::single(
            field,
            "required",
            "اطلاعات ورود به سامانه پیامک کامل نیست.",
        ))
    };
    match provider {
        "kavenegar" | "smsir" | "ghasedak" => {
            let key = form.api_key.trim();
            if key.is_empty() || key.len() > 500 {
                return Err(missing("api_key"));
            }
            Ok(json!({ "api_key": key }))
        }
        "magfa" => {
            let (u, p, d) = (
                form.username.trim(),
                form.password.as_str(),
                form.domain.trim(),
            );
            if u.is_empty() || p.is_empty() || d.is_empty() {
                return Err(missing("password"));
            }
            Ok(json!({ "username": u, "password": p, "domain": d }))
        }
        _ => Err(DomainError::Validation(FieldErrors::single(
            "provider",
            "provider",
            "سامانه پیامک را انتخاب کنید.",
        ))),
    }
}

fn seal(
    state: &WebState,
    tenant: &Tenant,
    account: i64,
    creds: &serde_json::Value,
) -> Result<desk_core::secret::Sealed, DomainError> {
    seal_secret(
        state,
        tenant,
        &format!("sms_account:{account}"),
        creds.to_string().as_bytes(),
    )
}

/// Seals a municipality's secret (provider or agency credentials) for `purpose`.
pub(crate) fn seal_secret(
    state: &WebState,
    tenant: &Tenant,
    purpose: &str,
    plain: &[u8],
) -> Result<desk_core::secret::Sealed, DomainError> {
    let key = state.secrets.as_ref().ok_or_else(|| {
        DomainError::Internal(anyhow::anyhow!(
            "no master key configured (secrets.master_key)"
        ))
    })?;
    key.seal(tenant.id, purpose, plain)
}

async fn add_sms_account(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<SmsForm>,
) -> Response {
    let creds = match credentials(&form.provider, &form) {
        Ok(c) => c,
        Err(e) => return failure(&state, &me.tenant, &e),
    };
    let (provider, label, sender) = (
        form.provider.clone(),
        form.label.trim().to_owned(),
        form.sender_line.trim().to_owned(),
    );
    let (state_ref, tenant) = (&state, me.tenant.clone());
    settings_change(&state, &me, &form.csrf, async |tx| {
        settings::add_sms_account(tx, &provider, &label, &sender, |id| {
            seal(state_ref, &tenant, id, &creds)
        })
        .await
        .map(|_| ())
    })
    .await
}

async fn change_sms_account(
    State(state): State<WebState>,
    me: StaffSession,
    Path(id): Path<i64>,
    Form(form): Form<SmsForm>,
) -> Response {
    if form.op == "delete" {
        return settings_change(&state, &me, &form.csrf, async |tx| {
            settings::delete_sms_account(tx, id).await
        })
        .await;
    }
    let (state_ref, tenant) = (&state, me.tenant.clone());
    settings_change(&state, &me, &form.csrf, async |tx| {
        // The stored provider decides what the credentials must look like, not the form.
        let account = settings::sms_account(tx, id)
            .await?
            .ok_or(DomainError::NotFound)?;
        let creds = credentials(&account.provider, &form)?;
        settings::replace_sms_credentials(tx, id, &seal(state_ref, &tenant, id, &creds)?).await
    })
    .await
}

/// An image of the municipality's design.
#[derive(Debug, Clone, Copy)]
enum Asset {
    /// The logo beside its name.
    Logo,
    /// The header's background image.
    Header,
}

impl Asset {
    fn name(self) -> &'static str {
        match self {
            Self::Logo => "logo",
            Self::Header => "header",
        }
    }

    fn max_bytes(self) -> usize {
        match self {
            Self::Logo => 200 * 1024,
            Self::Header => 600 * 1024,
        }
    }

    fn refused(self) -> &'static str {
        match self {
            Self::Logo => "نشان باید تصویر PNG، JPEG یا WebP و حداکثر ۲۰۰ کیلوبایت باشد.",
            Self::Header => "تصویر سربرگ باید PNG، JPEG یا WebP و حداکثر ۶۰۰ کیلوبایت باشد.",
        }
    }
}

/// The request may be a little larger than the largest file (form fields, multipart framing);
/// beyond this the upload is cut off and refused with the same Persian message.
const ASSET_BODY_LIMIT: usize = 660 * 1024;

async fn upload_asset(
    State(state): State<WebState>,
    me: StaffSession,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
    asset: Asset,
) -> Response {
    let (field_name, too_big) = (asset.name(), asset.refused());
    let Ok(mut multipart) = multipart else {
        return invalid(&state, &me.tenant, field_name, "logo_invalid", too_big);
    };
    let (mut csrf, mut file) = (String::new(), None);
    loop {
        match multipart.next_field().await {
            Ok(Some(field)) => {
                let name = field.name().unwrap_or_default().to_owned();
                let Ok(bytes) = field.bytes().await else {
                    return invalid(&state, &me.tenant, field_name, "logo_too_large", too_big);
                };
                match name.as_str() {
                    "csrf" => csrf = String::from_utf8_lossy(&bytes).into_owned(),
                    n if n == field_name => file = Some(bytes),
                    _ => {}
                }
            }
            Ok(None) => break,
            Err(_) => return invalid(&state, &me.tenant, field_name, "logo_too_large", too_big),
        }
    }
    let Some(bytes) = file.filter(|b| !b.is_empty() && b.len() <= asset.max_bytes()) else {
        return invalid(&state, &me.tenant, field_name, "logo_too_large", too_big);
    };
    let Some(content_type) = desk_core::content_type::sniff(&bytes)
        .filter(|t| desk_core::content_type::is_raster_image(t))
    else {
        return invalid(&state, &me.tenant, field_name, "logo_type", too_big);
    };
    settings_change(&state, &me, &csrf, async |tx| {
        settings::put_theme_asset(tx, field_name, content_type, &bytes).await?;
        update_design(&state, me.tenant.id, |design| match asset {
            Asset::Logo => design.logo = true,
            Asset::Header => design.header = true,
        })
        .await
    })
    .await
}

#[derive(Deserialize)]
struct TestForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    to: String,
}

/// "Test send": records the request and enqueues the job that sends through the account; the
/// page shows the provider's answer when the worker has it.
async fn test_sms_account(
    State(state): State<WebState>,
    me: StaffSession,
    Path(id): Path<i64>,
    Form(form): Form<TestForm>,
) -> Response {
    let to = match desk_core::MobileNumber::parse(&form.to) {
        Ok(m) => m,
        Err(e) => return failure(&state, &me.tenant, &DomainError::Validation(e)),
    };
    let tenant_id = me.tenant.id;
    settings_change(&state, &me, &form.csrf, async |tx| {
        let test_id = settings::request_sms_test(tx, id, to.as_str()).await?;
        desk_db::jobs::enqueue(tx, &desk_core::jobs::SmsTestSend { tenant_id, test_id }).await
    })
    .await
}
