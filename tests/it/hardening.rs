//! Defence in depth outside tenancy (issue #19): a page of another site or of a sibling
//! municipality cannot post anything, sign-in forms included (login CSRF); every answer carries
//! the security headers (no framing, no sniffing, no referrer to other sites).

use axum::http::StatusCode;
use desk_tests::TestApp;

const FORM: &str = "application/x-www-form-urlencoded";

/// Posts `body` to `path` of `host` as a browser page of `origin` would (`fetch_site` as the
/// browser would say it, if at all).
async fn post_from(
    app: &TestApp,
    host: &str,
    path: &str,
    body: &str,
    origin: Option<&str>,
    fetch_site: Option<&str>,
) -> desk_tests::TestResponse {
    let mut headers = vec![("content-type", FORM)];
    if let Some(o) = origin {
        headers.push(("origin", o));
    }
    if let Some(f) = fetch_site {
        headers.push(("sec-fetch-site", f));
    }
    app.send("POST", host, path, Some(body), &headers).await
}

#[tokio::test]
async fn pages_of_other_sites_and_sibling_municipalities_cannot_post() {
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    app.ensure_sms_account(&alpha).await;
    // The citizen of the attacker's choice asks for a code on alpha, then a sibling's page
    // posts the code form so the victim's browser signs into the attacker's account.
    let res = app
        .post_form(None, "alpha.test", "/sign-in", &[("mobile", "09121234567")])
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let code = app.last_sign_in_code(&alpha, "09121234567").await;
    let body = format!("mobile=09121234567&code={code}&next=%2Fmy-requests");
    for (origin, site) in [
        (Some("http://beta.test"), Some("same-site")),
        (Some("http://beta.test"), None),
        (Some("https://evil.example"), Some("cross-site")),
        (None, Some("same-site")),
        (Some("null"), None),
    ] {
        let res = post_from(&app, "alpha.test", "/sign-in/code", &body, origin, site).await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{origin:?} {site:?}");
        assert!(
            res.cookies.is_empty(),
            "no session handed out: {:?}",
            res.cookies
        );
        assert!(res.text.contains("سایت دیگری"), "{}", res.text);
    }
    // The very same form from alpha's own page still works.
    let res = post_from(
        &app,
        "alpha.test",
        "/sign-in/code",
        &body,
        Some("http://alpha.test"),
        Some("same-origin"),
    )
    .await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);

    // The staff sign-in and the platform portal's login alike.
    for (host, path) in [
        ("alpha.test", "/staff/sign-in"),
        ("alpha.test", "/staff/forgot"),
        ("admin.test", "/login"),
    ] {
        let res = post_from(
            &app,
            host,
            path,
            "username=admin&password=whatever-long-1&csrf=x",
            Some("http://beta.test"),
            Some("same-site"),
        )
        .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{host}{path}");
        let res = post_from(
            &app,
            host,
            path,
            "username=admin&password=whatever-long-1&csrf=x",
            Some("https://evil.example"),
            None,
        )
        .await;
        assert_eq!(res.status, StatusCode::FORBIDDEN, "{host}{path}");
    }
    // An app of the municipality calling GraphQL with a key from its own origin is not a
    // cookie-borne request: it passes (and is judged by its key).
    let res = app
        .send(
            "POST",
            "alpha.test",
            "/graphql",
            Some(r#"{"query":"{ services(first: 1) { edges { node { code } } } }"}"#),
            &[
                ("content-type", "application/json"),
                ("origin", "https://app.alpha.example"),
            ],
        )
        .await;
    assert_ne!(res.status, StatusCode::FORBIDDEN, "{}", res.text);
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

#[tokio::test]
async fn every_page_carries_the_security_headers() {
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    let staff = app.staff_sign_in(&alpha, "admin-alpha").await;
    for (cookie, host, path) in [
        (None, "alpha.test", "/"),
        (None, "alpha.test", "/services"),
        (None, "alpha.test", "/staff/sign-in"),
        (Some(staff.as_str()), "alpha.test", "/staff"),
        (Some(staff.as_str()), "alpha.test", "/staff/team"),
        (None, "admin.test", "/login"),
        (None, "nowhere.test", "/"),
    ] {
        let res = match cookie {
            Some(c) => app.get_as(c, host, path).await,
            None => app.get(host, path).await,
        };
        let h = |name: &str| {
            res.headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        assert_eq!(h("x-frame-options"), "DENY", "{host}{path}");
        assert!(
            h("content-security-policy").contains("frame-ancestors 'none'"),
            "{host}{path}"
        );
        assert_eq!(h("x-content-type-options"), "nosniff", "{host}{path}");
        assert_eq!(h("referrer-policy"), "same-origin", "{host}{path}");
        assert!(!h("permissions-policy").is_empty(), "{host}{path}");
        // The public scheme is https (the default): HSTS, and every cookie is Secure.
        assert!(
            h("strict-transport-security").contains("max-age"),
            "{host}{path}"
        );
        for cookie in res.headers.get_all("set-cookie") {
            assert!(
                cookie.to_str().unwrap().contains("; Secure"),
                "{host}{path}: {cookie:?}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

/// A title a municipality typed that a spreadsheet would run as a formula is plain text in the
/// report's CSV.
#[tokio::test]
async fn report_csv_cells_never_run_as_formulas() {
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    let today = desk_core::calendar::today_in_iran();
    let r = crate::surveys::filed(
        &app,
        &alpha,
        "+989121112345",
        desk_db::requests::Channel::Web,
        (today, today),
        None,
    )
    .await;
    let mut tx = app.tx(&alpha).await;
    sqlx::query("update services set title = $1 where id = $2")
        .bind("=HYPERLINK(\"http://evil.example/x\",\"بیشتر\")")
        .bind(r.service_id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let staff = app.staff_sign_in(&alpha, "admin-alpha").await;
    let period = desk_core::report::Period::month_of(today).key();
    let (status, _, body) = app
        .get_bytes_as(
            &staff,
            "alpha.test",
            &format!("/staff/reports.csv?period={period}"),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body).unwrap();
    assert!(text.contains("HYPERLINK"), "{text}");
    for line in text.lines() {
        for cell in line.split(',') {
            let cell = cell.trim_start_matches('\u{feff}').trim_start_matches('"');
            assert!(
                !cell.starts_with(['=', '+', '@']),
                "a cell runs as a formula: {line}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

/// A batch of GraphQL operations in one POST counts each operation against the rate, as
/// separate requests would.
#[tokio::test]
async fn each_operation_of_a_graphql_batch_counts_against_the_rate() {
    let (app, _alpha, _beta) = desk_tests::two_municipalities().await;
    let one = r#"{"query":"{ services(first: 1) { edges { node { code } } } }"}"#;
    let batch = |n: usize| format!("[{}]", vec![one; n].join(","));
    let post = |body: String| {
        let app = &app;
        async move {
            app.send(
                "POST",
                "alpha.test",
                "/graphql",
                Some(&body),
                &[("content-type", "application/json")],
            )
            .await
        }
    };
    let small = post(batch(5)).await;
    assert_eq!(small.status, StatusCode::OK, "{}", small.text);
    let big = post(batch(300)).await;
    assert_eq!(big.status, StatusCode::TOO_MANY_REQUESTS, "{}", big.text);
    assert!(big.text.contains("RATE_LIMITED"));
    // What is left of the minute's allowance (60 for callers without a key) is spent by
    // operations, not by posts: 55 more pass, the next does not.
    assert_eq!(post(batch(55)).await.status, StatusCode::OK);
    assert_eq!(post(batch(1)).await.status, StatusCode::TOO_MANY_REQUESTS);
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

/// Publish A, withdraw it, publish B: the site serves B, never A again (the sandbox cache was
/// keyed by a version that a withdrawal reset to 0).
#[tokio::test]
async fn a_withdrawn_override_never_comes_back() {
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    let admin = app.staff_sign_in(&alpha, "admin-alpha").await;
    let csrf = app
        .get_as(&admin, "alpha.test", "/staff/settings/templates")
        .await
        .csrf();
    let home = |marker: &str| {
        format!(
            "{{% extends \"layout.html.j2\" %}}{{% block content %}}<p>{marker}</p>{{% endblock %}}"
        )
    };
    let save = |source: String| {
        let (app, admin, csrf) = (&app, &admin, &csrf);
        async move {
            let res = app
                .post_form(
                    Some(admin),
                    "alpha.test",
                    "/staff/settings/templates/home.html.j2",
                    &[("csrf", csrf), ("source", &source)],
                )
                .await;
            assert!(res.status.is_redirection(), "{}", res.text);
            let res = app
                .post_form(
                    Some(admin),
                    "alpha.test",
                    "/staff/settings/templates/publish",
                    &[("csrf", csrf)],
                )
                .await;
            assert!(res.status.is_redirection(), "{}", res.text);
        }
    };
    save(home("MARKER-A")).await;
    assert!(app.get("alpha.test", "/").await.text.contains("MARKER-A"));
    save(String::new()).await;
    let theme = app.get("alpha.test", "/").await.text;
    assert!(!theme.contains("MARKER-A"), "withdrawn");
    save(home("MARKER-B")).await;
    let page = app.get("alpha.test", "/").await.text;
    assert!(
        page.contains("MARKER-B") && !page.contains("MARKER-A"),
        "{page}"
    );
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

/// The override bypasses the attack found (each passes the source checks) are published; what
/// the site serves carries none of them active, and the page's CSP allows only its own nonce.
#[tokio::test]
async fn overrides_that_slip_past_the_source_checks_render_nothing_active() {
    let (app, alpha, _beta) = desk_tests::two_municipalities().await;
    let admin = app.staff_sign_in(&alpha, "admin-alpha").await;
    let csrf = app
        .get_as(&admin, "alpha.test", "/staff/settings/templates")
        .await
        .csrf();
    let save = |name: &'static str, source: String| {
        let (app, admin, csrf) = (&app, &admin, &csrf);
        async move {
            app.post_form(
                Some(admin),
                "alpha.test",
                &format!("/staff/settings/templates/{name}"),
                &[("csrf", csrf), ("source", &source)],
            )
            .await
            .status
        }
    };
    let home = "{% extends \"layout.html.j2\" %}{% block head %}<style>body { color: #123456; }</style>{% endblock %}{% block content %}\
        <p>MARKER-HOME</p>\
        <scr{{ '' }}ipt>alert(1)</scr{{ '' }}ipt>\
        <img src=x\u{c}onerror=alert(2)>\
        {{ ('<img src=x o' ~ 'nerror=alert(3)>') |  safe }}\
        <a href=\"java{{ \"\" }}script:alert(4)\">x</a>\
        {% endblock %}";
    let theme = "<style>body { outline: 1px solid red; }</style><scr{{ '' }}ipt>alert(5)</scr{{ '' }}ipt></style><img src=x o{{ '' }}nerror=alert(6)>";
    let accepted = [
        save("home.html.j2", home.to_owned()).await,
        save("_theme.html.j2", theme.to_owned()).await,
    ];
    assert!(
        accepted.iter().all(|s| s.is_redirection()),
        "the source checks let these through ({accepted:?}); the test is about what is served"
    );
    let published = app
        .post_form(
            Some(&admin),
            "alpha.test",
            "/staff/settings/templates/publish",
            &[("csrf", &csrf)],
        )
        .await;
    assert!(published.status.is_redirection(), "{}", published.text);
    for (path, by) in [
        ("/", None),
        (
            "/staff/settings/templates/home.html.j2/preview",
            Some(&admin),
        ),
    ] {
        let page = match by {
            Some(cookie) => app.get_as(cookie, "alpha.test", path).await,
            None => app.get("alpha.test", path).await,
        };
        assert_eq!(page.status, StatusCode::OK, "{path}: {}", page.text);
        assert!(
            page.text.contains("MARKER-HOME"),
            "{path}: the override is served"
        );
        assert!(
            page.text.contains("outline: 1px solid red"),
            "{path}: its CSS too"
        );
        let lower = page.text.to_lowercase();
        for active in ["alert(1)", "onerror", "javascript:", "#123456"] {
            assert!(
                !lower.contains(active),
                "{path} serves {active}: {}",
                page.text
            );
        }
        let csp = page.headers["content-security-policy"].to_str().unwrap();
        let nonce = csp
            .split("'nonce-")
            .nth(1)
            .and_then(|rest| rest.split('\'').next())
            .unwrap();
        assert!(csp.contains("script-src 'self' 'nonce-"), "{csp}");
        assert!(
            page.text.contains(&format!("<style nonce=\"{nonce}\">")),
            "{path}: the theme's styles carry the answer's nonce"
        );
        // The only scripts are the theme's own, with the answer's nonce.
        assert_eq!(
            lower.matches("<script").count(),
            page.text
                .matches(&format!("<script nonce=\"{nonce}\">"))
                .count(),
            "{path}: {}",
            page.text
        );
    }
    let _ = std::fs::remove_dir_all(&app.uploads);
    app.db.finish().await;
}

/// Every template of every theme (and the platform portal's) works under the strict CSP: no
/// inline `style` attributes or event handlers (the browser would refuse them), and each
/// `<style>` and `<script>` carries the answer's nonce.
#[test]
fn templates_need_no_csp_exception() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut dirs = vec![root.join("tenant-admin/templates")];
    for theme in std::fs::read_dir(root.join("themes")).unwrap() {
        dirs.push(theme.unwrap().path().join("templates"));
    }
    let mut checked = 0;
    let mut problems = Vec::new();
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        for file in std::fs::read_dir(dir).unwrap() {
            let path = file.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            checked += 1;
            let lower = text.to_lowercase();
            let name = path.display();
            if lower.contains(" style=\"") || lower.contains(" style='") {
                problems.push(format!("{name}: inline style attribute"));
            }
            let bytes = lower.as_bytes();
            for (at, _) in lower.match_indices(" on") {
                let word: String = lower[at + 3..]
                    .chars()
                    .take_while(char::is_ascii_alphabetic)
                    .collect();
                let after = at + 3 + word.len();
                if !word.is_empty() && bytes.get(after) == Some(&b'=') {
                    problems.push(format!("{name}: inline handler on{word}"));
                }
            }
            for tag in ["<style", "<script"] {
                for (at, _) in lower.match_indices(tag) {
                    if !lower[at..].starts_with(&format!("{tag} nonce=\"{{{{ csp_nonce() }}}}\"")) {
                        problems.push(format!("{name}: {tag} without the nonce"));
                    }
                }
            }
        }
    }
    assert!(checked > 50, "templates found: {checked}");
    assert!(problems.is_empty(), "{problems:#?}");
}
