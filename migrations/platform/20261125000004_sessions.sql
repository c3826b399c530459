-- Server-side sessions of platform users (admins and provincial operators). Only a hash of the
-- token is stored, so a copy of this table cannot be replayed as cookies.
create table platform.sessions (
    token_hash bytea primary key,
    user_id bigint not null references platform.users (id) on delete cascade,
    csrf text not null,
    source text not null default '',
    created_at timestamptz not null default now(),
    expires_at timestamptz not null
);
create index sessions_user_idx on platform.sessions (user_id);
create index sessions_expires_idx on platform.sessions (expires_at);
