//! Template overrides: a municipality may replace some pages of its theme with its own
//! minijinja source. What an override may not do is checked here before it is saved (no script,
//! no event handlers, no turning escaping off, bounded size, valid syntax); when it renders it
//! is sandboxed by the renderer (no loader beyond the theme's templates, bounded fuel).

use crate::error::FieldErrors;

/// The pages a municipality may override, with their Persian names.
pub const OVERRIDABLE: &[(&str, &str)] = &[
    ("home.html.j2", "صفحه نخست"),
    ("charter.html.j2", "منشور حقوق شهروندی"),
    ("sla.html.j2", "تعهد زمان پاسخ"),
    ("faq.html.j2", "پرسش‌های متداول"),
    ("_theme.html.j2", "سبک‌های پوسته (CSS)"),
];

/// Longest override source.
pub const MAX_SOURCE_CHARS: usize = 20_000;

/// Instructions a page rendered with overrides may spend (a normal page needs a few thousand).
pub const FUEL: u64 = 200_000;

/// Whether `name` may be overridden.
pub fn is_overridable(name: &str) -> bool {
    OVERRIDABLE.iter().any(|(n, _)| *n == name)
}

/// What the source must not contain, lower-cased, with why (Persian).
const FORBIDDEN: &[(&str, &str)] = &[
    ("<script", "اسکریپت"),
    ("javascript:", "پیوند اسکریپتی"),
    ("vbscript:", "پیوند اسکریپتی"),
    ("data:text/html", "پیوند داده HTML"),
    ("<iframe", "قاب"),
    ("<object", "شیء جاسازی‌شده"),
    ("<embed", "شیء جاسازی‌شده"),
    ("<form", "فرم"),
    ("<base", "نشانی پایه"),
    ("<meta", "برچسب meta"),
    ("<link", "برچسب link"),
    ("srcdoc", "srcdoc"),
    ("autoescape", "خاموش کردن escape"),
    ("|safe", "فیلتر safe"),
    ("| safe", "فیلتر safe"),
    ("safe(", "فیلتر safe"),
    ("@import", "@import در CSS"),
    ("expression(", "expression در CSS"),
];

/// Checks an override before it is saved: size, forbidden constructs, event-handler
/// attributes (`on…=`), and that minijinja can parse it.
pub fn check_source(name: &str, source: &str) -> Result<(), FieldErrors> {
    let refuse = |message: String| Err(FieldErrors::single("source", "template", message));
    if !is_overridable(name) {
        return refuse("این صفحه را نمی‌توان جایگزین کرد.".to_owned());
    }
    if source.chars().count() > MAX_SOURCE_CHARS {
        return refuse("الگو بیش از ۲۰٬۰۰۰ نویسه است.".to_owned());
    }
    let lower = source.to_lowercase();
    if let Some((_, what)) = FORBIDDEN.iter().find(|(needle, _)| lower.contains(needle)) {
        return refuse(format!("الگو نباید {what} داشته باشد."));
    }
    if has_event_handler(&lower) {
        return refuse("الگو نباید ویژگی رویداد (مانند onclick) داشته باشد.".to_owned());
    }
    let mut env = minijinja::Environment::new();
    if let Err(e) = env.add_template_owned(name.to_owned(), source.to_owned()) {
        let line = e
            .line()
            .map(|l| crate::text::persian_digits(&l.to_string()));
        return refuse(match line {
            Some(l) => format!("الگو در سطر {l} خطای نگارشی دارد: {}", e.kind()),
            None => format!("الگو خطای نگارشی دارد: {}", e.kind()),
        });
    }
    Ok(())
}

/// Whether some `on<letters>` follows a space, quote or slash and is followed by `=` (an HTML
/// event-handler attribute such as ` onclick =`).
fn has_event_handler(lower: &str) -> bool {
    let bytes = lower.as_bytes();
    let mut i = 0;
    while let Some(at) = lower[i..].find("on") {
        let start = i + at;
        let before_ok = start == 0
            || matches!(
                bytes[start - 1],
                b' ' | b'\t' | b'\n' | b'\r' | b'"' | b'\'' | b'/'
            );
        let mut j = start + 2;
        while j < bytes.len() && bytes[j].is_ascii_alphabetic() {
            j += 1;
        }
        let letters = j > start + 2;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            j += 1;
        }
        if before_ok && letters && j < bytes.len() && bytes[j] == b'=' {
            return true;
        }
        i = start + 2;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_overrides_pass_and_script_does_not() {
        let ok = r#"{% extends "layout.html.j2" %}{% block content %}<h1 class="hero">{{ tenant.name }}</h1><p>خوش آمدید</p>{% endblock %}"#;
        assert!(check_source("home.html.j2", ok).is_ok());
        for bad in [
            "<script>alert(1)</script>",
            "<SCRIPT src=x></SCRIPT>",
            r#"<a href="JavaScript:alert(1)">x</a>"#,
            r#"<img src=x onerror=alert(1)>"#,
            r#"<body onload = "x()">"#,
            r#"<svg/onload=alert(1)>"#,
            "{{ tenant.name | safe }}",
            "{{ tenant.name|safe }}",
            "{% autoescape false %}{{ x }}{% endautoescape %}",
            r#"<iframe src="https://evil.example"></iframe>"#,
            r#"<form action="https://evil.example"><input name=p></form>"#,
            "<style>@import url(https://evil.example/x.css);</style>",
            "{% for x in %}",
        ] {
            assert!(check_source("home.html.j2", bad).is_err(), "{bad}");
        }
        // Words that merely contain "on" are fine.
        assert!(
            check_source(
                "charter.html.j2",
                "<p class=\"content\">online, button, done = 1</p>"
            )
            .is_ok()
        );
        assert!(
            check_source("staff_settings.html.j2", ok).is_err(),
            "not overridable"
        );
        assert!(check_source("home.html.j2", &"x".repeat(MAX_SOURCE_CHARS + 1)).is_err());
    }
}
