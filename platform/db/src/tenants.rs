//! The municipality registry: provisioning, lookup by host, listing and status.

use crate::migrate::{self, TenantMigrations};
use crate::platform::PlatformDb;
use crate::tenant_tx::{TenantScope, TenantTx};
use crate::{internal, unique_violation};
use desk_core::{
    DomainError, FieldErrors, Hostname, SchemaName, TenantId, TenantSlug, TenantStatus,
};
use sqlx::postgres::PgRow;
use sqlx::{AssertSqlSafe, Row};
use std::time::Duration;

/// A municipality as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tenant {
    /// Stable id.
    pub id: TenantId,
    /// Fixed slug (names the default host and the schema).
    pub slug: TenantSlug,
    /// Persian name (`شهرداری اصفهان`).
    pub name_fa: String,
    /// English name.
    pub name_en: String,
    /// Province id.
    pub province_id: i16,
    /// Persian name of the province.
    pub province_name_fa: String,
    /// Lifecycle status.
    pub status: TenantStatus,
    /// Newest tenant migration applied to its schema.
    pub schema_version: i64,
    /// Theme and design tokens of its site.
    pub design: Design,
    scope: TenantScope,
}

/// A municipality's design: theme and tokens (see `desk_core::design`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Design {
    /// A shipped theme's name.
    pub theme: String,
    /// Brand colour `#rrggbb`, if chosen.
    pub brand: Option<String>,
    /// Whether a logo was uploaded.
    pub logo: bool,
    /// Whether a header image was uploaded.
    pub header: bool,
    /// Published version of its template overrides; zero or negative: none. Versions never
    /// repeat (a withdrawal counts too), so a cache keyed by version cannot serve withdrawn text.
    pub overrides: i64,
}

impl Tenant {
    /// What a [`TenantTx`] needs to scope itself to this tenant.
    pub fn scope(&self) -> &TenantScope {
        &self.scope
    }
}

/// Input for provisioning a municipality.
#[derive(Debug, Clone)]
pub struct NewTenant {
    /// Validated slug.
    pub slug: TenantSlug,
    /// Persian name, required.
    pub name_fa: String,
    /// English name, may be empty.
    pub name_en: String,
    /// Province id (1..=31 for the seeded provinces).
    pub province_id: i16,
    /// Host names: the default `<slug>.<base-domain>` first, then custom domains.
    pub domains: Vec<Hostname>,
}

macro_rules! tenant_select {
    ($($tail:literal)*) => {
        concat!(
            "select t.id, t.slug, t.schema_name, t.db_role, t.name_fa, t.name_en, t.province_id,
                    p.name_fa as province_name_fa, t.status, t.schema_version,
                    t.theme, t.brand, t.has_logo, t.has_header, t.overrides_version
             from platform.tenants t
             join platform.provinces p on p.id = t.province_id ",
            $($tail),*
        )
    };
}

fn tenant_from_row(row: &PgRow) -> Result<Tenant, DomainError> {
    let corrupt =
        |what: &str| DomainError::Internal(anyhow::anyhow!("registry row has invalid {what}"));
    let slug: String = row.try_get("slug").map_err(internal)?;
    let schema: String = row.try_get("schema_name").map_err(internal)?;
    let status: String = row.try_get("status").map_err(internal)?;
    let role: String = row.try_get("db_role").map_err(internal)?;
    // The role is spliced into `set local role`: re-check its alphabet like the schema's.
    if !crate::tenant_tx::valid_role_name(&role) {
        return Err(corrupt("role"));
    }
    let id = TenantId(row.try_get("id").map_err(internal)?);
    Ok(Tenant {
        id,
        slug: TenantSlug::parse(&slug).map_err(|_| corrupt("slug"))?,
        name_fa: row.try_get("name_fa").map_err(internal)?,
        name_en: row.try_get("name_en").map_err(internal)?,
        province_id: row.try_get("province_id").map_err(internal)?,
        province_name_fa: row.try_get("province_name_fa").map_err(internal)?,
        status: status.parse().map_err(|_| corrupt("status"))?,
        schema_version: row.try_get("schema_version").map_err(internal)?,
        design: Design {
            theme: row.try_get("theme").map_err(internal)?,
            brand: row.try_get("brand").map_err(internal)?,
            logo: row.try_get("has_logo").map_err(internal)?,
            header: row.try_get("has_header").map_err(internal)?,
            overrides: row.try_get("overrides_version").map_err(internal)?,
        },
        scope: TenantScope {
            id,
            schema: SchemaName::parse(&schema).map_err(|_| corrupt("schema name"))?,
            role,
        },
    })
}

impl PlatformDb {
    /// Sets a municipality's theme and tokens (`brand` already checked by
    /// `desk_core::design::check_brand`; `theme` one of `desk_core::design::THEMES`).
    pub async fn set_design(&self, tenant: TenantId, design: &Design) -> Result<(), DomainError> {
        if !desk_core::design::is_theme(&design.theme) {
            return Err(FieldErrors::single("theme", "theme", "این پوسته وجود ندارد.").into());
        }
        sqlx::query(
            "update platform.tenants set theme = $2, brand = $3, has_logo = $4, has_header = $5
              where id = $1",
        )
        .bind(tenant.0)
        .bind(&design.theme)
        .bind(&design.brand)
        .bind(design.logo)
        .bind(design.header)
        .execute(&self.pool)
        .await
        .map_err(internal)?;
        Ok(())
    }
}

impl PlatformDb {
    /// Marks that a municipality published its template overrides (or withdrew them all, with
    /// `any` false); returns the new version.
    pub async fn bump_overrides(&self, tenant: TenantId, any: bool) -> Result<i64, DomainError> {
        sqlx::query_scalar(
            "update platform.tenants
                set overrides_version = case when $2 then abs(overrides_version) + 1
                                             else -(abs(overrides_version) + 1) end
              where id = $1 returning overrides_version",
        )
        .bind(tenant.0)
        .bind(any)
        .fetch_one(&self.pool)
        .await
        .map_err(internal)
    }
}

/// A taken host name becomes a field error; anything else is internal.
fn domain_error(e: sqlx::Error) -> DomainError {
    match unique_violation(&e) {
        Some("tenant_domains_pkey") => FieldErrors::single(
            "domains",
            "domain_taken",
            "این دامنه پیش‌تر به شهرداری دیگری داده شده است.",
        )
        .into(),
        _ => internal(e),
    }
}

/// Filters for listing municipalities.
#[derive(Debug, Clone, Default)]
pub struct TenantFilter {
    /// Only this province.
    pub province_id: Option<i16>,
    /// Only this status.
    pub status: Option<TenantStatus>,
}

impl PlatformDb {
    /// The municipality serving `host` (its default or a custom domain), in any status.
    #[tracing::instrument(skip_all, fields(host = %host))]
    pub async fn tenant_by_host(&self, host: &Hostname) -> Result<Option<Tenant>, DomainError> {
        let row = sqlx::query(tenant_select!(
            "join platform.tenant_domains d on d.tenant_id = t.id where d.host = $1"
        ))
        .bind(host.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(internal)?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    /// The municipality with this id, in any status.
    pub async fn tenant_by_id(&self, id: TenantId) -> Result<Option<Tenant>, DomainError> {
        let row = sqlx::query(tenant_select!("where t.id = $1"))
            .bind(id.0)
            .fetch_optional(&self.pool)
            .await
            .map_err(internal)?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    /// The municipality with this slug, in any status.
    pub async fn tenant_by_slug(&self, slug: &TenantSlug) -> Result<Option<Tenant>, DomainError> {
        let row = sqlx::query(tenant_select!("where t.slug = $1"))
            .bind(slug.as_str())
            .fetch_optional(&self.pool)
            .await
            .map_err(internal)?;
        row.as_ref().map(tenant_from_row).transpose()
    }

    /// Municipalities matching `filter`, by slug.
    pub async fn list_tenants(&self, filter: &TenantFilter) -> Result<Vec<Tenant>, DomainError> {
        let rows = sqlx::query(tenant_select!(
            "where ($1::smallint is null or t.province_id = $1)
               and ($2::text is null or t.status = $2)
             order by t.slug"
        ))
        .bind(filter.province_id)
        .bind(filter.status.map(TenantStatus::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(internal)?;
        rows.iter().map(tenant_from_row).collect()
    }

    /// Host names of a municipality, default first.
    pub async fn tenant_domains(&self, id: TenantId) -> Result<Vec<Hostname>, DomainError> {
        let hosts: Vec<String> = sqlx::query_scalar(
            "select host from platform.tenant_domains where tenant_id = $1
             order by is_default desc, host",
        )
        .bind(id.0)
        .fetch_all(&self.pool)
        .await
        .map_err(internal)?;
        hosts
            .iter()
            .map(|h| Hostname::parse(h).map_err(DomainError::Validation))
            .collect()
    }

    /// Changes a municipality's status.
    pub async fn set_tenant_status(
        &self,
        id: TenantId,
        status: TenantStatus,
    ) -> Result<(), DomainError> {
        let done = sqlx::query(
            "update platform.tenants set status = $2, updated_at = now() where id = $1",
        )
        .bind(id.0)
        .bind(status.as_str())
        .execute(&self.pool)
        .await
        .map_err(internal)?;
        if done.rows_affected() == 0 {
            return Err(DomainError::NotFound);
        }
        Ok(())
    }

    /// Moves a municipality from status `from` to `to`; `Conflict` when another change got
    /// there first (so two concurrent lifecycle actions cannot both apply).
    pub async fn transition_tenant_status(
        &self,
        id: TenantId,
        from: TenantStatus,
        to: TenantStatus,
    ) -> Result<(), DomainError> {
        let done = sqlx::query(
            "update platform.tenants set status = $3, updated_at = now() where id = $1 and status = $2",
        )
        .bind(id.0)
        .bind(from.as_str())
        .bind(to.as_str())
        .execute(&self.pool)
        .await
        .map_err(internal)?;
        if done.rows_affected() == 0 {
            return Err(DomainError::Conflict(
                "the municipality's status changed meanwhile".into(),
            ));
        }
        Ok(())
    }

    /// Provisions a municipality and commits: see [`PlatformDb::begin_create_tenant`].
    pub async fn create_tenant(
        &self,
        new: &NewTenant,
        migrations: &TenantMigrations,
    ) -> Result<Tenant, DomainError> {
        let (tenant, tx) = self.begin_create_tenant(new, migrations).await?;
        tx.commit().await?;
        Ok(tenant)
    }

    /// Provisions a municipality in one transaction and hands that transaction back, scoped to
    /// the new tenant, so the caller can seed it (first admin, catalog, ...) atomically.
    /// Nothing exists until the returned transaction commits.
    ///
    /// Registry row and domains, then the tenant's role (member of the install's tenant group,
    /// granted to the login role so it can `set role`), then its schema owned by that role, then
    /// the tenant migrations through the same code path `desk migrate` uses.
    #[tracing::instrument(skip_all, fields(tenant.slug = %new.slug))]
    pub async fn begin_create_tenant(
        &self,
        new: &NewTenant,
        migrations: &TenantMigrations,
    ) -> Result<(Tenant, TenantTx), DomainError> {
        let name_fa = new.name_fa.trim();
        if name_fa.is_empty() || name_fa.chars().count() > 200 {
            return Err(FieldErrors::single(
                "name_fa",
                "name_length",
                "نام فارسی شهرداری لازم است و باید حداکثر ۲۰۰ نویسه باشد.",
            )
            .into());
        }
        if !desk_core::text::is_persian_text(name_fa) {
            return Err(FieldErrors::single(
                "name_fa",
                "name_not_persian",
                "نام فارسی شهرداری را با حروف فارسی بنویسید.",
            )
            .into());
        }
        if new.name_en.chars().count() > 200 {
            return Err(FieldErrors::single(
                "name_en",
                "name_length",
                "نام انگلیسی باید حداکثر ۲۰۰ نویسه باشد.",
            )
            .into());
        }
        if new.domains.is_empty() {
            return Err(FieldErrors::single(
                "domains",
                "domain_required",
                "دست‌کم یک دامنه لازم است.",
            )
            .into());
        }
        let id = TenantId::new();
        let schema = new.slug.schema();
        let role = self.install.tenant_role(&schema);
        let scope = TenantScope {
            id,
            schema: schema.clone(),
            role: role.clone(),
        };

        let mut tx = self.pool.begin().await.map_err(internal)?;
        sqlx::query(
            "insert into platform.tenants (id, slug, schema_name, db_role, name_fa, name_en, province_id)
             values ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(id.0)
        .bind(new.slug.as_str())
        .bind(schema.as_str())
        .bind(&role)
        .bind(name_fa)
        .bind(new.name_en.trim())
        .bind(new.province_id)
        .execute(&mut *tx)
        .await
        .map_err(|e| match (&e, unique_violation(&e)) {
            (_, Some("tenants_slug_key" | "tenants_schema_name_key" | "tenants_db_role_key")) => {
                FieldErrors::single("slug", "slug_taken", "این شناسه پیش‌تر به شهرداری دیگری داده شده است.").into()
            }
            (sqlx::Error::Database(d), _) if d.code().as_deref() == Some("23503") => {
                FieldErrors::single("province_id", "province_unknown", "استان انتخاب‌شده وجود ندارد.").into()
            }
            _ => internal(e),
        })?;

        let hosts: Vec<&str> = new.domains.iter().map(Hostname::as_str).collect();
        let defaults: Vec<bool> = (0..hosts.len()).map(|i| i == 0).collect();
        sqlx::query(
            "insert into platform.tenant_domains (host, tenant_id, is_default)
             select h, $2, d from unnest($1::text[], $3::bool[]) as x(h, d)",
        )
        .bind(&hosts)
        .bind(id.0)
        .bind(&defaults)
        .execute(&mut *tx)
        .await
        .map_err(domain_error)?;

        // Identifiers are validated (`[a-z0-9_]`), so splicing them is safe. No
        // `grant ... on all tables in schema`: the role owns the schema and all it creates.
        let group = self.install.tenant_group_role();
        let ddl = format!(
            "create role {role} nologin in role {group};
             grant {role} to session_user;
             do $$ begin
                 execute format('comment on role {role} is %L', 'desk:' || current_database());
             end $$;
             create schema {schema} authorization {role};",
            schema = schema.as_str()
        );
        sqlx::raw_sql(AssertSqlSafe(ddl))
            .execute(&mut *tx)
            .await
            .map_err(|e| match &e {
                sqlx::Error::Database(d) if d.code().as_deref() == Some("42710") => {
                    FieldErrors::single(
                        "slug",
                        "slug_taken",
                        "این شناسه پیش‌تر به شهرداری دیگری داده شده است.",
                    )
                    .into()
                }
                _ => internal(e),
            })?;

        migrate::apply_pending(&mut tx, &scope, migrations, Duration::from_secs(5))
            .await
            .map_err(|e| DomainError::Internal(anyhow::anyhow!("migrating the new tenant: {e}")))?;

        let row = sqlx::query(tenant_select!("where t.id = $1"))
            .bind(id.0)
            .fetch_one(&mut *tx)
            .await
            .map_err(internal)?;
        let tenant = tenant_from_row(&row)?;
        sqlx::raw_sql(AssertSqlSafe(scope.enter_sql()))
            .execute(&mut *tx)
            .await
            .map_err(internal)?;
        Ok((tenant, TenantTx { tx, scope }))
    }

    /// Destroys a municipality for good: schema, role and registry row. For tests and
    /// benchmarks; the product archives instead.
    pub async fn purge_tenant(&self, tenant: &Tenant) -> Result<(), DomainError> {
        let sql = format!(
            "begin;
             drop schema if exists {schema} cascade;
             drop role if exists {role};
             delete from platform.tenants where id = '{id}';
             commit;",
            schema = tenant.scope.schema.as_str(),
            role = tenant.scope.role,
            id = tenant.id,
        );
        sqlx::raw_sql(AssertSqlSafe(sql))
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(internal)
    }
}

impl PlatformDb {
    /// Adds a custom domain to a municipality.
    pub async fn add_tenant_domain(
        &self,
        id: TenantId,
        host: &Hostname,
    ) -> Result<(), DomainError> {
        sqlx::query("insert into platform.tenant_domains (host, tenant_id) values ($1, $2)")
            .bind(host.as_str())
            .bind(id.0)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(domain_error)
    }

    /// Removes a custom domain; the default `<slug>.<base-domain>` stays.
    pub async fn remove_tenant_domain(
        &self,
        id: TenantId,
        host: &Hostname,
    ) -> Result<(), DomainError> {
        let done = sqlx::query(
            "delete from platform.tenant_domains where tenant_id = $1 and host = $2 and not is_default",
        )
        .bind(id.0)
        .bind(host.as_str())
        .execute(&self.pool)
        .await
        .map_err(internal)?;
        if done.rows_affected() == 0 {
            return Err(FieldErrors::single(
                "domains",
                "domain_not_removable",
                "این دامنه از آنِ این شهرداری نیست یا دامنه پیش‌فرض است.",
            )
            .into());
        }
        Ok(())
    }
}
