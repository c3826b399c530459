-- Which published version of its template overrides a municipality's site renders with
-- (0: none). Publishing bumps it, so renderers cache compiled overrides per version.
alter table platform.tenants
    add column overrides_version bigint not null default 0;
