//! Provisioning and lifecycle of municipalities, and the platform portal.
//!
//! Owns [`onboard`] (one transaction: registry row, role, schema, migrations, first admin and
//! their welcome job), and the routes of the platform host. Must not depend on the web, GraphQL
//! or jobs crates.

pub mod lifecycle;

pub use lifecycle::{Actor, Lifecycle};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use desk_authz::{Authorizer, Role, Subject};
use desk_core::jobs::WelcomeStaff;
use desk_core::{DomainError, MobileNumber, TenantStatus};
use desk_db::migrate::TenantMigrations;
use desk_db::staff::{self, Staff};
use desk_db::tenants::TenantFilter;
use desk_db::{AuditEntry, NewTenant, PlatformDb, Tenant, jobs};
use serde::Serialize;

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
}

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
    let (tenant, mut tx) = db
        .begin_create_tenant(&req.tenant, &TenantMigrations::embedded())
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
            jobs::enqueue(
                &mut tx,
                &WelcomeStaff {
                    tenant_id: tenant.id,
                    staff_id: member.id,
                },
            )
            .await?;
            Some(member)
        }
        None => None,
    };
    tx.commit().await?;
    authz.place_tenant(tenant.id, tenant.province_id).await?;
    if let Some(member) = &admin {
        authz
            .assign(
                &Subject::Staff {
                    tenant: tenant.id,
                    id: member.id,
                },
                Role::TenantAdmin,
                Some(tenant.id),
            )
            .await?;
    }
    db.audit(AuditEntry {
        actor: &actor.label(),
        action: "tenant.create",
        tenant: Some(tenant.id),
        source,
        detail: serde_json::json!({ "slug": tenant.slug.as_str() }),
    })
    .await?;
    Ok((tenant, admin))
}

/// State of the platform portal.
#[derive(Debug, Clone)]
pub struct PlatformPortal {
    /// Registry.
    pub db: PlatformDb,
}

/// Routes of the platform host (`admin.<base-domain>`).
pub fn platform_router(portal: PlatformPortal) -> Router {
    Router::new()
        .route("/", get(list_municipalities))
        .with_state(portal)
}

#[derive(Serialize)]
struct Row<'a> {
    slug: &'a str,
    name: &'a str,
    province: &'a str,
    status: &'a str,
}

fn status_fa(s: TenantStatus) -> &'static str {
    match s {
        TenantStatus::Active => "فعال",
        TenantStatus::Suspended => "معلق",
        TenantStatus::Archived => "بایگانی",
    }
}

async fn list_municipalities(State(portal): State<PlatformPortal>) -> Response {
    let tenants = match portal.db.list_tenants(&TenantFilter::default()).await {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "listing municipalities failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, Html("خطایی رخ داد.")).into_response();
        }
    };
    let rows: Vec<Row<'_>> = tenants
        .iter()
        .filter(|t| t.status != TenantStatus::Archived)
        .map(|t| Row {
            slug: t.slug.as_str(),
            name: &t.name_fa,
            province: &t.province_name_fa,
            status: status_fa(t.status),
        })
        .collect();
    let mut env = minijinja::Environment::new();
    let rendered = env
        .add_template(
            "platform_home.html.j2",
            include_str!("../templates/platform_home.html.j2"),
        )
        .and_then(|()| env.get_template("platform_home.html.j2"))
        .and_then(|t| t.render(minijinja::context! { tenants => minijinja::value::Serde(&rows) }));
    match rendered {
        Ok(html) => Html(html).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "rendering the platform portal failed");
            (StatusCode::INTERNAL_SERVER_ERROR, Html("خطایی رخ داد.")).into_response()
        }
    }
}
