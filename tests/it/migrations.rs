//! The tenant migration runner.

use desk_db::migrate::{MigrateOptions, TenantMigrations};
use desk_tests::TestDb;
use std::time::Duration;

const NEXT: i64 = 29_991_231_000_000;

fn with_note_column() -> TenantMigrations {
    TenantMigrations::embedded().with_sql(
        NEXT,
        "add note",
        "alter table settings add column note text;
         create index settings_note_idx on settings (note);"
            .to_owned(),
    )
}

async fn has_note_column(db: &TestDb, tenant: &desk_db::Tenant) -> bool {
    let mut tx = db.platform.tenant_db().begin(tenant.scope()).await.unwrap();
    let n: i64 = sqlx::query_scalar(
        "select count(*) from information_schema.columns
         where table_schema = current_schema() and table_name = 'settings' and column_name = 'note'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    n == 1
}

#[tokio::test]
async fn a_fresh_tenant_is_current_and_a_rerun_is_a_no_op() {
    let db = TestDb::new().await;
    let a = db.tenant("alpha").await;
    let set = TenantMigrations::embedded();
    assert_eq!(a.schema_version, set.latest());

    let report = db
        .platform
        .migrate_tenants(&set, &MigrateOptions::default(), |_, _| {})
        .await
        .unwrap();
    assert_eq!((report.tenants, report.checked, report.applied), (1, 0, 0));

    let verify = MigrateOptions {
        verify_all: true,
        ..MigrateOptions::default()
    };
    let report = db
        .platform
        .migrate_tenants(&set, &verify, |_, _| {})
        .await
        .unwrap();
    assert_eq!((report.checked, report.applied), (1, 0));
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    db.finish().await;
}

#[tokio::test]
async fn tenants_behind_are_brought_forward_and_new_tenants_get_everything() {
    let db = TestDb::new().await;
    let a = db.tenant("alpha").await;
    let b = db.tenant("beta").await;
    assert!(!has_note_column(&db, &a).await);

    let set = with_note_column();
    let mut seen = Vec::new();
    let report = db
        .platform
        .migrate_tenants(&set, &MigrateOptions::default(), |done, total| {
            seen.push((done, total))
        })
        .await
        .unwrap();
    assert_eq!((report.migrated, report.applied), (2, 2));
    assert!(report.failures.is_empty());
    assert_eq!(seen.last(), Some(&(2, 2)), "progress reaches the end");
    assert!(has_note_column(&db, &a).await && has_note_column(&db, &b).await);

    // The same code path creates new tenants at the newest version.
    let c = db
        .platform
        .create_tenant(&TestDb::new_tenant("gamma"), &set)
        .await
        .unwrap();
    assert_eq!(c.schema_version, NEXT);
    assert!(has_note_column(&db, &c).await);

    let again = db
        .platform
        .migrate_tenants(&set, &MigrateOptions::default(), |_, _| {})
        .await
        .unwrap();
    assert_eq!((again.checked, again.applied), (0, 0));
    db.finish().await;
}

#[tokio::test]
async fn a_failing_tenant_is_reported_without_stopping_the_others() {
    let db = TestDb::new().await;
    let a = db.tenant("alpha").await;
    let b = db.tenant("beta").await;
    let c = db.tenant("gamma").await;
    // Make beta's schema conflict with the next migration.
    let mut tx = db.platform.tenant_db().begin(b.scope()).await.unwrap();
    sqlx::query("create index settings_note_idx on settings (key)")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    let set = with_note_column();
    let report = db
        .platform
        .migrate_tenants(&set, &MigrateOptions::default(), |_, _| {})
        .await
        .unwrap();
    assert_eq!(report.migrated, 2);
    assert_eq!(report.failures.len(), 1);
    assert_eq!(report.failures[0].slug, "beta");
    assert!(
        report.failures[0].error.contains("settings_note_idx"),
        "{}",
        report.failures[0].error
    );
    assert!(has_note_column(&db, &a).await && has_note_column(&db, &c).await);
    assert!(
        !has_note_column(&db, &b).await,
        "beta's transaction rolled back whole"
    );

    // Fix beta; the next run picks up exactly it.
    let mut tx = db.platform.tenant_db().begin(b.scope()).await.unwrap();
    sqlx::query("drop index settings_note_idx")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let report = db
        .platform
        .migrate_tenants(&set, &MigrateOptions::default(), |_, _| {})
        .await
        .unwrap();
    assert_eq!((report.checked, report.migrated), (1, 1));
    assert!(report.failures.is_empty());
    db.finish().await;
}

#[tokio::test]
async fn an_edited_migration_is_reported() {
    let db = TestDb::new().await;
    let a = db.tenant("alpha").await;
    let mut tx = db.platform.tenant_db().begin(a.scope()).await.unwrap();
    sqlx::query("update _desk_migrations set checksum = '\\x00'")
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let verify = MigrateOptions {
        verify_all: true,
        ..MigrateOptions::default()
    };
    let report = db
        .platform
        .migrate_tenants(&TenantMigrations::embedded(), &verify, |_, _| {})
        .await
        .unwrap();
    assert_eq!(report.failures.len(), 1);
    assert!(
        report.failures[0]
            .error
            .contains("changed after it was applied")
    );
    db.finish().await;
}

#[tokio::test]
async fn a_tenant_whose_locks_are_held_is_retried_not_stalled() {
    let db = TestDb::new().await;
    let a = db.tenant("alpha").await;
    let _b = db.tenant("beta").await;
    // A long reader holds alpha's settings table.
    let holder = db.second_pool(1).await;
    let mut lock = holder.tenant_db().begin(a.scope()).await.unwrap();
    sqlx::query("lock table settings in access share mode")
        .execute(&mut *lock)
        .await
        .unwrap();
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(600)).await;
        lock.rollback().await.unwrap();
    });
    let opts = MigrateOptions {
        lock_timeout: Duration::from_millis(200),
        lock_retries: 5,
        ..MigrateOptions::default()
    };
    let report = db
        .platform
        .migrate_tenants(&with_note_column(), &opts, |_, _| {})
        .await
        .unwrap();
    release.await.unwrap();
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.migrated, 2);
    assert!(has_note_column(&db, &a).await);
    holder.close().await;
    db.finish().await;
}
