//! What a municipality's template overrides render is made safe here before it reaches a page:
//! HTML through an allowlist sanitiser (`ammonia`: the elements and attributes pages use, no
//! scripts, no event handlers, no `style`, no `javascript:` or other foreign URL schemes),
//! titles to text, CSS to text without any tag. The override editor's source checks stay as
//! friendly early errors; this is the guarantee.

use std::sync::LazyLock;

static PAGE: LazyLock<ammonia::Builder<'static>> = LazyLock::new(|| {
    let mut b = ammonia::Builder::default();
    b.add_tags([
        "section",
        "article",
        "nav",
        "header",
        "footer",
        "main",
        "aside",
        "details",
        "summary",
        "figure",
        "figcaption",
        "form",
        "label",
        "input",
        "button",
        "select",
        "option",
        "textarea",
        "bdi",
        "time",
        "mark",
    ])
    .add_generic_attributes(["class", "id", "dir", "role", "title", "lang"])
    .add_generic_attribute_prefixes(["aria-", "data-"])
    .add_tag_attributes("form", ["action", "method"])
    .add_tag_attributes(
        "input",
        [
            "name",
            "type",
            "value",
            "placeholder",
            "autocomplete",
            "inputmode",
            "maxlength",
            "required",
        ],
    )
    .add_tag_attributes("label", ["for"])
    .add_tag_attributes("button", ["type", "name", "value"])
    .add_tag_attributes("select", ["name", "required"])
    .add_tag_attributes("option", ["value", "selected"])
    .add_tag_attributes("textarea", ["name", "rows", "maxlength"])
    .add_tag_attributes("th", ["scope"])
    .add_tag_attributes("time", ["datetime"])
    .url_schemes(["http", "https", "mailto", "tel"].into_iter().collect());
    b
});

/// HTML an override rendered, with only what pages use kept.
pub(crate) fn page_html(html: &str) -> String {
    PAGE.clean(html).to_string()
}

/// The text of `html` (tags dropped), still escaped for HTML.
pub(crate) fn text_only(html: &str) -> String {
    ammonia::Builder::empty().clean(html).to_string()
}

/// The CSS of a rendered `_theme.html.j2`: every tag (its `<style>` wrapper, or anything else)
/// removed, and no `<` left, so it cannot close the `<style>` the layout puts it in.
pub(crate) fn css_only(rendered: &str) -> String {
    let mut out = String::with_capacity(rendered.len());
    let mut in_tag = false;
    for c in rendered.chars() {
        match (in_tag, c) {
            (false, '<') => in_tag = true,
            (true, '>') => in_tag = false,
            (false, c) => out.push(c),
            (true, _) => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bypasses the source checks missed (issue #19), as they render: none survives.
    #[test]
    fn rendered_attacks_are_removed() {
        for attack in [
            "<script>alert(1)</script>",
            "<scr<script>ipt>alert(1)</script>",
            "<img src=x onerror=alert(1)>",
            "<img src=x\x0Conerror=alert(1)>",
            "<a href=\"javascript:alert(1)\">x</a>",
            "<a href=\"JaVaScRiPt:alert(1)\">x</a>",
            "<a href=\"java\tscript:alert(1)\">x</a>",
            "<iframe src=\"https://evil.example\"></iframe>",
            "<svg><script>alert(1)</script></svg>",
            "<form action=\"javascript:alert(1)\"><button>x</button></form>",
            "<p style=\"background:url(https://evil.example/x)\">x</p>",
            "<meta http-equiv=\"refresh\" content=\"0;url=https://evil.example\">",
            "<base href=\"https://evil.example/\">",
            "<object data=\"x\"></object><embed src=\"x\">",
            "<math><mi xlink:href=\"javascript:alert(1)\">x</mi></math>",
            "<input autofocus onfocus=alert(1)>",
        ] {
            let clean = page_html(attack).to_lowercase();
            for bad in [
                "<script",
                "onerror",
                "onfocus",
                "javascript:",
                "<iframe",
                "style=",
                "<meta",
                "<base",
                "<object",
                "<embed",
                "xlink",
            ] {
                assert!(!clean.contains(bad), "{attack:?} kept {bad:?}: {clean}");
            }
        }
    }

    #[test]
    fn what_pages_use_is_kept() {
        let page = "<section class=\"card\"><h1>خدمات</h1><form method=\"get\" action=\"/services\" role=\"search\"><label for=\"q\">جستجو</label><input id=\"q\" name=\"q\" placeholder=\"مثلاً\"><button type=\"submit\">جستجو</button></form><ul class=\"categories\"><li><a href=\"/services?category=x\">x</a></li></ul><details><summary>پرسش</summary><p>پاسخ</p></details><table><tr><th scope=\"col\">a</th></tr></table></section>";
        let clean = page_html(page);
        for kept in [
            "class=\"card\"",
            "<form",
            "action=\"/services\"",
            "<input",
            "name=\"q\"",
            "<label for=\"q\"",
            "<details>",
            "<summary>",
            "scope=\"col\"",
            "href=\"/services?category=x\"",
        ] {
            assert!(clean.contains(kept), "{kept} dropped: {clean}");
        }
    }

    #[test]
    fn css_cannot_leave_its_style_element() {
        let css = css_only(
            "<style>body { color: red; } ul > li { x: y }</style><script>alert(1)</script></style><img src=x onerror=alert(1)>",
        );
        assert!(!css.contains('<'), "{css}");
        assert!(css.contains("ul > li"), "{css}");
        assert!(!css.contains("script"), "{css}");
        assert_eq!(text_only("<b>عنوان</b> & <i>x</i>"), "عنوان &amp; x");
    }
}
