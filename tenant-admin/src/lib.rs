//! Provisioning and lifecycle of municipalities, and the platform portal.
//!
//! Owns [`onboard`] (one transaction: registry row, role, schema, migrations, first admin and
//! their welcome job), and the routes of the platform host. Must not depend on the web, GraphQL
//! or jobs crates.

pub mod api;
pub mod archive;
pub mod auth;
pub mod dashboard;
pub mod lifecycle;
pub mod portal;

pub use lifecycle::{Actor, Lifecycle};
pub use portal::{PlatformPortal, platform_router};

use desk_authz::{Authorizer, Role};
use desk_core::jobs::WelcomeStaff;
use desk_core::{DomainError, MobileNumber};
use desk_db::migrate::TenantMigrations;
use desk_db::staff::{self, Staff};
use desk_db::{AuditEntry, NewTenant, PlatformDb, Tenant, jobs};

/// The first administrator of a new municipality.
#[derive(Debug, Clone)]
pub struct FirstAdmin {
    /// Sign-in name.
    pub username: String,
    /// Name shown in the portal.
    pub display_name: String,
    /// Mobile number (receives the one-time sign-in code).
    pub mobile: MobileNumber,
}

/// Everything the onboarding form asks for.
#[derive(Debug, Clone)]
pub struct Onboarding {
    /// Registry entry: slug, names, province, domains.
    pub tenant: NewTenant,
    /// First municipality admin, if known at onboarding.
    pub first_admin: Option<FirstAdmin>,
    /// Starting theme, one of [`THEMES`].
    pub theme: String,
}

/// The themes a municipality can start from: (name, Persian label).
pub const THEMES: &[(&str, &str)] = &[("base", "پایه (سبز میز خدمت)")];
/// The theme used when none is chosen.
pub const DEFAULT_THEME: &str = "base";

/// Creates a municipality in one transaction: registry, role, schema, migrations, the first
/// admin and the job that welcomes them. Then records the municipality's province and the
/// admin's role in the policies, and audits who did it.
#[tracing::instrument(skip_all, fields(tenant.slug = %req.tenant.slug))]
pub async fn onboard(
    db: &PlatformDb,
    authz: &Authorizer,
    actor: &Actor,
    source: &str,
    req: &Onboarding,
) -> Result<(Tenant, Option<Staff>), DomainError> {
    let province = desk_authz::Domain::Province(req.tenant.province_id);
    if !lifecycle::allowed(
        authz,
        actor,
        province,
        desk_authz::Resource::Tenant,
        desk_authz::Action::Manage,
    )
    .await?
    {
        return Err(DomainError::Forbidden);
    }
    if !THEMES.iter().any(|(name, _)| *name == req.theme) {
        return Err(desk_core::FieldErrors::single(
            "theme",
            "theme_unknown",
            "پوسته انتخاب‌شده وجود ندارد.",
        )
        .into());
    }
    let (tenant, mut tx) = db
        .begin_create_tenant(&req.tenant, &TenantMigrations::embedded())
        .await?;
    desk_db::catalog::seed_published(&mut tx, desk_core::template::national_template()?).await?;
    desk_db::settings::put_setting(
        &mut tx,
        "theme",
        &serde_json::json!({ "name": req.theme, "brand": "#0a6e5c" }),
    )
    .await?;
    let admin = match &req.first_admin {
        Some(a) => {
            let member = staff::insert_staff(
                &mut tx,
                &a.username,
                &a.display_name,
                Some(a.mobile.as_str()),
                true,
            )
            .await?;
            jobs::enqueue(&mut tx, &WelcomeStaff::new(tenant.id, member.id)).await?;
            Some(member)
        }
        None => None,
    };
    // Policies and the audit line commit with the municipality, or not at all.
    let mut rules = vec![Authorizer::placement_rule(tenant.id, tenant.province_id)];
    if let Some(member) = &admin {
        rules.push(Authorizer::staff_role_rule(
            tenant.id,
            member.id,
            Role::TenantAdmin,
        ));
    }
    let audit = AuditEntry {
        actor: &actor.label(),
        action: "tenant.create",
        tenant: Some(tenant.id),
        source,
        detail: serde_json::json!({ "slug": tenant.slug.as_str() }),
    };
    tx.write_platform_records(&rules, &audit).await?;
    tx.commit().await?;
    authz.reload().await;
    Ok((tenant, admin))
}
