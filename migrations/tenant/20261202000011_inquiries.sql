-- Inquiries to other agencies (استعلام): the agencies a municipality asks (an HTTP JSON
-- connector, or by letter with the answer typed in by staff) and each inquiry's lifecycle
-- (created → sent → answered / failed / timed_out), attached to the request it is for.

create table agencies (
    id bigint generated always as identity primary key,
    name text not null check (length(name) between 1 and 100),
    -- `http_json`: our JSON connector calls `endpoint`; `manual`: a letter, answered by staff.
    kind text not null check (kind in ('http_json', 'manual')),
    endpoint text check (endpoint ~ '^https?://' and length(endpoint) <= 500),
    timeout_secs integer not null default 10 check (timeout_secs between 1 and 120),
    -- Working days the agency has to answer (the inquiry's SLA).
    sla_days integer not null default 5 check (sla_days between 0 and 365),
    -- The bearer token, sealed like SMS credentials (write-only).
    credentials_nonce bytea,
    credentials_ciphertext bytea,
    enabled boolean not null default true,
    constraint agencies_name_key unique (name),
    constraint agencies_endpoint_shape check ((kind = 'http_json') = (endpoint is not null))
);

create table inquiries (
    id bigint generated always as identity primary key,
    request_id bigint not null references requests (id) on delete cascade,
    agency_id bigint not null references agencies (id),
    subject text not null check (length(subject) between 1 and 500),
    status text not null check (status in ('created', 'sent', 'answered', 'failed', 'timed_out')),
    created_at timestamptz not null default now(),
    created_by bigint references staff (id) on delete set null,
    due_on date not null,
    sent_at timestamptz,
    answered_at timestamptz,
    attempts integer not null default 0,
    -- The agency's own reference for an inquiry it answers later.
    external_ref text check (length(external_ref) <= 200),
    answer text check (length(answer) <= 4000),
    outcome text check (outcome in ('approved', 'rejected', 'info')),
    last_error text check (length(last_error) <= 300)
);
create index inquiries_request_idx on inquiries (request_id);
create index inquiries_open_idx on inquiries (due_on) where status in ('created', 'sent');
