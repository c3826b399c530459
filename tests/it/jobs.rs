//! Jobs are enqueued in the domain transaction and processed by the worker for their tenant.

use desk_authz::Authorizer;
use desk_core::{MobileNumber, TenantStatus};
use desk_db::migrate::TenantMigrations;
use desk_tenant_admin::{FirstAdmin, Onboarding};
use desk_tests::TestDb;
use std::time::Duration;

fn onboarding(slug: &str, mobile: &str) -> Onboarding {
    Onboarding {
        theme: desk_tenant_admin::DEFAULT_THEME.to_owned(),
        tenant: TestDb::new_tenant(slug),
        first_admin: Some(FirstAdmin {
            username: format!("admin-{slug}"),
            display_name: "مدیر".to_owned(),
            mobile: MobileNumber::parse(mobile).unwrap(),
        }),
    }
}

async fn queued(db: &TestDb) -> Vec<(String, serde_json::Value)> {
    sqlx::query_as::<_, (String, String)>(
        "select job_type, convert_from(job, 'UTF8') from apalis.jobs order by run_at",
    )
    .fetch_all(db.platform.pool_for_infrastructure())
    .await
    .unwrap()
    .into_iter()
    .map(|(t, j)| (t, serde_json::from_str(&j).unwrap()))
    .collect()
}

async fn welcomes(db: &TestDb, tenant: &desk_db::Tenant) -> Vec<(String, String)> {
    let mut tx = db.platform.tenant_db().begin(tenant.scope()).await.unwrap();
    let rows =
        sqlx::query_as("select recipient, body from notifications where kind = 'staff_welcome'")
            .fetch_all(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    rows
}

#[tokio::test]
async fn onboarding_enqueues_in_its_transaction_and_the_worker_delivers_per_tenant() {
    let db = TestDb::new().await;
    let authz = Authorizer::load(&db.platform).await.unwrap();
    let (a, admin_a) = desk_tenant_admin::onboard(
        &db.platform,
        &authz,
        &desk_tenant_admin::Actor::Cli,
        "test",
        &onboarding("alpha", "09120000001"),
    )
    .await
    .unwrap();
    let (b, _) = desk_tenant_admin::onboard(
        &db.platform,
        &authz,
        &desk_tenant_admin::Actor::Cli,
        "test",
        &onboarding("beta", "۰۹۱۲۰۰۰۰۰۰۲"),
    )
    .await
    .unwrap();
    assert_eq!(admin_a.unwrap().mobile.as_deref(), Some("+989120000001"));

    let jobs = queued(&db).await;
    assert_eq!(jobs.len(), 2);
    assert!(jobs.iter().all(|(t, _)| t == "welcome_staff"));
    assert_eq!(jobs[0].1["tenant_id"], a.id.to_string());

    // A suspended municipality gets no new work.
    db.platform
        .set_tenant_status(b.id, TenantStatus::Suspended)
        .await
        .unwrap();

    // Alpha has an SMS account at the fake provider: the welcome goes out through it.
    desk_tests::add_sms_account(&db.platform, &a, "ghasedak", "alpha-ghasedak").await;
    let (fake, outbox) = desk_jobs::fake_sms::spawn().await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let urls = desk_core::PublicUrls {
        scheme: "http".into(),
        port: Some(8080),
    };
    let key = desk_core::secret::MasterKey::from_hex(desk_tests::TEST_MASTER_KEY).unwrap();
    // Workers get their own pool, as `desk worker` has in its own process (each queue holds
    // a listening connection).
    let worker_db = db.second_pool(8).await;
    let worker = tokio::spawn(desk_jobs::run_workers(
        worker_db,
        urls,
        Some(key.clone()),
        desk_jobs::sms::Endpoints::all_at(&fake),
        desk_jobs::outbound::Outbound::default(),
        async {
            let _ = stop_rx.await;
        },
    ));
    let mut delivered = Vec::new();
    for _ in 0..100 {
        delivered = welcomes(&db, &a).await;
        if !delivered.is_empty() && !outbox.messages().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The SMS carries the opened link; the stored body keeps only the placeholder.
    let sent = outbox.messages();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(
        (sent[0].provider, sent[0].to.as_str()),
        ("ghasedak", "09120000001")
    );
    assert!(
        sent[0]
            .text
            .contains("http://alpha.test:8080/staff/welcome/"),
        "{}",
        sent[0].text
    );
    // The suspended municipality's job waits, parked, instead of failing.
    let parked = || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from platform.parked_jobs where tenant_id = $1",
        )
        .bind(b.id.0)
        .fetch_one(db.platform.pool_for_infrastructure())
        .await
        .unwrap()
    };
    for _ in 0..100 {
        if parked().await == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(parked().await, 1, "beta's welcome parked");
    stop_tx.send(()).unwrap();
    worker.await.unwrap().unwrap();

    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].0, "+989120000001");
    assert!(delivered[0].1.contains("admin-alpha") && delivered[0].1.contains(&a.name_fa));
    // The one-time link is never stored in clear: the body has a placeholder, and once the
    // SMS has gone the sealed link is forgotten too.
    assert!(delivered[0].1.contains("{link}") && !delivered[0].1.contains("/staff/sign-in/"));
    let mut tx = db.platform.tenant_db().begin(a.scope()).await.unwrap();
    let (status, secret): (String, Option<Vec<u8>>) = sqlx::query_as(
        "select status, secret_ciphertext from notifications where kind = 'staff_welcome'",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!((status.as_str(), secret), ("sent", None));
    assert!(!delivered[0].1.contains("beta"));
    assert!(
        welcomes(&db, &b).await.is_empty(),
        "suspended tenant's job did not run"
    );
    // Resuming beta puts its job back; a worker then does it.
    desk_tenant_admin::lifecycle::change_status(
        &db.platform,
        &authz,
        &desk_tenant_admin::Actor::Cli,
        &b.slug,
        desk_tenant_admin::Lifecycle::Resume,
        "test",
    )
    .await
    .unwrap();
    assert_eq!(parked().await, 0);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let worker = tokio::spawn(desk_jobs::run_workers(
        db.second_pool(8).await,
        desk_core::PublicUrls {
            scheme: "http".into(),
            port: Some(8080),
        },
        Some(key),
        desk_jobs::sms::Endpoints::all_at(&fake),
        desk_jobs::outbound::Outbound::default(),
        async {
            let _ = stop_rx.await;
        },
    ));
    for _ in 0..100 {
        if !welcomes(&db, &b).await.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_tx.send(()).unwrap();
    worker.await.unwrap().unwrap();
    assert_eq!(
        welcomes(&db, &b).await.len(),
        1,
        "beta's welcome ran once resumed"
    );
    db.finish().await;
}

#[tokio::test]
async fn a_rolled_back_onboarding_leaves_nothing_behind() {
    let db = TestDb::new().await;
    let (tenant, mut tx) = db
        .platform
        .begin_create_tenant(&TestDb::new_tenant("alpha"), &TenantMigrations::embedded())
        .await
        .unwrap();
    let member = desk_db::staff::insert_staff(&mut tx, "admin-alpha", "مدیر", None, true)
        .await
        .unwrap();
    desk_db::jobs::enqueue(
        &mut tx,
        &desk_core::jobs::WelcomeStaff {
            tenant_id: tenant.id,
            staff_id: member.id,
            round: 0,
        },
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();

    assert!(queued(&db).await.is_empty(), "no job");
    assert!(
        db.platform
            .tenant_by_slug(&tenant.slug)
            .await
            .unwrap()
            .is_none(),
        "no registry row"
    );
    let role = db.platform.install().tenant_role(tenant.scope().schema());
    let leftovers: (bool, bool) = sqlx::query_as(
        "select exists (select from pg_namespace where nspname = 't_alpha'),
                exists (select from pg_roles where rolname = $1)",
    )
    .bind(&role)
    .fetch_one(db.platform.pool_for_infrastructure())
    .await
    .unwrap();
    assert_eq!(leftovers, (false, false), "no schema, no role");
    // And the slug is free again.
    db.tenant("alpha").await;
    db.finish().await;
}

/// Finished jobs are deleted once old enough; jobs to run, being retried, or finished lately
/// stay.
#[tokio::test]
async fn old_finished_jobs_are_pruned_and_live_ones_kept() {
    let db = TestDb::new().await;
    let tenant = db.tenant("alpha").await;
    let mut tx = db.platform.tenant_db().begin(tenant.scope()).await.unwrap();
    for id in 1..=6 {
        desk_db::jobs::enqueue(
            &mut tx,
            &desk_core::jobs::SendSms {
                tenant_id: tenant.id,
                notification_id: id,
                attempt: 0,
            },
        )
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
    let infra = db.platform.pool_for_infrastructure();
    let set = |key: &'static str, status: &'static str, age: &'static str, attempts: i32| async move {
        sqlx::query(
            "update apalis.jobs set status = $2, done_at = now() - $3::interval,
                    attempts = $4, max_attempts = 3
              where job_type = 'send_sms' and idempotency_key like '%:' || $1",
        )
        .bind(key)
        .bind(status)
        .bind(age)
        .bind(attempts)
        .execute(infra)
        .await
        .unwrap();
    };
    set("1", "Done", "2 days", 1).await; // old: goes
    set("2", "Done", "1 hour", 1).await; // recent: stays
    set("3", "Failed", "40 days", 3).await; // given up long ago: goes
    set("4", "Failed", "40 days", 1).await; // still being retried: stays
    set("5", "Killed", "10 days", 3).await; // given up lately: stays
    // 6 is still to run.
    let pruned = db
        .platform
        .prune_finished_jobs(desk_jobs::KEEP_DONE_JOBS, desk_jobs::KEEP_FAILED_JOBS)
        .await
        .unwrap();
    assert_eq!(pruned, 2);
    let left: Vec<String> = sqlx::query_scalar(
        "select split_part(idempotency_key, ':', 2) from apalis.jobs where job_type = 'send_sms' order by 1",
    )
    .fetch_all(infra)
    .await
    .unwrap();
    assert_eq!(left, ["2", "4", "5", "6"]);
    db.finish().await;
}
