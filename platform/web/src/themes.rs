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
    overridden: Mutex<HashMap<uuid::Uuid, (i64, Arc<Sandbox>)>>,
}

/// A municipality's template overrides, ready to render: the sandboxed environment and the
/// names it overrides.
#[derive(Debug)]
pub struct Sandbox {
    env: Environment<'static>,
    names: std::collections::HashSet<String>,
}

/// The overridable template of a theme's own CSS.
const THEME_CSS: &str = "_theme.html.j2";

/// The theme's page that places an overridden page's sanitised blocks.
const OVERRIDE_PAGE: &str = "_override_page.html.j2";

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
        base.add_function("csp_nonce", desk_http::csp::nonce);
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
            env.add_function("csp_nonce", desk_http::csp::nonce);
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
    pub fn sandbox(&self, theme: &str, sources: HashMap<String, String>) -> Sandbox {
        let names = sources.keys().cloned().collect();
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
        // Overrides never learn the page's nonce: what they render is sanitised and placed by
        // the theme's own templates.
        env.add_function("csp_nonce", String::new);
        env.set_recursion_limit(64);
        Sandbox { env, names }
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
    pub fn cached(&self, tenant: uuid::Uuid, version: i64) -> Option<Arc<Sandbox>> {
        let cache = self.overridden.lock().ok()?;
        cache
            .get(&tenant)
            .filter(|(v, _)| *v == version)
            .map(|(_, env)| env.clone())
    }

    /// Keeps a municipality's sandbox for `version` (replacing older ones).
    pub fn remember(&self, tenant: uuid::Uuid, version: i64, env: Arc<Sandbox>) {
        if let Ok(mut cache) = self.overridden.lock() {
            cache.insert(tenant, (version, env));
        }
    }

    /// Renders page `name` of a municipality with overrides. What an override renders never
    /// reaches the page as it is: an overridden page contributes its `title` (text only) and
    /// `content` blocks, run through an allowlist HTML sanitiser and placed by the theme's
    /// own `_override_page.html.j2`; an overridden `_theme.html.j2` contributes CSS with every
    /// tag removed, placed in the layout's own nonce'd `<style>`. The rest of the page (the
    /// layout, its head, its scripts and styles) is the theme's.
    pub fn render_overridden(
        &self,
        sandbox: &Sandbox,
        name: &str,
        view: &serde_json::Value,
    ) -> Result<String, minijinja::Error> {
        let mut ctx = view.clone();
        if sandbox.names.contains(THEME_CSS) {
            let css = sandbox
                .env
                .get_template(THEME_CSS)?
                .render(minijinja::value::Serde(&ctx))?;
            ctx["theme_css"] = serde_json::Value::String(crate::sanitize::css_only(&css));
        }
        if !sandbox.names.contains(name) {
            return self.render(name, ctx);
        }
        let mut captured = sandbox
            .env
            .get_template(name)?
            .render_captured(minijinja::value::Serde(&ctx))?;
        let content = captured.with_state_mut(|s| s.render_block("content"))?;
        let title = captured
            .with_state_mut(|s| s.render_block("title"))
            .unwrap_or_default();
        ctx["override"] = serde_json::json!({
            "content": crate::sanitize::page_html(&content),
            "title": crate::sanitize::text_only(&title),
        });
        self.render(OVERRIDE_PAGE, ctx)
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
