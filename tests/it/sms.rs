//! The SMS pipeline against the fake provider: a municipality's failing account fails over to
//! its next one, a busy provider is retried later with backoff (as a new job, never twice at
//! once), accounts that keep failing are passed over, and delivery reports reach the
//! request's timeline.

use crate::surveys::filed;
use axum::http::StatusCode;
use desk_db::requests::Channel;
use std::time::Duration;

#[tokio::test]
async fn failover_retries_and_delivery_reports() {
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    // Alpha's first account has bad credentials; the second works.
    desk_tests::add_sms_account(&app.db.platform, &alpha, "kavenegar", "bad-key").await;
    desk_tests::add_sms_account(&app.db.platform, &alpha, "smsir", "alpha-smsir").await;
    let (fake, outbox) = desk_jobs::fake_sms::spawn().await.unwrap();
    let workers = app.db.start_workers(&fake).await;
    let wait = |sql: String, wanted: i64| {
        let (app, alpha) = (&app, &alpha);
        async move {
            for _ in 0..600 {
                if app.scalar(alpha, &sql).await == wanted {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            false
        }
    };

    // A request step notifies the citizen: the first account fails (auth), the second sends.
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
    let staff = app.staff_sign_in(&alpha, "admin-alpha").await;
    let res = app
        .staff_act(&staff, "alpha.test", &r.tracking_code, "accept")
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    assert!(
        wait(
            format!(
                "select count(*) from notifications where request_id = {} and status = 'sent'",
                r.id
            ),
            1
        )
        .await
    );
    let sent: Vec<_> = outbox
        .messages()
        .into_iter()
        .filter(|m| m.to == "09121112345")
        .collect();
    assert_eq!(sent.len(), 1, "sent once");
    assert_eq!(
        (sent[0].provider, sent[0].account.as_str()),
        ("smsir", "alpha-smsir")
    );
    // (The admin's welcome, sent at onboarding, met the bad account too.)
    assert!(
        app.scalar(
            &alpha,
            "select failures::int8 from sms_accounts where provider = 'kavenegar'"
        )
        .await
            >= 1
    );
    // The delivery report arrives on the timeline.
    assert!(
        wait(
            format!("select count(*) from notifications where request_id = {} and delivery = 'delivered'", r.id),
            1
        )
        .await,
        "delivery report"
    );
    let detail = app
        .get_as(
            &staff,
            "alpha.test",
            &format!("/staff/requests/{}", r.tracking_code),
        )
        .await;
    assert!(
        detail.text.contains("پیامک به گوشی رسید"),
        "{}",
        detail.text
    );

    // After repeated failures the bad account is passed over: it sorts last.
    let mut tx = app.tx(&alpha).await;
    sqlx::query(
        "update sms_accounts set failures = 3, failing_since = now() where provider = 'kavenegar'",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let order: Vec<String> = desk_db::notifications::sending_accounts(&mut tx)
        .await
        .unwrap()
        .into_iter()
        .map(|(a, _)| a.provider)
        .collect();
    tx.commit().await.unwrap();
    assert_eq!(order, ["smsir", "kavenegar"]);

    // A busy provider: the message is tried once now and retried later as a new job.
    let busy = filed(
        &app,
        &alpha,
        "+989121113333",
        Channel::Web,
        (today, today),
        None,
    )
    .await;
    let page = app
        .get_as(
            &staff,
            "alpha.test",
            &format!("/staff/requests/{}", busy.tracking_code),
        )
        .await;
    app.post_form(
        Some(&staff),
        "alpha.test",
        &format!("/staff/requests/{}/act", busy.tracking_code),
        &[("csrf", &page.csrf()), ("action", "accept")],
    )
    .await;
    assert!(
        wait(
            format!(
                "select count(*) from notifications where request_id = {} and attempts = 1",
                busy.id
            ),
            1
        )
        .await
    );
    let id = app
        .scalar(
            &alpha,
            &format!(
                "select id from notifications where request_id = {}",
                busy.id
            ),
        )
        .await;
    assert_eq!(
        app.scalar(
            &alpha,
            &format!("select count(*) from notifications where id = {id} and status = 'queued'")
        )
        .await,
        1
    );
    // The retry is due 5 s after the first try (measured from when that job started).
    let retry_in = app
        .db
        .retry_delay(
            "send_sms",
            &format!("{}:{id}:1", alpha.id),
            &format!("{}:{id}", alpha.id),
        )
        .await;
    assert!((4.0..=7.0).contains(&retry_in), "retry after {retry_in} s");
    assert_eq!(
        outbox
            .messages()
            .iter()
            .filter(|m| m.to == "09121113333")
            .count(),
        0
    );

    workers.stop().await;
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

#[tokio::test]
async fn messages_handed_over_before_a_crash_or_a_timeout_are_not_sent_twice() {
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    desk_tests::add_sms_account(&app.db.platform, &alpha, "kavenegar", "alpha-kavenegar").await;
    let (fake, outbox) = desk_jobs::fake_sms::spawn().await.unwrap();
    let mut tx = app.tx(&alpha).await;
    let kind = desk_db::notifications::Kind::Appointment;
    let took = desk_db::notifications::queue_sms(&mut tx, kind, "+989121112345", "نوبت الف", None)
        .await
        .unwrap();
    let lost = desk_db::notifications::queue_sms(&mut tx, kind, "+989121112346", "نوبت ب", None)
        .await
        .unwrap();
    // The provider takes this one but answers only after our call has timed out.
    let late = desk_db::notifications::queue_sms(&mut tx, kind, "+989121114444", "نوبت پ", None)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let account = app.scalar(&alpha, "select id from sms_accounts").await;
    // A worker handed both over and died during the calls: the provider took the first
    // (with our id as its client reference), the second never arrived.
    let provider_id = desk_jobs::sms::send_text(
        &desk_jobs::sms::client(),
        &desk_jobs::sms::Endpoints::all_at(&fake),
        "kavenegar",
        &serde_json::json!({ "api_key": "alpha-kavenegar" }),
        &desk_jobs::sms::Text {
            sender: "3000505",
            to: "+989121112345",
            text: "نوبت الف",
            local_id: Some(&desk_jobs::send_sms::client_reference(alpha.id, took)),
        },
    )
    .await
    .unwrap();
    let mut tx = app.tx(&alpha).await;
    sqlx::query(
        "update notifications set sending_since = now(), account_id = $1 where id = any($2)",
    )
    .bind(account)
    .bind(vec![took, lost])
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();

    let workers = app.db.start_workers(&fake).await;
    for _ in 0..600 {
        if app
            .scalar(&alpha, &format!("select count(*) from notifications where id in ({took}, {lost}, {late}) and status = 'sent'"))
            .await
            == 3
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    workers.stop().await;
    let to = |n: &str| outbox.messages().iter().filter(|m| m.to == n).count();
    assert_eq!(
        to("09121112345"),
        1,
        "the message the provider had is not sent again"
    );
    assert_eq!(to("09121112346"), 1, "the lost one is sent");
    // The timed-out call was asked about before a second try: sent once, recorded as sent.
    assert_eq!(
        to("09121114444"),
        1,
        "a timeout after the provider took it sends nothing twice"
    );
    assert_eq!(
        app.scalar(&alpha, &format!("select count(*) from notifications where id = {took} and provider_message_id = '{provider_id}'"))
            .await,
        1
    );
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

/// The staff outbox lists the municipality's own messages, numbers masked, filtered by state;
/// another municipality's staff see only theirs.
#[tokio::test]
async fn the_outbox_shows_each_municipality_its_own_messages_masked() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    for (tenant, body) in [(&alpha, "پیام آزمایشی الف"), (&beta, "پیام آزمایشی ب")]
    {
        let mut tx = app.tx(tenant).await;
        desk_db::notifications::queue_sms(
            &mut tx,
            desk_db::notifications::Kind::Appointment,
            "+989121234567",
            body,
            None,
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    assert_eq!(
        app.get("alpha.test", "/staff/outbox").await.status,
        StatusCode::UNAUTHORIZED
    );
    let admin = app.staff_sign_in(&alpha, "admin-alpha").await;
    let page = app.get_as(&admin, "alpha.test", "/staff/outbox").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("پیام آزمایشی الف") && !page.text.contains("پیام آزمایشی ب"));
    assert!(
        page.text.contains("۰۹۱۲***۴۵۶۷")
            && !page.text.contains("1234567")
            && !page.text.contains("۱۲۳۴۵۶۷")
    );
    assert!(page.text.contains("در صف"));
    let failed = app
        .get_as(&admin, "alpha.test", "/staff/outbox?status=failed")
        .await;
    assert!(!failed.text.contains("پیام آزمایشی الف"));
    let admin_b = app.staff_sign_in(&beta, "admin-beta").await;
    let page_b = app.get_as(&admin_b, "beta.test", "/staff/outbox").await;
    assert!(page_b.text.contains("پیام آزمایشی ب") && !page_b.text.contains("پیام آزمایشی الف"));
    assert_eq!(
        app.get_as(&admin_b, "alpha.test", "/staff/outbox")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    app.db.finish().await;
}

/// An account with the provider's approved template for an event sends the template with the
/// event's variables (secrets filled in by the sender); a template the provider does not know
/// passes the message to the next account; the editor checks each provider's rules; another
/// municipality's templates are neither reachable nor used.
#[tokio::test]
async fn provider_templates_carry_the_events_variables_and_fail_over() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    desk_tests::add_sms_account(&app.db.platform, &alpha, "kavenegar", "alpha-kavenegar").await;
    desk_tests::add_sms_account(&app.db.platform, &alpha, "smsir", "alpha-smsir").await;
    desk_tests::add_sms_account(&app.db.platform, &beta, "kavenegar", "beta-kavenegar").await;
    let kavenegar = app
        .scalar(
            &alpha,
            "select id from sms_accounts where provider = 'kavenegar'",
        )
        .await;
    let smsir = app
        .scalar(
            &alpha,
            "select id from sms_accounts where provider = 'smsir'",
        )
        .await;
    let admin = app.staff_sign_in(&alpha, "admin-alpha").await;
    let path = format!("/staff/settings/sms/{kavenegar}/templates");
    let page = app.get_as(&admin, "alpha.test", &path).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("کد ورود") && page.text.contains("token10"));
    let csrf = page.csrf();
    let save = |account: i64, event: &'static str, template: &'static str, params: &'static str| {
        let (app, admin, csrf) = (&app, &admin, csrf.clone());
        async move {
            app.post_form(
                Some(admin),
                "alpha.test",
                &format!("/staff/settings/sms/{account}/templates"),
                &[
                    ("csrf", csrf.as_str()),
                    ("op", "save"),
                    ("event", event),
                    ("template", template),
                    ("params", params),
                ],
            )
            .await
        }
    };
    // Kavenegar's token takes no space: the service name is refused there, with the reason.
    let refused = save(kavenegar, "step_changed", "miz-step", "token = service").await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text.contains("token10"), "{}", refused.text);
    assert_eq!(
        app.scalar(&alpha, "select count(*) from sms_provider_templates")
            .await,
        0
    );
    for (account, event, template, params) in [
        (kavenegar, "sign_in_code", "miz-otp", "token = code"),
        // Not approved at the provider: the message fails over to SMS.ir's template.
        (
            kavenegar,
            "step_changed",
            "missing",
            "token = tracking_code",
        ),
        (
            smsir,
            "step_changed",
            "100200",
            "TRACKING = tracking_code\nSTATE = state",
        ),
    ] {
        let res = save(account, event, template, params).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    }
    // Beta's admin cannot reach an account beta does not have.
    let beta_admin = app.staff_sign_in(&beta, "admin-beta").await;
    let beta_page = app
        .get_as(
            &beta_admin,
            "beta.test",
            "/staff/settings/sms/9999/templates",
        )
        .await;
    assert_eq!(beta_page.status, StatusCode::NOT_FOUND);
    let beta_csrf = app
        .get_as(&beta_admin, "beta.test", "/staff/settings")
        .await
        .csrf();
    let beta_post = app
        .post_form(
            Some(&beta_admin),
            "beta.test",
            "/staff/settings/sms/9999/templates",
            &[
                ("csrf", beta_csrf.as_str()),
                ("op", "save"),
                ("event", "sign_in_code"),
                ("template", "x"),
                ("params", "token = code"),
            ],
        )
        .await;
    assert!(beta_post.status.is_client_error(), "{}", beta_post.status);
    assert_eq!(
        app.scalar(&beta, "select count(*) from sms_provider_templates")
            .await,
        0
    );

    let (fake, outbox) = desk_jobs::fake_sms::spawn().await.unwrap();
    let workers = app.db.start_workers(&fake).await;
    let arrived = |to: &'static str, provider: &'static str| {
        let outbox = outbox.clone();
        async move {
            for _ in 0..300 {
                if let Some(m) = outbox
                    .messages()
                    .into_iter()
                    .find(|m| m.to == to && m.provider == provider)
                {
                    return m;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("no message to {to} through {provider}");
        }
    };
    // The sign-in code goes as Kavenegar's template; the code in it signs the citizen in.
    for host in ["alpha.test", "beta.test"] {
        let res = app
            .post_form(
                None,
                host,
                "/sign-in",
                &[("mobile", "09121117777"), ("next", "/my-requests")],
            )
            .await;
        assert_eq!(res.status, StatusCode::OK);
    }
    let otp = arrived("09121117777", "kavenegar").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let both: Vec<_> = outbox
        .messages()
        .into_iter()
        .filter(|m| m.to == "09121117777")
        .collect();
    assert_eq!(both.len(), 2, "one code per municipality");
    let alpha_otp = both
        .iter()
        .find(|m| m.account == "alpha-kavenegar")
        .unwrap();
    let beta_otp = both.iter().find(|m| m.account == "beta-kavenegar").unwrap();
    assert_eq!(alpha_otp.template.as_deref(), Some("miz-otp"));
    assert_eq!(alpha_otp.params.len(), 1);
    assert_eq!(alpha_otp.params[0].0, "token");
    let code = alpha_otp.params[0].1.clone();
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "{code}"
    );
    // Beta has no template for it: plain text, with beta's own code.
    assert_eq!(beta_otp.template, None, "alpha's template is not beta's");
    assert!(!beta_otp.text.is_empty());
    drop(otp);
    let res = app
        .post_form(
            None,
            "alpha.test",
            "/sign-in/code",
            &[
                ("mobile", "09121117777"),
                ("code", &code),
                ("next", "/my-requests"),
            ],
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::SEE_OTHER,
        "the template carried the real code"
    );

    // A step change: Kavenegar does not know the template, SMS.ir's carries the variables.
    let today = desk_core::calendar::today_in_iran();
    let r = filed(
        &app,
        &alpha,
        "+989121118888",
        Channel::Web,
        (today, today),
        None,
    )
    .await;
    let res = app
        .staff_act(&admin, "alpha.test", &r.tracking_code, "accept")
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let step = arrived("09121118888", "smsir").await;
    assert_eq!(step.template.as_deref(), Some("100200"));
    assert_eq!(
        step.params[0],
        ("TRACKING".to_owned(), r.tracking_code.clone())
    );
    assert_eq!(step.params[1].0, "STATE");
    assert!(!step.params[1].1.is_empty());
    assert_eq!(
        outbox
            .messages()
            .iter()
            .filter(|m| m.to == "09121118888")
            .count(),
        1,
        "sent once"
    );
    assert_eq!(
        app.scalar(
            &alpha,
            &format!(
                "select count(*) from notifications where request_id = {} and status = 'sent' and vars is null",
                r.id
            )
        )
        .await,
        1,
        "a sent message forgets its variables"
    );
    workers.stop().await;
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}
