//! Tenant-scoped transactions: the only door to a tenant's data.

use desk_core::{DomainError, SchemaName, TenantId};
use sqlx::{AssertSqlSafe, PgConnection, PgPool, Postgres, Transaction};
use std::ops::{Deref, DerefMut};

/// What a transaction needs to scope itself to one tenant. Built only from a registry row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantScope {
    pub(crate) id: TenantId,
    pub(crate) schema: SchemaName,
    pub(crate) role: String,
}

impl TenantScope {
    /// The tenant this scope belongs to.
    pub fn tenant_id(&self) -> TenantId {
        self.id
    }

    /// The tenant's schema.
    pub fn schema(&self) -> &SchemaName {
        &self.schema
    }

    /// `BEGIN` plus the scoping, sent as one simple query (one round trip).
    ///
    /// `set local` dies at commit or rollback, so a pooled connection never carries a tenant to
    /// its next borrower, and PgBouncer in transaction mode stays safe. The schema and role are
    /// validated identifiers (`[a-z0-9_]`), so splicing them is safe; `public` is on the path
    /// only for extension types (apalis casts to `hstore[]` unqualified).
    pub(crate) fn begin_sql(&self) -> String {
        format!(
            "begin; set local search_path to {schema}, public; set local role {role}",
            schema = self.schema.as_str(),
            role = self.role
        )
    }

    /// Re-enters the scope inside a transaction that is already open (after provisioning).
    pub(crate) fn enter_sql(&self) -> String {
        format!(
            "set local search_path to {schema}, public; set local role {role}",
            schema = self.schema.as_str(),
            role = self.role
        )
    }
}

/// Whether `role` has the shape of a tenant role (`desk_<install>_t_<slug>`), so it is safe to
/// splice into `set local role`. The registry has the same check as a constraint.
pub(crate) fn valid_role_name(role: &str) -> bool {
    role.len() <= 63
        && role.starts_with("desk_")
        && role.contains("_t_")
        && role
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// Opens tenant-scoped transactions. Cheap to clone.
#[derive(Debug, Clone)]
pub struct TenantDb {
    pub(crate) pool: PgPool,
}

impl TenantDb {
    /// Begins a transaction scoped to `scope`'s schema and database role, in one round trip.
    #[tracing::instrument(skip_all, fields(tenant.id = %scope.id))]
    pub async fn begin(&self, scope: &TenantScope) -> Result<TenantTx, DomainError> {
        let tx = self
            .pool
            .begin_with(AssertSqlSafe(scope.begin_sql()))
            .await
            .map_err(crate::internal)?;
        Ok(TenantTx {
            tx,
            scope: scope.clone(),
        })
    }
}

/// A transaction that can see one tenant's schema and nothing else.
///
/// It derefs to a `PgConnection` so repositories can run queries on it; the role switch makes a
/// query naming another tenant's schema (or `platform`) fail with "permission denied" even if
/// application code is wrong. This guards against our bugs, not SQL injection: binds stay
/// mandatory.
#[derive(Debug)]
pub struct TenantTx {
    pub(crate) tx: Transaction<'static, Postgres>,
    pub(crate) scope: TenantScope,
}

impl TenantTx {
    /// The tenant this transaction is scoped to.
    pub fn tenant_id(&self) -> TenantId {
        self.scope.id
    }

    /// Sets this tenant's status in the registry within this transaction (an import restoring a
    /// suspended or archived municipality).
    pub async fn set_own_status(
        &mut self,
        status: desk_core::TenantStatus,
    ) -> Result<(), DomainError> {
        sqlx::raw_sql("set local role none")
            .execute(&mut *self.tx)
            .await
            .map_err(crate::internal)?;
        sqlx::query("update platform.tenants set status = $2, updated_at = now() where id = $1")
            .bind(self.scope.id.0)
            .bind(status.as_str())
            .execute(&mut *self.tx)
            .await
            .map_err(crate::internal)?;
        sqlx::raw_sql(AssertSqlSafe(self.scope.enter_sql()))
            .execute(&mut *self.tx)
            .await
            .map_err(crate::internal)?;
        Ok(())
    }

    /// Writes platform records that must commit or roll back with this tenant's change (its
    /// policies and audit line at onboarding): leaves the tenant role for the login role, writes,
    /// and re-enters the tenant scope.
    pub async fn write_platform_records(
        &mut self,
        rules: &[crate::policy::PolicyRule],
        audit: &crate::platform::AuditEntry<'_>,
    ) -> Result<(), DomainError> {
        sqlx::raw_sql("set local role none; set local search_path to platform, public")
            .execute(&mut *self.tx)
            .await
            .map_err(crate::internal)?;
        crate::policy::insert_rules(&mut self.tx, rules).await?;
        crate::platform::append_audit(&mut self.tx, audit).await?;
        sqlx::raw_sql(AssertSqlSafe(self.scope.enter_sql()))
            .execute(&mut *self.tx)
            .await
            .map_err(crate::internal)?;
        Ok(())
    }

    /// Gives a staff member of *this* tenant exactly `role` here (a tenant role key such as
    /// `desk_staff`), replacing the roles they held, within this transaction. The subject and
    /// domain are built from the transaction's own tenant, so no other municipality's rules can
    /// be named. Other instances see the change through the policy watcher.
    pub async fn set_staff_role(&mut self, staff_id: i64, role: &str) -> Result<(), DomainError> {
        if role.is_empty() || role.contains(':') {
            return Err(DomainError::Internal(anyhow::anyhow!(
                "not a tenant role: {role}"
            )));
        }
        let subject = format!("staff:{}:{staff_id}", self.scope.id);
        let domain = format!("tenant:{}", self.scope.id);
        sqlx::raw_sql("set local role none; set local search_path to platform, public")
            .execute(&mut *self.tx)
            .await
            .map_err(crate::internal)?;
        sqlx::query("delete from platform.casbin_rule where ptype = 'g' and v0 = $1 and v2 = $2")
            .bind(&subject)
            .bind(&domain)
            .execute(&mut *self.tx)
            .await
            .map_err(crate::internal)?;
        let rule = crate::policy::PolicyRule {
            ptype: "g".to_owned(),
            values: vec![subject, role.to_owned(), domain],
        };
        crate::policy::insert_rules(&mut self.tx, &[rule]).await?;
        sqlx::raw_sql(AssertSqlSafe(self.scope.enter_sql()))
            .execute(&mut *self.tx)
            .await
            .map_err(crate::internal)?;
        Ok(())
    }

    /// Commits; the scope ends with the transaction.
    pub async fn commit(self) -> Result<(), DomainError> {
        self.tx.commit().await.map_err(crate::internal)
    }

    /// Rolls back; the scope ends with the transaction.
    pub async fn rollback(self) -> Result<(), DomainError> {
        self.tx.rollback().await.map_err(crate::internal)
    }
}

impl Deref for TenantTx {
    type Target = PgConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl DerefMut for TenantTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}
