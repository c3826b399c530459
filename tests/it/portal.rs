//! The platform portal: sign-in, scoping of operators, CSRF, onboarding form.

use axum::http::StatusCode;
use desk_authz::{Authorizer, Role, Subject};
use desk_core::TenantStatus;
use desk_db::migrate::TenantMigrations;
use desk_tests::{ISFAHAN, TEHRAN, TestApp, TestDb};

const HOST: &str = "admin.test";
const PASSWORD: &str = "a-long-test-password";

async fn app_with_people() -> TestApp {
    let app = TestApp::new().await;
    let db = &app.db.platform;
    let authz = Authorizer::load(db).await.unwrap();
    authz
        .ensure_default_policies(&db.province_ids().await.unwrap())
        .await
        .unwrap();
    let hash = desk_tenant_admin::auth::hash_password(PASSWORD).unwrap();
    let root = db
        .ensure_platform_user("root", "مدیر سامانه", "platform_admin", None)
        .await
        .unwrap();
    let op = db
        .ensure_platform_user(
            "isfahan-op",
            "کارشناس اصفهان",
            "province_operator",
            Some(ISFAHAN),
        )
        .await
        .unwrap();
    for id in [root, op] {
        db.set_password_hash(id, &hash).await.unwrap();
    }
    authz
        .assign(&Subject::PlatformUser(root), Role::PlatformAdmin, None)
        .await
        .unwrap();
    authz
        .assign(
            &Subject::PlatformUser(op),
            Role::ProvinceOperator(ISFAHAN),
            None,
        )
        .await
        .unwrap();
    for (slug, province) in [("alpha", ISFAHAN), ("tehran-city", TEHRAN)] {
        let t = db
            .create_tenant(
                &TestDb::new_tenant_in(slug, province),
                &TenantMigrations::embedded(),
            )
            .await
            .unwrap();
        authz.place_tenant(t.id, province).await.unwrap();
    }
    app
}

async fn sign_in(app: &TestApp, username: &str) -> String {
    let res = app
        .post_form(
            None,
            HOST,
            "/login",
            &[("username", username), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    res.cookie.expect("a session cookie")
}

// The portal builds its policies when the app is built; re-build after adding policies.
async fn fresh(app: TestApp) -> TestApp {
    app.rebuild().await
}

#[tokio::test]
async fn the_portal_needs_a_session_and_operators_stay_in_their_province() {
    let app = fresh(app_with_people().await).await;
    let anonymous = app.get(HOST, "/").await;
    assert_eq!(anonymous.status, StatusCode::SEE_OTHER);
    assert_eq!(anonymous.location.as_deref(), Some("/login"));
    let bad = app
        .post_form(
            None,
            HOST,
            "/login",
            &[("username", "isfahan-op"), ("password", "wrong")],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(bad.text.contains("درست نیست") && bad.cookie.is_none());

    let op = sign_in(&app, "isfahan-op").await;
    let list = app.get_as(&op, HOST, "/").await;
    assert_eq!(list.status, StatusCode::OK);
    assert!(list.text.contains(&desk_tests::persian_name("alpha")));
    assert!(!list.text.contains(&desk_tests::persian_name("tehran-city")));
    assert!(
        !app.get_as(&op, HOST, "/?q=tehran")
            .await
            .text
            .contains("tehran-city")
    );

    let other = app.get_as(&op, HOST, "/municipalities/tehran-city").await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    let own = app.get_as(&op, HOST, "/municipalities/alpha").await;
    assert_eq!(own.status, StatusCode::OK);
    let csrf = own.csrf();

    let attempt = app
        .post_form(
            Some(&op),
            HOST,
            "/municipalities/tehran-city/status",
            &[("csrf", &csrf), ("change", "suspend")],
        )
        .await;
    assert_eq!(attempt.status, StatusCode::NOT_FOUND);
    let tehran = app
        .db
        .platform
        .tenant_by_slug(&"tehran-city".parse_slug())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tehran.status, TenantStatus::Active);

    let forged = app
        .post_form(
            Some(&op),
            HOST,
            "/municipalities/alpha/status",
            &[("csrf", "forged"), ("change", "suspend")],
        )
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let done = app
        .post_form(
            Some(&op),
            HOST,
            "/municipalities/alpha/status",
            &[("csrf", &csrf), ("change", "suspend")],
        )
        .await;
    assert_eq!(done.status, StatusCode::SEE_OTHER);
    let alpha = app
        .db
        .platform
        .tenant_by_slug(&"alpha".parse_slug())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(alpha.status, TenantStatus::Suspended);

    assert_eq!(
        app.get_as(&op, HOST, "/operators").await.status,
        StatusCode::FORBIDDEN
    );
    let root = sign_in(&app, "root").await;
    let people = app.get_as(&root, HOST, "/operators").await;
    assert!(people.status == StatusCode::OK && people.text.contains("isfahan-op"));
    assert!(
        app.get_as(&root, HOST, "/?q=tehran")
            .await
            .text
            .contains("tehran-city")
    );
    let provinces = app.get_as(&op, HOST, "/provinces").await;
    assert!(provinces.text.contains("سیستان و بلوچستان"));

    let out = app
        .post_form(Some(&op), HOST, "/logout", &[("csrf", &csrf)])
        .await;
    assert_eq!(out.status, StatusCode::SEE_OTHER);
    assert_eq!(
        app.get_as(&op, HOST, "/").await.status,
        StatusCode::SEE_OTHER,
        "session ended"
    );
    // A session cookie of the platform is worthless on a municipality's host.
    assert!(
        !app.get_as(&root, "alpha.test", "/operators")
            .await
            .text
            .contains("isfahan-op")
    );
    app.db.finish().await;
}

#[tokio::test]
async fn the_onboarding_form_creates_a_municipality_or_says_what_is_wrong() {
    let app = fresh(app_with_people().await).await;
    let op = sign_in(&app, "isfahan-op").await;
    let form = app.get_as(&op, HOST, "/municipalities/new").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(
        form.text.contains("اصفهان") && !form.text.contains(">تهران<"),
        "operator may only pick their province"
    );
    let csrf = form.csrf();

    let isfahan = ISFAHAN.to_string();
    let bad = app
        .post_form(
            Some(&op),
            HOST,
            "/municipalities",
            &[
                ("csrf", &csrf),
                ("name_fa", "Najafabad"),
                ("slug", "www"),
                ("province", &isfahan),
                ("domains", "ok.example bad_host"),
                ("admin_username", "admin-n"),
                ("admin_mobile", "12345"),
            ],
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNPROCESSABLE_ENTITY);
    for message in ["رزرو", "دامنه", "شماره همراه"] {
        assert!(bad.text.contains(message), "{message}");
    }
    let latin = app
        .post_form(
            Some(&op),
            HOST,
            "/municipalities",
            &[
                ("csrf", &csrf),
                ("name_fa", "Najafabad"),
                ("name_en", "Najafabad"),
                ("province", &isfahan),
            ],
        )
        .await;
    assert_eq!(latin.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(latin.text.contains("حروف فارسی"));
    let tehran = TEHRAN.to_string();
    let elsewhere = app
        .post_form(
            Some(&op),
            HOST,
            "/municipalities",
            &[
                ("csrf", &csrf),
                ("name_fa", "شهرداری ری"),
                ("name_en", "Rey"),
                ("province", &tehran),
            ],
        )
        .await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN);
    assert_eq!(
        app.db
            .platform
            .list_tenants(&Default::default())
            .await
            .unwrap()
            .len(),
        2,
        "nothing half-made"
    );

    let good = app
        .post_form(
            Some(&op),
            HOST,
            "/municipalities",
            &[
                ("csrf", &csrf),
                ("name_fa", "شهرداری نجف‌آباد"),
                ("name_en", "Najafabad Municipality"),
                ("province", &isfahan),
                ("domains", "khedmat.najafabad.ir"),
                ("admin_username", "admin-n"),
                ("admin_mobile", "۰۹۱۳۱۲۳۴۵۶۷"),
            ],
        )
        .await;
    assert_eq!(good.status, StatusCode::SEE_OTHER, "{}", good.text);
    let location = good.location.unwrap();
    assert!(
        location.starts_with("/municipalities/najafabad?created_ms="),
        "{location}"
    );
    let page = app.get_as(&op, HOST, &location).await;
    assert!(page.text.contains("شهرداری نجف‌آباد") && page.text.contains("میلی‌ثانیه"));
    assert!(
        page.text.contains("پوسته: base") && page.text.contains("هنوز تنظیم نشده"),
        "settings at onboarding"
    );
    assert!(page.text.contains("khedmat.najafabad.ir"));
    let site = app.get("khedmat.najafabad.ir", "/").await;
    assert_eq!(site.status, StatusCode::OK);

    // Go-live: the operator sees the first admin's invitation; the municipality has no SMS
    // account yet, so a new invitation is shown once to hand over in person, and works.
    assert!(
        page.text.contains("admin-n") && page.text.contains("حساب پیامک"),
        "{}",
        page.text
    );
    let najafabad = app
        .db
        .platform
        .tenant_by_slug(&desk_core::TenantSlug::parse("najafabad").unwrap())
        .await
        .unwrap()
        .unwrap();
    let admin_id = app
        .scalar(
            &najafabad,
            "select id from staff where username = 'admin-n'",
        )
        .await;
    let handed = app
        .post_form(
            Some(&op),
            HOST,
            &format!("/municipalities/najafabad/invitations/{admin_id}"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(handed.status, StatusCode::OK, "{}", handed.text);
    let shown = handed.text.replace("&#x2f;", "/");
    let at = shown.find("/staff/welcome/").expect(&shown);
    let path: String = shown[at..]
        .chars()
        .take_while(|c| *c != '<' && *c != '"')
        .collect();
    let welcome = app.get("khedmat.najafabad.ir", &path).await;
    assert_eq!(welcome.status, StatusCode::OK, "{}", welcome.text);
    assert!(welcome.text.contains("admin-n"));
    // Another province's operator cannot, nor can anyone for a member who is not an admin.
    assert_eq!(
        app.post_form(
            Some(&op),
            HOST,
            "/municipalities/najafabad/invitations/999",
            &[("csrf", &csrf)],
        )
        .await
        .status,
        StatusCode::NOT_FOUND
    );
    // With an SMS account, it goes by SMS again (a job), and the page says so.
    desk_tests::add_sms_account(&app.db.platform, &najafabad, "kavenegar", "k").await;
    let sent = app
        .post_form(
            Some(&op),
            HOST,
            &format!("/municipalities/najafabad/invitations/{admin_id}"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(sent.status, StatusCode::SEE_OTHER, "{}", sent.text);
    assert_eq!(
        app.get("khedmat.najafabad.ir", &path).await.status,
        StatusCode::GONE,
        "the handed link is revoked by the new invitation"
    );
    // The admin joined, then the SMS account stopped: no code can reach them, so the operator
    // may hand over a one-time sign-in link (with SMS working, the admin resets by SMS).
    let conflict = app
        .post_form(
            Some(&op),
            HOST,
            &format!("/municipalities/najafabad/invitations/{admin_id}"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(
        conflict.status,
        StatusCode::SEE_OTHER,
        "not joined yet: a new invitation"
    );
    let mut tx = app.tx(&najafabad).await;
    let hash = desk_core::password::hash("a-long-admin-password").unwrap();
    desk_db::staff::set_password(&mut tx, admin_id, &hash)
        .await
        .unwrap();
    sqlx::query("update sms_accounts set enabled = false")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let link_page = app
        .post_form(
            Some(&op),
            HOST,
            &format!("/municipalities/najafabad/invitations/{admin_id}"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(link_page.status, StatusCode::OK, "{}", link_page.text);
    let shown = link_page.text.replace("&#x2f;", "/");
    let at = shown.find("/staff/sign-in/").expect(&shown);
    let path: String = shown[at..]
        .chars()
        .take_while(|c| *c != '<' && *c != '"')
        .collect();
    let signed = app
        .send("POST", "khedmat.najafabad.ir", &path, None, &[])
        .await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.text);
    app.db.finish().await;
}

#[tokio::test]
async fn repeated_failures_lock_the_username() {
    let app = fresh(app_with_people().await).await;
    for _ in 0..5 {
        let res = app
            .post_form(
                None,
                HOST,
                "/login",
                &[("username", "root"), ("password", "nope")],
            )
            .await;
        assert_eq!(res.status, StatusCode::UNAUTHORIZED);
    }
    let locked = app
        .post_form(
            None,
            HOST,
            "/login",
            &[("username", "root"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(locked.status, StatusCode::TOO_MANY_REQUESTS);
    app.db.finish().await;
}

trait ParseSlug {
    fn parse_slug(&self) -> desk_core::TenantSlug;
}

impl ParseSlug for &str {
    fn parse_slug(&self) -> desk_core::TenantSlug {
        desk_core::TenantSlug::parse(self).unwrap()
    }
}

async fn gql(app: &TestApp, cookie: Option<&str>, query: &str) -> serde_json::Value {
    let body = serde_json::json!({ "query": query }).to_string();
    let mut headers = vec![("content-type", "application/json")];
    if let Some(c) = cookie {
        headers.push(("cookie", c));
    }
    let res = app
        .send("POST", HOST, "/graphql", Some(&body), &headers)
        .await;
    serde_json::from_str(&res.text).unwrap_or_else(|_| panic!("{}: {}", res.status, res.text))
}

#[tokio::test]
async fn the_platform_api_is_scoped_like_the_portal() {
    let app = fresh(app_with_people().await).await;
    let anonymous = gql(&app, None, "{ provinces { id } }").await;
    assert_eq!(
        anonymous["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );

    let op = sign_in(&app, "isfahan-op").await;
    let list = gql(
        &app,
        Some(&op),
        "{ municipalities { edges { cursor node { slug status } } pageInfo { hasNextPage } } }",
    )
    .await;
    let slugs: Vec<&str> = list["data"]["municipalities"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["alpha"]);
    let hidden = gql(
        &app,
        Some(&op),
        r#"{ municipality(slug: "tehran-city") { name } }"#,
    )
    .await;
    assert_eq!(hidden["errors"][0]["extensions"]["code"], "NOT_FOUND");
    let suspend = gql(
        &app,
        Some(&op),
        r#"mutation { suspendMunicipality(slug: "tehran-city") { status } }"#,
    )
    .await;
    assert_eq!(suspend["errors"][0]["extensions"]["code"], "NOT_FOUND");
    let create = gql(
        &app,
        Some(&op),
        r#"mutation { createMunicipality(input: { name: "شهرداری ری", nameEn: "Rey", provinceId: 8 }) { slug } }"#,
    )
    .await;
    assert_eq!(create["errors"][0]["extensions"]["code"], "FORBIDDEN");
    let bad = gql(
        &app,
        Some(&op),
        r#"mutation { createMunicipality(input: { name: "Kashan", slug: "admin", provinceId: 4 }) { slug } }"#,
    )
    .await;
    assert_eq!(bad["errors"][0]["extensions"]["code"], "BAD_USER_INPUT");
    let made = gql(
        &app,
        Some(&op),
        r#"mutation { createMunicipality(input: { name: "شهرداری کاشان", nameEn: "Kashan", provinceId: 4 }) { slug status } }"#,
    )
    .await;
    assert_eq!(
        made["data"]["createMunicipality"]["slug"], "kashan",
        "{made}"
    );
    let done = gql(
        &app,
        Some(&op),
        r#"mutation { suspendMunicipality(slug: "kashan") { status } }"#,
    )
    .await;
    assert_eq!(done["data"]["suspendMunicipality"]["status"], "suspended");

    let root = sign_in(&app, "root").await;
    let page = gql(
        &app,
        Some(&root),
        "{ municipalities(first: 2) { edges { cursor } pageInfo { hasNextPage endCursor } } }",
    )
    .await;
    assert_eq!(
        page["data"]["municipalities"]["pageInfo"]["hasNextPage"],
        true
    );
    let cursor = page["data"]["municipalities"]["pageInfo"]["endCursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let next = gql(
        &app,
        Some(&root),
        &format!(
            r#"{{ municipalities(first: 2, after: "{cursor}") {{ edges {{ node {{ slug }} }} }} }}"#
        ),
    )
    .await;
    assert_eq!(
        next["data"]["municipalities"]["edges"][0]["node"]["slug"],
        "tehran-city"
    );
    let provinces = gql(&app, Some(&root), "{ provinces { code municipalities } }").await;
    assert_eq!(provinces["data"]["provinces"].as_array().unwrap().len(), 31);

    // Not JSON: refused (no cross-site form posts).
    let form = app
        .send(
            "POST",
            HOST,
            "/graphql",
            Some("query=%7Bprovinces%7Bid%7D%7D"),
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("cookie", &root),
            ],
        )
        .await;
    assert!(
        form.status.is_client_error() && !form.text.contains("\"provinces\""),
        "{}",
        form.status
    );
    app.db.finish().await;
}

#[tokio::test]
async fn the_demo_seed_is_idempotent_and_its_accounts_sign_in() {
    let app = TestApp::new().await;
    let mut config = desk::config::Config::default();
    config.http.base_domain = "test".to_owned();
    let authz = Authorizer::load(&app.db.platform).await.unwrap();
    authz
        .ensure_default_policies(&app.db.platform.province_ids().await.unwrap())
        .await
        .unwrap();
    desk::demo::seed(&config, &app.db.platform).await.unwrap();
    desk::demo::seed(&config, &app.db.platform).await.unwrap();
    let slugs: Vec<String> = app
        .db
        .platform
        .list_tenants(&Default::default())
        .await
        .unwrap()
        .iter()
        .map(|t| t.slug.to_string())
        .collect();
    assert_eq!(slugs, ["isfahan", "kashan", "najafabad"]);
    let app = app.rebuild().await;
    for user in ["admin", "isfahan-operator"] {
        let res = app
            .post_form(
                None,
                HOST,
                "/login",
                &[("username", user), ("password", desk::demo::DEMO_PASSWORD)],
            )
            .await;
        assert_eq!(res.status, StatusCode::SEE_OTHER, "{user}");
        let list = app.get_as(&res.cookie.unwrap(), HOST, "/").await;
        assert!(list.text.contains("شهرداری کاشان"), "{user}");
    }
    assert_eq!(app.get("isfahan.test", "/").await.status, StatusCode::OK);
    app.db.finish().await;
}

/// A platform key acts as the user who made it: an Isfahan operator's key sees Isfahan's
/// municipalities only; revoked, foreign (a municipality's key) and unknown keys are refused;
/// the key is stored as a hash and useless on a municipality's host.
#[tokio::test]
async fn platform_keys_act_as_their_user_and_are_refused_once_revoked() {
    let app = fresh(app_with_people().await).await;
    let op = sign_in(&app, "isfahan-op").await;
    let page = app.get_as(&op, HOST, "/api-keys").await;
    assert_eq!(page.status, StatusCode::OK);
    let res = app
        .post_form(
            Some(&op),
            HOST,
            "/api-keys",
            &[
                ("csrf", &page.csrf()),
                ("name", "سامانه استانداری"),
                ("days", "۳۰"),
            ],
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let start = res.text.find("id=\"new-key\">").unwrap() + 13;
    let key = res.text[start..].split('<').next().unwrap().to_owned();
    assert!(key.starts_with("mizp_"));
    let with_key = |key: String| {
        let app = &app;
        async move {
            let body =
                serde_json::json!({ "query": "{ municipalities { edges { node { slug } } } }" })
                    .to_string();
            let auth = format!("Bearer {key}");
            let res = app
                .send(
                    "POST",
                    HOST,
                    "/graphql",
                    Some(&body),
                    &[
                        ("content-type", "application/json"),
                        ("authorization", &auth),
                    ],
                )
                .await;
            serde_json::from_str::<serde_json::Value>(&res.text).unwrap()
        }
    };
    let list = with_key(key.clone()).await;
    let slugs: Vec<&str> = list["data"]["municipalities"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["slug"].as_str().unwrap())
        .collect();
    assert_eq!(slugs, ["alpha"], "the operator's province only");
    // Hash only at rest.
    let stored: i64 = sqlx::query_scalar(
        "select count(*) from platform.api_keys where key_hash = sha256(convert_to($1, 'UTF8'))
            and position(convert_to($1, 'UTF8') in key_hash) = 0",
    )
    .bind(&key)
    .fetch_one(app.db.platform.pool_for_infrastructure())
    .await
    .unwrap();
    assert_eq!(stored, 1);
    // Unknown keys and a municipality's key are worthless here; the platform key is worthless
    // on a municipality's host.
    for other in [
        format!("mizp_{}", "0".repeat(64)),
        format!("miz_{}", "0".repeat(64)),
    ] {
        assert_eq!(
            with_key(other).await["errors"][0]["extensions"]["code"],
            "UNAUTHENTICATED"
        );
    }
    let auth = format!("Bearer {key}");
    let tenant_api = app
        .send(
            "POST",
            "alpha.test",
            "/graphql",
            Some(
                &serde_json::json!({ "query": "{ requestChanges { edges { cursor } } }" })
                    .to_string(),
            ),
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
        )
        .await;
    assert!(
        tenant_api.text.contains("INVALID_API_KEY"),
        "{}",
        tenant_api.text
    );
    // Revoked: refused at once.
    let id: i64 = sqlx::query_scalar("select id from platform.api_keys")
        .fetch_one(app.db.platform.pool_for_infrastructure())
        .await
        .unwrap();
    let root = sign_in(&app, "root").await;
    let root_page = app.get_as(&root, HOST, "/api-keys").await;
    let res = app
        .post_form(
            Some(&root),
            HOST,
            &format!("/api-keys/{id}/revoke"),
            &[("csrf", &root_page.csrf())],
        )
        .await;
    assert_eq!(
        res.status,
        StatusCode::NOT_FOUND,
        "only its own user revokes a key"
    );
    let page = app.get_as(&op, HOST, "/api-keys").await;
    assert!(page.text.contains("سامانه استانداری"));
    let res = app
        .post_form(
            Some(&op),
            HOST,
            &format!("/api-keys/{id}/revoke"),
            &[("csrf", &page.csrf())],
        )
        .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER);
    assert_eq!(
        with_key(key).await["errors"][0]["extensions"]["code"],
        "UNAUTHENTICATED"
    );
    app.db.finish().await;
}
