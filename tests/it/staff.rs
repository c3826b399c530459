//! The staff portal: one-time-link sign-in, sessions per municipality, and settings whose
//! secrets are sealed and never shown, logged or exported in clear.

use axum::http::StatusCode;
use desk_authz::{Authorizer, Role, Subject};
use desk_core::PublicUrls;
use desk_core::secret::{MasterKey, Sealed};
use desk_tenant_admin::Actor;
use desk_tests::{TEST_MASTER_KEY, TestApp};

const SECRET: &str = "kn-SECRET-4f7a9c1e";

#[tokio::test]
async fn staff_sign_in_and_settings_keep_secrets_sealed_and_per_municipality() {
    let logs = desk_tests::capture_logs();

    let app = TestApp::new().await;
    let authz = Authorizer::load(&app.db.platform).await.unwrap();
    authz
        .ensure_default_policies(&app.db.platform.province_ids().await.unwrap())
        .await
        .unwrap();
    let alpha = desk_tests::onboard(&app.db.platform, &authz, "alpha").await;
    let beta = desk_tests::onboard(&app.db.platform, &authz, "beta").await;
    let mut tx = app.tx(&alpha).await;
    let clerk = desk_db::staff::insert_staff(&mut tx, "clerk", "کارمند", None, false)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    authz
        .assign(
            &Subject::Staff {
                tenant: alpha.id,
                id: clerk.id,
            },
            Role::DeskStaff,
            Some(alpha.id),
        )
        .await
        .unwrap();
    let app = app.rebuild().await;

    // The link shows a page first (previewers do not use it up); a POST signs in, once.
    let path = app.staff_sign_in_path(&alpha, "admin-alpha").await;
    let page = app.get("alpha.test", &path).await;
    assert!(page.status == StatusCode::OK && page.text.contains("ورود"));
    // Alpha's link is worthless on beta's host, and stays usable on alpha's.
    assert_eq!(
        app.send("POST", "beta.test", &path, None, &[]).await.status,
        StatusCode::UNAUTHORIZED
    );
    let admin = app.staff_sign_in_with("alpha.test", &path).await;
    assert_eq!(
        app.send("POST", "alpha.test", &path, None, &[])
            .await
            .status,
        StatusCode::UNAUTHORIZED,
        "one use"
    );

    let settings = app.get_as(&admin, "alpha.test", "/staff/settings").await;
    assert_eq!(settings.status, StatusCode::OK);
    let csrf = settings.csrf();
    // Alpha's session means nothing on beta's host.
    assert_eq!(
        app.get_as(&admin, "beta.test", "/staff/settings")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );

    let added = app
        .post_form(
            Some(&admin),
            "alpha.test",
            "/staff/settings/sms",
            &[
                ("csrf", &csrf),
                ("provider", "kavenegar"),
                ("label", "خط اصلی"),
                ("sender_line", "10004346"),
                ("api_key", SECRET),
            ],
        )
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.text);
    let incomplete = app
        .post_form(
            Some(&admin),
            "alpha.test",
            "/staff/settings/sms",
            &[
                ("csrf", &csrf),
                ("provider", "magfa"),
                ("label", "مگفا"),
                ("sender_line", "3000"),
                ("username", "u"),
            ],
        )
        .await;
    assert_eq!(incomplete.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(incomplete.text.contains("کامل نیست"));
    let forged = app
        .post_form(
            Some(&admin),
            "alpha.test",
            "/staff/settings/theme",
            &[("csrf", "nope"), ("brand", "#112233")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    for (path, fields) in [
        ("/staff/settings/theme", vec![("brand", "#123abc")]),
        (
            "/staff/settings/contact",
            vec![
                ("phone", "031-3222"),
                ("email", "desk@alpha.ir"),
                ("address", "میدان امام"),
            ],
        ),
        (
            "/staff/settings/work-week",
            vec![("off_4", "on"), ("off_5", "on")],
        ),
        (
            "/staff/settings/holidays",
            vec![("op", "add"), ("day", "۱۴۰۵/۰۱/۰۱"), ("title", "نوروز")],
        ),
    ] {
        let mut form = vec![("csrf", csrf.as_str())];
        form.extend(fields);
        let res = app.post_form(Some(&admin), "alpha.test", path, &form).await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{path}: {}", res.text);
    }
    let bad_day = app
        .post_form(
            Some(&admin),
            "alpha.test",
            "/staff/settings/holidays",
            &[
                ("csrf", &csrf),
                ("op", "add"),
                ("day", "1405/12/31"),
                ("title", "x"),
            ],
        )
        .await;
    assert_eq!(bad_day.status, StatusCode::UNPROCESSABLE_ENTITY);

    let page = app.get_as(&admin, "alpha.test", "/staff/settings").await;
    for shown in [
        "خط اصلی",
        "10004346",
        "ثبت‌شده در",
        "نوروز",
        "۱۴۰۵/۰۱/۰۱",
        "#123abc",
        "desk@alpha.ir",
    ] {
        assert!(page.text.contains(shown), "{shown}");
    }
    assert!(!page.text.contains(SECRET), "credentials are write-only");
    let home = app.get("alpha.test", "/").await;
    assert!(
        home.text.contains("--brand: #123abc"),
        "the theme token reaches the portal"
    );

    // At rest: sealed for alpha; the plaintext opens only with alpha's id.
    let mut tx = app.tx(&alpha).await;
    let accounts = desk_db::settings::list_sms_accounts(&mut tx).await.unwrap();
    let sealed: Sealed = desk_db::settings::sealed_sms_credentials(&mut tx, accounts[0].id)
        .await
        .unwrap()
        .unwrap();
    let week = desk_db::settings::get_setting(&mut tx, "work_week")
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(week["days_off"], serde_json::json!([4, 5]));
    assert!(
        !sealed
            .ciphertext
            .windows(SECRET.len())
            .any(|w| w == SECRET.as_bytes())
    );
    let key = MasterKey::from_hex(TEST_MASTER_KEY).unwrap();
    let opened = String::from_utf8(
        key.open(
            alpha.id,
            &format!("sms_account:{}", accounts[0].id),
            &sealed,
        )
        .unwrap(),
    )
    .unwrap();
    assert!(opened.contains(SECRET));
    assert!(
        key.open(beta.id, &format!("sms_account:{}", accounts[0].id), &sealed)
            .is_err()
    );

    // A desk clerk may look, not change.
    let clerk_cookie = app.staff_sign_in(&alpha, "clerk").await;
    let clerk_page = app
        .get_as(&clerk_cookie, "alpha.test", "/staff/settings")
        .await;
    assert_eq!(
        clerk_page.status,
        StatusCode::FORBIDDEN,
        "settings are the admin's"
    );
    let clerk_csrf = app
        .get_as(&clerk_cookie, "alpha.test", "/staff")
        .await
        .csrf();
    let denied = app
        .post_form(
            Some(&clerk_cookie),
            "alpha.test",
            "/staff/settings/theme",
            &[("csrf", &clerk_csrf), ("brand", "#000000")],
        )
        .await;
    assert_eq!(denied.status, StatusCode::FORBIDDEN);

    // An export carries the sealed credentials, never the plaintext.
    let root_id = app
        .db
        .platform
        .ensure_platform_user("root", "مدیر", "platform_admin", None)
        .await
        .unwrap();
    authz
        .assign(&Subject::PlatformUser(root_id), Role::PlatformAdmin, None)
        .await
        .unwrap();
    let root = Actor::User {
        id: root_id,
        username: "root".into(),
    };
    let mut tx = app.tx(&alpha).await;
    let (api_key, _) = desk_db::api_keys::create(
        &mut tx,
        "export",
        &["requests:read".to_owned()],
        None,
        None,
        None,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let archive =
        desk_tenant_admin::archive::export(&app.db.platform, &authz, &root, &alpha.slug, "test")
            .await
            .unwrap();
    assert!(!archive.to_string().contains(SECRET));
    assert!(
        archive["tables"].get("staff_sessions").is_none(),
        "sessions never leave"
    );
    let copy = desk_tenant_admin::archive::import(
        &app.db.platform,
        &authz,
        Some(&key),
        &root,
        "test",
        &archive,
        desk_core::TenantSlug::parse("alpha-copy").unwrap(),
        "test",
    )
    .await
    .unwrap();
    // Alpha's API key came along as a hash only, revoked: it opens nothing on the copy.
    assert!(!archive.to_string().contains(&api_key));
    let mut tx = app.tx(&copy).await;
    assert!(
        desk_db::api_keys::authenticate(&mut tx, &api_key)
            .await
            .unwrap()
            .is_none()
    );
    tx.commit().await.unwrap();
    // Alpha's session is worthless on the copy; the copy's credentials open under its own id.
    assert_eq!(
        app.get_as(&admin, "alpha-copy.test", "/staff").await.status,
        StatusCode::UNAUTHORIZED
    );
    let mut tx = app.tx(&copy).await;
    let resealed = desk_db::settings::sealed_sms_credentials(&mut tx, accounts[0].id)
        .await
        .unwrap()
        .unwrap();
    tx.commit().await.unwrap();
    let purpose = format!("sms_account:{}", accounts[0].id);
    assert!(
        String::from_utf8(key.open(copy.id, &purpose, &resealed).unwrap())
            .unwrap()
            .contains(SECRET)
    );
    assert!(key.open(alpha.id, &purpose, &resealed).is_err());

    // "Test send" goes through the worker and the real adapter to the fake provider.
    let (fake, outbox) = desk_jobs::fake_sms::spawn().await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // The worker runs on its own pool, as `desk worker` does in its own process.
    let worker_db = app.db.second_pool(6).await;
    let worker = tokio::spawn(desk_jobs::run_workers(
        worker_db.clone(),
        PublicUrls {
            scheme: "http".into(),
            port: None,
        },
        Some(key.clone()),
        desk_jobs::sms::Endpoints::all_at(&fake),
        desk_jobs::outbound::Outbound::default(),
        async {
            let _ = stop_rx.await;
        },
    ));
    let added_bad = app
        .post_form(
            Some(&admin),
            "alpha.test",
            "/staff/settings/sms",
            &[
                ("csrf", &csrf),
                ("provider", "smsir"),
                ("label", "خط دوم"),
                ("sender_line", "30004505"),
                ("api_key", "bad-key"),
            ],
        )
        .await;
    assert_eq!(added_bad.status, StatusCode::SEE_OTHER);
    let mut tx = app.tx(&alpha).await;
    let all = desk_db::settings::list_sms_accounts(&mut tx).await.unwrap();
    tx.commit().await.unwrap();
    for account in &all {
        let res = app
            .post_form(
                Some(&admin),
                "alpha.test",
                &format!("/staff/settings/sms/{}/test", account.id),
                &[("csrf", &csrf), ("to", "09121112233")],
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    }
    let bad_number = app
        .post_form(
            Some(&admin),
            "alpha.test",
            &format!("/staff/settings/sms/{}/test", all[0].id),
            &[("csrf", &csrf), ("to", "123")],
        )
        .await;
    assert_eq!(bad_number.status, StatusCode::UNPROCESSABLE_ENTITY);
    let mut page = String::new();
    for _ in 0..300 {
        page = app
            .get_as(&admin, "alpha.test", "/staff/settings")
            .await
            .text;
        if page.contains("فرستاده شد") && page.contains("پذیرفته نشد") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    stop_tx.send(()).unwrap();
    worker.await.unwrap().unwrap();
    worker_db.close().await;
    assert!(
        page.contains("پیام آزمایشی فرستاده شد"),
        "the good account sent"
    );
    assert!(
        page.contains("اطلاعات ورود به سامانه پیامک پذیرفته نشد"),
        "the bad key is reported"
    );
    let sent = outbox.messages();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (
            sent[0].provider,
            sent[0].account.as_str(),
            sent[0].to.as_str()
        ),
        ("kavenegar", SECRET, "09121112233")
    );
    assert!(sent[0].text.contains(&alpha.name_fa));
    assert!(!page.contains(SECRET));

    // The logo: real type from the content, bounded size, served only on its own host.
    let png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR-not-a-full-image-but-a-png-header";
    let huge = [png.as_slice(), &vec![0u8; 300 * 1024]].concat();
    let svg = b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>";
    for (bytes, what) in [(&huge[..], "oversized"), (&svg[..], "svg named .png")] {
        let res = app
            .post_multipart(
                &admin,
                "alpha.test",
                "/staff/settings/logo",
                &[("csrf", &csrf)],
                ("logo", "logo.png", bytes),
            )
            .await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{what}");
        assert!(res.text.contains("۲۰۰ کیلوبایت"), "{what}: Persian message");
    }
    assert_eq!(
        app.get_bytes("alpha.test", "/theme/logo").await.0,
        StatusCode::NOT_FOUND,
        "nothing stored"
    );
    let ok = app
        .post_multipart(
            &admin,
            "alpha.test",
            "/staff/settings/logo",
            &[("csrf", &csrf)],
            ("logo", "logo.png", png),
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text);
    let (status, content_type, bytes) = app.get_bytes("alpha.test", "/theme/logo").await;
    assert_eq!(
        (status, content_type.as_deref(), bytes.as_slice()),
        (StatusCode::OK, Some("image/png"), png.as_slice())
    );
    assert_eq!(
        app.get_bytes("beta.test", "/theme/logo").await.0,
        StatusCode::NOT_FOUND,
        "beta has no logo"
    );
    assert!(
        app.get("alpha.test", "/")
            .await
            .text
            .contains("/theme/logo")
    );
    // The header image, the same way (a larger allowance); beta has none.
    let header = app
        .post_multipart(
            &admin,
            "alpha.test",
            "/staff/settings/header",
            &[("csrf", &csrf)],
            ("header", "header.png", png),
        )
        .await;
    assert_eq!(header.status, StatusCode::SEE_OTHER, "{}", header.text);
    let (status, content_type, _) = app.get_bytes("alpha.test", "/theme/header").await;
    assert_eq!(
        (status, content_type.as_deref()),
        (StatusCode::OK, Some("image/png"))
    );
    assert!(
        app.get("alpha.test", "/")
            .await
            .text
            .contains("url(\"/theme/header\")")
    );
    assert_eq!(
        app.get_bytes("beta.test", "/theme/header").await.0,
        StatusCode::NOT_FOUND
    );
    assert!(
        !app.get("beta.test", "/")
            .await
            .text
            .contains("/theme/header")
    );

    let signed_out = app
        .post_form(
            Some(&admin),
            "alpha.test",
            "/staff/sign-out",
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get_as(&admin, "alpha.test", "/staff").await.status,
        StatusCode::UNAUTHORIZED
    );

    let captured = logs.text();
    assert!(captured.contains("request"), "logs were captured");
    assert!(!captured.contains(SECRET), "no credentials in logs");
    let token = path.trim_start_matches("/staff/sign-in/");
    assert!(
        !captured.contains(token) || !captured.contains(&admin[admin.find('=').unwrap() + 1..])
    );
    assert!(
        !captured.contains(&admin[admin.find('=').unwrap() + 1..]),
        "no session tokens in logs"
    );
    app.db.finish().await;
}

/// A municipality picks a theme and a brand colour (refused when white text on it is hard to
/// read); its pages render in that theme and colour; another municipality's stay as they are.
#[tokio::test]
async fn a_municipality_picks_its_theme_and_a_readable_brand_colour() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    let admin = app.staff_sign_in(&alpha, "admin-alpha").await;
    let settings = app.get_as(&admin, "alpha.test", "/staff/settings").await;
    assert!(settings.text.contains("فیروزه") && settings.text.contains("سپید"));
    let csrf = settings.csrf();
    let save = |theme: &'static str, brand: &'static str| {
        let (app, admin, csrf) = (&app, admin.clone(), csrf.clone());
        async move {
            app.post_form(
                Some(&admin),
                "alpha.test",
                "/staff/settings/theme",
                &[("csrf", &csrf), ("theme", theme), ("brand", brand)],
            )
            .await
        }
    };
    let pale = save("firouzeh", "#7fdbff").await;
    assert_eq!(pale.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(pale.text.contains("کنتراست"), "{}", pale.text);
    assert_eq!(
        save("../base", "#0b6b73").await.status,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        save("firouzeh", "#0B6B73").await.status,
        StatusCode::SEE_OTHER
    );
    for path in ["/", "/services", "/faq", "/charter"] {
        let page = app.get("alpha.test", path).await;
        assert!(page.text.contains("--brand: #0b6b73"), "{path}");
        assert!(
            page.text.contains("repeating-linear-gradient"),
            "{path}: firouzeh's styles"
        );
        let other = app.get("beta.test", path).await;
        assert!(
            !other.text.contains("#0b6b73") && !other.text.contains("repeating-linear-gradient")
        );
    }
    assert_eq!(save("sepid", "#0b6b73").await.status, StatusCode::SEE_OTHER);
    let home = app.get("alpha.test", "/").await;
    assert!(
        home.text
            .contains("border-bottom: .5rem solid var(--brand)")
            && !home.text.contains("repeating-linear-gradient")
    );
    // Beta's admin changes beta only.
    let admin_b = app.staff_sign_in(&beta, "admin-beta").await;
    let page_b = app.get_as(&admin_b, "beta.test", "/staff/settings").await;
    let res = app
        .post_form(
            Some(&admin_b),
            "beta.test",
            "/staff/settings/theme",
            &[
                ("csrf", &page_b.csrf()),
                ("theme", "firouzeh"),
                ("brand", "#123456"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert!(
        app.get("alpha.test", "/")
            .await
            .text
            .contains("--brand: #0b6b73")
    );
    assert!(
        app.get("beta.test", "/")
            .await
            .text
            .contains("--brand: #123456")
    );
    app.db.finish().await;
}

/// Template overrides: a draft changes nothing until published; the preview renders it in the
/// sandbox; script is refused on save; an override cannot read files or run forever (the site
/// falls back to the theme's page); output stays escaped; other municipalities are untouched.
#[tokio::test]
async fn template_overrides_are_previewed_published_and_sandboxed() {
    let (app, alpha, beta) = desk_tests::two_municipalities().await;
    let admin = app.staff_sign_in(&alpha, "admin-alpha").await;
    let editor = app
        .get_as(&admin, "alpha.test", "/staff/settings/templates")
        .await;
    assert_eq!(editor.status, StatusCode::OK);
    assert!(editor.text.contains("charter.html.j2") && editor.text.contains("{% extends"));
    let csrf = editor.csrf();
    let draft = |name: &'static str, source: String| {
        let (app, admin, csrf) = (&app, admin.clone(), csrf.clone());
        async move {
            app.post_form(
                Some(&admin),
                "alpha.test",
                &format!("/staff/settings/templates/{name}"),
                &[("csrf", &csrf), ("source", &source)],
            )
            .await
        }
    };
    let publish = || {
        let (app, admin, csrf) = (&app, admin.clone(), csrf.clone());
        async move {
            app.post_form(
                Some(&admin),
                "alpha.test",
                "/staff/settings/templates/publish",
                &[("csrf", &csrf)],
            )
            .await
        }
    };
    // Script and unescaped output are refused on save.
    for bad in [
        "{% extends \"layout.html.j2\" %}{% block content %}<script>alert(1)</script>{% endblock %}",
        "{% extends \"layout.html.j2\" %}{% block content %}<img src=x onerror=alert(1)>{% endblock %}",
        "{% extends \"layout.html.j2\" %}{% block content %}{{ tenant.name | safe }}{% endblock %}",
    ] {
        let res = draft("charter.html.j2", bad.to_owned()).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
    }
    // A draft: the preview shows it, the site does not until it is published.
    let charter = "{% extends \"layout.html.j2\" %}{% block content %}<h1>منشور ویژه {{ tenant.name }}</h1>{% endblock %}";
    let res = draft("charter.html.j2", charter.to_owned()).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let preview = app
        .get_as(
            &admin,
            "alpha.test",
            "/staff/settings/templates/charter.html.j2/preview",
        )
        .await;
    assert!(preview.text.contains("منشور ویژه"), "{}", preview.text);
    assert!(
        !app.get("alpha.test", "/charter")
            .await
            .text
            .contains("منشور ویژه")
    );
    assert_eq!(publish().await.status, StatusCode::SEE_OTHER);
    assert!(
        app.get("alpha.test", "/charter")
            .await
            .text
            .contains("منشور ویژه")
    );
    assert!(
        !app.get("beta.test", "/charter")
            .await
            .text
            .contains("منشور ویژه")
    );

    // Output stays escaped in an override.
    let faq =
        "{% extends \"layout.html.j2\" %}{% block content %}<p>جست‌وجو: {{ q }}</p>{% endblock %}";
    assert_eq!(
        draft("faq.html.j2", faq.to_owned()).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(publish().await.status, StatusCode::SEE_OTHER);
    let page = app
        .get("alpha.test", "/faq?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E")
        .await;
    assert!(page.text.contains("جست‌وجو: &lt;script&gt;") && !page.text.contains("<script>alert"));

    // No file access: an include of a path outside the theme finds nothing.
    for path in [
        "/etc/passwd",
        "../../../../etc/passwd",
        "../base/static/fonts/OFL.txt",
    ] {
        let source = format!(
            "{{% extends \"layout.html.j2\" %}}{{% block content %}}{{% include \"{path}\" %}}{{% endblock %}}"
        );
        assert_eq!(
            draft("sla.html.j2", source).await.status,
            StatusCode::SEE_OTHER
        );
        let preview = app
            .get_as(
                &admin,
                "alpha.test",
                "/staff/settings/templates/sla.html.j2/preview",
            )
            .await;
        assert_eq!(preview.status, StatusCode::UNPROCESSABLE_ENTITY, "{path}");
        assert!(
            !preview.text.contains("root:x:0:0") && !preview.text.contains("SIL OPEN FONT LICENSE")
        );
    }
    // No endless work: the preview says so, and once published the site serves the theme's page.
    let endless = "{% extends \"layout.html.j2\" %}{% block content %}{% for i in range(10000) %}{% for j in range(10000) %}{{ i }}{% endfor %}{% endfor %}{% endblock %}";
    assert_eq!(
        draft("sla.html.j2", endless.to_owned()).await.status,
        StatusCode::SEE_OTHER
    );
    let preview = app
        .get_as(
            &admin,
            "alpha.test",
            "/staff/settings/templates/sla.html.j2/preview",
        )
        .await;
    assert_eq!(preview.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(preview.text.contains("بیش از اندازه"), "{}", preview.text);
    assert_eq!(publish().await.status, StatusCode::SEE_OTHER);
    let started = std::time::Instant::now();
    let sla = app.get("alpha.test", "/sla").await;
    assert_eq!(sla.status, StatusCode::OK);
    assert!(sla.text.contains("تعهد") && started.elapsed() < std::time::Duration::from_secs(10));
    // An empty draft goes back to the theme's page.
    assert_eq!(
        draft("charter.html.j2", String::new()).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(publish().await.status, StatusCode::SEE_OTHER);
    assert!(
        !app.get("alpha.test", "/charter")
            .await
            .text
            .contains("منشور ویژه")
    );
    // Beta's admin cannot reach alpha's drafts.
    let admin_b = app.staff_sign_in(&beta, "admin-beta").await;
    let editor_b = app
        .get_as(&admin_b, "beta.test", "/staff/settings/templates")
        .await;
    assert!(!editor_b.text.contains("جست‌وجو: {{ q }}"));
    app.db.finish().await;
}
