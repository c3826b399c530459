//! A municipality's design: which theme its site uses and its design tokens (brand colour,
//! logo), with the WCAG contrast check the brand colour must pass (white text on it, as the
//! header and buttons draw it).

use crate::error::FieldErrors;

/// The themes shipped in `themes/` (each overrides `base` where it differs).
pub const THEMES: &[(&str, &str)] = &[
    ("base", "پایه (سبز)"),
    ("firouzeh", "فیروزه (کاشی‌کاری، سربرگ میانه)"),
    ("sepid", "سپید (ساده، پرکنتراست)"),
];

/// The brand colour a site uses when the municipality chose none.
pub const DEFAULT_BRAND: &str = "#0a6e5c";

/// WCAG 2 AA for normal text.
pub const MIN_CONTRAST: f64 = 4.5;

/// `#rrggbb` as red, green and blue.
pub fn parse_hex(colour: &str) -> Option<(u8, u8, u8)> {
    let hex = colour.strip_prefix('#')?;
    if hex.len() != 6 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let at = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16).ok();
    Some((at(0)?, at(2)?, at(4)?))
}

fn relative_luminance((r, g, b): (u8, u8, u8)) -> f64 {
    let channel = |c: u8| {
        let c = f64::from(c) / 255.0;
        if c <= 0.039_28 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
}

/// The WCAG contrast ratio of two colours (1 to 21).
pub fn contrast_ratio(a: (u8, u8, u8), b: (u8, u8, u8)) -> f64 {
    let (la, lb) = (relative_luminance(a), relative_luminance(b));
    let (hi, lo) = if la > lb { (la, lb) } else { (lb, la) };
    (hi + 0.05) / (lo + 0.05)
}

/// A brand colour as stored (`#rrggbb`, lower case) if it is one and white text on it is
/// readable; otherwise a Persian field error that says the ratio.
pub fn check_brand(input: &str) -> Result<String, FieldErrors> {
    let colour = input.trim().to_lowercase();
    let Some(rgb) = parse_hex(&colour) else {
        return Err(FieldErrors::single(
            "brand",
            "color",
            "رنگ را به شکل ‎#0a6e5c‎ وارد کنید.",
        ));
    };
    let ratio = contrast_ratio(rgb, (255, 255, 255));
    if ratio < MIN_CONTRAST {
        return Err(FieldErrors::single(
            "brand",
            "contrast",
            format!(
                "متن سفید روی این رنگ خوانا نیست (نسبت کنتراست {}؛ دست‌کم ۴٫۵ لازم است). رنگ تیره‌تری برگزینید.",
                crate::text::persian_digits(&format!("{ratio:.2}"))
            ),
        ));
    }
    Ok(colour)
}

/// Whether `name` is a shipped theme.
pub fn is_theme(name: &str) -> bool {
    THEMES.iter().any(|(t, _)| *t == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contrast_follows_wcag() {
        // Black on white is 21:1, white on white 1:1; #767676 on white is the classic 4.54:1.
        assert!((contrast_ratio((0, 0, 0), (255, 255, 255)) - 21.0).abs() < 1e-9);
        assert!((contrast_ratio((255, 255, 255), (255, 255, 255)) - 1.0).abs() < 1e-9);
        let grey = contrast_ratio((0x76, 0x76, 0x76), (255, 255, 255));
        assert!((grey - 4.54).abs() < 0.01, "{grey}");
    }

    #[test]
    fn brand_colours_must_carry_white_text() {
        assert_eq!(check_brand(" #0A6E5C ").unwrap(), "#0a6e5c");
        assert!(check_brand(DEFAULT_BRAND).is_ok());
        for bad in ["#ffff00", "#7fdbff", "#ffffff", "#777777"] {
            let e = check_brand(bad).unwrap_err();
            assert_eq!(e.0[0].code, "contrast", "{bad}");
        }
        for malformed in ["0a6e5c", "#0a6e5", "#0a6e5g", "red", ""] {
            assert_eq!(check_brand(malformed).unwrap_err().0[0].code, "color");
        }
        assert!(is_theme("firouzeh") && !is_theme("../base"));
    }
}
