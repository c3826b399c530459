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
