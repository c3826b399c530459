//! Electronic requests end to end: a citizen signs in by SMS code, files a request with
//! documents, gets a tracking code and promised date, follows it; staff move it through the
//! workflow from the inbox. Bad input stores nothing; nothing crosses municipalities.

use axum::http::StatusCode;
use desk_authz::{Authorizer, Role, Subject};
use desk_core::tracking::TrackingCode;
use desk_tests::TestApp;

pub(crate) const PDF: &[u8] = b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n";
const ELF: &[u8] = b"\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00 not a pdf";

/// A published service of the template that asks for documents, and how many.
pub(crate) fn service_with_documents() -> (String, usize) {
    let card = desk_core::template::national_template()
        .unwrap()
        .iter()
        .find(|c| (2..=4).contains(&c.documents.len()))
        .unwrap();
    (card.code.clone(), card.documents.len())
}

fn files_on_disk(app: &TestApp) -> usize {
    fn walk(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir).map_or(0, |entries| {
            entries
                .flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() { walk(&p) } else { 1 }
                })
                .sum()
        })
    }
    walk(&app.uploads)
}

/// The applicant's fields of the default form.
pub(crate) fn applicant(key: &str) -> Vec<(&'static str, String)> {
    vec![
        ("applicant_national_code", "۰۴۹۹۳۷۰۸۹۹".to_owned()),
        (
            "full_name",
            "زهرا <script>alert(1)</script> احمدی".to_owned(),
        ),
        ("postal_code", "8173653111".to_owned()),
        ("address", "اصفهان، خیابان چهارباغ، کوچه ۱۲".to_owned()),
        ("description", "درخواست آزمایشی".to_owned()),
        ("idempotency_key", key.to_owned()),
    ]
}

pub(crate) async fn submit(
    app: &TestApp,
    cookie: &str,
    host: &str,
    code: &str,
    fields: &[(&str, String)],
    files: &[(&str, &str, &[u8])],
) -> desk_tests::TestResponse {
    let form = app
        .get_as(cookie, host, &format!("/services/{code}/apply"))
        .await;
    assert_eq!(form.status, StatusCode::OK, "{}", form.text);
    let csrf = form.csrf();
    let mut all: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.push(("csrf", &csrf));
    app.post_multipart_files(
        cookie,
        host,
        &format!("/services/{code}/apply"),
        &all,
        files,
    )
    .await
}

fn doc_names(n: usize) -> Vec<String> {
    (1..=n).map(|i| format!("doc_{i}")).collect()
}

#[tokio::test]
async fn a_citizen_files_a_request_follows_it_and_staff_move_it_through_the_workflow() {
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    let (code, docs) = service_with_documents();
    let names = doc_names(docs);
    let files: Vec<(&str, &str, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), "../../etc/سند مالکیت.pdf", PDF))
        .collect();

    // Signing in: a code goes out by SMS (sealed at rest, only its hash kept).
    let citizen = app
        .citizen_sign_in(&alpha, "alpha.test", "۰۹۱۲ ۳۴۵ ۶۷۸۹")
        .await;
    assert_eq!(
        app.scalar(
            &alpha,
            "select count(*) from citizens where mobile = '+989123456789'"
        )
        .await,
        1
    );
    assert_eq!(
        app.scalar(&alpha, "select count(*) from notifications where kind = 'sign_in_code' and body like '%{code}%' and secret_ciphertext is not null").await,
        1
    );

    // Filing: one request, its first event, its files, and an SMS with its job.
    let res = submit(
        &app,
        &citizen,
        "alpha.test",
        &code,
        &applicant("idem-key-0000000001"),
        &files,
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let location = res.location.clone().unwrap();
    let tracking = location.trim_start_matches("/requests/").to_owned();
    TrackingCode::parse(&tracking).expect("a tracking code with a valid check digit");
    assert_eq!(app.scalar(&alpha, "select count(*) from requests").await, 1);
    assert_eq!(
        app.scalar(&alpha, "select count(*) from request_events")
            .await,
        1
    );
    assert_eq!(
        app.scalar(&alpha, "select count(*) from request_files")
            .await,
        i64::try_from(docs).unwrap()
    );
    assert_eq!(
        app.scalar(
            &alpha,
            "select count(*) from notifications where kind = 'request_event'"
        )
        .await,
        1
    );
    let queued: i64 = sqlx::query_scalar(
        "select count(*) from apalis.jobs where job_type = 'send_sms' and status = 'Pending'",
    )
    .fetch_one(app.db.platform.pool_for_infrastructure())
    .await
    .unwrap();
    assert_eq!(queued, 2, "the sign-in code and the receipt SMS");
    assert_eq!(files_on_disk(&app), docs);

    // The receipt: tracking code, promised date in Jalali, steps; names are stored safely.
    let page = app.get_as(&citizen, "alpha.test", &location).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("رسید خدمت") && page.text.contains("موعد پاسخ"));
    assert!(page.text.contains("&lt;script&gt;") && !page.text.contains("<script>alert"));
    assert!(!page.text.contains("../"));
    assert_eq!(
        app.scalar(
            &alpha,
            "select count(*) from request_files where file_name like '%/%' or file_name like '%..%'"
        )
        .await,
        0
    );

    // A double submit (refresh, retry) returns the first request.
    let again = submit(
        &app,
        &citizen,
        "alpha.test",
        &code,
        &applicant("idem-key-0000000001"),
        &files,
    )
    .await;
    assert_eq!(again.location.as_deref(), Some(location.as_str()));
    assert_eq!(app.scalar(&alpha, "select count(*) from requests").await, 1);
    assert_eq!(files_on_disk(&app), docs, "the replay's files are not kept");

    // Public lookup needs the matching mobile number.
    let found = app
        .post_form(
            None,
            "alpha.test",
            "/track",
            &[("tracking_code", &tracking), ("mobile", "09123456789")],
        )
        .await;
    assert_eq!(found.status, StatusCode::OK);
    assert!(found.text.contains("ثبت شده"));
    let wrong = app
        .post_form(
            None,
            "alpha.test",
            "/track",
            &[("tracking_code", &tracking), ("mobile", "09120000000")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::NOT_FOUND);
    assert!(!wrong.text.contains("ثبت شده"));

    // My requests lists it; the file downloads as an attachment with its real type.
    let mine = app.get_as(&citizen, "alpha.test", "/my-requests").await;
    assert!(mine.text.contains(&tracking));
    let file_id = app
        .scalar(&alpha, "select min(id) from request_files")
        .await;
    let dl = app
        .get_as(
            &citizen,
            "alpha.test",
            &format!("{location}/files/{file_id}"),
        )
        .await;
    assert_eq!(dl.status, StatusCode::OK);
    assert!(dl.text.starts_with("%PDF-"));

    // Staff: the inbox shows it; an invalid transition is refused with a clear message.
    let admin = app.staff_sign_in(&alpha, "admin-alpha").await;
    let inbox = app.get_as(&admin, "alpha.test", "/staff/inbox").await;
    assert_eq!(inbox.status, StatusCode::OK);
    assert!(inbox.text.contains(&tracking));
    let view = app
        .get_as(&admin, "alpha.test", &format!("/staff/requests/{tracking}"))
        .await;
    assert_eq!(view.status, StatusCode::OK);
    let csrf = view.csrf();
    let act = |action: &'static str, note: &'static str| {
        let (admin, csrf, tracking) = (admin.clone(), csrf.clone(), tracking.clone());
        let app = &app;
        async move {
            app.post_form(
                Some(&admin),
                "alpha.test",
                &format!("/staff/requests/{tracking}/act"),
                &[("csrf", &csrf), ("action", action), ("note", note)],
            )
            .await
        }
    };
    let refused = act("deliver", "").await;
    assert_eq!(refused.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(refused.text.contains("ممکن نیست"), "{}", refused.text);
    assert_eq!(act("accept", "").await.status, StatusCode::SEE_OTHER);
    // Units: the admin adds one, joins it, and forwards the request there.
    let settings = app.get_as(&admin, "alpha.test", "/staff/settings").await;
    let scsrf = settings.csrf();
    let res = app
        .post_form(
            Some(&admin),
            "alpha.test",
            "/staff/settings/units",
            &[("csrf", &scsrf), ("name", "واحد درآمد")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let unit = app
        .scalar(&alpha, "select id from units where name = 'واحد درآمد'")
        .await;
    let me_id = app
        .scalar(
            &alpha,
            "select id from staff where username = 'admin-alpha'",
        )
        .await;
    let res = app
        .post_form(
            Some(&admin),
            "alpha.test",
            "/staff/settings/staff-unit",
            &[
                ("csrf", &scsrf),
                ("staff_id", &me_id.to_string()),
                ("unit_id", &unit.to_string()),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let before = app
        .get_as(&admin, "alpha.test", "/staff/inbox?scope=unit")
        .await;
    assert!(!before.text.contains(&tracking));
    let res = app
        .post_form(
            Some(&admin),
            "alpha.test",
            &format!("/staff/requests/{tracking}/act"),
            &[
                ("csrf", &csrf),
                ("action", "forward"),
                ("note", "برای بررسی عوارض"),
                ("unit_id", &unit.to_string()),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let after = app
        .get_as(&admin, "alpha.test", "/staff/inbox?scope=unit")
        .await;
    assert!(after.text.contains(&tracking));
    // Claiming puts it in "mine".
    let res = app
        .post_form(
            Some(&admin),
            "alpha.test",
            &format!("/staff/requests/{tracking}/assign"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let mine = app
        .get_as(&admin, "alpha.test", "/staff/inbox?scope=mine")
        .await;
    assert!(mine.text.contains(&tracking));
    let no_reason = act("reject", "").await;
    assert_eq!(no_reason.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        act("request_documents", "تصویر پروانه کسب را هم بفرستید.")
            .await
            .status,
        StatusCode::SEE_OTHER
    );

    // The citizen adds the documents; an executable posing as a PDF is refused.
    let page = app.get_as(&citizen, "alpha.test", &location).await;
    assert!(page.text.contains("ارسال مدارک تکمیلی"));
    let ccsrf = page.csrf();
    let exe = app
        .post_multipart(
            &citizen,
            "alpha.test",
            &format!("{location}/documents"),
            &[("csrf", &ccsrf)],
            ("extra", "license.pdf", ELF),
        )
        .await;
    assert_eq!(exe.status, StatusCode::UNPROCESSABLE_ENTITY);
    let ok = app
        .post_multipart(
            &citizen,
            "alpha.test",
            &format!("{location}/documents"),
            &[("csrf", &ccsrf)],
            ("extra", "license.pdf", PDF),
        )
        .await;
    assert!(ok.status.is_redirection(), "{}", ok.text);
    assert_eq!(
        app.scalar(&alpha, "select count(*) from request_files")
            .await,
        i64::try_from(docs + 1).unwrap()
    );

    assert_eq!(act("approve", "").await.status, StatusCode::SEE_OTHER);
    assert_eq!(act("deliver", "").await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.scalar(
            &alpha,
            "select count(*) from requests where state = 'delivered'"
        )
        .await,
        1
    );
    // Every step is on the timeline (submit, accept, forward, claim, documents asked and
    // given, approve, deliver); the notifying ones queued an SMS each (receipt, accept,
    // documents, approve, deliver).
    assert_eq!(
        app.scalar(&alpha, "select count(*) from request_events")
            .await,
        8
    );
    assert_eq!(
        app.scalar(
            &alpha,
            "select count(*) from notifications where kind = 'request_event'"
        )
        .await,
        5
    );
    let timeline = app.get_as(&citizen, "alpha.test", &location).await;
    assert!(timeline.text.contains("تحویل شده") && timeline.text.contains("تصویر پروانه کسب"));
    // A delivered request has left the open inbox.
    let inbox = app.get_as(&admin, "alpha.test", "/staff/inbox").await;
    assert!(!inbox.text.contains(&tracking));
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

#[tokio::test]
async fn bad_input_gets_a_clear_message_and_stores_nothing() {
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    let (code, docs) = service_with_documents();
    let names = doc_names(docs);
    let pdfs: Vec<(&str, &str, &[u8])> = names.iter().map(|n| (n.as_str(), "a.pdf", PDF)).collect();
    let citizen = app
        .citizen_sign_in(&alpha, "alpha.test", "09121111111")
        .await;

    let with = |field: &'static str, value: &str| {
        let mut f = applicant("idem-key-bad-input-01");
        f.retain(|(k, _)| *k != field);
        if !value.is_empty() {
            f.push((field, value.to_owned()));
        }
        f
    };
    // An invalid national code; a missing required field; a date or number out of range
    // would be the same path (unit-tested in desk-core).
    let res = submit(
        &app,
        &citizen,
        "alpha.test",
        &code,
        &with("applicant_national_code", "0499370898"),
        &pdfs,
    )
    .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.text.contains("«کد ملی متقاضی» معتبر نیست"),
        "{}",
        res.text
    );
    let res = submit(
        &app,
        &citizen,
        "alpha.test",
        &code,
        &with("address", ""),
        &pdfs,
    )
    .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text.contains("لازم است"));
    // What was typed is kept (escaped) so the citizen need not type it again.
    assert!(res.text.contains("&lt;script&gt;"));

    // A missing document, an executable named .pdf, an oversized file.
    let res = submit(
        &app,
        &citizen,
        "alpha.test",
        &code,
        &applicant("idem-key-bad-input-02"),
        &pdfs[1..],
    )
    .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut exe = pdfs.clone();
    exe[0] = (names[0].as_str(), "deed.pdf", ELF);
    let res = submit(
        &app,
        &citizen,
        "alpha.test",
        &code,
        &applicant("idem-key-bad-input-03"),
        &exe,
    )
    .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text.contains("PDF"), "{}", res.text);
    let mut big = PDF.to_vec();
    big.resize(6 * 1024 * 1024, b' ');
    let mut large = pdfs.clone();
    large[0] = (names[0].as_str(), "big.pdf", &big);
    let res = submit(
        &app,
        &citizen,
        "alpha.test",
        &code,
        &applicant("idem-key-bad-input-04"),
        &large,
    )
    .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);

    // A forged CSRF token, and a service that does not exist.
    let mut fields: Vec<(&str, &str)> = vec![("csrf", "forged")];
    let owned = applicant("idem-key-bad-input-05");
    fields.extend(owned.iter().map(|(k, v)| (*k, v.as_str())));
    let res = app
        .post_multipart_files(
            &citizen,
            "alpha.test",
            &format!("/services/{code}/apply"),
            &fields,
            &pdfs,
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);
    let res = app
        .get_as(&citizen, "alpha.test", "/services/NO-SUCH-1/apply")
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);

    // A malformed body is a clear 4xx, never a 5xx.
    let res = app
        .send_bytes(
            "POST",
            "alpha.test",
            &format!("/services/{code}/apply"),
            b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated".to_vec(),
            &[
                ("cookie", &citizen),
                ("content-type", "multipart/form-data; boundary=x"),
            ],
        )
        .await;
    assert!(res.status.is_client_error(), "{}", res.status);

    assert_eq!(app.scalar(&alpha, "select count(*) from requests").await, 0);
    assert_eq!(
        app.scalar(&alpha, "select count(*) from request_files")
            .await,
        0
    );
    assert_eq!(
        app.scalar(
            &alpha,
            "select count(*) from notifications where kind = 'request_event'"
        )
        .await,
        0
    );
    assert_eq!(files_on_disk(&app), 0, "rejected uploads leave no files");

    // Without a session the form sends the citizen to sign in.
    let res = app
        .get("alpha.test", &format!("/services/{code}/apply"))
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert!(
        res.location
            .unwrap()
            .starts_with("/sign-in?next=/services/")
    );
    app.db.finish().await;
}

#[tokio::test]
async fn sign_in_codes_expire_are_limited_and_never_stored_in_clear() {
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    // Without an SMS account, nothing claims a code was sent.
    let res = app
        .post_form(None, "alpha.test", "/sign-in", &[("mobile", "09121234567")])
        .await;
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(res.text.contains("هنوز راه‌اندازی نشده"), "{}", res.text);
    assert!(!res.text.contains("پیامک شد"));
    app.ensure_sms_account(&alpha).await;
    let send = |mobile: &'static str| {
        let app = &app;
        async move {
            app.post_form(None, "alpha.test", "/sign-in", &[("mobile", mobile)])
                .await
        }
    };
    // A malformed number is a Persian message, not a send.
    let res = send("0912345").await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text.contains("شماره همراه معتبر نیست"));

    // A sign-in posted from another site is refused (no SMS on a stranger's behalf).
    let forged = app
        .send(
            "POST",
            "alpha.test",
            "/sign-in",
            Some("mobile=09128080808"),
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("sec-fetch-site", "cross-site"),
            ],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.scalar(&alpha, "select count(*) from citizen_sign_in_codes")
            .await,
        0
    );

    // Three codes per number per ten minutes.
    for _ in 0..3 {
        assert_eq!(send("09122222222").await.status, StatusCode::OK);
    }
    assert_eq!(
        send("+989122222222").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(send("09123333333").await.status, StatusCode::OK);

    // The code itself is nowhere in the database in clear.
    let code = app.last_sign_in_code(&alpha, "09123333333").await;
    let clear = app.scalar(&alpha,
        &format!(
            "select count(*) from notifications where body like '%{code}%'
             union all select count(*) from citizen_sign_in_codes where encode(code_hash, 'escape') like '%{code}%'
             order by 1 desc limit 1"
        ),
    )
    .await;
    assert_eq!(clear, 0);

    // Wrong codes use up the attempts; then even the right code no longer works.
    let check = |code: String| {
        let app = &app;
        async move {
            app.post_form(
                None,
                "alpha.test",
                "/sign-in/code",
                &[("mobile", "09123333333"), ("code", &code)],
            )
            .await
        }
    };
    let wrong = if code == "000000" { "111111" } else { "000000" };
    for _ in 0..5 {
        assert_eq!(
            check(wrong.to_owned()).await.status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
    assert_eq!(
        check(code.clone()).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    // An expired code does not work either.
    let mut tx = app.tx(&alpha).await;
    sqlx::query("delete from citizen_sign_in_codes where mobile = '+989123333333'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(send("09124444444").await.status, StatusCode::OK);
    let code = app.last_sign_in_code(&alpha, "09124444444").await;
    let mut tx = app.tx(&alpha).await;
    sqlx::query("update citizen_sign_in_codes set expires_at = now() - interval '1 second'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let res = app
        .post_form(
            None,
            "alpha.test",
            "/sign-in/code",
            &[("mobile", "09124444444"), ("code", &code)],
        )
        .await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.cookie.is_none());
    app.db.finish().await;
}

#[tokio::test]
async fn requests_of_one_municipality_are_unreachable_from_another() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    let (code, docs) = service_with_documents();
    let names = doc_names(docs);
    let pdfs: Vec<(&str, &str, &[u8])> = names.iter().map(|n| (n.as_str(), "a.pdf", PDF)).collect();
    let mobile = "09125555555";
    let citizen_a = app.citizen_sign_in(&alpha, "alpha.test", mobile).await;
    let res = submit(
        &app,
        &citizen_a,
        "alpha.test",
        &code,
        &applicant("idem-key-cross-00001"),
        &pdfs,
    )
    .await;
    let location = res.location.unwrap();
    let tracking = location.trim_start_matches("/requests/").to_owned();
    let file_id = app
        .scalar(&alpha, "select min(id) from request_files")
        .await;

    // The same person signed in at beta, beta's staff, and beta's public lookup.
    let citizen_b = app.citizen_sign_in(&beta, "beta.test", mobile).await;
    let staff_b = app.staff_sign_in(&beta, "admin-beta").await;
    for (cookie, path) in [
        (&citizen_b, location.clone()),
        (&citizen_b, format!("{location}/files/{file_id}")),
        (&staff_b, format!("/staff/requests/{tracking}")),
        (
            &staff_b,
            format!("/staff/requests/{tracking}/files/{file_id}"),
        ),
    ] {
        let res = app.get_as(cookie, "beta.test", &path).await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{path}");
        assert!(!res.text.contains("%PDF"));
    }
    let mine_b = app.get_as(&citizen_b, "beta.test", "/my-requests").await;
    assert!(!mine_b.text.contains(&tracking));
    let inbox_b = app.get_as(&staff_b, "beta.test", "/staff/inbox").await;
    assert!(!inbox_b.text.contains(&tracking));
    let lookup = app
        .post_form(
            None,
            "beta.test",
            "/track",
            &[("tracking_code", &tracking), ("mobile", mobile)],
        )
        .await;
    assert_eq!(lookup.status, StatusCode::NOT_FOUND);
    // Beta's staff cannot act on it with beta's session and CSRF token.
    let view_b = app.get_as(&staff_b, "beta.test", "/staff/inbox").await;
    let home_b = app.get_as(&staff_b, "beta.test", "/staff").await;
    let csrf_b = home_b.csrf();
    let _ = view_b;
    let res = app
        .post_form(
            Some(&staff_b),
            "beta.test",
            &format!("/staff/requests/{tracking}/act"),
            &[("csrf", &csrf_b), ("action", "accept")],
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    // Alpha's cookies are worthless on beta's host and beta's on alpha's.
    let res = app.get_as(&citizen_a, "beta.test", "/my-requests").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let res = app.get_as(&citizen_b, "alpha.test", &location).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let res = app
        .get_as(
            &staff_b,
            "alpha.test",
            &format!("/staff/requests/{tracking}"),
        )
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    // A staff member without a role in alpha sees nothing there either.
    let mut tx = app.tx(&alpha).await;
    let nobody = desk_db::staff::insert_staff(&mut tx, "nobody", "بی‌نقش", None, false)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let nobody_cookie = app.staff_sign_in(&alpha, &nobody.username).await;
    let res = app
        .get_as(
            &nobody_cookie,
            "alpha.test",
            &format!("/staff/requests/{tracking}"),
        )
        .await;
    assert_eq!(res.status, StatusCode::FORBIDDEN);

    // Still untouched.
    assert_eq!(
        app.scalar(&alpha, "select count(*) from request_events")
            .await,
        1
    );
    assert_eq!(app.scalar(&beta, "select count(*) from requests").await, 0);
    // A desk clerk of alpha, given the role, does see it.
    let authz = Authorizer::load(&app.db.platform).await.unwrap();
    authz
        .assign(
            &Subject::Staff {
                tenant: alpha.id,
                id: nobody.id,
            },
            Role::DeskStaff,
            Some(alpha.id),
        )
        .await
        .unwrap();
    let app = app.rebuild().await;
    let res = app
        .get_as(
            &nobody_cookie,
            "alpha.test",
            &format!("/staff/requests/{tracking}"),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK);
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

#[tokio::test]
async fn sms_reach_citizens_through_their_own_municipalitys_provider() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    desk_tests::add_sms_account(&app.db.platform, &alpha, "kavenegar", "alpha-kavenegar-key").await;
    desk_tests::add_sms_account(&app.db.platform, &beta, "smsir", "beta-smsir-key").await;

    let citizen = app
        .citizen_sign_in(&alpha, "alpha.test", "09126666666")
        .await;
    let code = app.last_sign_in_code(&alpha, "09126666666").await;
    let (service, docs) = service_with_documents();
    let names = doc_names(docs);
    let pdfs: Vec<(&str, &str, &[u8])> = names.iter().map(|n| (n.as_str(), "a.pdf", PDF)).collect();
    let res = submit(
        &app,
        &citizen,
        "alpha.test",
        &service,
        &applicant("idem-key-sms-0000001"),
        &pdfs,
    )
    .await;
    let tracking = res
        .location
        .unwrap()
        .trim_start_matches("/requests/")
        .to_owned();
    app.citizen_sign_in(&beta, "beta.test", "09127777777").await;

    // Workers start after the sign-ins, so the test can still read the sealed codes.
    let (fake, outbox) = desk_jobs::fake_sms::spawn().await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker_db = app.db.second_pool(6).await;
    let worker = tokio::spawn(desk_jobs::run_workers(
        worker_db,
        desk_core::PublicUrls {
            scheme: "http".into(),
            port: None,
        },
        Some(desk_core::secret::MasterKey::from_hex(desk_tests::TEST_MASTER_KEY).unwrap()),
        desk_jobs::sms::Endpoints::all_at(&fake),
        desk_jobs::outbound::Outbound::default(),
        async {
            let _ = stop_rx.await;
        },
    ));
    let wait_for = |n: usize| {
        let outbox = outbox.clone();
        async move {
            for _ in 0..100 {
                if outbox.messages().len() >= n {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            outbox.messages()
        }
    };
    let sent = wait_for(3).await;
    assert_eq!(sent.len(), 3, "{sent:?}");
    let to_alpha: Vec<_> = sent.iter().filter(|m| m.to == "09126666666").collect();
    assert_eq!(to_alpha.len(), 2);
    assert!(
        to_alpha
            .iter()
            .all(|m| m.provider == "kavenegar" && m.account == "alpha-kavenegar-key")
    );
    assert!(
        to_alpha
            .iter()
            .any(|m| m.text.contains(&code) && !m.text.contains("{code}"))
    );
    assert!(to_alpha.iter().any(|m| m.text.contains(&tracking)));
    let to_beta: Vec<_> = sent.iter().filter(|m| m.to == "09127777777").collect();
    assert_eq!(to_beta.len(), 1);
    assert_eq!(
        (to_beta[0].provider, to_beta[0].account.as_str()),
        ("smsir", "beta-smsir-key")
    );
    assert!(to_beta[0].text.contains(&beta.name_fa) && !to_beta[0].text.contains(&alpha.name_fa));

    // Sent messages are marked and forget their secret; the timeline shows the SMS went out.
    for _ in 0..50 {
        if app
            .scalar(
                &alpha,
                "select count(*) from notifications where status = 'sent'",
            )
            .await
            == 2
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(
        app.scalar(&alpha, "select count(*) from notifications where status = 'sent' and secret_ciphertext is null and provider_message_id is not null").await,
        2
    );
    let page = app
        .get_as(&citizen, "alpha.test", &format!("/requests/{tracking}"))
        .await;
    assert!(page.text.contains("پیامک فرستاده شد"));
    // The admins' welcomes went to a number the fake provider says has no credit: recorded
    // as failed with that reason, and not retried (no credit is not a passing fault).
    for tenant in [&alpha, &beta] {
        for _ in 0..50 {
            if app.scalar(tenant, "select count(*) from notifications where kind = 'staff_welcome' and status = 'failed'").await == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert_eq!(
            app.scalar(tenant, "select count(*) from notifications where kind = 'staff_welcome' and status = 'failed' and error_code = 'no_credit'").await,
            1
        );
    }
    assert!(
        !sent
            .iter()
            .chain(outbox.messages().iter())
            .any(|m| m.to == "09130000000")
    );
    stop_tx.send(()).unwrap();
    worker.await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

#[tokio::test]
async fn the_admins_own_form_and_workflow_govern_new_requests() {
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    let (code, _) = service_with_documents();
    let admin = app.staff_sign_in(&alpha, "admin-alpha").await;
    let page = app
        .get_as(&admin, "alpha.test", &format!("/staff/catalog/{code}"))
        .await;
    assert!(page.text.contains("form_json") && page.text.contains("&quot;initial&quot;"));
    let csrf = page.csrf();
    let form = serde_json::json!({
        "type": "object",
        "x-order": ["applicant_national_code", "full_name", "usage", "visit_date"],
        "required": ["applicant_national_code", "full_name", "usage"],
        "properties": {
            "applicant_national_code": { "type": "string", "format": "national-code", "title": "کد ملی" },
            "full_name": { "type": "string", "title": "نام", "maxLength": 100 },
            "usage": { "type": "string", "title": "کاربری", "enum": ["home", "shop"], "x-enum-labels": ["مسکونی", "تجاری"] },
            "visit_date": { "type": "string", "format": "jalali-date", "title": "تاریخ بازدید", "formatMinimum": "1404/01/01" },
        },
    });
    // A two-step workflow: the desk answers at once.
    let workflow = serde_json::json!({
        "initial": "submitted",
        "states": [
            { "key": "submitted", "label_fa": "ثبت شده", "sla_days": 2, "terminal": false },
            { "key": "answered", "label_fa": "پاسخ داده شد", "sla_days": null, "terminal": true },
        ],
        "transitions": [
            { "action": "answer", "label_fa": "پاسخ", "from": ["submitted"], "to": "answered",
              "roles": ["desk_staff", "tenant_admin"], "notify_citizen": true, "needs_note": true },
        ],
    });
    let save = |form: String, workflow: String| {
        let (admin, csrf, code) = (admin.clone(), csrf.clone(), code.clone());
        let app = &app;
        async move {
            app.post_form(
                Some(&admin),
                "alpha.test",
                &format!("/staff/catalog/{code}"),
                &[
                    ("csrf", &csrf),
                    ("op", "save"),
                    ("title_fa", "خدمت با فرم ویژه"),
                    ("description_fa", "شرح"),
                    ("duration_days", "۳"),
                    ("unit_fa", "واحد شهرسازی"),
                    ("form_json", &form),
                    ("workflow_json", &workflow),
                ],
            )
            .await
        }
    };
    // Broken JSON and a workflow with a dangling transition are refused with a message.
    let res = save("{ not json".into(), String::new()).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(res.text.contains("JSON"));
    let mut dangling = workflow.clone();
    dangling["transitions"][0]["to"] = "nowhere".into();
    let res = save(form.to_string(), dangling.to_string()).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    let res = save(form.to_string(), workflow.to_string()).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let res = app
        .post_form(
            Some(&admin),
            "alpha.test",
            &format!("/staff/catalog/{code}"),
            &[("csrf", &csrf), ("op", "publish")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);

    let citizen = app
        .citizen_sign_in(&alpha, "alpha.test", "09121212121")
        .await;
    let apply = app
        .get_as(&citizen, "alpha.test", &format!("/services/{code}/apply"))
        .await;
    assert!(apply.text.contains("تجاری") && !apply.text.contains("doc_1"));
    let base = vec![
        ("applicant_national_code", "0499370899".to_owned()),
        ("full_name", "سارا".to_owned()),
        ("idempotency_key", "idem-key-own-form-001".to_owned()),
    ];
    let mut bad = base.clone();
    bad.push(("usage", "factory".to_owned()));
    bad.push(("visit_date", "1403/12/30".to_owned()));
    let res = submit(&app, &citizen, "alpha.test", &code, &bad, &[]).await;
    assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        res.text.contains("کاربری") && res.text.contains("تاریخ بازدید"),
        "{}",
        res.text
    );
    let mut good = base.clone();
    good.push(("usage", "shop".to_owned()));
    let res = submit(&app, &citizen, "alpha.test", &code, &good, &[]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let location = res.location.unwrap();
    let receipt = app.get_as(&citizen, "alpha.test", &location).await;
    assert!(receipt.text.contains("واحد شهرسازی") && receipt.text.contains("تجاری"));

    // Staff see only the workflow's own action; it needs a note.
    let tracking = location.trim_start_matches("/requests/");
    let view = app
        .get_as(&admin, "alpha.test", &format!("/staff/requests/{tracking}"))
        .await;
    assert!(view.text.contains("value=\"answer\"") && !view.text.contains("value=\"accept\""));
    let act = |action: &'static str, note: &'static str| {
        let (admin, csrf, path) = (
            admin.clone(),
            view.csrf(),
            format!("/staff/requests/{tracking}/act"),
        );
        let app = &app;
        async move {
            app.post_form(
                Some(&admin),
                "alpha.test",
                &path,
                &[("csrf", &csrf), ("action", action), ("note", note)],
            )
            .await
        }
    };
    assert_eq!(
        act("accept", "").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        act("answer", "").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        act("answer", "پروانه صادر شد.").await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        app.scalar(
            &alpha,
            "select count(*) from requests where state = 'answered' and closed"
        )
        .await,
        1
    );
    // Its own terminal state closes it: it leaves the open inbox.
    let inbox = app.get_as(&admin, "alpha.test", "/staff/inbox").await;
    assert!(!inbox.text.contains(tracking));
    app.db.finish().await;
}

#[tokio::test]
async fn documents_can_live_in_an_s3_compatible_store_under_the_municipalitys_prefix() {
    let (endpoint, objects) = desk_db::files::fake_s3::spawn("miz-key", "miz-secret")
        .await
        .unwrap();
    let app = TestApp::with_config(move |c| {
        c.storage.s3_endpoint = Some(endpoint.clone());
        c.storage.s3_bucket = "docs".into();
        c.storage.s3_access_key = "miz-key".into();
        c.storage.s3_secret_key = Some("miz-secret".into());
    })
    .await;
    let authz = Authorizer::load(&app.db.platform).await.unwrap();
    let alpha = desk_tests::onboard(&app.db.platform, &authz, "alpha").await;
    let app = app.rebuild().await;
    let (code, docs) = service_with_documents();
    let names = doc_names(docs);
    let pdfs: Vec<(&str, &str, &[u8])> = names.iter().map(|n| (n.as_str(), "a.pdf", PDF)).collect();
    let citizen = app
        .citizen_sign_in(&alpha, "alpha.test", "09123434343")
        .await;
    let res = submit(
        &app,
        &citizen,
        "alpha.test",
        &code,
        &applicant("idem-key-s3-000001"),
        &pdfs,
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let stored: Vec<String> = objects.lock().unwrap().keys().cloned().collect();
    assert_eq!(stored.len(), docs);
    assert!(
        stored
            .iter()
            .all(|k| k.starts_with(&format!("docs/t{}/", alpha.id))),
        "{stored:?}"
    );
    assert_eq!(files_on_disk(&app), 0, "nothing on the local disk");
    let file_id = app
        .scalar(&alpha, "select min(id) from request_files")
        .await;
    let dl = app
        .get_as(
            &citizen,
            "alpha.test",
            &format!("{}/files/{file_id}", res.location.unwrap()),
        )
        .await;
    assert_eq!(dl.status, StatusCode::OK);
    assert!(dl.text.starts_with("%PDF-"));
    app.db.finish().await;
}

#[tokio::test]
async fn a_walk_in_request_is_filed_by_desk_staff_and_lives_like_an_online_one() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    let (code, docs) = service_with_documents();
    let names = doc_names(docs);
    let pdfs: Vec<(&str, &str, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), "scan.pdf", PDF))
        .collect();
    let admin = app.staff_sign_in(&alpha, "admin-alpha").await;
    let desk = app.get_as(&admin, "alpha.test", "/staff/desk").await;
    assert_eq!(desk.status, StatusCode::OK);
    assert!(desk.text.contains(&format!("/staff/desk/{code}")));
    let form = app
        .get_as(&admin, "alpha.test", &format!("/staff/desk/{code}"))
        .await;
    assert!(form.text.contains("citizen_mobile") && form.text.contains("ثبت حضوری"));
    let csrf = form.csrf();
    let post = |mobile: &'static str| {
        let (admin, csrf, code) = (admin.clone(), csrf.clone(), code.clone());
        let pdfs = pdfs.clone();
        let app = &app;
        async move {
            let mut fields: Vec<(&str, String)> = applicant("idem-key-walk-in-0001");
            fields.push(("citizen_mobile", mobile.to_owned()));
            fields.push(("csrf", csrf));
            let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
            app.post_multipart_files(
                &admin,
                "alpha.test",
                &format!("/staff/desk/{code}"),
                &fields,
                &pdfs,
            )
            .await
        }
    };
    let bad = post("12345").await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(bad.text.contains("شماره همراه معتبر نیست"));
    let res = post("۰۹۱۲۷۱۷۱۷۱۷").await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let tracking = res
        .location
        .unwrap()
        .trim_start_matches("/staff/requests/")
        .to_owned();
    TrackingCode::parse(&tracking).unwrap();
    assert_eq!(
        app.scalar(&alpha, "select count(*) from requests r join staff s on s.id = r.registered_by where r.channel = 'in_person' and s.username = 'admin-alpha' and r.mobile = '+989127171717'").await,
        1
    );
    // Same lifecycle as online: first event, SMS with the tracking code, inbox, receipt.
    assert_eq!(
        app.scalar(
            &alpha,
            "select count(*) from notifications where kind = 'request_event'"
        )
        .await,
        1
    );
    let receipt = app
        .get_as(&admin, "alpha.test", &format!("/staff/requests/{tracking}"))
        .await;
    assert!(
        receipt.text.contains("رسید خدمت")
            && receipt.text.contains("حضوری")
            && receipt.text.contains("ثبت‌کننده")
    );
    let inbox = app.get_as(&admin, "alpha.test", "/staff/inbox").await;
    assert!(inbox.text.contains(&tracking));
    // The citizen finds it under "my requests" after signing in with that number.
    let citizen = app
        .citizen_sign_in(&alpha, "alpha.test", "09127171717")
        .await;
    let mine = app.get_as(&citizen, "alpha.test", "/my-requests").await;
    assert!(mine.text.contains(&tracking));
    // Another municipality's staff can neither see it nor file at alpha's desk.
    let staff_b = app.staff_sign_in(&beta, "admin-beta").await;
    let res = app
        .get_as(
            &staff_b,
            "beta.test",
            &format!("/staff/requests/{tracking}"),
        )
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND);
    let res = app
        .get_as(&staff_b, "alpha.test", &format!("/staff/desk/{code}"))
        .await;
    assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

/// The request row's dates, for reading pages that print them.
async fn request_dates(
    app: &TestApp,
    tenant: &desk_db::Tenant,
    tracking: &str,
) -> (chrono::NaiveDate, chrono::NaiveDate) {
    let mut tx = app.tx(tenant).await;
    let dates =
        sqlx::query_as("select submitted_on, promised_on from requests where tracking_code = $1")
            .bind(tracking)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    dates
}

/// A walk-in and an online request of the same service go through the same steps with the same
/// timeline and the same SMS, differing only in channel and registering staff; the printed
/// receipt (A4 and 80 mm) carries every required field on the municipality's letterhead (a
/// snapshot), the answer letter prints once decided, and no other municipality prints either.
#[tokio::test]
async fn walk_in_and_online_share_a_lifecycle_and_print_receipts_and_letters() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    let mut tx = app.tx(&alpha).await;
    desk_db::settings::put_setting(
        &mut tx,
        "contact",
        &serde_json::json!({ "phone": "031-3222-0000", "address": "میدان امام، ساختمان شهرداری", "email": "desk@alpha.example" }),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let (code, docs) = service_with_documents();
    let names = doc_names(docs);
    let pdfs: Vec<(&str, &str, &[u8])> = names
        .iter()
        .map(|n| (n.as_str(), "scan.pdf", PDF))
        .collect();
    // Online.
    let citizen = app
        .citizen_sign_in(&alpha, "alpha.test", "09125555555")
        .await;
    let res = submit(
        &app,
        &citizen,
        "alpha.test",
        &code,
        &applicant("idem-key-online-0001"),
        &pdfs,
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let online = res
        .location
        .unwrap()
        .trim_start_matches("/requests/")
        .to_owned();
    // Walk-in.
    let admin = app.staff_sign_in(&alpha, "admin-alpha").await;
    let form = app
        .get_as(&admin, "alpha.test", &format!("/staff/desk/{code}"))
        .await;
    let mut fields = applicant("idem-key-walk-in-0002");
    fields.push(("citizen_mobile", "09127171717".to_owned()));
    fields.push(("csrf", form.csrf()));
    let fields: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let res = app
        .post_multipart_files(
            &admin,
            "alpha.test",
            &format!("/staff/desk/{code}"),
            &fields,
            &pdfs,
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let walk_in = res
        .location
        .unwrap()
        .trim_start_matches("/staff/requests/")
        .to_owned();

    // The receipt, A4: every required field, on the letterhead, and the same as its snapshot
    // once the day's values are named.
    let receipt = app
        .get_as(
            &admin,
            "alpha.test",
            &format!("/staff/requests/{walk_in}/receipt"),
        )
        .await;
    assert_eq!(receipt.status, StatusCode::OK);
    let grouped = TrackingCode::parse(&walk_in).unwrap().grouped_fa();
    let (submitted, promised) = request_dates(&app, &alpha, &walk_in).await;
    // As the page writes a date (minijinja escapes the slashes).
    let date =
        |d: chrono::NaiveDate| desk_core::jalali::JalaliDate::persian_of(d).replace('/', "&#x2f;");
    for needed in [
        grouped.as_str(),
        &date(promised),
        "مراحل انجام",
        "هزینه",
        "واحد مسئول",
        "پیگیری",
        "alpha.test&#x2f;track",
        "ثبت‌کننده",
        "حضوری",
        "۰۳۱-۳۲۲۲-۰۰۰۰",
        "میدان امام",
        "@page { size: A4",
    ] {
        assert!(
            receipt.text.contains(needed),
            "receipt lacks {needed}: {}",
            receipt.text
        );
    }
    assert!(
        !receipt.text.contains("<script>alert"),
        "the applicant's name is escaped"
    );
    let named = receipt
        .text
        .replace(&grouped, "{tracking}")
        .replace(&date(promised), "{promised}")
        .replace(&date(submitted), "{today}")
        .replace(&date(desk_core::calendar::today_in_iran()), "{today}")
        .replace(&code, "{service}");
    desk_tests::assert_snapshot("receipt_a4.html", &named);
    let narrow = app
        .get_as(
            &admin,
            "alpha.test",
            &format!("/staff/requests/{walk_in}/receipt?layout=narrow"),
        )
        .await;
    assert!(
        narrow.text.contains("size: 80mm")
            && narrow.text.contains(&grouped)
            && narrow.text.contains("مراحل انجام")
    );
    // The citizen prints their own receipt too, without staff names.
    let walker = app
        .citizen_sign_in(&alpha, "alpha.test", "09127171717")
        .await;
    let own = app
        .get_as(
            &walker,
            "alpha.test",
            &format!("/requests/{walk_in}/receipt"),
        )
        .await;
    assert_eq!(own.status, StatusCode::OK);
    assert!(own.text.contains(&grouped) && !own.text.contains("ثبت‌کننده"));
    // No letter before a decision.
    let early = app
        .get_as(
            &admin,
            "alpha.test",
            &format!("/staff/requests/{walk_in}/letter"),
        )
        .await;
    assert_eq!(early.status, StatusCode::CONFLICT);

    // The same steps for both.
    for tracking in [&online, &walk_in] {
        let view = app
            .get_as(&admin, "alpha.test", &format!("/staff/requests/{tracking}"))
            .await;
        let csrf = view.csrf();
        for (action, note) in [
            ("accept", ""),
            ("approve", ""),
            ("deliver", "پروانه صادر و تحویل شد."),
        ] {
            let res = app
                .post_form(
                    Some(&admin),
                    "alpha.test",
                    &format!("/staff/requests/{tracking}/act"),
                    &[("csrf", &csrf), ("action", action), ("note", note)],
                )
                .await;
            assert_eq!(res.status, StatusCode::SEE_OTHER, "{action}: {}", res.text);
        }
    }
    let timeline = |tracking: &str| {
        format!(
            "select count(*) from (select e.id from request_events e join requests r on r.id = e.request_id
              where r.tracking_code = '{tracking}'
              order by e.id) x"
        )
    };
    let sms = |tracking: &str| {
        format!(
            "select count(*) from notifications n join request_events e on e.id = n.event_id
               join requests r on r.id = e.request_id where r.tracking_code = '{tracking}'"
        )
    };
    assert_eq!(app.scalar(&alpha, &timeline(&online)).await, 4);
    assert_eq!(app.scalar(&alpha, &timeline(&walk_in)).await, 4);
    assert_eq!(
        app.scalar(&alpha, &sms(&online)).await,
        app.scalar(&alpha, &sms(&walk_in)).await
    );
    assert!(app.scalar(&alpha, &sms(&walk_in)).await >= 2);
    let events = |tracking: String| {
        let app = &app;
        let alpha = alpha.clone();
        async move {
            let mut tx = app.tx(&alpha).await;
            let rows: Vec<(String, Option<String>, String, String)> = sqlx::query_as(
                "select e.action, e.from_state, e.to_state, e.actor_kind from request_events e
                   join requests r on r.id = e.request_id where r.tracking_code = $1 order by e.id",
            )
            .bind(tracking)
            .fetch_all(&mut *tx)
            .await
            .unwrap();
            tx.commit().await.unwrap();
            rows
        }
    };
    let online_events = events(online.clone()).await;
    let mut walk_in_events = events(walk_in.clone()).await;
    // The first step of a walk-in is taken by staff at the desk; of an online one, the citizen.
    assert_eq!(walk_in_events[0].3, "staff");
    assert_eq!(online_events[0].3, "citizen");
    walk_in_events[0].3 = "citizen".to_owned();
    assert_eq!(online_events, walk_in_events);
    assert_eq!(
        app.scalar(&alpha, &format!("select count(*) from requests where tracking_code in ('{online}', '{walk_in}') and ((channel = 'web' and registered_by is null) or (channel = 'in_person' and registered_by is not null))")).await,
        2
    );

    // The answer letter, on the letterhead, with the decision and its note.
    let letter = app
        .get_as(
            &admin,
            "alpha.test",
            &format!("/staff/requests/{walk_in}/letter"),
        )
        .await;
    assert_eq!(letter.status, StatusCode::OK);
    assert!(
        letter.text.contains("پروانه صادر و تحویل شد.")
            && letter.text.contains(&grouped)
            && letter.text.contains("۰۳۱-۳۲۲۲-۰۰۰۰")
    );
    let own_letter = app
        .get_as(
            &walker,
            "alpha.test",
            &format!("/requests/{walk_in}/letter?layout=narrow"),
        )
        .await;
    assert_eq!(own_letter.status, StatusCode::OK);

    // Another municipality prints neither: not its staff, not its citizens, not on its host.
    let staff_b = app.staff_sign_in(&beta, "admin-beta").await;
    let citizen_b = app.citizen_sign_in(&beta, "beta.test", "09127171717").await;
    for path in [
        format!("/staff/requests/{walk_in}/receipt"),
        format!("/staff/requests/{walk_in}/letter"),
    ] {
        assert_eq!(
            app.get_as(&staff_b, "beta.test", &path).await.status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            app.get_as(&staff_b, "alpha.test", &path).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    for path in [
        format!("/requests/{walk_in}/receipt"),
        format!("/requests/{walk_in}/letter"),
    ] {
        assert_eq!(
            app.get_as(&citizen_b, "beta.test", &path).await.status,
            StatusCode::NOT_FOUND
        );
    }
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}
