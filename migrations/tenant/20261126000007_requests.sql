-- Electronic requests: citizens (signed in by a one-time SMS code), units, requests with their
-- timeline and files, and the notifications that tell the citizen about each step.

create table citizens (
    id bigint generated always as identity primary key,
    mobile text not null check (mobile ~ '^\+98[0-9]{10}$'),
    national_code text check (national_code ~ '^[0-9]{10}$'),
    full_name text check (length(full_name) <= 100),
    created_at timestamptz not null default now(),
    constraint citizens_mobile_key unique (mobile)
);

-- One row per code sent; only a hash of the code is kept.
create table citizen_sign_in_codes (
    id bigint generated always as identity primary key,
    mobile text not null check (mobile ~ '^\+98[0-9]{10}$'),
    code_hash bytea not null,
    sent_at timestamptz not null default now(),
    expires_at timestamptz not null,
    attempts integer not null default 0,
    used_at timestamptz
);
create index citizen_sign_in_codes_mobile_idx on citizen_sign_in_codes (mobile, sent_at desc);

create table citizen_sessions (
    token_hash bytea primary key,
    citizen_id bigint not null references citizens (id) on delete cascade,
    csrf text not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null
);
create index citizen_sessions_expires_idx on citizen_sessions (expires_at);

create table units (
    id bigint generated always as identity primary key,
    name text not null check (length(name) between 1 and 100),
    constraint units_name_key unique (name)
);
alter table staff add column unit_id bigint references units (id) on delete set null;

create table requests (
    id bigint generated always as identity primary key,
    tracking_code text not null check (tracking_code ~ '^[0-9]{12}$'),
    -- The card version the request was filed under.
    service_id bigint not null references services (id),
    service_code text not null,
    citizen_id bigint references citizens (id),
    mobile text not null check (mobile ~ '^\+98[0-9]{10}$'),
    national_code text check (national_code ~ '^[0-9]{10}$'),
    applicant_name text,
    channel text not null check (channel in ('web', 'in_person', 'api', 'open311')),
    state text not null check (state ~ '^[a-z][a-z0-9_]{0,39}$'),
    -- In a terminal state of its workflow (each service may have its own).
    closed boolean not null default false,
    form jsonb not null,
    submitted_at timestamptz not null default now(),
    -- Dates in the municipality's calendar (Asia/Tehran).
    submitted_on date not null,
    promised_on date not null,
    state_since timestamptz not null default now(),
    state_due_on date,
    unit_id bigint references units (id) on delete set null,
    assignee_id bigint references staff (id) on delete set null,
    registered_by bigint references staff (id) on delete set null,
    idempotency_key text check (length(idempotency_key) between 16 and 100),
    updated_at timestamptz not null default now(),
    constraint requests_tracking_code_key unique (tracking_code),
    constraint requests_idempotency_key unique (idempotency_key)
);
create index requests_inbox_idx on requests (promised_on, id) where not closed;
create index requests_state_idx on requests (state, promised_on);
create index requests_citizen_idx on requests (citizen_id, submitted_at desc);
create index requests_mobile_idx on requests (mobile, submitted_at desc);
create index requests_changes_idx on requests (updated_at, id);
create index requests_assignee_idx on requests (assignee_id) where assignee_id is not null;

create table request_events (
    id bigint generated always as identity primary key,
    request_id bigint not null references requests (id) on delete cascade,
    at timestamptz not null default now(),
    actor_kind text not null check (actor_kind in ('citizen', 'staff', 'system')),
    staff_id bigint references staff (id) on delete set null,
    action text not null,
    from_state text,
    to_state text not null,
    note text check (length(note) <= 2000),
    unit_id bigint references units (id) on delete set null
);
create index request_events_request_idx on request_events (request_id, id);

create table request_files (
    id bigint generated always as identity primary key,
    request_id bigint not null references requests (id) on delete cascade,
    event_id bigint references request_events (id) on delete set null,
    field text not null,
    file_name text not null,
    content_type text not null,
    size bigint not null check (size > 0),
    sha256 bytea not null,
    -- Key in the object store, under the tenant's prefix; never shown to anyone.
    storage_key text not null,
    uploaded_at timestamptz not null default now(),
    constraint request_files_storage_key_key unique (storage_key)
);
create index request_files_request_idx on request_files (request_id);

-- Notifications now also carry sign-in codes (sealed, like sign-in links) and request steps.
alter table notifications drop constraint notifications_kind_check;
alter table notifications
    add constraint notifications_kind_check
        check (kind in ('staff_welcome', 'sign_in_code', 'request_event')),
    add column request_id bigint references requests (id) on delete cascade,
    add column event_id bigint references request_events (id) on delete cascade,
    add column provider_message_id text,
    add column error_code text,
    add column sent_at timestamptz,
    add constraint notifications_event_key unique (event_id);
