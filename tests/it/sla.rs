//! SLA watch: a step due tomorrow warns its staff, a request past its promised date is
//! escalated to the department heads, each once, on the timeline and by SMS; closed requests
//! and other municipalities are left alone.

use crate::surveys::filed;
use desk_authz::{Authorizer, Role, Subject};
use desk_db::requests::Channel;

#[tokio::test]
async fn due_steps_warn_and_overdue_requests_escalate_once() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    let today = desk_core::calendar::today_in_iran();
    let day = |n: i64| today + chrono::Duration::days(n);
    // A department head of alpha with a mobile number.
    let mut tx = app.tx(&alpha).await;
    let head = desk_db::staff::insert_staff(
        &mut tx,
        "head-alpha",
        "مدیر واحد",
        Some("+989131112345"),
        false,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let authz = Authorizer::load(&app.db.platform).await.unwrap();
    authz
        .assign(
            &Subject::Staff {
                tenant: alpha.id,
                id: head.id,
            },
            Role::DepartmentHead,
            Some(alpha.id),
        )
        .await
        .unwrap();

    let due = filed(
        &app,
        &alpha,
        "+989121112345",
        Channel::Web,
        (day(-3), day(1)),
        None,
    )
    .await;
    let overdue = filed(
        &app,
        &alpha,
        "+989121112346",
        Channel::Web,
        (day(-9), day(-1)),
        None,
    )
    .await;
    let later = filed(
        &app,
        &alpha,
        "+989121112347",
        Channel::Web,
        (today, day(5)),
        None,
    )
    .await;
    let closed = filed(
        &app,
        &alpha,
        "+989121112348",
        Channel::Web,
        (day(-9), day(-2)),
        None,
    )
    .await;
    let mut tx = app.tx(&alpha).await;
    sqlx::query("update requests set closed = true, state = 'delivered' where id = $1")
        .bind(closed.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let beta_overdue = filed(
        &app,
        &beta,
        "+989121112349",
        Channel::Web,
        (day(-9), day(-1)),
        None,
    )
    .await;

    let swept = desk_jobs::sla::run(&app.db.platform, &alpha, today)
        .await
        .unwrap();
    assert_eq!((swept.warned, swept.escalated, swept.alerts), (1, 1, 2));
    // Once only.
    let again = desk_jobs::sla::run(&app.db.platform, &alpha, today)
        .await
        .unwrap();
    assert_eq!((again.warned, again.escalated, again.alerts), (0, 0, 0));

    let events = |id: i64, action: &str| {
        format!(
            "select count(*) from request_events where request_id = {id} and action = '{action}'"
        )
    };
    assert_eq!(app.scalar(&alpha, &events(due.id, "sla_warning")).await, 1);
    assert_eq!(
        app.scalar(&alpha, &events(overdue.id, "escalated")).await,
        1
    );
    assert_eq!(
        app.scalar(&alpha, &events(later.id, "sla_warning")).await,
        0
    );
    assert_eq!(app.scalar(&alpha, &events(closed.id, "escalated")).await, 0);
    assert_eq!(
        app.scalar(&alpha, "select count(*) from notifications where kind = 'staff_alert' and recipient = '+989131112345'").await,
        2
    );
    // Beta's overdue request is beta's business.
    assert_eq!(
        app.scalar(
            &beta,
            &format!(
                "select count(*) from requests where id = {} and escalated_at is not null",
                beta_overdue.id
            )
        )
        .await,
        0
    );
    assert_eq!(
        app.scalar(
            &beta,
            "select count(*) from notifications where kind = 'staff_alert'"
        )
        .await,
        0
    );

    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}
