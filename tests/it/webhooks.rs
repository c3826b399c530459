//! Webhooks: the admin registers a receiver (https and public only, unless the deployment
//! allows private receivers) and gets its secret once; request events reach it signed, in the
//! transaction's order, retried while it fails; a target that resolves to a private address is
//! never called when the workers do not allow it; nothing crosses municipalities.

use axum::http::{HeaderMap, StatusCode};
use desk_core::webhook;
use desk_db::requests::Channel;
use desk_tests::TestApp;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What a receiver got: event header, delivery header, signature header, body.
type Got = Arc<Mutex<Vec<(String, String, String, Vec<u8>)>>>;

/// A receiver on loopback that records every POST and answers 500 to the first `failures`.
async fn receiver(failures: usize) -> (String, Got) {
    let got: Got = Arc::default();
    let seen = got.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let mut all = seen.lock().unwrap();
                all.push((
                    h(webhook::EVENT_HEADER),
                    h(webhook::DELIVERY_HEADER),
                    h(webhook::SIGNATURE_HEADER),
                    body.to_vec(),
                ));
                if all.len() <= failures {
                    (StatusCode::INTERNAL_SERVER_ERROR, "receiver down")
                } else {
                    (StatusCode::OK, "thanks")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/hook"), got)
}

/// Registers a webhook on `host` for `events`; returns the secret shown once.
async fn register(
    app: &TestApp,
    admin: &str,
    host: &str,
    url: &str,
    events: &[&str],
) -> desk_tests::TestResponse {
    let page = app.get_as(admin, host, "/staff/settings/webhooks").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let csrf = page.csrf();
    let mut fields = vec![("csrf", csrf.as_str()), ("url", url)];
    fields.extend(events.iter().map(|e| ("event", *e)));
    app.post_form(Some(admin), host, "/staff/settings/webhooks", &fields)
        .await
}

fn secret_of(page: &str) -> String {
    let start = page.find("id=\"new-secret\">").unwrap() + 16;
    page[start..].split('<').next().unwrap().to_owned()
}

async fn wait_for(got: &Got, n: usize) -> Vec<(String, String, String, Vec<u8>)> {
    for _ in 0..600 {
        if got.lock().unwrap().len() >= n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    got.lock().unwrap().clone()
}

#[tokio::test]
async fn only_public_https_receivers_may_be_registered_by_default() {
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    let admin = app.staff_sign_in(&alpha, "admin-alpha").await;
    for url in [
        "https://127.0.0.1/hook",
        "https://[::1]:8443/hook",
        "https://10.0.0.8/hook",
        "https://localhost/hook",
        "https://2130706433/hook",
        "http://hooks.example.ir/miz",
        "https://user:pass@hooks.example.ir/",
    ] {
        let res = register(&app, &admin, "alpha.test", url, &["request.filed"]).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{url}");
        let why = webhook::parse_target(url, false).unwrap_err();
        let shown = why
            .message_fa()
            .replace('/', "&#x2f;")
            .replace('"', "&quot;");
        assert!(res.text.contains(&shown), "{url}: {}", why.code());
    }
    assert_eq!(app.scalar(&alpha, "select count(*) from webhooks").await, 0);
    // No event chosen.
    let res = register(
        &app,
        &admin,
        "alpha.test",
        "https://hooks.example.ir/miz",
        &[],
    )
    .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    let res = register(
        &app,
        &admin,
        "alpha.test",
        "https://hooks.example.ir/miz",
        &["request.filed", "survey.answered"],
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let secret = secret_of(&res.text);
    assert!(secret.starts_with("whsec_"));
    // Shown once, kept sealed: neither the list nor the database holds it in the clear.
    let list = app
        .get_as(&admin, "alpha.test", "/staff/settings/webhooks")
        .await;
    assert!(list.text.contains("hooks.example.ir") && !list.text.contains(&secret));
    assert_eq!(
        app.scalar(
            &alpha,
            &format!("select count(*) from webhooks where position(convert_to('{secret}', 'UTF8') in secret_sealed) > 0")
        )
        .await,
        0
    );
    app.db.finish().await;
}

#[tokio::test]
async fn request_events_reach_the_receiver_signed_and_retried_and_stay_in_their_municipality() {
    let (app, alpha, beta) = desk_tests::two_municipalities_with(|c| {
        c.webhooks.allow_private_targets = true;
    })
    .await;
    let (alpha_url, alpha_got) = receiver(1).await;
    let (beta_url, beta_got) = receiver(0).await;
    let admin = app.staff_sign_in(&alpha, "admin-alpha").await;
    let res = register(
        &app,
        &admin,
        "alpha.test",
        &alpha_url,
        &[
            "request.filed",
            "request.status_changed",
            "request.answered",
        ],
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let secret = secret_of(&res.text);
    let admin_b = app.staff_sign_in(&beta, "admin-beta").await;
    let res = register(
        &app,
        &admin_b,
        "beta.test",
        &beta_url,
        &[
            "request.filed",
            "request.status_changed",
            "request.answered",
            "survey.answered",
        ],
    )
    .await;
    assert_eq!(res.status, StatusCode::CREATED);
    let workers = app.db.start_workers("http://127.0.0.1:9").await;

    // Filed: the first try fails (500), the retry 5 s later is delivered.
    let today = desk_core::calendar::today_in_iran();
    let r = crate::surveys::filed(
        &app,
        &alpha,
        "+989121112233",
        Channel::Web,
        (today, today),
        None,
    )
    .await;
    let got = wait_for(&alpha_got, 2).await;
    assert_eq!(got.len(), 2, "one failed try and one retry");
    assert_eq!(got[0].1, got[1].1, "the same delivery id on the retry");
    let (event, _, signature, body) = &got[1];
    assert_eq!(event, "request.filed");
    let now = chrono::Utc::now().timestamp();
    webhook::verify(secret.as_bytes(), signature, body, now, 300).unwrap();
    assert!(webhook::verify(b"whsec_wrong", signature, body, now, 300).is_err());
    let payload: serde_json::Value = serde_json::from_slice(body).unwrap();
    assert_eq!(payload["event"], "request.filed");
    assert_eq!(payload["request"]["trackingCode"], r.tracking_code.as_str());
    assert!(
        !String::from_utf8_lossy(body).contains("989121112233"),
        "no personal data"
    );

    // Staff move it: accepted (a status change), then through to the answer.
    let view = app
        .get_as(
            &admin,
            "alpha.test",
            &format!("/staff/requests/{}", r.tracking_code),
        )
        .await;
    let csrf = view.csrf();
    for action in ["accept", "approve", "deliver"] {
        let res = app
            .post_form(
                Some(&admin),
                "alpha.test",
                &format!("/staff/requests/{}/act", r.tracking_code),
                &[("csrf", &csrf), ("action", action), ("note", "")],
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{action}: {}", res.text);
    }
    let got = wait_for(&alpha_got, 5).await;
    let events: Vec<&str> = got[2..].iter().map(|g| g.0.as_str()).collect();
    let mut sorted = events.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        [
            "request.answered",
            "request.status_changed",
            "request.status_changed"
        ]
    );
    for (_, _, signature, body) in &got[2..] {
        webhook::verify(secret.as_bytes(), signature, body, now + 60, 300).unwrap();
    }
    let page = app
        .get_as(&admin, "alpha.test", "/staff/settings/webhooks")
        .await;
    assert!(page.text.contains("HTTP 200") && page.text.contains("thanks"));
    assert_eq!(
        app.scalar(
            &alpha,
            "select attempts::bigint from webhook_deliveries where event = 'request.filed'"
        )
        .await,
        2
    );
    assert_eq!(
        app.scalar(
            &alpha,
            "select count(*) from webhook_deliveries where status = 'delivered'"
        )
        .await,
        4
    );

    // Beta's receiver heard nothing of alpha; beta's admin cannot see, pause or delete alpha's.
    assert!(beta_got.lock().unwrap().is_empty());
    let beta_page = app
        .get_as(&admin_b, "beta.test", "/staff/settings/webhooks")
        .await;
    assert!(!beta_page.text.contains(&alpha_url));
    // Ids are per municipality: the same number on beta's host names beta's own webhook (or
    // nothing), never alpha's.
    let alpha_hook = app.scalar(&alpha, "select id from webhooks").await;
    let beta_ids = app
        .scalar(
            &beta,
            &format!("select count(*) from webhooks where id = {alpha_hook}"),
        )
        .await;
    for op in ["pause", "delete"] {
        let res = app
            .post_form(
                Some(&admin_b),
                "beta.test",
                &format!("/staff/settings/webhooks/{alpha_hook}"),
                &[("csrf", &beta_page.csrf()), ("op", op)],
            )
            .await;
        let expected = if beta_ids == 1 {
            StatusCode::SEE_OTHER
        } else {
            StatusCode::NOT_FOUND
        };
        assert_eq!(res.status, expected);
    }
    assert_eq!(
        app.scalar(&beta, "select count(*) from webhooks").await,
        0,
        "beta's own went"
    );
    assert_eq!(
        app.scalar(&alpha, "select count(*) from webhooks where enabled")
            .await,
        1,
        "alpha's is untouched"
    );
    // Paused: a new event makes no delivery.
    let res = app
        .post_form(
            Some(&admin),
            "alpha.test",
            &format!("/staff/settings/webhooks/{alpha_hook}"),
            &[("csrf", &csrf), ("op", "pause")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    crate::surveys::filed(
        &app,
        &alpha,
        "+989121112244",
        Channel::Web,
        (today, today),
        None,
    )
    .await;
    assert_eq!(
        app.scalar(&alpha, "select count(*) from webhook_deliveries")
            .await,
        4
    );
    workers.stop().await;
    app.db.finish().await;
}

#[tokio::test]
async fn workers_that_do_not_allow_private_receivers_never_call_one() {
    // The site let the admin register a loopback receiver (as in development), but the workers
    // run with the production rule: the delivery fails without a call.
    let (app, alpha, _beta) = desk_tests::two_municipalities_with(|c| {
        c.webhooks.allow_private_targets = true;
    })
    .await;
    let (url, got) = receiver(0).await;
    let admin = app.staff_sign_in(&alpha, "admin-alpha").await;
    let res = register(&app, &admin, "alpha.test", &url, &["request.filed"]).await;
    assert_eq!(res.status, StatusCode::CREATED);
    let workers = app.db.start_workers_with("http://127.0.0.1:9", false).await;
    let today = desk_core::calendar::today_in_iran();
    crate::surveys::filed(
        &app,
        &alpha,
        "+989121112255",
        Channel::Web,
        (today, today),
        None,
    )
    .await;
    for _ in 0..100 {
        if app
            .scalar(
                &alpha,
                "select count(*) from webhook_deliveries where status = 'failed'",
            )
            .await
            == 1
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.scalar(&alpha, "select count(*) from webhook_deliveries where status = 'failed' and attempts = 1 and (response_excerpt like 'target refused%' or response_excerpt like '%not a public address%')").await,
        1
    );
    assert!(
        got.lock().unwrap().is_empty(),
        "the receiver was never called"
    );
    workers.stop().await;
    app.db.finish().await;
}
