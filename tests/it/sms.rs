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
    let today = desk_db::intake::local_today();
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
    let page = app
        .get_as(
            &staff,
            "alpha.test",
            &format!("/staff/requests/{}", r.tracking_code),
        )
        .await;
    let res = app
        .post_form(
            Some(&staff),
            "alpha.test",
            &format!("/staff/requests/{}/act", r.tracking_code),
            &[("csrf", &page.csrf()), ("action", "accept")],
        )
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
            local_id: Some(&took.to_string()),
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
