//! CSV cells for the exports people open in spreadsheet programs (reports, activity log).

/// One CSV field: quoted when it holds a separator, quote or line break, and text a spreadsheet
/// would run as a formula (starting with `=`, `+`, `-`, `@`, tab or carriage return) made plain
/// text with a leading apostrophe (OWASP's CSV injection advice).
pub(crate) fn field(s: &str) -> String {
    let neutral = if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_owned()
    };
    if neutral.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", neutral.replace('"', "\"\""))
    } else {
        neutral
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_quoted_when_needed_and_never_run_as_formulas() {
        assert_eq!(field("ساده"), "ساده");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(
            field("=HYPERLINK(\"http://x\",\"y\")"),
            "\"'=HYPERLINK(\"\"http://x\"\",\"\"y\"\")\""
        );
        assert_eq!(field("+1"), "'+1");
        assert_eq!(field("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(field("\t=1"), "'\t=1");
    }
}
