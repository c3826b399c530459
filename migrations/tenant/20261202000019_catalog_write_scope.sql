-- API keys may edit the catalog (`catalog:write`), acting as their role (casbin decides).
alter table api_keys drop constraint api_keys_scopes_check;
alter table api_keys
    add constraint api_keys_scopes_check
        check (scopes <@ array['catalog:read', 'catalog:write', 'requests:submit', 'requests:read',
            'requests:act', 'reports:read']::text[]);
