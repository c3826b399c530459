//! Theme rendering with minijinja. Templates are `*.html.j2`, so HTML is auto-escaped.

use minijinja::Environment;
use serde::Serialize;
use std::path::Path;

/// The template environment of the base theme.
#[derive(Debug)]
pub struct Themes {
    env: Environment<'static>,
}

impl Themes {
    /// Loads templates from `<dir>/base/templates`; with `auto_reload` each lookup checks the file
    /// (development), otherwise templates are cached once loaded.
    pub fn new(dir: &Path, auto_reload: bool) -> anyhow::Result<Self> {
        let templates = dir.join("base").join("templates");
        if !templates.join("layout.html.j2").is_file() {
            anyhow::bail!(
                "theme directory {} has no base/templates/layout.html.j2 (set `web.themes_dir`)",
                dir.display()
            );
        }
        let mut env = Environment::new();
        env.set_loader(minijinja::path_loader(templates));
        env.set_auto_reload(auto_reload);
        Ok(Self { env })
    }

    /// Renders one template with a view model.
    pub fn render(&self, name: &str, ctx: impl Serialize) -> Result<String, minijinja::Error> {
        self.env
            .get_template(name)?
            .render(minijinja::value::Serde(&ctx))
    }
}
