-- The platform registry: install id, provinces, municipalities (tenants) and their host names,
-- platform users, casbin policies and the audit log. Runs with search_path = platform, so the
-- sqlx ledger lives in platform._sqlx_migrations; every object is still named schema-qualified.

create extension if not exists hstore with schema public;
create extension if not exists pgcrypto with schema public;
create extension if not exists pg_trgm with schema public;

-- One row: an id unique to this database, prefixed to every cluster-wide role we create, so that
-- test, staging and production databases on one cluster never collide or grant across each other.
create table platform.install (
    id text primary key check (id ~ '^[a-z0-9]{8}$'),
    created_at timestamptz not null default now()
);
create unique index install_singleton on platform.install ((true));
insert into platform.install (id) values (substr(md5(gen_random_uuid()::text), 1, 8));

create table platform.provinces (
    id smallint primary key,
    code text not null unique check (code ~ '^[a-z][a-z0-9-]{1,39}$'),
    name_fa text not null,
    name_en text not null
);

create table platform.tenants (
    id uuid primary key,
    slug text not null check (slug ~ '^[a-z][a-z0-9-]{1,39}$'),
    schema_name text not null check (schema_name ~ '^t_[a-z0-9_]{1,40}$'),
    db_role text not null,
    name_fa text not null check (length(name_fa) between 1 and 200),
    name_en text not null default '' check (length(name_en) <= 200),
    province_id smallint not null references platform.provinces (id),
    status text not null default 'active' check (status in ('active', 'suspended', 'archived')),
    -- Cache of the newest version in the tenant's own ledger, written in the same transaction
    -- as the ledger, so `desk migrate` can skip up-to-date tenants with one query.
    schema_version bigint not null default 0,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    constraint tenants_slug_key unique (slug),
    constraint tenants_schema_name_key unique (schema_name),
    constraint tenants_db_role_key unique (db_role)
);
create index tenants_province_status_idx on platform.tenants (province_id, status);
create index tenants_schema_version_idx on platform.tenants (schema_version);

create table platform.tenant_domains (
    host text not null check (host ~ '^[a-z0-9.-]{1,253}$'),
    tenant_id uuid not null references platform.tenants (id) on delete cascade,
    is_default boolean not null default false,
    created_at timestamptz not null default now(),
    constraint tenant_domains_pkey primary key (host)
);
create index tenant_domains_tenant_idx on platform.tenant_domains (tenant_id);

create table platform.users (
    id bigint generated always as identity primary key,
    username text not null check (username ~ '^[a-z0-9._-]{3,40}$'),
    display_name text not null,
    mobile text,
    kind text not null check (kind in ('platform_admin', 'province_operator')),
    province_id smallint references platform.provinces (id),
    password_hash text,
    disabled_at timestamptz,
    created_at timestamptz not null default now(),
    constraint users_username_key unique (username),
    constraint users_operator_has_province check (kind <> 'province_operator' or province_id is not null)
);

-- Same layout as casbin's sqlx-adapter, so tools that know it can read it.
create table platform.casbin_rule (
    id bigint generated always as identity primary key,
    ptype text not null,
    v0 text not null default '',
    v1 text not null default '',
    v2 text not null default '',
    v3 text not null default '',
    v4 text not null default '',
    v5 text not null default ''
);
create unique index casbin_rule_unique_idx on platform.casbin_rule (ptype, v0, v1, v2, v3, v4, v5);

create table platform.audit_log (
    id bigint generated always as identity primary key,
    at timestamptz not null default now(),
    actor text not null,
    action text not null,
    tenant_id uuid,
    detail jsonb not null default '{}'
);
create index audit_log_tenant_at_idx on platform.audit_log (tenant_id, at);
