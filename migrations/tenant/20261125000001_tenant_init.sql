-- First tenant schema: settings, staff and the notification outbox.
-- Runs once per tenant with search_path = t_<slug>, public and role = the tenant's owner role,
-- so every object below is created in, and owned by, the tenant. Names stay unqualified.
-- No custom types (enum/composite/domain): text + check keeps sqlx's per-connection caches
-- safe across schemas.

create table settings (
    key text primary key check (key ~ '^[a-z][a-z0-9_.]{0,62}$'),
    value jsonb not null,
    updated_at timestamptz not null default now()
);

create table staff (
    id bigint generated always as identity primary key,
    username text not null check (username ~ '^[a-z0-9._-]{3,40}$'),
    display_name text not null,
    mobile text check (mobile ~ '^\+98[0-9]{10}$'),
    is_admin boolean not null default false,
    created_at timestamptz not null default now(),
    constraint staff_username_key unique (username)
);

create table notifications (
    id bigint generated always as identity primary key,
    kind text not null check (kind in ('staff_welcome')),
    staff_id bigint references staff (id) on delete cascade,
    recipient text,
    body text not null,
    status text not null default 'queued' check (status in ('queued', 'sent', 'failed')),
    job_id text,
    created_at timestamptz not null default now(),
    constraint notifications_kind_staff_key unique (kind, staff_id)
);

create table audit_log (
    id bigint generated always as identity primary key,
    at timestamptz not null default now(),
    actor text not null,
    action text not null,
    detail jsonb not null default '{}'
);
create index audit_log_at_idx on audit_log (at);
