//! Single sign-on for a municipality's staff, against a real OpenID Connect provider (the npm
//! package `oidc-provider`, started on loopback by the test, PKCE required): the admin sets it
//! up, a new member accepts their invitation with it, signs in with it the next day, the
//! answers that do not belong to a sign-in are refused, and nothing crosses to another
//! municipality.

use crate::team::Browser;
use axum::http::StatusCode;
use desk_tests::TestApp;
use std::collections::HashMap;
use std::process::Stdio;
use tokio::io::AsyncBufReadExt;

const CLIENT_ID: &str = "miz-alpha";
const CLIENT_SECRET: &str = "alpha-client-secret-7f3a";

/// The provider, killed when dropped.
struct Provider {
    issuer: String,
    _child: tokio::process::Child,
}

async fn provider() -> Provider {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/oidc");
    assert!(
        std::path::Path::new(&format!("{dir}/node_modules/oidc-provider")).exists(),
        "oidc-provider is not installed: run `npm ci` in tests/oidc (scripts/test does)"
    );
    let mut child = tokio::process::Command::new("node")
        .arg("provider.mjs")
        .current_dir(dir)
        .env("OIDC_CLIENT_ID", CLIENT_ID)
        .env("OIDC_CLIENT_SECRET", CLIENT_SECRET)
        .env(
            "OIDC_REDIRECT_URIS",
            "http://alpha.test/staff/sso/callback,http://beta.test/staff/sso/callback",
        )
        .env(
            "OIDC_ACCOUNTS",
            "maryam.k:idp-pass-1,boss:idp-pass-2,stranger:idp-pass-3",
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs tests/oidc/provider.mjs");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let issuer = tokio::time::timeout(std::time::Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if let Some(issuer) = line.strip_prefix("issuer ") {
                return issuer.to_owned();
            }
        }
        panic!("the provider exited before it was ready");
    })
    .await
    .expect("the provider starts within 30 s");
    // Keep reading what it prints (notices): a closed pipe would end it.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Provider {
        issuer,
        _child: child,
    }
}

/// A person at the provider's pages: follows its redirects with its own cookies, signs in
/// with `user`/`password`, and returns where the provider sends them back (our callback's
/// path and query), or the provider's page when it does not.
async fn at_provider(authorize: &str, user: &str, password: &str) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut jar: HashMap<String, String> = HashMap::new();
    let mut url = authorize.to_owned();
    let mut form: Option<Vec<(&str, &str)>> = None;
    let origin = authorize.split('/').take(3).collect::<Vec<_>>().join("/");
    for _ in 0..10 {
        let cookie = jar
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let req = match form.take() {
            Some(fields) => client.post(&url).form(&fields),
            None => client.get(&url),
        };
        let res = req.header("cookie", cookie).send().await.unwrap();
        for c in res.headers().get_all("set-cookie") {
            let pair = c.to_str().unwrap().split(';').next().unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            jar.insert(k.to_owned(), v.to_owned());
        }
        let status = res.status();
        let location = res
            .headers()
            .get("location")
            .map(|l| l.to_str().unwrap().to_owned());
        let body = res.text().await.unwrap();
        match location {
            Some(to)
                if to.starts_with("http://alpha.test") || to.starts_with("http://beta.test") =>
            {
                return Ok(to.split_once(".test").unwrap().1.to_owned());
            }
            Some(to) if to.starts_with('/') => url = format!("{origin}{to}"),
            Some(to) => url = to,
            None if status == 200 && body.contains("name=\"login\"") => {
                form = Some(vec![("login", user), ("password", password)]);
            }
            None => return Err(format!("{status}: {body}")),
        }
    }
    Err("too many redirects".into())
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// Starts a sign-in (the form at `page`, posted to `action`) and returns the provider's
/// authorization URL it redirected to.
async fn start(browser: &mut Browser<'_>, page: &str, action: &str) -> String {
    let page = browser.get(page).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(page.text.contains(action), "no SSO button: {}", page.text);
    let res = browser.post(action, &[("csrf", &page.csrf())]).await;
    assert_eq!(res.status, StatusCode::SEE_OTHER, "{}", res.text);
    res.location.unwrap()
}

/// A whole round at the provider: the button on `page` (posting to `action`), the provider's
/// sign-in as `user`, and where it sends the browser back.
async fn round(
    browser: &mut Browser<'_>,
    page: &str,
    action: &str,
    user: &str,
    password: &str,
) -> String {
    let authorize = start(browser, page, action).await;
    at_provider(&authorize, user, password).await.unwrap()
}

async fn admin_browser<'a>(
    app: &'a TestApp,
    tenant: &desk_db::Tenant,
    host: &'a str,
) -> Browser<'a> {
    let cookie = app
        .staff_sign_in(tenant, &format!("admin-{}", tenant.slug))
        .await;
    let mut b = Browser::new(app, host);
    b.cookies.push((
        "desk_staff_session".into(),
        cookie.split_once('=').unwrap().1.into(),
    ));
    b
}

#[tokio::test]
async fn staff_sign_in_with_the_municipalitys_identity_provider() {
    let idp = provider().await;
    let (app, alpha, beta) = desk_tests::two_municipalities_with(|c| {
        c.webhooks.allow_private_targets = true;
        c.http.public_scheme = "http".to_owned();
    })
    .await;
    let mut admin = admin_browser(&app, &alpha, "alpha.test").await;

    // 1. The admin finds it under settings and sets it up; a wrong issuer is refused clearly.
    let settings = admin.get("/staff/settings").await;
    assert!(settings.text.contains("/staff/settings/sso"));
    let page = admin.get("/staff/settings/sso").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text);
    assert!(
        page.text
            .replace("&#x2f;", "/")
            .contains("http://alpha.test/staff/sso/callback")
    );
    let csrf = page.csrf();
    let wrong = admin
        .post(
            "/staff/settings/sso",
            &[
                ("issuer", "http://127.0.0.1:9/nothing"),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("label", "ورود با حساب شهرداری"),
                ("enabled", "on"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(
        wrong.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        wrong.text
    );
    assert!(wrong.text.contains("error-summary") && wrong.text.contains("#issuer"));
    assert_eq!(
        app.scalar(&alpha, "select count(*) from sso_provider")
            .await,
        0
    );
    let saved = admin
        .post(
            "/staff/settings/sso",
            &[
                ("issuer", &idp.issuer),
                ("client_id", CLIENT_ID),
                ("client_secret", CLIENT_SECRET),
                ("label", "ورود با حساب شهرداری"),
                ("enabled", "on"),
                ("csrf", &csrf),
            ],
        )
        .await;
    assert_eq!(saved.status, StatusCode::SEE_OTHER, "{}", saved.text);
    let page = admin.get("/staff/settings/sso?done=saved").await;
    assert!(
        !page.text.contains(CLIENT_SECRET),
        "the secret is never shown"
    );
    let stored = app
        .scalar(
            &alpha,
            &format!(
                "select count(*) from sso_provider where position('{CLIENT_SECRET}'::bytea in secret_ciphertext) > 0"
            ),
        )
        .await;
    assert_eq!(stored, 0, "the secret is sealed at rest");

    // 2. The admin invites a clerk (no SMS account: the link is shown once to hand over).
    let team = admin.get("/staff/team").await;
    let invited = admin
        .post(
            "/staff/team",
            &[
                ("full_name", "مریم کاظمی"),
                ("mobile", "09121230001"),
                ("username", "maryam"),
                ("role", "desk_staff"),
                ("csrf", &team.csrf()),
            ],
        )
        .await;
    assert_eq!(invited.status, StatusCode::OK, "{}", invited.text);
    let link = invited
        .text
        .replace("&#x2f;", "/")
        .split_once("/staff/welcome/")
        .unwrap()
        .1
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect::<String>();
    let welcome = format!("/staff/welcome/{link}");

    // 3. The clerk accepts it with the provider instead of a password.
    let mut clerk = Browser::new(&app, "alpha.test");
    let authorize = start(&mut clerk, &welcome, &format!("{welcome}/sso")).await;
    assert!(authorize.starts_with(&idp.issuer), "{authorize}");
    assert_eq!(
        query_param(&authorize, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(
        query_param(&authorize, "client_id").as_deref(),
        Some(CLIENT_ID)
    );
    let back = at_provider(&authorize, "maryam.k", "idp-pass-1")
        .await
        .unwrap();
    assert!(back.starts_with("/staff/sso/callback?"), "{back}");
    let signed = clerk.get(&back).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.text);
    assert_eq!(signed.location.as_deref(), Some("/staff"));
    let home = clerk.get("/staff").await;
    assert_eq!(home.status, StatusCode::OK, "{}", home.text);
    assert!(home.text.contains("مریم کاظمی"));
    // The invitation is used up, the same answer cannot be replayed.
    assert_eq!(
        Browser::new(&app, "alpha.test").get(&welcome).await.status,
        StatusCode::GONE
    );
    assert_eq!(clerk.get(&back).await.status, StatusCode::UNAUTHORIZED);

    // 4. The next day: the sign-in page offers the provider; no SMS code follows.
    let mut tomorrow = Browser::new(&app, "alpha.test");
    let back = round(
        &mut tomorrow,
        "/staff/sign-in",
        "/staff/sso/start",
        "maryam.k",
        "idp-pass-1",
    )
    .await;
    // Another browser cannot use this answer (its flow cookie is this browser's) ...
    let mut attacker = Browser::new(&app, "alpha.test");
    assert_eq!(attacker.get(&back).await.status, StatusCode::UNAUTHORIZED);
    // ... nor can a tampered state, and the flow it named is then gone.
    let mut other = Browser::new(&app, "alpha.test");
    let back_other = round(
        &mut other,
        "/staff/sign-in",
        "/staff/sso/start",
        "maryam.k",
        "idp-pass-1",
    )
    .await;
    let forged = back_other.replace(
        &query_param(&back_other, "state").unwrap(),
        &query_param(&back, "state").unwrap(),
    );
    assert_eq!(other.get(&forged).await.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        other.get(&back_other).await.status,
        StatusCode::UNAUTHORIZED
    );
    // The real one signs in.
    let signed = tomorrow.get(&back).await;
    assert_eq!(signed.status, StatusCode::SEE_OTHER, "{}", signed.text);
    assert_eq!(tomorrow.get("/staff").await.status, StatusCode::OK);
    // The activity log shows both sign-ins.
    assert!(
        app.scalar(
            &alpha,
            "select count(*) from audit_log where action = 'sign_in' and detail->>'via' = 'sso'"
        )
        .await
            >= 1
    );

    // 5. An account at the provider that no member linked is told so, and gets nothing.
    let mut stranger = Browser::new(&app, "alpha.test");
    let back = round(
        &mut stranger,
        "/staff/sign-in",
        "/staff/sso/start",
        "stranger",
        "idp-pass-3",
    )
    .await;
    let refused = stranger.get(&back).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert!(refused.text.contains("پیوند نخورده"));
    assert_eq!(
        stranger.get("/staff").await.status,
        StatusCode::UNAUTHORIZED
    );

    // 6. The admin links their own account from «حساب من»; maryam's is taken.
    let back = round(
        &mut admin,
        "/staff/account",
        "/staff/account/sso",
        "maryam.k",
        "idp-pass-1",
    )
    .await;
    let taken = admin.get(&back).await;
    assert_eq!(taken.status, StatusCode::CONFLICT, "{}", taken.text);
    assert!(taken.text.contains("عضو دیگری"));
    let back = round(
        &mut admin,
        "/staff/account",
        "/staff/account/sso",
        "boss",
        "idp-pass-2",
    )
    .await;
    let linked = admin.get(&back).await;
    assert_eq!(linked.location.as_deref(), Some("/staff/account?done=sso"));
    let account = admin.get("/staff/account?done=sso").await;
    assert!(account.text.contains("/staff/account/sso/remove"));

    // 7. Nothing crosses to beta: no button, no provider, alpha's subjects sign in nobody.
    let mut at_beta = Browser::new(&app, "beta.test");
    let page = at_beta.get("/staff/sign-in").await;
    assert!(!page.text.contains("/staff/sso/start"));
    let res = at_beta
        .post("/staff/sso/start", &[("csrf", &page.csrf())])
        .await;
    assert_eq!(res.status, StatusCode::NOT_FOUND, "{}", res.text);
    // Alpha's flow cookie and answer, replayed on beta's host.
    let mut both = Browser::new(&app, "alpha.test");
    let back = round(
        &mut both,
        "/staff/sign-in",
        "/staff/sso/start",
        "maryam.k",
        "idp-pass-1",
    )
    .await;
    let mut beta_browser = Browser::new(&app, "beta.test");
    beta_browser.cookies = both.cookies.clone();
    assert_eq!(
        beta_browser.get(&back).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.scalar(&beta, "select count(*) from sso_provider").await,
        0
    );
    assert_eq!(
        app.scalar(
            &beta,
            "select count(*) from staff where sso_subject is not null"
        )
        .await,
        0
    );

    // 8. Deactivated, the clerk's provider account no longer signs in.
    let team = admin.get("/staff/team").await;
    let clerk_id = app
        .scalar(&alpha, "select id from staff where username = 'maryam'")
        .await;
    let off = admin
        .post(
            &format!("/staff/team/{clerk_id}/deactivate"),
            &[("csrf", &team.csrf())],
        )
        .await;
    assert_eq!(off.status, StatusCode::SEE_OTHER, "{}", off.text);
    let mut later = Browser::new(&app, "alpha.test");
    let back = round(
        &mut later,
        "/staff/sign-in",
        "/staff/sso/start",
        "maryam.k",
        "idp-pass-1",
    )
    .await;
    let refused = later.get(&back).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text);
    assert!(refused.text.contains("غیرفعال"));

    // 9. The admin removes the provider: every link goes with it, the button disappears.
    let page = admin.get("/staff/settings/sso").await;
    let removed = admin
        .post("/staff/settings/sso/remove", &[("csrf", &page.csrf())])
        .await;
    assert_eq!(removed.status, StatusCode::SEE_OTHER, "{}", removed.text);
    assert_eq!(
        app.scalar(
            &alpha,
            "select count(*) from staff where sso_subject is not null"
        )
        .await,
        0
    );
    let page = Browser::new(&app, "alpha.test").get("/staff/sign-in").await;
    assert!(!page.text.contains("/staff/sso/start"));
}
