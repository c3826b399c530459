-- Every change to the policies wakes the other instances, which reload them (LISTEN/NOTIFY).
create function platform.casbin_rule_notify() returns trigger
language plpgsql as $$
begin
    perform pg_notify('desk_policy_changed', '');
    return null;
end $$;

create trigger casbin_rule_changed
    after insert or update or delete or truncate on platform.casbin_rule
    for each statement execute function platform.casbin_rule_notify();
