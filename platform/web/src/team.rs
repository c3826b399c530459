//! The municipality's staff team at `/staff/team` (tenant admins): members with role, unit,
//! status and last sign-in; invitations by SMS; role and unit changes; deactivation (sessions
//! and API keys end at once, assigned open requests go back to the unit's queue) and
//! reactivation. The last active tenant admin can be neither demoted nor deactivated.
//! Also each member's own account at `/staff/account` (password, sessions) and the activity
//! log at `/staff/activity` (tenant admins and auditors).

use crate::WebState;
use crate::pages::{TenantView, render};
use crate::staff::{StaffSession, failure};
use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use desk_authz::{Action, Resource, Role};
use desk_core::jalali::JalaliDate;
use desk_core::jobs::WelcomeStaff;
use desk_core::text::persian_digits;
use desk_core::{DomainError, FieldErrors, MobileNumber};
use desk_db::staff::{self, InvitationState};
use serde::Deserialize;
use serde_json::{Value, json};

pub(crate) fn team_routes() -> Router<WebState> {
    Router::new()
        .route("/staff/team", get(show_team).post(invite))
        .route("/staff/team/{id}", post(change_member))
        .route("/staff/team/{id}/deactivate", post(deactivate))
        .route("/staff/team/{id}/reactivate", post(reactivate))
        .route("/staff/team/{id}/invite", post(resend_invitation))
        .route("/staff/team/{id}/totp/remove", post(remove_totp))
        .route("/staff/account", get(show_account))
        .route("/staff/account/password", post(change_password))
        .route("/staff/account/sessions/{id}/revoke", post(revoke_session))
        .route("/staff/account/totp", post(start_totp))
        .route("/staff/account/totp/confirm", post(confirm_totp))
        .route("/staff/account/totp/disable", post(disable_totp))
        .route("/staff/activity", get(show_activity))
        .route("/staff/activity.csv", get(activity_csv))
}

use crate::requests::jalali_moment;

// ----- the team page -----

#[derive(Debug, Deserialize, Default)]
struct InviteForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    full_name: String,
    #[serde(default)]
    mobile: String,
    #[serde(default)]
    username: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    unit_id: String,
}

#[derive(Debug, Deserialize, Default)]
struct TeamQuery {
    #[serde(default)]
    done: String,
    /// The member the change was about (their username).
    #[serde(default)]
    who: String,
}

fn status_label(m: &staff::Staff, invitation: InvitationState) -> &'static str {
    match (m.active, invitation) {
        (false, _) => "غیرفعال",
        (true, InvitationState::Accepted) => "فعال",
        (true, InvitationState::Pending) => "دعوت‌شده (در انتظار پذیرش)",
        (true, InvitationState::Expired) => "دعوت‌نامه منقضی شده",
        (true, InvitationState::NotSent) => "در صف ارسال دعوت‌نامه",
    }
}

async fn team_page(
    state: &WebState,
    me: &StaffSession,
    status: StatusCode,
    notice: Option<&str>,
    errors: Option<&FieldErrors>,
    input: &InviteForm,
) -> Result<Response, DomainError> {
    me.require_on(state, Resource::Staff, Action::Read).await?;
    let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
    let members = staff::list_staff(&mut tx).await?;
    let units = desk_db::requests::units(&mut tx).await?;
    let states = staff::invitation_states(&mut tx).await?;
    tx.commit().await?;
    let roles = state.authz.staff_roles(me.tenant.id).await;
    let rows: Vec<Value> = members
        .iter()
        .map(|m| {
            let invitation = states
                .get(&m.id)
                .copied()
                .unwrap_or(InvitationState::NotSent);
            let role = roles.iter().find(|(id, _)| *id == m.id).map(|(_, r)| *r);
            json!({
                "id": m.id,
                "name": m.display_name,
                "username": m.username,
                "mobile": m.mobile.as_deref().map(|x| persian_digits(&desk_core::mobile::local_form(x))),
                "role": role.map(Role::key),
                "role_label": role.map_or("—", Role::label_fa),
                "unit_id": m.unit_id,
                "unit": units.iter().find(|u| Some(u.id) == m.unit_id).map(|u| u.name.clone()),
                "active": m.active,
                "joined": invitation == InvitationState::Accepted,
                "status": status_label(m, invitation),
                "last_sign_in": m.last_sign_in_at.map(jalali_moment),
                "is_me": m.id == me.staff.id,
                "totp": m.totp_enabled,
                "sso": m.sso_linked,
            })
        })
        .collect();
    let role_options: Vec<Value> = Role::TENANT_ROLES
        .iter()
        .map(|(r, label)| json!({ "key": r.key(), "label": label }))
        .collect();
    Ok(render(
        state,
        status,
        "staff_team.html.j2",
        json!({
            "tenant": TenantView::of(&me.tenant),
            "csrf": me.csrf(),
            "members": rows,
            "units": units.iter().map(|u| json!({ "id": u.id, "name": u.name })).collect::<Vec<_>>(),
            "roles": role_options,
            "notice": notice,
            "errors": errors.map(|e| &e.0),
            "input": {
                "full_name": input.full_name, "mobile": input.mobile, "username": input.username,
                "role": input.role, "unit_id": input.unit_id,
            },
        }),
    ))
}

fn done_notice(done: &str, who: &str) -> Option<String> {
    // No guillemets around the Latin username: in a right-to-left sentence they come out
    // mirrored; a plain word reads right.
    let who = if who.is_empty() {
        "عضو".to_owned()
    } else {
        format!("عضو {who}")
    };
    Some(match done {
        "invited" => {
            format!("دعوت‌نامه {who} ساخته شد و با پیامک فرستاده می‌شود (اعتبار: سه روز).")
        }
        "changed" => format!("نقش و واحد {who} به‌روز شد."),
        "deactivated" => format!(
            "{who} غیرفعال شد: نشست‌ها و کلیدهای API او بسته شد و درخواست‌های باز او به صف واحد بازگشت."
        ),
        "reactivated" => {
            format!("{who} دوباره فعال شد (اگر هنوز گذرواژه نداشت، دعوت‌نامه تازه‌ای برایش می‌رود).")
        }
        "resent" => format!("دعوت‌نامه تازه {who} فرستاده شد؛ پیوند پیشین دیگر کار نمی‌کند."),
        "sso_removed" => {
            format!("پیوند حساب سازمانی {who} برداشته شد؛ ورود یکپارچه دیگر او را وارد نمی‌کند.")
        }
        "totp_removed" => {
            format!("برنامه احراز هویت {who} برداشته شد؛ کد ورود او از این پس پیامک می‌شود.")
        }
        _ => return None,
    })
}

/// Sends a member their invitation: by SMS (the welcome job) when the municipality can send
/// SMS; else the link is issued now and returned, for the admin to hand over in person (shown
/// once). `host` is the request's own host, so the link opens where the admin is.
async fn send_invitation(
    tx: &mut desk_db::TenantTx,
    state: &WebState,
    me: &StaffSession,
    member_id: i64,
    host: &str,
) -> Result<Option<String>, DomainError> {
    let sms_ready = desk_db::settings::list_sms_accounts(tx)
        .await?
        .iter()
        .any(|a| a.enabled);
    if sms_ready {
        desk_db::jobs::enqueue(tx, &WelcomeStaff::new(me.tenant.id, member_id)).await?;
        return Ok(None);
    }
    let token = staff::issue_invitation_token(tx, member_id).await?;
    let scheme = if state.secure_cookies {
        "https"
    } else {
        "http"
    };
    Ok(Some(format!("{scheme}://{host}/staff/welcome/{token}")))
}

/// The invitation link shown once, when no SMS can carry it.
fn invitation_page(state: &WebState, me: &StaffSession, who: &str, link: &str) -> Response {
    let mut res = render(
        state,
        StatusCode::OK,
        "staff_invitation_link.html.j2",
        json!({ "tenant": TenantView::of(&me.tenant), "who": who, "link": link }),
    );
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The host a request was sent to (for links that must open where the admin is).
fn request_host(headers: &axum::http::HeaderMap) -> String {
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The start of every change to one member: the admin's right and form token checked, a
/// transaction holding the team lock, and the member of this municipality.
pub(crate) async fn open_member(
    state: &WebState,
    me: &StaffSession,
    csrf: &str,
    id: i64,
) -> Result<(desk_db::TenantTx, staff::Staff), DomainError> {
    me.require_on(state, Resource::Staff, Action::Manage)
        .await?;
    me.csrf_ok(csrf)?;
    let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
    staff::lock_team(&mut tx).await?;
    let member = staff::staff_by_id(&mut tx, id)
        .await?
        .ok_or(DomainError::NotFound)?;
    Ok((tx, member))
}

/// The answer to a change of a member: the team page naming them; a refusal people can act on
/// (the last admin, a head without a unit) on the team page itself, in its error summary.
pub(crate) async fn team_answer(
    state: &WebState,
    me: &StaffSession,
    done: &str,
    result: Result<String, DomainError>,
) -> Response {
    match result {
        Ok(who) => team_done(done, &who),
        Err(DomainError::Validation(errors)) => team_page(
            state,
            me,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(&errors),
            &InviteForm::default(),
        )
        .await
        .unwrap_or_else(|e| failure(state, &me.tenant, &e)),
        Err(e) => failure(state, &me.tenant, &e),
    }
}

/// The answer to a change that may have issued an invitation: the link shown once when no SMS
/// could carry it, else as [`team_answer`].
async fn invitation_answer(
    state: &WebState,
    me: &StaffSession,
    done: &str,
    result: Result<(String, Option<String>), DomainError>,
) -> Response {
    match result {
        Ok((who, Some(link))) => invitation_page(state, me, &who, &link),
        Ok((who, None)) => team_answer(state, me, done, Ok(who)).await,
        Err(e) => team_answer(state, me, done, Err(e)).await,
    }
}

/// The team page after a change, naming the member.
fn team_done(done: &str, username: &str) -> Response {
    let who: String = form_urlencoded::byte_serialize(username.as_bytes()).collect();
    Redirect::to(&format!("/staff/team?done={done}&who={who}")).into_response()
}

async fn show_team(
    State(state): State<WebState>,
    me: StaffSession,
    Query(q): Query<TeamQuery>,
) -> Response {
    team_page(
        &state,
        &me,
        StatusCode::OK,
        done_notice(&q.done, &q.who).as_deref(),
        None,
        &InviteForm::default(),
    )
    .await
    .unwrap_or_else(|e| failure(&state, &me.tenant, &e))
}

/// The role a form names, if it is one a municipality's member may hold.
fn parse_role(raw: &str, errors: &mut FieldErrors) -> Option<Role> {
    let role = Role::tenant_role(raw.trim());
    if role.is_none() {
        errors.push("role", "unknown_role", "یکی از نقش‌های فهرست را برگزینید.");
    }
    role
}

/// A department head heads a unit: without one their inbox would stay empty.
pub(crate) fn require_unit(role: Option<Role>, unit: Option<i64>, errors: &mut FieldErrors) {
    if role == Some(Role::DepartmentHead) && unit.is_none() {
        errors.push(
            "unit_id",
            "unit_required",
            "رئیس واحد باید واحدی داشته باشد؛ واحد او را برگزینید.",
        );
    }
}

fn parse_unit(raw: &str, errors: &mut FieldErrors) -> Option<i64> {
    let raw = desk_core::mobile::ascii_digits(raw.trim());
    if raw.is_empty() {
        return None;
    }
    match raw.parse() {
        Ok(id) => Some(id),
        Err(_) => {
            errors.push("unit_id", "unknown_unit", "این واحد پیدا نشد.");
            None
        }
    }
}

async fn invite(
    State(state): State<WebState>,
    me: StaffSession,
    headers: axum::http::HeaderMap,
    Form(form): Form<InviteForm>,
) -> Response {
    let result = async {
        me.require_on(&state, Resource::Staff, Action::Manage)
            .await?;
        me.csrf_ok(&form.csrf)?;
        let mut errors = FieldErrors::default();
        let name = form.full_name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            errors.push(
                "full_name",
                "full_name",
                "نام و نام خانوادگی را بنویسید (تا ۱۰۰ نویسه).",
            );
        }
        let mobile = match MobileNumber::parse(&form.mobile) {
            Ok(m) => Some(m),
            Err(e) => {
                for f in e.0 {
                    errors.push("mobile", f.code, &f.message);
                }
                None
            }
        };
        let username = form.username.trim().to_lowercase();
        let username_ok = (3..=40).contains(&username.len())
            && username
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
        if !username_ok {
            errors.push(
                "username",
                "username_shape",
                "نام کاربری ۳ تا ۴۰ نویسه از حروف کوچک لاتین، رقم و . _ - باشد.",
            );
        }
        let role = parse_role(&form.role, &mut errors);
        let unit = parse_unit(&form.unit_id, &mut errors);
        require_unit(role, unit, &mut errors);
        let (Some(mobile), Some(role), true, true) =
            (mobile, role, username_ok, errors.0.is_empty())
        else {
            return Err(DomainError::Validation(errors));
        };
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        staff::lock_team(&mut tx).await?;
        let member = staff::insert_staff(
            &mut tx,
            &username,
            name,
            Some(mobile.as_str()),
            role == Role::TenantAdmin,
        )
        .await?;
        staff::update_member(&mut tx, member.id, role == Role::TenantAdmin, unit).await?;
        tx.set_staff_role(member.id, &role.key()).await?;
        let link =
            send_invitation(&mut tx, &state, &me, member.id, &request_host(&headers)).await?;
        me.log_in(
            &mut tx,
            "team.invite",
            json!({ "member": username, "role": role.key(), "unit_id": unit }),
        )
        .await?;
        tx.commit().await?;
        state.authz.reload().await;
        Ok((username, link))
    }
    .await;
    match result {
        Ok((who, Some(link))) => invitation_page(&state, &me, &who, &link),
        Ok((who, None)) => team_done("invited", &who),
        Err(DomainError::Validation(errors)) => team_page(
            &state,
            &me,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(&errors),
            &form,
        )
        .await
        .unwrap_or_else(|e| failure(&state, &me.tenant, &e)),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

fn last_admin() -> DomainError {
    DomainError::Validation(FieldErrors::single(
        "role",
        "last_admin",
        "این تنها مدیر فعال میز خدمت است؛ نخست عضو دیگری را مدیر کنید.",
    ))
}

#[derive(Debug, Deserialize)]
struct ChangeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    role: String,
    #[serde(default)]
    unit_id: String,
}

async fn change_member(
    State(state): State<WebState>,
    me: StaffSession,
    Path(id): Path<i64>,
    Form(form): Form<ChangeForm>,
) -> Response {
    let result = async {
        let mut errors = FieldErrors::default();
        let role = parse_role(&form.role, &mut errors);
        let unit = parse_unit(&form.unit_id, &mut errors);
        require_unit(role, unit, &mut errors);
        let Some(role) = role.filter(|_| errors.0.is_empty()) else {
            return Err(DomainError::Validation(errors));
        };
        let (mut tx, member) = open_member(&state, &me, &form.csrf, id).await?;
        if member.is_admin
            && role != Role::TenantAdmin
            && member.active
            && staff::active_admins(&mut tx).await? == [member.id]
        {
            return Err(last_admin());
        }
        staff::update_member(&mut tx, id, role == Role::TenantAdmin, unit).await?;
        tx.set_staff_role(id, &role.key()).await?;
        me.log_in(
            &mut tx,
            "team.change",
            json!({ "member": member.username, "role": role.key(), "unit_id": unit }),
        )
        .await?;
        tx.commit().await?;
        state.authz.reload().await;
        Ok(member.username)
    }
    .await;
    team_answer(&state, &me, "changed", result).await
}

async fn deactivate(
    State(state): State<WebState>,
    me: StaffSession,
    Path(id): Path<i64>,
    Form(form): Form<crate::CsrfForm>,
) -> Response {
    let result = async {
        let (mut tx, member) = open_member(&state, &me, &form.csrf, id).await?;
        if member.is_admin && staff::active_admins(&mut tx).await? == [member.id] {
            return Err(last_admin());
        }
        let returned = staff::deactivate(&mut tx, id, me.staff.id).await?;
        me.log_in(
            &mut tx,
            "team.deactivate",
            json!({ "member": member.username, "requests_returned": returned }),
        )
        .await?;
        tx.commit().await?;
        Ok(member.username)
    }
    .await;
    team_answer(&state, &me, "deactivated", result).await
}

async fn reactivate(
    State(state): State<WebState>,
    me: StaffSession,
    headers: axum::http::HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<crate::CsrfForm>,
) -> Response {
    let result = async {
        let (mut tx, member) = open_member(&state, &me, &form.csrf, id).await?;
        staff::reactivate(&mut tx, id).await?;
        // Their invitation ended with the deactivation: a fresh one goes out.
        let link = if member.joined {
            None
        } else {
            send_invitation(&mut tx, &state, &me, member.id, &request_host(&headers)).await?
        };
        me.log_in(
            &mut tx,
            "team.reactivate",
            json!({ "member": member.username }),
        )
        .await?;
        tx.commit().await?;
        Ok((member.username, link))
    }
    .await;
    invitation_answer(&state, &me, "reactivated", result).await
}

/// A member lost the phone with their authenticator app: the admin removes it (logged), and
/// their code comes by SMS again.
async fn remove_totp(
    State(state): State<WebState>,
    me: StaffSession,
    Path(id): Path<i64>,
    Form(form): Form<crate::CsrfForm>,
) -> Response {
    let result = async {
        let (mut tx, member) = open_member(&state, &me, &form.csrf, id).await?;
        staff::disable_totp(&mut tx, member.id).await?;
        me.log_in(
            &mut tx,
            "team.totp_removed",
            json!({ "member": member.username }),
        )
        .await?;
        tx.commit().await?;
        Ok(member.username)
    }
    .await;
    team_answer(&state, &me, "totp_removed", result).await
}

async fn resend_invitation(
    State(state): State<WebState>,
    me: StaffSession,
    headers: axum::http::HeaderMap,
    Path(id): Path<i64>,
    Form(form): Form<crate::CsrfForm>,
) -> Response {
    let result = async {
        let (mut tx, member) = open_member(&state, &me, &form.csrf, id).await?;
        if !member.active {
            return Err(DomainError::NotFound);
        }
        if member.joined {
            return Err(DomainError::Conflict("already joined".into()));
        }
        let link =
            send_invitation(&mut tx, &state, &me, member.id, &request_host(&headers)).await?;
        me.log_in(
            &mut tx,
            "team.reinvite",
            json!({ "member": member.username }),
        )
        .await?;
        tx.commit().await?;
        Ok((member.username, link))
    }
    .await;
    invitation_answer(&state, &me, "resent", result).await
}

// ----- my account -----

/// An authenticator secret being set up, as the page shows it.
struct TotpSetup {
    key: String,
    uri: String,
}

async fn account_page(
    state: &WebState,
    me: &StaffSession,
    status: StatusCode,
    notice: Option<&str>,
    errors: Option<&FieldErrors>,
) -> Result<Response, DomainError> {
    account_page_with(state, me, status, notice, errors, None).await
}

async fn account_page_with(
    state: &WebState,
    me: &StaffSession,
    status: StatusCode,
    notice: Option<&str>,
    errors: Option<&FieldErrors>,
    setup: Option<TotpSetup>,
) -> Result<Response, DomainError> {
    let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
    let sessions = staff::sessions_of(&mut tx, me.staff.id, &me.token).await?;
    let totp = staff::totp_secret(&mut tx, me.staff.id).await?;
    tx.commit().await?;
    let totp_state = match (&totp, &setup) {
        (_, Some(_)) => "setup",
        (Some((_, true, _)), None) => "on",
        _ => "off",
    };
    let roles = state.authz.staff_role_keys(me.tenant.id, me.staff.id).await;
    let sso = crate::sso::button(state, &me.tenant).await;
    let mut res = render(
        state,
        status,
        "staff_account.html.j2",
        json!({
            "tenant": TenantView::of(&me.tenant),
            "csrf": me.csrf(),
            "me": { "name": me.staff.display_name, "username": me.staff.username,
                    "roles": roles.iter().filter_map(|r| Role::tenant_role(r)).map(Role::label_fa).collect::<Vec<_>>() },
            "min_length": persian_digits(&desk_core::password::MIN_LENGTH.to_string()),
            "sessions": sessions.iter().map(|s| json!({
                "id": s.id, "current": s.current,
                "started": jalali_moment(s.created_at), "seen": jalali_moment(s.last_seen_at),
                "device": s.user_agent.as_deref().map(device_label).unwrap_or("مرورگر ناشناخته"),
                "address": s.address,
            })).collect::<Vec<_>>(),
            "notice": notice,
            "errors": errors.map(|e| &e.0),
            "totp": totp_state,
            "totp_key": setup.as_ref().map(|s| s.key.clone()),
            "totp_uri": setup.as_ref().map(|s| s.uri.clone()),
            "sso": sso,
            "sso_linked": me.staff.sso_linked,
        }),
    );
    crate::sso::allow_forms(&mut res, sso.as_ref());
    Ok(res)
}

fn totp_setup(me: &StaffSession, secret: &[u8]) -> TotpSetup {
    let issuer = format!("میز خدمت {}", me.tenant.name_fa);
    TotpSetup {
        key: desk_core::totp::grouped(&desk_core::totp::base32(secret)),
        uri: desk_core::totp::otpauth_uri(&issuer, &me.staff.username, secret),
    }
}

/// The app being set up (stored, not yet enabled), to show again after a wrong code.
async fn pending_totp(
    state: &WebState,
    me: &StaffSession,
) -> Result<Option<TotpSetup>, DomainError> {
    let Some(key) = &state.secrets else {
        return Ok(None);
    };
    let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
    let stored = staff::totp_secret(&mut tx, me.staff.id).await?;
    tx.commit().await?;
    let Some((sealed, false, _)) = stored else {
        return Ok(None);
    };
    let secret = key.open(
        me.tenant.id,
        &format!("staff_totp:{}", me.staff.id),
        &sealed,
    )?;
    Ok(Some(totp_setup(me, &secret)))
}

async fn start_totp(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<crate::CsrfForm>,
) -> Response {
    let result = async {
        me.csrf_ok(&form.csrf)?;
        let key = state.secrets.as_ref().ok_or(DomainError::Unavailable)?;
        let secret = desk_core::totp::new_secret();
        let sealed = key.seal(
            me.tenant.id,
            &format!("staff_totp:{}", me.staff.id),
            &secret,
        )?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        staff::set_totp_pending(&mut tx, me.staff.id, &sealed).await?;
        tx.commit().await?;
        Ok::<_, DomainError>(totp_setup(&me, &secret))
    }
    .await;
    match result {
        Ok(setup) => account_page_with(&state, &me, StatusCode::OK, None, None, Some(setup))
            .await
            .unwrap_or_else(|e| failure(&state, &me.tenant, &e)),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

#[derive(Debug, Deserialize)]
struct TotpCode {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

async fn confirm_totp(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<TotpCode>,
) -> Response {
    let result = async {
        me.csrf_ok(&form.csrf)?;
        let key = state.secrets.as_ref().ok_or(DomainError::Unavailable)?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let (sealed, _, last) = staff::totp_secret(&mut tx, me.staff.id)
            .await?
            .ok_or(DomainError::NotFound)?;
        let secret = key.open(
            me.tenant.id,
            &format!("staff_totp:{}", me.staff.id),
            &sealed,
        )?;
        let code = desk_core::mobile::ascii_digits(form.code.trim());
        let now = chrono::Utc::now().timestamp();
        let step = desk_core::totp::verify(&secret, &code, now, last).ok_or_else(|| {
            DomainError::Validation(FieldErrors::single(
                "code",
                "wrong_code",
                "کد درست نیست؛ کد شش‌رقمی کنونی برنامه را وارد کنید (ساعت گوشی باید درست باشد).",
            ))
        })?;
        staff::use_totp_step(&mut tx, me.staff.id, step, true).await?;
        me.log_in(&mut tx, "password.totp_enabled", json!({}))
            .await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/staff/account?done=totp").into_response(),
        Err(DomainError::Validation(errors)) => {
            let shown = async {
                let setup = pending_totp(&state, &me).await?;
                account_page_with(
                    &state,
                    &me,
                    StatusCode::UNPROCESSABLE_ENTITY,
                    None,
                    Some(&errors),
                    setup,
                )
                .await
            };
            shown
                .await
                .unwrap_or_else(|e| failure(&state, &me.tenant, &e))
        }
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

async fn disable_totp(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<crate::CsrfForm>,
) -> Response {
    let result = async {
        me.csrf_ok(&form.csrf)?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        staff::disable_totp(&mut tx, me.staff.id).await?;
        me.log_in(&mut tx, "password.totp_disabled", json!({}))
            .await?;
        tx.commit().await
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/staff/account?done=sms").into_response(),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

/// A short name for a browser from its `User-Agent`.
fn device_label(agent: &str) -> &'static str {
    let a = agent.to_ascii_lowercase();
    let os = if a.contains("android") {
        "اندروید"
    } else if a.contains("iphone") || a.contains("ipad") {
        "آی‌اواس"
    } else if a.contains("windows") {
        "ویندوز"
    } else if a.contains("mac os") {
        "مک"
    } else if a.contains("linux") {
        "لینوکس"
    } else {
        ""
    };
    match (
        a.contains("firefox"),
        a.contains("edg/"),
        a.contains("chrom"),
        os,
    ) {
        (true, _, _, "اندروید") => "فایرفاکس روی اندروید",
        (true, _, _, "ویندوز") => "فایرفاکس روی ویندوز",
        (true, _, _, _) => "فایرفاکس",
        (_, true, _, _) => "اج",
        (_, _, true, "اندروید") => "کروم روی اندروید",
        (_, _, true, "ویندوز") => "کروم روی ویندوز",
        (_, _, true, "لینوکس") => "کروم روی لینوکس",
        (_, _, true, _) => "کروم",
        (_, _, _, "آی‌اواس") => "سافاری روی آی‌اواس",
        (_, _, _, "مک") => "سافاری روی مک",
        _ => "مرورگر دیگر",
    }
}

#[derive(Debug, Deserialize, Default)]
struct AccountQuery {
    #[serde(default)]
    done: String,
}

async fn show_account(
    State(state): State<WebState>,
    me: StaffSession,
    Query(q): Query<AccountQuery>,
) -> Response {
    let notice = match q.done.as_str() {
        "password" => Some("گذرواژه تازه ثبت شد؛ نشست‌های دیگر شما بسته شد."),
        "revoked" => Some("نشست بسته شد."),
        "totp" => Some("برنامه احراز هویت فعال شد؛ از این پس کد ورود را از آن بخوانید."),
        "sms" => Some("برنامه احراز هویت برداشته شد؛ کد ورود دوباره پیامک می‌شود."),
        "sso" => Some("حساب سازمانی شما پیوند خورد؛ از این پس با دکمه ورود یکپارچه وارد شوید."),
        "sso_off" => Some("پیوند حساب سازمانی برداشته شد؛ با نام کاربری و گذرواژه وارد شوید."),
        _ => None,
    };
    account_page(&state, &me, StatusCode::OK, notice, None)
        .await
        .unwrap_or_else(|e| failure(&state, &me.tenant, &e))
}

#[derive(Debug, Deserialize)]
struct PasswordChange {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    password_confirm: String,
}

async fn change_password(
    State(state): State<WebState>,
    me: StaffSession,
    Form(form): Form<PasswordChange>,
) -> Response {
    let result = async {
        me.csrf_ok(&form.csrf)?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let stored = staff::password_hash(&mut tx, me.staff.id).await?;
        let current = form.current.clone();
        let matches = match stored {
            Some(hash) => {
                tokio::task::spawn_blocking(move || desk_core::password::verify(&current, &hash))
                    .await
                    .unwrap_or(false)
            }
            None => false,
        };
        let mobile = me
            .staff
            .mobile
            .as_deref()
            .map(desk_core::mobile::local_form)
            .unwrap_or_default();
        let checked = desk_core::password::check_new(
            &form.password,
            &form.password_confirm,
            &[&me.staff.username, &mobile],
        );
        let mut errors = match checked {
            Ok(()) => FieldErrors::default(),
            Err(DomainError::Validation(e)) => e,
            Err(e) => return Err(e),
        };
        if !matches {
            errors.push("current", "wrong_password", "گذرواژه کنونی درست نیست.");
        }
        if !errors.0.is_empty() {
            return Err(DomainError::Validation(errors));
        }
        let password = form.password.clone();
        let hash = tokio::task::spawn_blocking(move || desk_core::password::hash(&password))
            .await
            .map_err(|e| DomainError::Internal(e.into()))??;
        staff::set_password(&mut tx, me.staff.id, &hash).await?;
        staff::end_sessions(&mut tx, me.staff.id, Some(&me.token)).await?;
        me.log_in(&mut tx, "password.change", json!({})).await?;
        tx.commit().await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/staff/account?done=password").into_response(),
        Err(DomainError::Validation(errors)) => account_page(
            &state,
            &me,
            StatusCode::UNPROCESSABLE_ENTITY,
            None,
            Some(&errors),
        )
        .await
        .unwrap_or_else(|e| failure(&state, &me.tenant, &e)),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

async fn revoke_session(
    State(state): State<WebState>,
    me: StaffSession,
    Path(id): Path<String>,
    Form(form): Form<crate::CsrfForm>,
) -> Response {
    let result = async {
        me.csrf_ok(&form.csrf)?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        if !staff::revoke_session(&mut tx, me.staff.id, &id).await? {
            return Err(DomainError::NotFound);
        }
        me.log_in(&mut tx, "session.revoke", json!({})).await?;
        tx.commit().await?;
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Redirect::to("/staff/account?done=revoked").into_response(),
        Err(e) => failure(&state, &me.tenant, &e),
    }
}

// ----- the activity log -----

/// The kinds of lines, as the filter offers them.
const ACTION_GROUPS: [(&str, &str); 6] = [
    ("sign_in", "ورود و ورودهای ناموفق"),
    ("team", "تیم (دعوت، نقش، غیرفعال‌سازی)"),
    ("password", "گذرواژه"),
    ("request", "اقدام روی درخواست‌ها"),
    ("settings", "تغییر تنظیمات"),
    ("export", "خروجی‌ها"),
];

fn action_label(action: &str) -> String {
    let label = match action {
        "sign_in" => "ورود",
        "sign_in.failed" => "ورود ناموفق",
        "team.invite" => "دعوت عضو تازه",
        "team.joined" => "پذیرش دعوت‌نامه",
        "team.change" => "تغییر نقش یا واحد",
        "team.deactivate" => "غیرفعال‌سازی عضو",
        "team.reactivate" => "فعال‌سازی دوباره عضو",
        "team.reinvite" => "ارسال دوباره دعوت‌نامه",
        "team.totp_removed" => "برداشتن برنامه احراز هویت عضو",
        "team.sso_unlinked" => "برداشتن پیوند حساب سازمانی عضو",
        "account.sso_linked" => "پیوند حساب سازمانی",
        "account.sso_unlinked" => "برداشتن پیوند حساب سازمانی",
        "password.change" => "تغییر گذرواژه",
        "password.reset" => "بازنشانی گذرواژه",
        "password.reset_requested" => "درخواست بازنشانی گذرواژه",
        "password.totp_enabled" => "فعال‌سازی برنامه احراز هویت",
        "password.totp_disabled" => "برداشتن برنامه احراز هویت",
        "session.revoke" => "بستن نشست",
        "request.act" => "اقدام روی درخواست",
        "request.assign" => "واگذاری درخواست",
        "export.activity" => "خروجی گزارش فعالیت",
        "export.report" => "خروجی گزارش",
        other if other.starts_with("settings.") => "تغییر تنظیمات",
        other => other,
    };
    label.to_owned()
}

#[derive(Debug, Deserialize, Default)]
struct ActivityQuery {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    actor: String,
    /// Jalali `1405/09/01`.
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    before: String,
}

const ACTIVITY_PAGE: i64 = 100;

/// The filter a query names, or the field errors of its dates.
fn activity_filter(q: &ActivityQuery) -> Result<staff::ActivityFilter, FieldErrors> {
    let mut errors = FieldErrors::default();
    let mut day = |raw: &str, field: &str| -> Option<chrono::NaiveDate> {
        let raw = desk_core::mobile::ascii_digits(raw.trim());
        if raw.is_empty() {
            return None;
        }
        match JalaliDate::parse(&raw)
            .ok()
            .and_then(JalaliDate::to_gregorian)
        {
            Some(d) => Some(d),
            None => {
                errors.push(field, "date", "تاریخ را به شکل ۱۴۰۵/۰۹/۰۱ بنویسید.");
                None
            }
        }
    };
    let from = day(&q.from, "from");
    let to = day(&q.to, "to");
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        errors.push("to", "date_order", "«تا تاریخ» پیش از «از تاریخ» است.");
    }
    if !errors.0.is_empty() {
        return Err(errors);
    }
    // Days start at midnight in Iran (UTC+03:30).
    let start = |d: chrono::NaiveDate| desk_core::calendar::start_of_iran_day(d);
    Ok(staff::ActivityFilter {
        action_prefix: ACTION_GROUPS
            .iter()
            .find(|(k, _)| *k == q.kind)
            .map(|(k, _)| (*k).to_owned()),
        actor: Some(q.actor.trim().to_lowercase()).filter(|a| !a.is_empty()),
        from: from.map(start),
        until: to.map(|d| start(d) + chrono::Duration::days(1)),
        before_id: q.before.parse().ok(),
    })
}

/// A line's details as people read them: Persian names, role and unit names, Persian digits.
fn detail_text(
    detail: &Value,
    units: &[desk_db::requests::Unit],
    members: &[staff::Staff],
) -> String {
    let workflow = desk_core::workflow::Workflow::default_municipal();
    let Some(map) = detail.as_object() else {
        return String::new();
    };
    map.iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| {
            let label = match k.as_str() {
                "member" => "عضو",
                "role" => "نقش",
                "unit_id" => "واحد",
                "tracking" => "کد رهگیری",
                "action" => "اقدام",
                "requests_returned" => "درخواست‌های بازگشته به صف",
                "to" => "به",
                "lines" => "سطرها",
                "step" => "مرحله",
                other => other,
            };
            let value = match (k.as_str(), v) {
                ("role", Value::String(r)) => {
                    Role::tenant_role(r).map_or(r.clone(), |r| r.label_fa().to_owned())
                }
                ("action", Value::String(a)) => workflow
                    .transitions
                    .iter()
                    .find(|t| &t.action == a)
                    .map_or_else(|| a.clone(), |t| t.label_fa.clone()),
                ("to", Value::Number(n)) => members
                    .iter()
                    .find(|m| Some(m.id) == n.as_i64())
                    .map_or_else(|| n.to_string(), |m| m.display_name.clone()),
                ("unit_id", Value::Number(n)) => units
                    .iter()
                    .find(|u| Some(u.id) == n.as_i64())
                    .map_or_else(|| n.to_string(), |u| u.name.clone()),
                (_, Value::String(s)) => s.clone(),
                (_, other) => other.to_string(),
            };
            format!("{label}: {}", persian_digits(&value))
        })
        .collect::<Vec<_>>()
        .join("، ")
}

async fn show_activity(
    State(state): State<WebState>,
    me: StaffSession,
    Query(q): Query<ActivityQuery>,
) -> Response {
    let result = async {
        me.require_on(&state, Resource::Activity, Action::Read).await?;
        let (filter, errors) = match activity_filter(&q) {
            Ok(f) => (f, None),
            Err(e) => (staff::ActivityFilter::default(), Some(e)),
        };
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let mut rows = staff::activity(&mut tx, &filter, ACTIVITY_PAGE + 1).await?;
        let units = desk_db::requests::units(&mut tx).await?;
        let members = staff::list_staff(&mut tx).await?;
        tx.commit().await?;
        let more = rows.len() > ACTIVITY_PAGE as usize;
        rows.truncate(ACTIVITY_PAGE as usize);
        let next = more.then(|| rows.last().map(|r| r.id)).flatten();
        let lines: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "at": jalali_moment(r.at), "actor": r.actor, "action": action_label(&r.action),
                    "failed": r.action.ends_with(".failed"),
                    "detail": detail_text(&r.detail, &units, &members), "address": r.address,
                })
            })
            .collect();
        let query = |before: Option<i64>| {
            let mut q2 = form_urlencoded::Serializer::new(String::new());
            q2.append_pair("kind", &q.kind)
                .append_pair("actor", &q.actor)
                .append_pair("from", &q.from)
                .append_pair("to", &q.to);
            if let Some(b) = before {
                q2.append_pair("before", &b.to_string());
            }
            q2.finish()
        };
        Ok::<_, DomainError>(render(
            &state,
            if errors.is_some() {
                StatusCode::UNPROCESSABLE_ENTITY
            } else {
                StatusCode::OK
            },
            "staff_activity.html.j2",
            json!({
                "tenant": TenantView::of(&me.tenant),
                "lines": lines,
                "kinds": ACTION_GROUPS.iter().map(|(k, l)| json!({ "key": k, "label": l })).collect::<Vec<_>>(),
                "q": { "kind": q.kind, "actor": q.actor, "from": q.from, "to": q.to },
                "csv": format!("/staff/activity.csv?{}", query(None)),
                "next": next.map(|b| format!("/staff/activity?{}", query(Some(b)))),
                "errors": errors.map(|e| e.0),
            }),
        ))
    }
    .await;
    result.unwrap_or_else(|e| failure(&state, &me.tenant, &e))
}

async fn activity_csv(
    State(state): State<WebState>,
    me: StaffSession,
    Query(q): Query<ActivityQuery>,
) -> Response {
    let result = async {
        me.require_on(&state, Resource::Activity, Action::Read)
            .await?;
        let filter = activity_filter(&q).map_err(DomainError::Validation)?;
        let mut tx = state.platform.tenant_db().begin(me.tenant.scope()).await?;
        let rows = staff::activity(&mut tx, &filter, 50_000).await?;
        let units = desk_db::requests::units(&mut tx).await?;
        let members = staff::list_staff(&mut tx).await?;
        me.log_in(&mut tx, "export.activity", json!({ "lines": rows.len() }))
            .await?;
        tx.commit().await?;
        let mut out = String::from("\u{feff}زمان,کاربر,کار,جزئیات,نشانی\r\n");
        for r in &rows {
            let line = [
                jalali_moment(r.at),
                r.actor.clone(),
                action_label(&r.action),
                detail_text(&r.detail, &units, &members),
                r.address.clone().unwrap_or_default(),
            ]
            .iter()
            .map(|c| crate::csv::field(c))
            .collect::<Vec<_>>()
            .join(",");
            out.push_str(&line);
            out.push_str("\r\n");
        }
        Ok::<_, DomainError>(out)
    }
    .await;
    match result {
        Ok(csv) => {
            let mut res = csv.into_response();
            let headers = res.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            headers.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"activity.csv\""),
            );
            res
        }
        Err(e) => failure(&state, &me.tenant, &e),
    }
}
