//! Theme rendering with minijinja. Templates are `*.html.j2`, so HTML is auto-escaped.
//!
//! `themes/base/templates` holds every template. Another theme (`themes/<name>/templates`)
//! holds only the templates it changes; a name it lacks comes from `base`. A page renders with
//! the theme its view names (`tenant.theme`, from the municipality's registry row), else base.

use minijinja::Environment;
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The template environments, one per theme, and the sandboxed environments of
/// municipalities that override pages (cached per published version).
#[derive(Debug)]
pub struct Themes {
    base: Environment<'static>,
    others: HashMap<String, Environment<'static>>,
    base_dir: PathBuf,
    dirs: HashMap<String, PathBuf>,
    overridden: Mutex<HashMap<uuid::Uuid, (i64, Arc<Environment<'static>>)>>,
}

/// The name of the theme every other theme falls back to.
const BASE: &str = "base";

impl Themes {
    /// Loads `<dir>/base/templates` and every other `<dir>/<theme>/templates`; with
    /// `auto_reload` each lookup checks the file (development), otherwise templates are cached
    /// once loaded.
    pub fn new(dir: &Path, auto_reload: bool) -> anyhow::Result<Self> {
        let base_dir = dir.join(BASE).join("templates");
        if !base_dir.join("layout.html.j2").is_file() {
            anyhow::bail!(
                "theme directory {} has no base/templates/layout.html.j2 (set `web.themes_dir`)",
                dir.display()
            );
        }
        let mut base = Environment::new();
        base.set_loader(minijinja::path_loader(&base_dir));
        base.set_auto_reload(auto_reload);
        let mut others = HashMap::new();
        let mut dirs = HashMap::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let templates = entry.path().join("templates");
            if name == BASE || !templates.is_dir() {
                continue;
            }
            let mut env = Environment::new();
            env.set_loader(layered_loader(templates.clone(), base_dir.clone()));
            env.set_auto_reload(auto_reload);
            others.insert(name.clone(), env);
            dirs.insert(name, templates);
        }
        Ok(Self {
            base,
            others,
            base_dir,
            dirs,
            overridden: Mutex::default(),
        })
    }

    /// A sandboxed environment for `theme` in which the templates of `sources` replace the
    /// theme's: loads nothing but the theme's own templates besides them, spends at most
    /// `desk_core::overrides::FUEL` per render, escapes HTML as every page does.
    pub fn sandbox(&self, theme: &str, sources: HashMap<String, String>) -> Environment<'static> {
        let own = self.dirs.get(theme).cloned();
        let base = minijinja::path_loader(self.base_dir.clone());
        let own = own.map(minijinja::path_loader);
        let mut env = Environment::new();
        env.set_loader(move |name| {
            if let Some(source) = sources.get(name) {
                return Ok(Some(minijinja::TemplateSource::new(source.clone())));
            }
            if let Some(own) = &own
                && let Some(found) = own(name)?
            {
                return Ok(Some(found));
            }
            base(name)
        });
        env.set_fuel(Some(desk_core::overrides::FUEL));
        env.set_recursion_limit(64);
        env
    }

    /// The source of `name` in `theme` (the theme's own file, else base's), for the editor.
    pub fn source(&self, theme: &str, name: &str) -> Option<String> {
        let own = self.dirs.get(theme).map(|d| d.join(name));
        [own, Some(self.base_dir.join(name))]
            .into_iter()
            .flatten()
            .find_map(|path| std::fs::read_to_string(path).ok())
    }

    /// The cached sandbox of a municipality's published overrides at `version`, if built.
    pub fn cached(&self, tenant: uuid::Uuid, version: i64) -> Option<Arc<Environment<'static>>> {
        let cache = self.overridden.lock().ok()?;
        cache
            .get(&tenant)
            .filter(|(v, _)| *v == version)
            .map(|(_, env)| env.clone())
    }

    /// Keeps a municipality's sandbox for `version` (replacing older ones).
    pub fn remember(&self, tenant: uuid::Uuid, version: i64, env: Arc<Environment<'static>>) {
        if let Ok(mut cache) = self.overridden.lock() {
            cache.insert(tenant, (version, env));
        }
    }

    /// Renders with a given environment (a sandbox), like [`Themes::render`].
    pub fn render_in(
        env: &Environment<'static>,
        name: &str,
        ctx: impl Serialize,
    ) -> Result<String, minijinja::Error> {
        env.get_template(name)?
            .render(minijinja::value::Serde(&ctx))
    }

    /// The shipped themes found (base first).
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.others.keys().map(String::as_str).collect();
        names.sort_unstable();
        names.insert(0, BASE);
        names
    }

    /// Renders one template with a view model, in the theme the view names as
    /// `tenant.theme` (base when it names none or an unknown one).
    pub fn render(&self, name: &str, ctx: impl Serialize) -> Result<String, minijinja::Error> {
        let ctx = serde_json::to_value(&ctx).map_err(|e| {
            minijinja::Error::new(minijinja::ErrorKind::BadSerialization, "view model")
                .with_source(e)
        })?;
        let env = ctx["tenant"]["theme"]
            .as_str()
            .and_then(|t| self.others.get(t))
            .unwrap_or(&self.base);
        env.get_template(name)?
            .render(minijinja::value::Serde(&ctx))
    }
}

/// Looks a template up in `own` first, then in `base` (names with path separators or `..` are
/// refused by minijinja's path rules, as with `path_loader`).
fn layered_loader(
    own: PathBuf,
    base: PathBuf,
) -> impl Fn(&str) -> Result<Option<minijinja::TemplateSource>, minijinja::Error> + Send + Sync + 'static
{
    let own = minijinja::path_loader(own);
    let base = minijinja::path_loader(base);
    move |name| match own(name)? {
        Some(source) => Ok(Some(source)),
        None => base(name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn themes() -> Themes {
        Themes::new(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("../../themes"),
            false,
        )
        .unwrap()
    }

    #[test]
    fn each_theme_falls_back_to_base_and_styles_its_own_way() {
        let themes = themes();
        assert_eq!(themes.names(), ["base", "firouzeh", "sepid"]);
        let page = |theme: &str| {
            themes
                .render(
                    "charter.html.j2",
                    json!({ "tenant": { "name": "شهرداری آزمایشی", "province": "اصفهان", "slug": "t",
                                        "theme": theme, "brand": "#123456", "logo": false } }),
                )
                .unwrap()
        };
        let (base, firouzeh, sepid) = (page("base"), page("firouzeh"), page("sepid"));
        // The same page (from base) in three looks, each with the municipality's brand colour.
        for html in [&base, &firouzeh, &sepid] {
            assert!(html.contains("--brand: #123456") && html.contains("شهرداری آزمایشی"));
        }
        assert!(
            firouzeh.contains("repeating-linear-gradient")
                && !base.contains("repeating-linear-gradient")
        );
        assert!(
            sepid.contains("border-bottom: .5rem solid var(--brand)")
                && !firouzeh.contains("border-bottom: .5rem")
        );
        // An unknown theme name renders base.
        assert_eq!(page("../../etc"), base);
    }
}
