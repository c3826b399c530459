-- Satisfaction surveys (نظرسنجی): one per closed request, answered once through a personal
-- link sent by SMS, or at the desk by staff on the citizen's behalf. The six national axes are
-- defined in code (desk_core::survey); this schema keeps only a municipality's changes to them
-- (hidden, moved) and its own extra questions, so a fresh or imported schema holds no seed rows.

-- When each request closed (its day in the municipality's calendar), for on-time reporting.
alter table requests add column closed_on date;
update requests r
   set closed_on = (select (max(e.at) at time zone 'UTC' + interval '3 hours 30 minutes')::date
                      from request_events e where e.request_id = r.id)
 where r.closed;
create index requests_submitted_idx on requests (submitted_on);

create table survey_questions (
    -- A national axis key (`transparency`, ...) to hide or move it, or `c<n>` for an own question.
    key text primary key check (key ~ '^[a-z][a-z0-9_]{0,39}$'),
    -- The municipality's own question text; null for a national axis.
    label_fa text check (length(label_fa) between 1 and 300),
    position integer not null,
    hidden boolean not null default false
);

create table surveys (
    id bigint generated always as identity primary key,
    request_id bigint not null references requests (id) on delete cascade,
    -- sha256 of the link's token; null when the survey was filled at the desk without a link.
    token_hash bytea,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    answered_at timestamptz,
    answered_via text check (answered_via in ('link', 'desk')),
    -- The staff member who filled it in on the citizen's behalf.
    recorded_by bigint references staff (id) on delete set null,
    comment text check (length(comment) <= 1000),
    constraint surveys_request_key unique (request_id),
    constraint surveys_token_key unique (token_hash),
    constraint surveys_answer_shape check ((answered_at is null) = (answered_via is null))
);
create index surveys_answered_idx on surveys (answered_at) where answered_at is not null;

create table survey_answers (
    survey_id bigint not null references surveys (id) on delete cascade,
    question_key text not null check (question_key ~ '^[a-z][a-z0-9_]{0,39}$'),
    score smallint not null check (score between 1 and 5),
    primary key (survey_id, question_key)
);

alter table notifications drop constraint notifications_kind_check;
alter table notifications
    add constraint notifications_kind_check
        check (kind in ('staff_welcome', 'sign_in_code', 'request_event', 'appointment', 'survey'));

-- Integrators may read the desk report (counts and averages, no personal data).
alter table api_keys drop constraint api_keys_scopes_check;
alter table api_keys
    add constraint api_keys_scopes_check
        check (scopes <@ array['catalog:read', 'requests:submit', 'requests:read', 'requests:act', 'reports:read']::text[]);
