//! Satisfaction surveys, the municipality's report and the operators' dashboard: the survey
//! link arrives by SMS when a request closes, works once and only on its own municipality's
//! host; staff can record answers at the desk; report figures equal a known fixture; the
//! dashboard carries no personal data and operators see only their province.

use axum::http::StatusCode;
use chrono::NaiveDate;
use desk_authz::{Authorizer, Role, Subject};
use desk_core::jobs::JobPayload;
use desk_db::Tenant;
use desk_db::requests::{self, Actor, Change, Channel, EventInput, NewRequest, Submitted};
use desk_tests::{TEHRAN, TestApp};

/// Files a request with a fixed filing and promised day, as the intake stores it.
pub(crate) async fn filed(
    app: &TestApp,
    tenant: &Tenant,
    mobile: &str,
    channel: Channel,
    days: (NaiveDate, NaiveDate),
    registered_by: Option<i64>,
) -> requests::Request {
    let mut tx = app.tx(tenant).await;
    let service = desk_db::catalog::published_services(&mut tx, None, None)
        .await
        .unwrap()
        .into_iter()
        .next()
        .unwrap();
    let mut form = serde_json::Map::new();
    form.insert("full_name".into(), "نرگس محمدی".into());
    let submitted = requests::submit(
        &mut tx,
        &NewRequest {
            service_id: service.id,
            service_code: service.card.code.clone(),
            citizen_id: None,
            mobile: mobile.to_owned(),
            national_code: Some("0499370899".into()),
            applicant_name: Some("نرگس محمدی".into()),
            channel,
            form,
            submitted_on: days.0,
            promised_on: days.1,
            state: "submitted".into(),
            state_due_on: None,
            registered_by,
            unit_name: Some("معاونت شهرسازی".into()),
            idempotency_key: None,
            files: Vec::new(),
        },
    )
    .await
    .unwrap();
    // What follows from a filing (the webhook), as the use case queues it.
    let (Submitted::Created(r), Some(event_id)) = submitted else {
        panic!("not created")
    };
    desk_app::effects::dispatch(
        &mut tx,
        desk_app::effects::Happened::Filed {
            request: &r,
            event_id,
            sms: None,
        },
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    r
}

/// Closes a request (as a staff member delivering it) and backdates its closing day.
async fn close(app: &TestApp, tenant: &Tenant, r: &requests::Request, staff: i64, on: NaiveDate) {
    let mut tx = app.tx(tenant).await;
    desk_app::effects::change(
        &mut tx,
        r,
        &Change {
            event: EventInput {
                actor: Actor::Staff(staff),
                action: "deliver",
                from_state: Some(&r.state),
                to_state: "delivered",
                note: None,
                unit_id: None,
            },
            state_due_on: None,
            closes: true,
            files: Vec::new(),
        },
        None,
    )
    .await
    .unwrap();
    // The fixture's closing day (the change records today).
    sqlx::query("update requests set closed_on = $2 where id = $1")
        .bind(r.id)
        .bind(on)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

pub(crate) async fn admin_id(app: &TestApp, tenant: &Tenant) -> i64 {
    let mut tx = app.tx(tenant).await;
    let id = desk_db::staff::staff_by_username(&mut tx, &format!("admin-{}", tenant.slug))
        .await
        .unwrap()
        .unwrap()
        .id;
    tx.commit().await.unwrap();
    id
}

fn full_answer(score: &str) -> Vec<(String, String)> {
    desk_core::survey::AXES
        .iter()
        .map(|a| (format!("q_{}", a.key), score.to_owned()))
        .collect()
}

#[tokio::test]
async fn a_closed_request_sends_a_single_use_survey_link_that_works_only_on_its_own_host() {
    let logs = desk_tests::capture_logs();
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    desk_tests::add_sms_account(&app.db.platform, &alpha, "kavenegar", "alpha-key").await;
    let (fake, outbox) = desk_jobs::fake_sms::spawn().await.unwrap();
    let workers = app.db.start_workers(&fake).await;

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
    let admin = admin_id(&app, &alpha).await;
    close(&app, &alpha, &r, admin, today).await;

    let mut link = None;
    for _ in 0..600 {
        if let Some(m) = outbox
            .messages()
            .into_iter()
            .find(|m| m.to == "09121112345" && m.text.contains("/survey/"))
        {
            link = Some(m.text);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let text = link.unwrap_or_else(|| {
        let t = logs.text();
        let lines: Vec<&str> = t
            .lines()
            .filter(|l| l.contains("desk_") || l.contains("ERROR") || l.contains("WARN"))
            .collect();
        panic!(
            "no survey SMS: {}",
            lines[lines.len().saturating_sub(60)..].join("\n")
        )
    });
    assert!(
        text.contains(&r.tracking_code) && !text.contains("{link}"),
        "{text}"
    );
    let url = text
        .split_whitespace()
        .find(|w| w.contains("/survey/"))
        .unwrap();
    assert!(url.starts_with("http://alpha.test/survey/"), "{url}");
    let path = url.trim_start_matches("http://alpha.test");
    let token = path.trim_start_matches("/survey/");
    assert_eq!(token.len(), 64);
    // Only a hash of the token is stored, and nowhere else in the outbox row.
    assert_eq!(
        app.scalar(&alpha,
            &format!("select count(*) from surveys where token_hash = sha256(convert_to('{token}', 'UTF8'))")
        )
        .await,
        1
    );
    assert_eq!(
        app.scalar(
            &alpha,
            &format!("select count(*) from notifications where body like '%{token}%'")
        )
        .await,
        0
    );

    // Another municipality's host does not know the link (nor does a guess).
    assert_eq!(
        app.get("beta.test", path).await.status,
        StatusCode::NOT_FOUND
    );
    let mut answer = full_answer("4");
    answer.push(("comment".into(), "برخورد کارکنان خوب بود".into()));
    let fields: Vec<(&str, &str)> = answer
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(
        app.post_form(None, "beta.test", path, &fields).await.status,
        StatusCode::NOT_FOUND
    );
    let guess = format!("/survey/{}", "ab".repeat(32));
    assert_eq!(
        app.get("alpha.test", &guess).await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.get("alpha.test", "/survey/short").await.status,
        StatusCode::NOT_FOUND
    );

    // The page asks the six national axes.
    let page = app.get("alpha.test", path).await;
    assert_eq!(page.status, StatusCode::OK);
    for a in desk_core::survey::AXES {
        assert!(page.text.contains(a.name_fa), "{}", a.key);
        assert!(page.text.contains(&format!("name=\"q_{}\"", a.key)));
    }
    // Missing answers are named; nothing is stored.
    let partial = app.post_form(None, "alpha.test", path, &fields[..3]).await;
    assert_eq!(partial.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(partial.text.contains("به این پرسش پاسخ دهید"));
    assert_eq!(
        app.scalar(&alpha, "select count(*) from survey_answers")
            .await,
        0
    );
    // A cross-site post is refused.
    let forged = app
        .send(
            "POST",
            "alpha.test",
            path,
            Some("q_overall=1"),
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("sec-fetch-site", "cross-site"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let done = app.post_form(None, "alpha.test", path, &fields).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text);
    assert!(done.text.contains("سپاسگزاریم"));
    assert_eq!(
        app.scalar(&alpha, "select count(*) from survey_answers")
            .await,
        6
    );
    // Used once: a second answer is refused and changes nothing.
    let again = app
        .post_form(
            None,
            "alpha.test",
            path,
            &full_answer("1")
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect::<Vec<_>>(),
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(
        app.scalar(&alpha, "select sum(score)::int8 from survey_answers")
            .await,
        24
    );
    assert!(
        app.get("alpha.test", path)
            .await
            .text
            .contains("پیش‌تر پاسخ داده شده")
    );
    // Beta has no survey at all.
    assert_eq!(app.scalar(&beta, "select count(*) from surveys").await, 0);

    workers.stop().await;
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

#[tokio::test]
async fn desk_surveys_reports_and_the_dashboard_match_the_fixture_without_personal_data() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    let admin = admin_id(&app, &alpha).await;
    let today = desk_core::calendar::today_in_iran();
    // A fixture in one Jalali month (Azar 1405 = 2026-11-22 .. 2026-12-21) unless today is
    // elsewhere: then the same shape in today's month.
    let month = desk_core::report::Period::month_of(today);
    let (first, _) = month.days().unwrap();
    let day = |n: i64| first + chrono::Duration::days(n);
    // A: on time; B: late; C: on time; D: open and overdue (promised before today) unless the
    // month has just begun.
    let a = filed(
        &app,
        &alpha,
        "+989121110001",
        Channel::Web,
        (day(1), day(8)),
        None,
    )
    .await;
    let b = filed(
        &app,
        &alpha,
        "+989121110002",
        Channel::InPerson,
        (day(2), day(4)),
        Some(admin),
    )
    .await;
    let c = filed(
        &app,
        &alpha,
        "+989121110003",
        Channel::Api,
        (day(3), day(20)),
        None,
    )
    .await;
    let dd = filed(
        &app,
        &alpha,
        "+989121110004",
        Channel::Web,
        (day(3), day(3)),
        None,
    )
    .await;
    close(&app, &alpha, &a, admin, day(6)).await;
    close(&app, &alpha, &b, admin, day(7)).await;
    close(&app, &alpha, &c, admin, day(9)).await;
    // Beta has a request of its own that must never appear in alpha's figures.
    filed(
        &app,
        &beta,
        "+989121119999",
        Channel::Web,
        (day(1), day(2)),
        None,
    )
    .await;

    // Staff record two surveys at the desk; an open request has none.
    let staff = app
        .staff_sign_in(&alpha, &format!("admin-{}", alpha.slug))
        .await;
    for (r, score, comment) in [(&a, "4", "سریع بود"), (&c, "2", "کند بود")] {
        let page = app
            .get_as(
                &staff,
                "alpha.test",
                &format!("/staff/requests/{}/survey", r.tracking_code),
            )
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let csrf = page.csrf();
        let mut fields = full_answer(score);
        fields.push(("comment".into(), comment.into()));
        fields.push(("csrf".into(), csrf));
        let f: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let res = app
            .post_form(
                Some(&staff),
                "alpha.test",
                &format!("/staff/requests/{}/survey", r.tracking_code),
                &f,
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
        // Once only.
        let res = app
            .post_form(
                Some(&staff),
                "alpha.test",
                &format!("/staff/requests/{}/survey", r.tracking_code),
                &f,
            )
            .await;
        assert_eq!(res.status, StatusCode::CONFLICT);
    }
    assert_eq!(
        app.scalar(
            &alpha,
            &format!(
                "select count(*) from surveys where answered_via = 'desk' and recorded_by = {admin}"
            )
        )
        .await,
        2
    );
    let open = app
        .get_as(
            &staff,
            "alpha.test",
            &format!("/staff/requests/{}/survey", dd.tracking_code),
        )
        .await;
    assert_eq!(open.status, StatusCode::CONFLICT);
    // Alpha's staff cannot reach beta's requests' surveys (beta's host refuses their session).
    let other = app
        .get_as(
            &staff,
            "beta.test",
            &format!("/staff/requests/{}/survey", a.tracking_code),
        )
        .await;
    assert_ne!(other.status, StatusCode::OK);

    // The report equals what the fixture says.
    let (from, to) = month.days().unwrap();
    let mut tx = app.tx(&alpha).await;
    let report = desk_db::reports::report(&mut tx, from, to, today)
        .await
        .unwrap();
    let calendar = desk_db::settings::working_calendar(&mut tx, from)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let t = &report.total;
    assert_eq!((t.requests, t.closed, t.on_time), (4, 3, 2));
    assert_eq!(t.overdue, i64::from(day(3) < today));
    let taken: i64 = [(day(1), day(6)), (day(2), day(7)), (day(3), day(9))]
        .iter()
        .map(|(s, e)| i64::from(calendar.working_days_between(*s, *e)))
        .sum();
    assert_eq!(t.days_sum, taken);
    assert_eq!((t.surveys, t.overall_sum, t.overall_n), (2, 6, 2));
    let channels: Vec<(&str, i64)> = report
        .by_channel
        .iter()
        .map(|(k, t)| (k.as_str(), t.requests))
        .collect();
    assert_eq!(channels, [("web", 2), ("api", 1), ("in_person", 1)]);
    assert_eq!(report.by_registrar, [("مدیر".to_owned(), 1)]);
    assert_eq!(report.by_closer.len(), 1);
    assert_eq!(report.by_closer[0].1.closed, 3);
    let transparency = report
        .scores
        .iter()
        .find(|q| q.key == "transparency")
        .unwrap();
    assert_eq!((transparency.sum, transparency.n), (6, 2));

    // The page and the CSV show the same figures.
    let page = app
        .get_as(
            &staff,
            "alpha.test",
            &format!("/staff/reports?period={}", month.key()),
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains("<svg"));
    assert!(
        page.text.contains("۶۶٫۷") || page.text.contains("۶۶.۷"),
        "on-time rate"
    );
    let (status, ctype, body) = app
        .get_bytes_as(
            &staff,
            "alpha.test",
            &format!("/staff/reports.csv?period={}", month.key()),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(ctype.unwrap().starts_with("text/csv"));
    assert!(body.starts_with(&[0xEF, 0xBB, 0xBF]), "UTF-8 with BOM");
    let csv = String::from_utf8(body).unwrap();
    let total_line = csv.lines().nth(1).unwrap();
    assert!(total_line.starts_with("کل,"), "{total_line}");
    assert!(total_line.contains(",4,3,66.7,"), "{total_line}");
    assert!(csv.contains("شفافیت فرآیند,3.0,2"), "{csv}");
    assert_eq!(
        app.get_as(&staff, "alpha.test", "/staff/reports?period=1405-13")
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    // Integrators read the same figures with a `reports:read` key of this municipality only.
    let query = "query($p: String!) { report(period: $p) { total { requests closed closedOnTime overdue overallSatisfaction } byChannel { key tally { requests } } satisfaction { key mean answers } } }";
    let vars = serde_json::json!({ "p": month.key() });
    let reader = crate::api::key_for(&app, &alpha, &["reports:read"]).await;
    let v = crate::api::gql(&app, "alpha.test", Some(&reader), query, vars.clone()).await;
    assert_eq!(v["errors"], serde_json::Value::Null, "{v}");
    let total = &v["data"]["report"]["total"];
    assert_eq!(
        (
            total["requests"].as_i64(),
            total["closed"].as_i64(),
            total["closedOnTime"].as_i64()
        ),
        (Some(4), Some(3), Some(2))
    );
    assert_eq!(total["overallSatisfaction"].as_f64(), Some(3.0));
    let requests_only = crate::api::key_for(&app, &alpha, &["requests:read"]).await;
    let v = crate::api::gql(
        &app,
        "alpha.test",
        Some(&requests_only),
        query,
        vars.clone(),
    )
    .await;
    assert_eq!(crate::api::code(&v), "FORBIDDEN", "{v}");
    let beta_reader = crate::api::key_for(&app, &beta, &["reports:read"]).await;
    let v = crate::api::gql(&app, "alpha.test", Some(&beta_reader), query, vars).await;
    assert!(v["data"]["report"].is_null(), "{v}");
    assert_ne!(crate::api::code(&v), "");

    // Changes queued one debounced refresh (per minute window), not one per change.
    let queued: i64 = sqlx::query_scalar(
        "select count(*) from apalis.jobs where job_type = $1 and convert_from(job, 'UTF8') like $2",
    )
    .bind(desk_core::jobs::RefreshIndicators::QUEUE)
    .bind(format!("%{}%", alpha.id))
    .fetch_one(app.db.platform.pool_for_infrastructure())
    .await
    .unwrap();
    assert!(
        (1..=2).contains(&queued),
        "{queued} refresh jobs for 5 changes"
    );

    // The job's work: alpha's indicators reach the platform table; beta's stay its own.
    desk_jobs::refresh_indicators::refresh(&app.db.platform, alpha.id)
        .await
        .unwrap();
    desk_jobs::refresh_indicators::refresh(&app.db.platform, beta.id)
        .await
        .unwrap();
    let key = desk_core::report::month_key(first);
    let rows = app.db.platform.indicators(None, key, key).await.unwrap();
    let alpha_row = rows.iter().find(|r| r.tenant_id == alpha.id).unwrap();
    let m = &alpha_row.sums;
    assert_eq!((m.requests, m.web, m.in_person, m.api), (4, 2, 1, 1));
    assert_eq!((m.closed, m.closed_on_time), (3, 2));
    assert_eq!(m.duration_days_sum, taken);
    assert_eq!((m.surveys, m.axes[5]), (2, (6, 2)));
    let beta_row = rows.iter().find(|r| r.tenant_id == beta.id).unwrap();
    assert_eq!((beta_row.sums.requests, beta_row.sums.surveys), (1, 0));

    // Operators: the platform admin and Isfahan's operator see alpha; Tehran's does not. No
    // page carries a name, mobile, national code or comment of a citizen.
    let db = &app.db.platform;
    let authz = Authorizer::load(db).await.unwrap();
    let hash = desk_tenant_admin::auth::hash_password("a-long-test-password").unwrap();
    let root = db
        .ensure_platform_user("root", "مدیر سامانه", "platform_admin", None)
        .await
        .unwrap();
    let tehran = db
        .ensure_platform_user(
            "tehran-op",
            "کارشناس تهران",
            "province_operator",
            Some(TEHRAN),
        )
        .await
        .unwrap();
    for id in [root, tehran] {
        db.set_password_hash(id, &hash).await.unwrap();
    }
    authz
        .assign(&Subject::PlatformUser(root), Role::PlatformAdmin, None)
        .await
        .unwrap();
    authz
        .assign(
            &Subject::PlatformUser(tehran),
            Role::ProvinceOperator(TEHRAN),
            None,
        )
        .await
        .unwrap();
    let app = app.rebuild().await;
    let sign_in = |user: &'static str| {
        let app = &app;
        async move {
            let res = app
                .post_form(
                    None,
                    "admin.test",
                    "/login",
                    &[("username", user), ("password", "a-long-test-password")],
                )
                .await;
            assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
            res.cookie.unwrap()
        }
    };
    let root_cookie = sign_in("root").await;
    let board = app
        .get_as(
            &root_cookie,
            "admin.test",
            &format!("/dashboard?period={}", month.key()),
        )
        .await;
    assert_eq!(board.status, StatusCode::OK, "{}", board.text);
    assert!(board.text.contains(&alpha.name_fa) && board.text.contains(&beta.name_fa));
    assert!(board.text.contains("میانه استان"));
    for personal in [
        "نرگس",
        "محمدی",
        "0499370899",
        "۰۴۹۹۳۷۰۸۹۹",
        "912111",
        "۹۱۲۱۱۱",
        "سریع بود",
        "کند بود",
    ] {
        assert!(!board.text.contains(personal), "dashboard shows {personal}");
    }
    let tehran_cookie = sign_in("tehran-op").await;
    let board = app
        .get_as(
            &tehran_cookie,
            "admin.test",
            &format!("/dashboard?period={}", month.key()),
        )
        .await;
    assert_eq!(board.status, StatusCode::OK);
    assert!(!board.text.contains(&alpha.name_fa) && !board.text.contains(&beta.name_fa));

    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

#[tokio::test]
async fn the_questionnaire_hides_axes_and_adds_questions_per_municipality() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    let staff = app
        .staff_sign_in(&alpha, &format!("admin-{}", alpha.slug))
        .await;
    let page = app
        .get_as(&staff, "alpha.test", "/staff/settings/survey")
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    let csrf = page.csrf();
    let post = |fields: Vec<(&'static str, String)>| {
        let (app, staff, csrf) = (&app, &staff, csrf.clone());
        async move {
            let mut f: Vec<(&str, String)> = fields;
            f.push(("csrf", csrf));
            let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.post_form(Some(staff), "alpha.test", "/staff/settings/survey", &f)
                .await
        }
    };
    assert_eq!(
        post(vec![("op", "hide".into()), ("key", "mastery".into())])
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        post(vec![
            ("op", "add".into()),
            ("label_fa", "پارکینگ کافی بود؟".into())
        ])
        .await
        .status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        post(vec![("op", "add".into()), ("label_fa", " ".into())])
            .await
            .status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        post(vec![("op", "hide".into()), ("key", "nope".into())])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // Without the CSRF token nothing changes.
    let forged = app
        .post_form(
            Some(&staff),
            "alpha.test",
            "/staff/settings/survey",
            &[("op", "hide"), ("key", "overall")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    let mut tx = app.tx(&alpha).await;
    let q = desk_db::surveys::questionnaire(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    let asked: Vec<&str> = q
        .iter()
        .filter(|q| !q.hidden)
        .map(|q| q.key.as_str())
        .collect();
    assert_eq!(
        asked,
        [
            "transparency",
            "responsiveness",
            "time",
            "systematic",
            "overall",
            "c1"
        ]
    );
    // Beta's questionnaire is untouched.
    let mut tx = app.tx(&beta).await;
    let q = desk_db::surveys::questionnaire(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(q.iter().filter(|q| !q.hidden).count(), 6);
    assert!(q.iter().all(|q| q.axis_fa.is_some()));

    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}
