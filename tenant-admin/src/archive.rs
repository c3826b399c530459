//! Export of one municipality to a portable JSON archive, and import of such an archive as a
//! new municipality (new slug, new id, same data). Platform admins only: an archive holds the
//! municipality's personal data, which provincial operators never read.

use crate::lifecycle::{self, Actor};
use desk_authz::{Action, Authorizer, Domain, Resource};
use desk_core::secret::MasterKey;
use desk_core::{DomainError, FieldErrors, Hostname, TenantSlug, TenantStatus};
use desk_db::migrate::TenantMigrations;
use desk_db::{AuditEntry, NewTenant, PlatformDb, Tenant, export};
use serde_json::{Value, json};

/// The `format` field of every archive.
pub const FORMAT: &str = "miz-tenant-export";
const VERSION: u64 = 1;

async fn require_platform_admin(authz: &Authorizer, actor: &Actor) -> Result<(), DomainError> {
    if lifecycle::allowed(
        authz,
        actor,
        Domain::Platform,
        Resource::Tenant,
        Action::Manage,
    )
    .await?
    {
        Ok(())
    } else {
        Err(DomainError::Forbidden)
    }
}

fn bad_archive(msg: &str) -> DomainError {
    DomainError::Validation(FieldErrors::single("archive", "archive_invalid", msg))
}

/// The archive of municipality `slug`: registry facts, migration versions, every table, roles.
pub async fn export(
    db: &PlatformDb,
    authz: &Authorizer,
    actor: &Actor,
    slug: &TenantSlug,
    source: &str,
) -> Result<Value, DomainError> {
    require_platform_admin(authz, actor).await?;
    let tenant = db
        .tenant_by_slug(slug)
        .await?
        .ok_or(DomainError::NotFound)?;
    let mut tx = db.tenant_db().begin(tenant.scope()).await?;
    let tables = export::export_tables(&mut tx).await?;
    let migrations = export::ledger_versions(&mut tx).await?;
    tx.commit().await?;
    let domains: Vec<String> = db
        .tenant_domains(tenant.id)
        .await?
        .iter()
        .map(|h| h.to_string())
        .collect();
    let roles: Vec<Value> = authz
        .staff_roles(tenant.id)
        .await
        .into_iter()
        .map(|(id, role)| json!({ "staff_id": id, "role": format!("{role:?}") }))
        .collect();
    db.audit(AuditEntry {
        actor: &actor.label(),
        action: "tenant.export",
        tenant: Some(tenant.id),
        source,
        detail: json!({ "slug": slug.as_str() }),
    })
    .await?;
    Ok(json!({
        "format": FORMAT,
        "version": VERSION,
        "tenant": {
            "id": tenant.id,
            "slug": tenant.slug.as_str(),
            "name_fa": tenant.name_fa,
            "name_en": tenant.name_en,
            "province_id": tenant.province_id,
            "status": tenant.status.as_str(),
            "domains": domains,
        },
        "migrations": migrations,
        "staff_roles": roles,
        "tables": tables,
    }))
}

/// Secrets are sealed for their municipality: the copy re-seals SMS credentials and the
/// single sign-on client secret and members' authenticator secrets under its own id (so they keep working) and forgets
/// notification secrets (links to the source's host).
async fn reseal(
    tx: &mut desk_db::TenantTx,
    secrets: Option<&MasterKey>,
    source: &Value,
    new_id: desk_core::TenantId,
) -> Result<(), DomainError> {
    desk_db::settings::clear_notification_secrets(tx).await?;
    let accounts = desk_db::settings::list_sms_accounts(tx).await?;
    let provider = desk_db::sso::provider(tx).await?;
    let apps = desk_db::staff::sealed_totp_secrets(tx).await?;
    if accounts.is_empty() && provider.is_none() && apps.is_empty() {
        return Ok(());
    }
    let key = secrets.ok_or_else(|| {
        bad_archive("بایگانی رمزهای پیامک، ورود یکپارچه یا برنامه احراز هویت دارد؛ برای ورود آن کلید رمزنگاری سامانه لازم است.")
    })?;
    let old_id = source["id"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .map(desk_core::TenantId)
        .ok_or_else(|| bad_archive("شناسه شهرداری مبدأ در بایگانی نیست."))?;
    let reseal = |purpose: &str, sealed: &desk_core::secret::Sealed| {
        let plain = key
            .open(old_id, purpose, sealed)
            .map_err(|_| bad_archive("رمزهای بایگانی با کلید این سامانه باز نمی‌شود."))?;
        key.seal(new_id, purpose, &plain)
    };
    for account in accounts {
        let purpose = format!("sms_account:{}", account.id);
        let Some(sealed) = desk_db::settings::sealed_sms_credentials(tx, account.id).await? else {
            continue;
        };
        desk_db::settings::reseal_sms_credentials(tx, account.id, &reseal(&purpose, &sealed)?)
            .await?;
    }
    for (staff_id, sealed) in apps {
        let sealed = reseal(&format!("staff_totp:{staff_id}"), &sealed)?;
        desk_db::staff::reseal_totp(tx, staff_id, &sealed).await?;
    }
    if let Some(provider) = provider {
        let sealed = reseal(desk_db::sso::SECRET_PURPOSE, &provider.secret)?;
        desk_db::sso::reseal_secret(tx, &sealed).await?;
    }
    Ok(())
}

fn role_named(name: &str) -> Option<desk_authz::Role> {
    use desk_authz::Role;
    Some(match name {
        "TenantAdmin" => Role::TenantAdmin,
        "DepartmentHead" => Role::DepartmentHead,
        "DeskStaff" => Role::DeskStaff,
        "Auditor" => Role::Auditor,
        _ => return None,
    })
}

/// Creates municipality `slug` at `<slug>.<base_domain>` from an archive, in one transaction.
#[expect(
    clippy::too_many_arguments,
    reason = "one call site per surface; a struct would only rename the list"
)]
pub async fn import(
    db: &PlatformDb,
    authz: &Authorizer,
    secrets: Option<&MasterKey>,
    actor: &Actor,
    source: &str,
    archive: &Value,
    slug: TenantSlug,
    base_domain: &str,
) -> Result<Tenant, DomainError> {
    require_platform_admin(authz, actor).await?;
    if archive["format"] != FORMAT || archive["version"] != VERSION {
        return Err(bad_archive(
            "این پرونده، بایگانی شهرداری از این سامانه نیست.",
        ));
    }
    let set = TenantMigrations::embedded();
    let versions: Vec<i64> = serde_json::from_value(archive["migrations"].clone())
        .map_err(|_| bad_archive("فهرست مهاجرت‌های بایگانی خوانا نیست."))?;
    if versions != set.versions() {
        return Err(bad_archive(
            "بایگانی از نسخه دیگری از سامانه است؛ آن را پس از به‌روزرسانی دوباره بگیرید.",
        ));
    }
    let t = &archive["tenant"];
    let province_id = t["province_id"]
        .as_i64()
        .and_then(|p| i16::try_from(p).ok())
        .ok_or_else(|| bad_archive("استانِ بایگانی خوانا نیست."))?;
    let status: TenantStatus = t["status"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .map_err(DomainError::Validation)?;
    let tables = archive["tables"]
        .as_object()
        .ok_or_else(|| bad_archive("جدول‌های بایگانی خوانا نیست."))?;
    let host =
        Hostname::parse(&format!("{slug}.{base_domain}")).map_err(DomainError::Validation)?;
    let new = NewTenant {
        slug,
        name_fa: t["name_fa"].as_str().unwrap_or_default().to_owned(),
        name_en: t["name_en"].as_str().unwrap_or_default().to_owned(),
        province_id,
        domains: vec![host],
    };
    let (tenant, mut tx) = db.begin_create_tenant(&new, &set).await?;
    export::import_tables(&mut tx, tables).await?;
    reseal(&mut tx, secrets, t, tenant.id).await?;
    // Status, policies and the audit line commit with the data, or not at all.
    let mut rules = vec![Authorizer::placement_rule(tenant.id, tenant.province_id)];
    for r in archive["staff_roles"].as_array().into_iter().flatten() {
        if let (Some(id), Some(role)) = (
            r["staff_id"].as_i64(),
            r["role"].as_str().and_then(role_named),
        ) {
            rules.push(Authorizer::staff_role_rule(tenant.id, id, role));
        }
    }
    let audit = AuditEntry {
        actor: &actor.label(),
        action: "tenant.import",
        tenant: Some(tenant.id),
        source,
        detail: json!({ "slug": tenant.slug.as_str(), "from": t["slug"] }),
    };
    tx.write_platform_records(&rules, &audit).await?;
    if status != TenantStatus::Active {
        tx.set_own_status(status).await?;
    }
    tx.commit().await?;
    authz.reload().await;
    Ok(db.tenant_by_id(tenant.id).await?.unwrap_or(tenant))
}
