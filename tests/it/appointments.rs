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
    let mut tx = app.tx(tenant).await;
    for iso in 1..=7 {
        desk_db::appointments::add_desk_hours(
            &mut tx,
            None,
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
        day: desk_core::calendar::today_in_iran() + Duration::days(3),
        starts: NaiveTime::from_hms_opt(9, 0, 0).unwrap(),
        capacity: 1,
    };
    let attempts = (0..8).map(|i| {
        let platform = app.db.platform.clone();
        let alpha = alpha.clone();
        tokio::spawn(async move {
            let mut tx = platform.tenant_db().begin(alpha.scope()).await.unwrap();
            let mobile = format!("+98912000010{i}");
            let r = desk_db::appointments::book(
                &mut tx,
                "MUN-REV-002",
                "",
                &slot,
                None,
                &mobile,
                &"نوبت".into(),
            )
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
    let mut tx = app.tx(&alpha).await;
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
    let today = desk_core::calendar::today_in_iran();
    let holiday = today + Duration::days(2);
    let mut tx = app.tx(&alpha).await;
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
        let mut tx = app.tx(&alpha).await;
        let id = sqlx::query_scalar("select id from appointments")
            .fetch_one(&mut *tx)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        id
    };
    // The confirmation SMS is queued with the booking.
    let mut tx = app.tx(&alpha).await;
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
        let mut tx = app.tx(&alpha).await;
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

/// A service with desk hours of its own books only in them and from its own places; a booking
/// moves to another open slot (and not to a full one); the day before, each live booking gets
/// one reminder SMS; none of it reaches or is reached from another municipality.
#[tokio::test]
async fn own_desk_hours_moves_and_reminders() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    // The shared desk: 08:00-10:00, one place per hour, every day.
    set_hours(&app, &alpha, 1).await;
    let admin = app.staff_sign_in(&alpha, "admin-alpha").await;
    let settings = app.get_as(&admin, "alpha.test", "/staff/settings").await;
    let scsrf = settings.csrf();
    let own_hours = |service: &'static str, weekday: u32| {
        let (admin, scsrf, app) = (admin.clone(), scsrf.clone(), &app);
        async move {
            app.post_form(
                Some(&admin),
                "alpha.test",
                "/staff/settings/desk-hours",
                &[
                    ("csrf", &scsrf),
                    ("service", service),
                    ("weekday", &weekday.to_string()),
                    ("opens", "۱۱:۰۰"),
                    ("closes", "12:00"),
                    ("slot_minutes", "30"),
                    ("capacity", "1"),
                ],
            )
            .await
        }
    };
    // MUN-URB-001 has its own desk, 11:00-12:00 in half hours, every day.
    for weekday in 1..=7 {
        let res = own_hours("MUN-URB-001", weekday).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    }
    let res = own_hours("NOT-A-SERVICE", 1).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    let settings = app.get_as(&admin, "alpha.test", "/staff/settings").await;
    assert!(settings.text.contains("همه خدمت‌ها (میز مشترک)"));

    let tomorrow = (desk_core::calendar::today_in_iran() + Duration::days(1)).to_string();
    let first = app
        .citizen_sign_in(&alpha, "alpha.test", "09125656565")
        .await;
    let own = app
        .get_as(&first, "alpha.test", "/services/MUN-URB-001/appointments")
        .await;
    assert!(
        own.text.contains(&format!("{tomorrow} 11:00"))
            && own.text.contains(&format!("{tomorrow} 11:30"))
    );
    assert!(
        !own.text.contains(&format!("{tomorrow} 08:00")),
        "a service with its own hours is not offered the shared desk's"
    );
    let book = |cookie: String, service: &'static str, slot: String| {
        let app = &app;
        async move {
            let page = app
                .get_as(
                    &cookie,
                    "alpha.test",
                    &format!("/services/{service}/appointments"),
                )
                .await;
            app.post_form(
                Some(&cookie),
                "alpha.test",
                &format!("/services/{service}/appointments"),
                &[("csrf", &page.csrf()), ("slot", &slot)],
            )
            .await
        }
    };
    assert_eq!(
        book(first.clone(), "MUN-URB-001", format!("{tomorrow} 08:00"))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not this service's hours"
    );
    assert_eq!(
        book(first.clone(), "MUN-URB-001", format!("{tomorrow} 11:00"))
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    // The shared desk's 08:00 place is untouched by it; a second citizen takes it.
    let second = app
        .citizen_sign_in(&alpha, "alpha.test", "09127878787")
        .await;
    assert_eq!(
        book(second.clone(), "MUN-REV-002", format!("{tomorrow} 08:00"))
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        book(second.clone(), "MUN-URB-001", format!("{tomorrow} 11:00"))
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "the own desk's one place is taken"
    );

    // Moving: to a full slot is refused and changes nothing; to an open one frees the old place.
    let id = app
        .scalar(
            &alpha,
            "select id from appointments where mobile = '+989125656565'",
        )
        .await;
    let mine = app.get_as(&first, "alpha.test", "/my-appointments").await;
    assert!(mine.text.contains(&format!("/appointments/{id}/move")));
    let page = app
        .get_as(&first, "alpha.test", &format!("/appointments/{id}/move"))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains(&format!("{tomorrow} 11:30")) && page.text.contains("جابه‌جایی"));
    let move_to = |slot: String| {
        let (first, csrf, app) = (first.clone(), page.csrf(), &app);
        async move {
            app.post_form(
                Some(&first),
                "alpha.test",
                &format!("/appointments/{id}/move"),
                &[("csrf", &csrf), ("slot", &slot)],
            )
            .await
        }
    };
    let sms_before = app
        .scalar(
            &alpha,
            "select count(*) from notifications where kind = 'appointment'",
        )
        .await;
    assert_eq!(
        move_to(format!("{tomorrow} 08:00")).await.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "not a slot of this service"
    );
    assert_eq!(
        move_to(format!("{tomorrow} 11:30")).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.scalar(&alpha, &format!("select count(*) from appointments where id = {id} and starts = '11:30' and status = 'booked'"))
            .await,
        1
    );
    assert_eq!(
        app.scalar(
            &alpha,
            "select count(*) from notifications where kind = 'appointment'"
        )
        .await,
        sms_before + 1,
        "one confirmation of the new time"
    );
    assert_eq!(
        book(second.clone(), "MUN-URB-001", format!("{tomorrow} 11:00"))
            .await
            .status,
        StatusCode::SEE_OTHER,
        "the old place is free again"
    );
    // Another municipality's citizen cannot move or even see it.
    let stranger = app.citizen_sign_in(&beta, "beta.test", "09125656565").await;
    let res = app
        .get_as(&stranger, "beta.test", &format!("/appointments/{id}/move"))
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);

    // Reminders: tomorrow's three live bookings, once each; beta's sweep reminds none of them.
    let today = desk_core::calendar::today_in_iran();
    let swept = desk_jobs::sla::run(&app.db.platform, &beta, today)
        .await
        .unwrap();
    assert_eq!(swept.reminded, 0);
    let swept = desk_jobs::sla::run(&app.db.platform, &alpha, today)
        .await
        .unwrap();
    assert_eq!(swept.reminded, 3);
    let again = desk_jobs::sla::run(&app.db.platform, &alpha, today)
        .await
        .unwrap();
    assert_eq!(again.reminded, 0);
    assert_eq!(
        app.scalar(&alpha, "select count(*) from notifications where kind = 'appointment' and body like 'یادآوری:%' and body like '%ساعت ۱۱:۳۰%'")
            .await,
        1
    );
    assert_eq!(
        app.scalar(
            &beta,
            "select count(*) from notifications where body like 'یادآوری:%'"
        )
        .await,
        0
    );
    app.db.finish().await;
}
