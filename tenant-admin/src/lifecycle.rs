//! Looking after municipalities: who may see and change which, and the status lifecycle.
//! Every check goes through the casbin policies (tenant → province), never ad-hoc code.

use desk_authz::{Action, Authorizer, Domain, Resource, Subject};
use desk_core::{DomainError, Hostname, TenantSlug, TenantStatus};
use desk_db::tenants::TenantFilter;
use desk_db::{AuditEntry, PlatformDb, Tenant};

/// Who acts on the platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// The `desk` command line, run by whoever holds the database credentials.
    Cli,
    /// A signed-in platform user (admin or provincial operator).
    User {
        /// `platform.users.id`.
        id: i64,
        /// For the audit log.
        username: String,
    },
}

impl Actor {
    /// How the audit log names this actor.
    pub fn label(&self) -> String {
        match self {
            Self::Cli => "cli".to_owned(),
            Self::User { id, username } => format!("user:{id}:{username}"),
        }
    }

    fn subject(&self) -> Option<Subject> {
        match self {
            Self::Cli => None,
            Self::User { id, .. } => Some(Subject::PlatformUser(*id)),
        }
    }
}

/// What can happen to a municipality's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// Active → suspended: the portal shows a notice, the API and new jobs refuse.
    Suspend,
    /// Suspended → active.
    Resume,
    /// Active or suspended → archived: hidden, data kept.
    Archive,
    /// Archived → active.
    Restore,
}

impl Lifecycle {
    fn apply(self, from: TenantStatus) -> Option<TenantStatus> {
        use TenantStatus::{Active, Archived, Suspended};
        match (self, from) {
            (Self::Suspend, Active) => Some(Suspended),
            (Self::Resume, Suspended) | (Self::Restore, Archived) => Some(Active),
            (Self::Archive, Active | Suspended) => Some(Archived),
            _ => None,
        }
    }

    /// The audit action name.
    pub fn action(self) -> &'static str {
        match self {
            Self::Suspend => "tenant.suspend",
            Self::Resume => "tenant.resume",
            Self::Archive => "tenant.archive",
            Self::Restore => "tenant.restore",
        }
    }
}

/// Checks `action` on `resource` in `domain` for `actor`.
pub async fn allowed(
    authz: &Authorizer,
    actor: &Actor,
    domain: Domain,
    resource: Resource,
    action: Action,
) -> Result<bool, DomainError> {
    match actor.subject() {
        None => Ok(true),
        Some(s) => authz.allowed(&s, domain, resource, action).await,
    }
}

/// The municipality `slug` if `actor` may see it; `NotFound` otherwise (existence is not
/// revealed to operators of other provinces).
pub async fn find(
    db: &PlatformDb,
    authz: &Authorizer,
    actor: &Actor,
    slug: &TenantSlug,
) -> Result<Tenant, DomainError> {
    let tenant = db
        .tenant_by_slug(slug)
        .await?
        .ok_or(DomainError::NotFound)?;
    if allowed(
        authz,
        actor,
        Domain::Tenant(tenant.id),
        Resource::Tenant,
        Action::Read,
    )
    .await?
    {
        Ok(tenant)
    } else {
        Err(DomainError::NotFound)
    }
}

/// Municipalities `actor` may see, filtered; `search` matches slug and names.
pub async fn list(
    db: &PlatformDb,
    authz: &Authorizer,
    actor: &Actor,
    filter: &TenantFilter,
    search: Option<&str>,
) -> Result<Vec<Tenant>, DomainError> {
    let needle = search
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_lowercase);
    let mut visible = Vec::new();
    for t in db.list_tenants(filter).await? {
        let matches = needle.as_deref().is_none_or(|n| {
            t.slug.as_str().contains(n)
                || t.name_fa.contains(n)
                || t.name_en.to_lowercase().contains(n)
        });
        if matches
            && allowed(
                authz,
                actor,
                Domain::Tenant(t.id),
                Resource::Tenant,
                Action::Read,
            )
            .await?
        {
            visible.push(t);
        }
    }
    Ok(visible)
}

async fn find_manageable(
    db: &PlatformDb,
    authz: &Authorizer,
    actor: &Actor,
    slug: &TenantSlug,
) -> Result<Tenant, DomainError> {
    let tenant = find(db, authz, actor, slug).await?;
    if !allowed(
        authz,
        actor,
        Domain::Tenant(tenant.id),
        Resource::Tenant,
        Action::Manage,
    )
    .await?
    {
        return Err(DomainError::Forbidden);
    }
    Ok(tenant)
}

/// Moves a municipality through its lifecycle and audits it.
pub async fn change_status(
    db: &PlatformDb,
    authz: &Authorizer,
    actor: &Actor,
    slug: &TenantSlug,
    change: Lifecycle,
    source: &str,
) -> Result<Tenant, DomainError> {
    let mut tenant = find_manageable(db, authz, actor, slug).await?;
    let to = change.apply(tenant.status).ok_or_else(|| {
        DomainError::Conflict(format!(
            "cannot {:?} a municipality that is {}",
            change,
            tenant.status.as_str()
        ))
    })?;
    db.transition_tenant_status(tenant.id, tenant.status, to)
        .await?;
    if to == TenantStatus::Active {
        // The work that waited while it was suspended or archived goes back on the queues.
        let resumed = db.unpark_jobs(tenant.id).await?;
        tracing::info!(tenant.id = %tenant.id, resumed, "parked jobs resumed");
    }
    db.audit(AuditEntry {
        actor: &actor.label(),
        action: change.action(),
        tenant: Some(tenant.id),
        source,
        detail: serde_json::json!({ "slug": tenant.slug.as_str(), "from": tenant.status.as_str(), "to": to.as_str() }),
    })
    .await?;
    tenant.status = to;
    Ok(tenant)
}

/// A custom domain must lie outside the deployment's own domain: names under it belong to other
/// municipalities' slugs (onboarded or not) and to the platform.
pub fn check_custom_domain(host: &Hostname, base_domain: &str) -> Result<(), DomainError> {
    let h = host.as_str();
    let base = base_domain.trim_end_matches('.').to_ascii_lowercase();
    if h == base || h.ends_with(&format!(".{base}")) {
        return Err(DomainError::Validation(desk_core::FieldErrors::single(
            "domains",
            "domain_reserved",
            "دامنه اختصاصی نباید زیرمجموعه دامنه سامانه باشد.",
        )));
    }
    Ok(())
}

/// A change to a municipality's custom domains.
#[derive(Debug, Clone, Copy)]
pub enum DomainChange<'a> {
    /// Serve the municipality on this host too.
    Add(&'a Hostname),
    /// Stop serving it on this host (never the default one).
    Remove(&'a Hostname),
}

/// Adds or removes a custom domain, and audits it.
pub async fn change_domain(
    db: &PlatformDb,
    authz: &Authorizer,
    actor: &Actor,
    slug: &TenantSlug,
    change: DomainChange<'_>,
    base_domain: &str,
    source: &str,
) -> Result<(), DomainError> {
    let (host, add) = match change {
        DomainChange::Add(h) => (h, true),
        DomainChange::Remove(h) => (h, false),
    };
    let tenant = find_manageable(db, authz, actor, slug).await?;
    if add {
        check_custom_domain(host, base_domain)?;
        db.add_tenant_domain(tenant.id, host).await?;
    } else {
        db.remove_tenant_domain(tenant.id, host).await?;
    }
    db.audit(AuditEntry {
        actor: &actor.label(),
        action: if add {
            "tenant.domain.add"
        } else {
            "tenant.domain.remove"
        },
        tenant: Some(tenant.id),
        source,
        detail: serde_json::json!({ "slug": tenant.slug.as_str(), "host": host.as_str() }),
    })
    .await
}
