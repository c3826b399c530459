-- A municipality's own versions of some theme pages (desk_core::overrides::OVERRIDABLE): a
-- draft the admin previews, and the published source its site renders (sandboxed).
create table template_overrides (
    name text primary key check (name in ('home.html.j2', 'charter.html.j2', 'sla.html.j2',
        'faq.html.j2', '_theme.html.j2')),
    draft text check (length(draft) <= 20000),
    published text check (length(published) <= 20000),
    updated_at timestamptz not null default now(),
    published_at timestamptz
);
