-- Providers' pre-approved templates (Kavenegar verify/lookup, SMS.ir send/verify, Ghasedak
-- SendOtpSMS) per SMS account and event: the template id and which of the event's variables
-- fills each of its parameters. A message remembers its event and variables until it is sent,
-- so an account with a template for the event sends the template instead of the text.
create table sms_provider_templates (
    account_id bigint not null references sms_accounts (id) on delete cascade,
    event text not null check (event in ('request_registered', 'step_changed', 'documents_needed',
        'answer_ready', 'survey_link', 'sign_in_code', 'appointment_booked', 'appointment_reminder')),
    template text not null check (length(template) between 1 and 64),
    params jsonb not null check (jsonb_typeof(params) = 'array'),
    updated_at timestamptz not null default now(),
    primary key (account_id, event)
);

alter table notifications
    add column event text,
    add column vars jsonb;
