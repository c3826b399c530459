-- Delivery reports are polled in batches per municipality: each sent message says when its
-- next poll is due and how many it has had; one job per short window polls all that are due.
alter table notifications
    add column next_poll_at timestamptz,
    add column polls smallint not null default 0;

create index notifications_next_poll_idx on notifications (next_poll_at)
    where next_poll_at is not null;
