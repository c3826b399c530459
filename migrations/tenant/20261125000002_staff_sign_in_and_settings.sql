-- Staff sign-in by one-time link and server-side sessions (hashes of tokens only), the
-- municipality's SMS provider accounts (credentials sealed with AES-256-GCM by the app) and
-- its holiday table. Other settings live in `settings` as JSON.

create table staff_sign_in_tokens (
    token_hash bytea primary key,
    staff_id bigint not null references staff (id) on delete cascade,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    used_at timestamptz
);

create table staff_sessions (
    token_hash bytea primary key,
    staff_id bigint not null references staff (id) on delete cascade,
    csrf text not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null
);
create index staff_sessions_expires_idx on staff_sessions (expires_at);

create table sms_accounts (
    id bigint generated always as identity primary key,
    provider text not null check (provider in ('kavenegar', 'smsir', 'ghasedak', 'magfa')),
    label text not null check (length(label) between 1 and 100),
    sender_line text not null check (sender_line ~ '^\+?[0-9]{3,20}$'),
    credentials_nonce bytea not null,
    credentials_ciphertext bytea not null,
    credentials_set_at timestamptz not null default now(),
    enabled boolean not null default true,
    created_at timestamptz not null default now()
);

create table holidays (
    day date primary key,
    title text not null check (length(title) between 1 and 200)
);
