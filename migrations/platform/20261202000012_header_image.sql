-- Whether a municipality uploaded a header image (a design token beside the logo).
alter table platform.tenants
    add column has_header boolean not null default false;
