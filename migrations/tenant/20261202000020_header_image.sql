-- The header image is a theme asset beside the logo.
alter table theme_assets drop constraint theme_assets_name_check;
alter table theme_assets add constraint theme_assets_name_check check (name in ('logo', 'header'));
