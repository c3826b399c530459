-- Webhooks of a municipality: a URL and the events it wants. The signing secret is shown once
-- when the webhook is made and kept sealed with the master key (bound to this municipality).
-- Each event makes one delivery per subscribed webhook in the same transaction as the change;
-- a delivery keeps its tries and the receiver's last answer, for the admin to see.
create table webhooks (
    id bigint generated always as identity primary key,
    url text not null check (length(url) between 10 and 2000),
    events text[] not null check (cardinality(events) > 0 and events <@ array['request.filed',
        'request.status_changed', 'request.answered', 'survey.answered']::text[]),
    secret_nonce bytea not null,
    secret_sealed bytea not null,
    enabled boolean not null default true,
    created_by bigint references staff (id) on delete set null,
    created_at timestamptz not null default now()
);

create table webhook_deliveries (
    id bigint generated always as identity primary key,
    webhook_id bigint not null references webhooks (id) on delete cascade,
    event text not null,
    payload jsonb not null,
    status text not null default 'pending' check (status in ('pending', 'delivered', 'failed')),
    attempts integer not null default 0,
    response_status integer,
    -- The first characters of the receiver's last answer, or why there was none.
    response_excerpt text check (length(response_excerpt) <= 500),
    created_at timestamptz not null default now(),
    last_attempt_at timestamptz,
    delivered_at timestamptz
);
create index webhook_deliveries_webhook_idx on webhook_deliveries (webhook_id, id desc);
