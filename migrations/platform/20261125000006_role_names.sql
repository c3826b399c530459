-- Tenant role names are spliced into `set local role`: the registry only holds well-formed ones.
alter table platform.tenants
    add constraint tenants_db_role_check check (db_role ~ '^desk_[a-z0-9]{8}_t_[a-z0-9_]{1,40}$');
