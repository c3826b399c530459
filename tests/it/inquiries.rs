//! Inquiries to other agencies: staff start one from a request, the `inquiry` job sends it to
//! the agency's exchange (a fake agency on loopback speaking the real wire format), polls it,
//! retries a busy agency, gives up on a refusal, and the answer brings the request back to
//! review; letters are answered by staff; nothing crosses municipalities.

use crate::surveys::filed;
use axum::http::StatusCode;
use desk_db::Tenant;
use desk_db::requests::Channel;
use desk_jobs::fake_agency::{self, Mode};
use desk_tests::TestApp;
use std::time::Duration;

/// Adds an agency through the settings page; returns its id.
async fn add_agency(
    app: &TestApp,
    tenant: &Tenant,
    staff: &str,
    name: &str,
    kind: &str,
    endpoint: &str,
    token: &str,
) -> i64 {
    let page = app
        .get_as(staff, "alpha.test", "/staff/settings/agencies")
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let res = app
        .post_form(
            Some(staff),
            "alpha.test",
            "/staff/settings/agencies",
            &[
                ("csrf", &page.csrf()),
                ("name", name),
                ("kind", kind),
                ("endpoint", endpoint),
                ("token", token),
                ("timeout_secs", "۲"),
                ("sla_days", "5"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    app.scalar(
        tenant,
        &format!("select id from agencies where name = '{name}'"),
    )
    .await
}

/// Staff of alpha post a form on the request's page.
async fn post_on_request(
    app: &TestApp,
    staff: &str,
    tracking: &str,
    path: &str,
    fields: &[(&str, &str)],
) -> desk_tests::TestResponse {
    let page = app
        .get_as(staff, "alpha.test", &format!("/staff/requests/{tracking}"))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let csrf = page.csrf();
    let mut all = vec![("csrf", csrf.as_str())];
    all.extend_from_slice(fields);
    app.post_form(
        Some(staff),
        "alpha.test",
        &format!("/staff/requests/{tracking}{path}"),
        &all,
    )
    .await
}

async fn state_of(app: &TestApp, tenant: &Tenant, id: i64) -> String {
    let mut tx = app.tx(tenant).await;
    let s: String = sqlx::query_scalar("select state from requests where id = $1")
        .bind(id)
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    s
}

async fn inquiry_status(app: &TestApp, tenant: &Tenant, id: i64) -> (String, i64, String) {
    let mut tx = app.tx(tenant).await;
    let row: (String, i32, Option<String>) =
        sqlx::query_as("select status, attempts, last_error from inquiries where id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    (row.0, i64::from(row.1), row.2.unwrap_or_default())
}

async fn wait_for_status(
    app: &TestApp,
    tenant: &Tenant,
    id: i64,
    wanted: &str,
) -> (String, i64, String) {
    // Up to a minute: a busy agency's retries back off 5, 10, 20 s, and a loaded machine may
    // see the agency recover only after the second retry.
    for _ in 0..600 {
        let s = inquiry_status(app, tenant, id).await;
        if s.0 == wanted {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    inquiry_status(app, tenant, id).await
}

#[tokio::test]
async fn an_inquiry_reaches_the_agency_and_its_answer_brings_the_request_back_to_review() {
    // The fake agency is on loopback: allowed here as in the demo (never in production).
    let (app, alpha, beta) = desk_tests::two_municipalities_with(|c| {
        c.webhooks.allow_private_targets = true;
    })
    .await;
    let (base, agency) = fake_agency::spawn("agency-token", Mode::Defer { polls: 1 })
        .await
        .unwrap();
    let staff = app.staff_sign_in(&alpha, "admin-alpha").await;
    let agency_id = add_agency(
        &app,
        &alpha,
        &staff,
        "اداره ثبت اسناد",
        "http_json",
        &base,
        "agency-token",
    )
    .await;
    // The token is sealed at rest and never shown again.
    assert_eq!(
        app.scalar(&alpha, "select count(*) from agencies where position(convert_to('agency-token', 'UTF8') in credentials_ciphertext) > 0").await,
        0
    );
    let page = app
        .get_as(&staff, "alpha.test", "/staff/settings/agencies")
        .await;
    assert!(page.text.contains("اداره ثبت اسناد") && !page.text.contains("agency-token"));
    // Bad input is named, not stored.
    let bad = app
        .post_form(
            Some(&staff),
            "alpha.test",
            "/staff/settings/agencies",
            &[
                ("csrf", &page.csrf()),
                ("name", "بی‌نشانی"),
                ("kind", "http_json"),
                ("endpoint", "ftp://x"),
                ("timeout_secs", "500"),
                ("sla_days", "5"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.scalar(&alpha, "select count(*) from agencies").await, 1);

    let today = desk_core::calendar::today_in_iran();
    let r = filed(
        &app,
        &alpha,
        "+989121112345",
        Channel::Web,
        (today, today),
        None,
    )
    .await;
    let res = post_on_request(
        &app,
        &staff,
        &r.tracking_code,
        "/act",
        &[("action", "accept")],
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let workers = app.db.start_workers("http://127.0.0.1:9").await;
    let id_text = agency_id.to_string();
    let res = post_on_request(
        &app,
        &staff,
        &r.tracking_code,
        "/inquiries",
        &[
            ("agency_id", &id_text),
            ("subject", "استعلام نبود بازداشت ملک"),
        ],
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    assert_eq!(state_of(&app, &alpha, r.id).await, "awaiting_inquiry");
    let inquiry = app.scalar(&alpha, "select max(id) from inquiries").await;

    // The citizen sees what the request waits for (before the answer arrives or after).
    let tracked = app
        .post_form(
            None,
            "alpha.test",
            "/track",
            &[
                ("tracking_code", &r.tracking_code),
                ("mobile", "09121112345"),
            ],
        )
        .await;
    assert_eq!(tracked.status, StatusCode::OK, "{}", tracked.text);
    assert!(tracked.text.contains("اداره ثبت اسناد"), "{}", tracked.text);

    let (status, attempts, _) = wait_for_status(&app, &alpha, inquiry, "answered").await;
    assert_eq!((status.as_str(), attempts), ("answered", 0));
    assert!(agency.calls() >= 2, "sent, then polled");
    let got = agency.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].tracking_code, r.tracking_code);
    assert_eq!(got[0].national_code, "0499370899");
    assert_eq!(state_of(&app, &alpha, r.id).await, "in_review");
    let detail = app
        .get_as(
            &staff,
            "alpha.test",
            &format!("/staff/requests/{}", r.tracking_code),
        )
        .await;
    assert!(
        detail.text.contains("انجام کار بلامانع است"),
        "the answer is on the request"
    );

    // Another municipality cannot start inquiries on alpha's request, nor use beta's agency.
    let beta_staff = app.staff_sign_in(&beta, "admin-beta").await;
    let res = app
        .post_form(
            Some(&beta_staff),
            "beta.test",
            &format!("/staff/requests/{}/inquiries", r.tracking_code),
            &[("csrf", "x"), ("agency_id", &id_text), ("subject", "x")],
        )
        .await;
    assert_ne!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(app.scalar(&beta, "select count(*) from inquiries").await, 0);
    assert_eq!(
        app.scalar(&alpha, "select count(*) from inquiries").await,
        1
    );
    let res = post_on_request(
        &app,
        &staff,
        &r.tracking_code,
        "/inquiries",
        &[("agency_id", "999"), ("subject", "x")],
    )
    .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);

    // The report counts the agency's turnaround.
    let (from, to) = desk_core::report::Period::month_of(today).days().unwrap();
    let mut tx = app.tx(&alpha).await;
    let report = desk_db::reports::report(&mut tx, from, to, today)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(report.by_agency.len(), 1);
    let a = &report.by_agency[0];
    assert_eq!(
        (a.agency.as_str(), a.inquiries, a.answered, a.open),
        ("اداره ثبت اسناد", 1, 1, 0)
    );
    assert_eq!(a.average_days(), Some(0.0));

    workers.stop().await;
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

#[tokio::test]
async fn busy_agencies_are_retried_refusals_fail_at_once_and_letters_are_answered_by_staff() {
    let (app, alpha, _beta) = desk_tests::two_municipalities_with(|c| {
        c.webhooks.allow_private_targets = true;
    })
    .await;
    let (base, agency) = fake_agency::spawn("agency-token", Mode::Fail(503))
        .await
        .unwrap();
    let staff = app.staff_sign_in(&alpha, "admin-alpha").await;
    let busy = add_agency(
        &app,
        &alpha,
        &staff,
        "شرکت گاز",
        "http_json",
        &base,
        "agency-token",
    )
    .await;
    let refusing = add_agency(
        &app,
        &alpha,
        &staff,
        "شرکت آب",
        "http_json",
        &base,
        "a-wrong-token",
    )
    .await;
    let letter = add_agency(&app, &alpha, &staff, "اداره میراث", "manual", "", "").await;
    let today = desk_core::calendar::today_in_iran();
    let r = filed(
        &app,
        &alpha,
        "+989121112346",
        Channel::Web,
        (today, today),
        None,
    )
    .await;
    post_on_request(
        &app,
        &staff,
        &r.tracking_code,
        "/act",
        &[("action", "accept")],
    )
    .await;
    let workers = app.db.start_workers("http://127.0.0.1:9").await;
    for (agency_id, subject) in [(busy, "گاز"), (refusing, "آب"), (letter, "میراث")] {
        let res = post_on_request(
            &app,
            &staff,
            &r.tracking_code,
            "/inquiries",
            &[("agency_id", &agency_id.to_string()), ("subject", subject)],
        )
        .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    }
    let id_of = |agency: i64| {
        let (app, alpha) = (&app, &alpha);
        async move {
            app.scalar(
                alpha,
                &format!("select id from inquiries where agency_id = {agency}"),
            )
            .await
        }
    };
    let (busy_q, refusing_q, letter_q) = (
        id_of(busy).await,
        id_of(refusing).await,
        id_of(letter).await,
    );

    // A refusal (bad token) fails at once, without retries.
    let (status, attempts, error) = wait_for_status(&app, &alpha, refusing_q, "failed").await;
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    assert_eq!(error, "refused: HTTP 401");
    // A busy agency: the failure is counted and a retry is scheduled with backoff.
    for _ in 0..600 {
        if inquiry_status(&app, &alpha, busy_q).await.1 >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, attempts, error) = inquiry_status(&app, &alpha, busy_q).await;
    assert_eq!(
        (status.as_str(), attempts, error.as_str()),
        ("created", 1, "unavailable: HTTP 503")
    );
    // The retry is due 5 s after the first try: the job schedules it from its own clock in
    // whole seconds (up to 1 s early against the queue's start time, plus clock skew).
    let retry_in = app
        .db
        .retry_delay(
            "inquiry",
            &format!("{}:{busy_q}:1", alpha.id),
            &format!("{}:{busy_q}:0", alpha.id),
        )
        .await;
    assert!((3.5..=7.0).contains(&retry_in), "retry after {retry_in} s");
    // The agency recovers: the retry gets the answer.
    agency.set_mode(Mode::Answer);
    let (status, _, _) = wait_for_status(&app, &alpha, busy_q, "answered").await;
    assert_eq!(status, "answered");
    // The letter waits for staff; the request waits while it is open.
    assert_eq!(inquiry_status(&app, &alpha, letter_q).await.0, "sent");
    assert_eq!(state_of(&app, &alpha, r.id).await, "awaiting_inquiry");
    let res = post_on_request(
        &app,
        &staff,
        &r.tracking_code,
        &format!("/inquiries/{letter_q}/answer"),
        &[("answer", "مانعی ندارد"), ("outcome", "approved")],
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    assert_eq!(inquiry_status(&app, &alpha, letter_q).await.0, "answered");
    assert_eq!(state_of(&app, &alpha, r.id).await, "in_review");
    // Answered once: a second answer is refused.
    let res = post_on_request(
        &app,
        &staff,
        &r.tracking_code,
        &format!("/inquiries/{letter_q}/answer"),
        &[("answer", "دوباره"), ("outcome", "rejected")],
    )
    .await;
    assert_eq!(res.status, StatusCode::CONFLICT);

    workers.stop().await;
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

/// An agency address inside the machine or its network is refused when it is saved, and an
/// agency that points there anyway (an address changed behind our back, a row written before the
/// rule) is never called: the job gives up, the applicant's data stays home, no redirect is
/// followed.
#[tokio::test]
async fn agencies_on_internal_addresses_are_refused_and_never_called() {
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    let (base, agency) = fake_agency::spawn("agency-token", Mode::Answer)
        .await
        .unwrap();
    let staff = app.staff_sign_in(&alpha, "admin-alpha").await;
    for endpoint in [
        base.clone(),
        "http://[::1]:9/".to_owned(),
        "http://localhost:5432/".to_owned(),
        "http://169.254.169.254/latest/".to_owned(),
        "http://10.0.0.1:5432/".to_owned(),
        "http://0x7f000001/".to_owned(),
        "http://0177.0.0.1/".to_owned(),
    ] {
        let page = app
            .get_as(&staff, "alpha.test", "/staff/settings/agencies")
            .await;
        let res = app
            .post_form(
                Some(&staff),
                "alpha.test",
                "/staff/settings/agencies",
                &[
                    ("csrf", &page.csrf()),
                    ("name", "دستگاه درونی"),
                    ("kind", "http_json"),
                    ("endpoint", &endpoint),
                    ("token", "agency-token"),
                    ("timeout_secs", "2"),
                    ("sla_days", "5"),
                ],
            )
            .await;
        assert_eq!(
            res.status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{endpoint}: {}",
            res.text
        );
    }
    assert_eq!(app.scalar(&alpha, "select count(*) from agencies").await, 0);

    // A row that points inside anyway: the job refuses to call it.
    let mut tx = app.tx(&alpha).await;
    sqlx::query(
        "insert into agencies (name, kind, endpoint, timeout_secs, sla_days)
         values ('دستگاه درونی', 'http_json', $1, 2, 5)",
    )
    .bind(&base)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let agency_id = app.scalar(&alpha, "select id from agencies").await;
    let today = desk_core::calendar::today_in_iran();
    let r = filed(
        &app,
        &alpha,
        "+989121112345",
        Channel::Web,
        (today, today),
        None,
    )
    .await;
    let res = post_on_request(
        &app,
        &staff,
        &r.tracking_code,
        "/act",
        &[("action", "accept")],
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let workers = app.db.start_workers_with("http://127.0.0.1:9", false).await;
    let id_text = agency_id.to_string();
    let res = post_on_request(
        &app,
        &staff,
        &r.tracking_code,
        "/inquiries",
        &[("agency_id", &id_text), ("subject", "استعلام")],
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let inquiry = app.scalar(&alpha, "select max(id) from inquiries").await;
    let (status, _, error) = wait_for_status(&app, &alpha, inquiry, "failed").await;
    assert_eq!(status, "failed");
    assert!(error.contains("address refused"), "{error}");
    assert_eq!(agency.calls(), 0, "the agency inside was never called");
    workers.stop().await;
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}
