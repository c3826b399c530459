//! Policies: tenant roles stay in their municipality, operators in their province.

use desk_authz::{Action, Authorizer, Domain, Resource, Role, Subject};
use desk_db::migrate::TenantMigrations;
use desk_tests::{TEHRAN, TestDb};

#[tokio::test]
async fn roles_are_scoped_to_their_municipality_and_province() {
    let db = TestDb::new().await;
    let a = db.tenant("alpha").await;
    let b = db.tenant("beta").await;
    let t = db
        .platform
        .create_tenant(
            &TestDb::new_tenant_in("tehran-city", TEHRAN),
            &TenantMigrations::embedded(),
        )
        .await
        .unwrap();
    let authz = Authorizer::load(&db.platform).await.unwrap();
    authz
        .ensure_default_policies(&db.platform.province_ids().await.unwrap())
        .await
        .unwrap();
    for tenant in [&a, &b, &t] {
        authz
            .place_tenant(tenant.id, tenant.province_id)
            .await
            .unwrap();
    }
    let admin_a = Subject::Staff {
        tenant: a.id,
        id: 1,
    };
    authz
        .assign(&admin_a, Role::TenantAdmin, Some(a.id))
        .await
        .unwrap();
    let operator = Subject::PlatformUser(7);
    authz
        .assign(&operator, Role::ProvinceOperator(a.province_id), None)
        .await
        .unwrap();
    let root = Subject::PlatformUser(1);
    authz
        .assign(&root, Role::PlatformAdmin, None)
        .await
        .unwrap();
    // A tenant role cannot be granted platform-wide.
    assert!(
        authz
            .assign(&admin_a, Role::TenantAdmin, None)
            .await
            .is_err()
    );

    let check = |s: Subject, d: Domain, r: Resource, act: Action| {
        let authz = authz.clone();
        async move { authz.allowed(&s, d, r, act).await.unwrap() }
    };
    let (da, db_, dt) = (
        Domain::Tenant(a.id),
        Domain::Tenant(b.id),
        Domain::Tenant(t.id),
    );

    assert!(check(admin_a.clone(), da, Resource::Catalog, Action::Update).await);
    assert!(check(admin_a.clone(), da, Resource::Request, Action::Read).await);
    assert!(
        !check(admin_a.clone(), db_, Resource::Catalog, Action::Update).await,
        "not in beta"
    );
    assert!(
        !check(admin_a.clone(), db_, Resource::Request, Action::Read).await,
        "not in beta"
    );
    assert!(
        !check(
            admin_a.clone(),
            Domain::Platform,
            Resource::Tenant,
            Action::Manage
        )
        .await
    );

    assert!(check(operator.clone(), da, Resource::Tenant, Action::Manage).await);
    assert!(check(operator.clone(), db_, Resource::Report, Action::Read).await);
    assert!(
        !check(operator.clone(), dt, Resource::Tenant, Action::Manage).await,
        "other province"
    );
    assert!(
        !check(operator.clone(), da, Resource::Request, Action::Read).await,
        "no personal data"
    );

    assert!(check(root.clone(), dt, Resource::Tenant, Action::Manage).await);
    assert!(
        !check(root.clone(), dt, Resource::Request, Action::Read).await,
        "no personal data"
    );

    // Policies persist: a fresh authorizer from the database answers the same.
    let reloaded = Authorizer::load(&db.platform).await.unwrap();
    assert!(
        reloaded
            .allowed(&operator, da, Resource::Tenant, Action::Manage)
            .await
            .unwrap()
    );
    assert!(
        !reloaded
            .allowed(&operator, dt, Resource::Tenant, Action::Manage)
            .await
            .unwrap()
    );
    assert!(
        !reloaded
            .allowed(&admin_a, db_, Resource::Catalog, Action::Update)
            .await
            .unwrap()
    );
    db.finish().await;
}

#[tokio::test]
async fn a_policy_change_reaches_other_instances() {
    let db = TestDb::new().await;
    let a = db.tenant("alpha").await;
    let here = Authorizer::load(&db.platform).await.unwrap();
    let there = Authorizer::load(&db.platform).await.unwrap();
    let watcher = there.watch(&db.platform).await.unwrap();
    let admin = Subject::Staff {
        tenant: a.id,
        id: 1,
    };
    let may = |authz: Authorizer| {
        let admin = admin.clone();
        async move {
            authz
                .allowed(
                    &admin,
                    Domain::Tenant(a.id),
                    Resource::Catalog,
                    Action::Read,
                )
                .await
                .unwrap()
        }
    };
    here.ensure_default_policies(&[]).await.unwrap();
    here.assign(&admin, Role::TenantAdmin, Some(a.id))
        .await
        .unwrap();
    assert!(may(here.clone()).await);
    let mut seen = false;
    for _ in 0..50 {
        if may(there.clone()).await {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(seen, "the other instance reloaded its policies");
    watcher.abort();
    db.finish().await;
}
