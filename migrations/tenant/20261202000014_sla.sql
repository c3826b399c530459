-- SLA watch: the day staff were last warned that a request's step is due, and when an overdue
-- request was escalated to the department heads. Staff alerts go through the SMS outbox.
alter table requests
    add column sla_warned_on date,
    add column escalated_at timestamptz;

alter table notifications drop constraint notifications_kind_check;
alter table notifications
    add constraint notifications_kind_check
        check (kind in ('staff_welcome', 'sign_in_code', 'request_event', 'appointment', 'survey', 'staff_alert'));
