-- API keys of a municipality for integrators (GraphQL, Open311). Only a hash of the key is
-- kept; the key is shown once when it is made. A key acts with the scopes it was given and,
-- for workflow actions, as one staff role of this municipality.
create table api_keys (
    id bigint generated always as identity primary key,
    name text not null check (length(name) between 1 and 100),
    -- First characters of the key, to tell keys apart in lists (not secret on their own).
    prefix text not null check (prefix ~ '^miz_[0-9a-f]{8}$'),
    key_hash bytea not null,
    scopes text[] not null check (scopes <@ array['catalog:read', 'requests:submit', 'requests:read', 'requests:act']::text[]),
    role text check (role in ('desk_staff', 'department_head', 'tenant_admin')),
    created_by bigint references staff (id) on delete set null,
    created_at timestamptz not null default now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    last_used_at timestamptz,
    constraint api_keys_hash_key unique (key_hash)
);

-- A step taken through the API names the key that took it.
alter table request_events
    add column api_key_id bigint references api_keys (id) on delete set null,
    drop constraint request_events_actor_kind_check,
    add constraint request_events_actor_kind_check
        check (actor_kind in ('citizen', 'staff', 'system', 'api'));
