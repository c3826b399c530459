-- A municipality's design in the registry, so every page of its site (resolved with the
-- tenant) draws it without another query: the theme, the brand colour (white text on it
-- passes WCAG AA; checked by the application) and whether it uploaded a logo.
alter table platform.tenants
    add column theme text not null default 'base' check (theme in ('base', 'firouzeh', 'sepid')),
    add column brand text check (brand ~ '^#[0-9a-f]{6}$'),
    add column has_logo boolean not null default false;
