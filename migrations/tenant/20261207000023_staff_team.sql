-- The municipality's staff team: invited members who set a password, sign in every day with a
-- second factor, can be deactivated and reactivated; sessions that show where they are and end
-- after an idle spell or an absolute limit; an append-only activity log.

alter table staff
    add column password_hash text,
    add column active boolean not null default true,
    add column invited_at timestamptz,
    add column joined_at timestamptz,
    add column last_sign_in_at timestamptz,
    add column deactivated_at timestamptz,
    -- An authenticator app (RFC 6238) instead of SMS codes: the secret sealed by the app,
    -- enabled once the member typed a code from it; the last step used (no code twice).
    add column totp_nonce bytea,
    add column totp_ciphertext bytea,
    add column totp_enabled_at timestamptz,
    add column totp_last_step bigint;

-- One member per mobile number (codes and invitations go to it).
create unique index staff_mobile_key on staff (mobile) where mobile is not null;

-- A token is a one-time sign-in link (`sign_in`, issued by the operator's tools) or an
-- invitation to set a password (`invitation`, `/staff/welcome/<token>`).
alter table staff_sign_in_tokens
    add column purpose text not null default 'sign_in'
        check (purpose in ('sign_in', 'invitation'));

alter table staff_sessions
    add column last_seen_at timestamptz not null default now(),
    add column absolute_expires_at timestamptz not null default now() + interval '12 hours',
    add column user_agent text check (length(user_agent) <= 300),
    add column address text check (length(address) <= 100);
create index staff_sessions_staff_idx on staff_sessions (staff_id);

-- The second step of a sign-in or a password reset: a six-digit code sent by SMS. The browser
-- holds the challenge's token in a cookie; only hashes are stored.
create table staff_challenges (
    token_hash bytea primary key,
    staff_id bigint not null references staff (id) on delete cascade,
    purpose text not null check (purpose in ('sign_in', 'reset')),
    -- `sms`: the code was sent by SMS; `totp`: the member's app shows it.
    method text not null default 'sms' check (method in ('sms', 'totp')),
    code_hash bytea not null,
    attempts integer not null default 0,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null,
    used_at timestamptz
);
create index staff_challenges_staff_idx on staff_challenges (staff_id, created_at);

-- A welcome may be sent again (a new invitation): one message per job run, not per member.
alter table notifications
    drop constraint notifications_kind_staff_key,
    add constraint notifications_kind_staff_job_key unique (kind, staff_id, job_id);

-- The activity log: who did what and when. Append-only: rows are never changed or removed.
alter table audit_log
    add column staff_id bigint, -- no foreign key: the log outlives what it names
    add column address text check (length(address) <= 100);
create index audit_log_action_idx on audit_log (action, at);

create function audit_log_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'the activity log is append-only';
end
$$;
create trigger audit_log_append_only
    before update or delete on audit_log
    for each row execute function audit_log_append_only();
