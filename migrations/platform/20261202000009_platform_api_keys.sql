-- API keys of platform users, for provincial systems: a key acts as the user who made it
-- (the same role and province), is shown once and kept as a hash, and can expire or be revoked.
create table platform.api_keys (
    id bigint generated always as identity primary key,
    user_id bigint not null references platform.users (id) on delete cascade,
    name text not null check (length(name) between 1 and 100),
    prefix text not null check (prefix ~ '^mizp_[0-9a-f]{8}$'),
    key_hash bytea not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz,
    revoked_at timestamptz,
    last_used_at timestamptz,
    constraint platform_api_keys_hash_key unique (key_hash)
);
create index platform_api_keys_user_idx on platform.api_keys (user_id);
