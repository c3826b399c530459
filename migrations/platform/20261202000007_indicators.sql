-- Desk indicators per municipality and Jalali month (by the month a request was filed), kept
-- current by the `refresh_indicators` job from the municipality's own schema. Province and
-- platform dashboards read only this table: counts and sums, never a citizen's data.
create table platform.tenant_indicators (
    tenant_id uuid not null references platform.tenants (id) on delete cascade,
    -- Jalali year * 100 + month (140509 = Azar 1405).
    month integer not null check (month % 100 between 1 and 12),
    requests integer not null default 0,
    web integer not null default 0,
    in_person integer not null default 0,
    api integer not null default 0,
    closed integer not null default 0,
    -- Closed on or before the promised date on the receipt.
    closed_on_time integer not null default 0,
    -- Still open after the promised date.
    open_overdue integer not null default 0,
    -- Calendar days from filing to closing, over the closed requests, and the days their cards
    -- declared (average duration in working days), for "average duration against declared".
    duration_days_sum bigint not null default 0,
    declared_days_sum bigint not null default 0,
    surveys integer not null default 0,
    -- Sum of scores (1-5) and count of answers per national axis.
    transparency_sum integer not null default 0,
    transparency_n integer not null default 0,
    responsiveness_sum integer not null default 0,
    responsiveness_n integer not null default 0,
    mastery_sum integer not null default 0,
    mastery_n integer not null default 0,
    time_sum integer not null default 0,
    time_n integer not null default 0,
    systematic_sum integer not null default 0,
    systematic_n integer not null default 0,
    overall_sum integer not null default 0,
    overall_n integer not null default 0,
    sms_sent integer not null default 0,
    sms_failed integer not null default 0,
    refreshed_at timestamptz not null default now(),
    primary key (tenant_id, month)
);
create index tenant_indicators_month_idx on platform.tenant_indicators (month);
