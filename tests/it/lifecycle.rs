//! Looking after municipalities: operators stay in their province, the lifecycle moves as
//! allowed, and the audit chain catches tampering.

use desk_authz::{Authorizer, Role, Subject};
use desk_core::{DomainError, Hostname, TenantStatus};
use desk_db::tenants::TenantFilter;
use desk_tenant_admin::Onboarding;
use desk_tenant_admin::lifecycle::{self, Actor, DomainChange, Lifecycle};
use desk_tests::{ISFAHAN, TEHRAN, TestDb};

struct World {
    db: TestDb,
    authz: Authorizer,
    operator: Actor,
    admin: Actor,
}

async fn world() -> World {
    let db = TestDb::new().await;
    let authz = Authorizer::load(&db.platform).await.unwrap();
    authz
        .ensure_default_policies(&db.platform.province_ids().await.unwrap())
        .await
        .unwrap();
    let op_id = db
        .platform
        .ensure_platform_user(
            "isfahan-operator",
            "کارشناس",
            "province_operator",
            Some(ISFAHAN),
        )
        .await
        .unwrap();
    authz
        .assign(
            &Subject::PlatformUser(op_id),
            Role::ProvinceOperator(ISFAHAN),
            None,
        )
        .await
        .unwrap();
    let admin_id = db
        .platform
        .ensure_platform_user("root", "مدیر", "platform_admin", None)
        .await
        .unwrap();
    authz
        .assign(&Subject::PlatformUser(admin_id), Role::PlatformAdmin, None)
        .await
        .unwrap();
    for (slug, province) in [
        ("alpha", ISFAHAN),
        ("beta", ISFAHAN),
        ("tehran-city", TEHRAN),
    ] {
        let req = Onboarding {
            theme: desk_tenant_admin::DEFAULT_THEME.to_owned(),
            tenant: TestDb::new_tenant_in(slug, province),
            first_admin: None,
        };
        desk_tenant_admin::onboard(&db.platform, &authz, &Actor::Cli, "test", &req)
            .await
            .unwrap();
    }
    World {
        db,
        authz,
        operator: Actor::User {
            id: op_id,
            username: "isfahan-operator".into(),
        },
        admin: Actor::User {
            id: admin_id,
            username: "root".into(),
        },
    }
}

fn slug(s: &str) -> desk_core::TenantSlug {
    desk_core::TenantSlug::parse(s).unwrap()
}

#[tokio::test]
async fn an_operator_reaches_only_the_municipalities_of_their_province() {
    let w = world().await;
    let (db, authz, op) = (&w.db.platform, &w.authz, &w.operator);

    let seen: Vec<String> = lifecycle::list(db, authz, op, &TenantFilter::default(), None)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.slug.to_string())
        .collect();
    assert_eq!(seen, ["alpha", "beta"]);
    let all = lifecycle::list(db, authz, &w.admin, &TenantFilter::default(), None)
        .await
        .unwrap();
    assert_eq!(all.len(), 3);
    let found = lifecycle::list(
        db,
        authz,
        &w.admin,
        &TenantFilter::default(),
        Some("TEHRAN"),
    )
    .await
    .unwrap();
    assert_eq!(found.len(), 1);

    // Every way into Tehran's municipality says "not found", and changes nothing.
    let other = slug("tehran-city");
    assert!(matches!(
        lifecycle::find(db, authz, op, &other).await,
        Err(DomainError::NotFound)
    ));
    for change in [Lifecycle::Suspend, Lifecycle::Archive] {
        let err = lifecycle::change_status(db, authz, op, &other, change, "test")
            .await
            .unwrap_err();
        assert!(matches!(err, DomainError::NotFound), "{change:?}: {err:?}");
    }
    let host = Hostname::parse("evil.example").unwrap();
    let err = lifecycle::change_domain(
        db,
        authz,
        op,
        &other,
        DomainChange::Add(&host),
        "test",
        "test",
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DomainError::NotFound));
    let req = Onboarding {
        theme: desk_tenant_admin::DEFAULT_THEME.to_owned(),
        tenant: TestDb::new_tenant_in("karaj", 5),
        first_admin: None,
    };
    let err = desk_tenant_admin::onboard(db, authz, op, "test", &req)
        .await
        .unwrap_err();
    assert!(
        matches!(err, DomainError::Forbidden),
        "no onboarding in another province"
    );
    let untouched = db.tenant_by_slug(&other).await.unwrap().unwrap();
    assert_eq!(untouched.status, TenantStatus::Active);
    assert_eq!(db.tenant_domains(untouched.id).await.unwrap().len(), 1);

    // Inside the province the operator works normally.
    let req = Onboarding {
        theme: desk_tenant_admin::DEFAULT_THEME.to_owned(),
        tenant: TestDb::new_tenant_in("kashan", ISFAHAN),
        first_admin: None,
    };
    desk_tenant_admin::onboard(db, authz, op, "test", &req)
        .await
        .unwrap();
    let t = lifecycle::change_status(db, authz, op, &slug("alpha"), Lifecycle::Suspend, "test")
        .await
        .unwrap();
    assert_eq!(t.status, TenantStatus::Suspended);
    w.db.finish().await;
}

#[tokio::test]
async fn the_lifecycle_moves_only_along_its_edges() {
    let w = world().await;
    let (db, authz, op) = (&w.db.platform, &w.authz, &w.operator);
    let a = slug("alpha");
    let step = |change| lifecycle::change_status(db, authz, op, &a, change, "test");
    assert!(matches!(
        step(Lifecycle::Resume).await,
        Err(DomainError::Conflict(_))
    ));
    assert_eq!(
        step(Lifecycle::Suspend).await.unwrap().status,
        TenantStatus::Suspended
    );
    assert!(matches!(
        step(Lifecycle::Suspend).await,
        Err(DomainError::Conflict(_))
    ));
    assert_eq!(
        step(Lifecycle::Resume).await.unwrap().status,
        TenantStatus::Active
    );
    assert_eq!(
        step(Lifecycle::Archive).await.unwrap().status,
        TenantStatus::Archived
    );
    assert_eq!(
        step(Lifecycle::Restore).await.unwrap().status,
        TenantStatus::Active
    );

    let host = Hostname::parse("khedmat.alpha.ir").unwrap();
    lifecycle::change_domain(db, authz, op, &a, DomainChange::Add(&host), "test", "test")
        .await
        .unwrap();
    let tenant = db.tenant_by_host(&host).await.unwrap().unwrap();
    assert_eq!(tenant.slug, a);
    lifecycle::change_domain(
        db,
        authz,
        op,
        &a,
        DomainChange::Remove(&host),
        "test",
        "test",
    )
    .await
    .unwrap();
    assert!(db.tenant_by_host(&host).await.unwrap().is_none());
    // Names under the deployment's own domain belong to other slugs and the platform.
    for reserved in ["beta.test", "admin.test", "test", "shiraz.test"] {
        let h = Hostname::parse(reserved).unwrap();
        let err =
            lifecycle::change_domain(db, authz, op, &a, DomainChange::Add(&h), "test", "test")
                .await
                .unwrap_err();
        assert!(matches!(err, DomainError::Validation(_)), "{reserved}");
    }
    // The default domain cannot be removed.
    let default = Hostname::parse("alpha.test").unwrap();
    assert!(
        lifecycle::change_domain(
            db,
            authz,
            op,
            &a,
            DomainChange::Remove(&default),
            "test",
            "test"
        )
        .await
        .is_err()
    );
    w.db.finish().await;
}

#[tokio::test]
async fn the_audit_chain_detects_tampering() {
    let w = world().await;
    let db = &w.db.platform;
    lifecycle::change_status(
        db,
        &w.authz,
        &w.operator,
        &slug("alpha"),
        Lifecycle::Suspend,
        "10.0.0.7",
    )
    .await
    .unwrap();
    lifecycle::change_status(
        db,
        &w.authz,
        &w.operator,
        &slug("alpha"),
        Lifecycle::Resume,
        "10.0.0.7",
    )
    .await
    .unwrap();
    assert_eq!(db.verify_audit_chain().await.unwrap(), None);
    let pool = db.pool_for_infrastructure();
    let (actor, source): (String, String) = sqlx::query_as(
        "select actor, source from platform.audit_log where action = 'tenant.suspend'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert!(actor.contains("isfahan-operator") && source == "10.0.0.7");

    // The log refuses edits outright...
    let err = sqlx::query(
        "update platform.audit_log set actor = 'someone-else' where action = 'tenant.suspend'",
    )
    .execute(pool)
    .await
    .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert!(
        sqlx::query("delete from platform.audit_log")
            .execute(pool)
            .await
            .is_err()
    );

    // ...and an edit made behind its back (trigger disabled by the table owner) is detected.
    let target: i64 =
        sqlx::query_scalar("select id from platform.audit_log where action = 'tenant.suspend'")
            .fetch_one(pool)
            .await
            .unwrap();
    sqlx::raw_sql(
        "alter table platform.audit_log disable trigger audit_log_append_only;
         update platform.audit_log set actor = 'someone-else' where action = 'tenant.suspend';
         alter table platform.audit_log enable trigger audit_log_append_only;",
    )
    .execute(pool)
    .await
    .unwrap();
    let broken = db.verify_audit_chain().await.unwrap().unwrap();
    assert_eq!(broken.id, target);
    w.db.finish().await;
}

#[tokio::test]
async fn suspended_municipalities_get_no_new_work_but_keep_their_data() {
    let w = world().await;
    let (db, authz) = (&w.db.platform, &w.authz);
    let t = db.tenant_by_slug(&slug("beta")).await.unwrap().unwrap();
    let mut tx = db.tenant_db().begin(t.scope()).await.unwrap();
    desk_db::staff::insert_staff(&mut tx, "clerk", "کارمند", None, false)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    lifecycle::change_status(
        db,
        authz,
        &Actor::Cli,
        &slug("beta"),
        Lifecycle::Archive,
        "cli",
    )
    .await
    .unwrap();
    lifecycle::change_status(
        db,
        authz,
        &Actor::Cli,
        &slug("beta"),
        Lifecycle::Restore,
        "cli",
    )
    .await
    .unwrap();
    let mut tx = db.tenant_db().begin(t.scope()).await.unwrap();
    let n: i64 = sqlx::query_scalar("select count(*) from staff")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(n, 1, "archive and restore keep the data");
    w.db.finish().await;
}

#[tokio::test]
async fn export_then_import_as_a_new_slug_loses_nothing() {
    let w = world().await;
    let (db, authz) = (&w.db.platform, &w.authz);
    let req = Onboarding {
        theme: desk_tenant_admin::DEFAULT_THEME.to_owned(),
        tenant: TestDb::new_tenant("gamma"),
        first_admin: Some(desk_tenant_admin::FirstAdmin {
            username: "admin-gamma".into(),
            display_name: "مدیر «گاما»".into(),
            mobile: desk_core::MobileNumber::parse("09130001111").unwrap(),
        }),
    };
    desk_tenant_admin::onboard(db, authz, &Actor::Cli, "test", &req)
        .await
        .unwrap();
    let gamma = db.tenant_by_slug(&slug("gamma")).await.unwrap().unwrap();
    let mut tx = db.tenant_db().begin(gamma.scope()).await.unwrap();
    let clerk = desk_db::staff::insert_staff(&mut tx, "clerk", "کارمند\u{200c}ها", None, false)
        .await
        .unwrap();
    sqlx::query("insert into settings (key, value) values ('contact', '{\"tel\": \"031-1234\", \"note\": \"ساعت ۸ تا ۱۴\"}')")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query("insert into notifications (kind, staff_id, recipient, body) values ('staff_welcome', $1, null, 'متن «آزمایشی»')")
        .bind(clerk.id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    authz
        .assign(
            &Subject::Staff {
                tenant: gamma.id,
                id: clerk.id,
            },
            Role::DeskStaff,
            Some(gamma.id),
        )
        .await
        .unwrap();
    lifecycle::change_status(
        db,
        authz,
        &Actor::Cli,
        &slug("gamma"),
        Lifecycle::Suspend,
        "cli",
    )
    .await
    .unwrap();

    // Operators never take personal data out of a municipality.
    let denied =
        desk_tenant_admin::archive::export(db, authz, &w.operator, &slug("gamma"), "test").await;
    assert!(matches!(denied, Err(DomainError::Forbidden)));

    let archive = desk_tenant_admin::archive::export(db, authz, &w.admin, &slug("gamma"), "test")
        .await
        .unwrap();
    let text = serde_json::to_string_pretty(&archive).unwrap();
    let portable: serde_json::Value = serde_json::from_str(&text).unwrap();
    let copy = desk_tenant_admin::archive::import(
        db,
        authz,
        None,
        &w.admin,
        "test",
        &portable,
        slug("gamma-copy"),
        "test",
    )
    .await
    .unwrap();
    assert_eq!(
        (copy.name_fa.as_str(), copy.province_id, copy.status),
        (
            gamma.name_fa.as_str(),
            gamma.province_id,
            TenantStatus::Suspended
        )
    );
    assert_ne!(copy.id, gamma.id);

    let again =
        desk_tenant_admin::archive::export(db, authz, &w.admin, &slug("gamma-copy"), "test")
            .await
            .unwrap();
    for part in ["tables", "migrations", "staff_roles"] {
        assert_eq!(again[part], archive[part], "{part} survives the round trip");
    }
    assert_eq!(archive["tables"]["staff"].as_array().unwrap().len(), 2);
    assert_eq!(
        archive["staff_roles"].as_array().unwrap().len(),
        2,
        "tenant admin and desk staff"
    );

    // The copy keeps counting after the imported ids.
    let mut tx = db.tenant_db().begin(copy.scope()).await.unwrap();
    let next = desk_db::staff::insert_staff(&mut tx, "newcomer", "تازه‌وارد", None, false)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert!(next.id > clerk.id);

    // A damaged archive is refused with a Persian message and creates nothing.
    let mut damaged = portable.clone();
    damaged["migrations"] = serde_json::json!([1]);
    let err = desk_tenant_admin::archive::import(
        db,
        authz,
        None,
        &w.admin,
        "test",
        &damaged,
        slug("gamma-bad"),
        "test",
    )
    .await
    .unwrap_err();
    assert!(matches!(err, DomainError::Validation(_)));
    assert!(
        db.tenant_by_slug(&slug("gamma-bad"))
            .await
            .unwrap()
            .is_none()
    );
    w.db.finish().await;
}
