//! Appointments at the in-person desk: slots only on working days within the desk hours;
//! concurrent bookings for the last place give exactly one booking; citizens book and cancel,
//! staff see the day's list and mark arrivals; nothing reaches another municipality.

use axum::http::StatusCode;
use chrono::{Duration, NaiveTime};
use desk_authz::Authorizer;
use desk_core::appointments::Slot;
use desk_db::Tenant;
use desk_tests::TestApp;

async fn set_hours(app: &TestApp, tenant: &Tenant, capacity: u32) {
    let mut tx = app
        .db
        .platform
        .tenant_db()
        .begin(tenant.scope())
        .await
        .unwrap();
    for iso in 1..=7 {
        desk_db::appointments::add_desk_hours(
            &mut tx,
            iso,
            NaiveTime::from_hms_opt(8, 0, 0).unwrap(),
            NaiveTime::from_hms_opt(10, 0, 0).unwrap(),
            60,
            capacity,
        )
        .await
        .unwrap();
    }
    // Every day is a working day here except the holiday tests add.
    desk_db::settings::put_setting(&mut tx, "work_week", &serde_json::json!({ "days_off": [] }))
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

#[tokio::test]
async fn concurrent_bookings_for_the_last_place_give_exactly_one() {
    let app = TestApp::new().await;
    let authz = Authorizer::load(&app.db.platform).await.unwrap();
    let alpha = desk_tests::onboard(&app.db.platform, &authz, "alpha").await;
    let slot = Slot {
        day: desk_db::intake::local_today() + Duration::days(3),
        starts: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        capacity: 1,
    };
    let attempts = (0..8).map(|i| {
        let platform = app.db.platform.clone();
        let alpha = alpha.clone();
        tokio::spawn(async move {
            let mut tx = platform.tenant_db().begin(alpha.scope()).await.unwrap();
            let mobile = format!("+98912000010{i}");
            let r =
                desk_db::appointments::book(&mut tx, "MUN-REV-002", &slot, None, &mobile, "نوبت")
                    .await;
            if r.is_ok() {
                tx.commit().await.unwrap();
            } else {
                tx.rollback().await.unwrap();
            }
            r.is_ok()
        })
    });
    let mut booked = 0;
    for a in attempts {
        if a.await.unwrap() {
            booked += 1;
        }
    }
    assert_eq!(booked, 1);
    let mut tx = app
        .db
        .platform
        .tenant_db()
        .begin(alpha.scope())
        .await
        .unwrap();
    let day = desk_db::appointments::of_day(&mut tx, slot.day)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(day.len(), 1);
    app.db.finish().await;
}

#[tokio::test]
async fn citizens_book_and_cancel_staff_mark_arrivals_and_holidays_offer_nothing() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    set_hours(&app, &alpha, 1).await;
    let today = desk_db::intake::local_today();
    let holiday = today + Duration::days(2);
    let mut tx = app
        .db
        .platform
        .tenant_db()
        .begin(alpha.scope())
        .await
        .unwrap();
    desk_db::settings::put_holiday(&mut tx, holiday, "تعطیل رسمی")
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let citizen = app
        .citizen_sign_in(&alpha, "alpha.test", "09125656565")
        .await;
    let page = app
        .get_as(&citizen, "alpha.test", "/services/MUN-REV-002/appointments")
        .await;
    assert_eq!(page.status, StatusCode::OK);
    let tomorrow = (today + Duration::days(1)).to_string();
    assert!(
        page.text.contains(&format!("{tomorrow} 08:00"))
            && page.text.contains(&format!("{tomorrow} 09:00"))
    );
    assert!(
        !page.text.contains(&format!("{tomorrow} 10:00")),
        "outside the hours"
    );
    assert!(
        !page.text.contains(&holiday.to_string()),
        "no slot on a holiday"
    );
    let csrf = page.csrf();
    let book = |slot: String, cookie: String| {
        let (csrf, app) = (csrf.clone(), &app);
        async move {
            app.post_form(
                Some(&cookie),
                "alpha.test",
                "/services/MUN-REV-002/appointments",
                &[("csrf", &csrf), ("slot", &slot)],
            )
            .await
        }
    };
    assert_eq!(
        book(format!("{holiday} 08:00"), citizen.clone())
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        book(format!("{tomorrow} 07:00"), citizen.clone())
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        book(format!("{tomorrow} 08:00"), citizen.clone())
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    // The place is taken: the same slot again is refused (full, and one per person).
    let again = book(format!("{tomorrow} 08:00"), citizen.clone()).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(again.text.contains("پر شد"));
    let mine = app.get_as(&citizen, "alpha.test", "/my-appointments").await;
    assert!(mine.text.contains("لغو نوبت"));
    let id: i64 = {
        let mut tx = app
            .db
            .platform
            .tenant_db()
            .begin(alpha.scope())
            .await
            .unwrap();
        let id = sqlx::query_scalar("select id from appointments")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        id
    };
    // The confirmation SMS is queued with the booking.
    let mut tx = app
        .db
        .platform
        .tenant_db()
        .begin(alpha.scope())
        .await
        .unwrap();
    let sms: i64 =
        sqlx::query_scalar("select count(*) from notifications where kind = 'appointment'")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(sms, 1);

    // Staff: the day's list and arrival; beta's staff and citizens reach none of it.
    let admin = app.staff_sign_in(&alpha, "admin-alpha").await;
    let list = app
        .get_as(
            &admin,
            "alpha.test",
            &format!("/staff/appointments?day={tomorrow}"),
        )
        .await;
    assert!(list.text.contains("۰۸:۰۰") && list.text.contains("ثبت حضور"));
    let scsrf = list.csrf();
    let staff_b = app.staff_sign_in(&beta, "admin-beta").await;
    let home_b = app.get_as(&staff_b, "beta.test", "/staff").await;
    let res = app
        .post_form(
            Some(&staff_b),
            "beta.test",
            &format!("/staff/appointments/{id}/arrived"),
            &[("csrf", &home_b.csrf())],
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let citizen_b = app.citizen_sign_in(&beta, "beta.test", "09125656565").await;
    let mine_b = app
        .get_as(&citizen_b, "beta.test", "/my-appointments")
        .await;
    assert!(!mine_b.text.contains("لغو نوبت"));
    let csrf_b = app
        .get_as(&citizen_b, "beta.test", "/my-requests")
        .await
        .csrf();
    let res = app
        .post_form(
            Some(&citizen_b),
            "beta.test",
            &format!("/appointments/{id}/cancel"),
            &[("csrf", &csrf_b)],
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let res = app
        .post_form(
            Some(&admin),
            "alpha.test",
            &format!("/staff/appointments/{id}/arrived"),
            &[("csrf", &scsrf)],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let list = app
        .get_as(
            &admin,
            "alpha.test",
            &format!("/staff/appointments?day={tomorrow}"),
        )
        .await;
    assert!(list.text.contains("حاضر شد"));

    // Cancel frees the place (a second booking on 09:00 then cancel it).
    assert_eq!(
        book(format!("{tomorrow} 09:00"), citizen.clone())
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let mine = app.get_as(&citizen, "alpha.test", "/my-appointments").await;
    let second: i64 = {
        let mut tx = app
            .db
            .platform
            .tenant_db()
            .begin(alpha.scope())
            .await
            .unwrap();
        let id = sqlx::query_scalar("select id from appointments where starts = '09:00'")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        id
    };
    let res = app
        .post_form(
            Some(&citizen),
            "alpha.test",
            &format!("/appointments/{second}/cancel"),
            &[("csrf", &mine.csrf())],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let other = app
        .citizen_sign_in(&alpha, "alpha.test", "09127878787")
        .await;
    let other_page = app
        .get_as(&other, "alpha.test", "/services/MUN-REV-002/appointments")
        .await;
    assert!(
        other_page.text.contains(&format!("{tomorrow} 09:00")),
        "the place is free again"
    );
    let res = app
        .post_form(
            Some(&other),
            "alpha.test",
            "/services/MUN-REV-002/appointments",
            &[
                ("csrf", &other_page.csrf()),
                ("slot", &format!("{tomorrow} 09:00")),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    app.db.finish().await;
}
