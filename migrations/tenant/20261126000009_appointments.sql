-- Appointments at the in-person desk: desk hours per weekday (for one service or all), and
-- bookings. A slot's capacity is enforced by the booking transaction (serialized per slot);
-- one person holds at most one live booking per slot.
create table desk_hours (
    id bigint generated always as identity primary key,
    -- ISO weekday, 1 = Monday ... 7 = Sunday.
    weekday smallint not null check (weekday between 1 and 7),
    opens time not null,
    closes time not null,
    slot_minutes integer not null check (slot_minutes between 5 and 240),
    capacity integer not null check (capacity between 1 and 100),
    constraint desk_hours_order check (closes > opens)
);

create table appointments (
    id bigint generated always as identity primary key,
    service_code text not null,
    day date not null,
    starts time not null,
    citizen_id bigint references citizens (id) on delete set null,
    mobile text not null check (mobile ~ '^\+98[0-9]{10}$'),
    status text not null default 'booked' check (status in ('booked', 'cancelled', 'arrived')),
    created_at timestamptz not null default now(),
    changed_at timestamptz not null default now()
);
create index appointments_slot_idx on appointments (day, starts) where status <> 'cancelled';
create unique index appointments_one_per_person_idx on appointments (mobile, day, starts)
    where status <> 'cancelled';

alter table notifications drop constraint notifications_kind_check;
alter table notifications
    add constraint notifications_kind_check
        check (kind in ('staff_welcome', 'sign_in_code', 'request_event', 'appointment'));
