//! Authorization of Miz: the casbin model (RBAC with domains, domain = municipality, plus the
//! municipality → province relation), the default policies, and the [`Authorizer`] that
//! handlers ask with typed [`Resource`]/[`Action`] values.
//!
//! Policies live in `platform.casbin_rule`, read and written through `desk-db` by our own small
//! adapter (the published sqlx-adapter needs sqlx 0.8). Citizens are authorized by ownership of
//! their requests, not here.

mod adapter;

use casbin::{CoreApi, DefaultModel, Enforcer, MgmtApi, RbacApi};
use desk_core::{DomainError, TenantId};
use desk_db::PlatformDb;
use desk_db::policy::PolicyRule;
use std::sync::Arc;
use tokio::sync::RwLock;

const MODEL: &str = include_str!("model.conf");

/// Things that can be acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// A municipality as a whole (its registry entry and lifecycle).
    Tenant,
    /// The service catalog of a municipality.
    Catalog,
    /// Citizens' requests of any unit (personal data).
    Request,
    /// Citizens' requests within the member's reach: their unit's, the intake not yet given to
    /// a unit, and those assigned to them.
    UnitRequest,
    /// The municipality's staff team (members, roles, units, invitations).
    Staff,
    /// The municipality's activity log.
    Activity,
    /// Municipality settings (theme, SMS provider).
    Settings,
    /// Aggregated reports without personal data.
    Report,
}

impl Resource {
    fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Catalog => "catalog",
            Self::Request => "request",
            Self::UnitRequest => "unit_request",
            Self::Staff => "staff",
            Self::Activity => "activity",
            Self::Settings => "settings",
            Self::Report => "report",
        }
    }
}

/// What can be done to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// See it.
    Read,
    /// Change it.
    Update,
    /// Create, suspend, resume, archive (lifecycle); on requests: assign to others.
    Manage,
}

impl Action {
    fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Update => "update",
            Self::Manage => "manage",
        }
    }
}

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// A platform user (platform admin or provincial operator), by `platform.users.id`.
    PlatformUser(i64),
    /// A staff member of one municipality, by its `staff.id` there.
    Staff {
        /// The staff member's municipality.
        tenant: TenantId,
        /// Row id in the tenant's `staff` table.
        id: i64,
    },
}

impl Subject {
    fn key(&self) -> String {
        match self {
            Self::PlatformUser(id) => format!("user:{id}"),
            Self::Staff { tenant, id } => format!("staff:{tenant}:{id}"),
        }
    }
}

/// Where the action happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Domain {
    /// Inside one municipality.
    Tenant(TenantId),
    /// A province as a whole (creating municipalities there).
    Province(i16),
    /// Platform-wide (provinces, operators, the national template).
    Platform,
}

impl Domain {
    fn key(self) -> String {
        match self {
            Self::Tenant(id) => format!("tenant:{id}"),
            Self::Province(id) => format!("province:{id}"),
            Self::Platform => "*".to_owned(),
        }
    }
}

/// Roles a subject can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Everything on the platform, no personal data of citizens.
    PlatformAdmin,
    /// Municipalities of one province (by province id), no personal data of citizens.
    ProvinceOperator(i16),
    /// Administers one municipality.
    TenantAdmin,
    /// Heads a department of one municipality.
    DepartmentHead,
    /// Works the desk of one municipality.
    DeskStaff,
    /// Reads one municipality's requests and reports.
    Auditor,
}

impl Role {
    /// The roles a municipality's members can hold, with their Persian names.
    pub const TENANT_ROLES: [(Role, &'static str); 4] = [
        (Role::TenantAdmin, "مدیر میز خدمت"),
        (Role::DepartmentHead, "رئیس واحد"),
        (Role::DeskStaff, "کارشناس میز خدمت"),
        (Role::Auditor, "بازرس"),
    ];

    /// A tenant role from its key (`tenant_admin`, `department_head`, `desk_staff`, `auditor`).
    pub fn tenant_role(key: &str) -> Option<Self> {
        Self::from_key(key).filter(|r| Self::TENANT_ROLES.iter().any(|(x, _)| x == r))
    }

    /// The Persian name of a tenant role.
    pub fn label_fa(self) -> &'static str {
        Self::TENANT_ROLES
            .iter()
            .find(|(r, _)| *r == self)
            .map_or("", |(_, l)| l)
    }

    fn from_key(key: &str) -> Option<Self> {
        Some(match key {
            "platform_admin" => Self::PlatformAdmin,
            "tenant_admin" => Self::TenantAdmin,
            "department_head" => Self::DepartmentHead,
            "desk_staff" => Self::DeskStaff,
            "auditor" => Self::Auditor,
            other => {
                Self::ProvinceOperator(other.strip_prefix("province_operator:")?.parse().ok()?)
            }
        })
    }

    /// The stored key of the role (`tenant_admin`, `province_operator:10`, ...).
    pub fn key(self) -> String {
        match self {
            Self::PlatformAdmin => "platform_admin".to_owned(),
            Self::ProvinceOperator(p) => format!("province_operator:{p}"),
            Self::TenantAdmin => "tenant_admin".to_owned(),
            Self::DepartmentHead => "department_head".to_owned(),
            Self::DeskStaff => "desk_staff".to_owned(),
            Self::Auditor => "auditor".to_owned(),
        }
    }
}

/// The default permissions of the tenant-scoped roles (domain `*` = wherever the role is held).
const TENANT_ROLE_POLICIES: &[(&str, &str, &str)] = &[
    ("tenant_admin", "catalog", "read"),
    ("tenant_admin", "catalog", "update"),
    ("tenant_admin", "settings", "read"),
    ("tenant_admin", "settings", "update"),
    ("tenant_admin", "request", "read"),
    ("tenant_admin", "request", "update"),
    ("tenant_admin", "request", "manage"),
    ("tenant_admin", "report", "read"),
    ("tenant_admin", "tenant", "read"),
    ("tenant_admin", "staff", "read"),
    ("tenant_admin", "staff", "manage"),
    ("tenant_admin", "activity", "read"),
    ("department_head", "catalog", "read"),
    ("department_head", "unit_request", "read"),
    ("department_head", "unit_request", "update"),
    ("department_head", "unit_request", "manage"),
    ("department_head", "report", "read"),
    ("desk_staff", "catalog", "read"),
    ("desk_staff", "unit_request", "read"),
    ("desk_staff", "unit_request", "update"),
    ("auditor", "catalog", "read"),
    ("auditor", "request", "read"),
    ("auditor", "report", "read"),
    ("auditor", "activity", "read"),
    ("platform_admin", "tenant", "read"),
    ("platform_admin", "tenant", "manage"),
    ("platform_admin", "report", "read"),
];

/// Default permissions of earlier releases that no longer hold: department heads and desk staff
/// reached every unit's requests. Removed at start so the stored policies match the code.
const RETIRED_POLICIES: &[(&str, &str, &str)] = &[
    ("department_head", "request", "read"),
    ("department_head", "request", "update"),
    ("desk_staff", "request", "read"),
    ("desk_staff", "request", "update"),
];

/// Operators manage the municipalities of their province and read their aggregated reports;
/// nothing grants them requests (citizens' personal data).
const OPERATOR_POLICIES: &[(&str, &str)] =
    &[("tenant", "read"), ("tenant", "manage"), ("report", "read")];

fn authz_error(e: casbin::Error) -> DomainError {
    DomainError::Internal(anyhow::anyhow!("authorization: {e}"))
}

/// Answers "may this subject do this here?" from the stored policies. Cheap to clone.
#[derive(Clone)]
pub struct Authorizer {
    enforcer: Arc<RwLock<Enforcer>>,
}

impl std::fmt::Debug for Authorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authorizer").finish_non_exhaustive()
    }
}

impl Authorizer {
    /// Loads the model and every stored policy.
    pub async fn load(db: &PlatformDb) -> Result<Self, DomainError> {
        let model = DefaultModel::from_str(MODEL).await.map_err(authz_error)?;
        let adapter = adapter::PlatformAdapter::new(db.clone());
        let enforcer = Enforcer::new(model, adapter).await.map_err(authz_error)?;
        Ok(Self {
            enforcer: Arc::new(RwLock::new(enforcer)),
        })
    }

    /// Reloads the policies whenever any instance changes them (LISTEN/NOTIFY on
    /// `desk_policy_changed`, raised by a trigger on `platform.casbin_rule`). Bursts of changes
    /// (a bulk onboarding) cause one reload. Runs until the process ends.
    pub async fn watch(&self, db: &PlatformDb) -> Result<tokio::task::JoinHandle<()>, DomainError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(db.pool_for_infrastructure())
            .await
            .map_err(|e| DomainError::Internal(e.into()))?;
        listener
            .listen("desk_policy_changed")
            .await
            .map_err(|e| DomainError::Internal(e.into()))?;
        let me = self.clone();
        // Changes made between `load` and `listen` would otherwise be missed.
        me.reload().await;
        Ok(tokio::spawn(async move {
            loop {
                // `try_recv` returns `None` when the connection dropped: notifications sent
                // meanwhile are lost, so reload from the table to be sure.
                match listener.try_recv().await {
                    Ok(Some(_)) => {
                        // Let a burst settle, then reload once.
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        while listener.next_buffered().is_some() {}
                        me.reload().await;
                    }
                    Ok(None) => me.reload().await,
                    Err(sqlx::Error::PoolClosed) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "policy listener failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        }))
    }

    /// Reloads every policy from the table (after policies were written outside this
    /// authorizer, e.g. in an onboarding transaction).
    pub async fn reload(&self) {
        if let Err(e) = self.enforcer.write().await.load_policy().await {
            tracing::error!(error = %e, "reloading policies failed");
        }
    }

    /// Whether `subject` may do `action` on `resource` in `domain`.
    pub async fn allowed(
        &self,
        subject: &Subject,
        domain: Domain,
        resource: Resource,
        action: Action,
    ) -> Result<bool, DomainError> {
        let enforcer = self.enforcer.read().await;
        enforcer
            .enforce((
                subject.key(),
                domain.key(),
                resource.as_str(),
                action.as_str(),
            ))
            .map_err(authz_error)
    }

    /// Whether the tenant role `role` (its stored key, e.g. `tenant_admin`) may take `action` on
    /// `resource` in `domain`: how an API key that acts as a role is checked (the role is the
    /// subject; casbin's role manager links a role to itself).
    pub async fn role_allowed(
        &self,
        role: &str,
        domain: Domain,
        resource: Resource,
        action: Action,
    ) -> Result<bool, DomainError> {
        if role.is_empty() || role.contains(':') {
            return Ok(false);
        }
        let enforcer = self.enforcer.read().await;
        enforcer
            .enforce((role, domain.key(), resource.as_str(), action.as_str()))
            .map_err(authz_error)
    }

    /// Like [`Authorizer::allowed`], but `Forbidden` when not allowed.
    pub async fn require(
        &self,
        subject: &Subject,
        domain: Domain,
        resource: Resource,
        action: Action,
    ) -> Result<(), DomainError> {
        if self.allowed(subject, domain, resource, action).await? {
            Ok(())
        } else {
            Err(DomainError::Forbidden)
        }
    }

    /// Writes the default role permissions and the per-province operator roles (idempotent).
    pub async fn ensure_default_policies(&self, province_ids: &[i16]) -> Result<(), DomainError> {
        let mut rules: Vec<Vec<String>> = TENANT_ROLE_POLICIES
            .iter()
            .map(|(role, obj, act)| vec![(*role).into(), "*".into(), (*obj).into(), (*act).into()])
            .collect();
        for p in province_ids {
            for (obj, act) in OPERATOR_POLICIES {
                rules.push(vec![
                    Role::ProvinceOperator(*p).key(),
                    format!("province:{p}"),
                    (*obj).into(),
                    (*act).into(),
                ]);
            }
        }
        let mut enforcer = self.enforcer.write().await;
        let retired: Vec<Vec<String>> = RETIRED_POLICIES
            .iter()
            .map(|(role, obj, act)| vec![(*role).into(), "*".into(), (*obj).into(), (*act).into()])
            .filter(|r| enforcer.has_policy(r.clone()))
            .collect();
        if !retired.is_empty() {
            enforcer
                .remove_policies(retired)
                .await
                .map_err(authz_error)?;
        }
        let missing: Vec<Vec<String>> = rules
            .into_iter()
            .filter(|r| !enforcer.has_policy(r.clone()))
            .collect();
        if !missing.is_empty() {
            enforcer.add_policies(missing).await.map_err(authz_error)?;
        }
        Ok(())
    }

    /// The stored rule that places a municipality in a province (for writing it inside a
    /// transaction; see [`Authorizer::place_tenant`]).
    pub fn placement_rule(tenant: TenantId, province_id: i16) -> PolicyRule {
        PolicyRule {
            ptype: "g2".to_owned(),
            values: vec![
                Domain::Tenant(tenant).key(),
                format!("province:{province_id}"),
            ],
        }
    }

    /// The stored rule that gives a staff member a role in their municipality.
    pub fn staff_role_rule(tenant: TenantId, staff_id: i64, role: Role) -> PolicyRule {
        PolicyRule {
            ptype: "g".to_owned(),
            values: vec![
                Subject::Staff {
                    tenant,
                    id: staff_id,
                }
                .key(),
                role.key(),
                Domain::Tenant(tenant).key(),
            ],
        }
    }

    /// Grants `role` to `subject`. Tenant roles need a municipality; platform roles are global.
    pub async fn assign(
        &self,
        subject: &Subject,
        role: Role,
        tenant: Option<TenantId>,
    ) -> Result<(), DomainError> {
        let domain = match (role, tenant) {
            (Role::PlatformAdmin | Role::ProvinceOperator(_), None) => Domain::Platform,
            (Role::PlatformAdmin | Role::ProvinceOperator(_), Some(_)) | (_, None) => {
                return Err(DomainError::Internal(anyhow::anyhow!(
                    "role {role:?} assigned in the wrong kind of domain"
                )));
            }
            (_, Some(t)) => Domain::Tenant(t),
        };
        let mut enforcer = self.enforcer.write().await;
        enforcer
            .add_role_for_user(&subject.key(), &role.key(), Some(&domain.key()))
            .await
            .map_err(authz_error)?;
        Ok(())
    }

    /// The roles staff members hold in `tenant`, as (staff id, role).
    pub async fn staff_roles(&self, tenant: TenantId) -> Vec<(i64, Role)> {
        let domain = Domain::Tenant(tenant).key();
        let prefix = format!("staff:{tenant}:");
        let enforcer = self.enforcer.read().await;
        enforcer
            .get_filtered_grouping_policy(2, vec![domain])
            .into_iter()
            .filter_map(|rule| {
                let id = rule.first()?.strip_prefix(&prefix)?.parse().ok()?;
                Some((id, Role::from_key(rule.get(1)?)?))
            })
            .collect()
    }

    /// The role keys a staff member holds in their municipality (what workflows name).
    pub async fn staff_role_keys(&self, tenant: TenantId, staff_id: i64) -> Vec<String> {
        self.staff_roles(tenant)
            .await
            .into_iter()
            .filter(|(id, _)| *id == staff_id)
            .map(|(_, role)| role.key())
            .collect()
    }

    /// Records that a municipality belongs to a province (what operators' policies follow).
    pub async fn place_tenant(
        &self,
        tenant: TenantId,
        province_id: i16,
    ) -> Result<(), DomainError> {
        let rule = vec![
            Domain::Tenant(tenant).key(),
            format!("province:{province_id}"),
        ];
        let mut enforcer = self.enforcer.write().await;
        if !enforcer.has_grouping_named_policy("g2", rule.clone()) {
            enforcer
                .add_named_grouping_policy("g2", rule)
                .await
                .map_err(authz_error)?;
        }
        Ok(())
    }
}
