-- Test sends requested from the settings page, completed by the worker with the provider's answer.
create table sms_test_sends (
    id bigint generated always as identity primary key,
    account_id bigint not null references sms_accounts (id) on delete cascade,
    recipient text not null check (recipient ~ '^\+98[0-9]{10}$'),
    requested_at timestamptz not null default now(),
    finished_at timestamptz,
    outcome text not null default 'pending' check (outcome in ('pending', 'sent', 'failed')),
    provider_message_id text,
    error_code text,
    error_message text
);
create index sms_test_sends_account_idx on sms_test_sends (account_id, id desc);
