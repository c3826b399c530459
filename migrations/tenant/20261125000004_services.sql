-- The catalog: one row per version of a service identity card. A request keeps the version it
-- was filed under; at most one version of a code is published at a time.
create table services (
    id bigint generated always as identity primary key,
    code text not null check (code ~ '^[A-Z0-9-]{3,40}$'),
    version integer not null check (version > 0),
    status text not null check (status in ('draft', 'published', 'retired')),
    hidden boolean not null default false,
    category text not null,
    title text not null,
    card jsonb not null,
    -- Folded text (Persian normalization done by the app on index and query alike).
    search_text text not null,
    from_template boolean not null default false,
    created_at timestamptz not null default now(),
    published_at timestamptz,
    constraint services_code_version_key unique (code, version)
);
create unique index services_one_published_idx on services (code) where status = 'published';
create index services_search_idx on services using gin (search_text public.gin_trgm_ops);
