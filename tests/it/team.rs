//! The municipality's staff team: the admin invites members by SMS, they set a password and
//! sign in every day with password + SMS code; roles reach only what they should (desk clerks
//! their unit and the intake); deactivation ends sessions at once; the activity log records it
//! all; nothing of one municipality's team works on another's host.

use crate::surveys::filed;
use axum::http::StatusCode;
use desk_db::requests::Channel;
use desk_tests::{TestApp, TestResponse};
use std::time::Duration;

/// A browser's view of one host: its cookies, and POSTs that carry `Origin`.
pub(crate) struct Browser<'a> {
    app: &'a TestApp,
    host: &'a str,
    pub(crate) cookies: Vec<(String, String)>,
}

impl<'a> Browser<'a> {
    pub(crate) fn new(app: &'a TestApp, host: &'a str) -> Self {
        Self {
            app,
            host,
            cookies: Vec::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep(&mut self, res: &TestResponse) {
        for c in &res.cookies {
            let (k, v) = c.split_once('=').unwrap();
            self.cookies.retain(|(n, _)| n != k);
            self.cookies.push((k.to_owned(), v.to_owned()));
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> TestResponse {
        let cookie = self.cookie_header();
        let res = self
            .app
            .send("GET", self.host, path, None, &[("cookie", &cookie)])
            .await;
        self.keep(&res);
        res
    }

    pub(crate) async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> TestResponse {
        let body = fields
            .iter()
            .map(|(k, v)| {
                format!(
                    "{}={}",
                    k,
                    form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        let cookie = self.cookie_header();
        let origin = format!("http://{}", self.host);
        let res = self
            .app
            .send(
                "POST",
                self.host,
                path,
                Some(&body),
                &[
                    ("content-type", "application/x-www-form-urlencoded"),
                    ("cookie", &cookie),
                    ("origin", &origin),
                    ("user-agent", "Mozilla/5.0 (Linux; Android 14) Chrome/130"),
                ],
            )
            .await;
        self.keep(&res);
        res
    }

    /// Signs in with password and the SMS code; the final response.
    async fn sign_in(
        &mut self,
        outbox: &desk_jobs::fake_sms::Outbox,
        username: &str,
        password: &str,
        mobile_tail: &str,
    ) -> TestResponse {
        let before = outbox.len();
        let page = self.get("/staff/sign-in").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let res = self
            .post(
                "/staff/sign-in",
                &[
                    ("username", username),
                    ("password", password),
                    ("csrf", &page.csrf()),
                ],
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
        assert_eq!(res.location.as_deref(), Some("/staff/sign-in/code"));
        let page = self.get("/staff/sign-in/code").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        // The code as the member's phone got it (the workers send it).
        let mut code = String::new();
        for _ in 0..300 {
            if let Some(m) = outbox.messages()[before..]
                .iter()
                .rev()
                .find(|m| m.to.ends_with(mobile_tail))
            {
                code = m
                    .text
                    .split(|c: char| !c.is_ascii_digit())
                    .find(|w| w.len() == 6)
                    .unwrap_or_default()
                    .to_owned();
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(code.len(), 6, "the code SMS arrived");
        self.post(
            "/staff/sign-in/code",
            &[("code", &code), ("csrf", &page.csrf())],
        )
        .await
    }
}

async fn unit(app: &TestApp, tenant: &desk_db::Tenant, name: &str) -> i64 {
    let mut tx = app.tx(tenant).await;
    let u = desk_db::requests::add_unit(&mut tx, name).await.unwrap();
    tx.commit().await.unwrap();
    u.id
}

async fn request_in(app: &TestApp, tenant: &desk_db::Tenant, unit: Option<i64>) -> String {
    let today = desk_core::calendar::today_in_iran();
    let r = filed(
        app,
        tenant,
        "+989121112345",
        Channel::Web,
        (today, today),
        None,
    )
    .await;
    let mut tx = app.tx(tenant).await;
    sqlx::query("update requests set unit_id = $1 where id = $2")
        .bind(unit)
        .bind(r.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    r.tracking_code
}

/// The invitation path in the newest SMS the fake provider took for `mobile_tail`.
async fn invitation_link(outbox: &desk_jobs::fake_sms::Outbox, mobile_tail: &str) -> String {
    for _ in 0..300 {
        let found = outbox
            .messages()
            .into_iter()
            .rev()
            .find(|m| m.to.ends_with(mobile_tail) && m.text.contains("/staff/welcome/"));
        if let Some(m) = found {
            let token: String = m
                .text
                .split_once("/staff/welcome/")
                .unwrap()
                .1
                .chars()
                .take_while(char::is_ascii_alphanumeric)
                .collect();
            return format!("/staff/welcome/{token}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no invitation SMS to …{mobile_tail}");
}

#[tokio::test]
async fn an_admin_builds_a_team_that_signs_in_daily_and_reaches_only_its_unit() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    app.ensure_sms_account(&alpha).await;
    app.ensure_sms_account(&beta).await;
    let (fake, outbox) = desk_jobs::fake_sms::spawn().await.unwrap();
    let workers = app.db.start_workers(&fake).await;
    let unit_a = unit(&app, &alpha, "شهرسازی").await;
    let unit_b = unit(&app, &alpha, "درآمد").await;
    let req_a = request_in(&app, &alpha, Some(unit_a)).await;
    let req_b = request_in(&app, &alpha, Some(unit_b)).await;
    let req_intake = request_in(&app, &alpha, None).await;

    // The admin (in by the onboarding link) invites a clerk of unit A and a head of unit B.
    let admin_cookie = app.staff_sign_in(&alpha, "admin-alpha").await;
    let mut admin = Browser::new(&app, "alpha.test");
    admin.cookies.push((
        "desk_staff_session".into(),
        admin_cookie.split_once('=').unwrap().1.into(),
    ));
    let team = admin.get("/staff/team").await;
    assert_eq!(team.status, StatusCode::OK, "{}", team.text);
    let csrf = team.csrf();
    let a = unit_a.to_string();
    let b = unit_b.to_string();
    let invited = admin
        .post(
            "/staff/team",
            &[
                ("full_name", "زهرا احمدی"),
                ("mobile", "۰۹۱۲ ۱۱۱ ۲۲۳۳"),
                ("username", "Clerk.A"),
                ("role", "desk_staff"),
                ("unit_id", &a),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(invited.status, StatusCode::SEE_OTHER, "{}", invited.text);
    let invited = admin
        .post(
            "/staff/team",
            &[
                ("full_name", "رضا کریمی"),
                ("mobile", "09124445566"),
                ("username", "head.b"),
                ("role", "department_head"),
                ("unit_id", &b),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(invited.status, StatusCode::SEE_OTHER, "{}", invited.text);

    // Bad input: a clear Persian error for each field, nothing half-made.
    let members_before = app.scalar(&alpha, "select count(*) from staff").await;
    for (fields, code) in [
        (
            vec![
                ("full_name", "تکراری"),
                ("mobile", "09120000001"),
                ("username", "clerk.a"),
                ("role", "desk_staff"),
            ],
            "این نام کاربری پیش‌تر گرفته شده است.",
        ),
        (
            vec![
                ("full_name", "تکراری"),
                ("mobile", "09121112233"),
                ("username", "other"),
                ("role", "desk_staff"),
            ],
            "این شماره همراه برای یکی دیگر از کارکنان ثبت شده است.",
        ),
        (
            vec![
                ("full_name", "بد"),
                ("mobile", "12345"),
                ("username", "bad.mobile"),
                ("role", "desk_staff"),
            ],
            "mobile",
        ),
        (
            vec![
                ("full_name", "نقش"),
                ("mobile", "09120000002"),
                ("username", "root.role"),
                ("role", "platform_admin"),
            ],
            "یکی از نقش‌های فهرست را برگزینید.",
        ),
        (
            vec![
                ("full_name", "نقش"),
                ("mobile", "09120000003"),
                ("username", "op"),
                ("role", "province_operator:4"),
            ],
            "یکی از نقش‌های فهرست را برگزینید.",
        ),
    ] {
        let mut fields = fields;
        fields.push(("csrf", &csrf));
        let res = admin.post("/staff/team", &fields).await;
        assert_eq!(
            res.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{code}: {}",
            res.text
        );
        assert!(res.text.contains("error-summary"), "{}", res.text);
        if code != "mobile" {
            assert!(res.text.contains(code), "{code}: {}", res.text);
        }
    }
    assert_eq!(
        app.scalar(&alpha, "select count(*) from staff").await,
        members_before
    );

    // The clerk gets the invitation by SMS, sets a password (a weak one is refused first).
    let link = invitation_link(&outbox, "9121112233").await;
    let mut clerk = Browser::new(&app, "alpha.test");
    // The link is worthless on beta's host.
    assert_eq!(
        Browser::new(&app, "beta.test").get(&link).await.status,
        StatusCode::GONE
    );
    let welcome = clerk.get(&link).await;
    assert_eq!(welcome.status, StatusCode::OK, "{}", welcome.text);
    assert!(welcome.text.contains("clerk.a"));
    let weak = clerk
        .post(
            &link,
            &[
                ("password", "password123"),
                ("password_confirm", "password123"),
                ("csrf", &welcome.csrf()),
            ],
        )
        .await;
    assert_eq!(
        weak.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        weak.text
    );
    assert!(weak.text.contains("پرکاربرد"), "{}", weak.text);
    const PASSWORD: &str = "سیب-سرخ-پاییز-۱۴۰۵";
    let joined = clerk
        .post(
            &link,
            &[
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("csrf", &welcome.csrf()),
            ],
        )
        .await;
    assert_eq!(joined.status, StatusCode::SEE_OTHER, "{}", joined.text);
    // Used once.
    assert_eq!(
        Browser::new(&app, "alpha.test").get(&link).await.status,
        StatusCode::GONE
    );

    // The head's SMS went astray: the admin sends a new invitation; the old link stops.
    let head_link = invitation_link(&outbox, "9124445566").await;
    let head_id = app
        .scalar(&alpha, "select id from staff where username = 'head.b'")
        .await;
    let team = admin.get("/staff/team").await;
    let resent = admin
        .post(
            &format!("/staff/team/{head_id}/invite"),
            &[("csrf", &team.csrf())],
        )
        .await;
    assert_eq!(resent.status, StatusCode::SEE_OTHER, "{}", resent.text);
    let mut fresh = head_link.clone();
    for _ in 0..300 {
        fresh = invitation_link(&outbox, "9124445566").await;
        if fresh != head_link {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(fresh, head_link, "a second invitation SMS went out");
    assert_eq!(
        Browser::new(&app, "alpha.test")
            .get(&head_link)
            .await
            .status,
        StatusCode::GONE
    );
    assert_eq!(
        Browser::new(&app, "alpha.test").get(&fresh).await.status,
        StatusCode::OK
    );

    // Signs out; the next day, password + SMS code.
    let home = clerk.get("/staff").await;
    assert_eq!(home.status, StatusCode::OK);
    clerk
        .post("/staff/sign-out", &[("csrf", &home.csrf())])
        .await;
    assert_eq!(
        clerk.get("/staff/inbox").await.status,
        StatusCode::UNAUTHORIZED
    );
    let mut clerk = Browser::new(&app, "alpha.test");
    let signed = clerk
        .sign_in(&outbox, "clerk.a", PASSWORD, "9121112233")
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.text);
    assert_eq!(signed.location.as_deref(), Some("/staff"));
    assert!(
        outbox
            .messages()
            .iter()
            .any(|m| m.to.ends_with("9121112233")
                && m.text.chars().filter(char::is_ascii_digit).count() >= 6)
    );

    // Works a unit-A request and the intake; refused (403, Persian page) on unit B and settings.
    let inbox = clerk.get("/staff/inbox").await;
    assert_eq!(inbox.status, StatusCode::OK);
    assert!(
        inbox
            .text
            .contains(&desk_core::text::persian_digits(&req_a))
            || inbox.text.contains(&req_a)
    );
    assert!(
        !inbox.text.contains(&req_b)
            && !inbox
                .text
                .contains(&desk_core::text::persian_digits(&req_b)),
        "unit B is not listed"
    );
    let page = clerk.get(&format!("/staff/requests/{req_a}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let acted = clerk
        .post(
            &format!("/staff/requests/{req_a}/act"),
            &[("action", "accept"), ("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(acted.status, StatusCode::SEE_OTHER, "{}", acted.text);
    assert_eq!(
        clerk
            .get(&format!("/staff/requests/{req_intake}"))
            .await
            .status,
        StatusCode::OK
    );
    let refused = clerk.get(&format!("/staff/requests/{req_b}")).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.text.contains("اجازه"), "{}", refused.text);
    let refused = clerk
        .post(
            &format!("/staff/requests/{req_b}/act"),
            &[("action", "accept"), ("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    for path in ["/staff/settings", "/staff/team", "/staff/activity"] {
        assert_eq!(
            clerk.get(path).await.status,
            StatusCode::FORBIDDEN,
            "{path}"
        );
    }
    // Role escalation by form tampering: the clerk's own csrf on the admin's forms.
    let me_id = app
        .scalar(&alpha, "select id from staff where username = 'clerk.a'")
        .await;
    let tamper = clerk
        .post(
            &format!("/staff/team/{me_id}"),
            &[
                ("role", "tenant_admin"),
                ("unit_id", ""),
                ("csrf", &page.csrf()),
            ],
        )
        .await;
    assert_eq!(tamper.status, StatusCode::FORBIDDEN);
    // A clerk may claim, not give work to others.
    let head_id = app
        .scalar(&alpha, "select id from staff where username = 'head.b'")
        .await;
    let page = clerk.get(&format!("/staff/requests/{req_intake}")).await;
    let given = clerk
        .post(
            &format!("/staff/requests/{req_intake}/assign"),
            &[("staff_id", &head_id.to_string()), ("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(given.status, StatusCode::FORBIDDEN);
    let claimed = clerk
        .post(
            &format!("/staff/requests/{req_intake}/assign"),
            &[("staff_id", ""), ("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(claimed.status, StatusCode::SEE_OTHER, "{}", claimed.text);

    // The clerk moves to an authenticator app: the code comes from it, not by SMS.
    let account = clerk.get("/staff/account").await;
    let setup = clerk
        .post("/staff/account/totp", &[("csrf", &account.csrf())])
        .await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.text);
    let at = setup.text.find("id=\"totp-key\"").unwrap();
    let key_start = at + setup.text[at..].find('>').unwrap() + 1;
    let key: String = setup.text[key_start..]
        .chars()
        .take_while(|c| *c != '<')
        .collect();
    let secret = desk_core::totp::from_base32(&key).unwrap();
    let now = chrono::Utc::now().timestamp();
    let wrong = clerk
        .post(
            "/staff/account/totp/confirm",
            &[("code", "000000"), ("csrf", &account.csrf())],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        wrong.text.contains(&key),
        "a wrong code keeps the same key on the page"
    );
    let code = desk_core::totp::code_at(&secret, now).unwrap();
    let on = clerk
        .post(
            "/staff/account/totp/confirm",
            &[("code", &code), ("csrf", &account.csrf())],
        )
        .await;
    assert_eq!(on.status, StatusCode::SEE_OTHER, "{}", on.text);
    let to_clerk = |o: &desk_jobs::fake_sms::Outbox| {
        o.messages()
            .iter()
            .filter(|m| m.to.ends_with("9121112233"))
            .count()
    };
    let sms_before = to_clerk(&outbox);
    let mut app_user = Browser::new(&app, "alpha.test");
    let page = app_user.get("/staff/sign-in").await;
    let res = app_user
        .post(
            "/staff/sign-in",
            &[
                ("username", "clerk.a"),
                ("password", PASSWORD),
                ("csrf", &page.csrf()),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let page = app_user.get("/staff/sign-in/code").await;
    assert!(page.text.contains("برنامه احراز هویت"), "{}", page.text);
    // The code just used to enable the app does not work twice; the next one does.
    let replay = app_user
        .post(
            "/staff/sign-in/code",
            &[("code", &code), ("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(replay.status, StatusCode::UNPROCESSABLE_ENTITY);
    let next = desk_core::totp::code_at(&secret, now + 30).unwrap();
    let res = app_user
        .post(
            "/staff/sign-in/code",
            &[("code", &next), ("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        to_clerk(&outbox),
        sms_before,
        "no SMS for a member with an app"
    );

    // A wrong code is refused; after too many, the challenge is gone.
    let mut stranger = Browser::new(&app, "alpha.test");
    let page = stranger.get("/staff/sign-in").await;
    let res = stranger
        .post(
            "/staff/sign-in",
            &[
                ("username", "clerk.a"),
                ("password", "wrong-password-1"),
                ("csrf", &page.csrf()),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(res.text.contains("نام کاربری یا گذرواژه درست نیست"));

    // Login CSRF: a sibling municipality's page cannot post the sign-in form.
    let mut forged = Browser::new(&app, "alpha.test");
    let page = forged.get("/staff/sign-in").await;
    let cookie = forged.cookie_header();
    let res = app
        .send(
            "POST",
            "alpha.test",
            "/staff/sign-in",
            Some(&format!("username=clerk.a&password=x&csrf={}", page.csrf())),
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("cookie", &cookie),
                ("origin", "http://beta.test"),
                ("sec-fetch-site", "same-site"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);

    // The admin deactivates the clerk: the clerk's open session stops on its next click, and
    // the request they claimed goes back to the queue with a note.
    let team = admin.get("/staff/team").await;
    assert!(team.text.contains("clerk.a") && team.text.contains("کارشناس میز خدمت"));
    let off = admin
        .post(
            &format!("/staff/team/{me_id}/deactivate"),
            &[("csrf", &team.csrf())],
        )
        .await;
    assert_eq!(off.status, StatusCode::SEE_OTHER, "{}", off.text);
    assert_eq!(
        clerk.get("/staff/inbox").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.scalar(
            &alpha,
            &format!("select count(*) from requests where assignee_id = {me_id}")
        )
        .await,
        0
    );
    assert_eq!(
        app.scalar(
            &alpha,
            "select count(*) from request_events where action = 'unassign'"
        )
        .await,
        1
    );
    // ... and cannot sign in again: with the right password they learn why, nobody else does.
    let mut again = Browser::new(&app, "alpha.test");
    let page = again.get("/staff/sign-in").await;
    let res = again
        .post(
            "/staff/sign-in",
            &[
                ("username", "clerk.a"),
                ("password", PASSWORD),
                ("csrf", &page.csrf()),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    assert!(res.text.contains("غیرفعال"), "{}", res.text);
    assert!(
        res.cookies
            .iter()
            .all(|c| !c.starts_with("desk_staff_challenge=") || c.ends_with('='))
    );
    let res = again
        .post(
            "/staff/sign-in",
            &[
                ("username", "clerk.a"),
                ("password", "not-the-password-1"),
                ("csrf", &page.csrf()),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    assert!(!res.text.contains("غیرفعال"));

    // The last active admin can be neither demoted nor deactivated.
    let admin_id = app
        .scalar(
            &alpha,
            "select id from staff where username = 'admin-alpha'",
        )
        .await;
    let res = admin
        .post(
            &format!("/staff/team/{admin_id}"),
            &[
                ("role", "desk_staff"),
                ("unit_id", ""),
                ("csrf", &team.csrf()),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.text);
    let res = admin
        .post(
            &format!("/staff/team/{admin_id}/deactivate"),
            &[("csrf", &team.csrf())],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.text);

    // The settings' unit table keeps a department head in a unit too.
    let head_b = app
        .scalar(&alpha, "select id from staff where username = 'head.b'")
        .await
        .to_string();
    let csrf = admin.get("/staff/settings").await.csrf();
    let res = admin
        .post(
            "/staff/settings/staff-unit",
            &[("staff_id", &head_b), ("unit_id", ""), ("csrf", &csrf)],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", res.text);
    assert!(res.text.contains("رئیس واحد باید واحدی داشته باشد"));
    assert_eq!(
        app.scalar(
            &alpha,
            &format!("select count(*) from staff where id = {head_b} and unit_id is not null")
        )
        .await,
        1
    );

    // Another municipality's admin reaches none of alpha's members.
    let beta_admin = app.staff_sign_in(&beta, "admin-beta").await;
    let beta_team = app.get_as(&beta_admin, "beta.test", "/staff/team").await;
    assert!(!beta_team.text.contains("clerk.a"));
    let res = app
        .post_form(
            Some(&beta_admin),
            "beta.test",
            &format!("/staff/team/{me_id}/reactivate"),
            &[("csrf", &beta_team.csrf())],
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "{}", res.text);
    // Alpha's admin session is worthless on beta's host.
    assert_eq!(
        app.get_as(&admin_cookie, "beta.test", "/staff/team")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    // The activity log has it all, and refuses changes.
    let log = admin.get("/staff/activity").await;
    assert_eq!(log.status, StatusCode::OK);
    for line in [
        "دعوت عضو تازه",
        "پذیرش دعوت‌نامه",
        "ورود ناموفق",
        "غیرفعال‌سازی عضو",
        "اقدام روی درخواست",
    ] {
        assert!(log.text.contains(line), "{line}");
    }
    let csv = admin.get("/staff/activity.csv?kind=team").await;
    assert!(csv.text.starts_with('\u{feff}') && csv.text.contains("clerk.a"));
    let mut tx = app.tx(&alpha).await;
    assert!(
        sqlx::query("delete from audit_log")
            .execute(&mut *tx)
            .await
            .is_err(),
        "append-only"
    );
    drop(tx);

    workers.stop().await;
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

/// Role × action × own unit / other unit, as the pages enforce it.
#[tokio::test]
async fn roles_reach_what_the_matrix_says_and_nothing_more() {
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    let unit_a = unit(&app, &alpha, "شهرسازی").await;
    let unit_b = unit(&app, &alpha, "درآمد").await;
    let mut ids = std::collections::HashMap::new();
    let mut tx = app.tx(&alpha).await;
    for (username, role, unit, mobile) in [
        ("head.a", "department_head", Some(unit_a), "+989120000011"),
        ("clerk.a", "desk_staff", Some(unit_a), "+989120000012"),
        ("auditor", "auditor", None, "+989120000013"),
        ("other.a", "desk_staff", Some(unit_a), "+989120000014"),
    ] {
        let m = desk_db::staff::insert_staff(&mut tx, username, "عضو", Some(mobile), false)
            .await
            .unwrap();
        desk_db::staff::update_member(&mut tx, m.id, false, unit)
            .await
            .unwrap();
        tx.set_staff_role(m.id, role).await.unwrap();
        ids.insert(username, m.id);
    }
    tx.commit().await.unwrap();
    let app = app.rebuild().await;
    // Work is given to a clerk of unit A who is none of the members signing in.
    let clerk_id = ids["other.a"].to_string();

    // Expected statuses: read A, read B, read intake, act A, act B, assign A, assign B,
    // settings, team, activity, reports.
    let ok = StatusCode::OK;
    let done = StatusCode::SEE_OTHER;
    let no = StatusCode::FORBIDDEN;
    let matrix = [
        (
            "admin-alpha",
            [ok, ok, ok, done, done, done, done, ok, ok, ok, ok],
        ),
        ("head.a", [ok, no, ok, done, no, done, no, no, no, no, ok]),
        ("clerk.a", [ok, no, ok, done, no, no, no, no, no, no, no]),
        ("auditor", [ok, ok, ok, no, no, no, no, no, no, ok, ok]),
    ];
    for (username, want) in matrix {
        let cookie = app.staff_sign_in(&alpha, username).await;
        let csrf = app.get_as(&cookie, "alpha.test", "/staff").await.csrf();
        let req_a = request_in(&app, &alpha, Some(unit_a)).await;
        let req_b = request_in(&app, &alpha, Some(unit_b)).await;
        let req_i = request_in(&app, &alpha, None).await;
        let read = |t: String| {
            let (app, cookie) = (&app, &cookie);
            async move {
                app.get_as(cookie, "alpha.test", &format!("/staff/requests/{t}"))
                    .await
                    .status
            }
        };
        let post = |path: String, fields: Vec<(&'static str, String)>| {
            let (app, cookie, csrf) = (&app, &cookie, &csrf);
            async move {
                let mut all: Vec<(&str, &str)> =
                    fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                all.push(("csrf", csrf));
                app.post_form(Some(cookie), "alpha.test", &path, &all)
                    .await
                    .status
            }
        };
        let got = [
            read(req_a.clone()).await,
            read(req_b.clone()).await,
            read(req_i.clone()).await,
            post(
                format!("/staff/requests/{req_a}/act"),
                vec![("action", "accept".into())],
            )
            .await,
            post(
                format!("/staff/requests/{req_b}/act"),
                vec![("action", "accept".into())],
            )
            .await,
            post(
                format!(
                    "/staff/requests/{}/assign",
                    request_in(&app, &alpha, Some(unit_a)).await
                ),
                vec![("staff_id", clerk_id.clone())],
            )
            .await,
            post(
                format!(
                    "/staff/requests/{}/assign",
                    request_in(&app, &alpha, Some(unit_b)).await
                ),
                vec![("staff_id", clerk_id.clone())],
            )
            .await,
            app.get_as(&cookie, "alpha.test", "/staff/settings")
                .await
                .status,
            app.get_as(&cookie, "alpha.test", "/staff/team")
                .await
                .status,
            app.get_as(&cookie, "alpha.test", "/staff/activity")
                .await
                .status,
            app.get_as(&cookie, "alpha.test", "/staff/reports")
                .await
                .status,
        ];
        assert_eq!(
            got, want,
            "{username}: read A/B/intake, act A/B, assign A/B, settings, team, activity, reports"
        );
    }
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

/// The newest SMS to a number ending in `tail` that matches `pred`, after `skip` messages.
async fn sms_to(
    outbox: &desk_jobs::fake_sms::Outbox,
    tail: &str,
    skip: usize,
    pred: impl Fn(&str) -> bool,
) -> String {
    for _ in 0..300 {
        if let Some(m) = outbox.messages()[skip..]
            .iter()
            .rev()
            .find(|m| m.to.ends_with(tail) && pred(&m.text))
        {
            return m.text.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no SMS to …{tail}");
}

/// A head needs a unit; a member deactivated before joining gets a fresh invitation when
/// reactivated; a forgotten password is reset by an SMS code that says what it is for.
#[tokio::test]
async fn stuck_invitations_and_forgotten_passwords_have_a_way_out() {
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    app.ensure_sms_account(&alpha).await;
    let (fake, outbox) = desk_jobs::fake_sms::spawn().await.unwrap();
    let workers = app.db.start_workers(&fake).await;
    let admin_cookie = app.staff_sign_in(&alpha, "admin-alpha").await;
    let mut admin = Browser::new(&app, "alpha.test");
    admin.cookies.push((
        "desk_staff_session".into(),
        admin_cookie.split_once('=').unwrap().1.into(),
    ));
    let csrf = admin.get("/staff/team").await.csrf();
    let res = admin
        .post(
            "/staff/team",
            &[
                ("full_name", "رئیس"),
                ("mobile", "09127770001"),
                ("username", "head.nounit"),
                ("role", "department_head"),
                ("unit_id", ""),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.text.contains("رئیس واحد باید واحدی داشته باشد"),
        "{}",
        res.text
    );

    // Invited, deactivated before joining, reactivated: a fresh link; the old one is dead.
    let res = admin
        .post(
            "/staff/team",
            &[
                ("full_name", "بازرس"),
                ("mobile", "09127770002"),
                ("username", "auditor.x"),
                ("role", "auditor"),
                ("unit_id", ""),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    assert!(res.location.unwrap().contains("who=auditor.x"));
    let first = invitation_link(&outbox, "9127770002").await;
    let id = app
        .scalar(&alpha, "select id from staff where username = 'auditor.x'")
        .await;
    let off = admin
        .post(&format!("/staff/team/{id}/deactivate"), &[("csrf", &csrf)])
        .await;
    assert_eq!(off.status, StatusCode::SEE_OTHER, "{}", off.text);
    let seen = outbox.len();
    let on = admin
        .post(&format!("/staff/team/{id}/reactivate"), &[("csrf", &csrf)])
        .await;
    assert_eq!(on.status, StatusCode::SEE_OTHER, "{}", on.text);
    let text = sms_to(&outbox, "9127770002", seen, |t| {
        t.contains("/staff/welcome/")
    })
    .await;
    assert!(
        !text.contains(first.trim_start_matches("/staff/welcome/")),
        "a new link"
    );
    assert_eq!(
        Browser::new(&app, "alpha.test").get(&first).await.status,
        StatusCode::GONE
    );

    // A member forgets their password: the SMS says it is a reset, the code sets a new one,
    // the answer is a redirect to the sign-in page, and only the new password works.
    let clerk = {
        let mut tx = app.tx(&alpha).await;
        let m = desk_db::staff::insert_staff(
            &mut tx,
            "clerk.r",
            "کارمند",
            Some("+989127770003"),
            false,
        )
        .await
        .unwrap();
        let hash = desk_core::password::hash("old-password-long-1").unwrap();
        desk_db::staff::set_password(&mut tx, m.id, &hash)
            .await
            .unwrap();
        tx.set_staff_role(m.id, "desk_staff").await.unwrap();
        tx.commit().await.unwrap();
        m
    };
    let mut member = Browser::new(&app, "alpha.test");
    let page = member.get("/staff/forgot").await;
    let seen = outbox.len();
    let res = member
        .post(
            "/staff/forgot",
            &[("username", "clerk.r"), ("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let text = sms_to(&outbox, "9127770003", seen, |t| t.contains("بازنشانی")).await;
    let code: String = text
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() == 6)
        .unwrap()
        .to_owned();
    let page = member.get("/staff/forgot/code").await;
    let res = member
        .post(
            "/staff/forgot/code",
            &[
                ("code", &code),
                ("password", "تازه-و-بلند-۱۴۰۵"),
                ("password_confirm", "تازه-و-بلند-۱۴۰۵"),
                ("csrf", &page.csrf()),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    assert_eq!(res.location.as_deref(), Some("/staff/sign-in?reset=1"));
    let mut again = Browser::new(&app, "alpha.test");
    let page = again.get("/staff/sign-in").await;
    let old = again
        .post(
            "/staff/sign-in",
            &[
                ("username", "clerk.r"),
                ("password", "old-password-long-1"),
                ("csrf", &page.csrf()),
            ],
        )
        .await;
    assert_eq!(old.status, StatusCode::UNAUTHORIZED);
    let signed = again
        .sign_in(&outbox, "clerk.r", "تازه-و-بلند-۱۴۰۵", "9127770003")
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.text);
    assert_eq!(clerk.username, "clerk.r");
    workers.stop().await;
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

/// A municipality without an SMS account: an invitation is shown to the admin once instead of
/// being sent to nowhere; an admin removes a member's lost authenticator app.
#[tokio::test]
async fn without_sms_invitations_are_handed_over_and_lost_apps_can_be_removed() {
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    let admin = app.staff_sign_in(&alpha, "admin-alpha").await;
    let csrf = app.get_as(&admin, "alpha.test", "/staff/team").await.csrf();
    let res = app
        .post_form(
            Some(&admin),
            "alpha.test",
            "/staff/team",
            &[
                ("full_name", "بازرس"),
                ("mobile", "09127770009"),
                ("username", "auditor.y"),
                ("role", "auditor"),
                ("unit_id", ""),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(
        res.headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let shown = res.text.replace("&#x2f;", "/");
    let at = shown.find("/staff/welcome/").expect(&shown);
    let path: String = shown[at..]
        .chars()
        .take_while(char::is_ascii_graphic)
        .take_while(|c| *c != '<')
        .collect();
    let welcome = app.get("alpha.test", &path).await;
    assert_eq!(welcome.status, StatusCode::OK, "{}", welcome.text);
    assert!(welcome.text.contains("auditor.y"));
    assert_eq!(
        app.scalar(
            &alpha,
            "select count(*) from notifications where kind = 'staff_welcome'"
        )
        .await,
        0,
        "no SMS queued that nothing could send"
    );

    // A member's phone with the app is lost: the admin removes the app (logged).
    let member = app
        .scalar(&alpha, "select id from staff where username = 'auditor.y'")
        .await;
    let mut tx = app.tx(&alpha).await;
    let key = desk_core::secret::MasterKey::from_hex(desk_tests::TEST_MASTER_KEY).unwrap();
    let sealed = key
        .seal(
            alpha.id,
            &format!("staff_totp:{member}"),
            &desk_core::totp::new_secret(),
        )
        .unwrap();
    desk_db::staff::set_totp_pending(&mut tx, member, &sealed)
        .await
        .unwrap();
    assert!(
        desk_db::staff::use_totp_step(&mut tx, member, 1, true)
            .await
            .unwrap()
    );
    tx.commit().await.unwrap();
    let team = app.get_as(&admin, "alpha.test", "/staff/team").await;
    assert!(
        team.text
            .contains(&format!("/staff/team/{member}/totp/remove"))
    );
    let res = app
        .post_form(
            Some(&admin),
            "alpha.test",
            &format!("/staff/team/{member}/totp/remove"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    assert_eq!(
        app.scalar(
            &alpha,
            &format!("select count(*) from staff where id = {member} and totp_enabled_at is null")
        )
        .await,
        1
    );
    assert_eq!(
        app.scalar(
            &alpha,
            "select count(*) from audit_log where action = 'team.totp_removed'"
        )
        .await,
        1
    );
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}
