-- Small files of the municipality's theme (its logo), checked by the app for type and size.
create table theme_assets (
    name text primary key check (name in ('logo')),
    content_type text not null check (content_type in ('image/png', 'image/jpeg', 'image/webp')),
    bytes bytea not null check (octet_length(bytes) between 1 and 204800),
    updated_at timestamptz not null default now()
);
