-- Jobs of a municipality that is suspended (or archived) wait here instead of failing; resuming
-- (or restoring) it puts them back on their queues.
create table platform.parked_jobs (
    id bigint generated always as identity primary key,
    tenant_id uuid not null references platform.tenants (id) on delete cascade,
    queue text not null,
    job bytea not null,
    idempotency_key text not null,
    parked_at timestamptz not null default now()
);
create index parked_jobs_tenant_idx on platform.parked_jobs (tenant_id, id);
