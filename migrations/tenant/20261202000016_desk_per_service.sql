-- Desk hours per service: rows naming a service are that service's own desk (its own places);
-- rows without one are the shared desk, used by every service without hours of its own. An
-- appointment records the pool whose places it takes ('' = the shared desk, else the service
-- code), so capacity is counted per pool. Reminders are sent once, the day before.
alter table desk_hours
    add column service_code text check (service_code is null or length(service_code) between 1 and 64);

alter table appointments
    add column pool text not null default '',
    add column reminded_at timestamptz;

drop index appointments_slot_idx;
create index appointments_slot_idx on appointments (day, starts, pool) where status <> 'cancelled';
create index appointments_reminder_idx on appointments (day) where status = 'booked' and reminded_at is null;

alter table sms_templates drop constraint sms_templates_event_check;
alter table sms_templates
    add constraint sms_templates_event_check
        check (event in ('request_registered', 'step_changed', 'documents_needed', 'answer_ready',
            'survey_link', 'sign_in_code', 'appointment_booked', 'appointment_reminder'));
