-- Make the platform audit log append-only and hash-chained: each row's hash covers its content
-- and the previous row's hash, so changing or deleting a row breaks the chain from there on.

alter table platform.audit_log
    add column source text not null default '',
    add column prev_hash bytea,
    add column hash bytea;

-- The exact text a row's hash covers (timestamps as epoch microseconds: independent of TimeZone).
create function platform.audit_content(a platform.audit_log) returns text
language sql immutable as $$
    select concat_ws('|', a.id, (extract(epoch from a.at) * 1000000)::bigint, a.actor, a.action,
                     coalesce(a.tenant_id::text, ''), a.source, a.detail::text)
$$;

-- Appends one row, chaining it to the newest one. Serialized by an advisory lock so two
-- concurrent appends cannot both chain to the same predecessor.
create function platform.audit_append(p_actor text, p_action text, p_tenant uuid, p_source text, p_detail jsonb)
returns bigint
language plpgsql as $$
declare
    v_prev bytea;
    v_row platform.audit_log;
begin
    perform pg_advisory_xact_lock(hashtext('platform.audit_log'));
    select hash into v_prev from platform.audit_log order by id desc limit 1;
    insert into platform.audit_log (actor, action, tenant_id, source, detail, prev_hash)
    values (p_actor, p_action, p_tenant, coalesce(p_source, ''), coalesce(p_detail, '{}'), v_prev)
    returning * into v_row;
    update platform.audit_log
       set hash = sha256(coalesce(v_prev, ''::bytea) || convert_to(platform.audit_content(v_row), 'UTF8'))
     where id = v_row.id;
    return v_row.id;
end $$;

-- Rows already present join the chain in id order.
do $$
declare
    r platform.audit_log;
    v_prev bytea;
begin
    for r in select * from platform.audit_log order by id loop
        update platform.audit_log
           set prev_hash = v_prev,
               hash = sha256(coalesce(v_prev, ''::bytea) || convert_to(platform.audit_content(r), 'UTF8'))
         where id = r.id
        returning hash into v_prev;
    end loop;
end $$;

-- Append-only: updates (other than the one that seals a new row) and deletes are refused.
create function platform.audit_guard() returns trigger
language plpgsql as $$
begin
    if tg_op = 'UPDATE' and old.hash is null and new.hash is not null
       and platform.audit_content(old) = platform.audit_content(new) then
        return new;
    end if;
    raise exception 'platform.audit_log is append-only' using errcode = '42501';
end $$;

create trigger audit_log_append_only
    before update or delete on platform.audit_log
    for each row execute function platform.audit_guard();
