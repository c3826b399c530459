//! Provisioning rejects bad input before SQL and leaves nothing half-made.

use desk_core::{DomainError, Hostname};
use desk_db::migrate::TenantMigrations;
use desk_tests::TestDb;

fn code(err: DomainError) -> &'static str {
    match err {
        DomainError::Validation(f) => f.0[0].code,
        other => panic!("expected a validation error, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_input_gets_a_field_error_and_leaves_nothing() {
    let db = TestDb::new().await;
    let set = TenantMigrations::embedded();
    let _a = db.tenant("alpha").await;

    let dup_slug = TestDb::new_tenant("alpha");
    let mut dup_slug = dup_slug.clone();
    dup_slug.domains = vec![Hostname::parse("other.test").unwrap()];
    assert_eq!(
        code(
            db.platform
                .create_tenant(&dup_slug, &set)
                .await
                .unwrap_err()
        ),
        "slug_taken"
    );

    let mut dup_domain = TestDb::new_tenant("beta");
    dup_domain
        .domains
        .push(Hostname::parse("alpha.test").unwrap());
    assert_eq!(
        code(
            db.platform
                .create_tenant(&dup_domain, &set)
                .await
                .unwrap_err()
        ),
        "domain_taken"
    );

    let mut no_province = TestDb::new_tenant("beta");
    no_province.province_id = 99;
    assert_eq!(
        code(
            db.platform
                .create_tenant(&no_province, &set)
                .await
                .unwrap_err()
        ),
        "province_unknown"
    );

    let mut no_name = TestDb::new_tenant("beta");
    no_name.name_fa = "   ".to_owned();
    assert_eq!(
        code(db.platform.create_tenant(&no_name, &set).await.unwrap_err()),
        "name_length"
    );

    let mut latin = TestDb::new_tenant("beta");
    latin.name_fa = "Beta City".to_owned();
    assert_eq!(
        code(db.platform.create_tenant(&latin, &set).await.unwrap_err()),
        "name_not_persian"
    );

    let mut no_domain = TestDb::new_tenant("beta");
    no_domain.domains.clear();
    assert_eq!(
        code(
            db.platform
                .create_tenant(&no_domain, &set)
                .await
                .unwrap_err()
        ),
        "domain_required"
    );

    // None of the failures left a schema, role or registry row behind.
    let (schemas, tenants): (i64, i64) = sqlx::query_as(
        "select (select count(*) from pg_namespace where nspname like 't\\_%'),
                (select count(*) from platform.tenants)",
    )
    .fetch_one(db.platform.pool_for_infrastructure())
    .await
    .unwrap();
    assert_eq!((schemas, tenants), (1, 1));
    // And beta can still be created properly.
    db.tenant("beta").await;
    db.finish().await;
}

#[tokio::test]
async fn a_failed_onboarding_leaves_no_tenant_policy_or_audit_line() {
    let db = TestDb::new().await;
    let authz = desk_authz::Authorizer::load(&db.platform).await.unwrap();
    let pool = db.platform.pool_for_infrastructure();
    let count = |sql: &'static str| async move {
        sqlx::query_scalar::<_, i64>(sql)
            .fetch_one(pool)
            .await
            .unwrap()
    };
    let before = (
        count("select count(*) from platform.casbin_rule").await,
        count("select count(*) from platform.audit_log").await,
    );
    let req = desk_tenant_admin::Onboarding {
        theme: desk_tenant_admin::DEFAULT_THEME.to_owned(),
        tenant: TestDb::new_tenant("alpha"),
        first_admin: Some(desk_tenant_admin::FirstAdmin {
            username: "Not Valid!".into(),
            display_name: "مدیر".into(),
            mobile: desk_core::MobileNumber::parse("09120000000").unwrap(),
        }),
    };
    let err = desk_tenant_admin::onboard(
        &db.platform,
        &authz,
        &desk_tenant_admin::Actor::Cli,
        "test",
        &req,
    )
    .await
    .unwrap_err();
    assert_eq!(code(err), "invalid_staff");
    let after = (
        count("select count(*) from platform.casbin_rule").await,
        count("select count(*) from platform.audit_log").await,
    );
    assert_eq!(before, after);
    assert!(
        db.platform
            .tenant_by_slug(&req.tenant.slug)
            .await
            .unwrap()
            .is_none()
    );
    // With a valid admin the same onboarding succeeds and writes both.
    let ok = desk_tenant_admin::Onboarding {
        first_admin: Some(desk_tenant_admin::FirstAdmin {
            username: "admin-alpha".into(),
            ..req.first_admin.clone().unwrap()
        }),
        ..req
    };
    desk_tenant_admin::onboard(
        &db.platform,
        &authz,
        &desk_tenant_admin::Actor::Cli,
        "test",
        &ok,
    )
    .await
    .unwrap();
    assert_eq!(
        count("select count(*) from platform.casbin_rule where ptype in ('g', 'g2')").await,
        2
    );
    assert_eq!(
        count("select count(*) from platform.audit_log where action = 'tenant.create'").await,
        1
    );
    db.finish().await;
}
