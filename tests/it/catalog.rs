//! The catalog: every municipality starts from the national template; citizens read the cards
//! and search them in Persian; one municipality's services never show on another's host.

use axum::http::StatusCode;
use desk_authz::Authorizer;
use desk_core::catalog::ServiceCard;
use desk_tenant_admin::{Actor, Onboarding};
use desk_tests::{TestApp, TestDb};

async fn onboarded(app: &TestApp, slug: &str) -> desk_db::Tenant {
    let authz = Authorizer::load(&app.db.platform).await.unwrap();
    let req = Onboarding {
        theme: desk_tenant_admin::DEFAULT_THEME.to_owned(),
        tenant: TestDb::new_tenant(slug),
        first_admin: None,
    };
    desk_tenant_admin::onboard(&app.db.platform, &authz, &Actor::Cli, "test", &req)
        .await
        .unwrap()
        .0
}

#[tokio::test]
async fn citizens_read_and_search_the_catalog_of_their_municipality_only() {
    let app = TestApp::new().await;
    let alpha = onboarded(&app, "alpha").await;
    let _beta = onboarded(&app, "beta").await;

    let home = app.get("alpha.test", "/").await;
    assert!(home.text.contains("/services?category=building") && home.text.contains("ساختمان"));
    let building = app.get("alpha.test", "/services?category=building").await;
    assert!(building.text.contains("MUN-BLD-001") && !building.text.contains("MUN-REV-002"));
    let list = app.get("alpha.test", "/services").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(
        list.text.contains("۲۴ خدمت"),
        "the whole national template is seeded"
    );

    let card = app.get("alpha.test", "/services/MUN-BLD-001").await;
    assert_eq!(card.status, StatusCode::OK);
    let template = desk_core::template::national_template().unwrap();
    let permit = template.iter().find(|c| c.code == "MUN-BLD-001").unwrap();
    let escaped = |s: &str| {
        s.replace('"', "&quot;")
            .replace('\'', "&#x27;")
            .replace('/', "&#x2f;")
    };
    for text in [
        &permit.title_fa,
        &permit.description_fa,
        &permit.fee_description_fa,
    ]
    .into_iter()
    .chain(permit.steps.iter())
    .chain(permit.documents.iter())
    .chain(permit.legal_basis.iter())
    .chain(permit.inquiries.iter().map(|i| &i.agency))
    .chain(permit.faq.iter().map(|f| &f.q))
    {
        assert!(
            card.text.contains(&escaped(text.trim())),
            "card shows {text}"
        );
    }
    assert!(
        card.text.contains("۳۰ روز کاری"),
        "duration in Persian digits"
    );
    // The whole card page, against its committed snapshot (`UPDATE_SNAPSHOTS=1` rewrites it).
    desk_tests::assert_snapshot("card_MUN-BLD-001.html", &card.text);
    // Every card of the template shows every field it has.
    for c in template.iter() {
        let page = app
            .get("alpha.test", &format!("/services/{}", c.code))
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", c.code);
        for text in [&c.title_fa, &c.description_fa, &c.fee_description_fa]
            .into_iter()
            .chain(c.steps.iter())
            .chain(c.documents.iter())
            .chain(c.legal_basis.iter())
            .chain(c.inquiries.iter().map(|i| &i.agency))
            .chain(c.faq.iter().map(|f| &f.q))
            .chain(c.faq.iter().map(|f| &f.a))
            .filter(|t| !t.trim().is_empty())
        {
            assert!(
                page.text.contains(&escaped(text.trim())),
                "{}: {text}",
                c.code
            );
        }
    }

    // Arabic yeh and kaf, ZWNJ and extra spaces still find the card.
    for q in ["پروانه ساختمانى", "پروانه   ساختماني", "building permit"]
    {
        let found = app
            .get("alpha.test", &format!("/services?q={}", urlencode(q)))
            .await;
        assert!(found.text.contains("MUN-BLD-001"), "{q}");
    }
    let none = app
        .get("alpha.test", "/services?q=%D8%B2%D8%B2%D8%B2%D8%B2")
        .await;
    assert!(none.text.contains("پیدا نشد"));

    // A service added in alpha only.
    let own = ServiceCard {
        code: "ALPHA-ONLY-1".into(),
        title_fa: "خدمت ویژه آلفا".into(),
        ..permit.clone()
    };
    let mut tx = app.tx(&alpha).await;
    desk_db::catalog::seed_published(&mut tx, &[own])
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(
        app.get("alpha.test", "/services/ALPHA-ONLY-1").await.status,
        StatusCode::OK
    );
    let elsewhere = app.get("beta.test", "/services/ALPHA-ONLY-1").await;
    assert_eq!(elsewhere.status, StatusCode::NOT_FOUND);
    assert!(
        !app.get("beta.test", "/services?q=%D9%88%DB%8C%DA%98%D9%87")
            .await
            .text
            .contains("ALPHA-ONLY-1")
    );

    let (_, json) = app
        .graphql(
            "alpha.test",
            r#"{ services(search: "پروانه ساختمانى") { code title durationDays steps } }"#,
        )
        .await;
    let codes: Vec<&str> = json["data"]["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"MUN-BLD-001"), "{json}");
    let (_, json) = app
        .graphql("beta.test", r#"{ service(code: "ALPHA-ONLY-1") { code } }"#)
        .await;
    assert!(json["data"]["service"].is_null());

    // General FAQ (searchable, Arabic yeh in the query), the charter, the SLA statement, the font.
    let faq = app
        .get(
            "alpha.test",
            &format!("/faq?q={}", urlencode("سند دفترچه\u{200c}اى")),
        )
        .await;
    assert!(
        faq.status == StatusCode::OK && faq.text.contains("MUN-BLD-001"),
        "FAQ search"
    );
    assert!(
        app.get("alpha.test", "/charter")
            .await
            .text
            .contains("کد رهگیری")
    );
    let sla = app.get("alpha.test", "/sla").await;
    assert!(sla.text.contains("ALPHA-ONLY-1") && sla.text.contains("۳۰ روز کاری"));
    assert!(
        !app.get("beta.test", "/sla")
            .await
            .text
            .contains("ALPHA-ONLY-1")
    );
    let (status, content_type, font) = app
        .get_bytes("alpha.test", "/static/fonts/vazirmatn-variable.woff2")
        .await;
    assert_eq!(
        (status, content_type.as_deref(), &font[..4]),
        (StatusCode::OK, Some("font/woff2"), &b"wOF2"[..])
    );
    app.db.finish().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[tokio::test]
async fn a_draft_changes_nothing_until_it_is_published() {
    let app = TestApp::new().await;
    let authz = Authorizer::load(&app.db.platform).await.unwrap();
    authz
        .ensure_default_policies(&app.db.platform.province_ids().await.unwrap())
        .await
        .unwrap();
    let mut tenants = Vec::new();
    for slug in ["alpha", "beta"] {
        let req = Onboarding {
            theme: desk_tenant_admin::DEFAULT_THEME.to_owned(),
            tenant: TestDb::new_tenant(slug),
            first_admin: Some(desk_tenant_admin::FirstAdmin {
                username: format!("admin-{slug}"),
                display_name: "مدیر".into(),
                mobile: desk_core::MobileNumber::parse("09130000000").unwrap(),
            }),
        };
        tenants.push(
            desk_tenant_admin::onboard(&app.db.platform, &authz, &Actor::Cli, "test", &req)
                .await
                .unwrap()
                .0,
        );
    }
    let app = app.rebuild().await;
    let admin = app.staff_sign_in(&tenants[0], "admin-alpha").await;

    let list = app.get_as(&admin, "alpha.test", "/staff/catalog").await;
    assert!(list.status == StatusCode::OK && list.text.contains("مطابق الگوی ملی"));
    let form = app
        .get_as(&admin, "alpha.test", "/staff/catalog/MUN-BLD-001")
        .await;
    let csrf = form.csrf();
    let old_title = "صدور پروانه ساختمانی";
    let save = |title: &'static str| {
        let csrf = csrf.clone();
        let app = &app;
        let admin = admin.clone();
        async move {
            app.post_form(
                Some(&admin),
                "alpha.test",
                "/staff/catalog/MUN-BLD-001",
                &[
                    ("csrf", &csrf),
                    ("op", "save"),
                    ("title_fa", title),
                    ("description_fa", "شرح تازه"),
                    ("duration_days", "۲۰"),
                    ("fee_description_fa", "طبق تعرفه"),
                    ("steps", "گام یک\nگام دو"),
                    ("documents", "سند"),
                ],
            )
            .await
        }
    };
    assert_eq!(
        save("پروانه ساختمانی (ویرایش)").await.status,
        StatusCode::SEE_OTHER
    );
    let citizen = app.get("alpha.test", "/services/MUN-BLD-001").await;
    assert!(
        citizen.text.contains(old_title) && !citizen.text.contains("(ویرایش)"),
        "a draft is not public"
    );
    assert!(
        app.get_as(&admin, "alpha.test", "/staff/catalog")
            .await
            .text
            .contains("نسخه 2")
    );
    let bad = app
        .post_form(
            Some(&admin),
            "alpha.test",
            "/staff/catalog/MUN-BLD-001",
            &[
                ("csrf", &csrf),
                ("op", "save"),
                ("title_fa", ""),
                ("duration_days", "x"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);

    let publish = app
        .post_form(
            Some(&admin),
            "alpha.test",
            "/staff/catalog/MUN-BLD-001",
            &[("csrf", &csrf), ("op", "publish")],
        )
        .await;
    assert_eq!(publish.status, StatusCode::SEE_OTHER);
    let citizen = app.get("alpha.test", "/services/MUN-BLD-001").await;
    assert!(citizen.text.contains("(ویرایش)") && citizen.text.contains("۲۰ روز کاری"));
    assert!(
        app.get_as(&admin, "alpha.test", "/staff/catalog")
            .await
            .text
            .contains("تغییریافته نسبت به الگوی ملی")
    );
    // The neighbour's card is its own.
    assert!(
        app.get("beta.test", "/services/MUN-BLD-001")
            .await
            .text
            .contains(old_title)
    );

    let hide = app
        .post_form(
            Some(&admin),
            "alpha.test",
            "/staff/catalog/MUN-BLD-001",
            &[("csrf", &csrf), ("op", "hide")],
        )
        .await;
    assert_eq!(hide.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get("alpha.test", "/services/MUN-BLD-001").await.status,
        StatusCode::NOT_FOUND
    );
    let forged = app
        .post_form(
            Some(&admin),
            "alpha.test",
            "/staff/catalog/MUN-BLD-001",
            &[("csrf", "x"), ("op", "show")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    // A service of alpha's own starts as a draft, public once published, never on beta.
    let fields = [
        ("csrf", csrf.as_str()),
        ("code", "alpha-001"),
        ("title_fa", "خدمت ویژه"),
        ("category", "revenue"),
        ("description_fa", "شرح"),
        ("duration_days", "۵"),
    ];
    let added = app
        .post_form(Some(&admin), "alpha.test", "/staff/catalog", &fields)
        .await;
    assert_eq!(added.status, StatusCode::SEE_OTHER, "{}", added.text);
    assert_eq!(
        app.get("alpha.test", "/services/ALPHA-001").await.status,
        StatusCode::NOT_FOUND
    );
    let again = app
        .post_form(Some(&admin), "alpha.test", "/staff/catalog", &fields)
        .await;
    assert_eq!(
        again.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "codes are unique"
    );
    app.post_form(
        Some(&admin),
        "alpha.test",
        "/staff/catalog/ALPHA-001",
        &[("csrf", &csrf), ("op", "publish")],
    )
    .await;
    assert_eq!(
        app.get("alpha.test", "/services/ALPHA-001").await.status,
        StatusCode::OK
    );
    assert_eq!(
        app.get("beta.test", "/services/ALPHA-001").await.status,
        StatusCode::NOT_FOUND
    );
    // Alpha's admin has no say over beta's catalog.
    let elsewhere = app
        .post_form(
            Some(&admin),
            "beta.test",
            "/staff/catalog/MUN-BLD-001",
            &[("csrf", &csrf), ("op", "hide")],
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::UNAUTHORIZED);
    app.db.finish().await;
}

/// FAQ and laws are edited with the card (a draft until published), a general FAQ sits beside
/// the services' ones, the FAQ page and GraphQL `faqs` search both (Persian-normalized), and
/// another municipality sees none of it.
#[tokio::test]
async fn faq_and_laws_are_edited_published_and_searchable_per_municipality() {
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    let admin = app.staff_sign_in(&alpha, "admin-alpha").await;
    let form = app
        .get_as(&admin, "alpha.test", "/staff/catalog/MUN-BLD-001")
        .await;
    assert!(form.text.contains("name=\"faq\"") && form.text.contains("name=\"legal_basis\""));
    let csrf = form.csrf();
    let save = |faq: &'static str| {
        let (app, admin, csrf) = (&app, admin.clone(), csrf.clone());
        async move {
            app.post_form(
                Some(&admin),
                "alpha.test",
                "/staff/catalog/MUN-BLD-001",
                &[
                    ("csrf", &csrf),
                    ("op", "save"),
                    ("title_fa", "صدور پروانه ساختمانی"),
                    ("description_fa", "صدور پروانه برای ساخت بنای تازه."),
                    ("duration_days", "20"),
                    ("steps", "گام یک"),
                    ("documents", "سند مالکیت"),
                    (
                        "legal_basis",
                        "ماده ۱۰۰ قانون شهرداری‌ها\nآیین‌نامه ویژه آزمایشی",
                    ),
                    ("faq", faq),
                ],
            )
            .await
        }
    };
    let missing = save("پرسش بی‌پاسخ؟").await;
    assert_eq!(missing.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(missing.text.contains("پاسخ ندارد"));
    let faq = "آیا نقشه سه‌بعدی لازم است؟\nخیر، نقشه‌های دوبعدی مصوب کافی است.\n\nپروانه تا کی اعتبار دارد؟\nتا پایان مهلت درج‌شده در پروانه.";
    let saved = save(faq).await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let card = app.get("alpha.test", "/services/MUN-BLD-001").await;
    assert!(
        !card.text.contains("آیین‌نامه ویژه آزمایشی"),
        "a draft is not shown"
    );
    let res = app
        .post_form(
            Some(&admin),
            "alpha.test",
            "/staff/catalog/MUN-BLD-001",
            &[("csrf", &csrf), ("op", "publish")],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    let card = app.get("alpha.test", "/services/MUN-BLD-001").await;
    assert!(card.text.contains("آیین‌نامه ویژه آزمایشی") && card.text.contains("نقشه سه‌بعدی"));

    // The general FAQ.
    let res = app
        .post_form(
            Some(&admin),
            "alpha.test",
            "/staff/catalog-faq",
            &[
                ("csrf", &csrf),
                (
                    "faq",
                    "ساعت کار میز خدمت چیست؟\nشنبه تا چهارشنبه، ۷:۳۰ تا ۱۴.",
                ),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    let page = app.get("alpha.test", "/faq").await;
    assert!(page.text.contains("پرسش‌های عمومی") && page.text.contains("ساعت کار میز خدمت"));
    // Search with Arabic yeh and kaf finds the Persian text.
    let found = app
        .get(
            "alpha.test",
            "/faq?q=%D9%86%D9%82%D8%B4%D9%87%20%D8%B3%D9%87%E2%80%8C%D8%A8%D8%B9%D8%AF%D9%8A",
        )
        .await;
    assert!(found.text.contains("نقشه سه‌بعدی") && !found.text.contains("ساعت کار میز خدمت"));
    let (_, v) = app
        .graphql("alpha.test", "{ faqs { serviceCode question } }")
        .await;
    let entries = v["data"]["faqs"].as_array().unwrap();
    assert!(
        entries[0]["serviceCode"].is_null() && entries[0]["question"] == "ساعت کار میز خدمت چیست؟"
    );
    assert!(
        entries
            .iter()
            .any(|e| e["serviceCode"] == "MUN-BLD-001"
                && e["question"] == "پروانه تا کی اعتبار دارد؟")
    );
    let (_, v) = app
        .graphql(
            "alpha.test",
            "{ faqs(search: \"اعتبار\") { serviceCode question } }",
        )
        .await;
    let hits = v["data"]["faqs"].as_array().unwrap();
    assert!(!hits.is_empty());
    assert!(
        hits.iter()
            .all(|e| e["serviceCode"] == "MUN-BLD-001" || e["serviceCode"].is_string())
    );
    assert!(
        !v.to_string().contains("ساعت کار میز خدمت"),
        "the general FAQ does not match"
    );
    // Beta sees none of it.
    let (_, v) = app.graphql("beta.test", "{ faqs { question } }").await;
    assert!(!v.to_string().contains("ساعت کار میز خدمت") && !v.to_string().contains("نقشه سه‌بعدی"));
    assert!(
        !app.get("beta.test", "/faq")
            .await
            .text
            .contains("ساعت کار میز خدمت")
    );
    app.db.finish().await;
}

/// With the page cache on, the same card of two municipalities is never served across them,
/// and a change of design (theme, brand) shows at once (the design is part of the key).
#[tokio::test]
async fn cached_cards_stay_in_their_municipality_and_follow_its_design() {
    let (app, alpha, beta) = desk_tests::two_municipalities_with(|c| {
        c.http.site_cache_ttl_ms = 60_000;
    })
    .await;
    for _ in 0..3 {
        let a = app.get("alpha.test", "/services/MUN-BLD-001").await;
        let b = app.get("beta.test", "/services/MUN-BLD-001").await;
        assert!(a.text.contains(&alpha.name_fa) && !a.text.contains(&beta.name_fa));
        assert!(b.text.contains(&beta.name_fa) && !b.text.contains(&alpha.name_fa));
    }
    let mut design = alpha.design.clone();
    design.theme = "sepid".to_owned();
    design.brand = Some("#123456".to_owned());
    app.db.platform.set_design(alpha.id, &design).await.unwrap();
    // The host cache keeps the old registry row for its TTL; a fresh app reads the new one.
    let app = app.rebuild().await;
    let a = app.get("alpha.test", "/services/MUN-BLD-001").await;
    assert!(
        a.text.contains("--brand: #123456")
            && a.text.contains("border-bottom: .5rem solid var(--brand)")
    );
    app.db.finish().await;
}

/// Every citizen page offers the service header (services, tracking, my requests, sign-in) and
/// a skip link; an unknown path is a themed Persian 404 of that municipality (JSON under the
/// API paths), never an empty body; staff pages do not carry the citizens' menu.
#[tokio::test]
async fn the_service_header_and_a_persian_not_found_page() {
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    for path in ["/", "/services", "/track", "/faq"] {
        let page = app.get("alpha.test", path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        for link in [
            "class=\"skip-link\" href=\"#content\"",
            "href=\"/services\"",
            "href=\"/track\"",
            "href=\"/my-requests\"",
            "href=\"/sign-in\"",
        ] {
            assert!(page.text.contains(link), "{path} lacks {link}");
        }
    }
    let missing = app.get("alpha.test", "/no-such-page").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(missing.text.contains("صفحه پیدا نشد"), "{}", missing.text);
    assert!(
        missing.text.contains(&alpha.name_fa),
        "the municipality's own page"
    );
    assert!(missing.text.contains("lang=\"fa\""));
    let api = app.get("alpha.test", "/open311/v2/nothing.json").await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert!(api.text.contains("\"NOT_FOUND\""), "{}", api.text);
    let admin = app.staff_sign_in(&alpha, "admin-alpha").await;
    let staff = app.get_as(&admin, "alpha.test", "/staff").await;
    assert_eq!(staff.status, StatusCode::OK);
    assert!(!staff.text.contains("class=\"service-nav\""));
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}
