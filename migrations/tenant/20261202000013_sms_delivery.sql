-- SMS delivery reports and failover: which account sent a message, how often sending was
-- tried, what the provider later reported; and each account's run of failures, so a failing
-- account is passed over for a while.
alter table notifications
    add column account_id bigint references sms_accounts (id) on delete set null,
    add column attempts integer not null default 0,
    add column delivery text check (delivery in ('pending', 'delivered', 'failed')),
    add column delivery_code text check (length(delivery_code) <= 40),
    add column delivered_at timestamptz;

alter table sms_accounts
    add column failures integer not null default 0,
    add column failing_since timestamptz;
