//! The tenant scope: isolation between schemas, enforced by PostgreSQL roles, and no leaks
//! through pooled connections.

use desk_core::jobs::WelcomeStaff;
use desk_tests::{TestDb, sqlstate};
use sqlx::AssertSqlSafe;

async fn put(db: &TestDb, tenant: &desk_db::Tenant, value: &str) {
    let mut tx = db.platform.tenant_db().begin(tenant.scope()).await.unwrap();
    sqlx::query("insert into settings (key, value) values ('probe', to_jsonb($1::text))")
        .bind(value)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn get(db: &TestDb, tenant: &desk_db::Tenant) -> Option<String> {
    let mut tx = db.platform.tenant_db().begin(tenant.scope()).await.unwrap();
    let v: Option<String> =
        sqlx::query_scalar("select value #>> '{}' from settings where key = 'probe'")
            .fetch_optional(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    v
}

#[tokio::test]
async fn same_tables_are_isolated_and_other_schemas_are_denied() {
    let db = TestDb::new().await;
    let a = db.tenant("alpha").await;
    let b = db.tenant("beta").await;

    put(&db, &a, "from alpha").await;
    assert_eq!(get(&db, &b).await, None, "B sees nothing A wrote");
    put(&db, &b, "from beta").await;
    assert_eq!(get(&db, &a).await.as_deref(), Some("from alpha"));
    assert_eq!(get(&db, &b).await.as_deref(), Some("from beta"));

    // Naming A's schema inside B's transaction fails in PostgreSQL itself.
    for sql in [
        "select value from t_alpha.settings",
        "insert into t_alpha.settings (key, value) values ('x', '1')",
        "select count(*) from t_alpha.staff",
        "select slug from platform.tenants",
        "select id from platform.users",
        "select job from apalis.jobs",
    ] {
        let mut tx = db.platform.tenant_db().begin(b.scope()).await.unwrap();
        let err = sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&mut *tx)
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{sql}: {err}");
        tx.rollback().await.unwrap();
    }
    assert_eq!(
        get(&db, &a).await.as_deref(),
        Some("from alpha"),
        "A untouched"
    );
    db.finish().await;
}

#[tokio::test]
async fn the_login_role_alone_cannot_read_tenant_data() {
    let db = TestDb::new().await;
    let a = db.tenant("alpha").await;
    put(&db, &a, "secret").await;
    let pool = db.platform.pool_for_infrastructure();
    let superuser: bool =
        sqlx::query_scalar("select rolsuper from pg_roles where rolname = current_user")
            .fetch_one(pool)
            .await
            .unwrap();
    if superuser {
        // A superuser login bypasses privileges; scripts/test uses the NOINHERIT `desk` login.
        eprintln!("skipped: DATABASE_URL logs in as a superuser");
    } else {
        let err = sqlx::query("select value from t_alpha.settings")
            .fetch_all(pool)
            .await
            .unwrap_err();
        assert_eq!(sqlstate(&err).as_deref(), Some("42501"), "{err}");
    }
    db.finish().await;
}

#[tokio::test]
async fn the_scope_never_outlives_its_transaction() {
    let db = TestDb::with_pool_size(1).await;
    let a = db.tenant("alpha").await;
    let b = db.tenant("beta").await;
    put(&db, &a, "a").await;
    put(&db, &b, "b").await;
    let pool = db.platform.pool_for_infrastructure();
    let (login, default_path): (String, String) =
        sqlx::query_as("select current_user::text, current_setting('search_path')")
            .fetch_one(pool)
            .await
            .unwrap();

    for i in 0..40 {
        let (tenant, expected) = if i % 2 == 0 { (&a, "a") } else { (&b, "b") };
        let mut tx = db.platform.tenant_db().begin(tenant.scope()).await.unwrap();
        let (value, user, path): (String, String, String) = sqlx::query_as(
            "select (select value #>> '{}' from settings where key = 'probe'),
                    current_user::text, current_setting('search_path')",
        )
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        assert_eq!(value, expected, "round {i}");
        assert!(
            user.ends_with(tenant.scope().schema().as_str()),
            "round {i}: {user}"
        );
        assert!(
            path.starts_with(tenant.scope().schema().as_str()),
            "round {i}: {path}"
        );
        if i % 3 == 0 {
            tx.rollback().await.unwrap();
        } else {
            tx.commit().await.unwrap();
        }
        // The one pooled connection is back to the login role and the default path.
        let after: (String, String) =
            sqlx::query_as("select current_user::text, current_setting('search_path')")
                .fetch_one(pool)
                .await
                .unwrap();
        assert_eq!(after, (login.clone(), default_path.clone()), "round {i}");
    }
    db.finish().await;
}

#[tokio::test]
async fn a_transaction_refuses_to_enqueue_another_tenants_job() {
    let db = TestDb::new().await;
    let a = db.tenant("alpha").await;
    let b = db.tenant("beta").await;
    let mut tx = db.platform.tenant_db().begin(a.scope()).await.unwrap();
    let foreign = WelcomeStaff {
        tenant_id: b.id,
        staff_id: 1,
        round: 0,
    };
    assert!(desk_db::jobs::enqueue(&mut tx, &foreign).await.is_err());
    let own = WelcomeStaff {
        tenant_id: a.id,
        staff_id: 1,
        round: 0,
    };
    desk_db::jobs::enqueue(&mut tx, &own).await.unwrap();
    tx.commit().await.unwrap();
    db.finish().await;
}
