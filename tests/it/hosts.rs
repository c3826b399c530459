//! Routing by host: known, unknown, custom domain, suspended, archived; health and metrics.

use axum::http::StatusCode;
use desk_core::{Hostname, TenantStatus};
use desk_db::migrate::TenantMigrations;
use desk_tests::{TestApp, TestDb};

const QUERY: &str = "{ tenant { slug name nameEn province { id name } } }";

#[tokio::test]
async fn hosts_route_to_their_municipality() {
    let app = TestApp::new().await;
    let mut new = TestDb::new_tenant("alpha");
    new.domains
        .push(Hostname::parse("khedmat.alpha-city.ir").unwrap());
    let a = app
        .db
        .platform
        .create_tenant(&new, &TenantMigrations::embedded())
        .await
        .unwrap();
    let b = app.db.tenant("beta").await;

    let home = app.get("alpha.test", "/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.text.contains("dir=\"rtl\"") && home.text.contains("lang=\"fa\""));
    assert!(home.text.contains(&a.name_fa) && home.text.contains("اصفهان"));
    assert!(!home.text.contains(&b.name_fa));

    // Port and case do not matter; the custom domain serves the same municipality.
    let custom = app.get("KHEDMAT.alpha-city.ir:443", "/").await;
    assert_eq!(custom.status, StatusCode::OK);
    assert!(custom.text.contains(&a.name_fa));

    let (status, json) = app.graphql("beta.test", QUERY).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["data"]["tenant"]["slug"], "beta");
    assert_eq!(json["data"]["tenant"]["province"]["name"], "اصفهان");
    let (_, json) = app.graphql("khedmat.alpha-city.ir", QUERY).await;
    assert_eq!(json["data"]["tenant"]["slug"], "alpha");

    let graphiql = app.get("alpha.test", "/graphql").await;
    assert_eq!(graphiql.status, StatusCode::OK);
    assert!(graphiql.text.to_lowercase().contains("graphiql"));
    app.db.finish().await;
}

#[tokio::test]
async fn unknown_hosts_get_a_themed_not_found() {
    let app = TestApp::new().await;
    let _a = app.db.tenant("alpha").await;
    for host in [
        "gamma.test",
        "alpha.test.evil.com",
        "localhost",
        "not a host",
        "",
    ] {
        let res = app.get(host, "/").await;
        assert_eq!(res.status, StatusCode::NOT_FOUND, "{host:?}");
        assert!(res.text.contains("پیدا نشد"), "{host:?}: Persian page");
        assert!(
            !res.text.contains(&desk_tests::persian_name("alpha")),
            "{host:?}"
        );
    }
    let (status, json) = app.graphql("gamma.test", QUERY).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(json["errors"][0]["extensions"]["code"], "NOT_FOUND");
    app.db.finish().await;
}

#[tokio::test]
async fn suspended_municipalities_show_a_notice_and_their_api_refuses() {
    let app = TestApp::new().await;
    let a = app.db.tenant("alpha").await;
    let _b = app.db.tenant("beta").await;
    app.db
        .platform
        .set_tenant_status(a.id, TenantStatus::Suspended)
        .await
        .unwrap();

    let page = app.get("alpha.test", "/").await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(page.text.contains("موقتاً") && page.text.contains(&a.name_fa));
    let (status, json) = app.graphql("alpha.test", QUERY).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(json["errors"][0]["extensions"]["code"], "TENANT_SUSPENDED");
    assert!(
        json["data"].is_null(),
        "no data from a suspended municipality"
    );
    // The neighbour is unaffected.
    assert_eq!(app.get("beta.test", "/").await.status, StatusCode::OK);

    app.db
        .platform
        .set_tenant_status(a.id, TenantStatus::Archived)
        .await
        .unwrap();
    assert_eq!(
        app.get("alpha.test", "/").await.status,
        StatusCode::NOT_FOUND
    );
    app.db
        .platform
        .set_tenant_status(a.id, TenantStatus::Active)
        .await
        .unwrap();
    assert_eq!(app.get("alpha.test", "/").await.status, StatusCode::OK);
    app.db.finish().await;
}

#[tokio::test]
async fn platform_host_health_and_metrics() {
    let app = TestApp::new().await;
    let a = app.db.tenant("alpha").await;
    let portal = app.get("admin.test", "/").await;
    assert_eq!(
        portal.status,
        StatusCode::SEE_OTHER,
        "the portal asks for sign-in"
    );
    let login = app.get("admin.test", "/login").await;
    assert!(login.status == StatusCode::OK && login.text.contains("ورود"));
    assert!(
        !login.text.contains(&a.name_fa),
        "nothing about municipalities before sign-in"
    );
    assert_eq!(app.get("anything", "/healthz").await.text, "ok");
    let ready = app.get("alpha.test", "/readyz").await;
    assert_eq!(ready.status, StatusCode::OK);
    // Metrics are served on the operations listener only, never on a public host.
    for host in ["admin.test", "alpha.test", "anything"] {
        let public = app.get(host, "/metrics").await;
        assert_eq!(public.status, StatusCode::NOT_FOUND, "{host}");
        assert!(!public.text.contains("desk_http_responses_total"));
    }
    assert_eq!(app.ops_get("/healthz").await.text, "ok");
    assert_eq!(app.ops_get("/readyz").await.status, StatusCode::OK);
    let metrics = app.ops_get("/metrics").await;
    assert!(
        metrics
            .text
            .contains("desk_http_responses_total{class=\"2xx\"} 1"),
        "{}",
        metrics.text
    );
    assert!(metrics.text.contains("desk_db_pool_connections"));
    app.db.finish().await;
}
