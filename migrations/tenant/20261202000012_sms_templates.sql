-- A municipality's own SMS text per event (minijinja, rendered in a sandbox); events without a
-- row use the shipped Persian default (desk_core::sms_templates).
create table sms_templates (
    event text primary key check (event in ('request_registered', 'step_changed', 'documents_needed',
        'answer_ready', 'survey_link', 'sign_in_code', 'appointment_booked')),
    body text not null check (length(body) between 1 and 1000),
    updated_at timestamptz not null default now()
);
