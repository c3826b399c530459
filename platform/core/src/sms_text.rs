//! SMS segment counting and cost estimation for SMS templates.
//!
//! Follows GSM 03.38 / 3GPP TS 23.038:
//!
//! - A text whose every character is in the GSM-7 default alphabet or its extension table is
//!   sent as GSM-7. Basic characters take one septet; extension characters
//!   (`^ { } \ [ ~ ] | €` and form feed) take two (escape + code). One part holds 160 septets;
//!   a multi-part message holds 153 septets per part (the rest is the concatenation header), and
//!   an escape pair is never split across parts.
//! - Any other text is sent as UCS-2: one part holds 70 UTF-16 code units, a multi-part message
//!   67 per part, and a surrogate pair (a character outside the BMP, such as most emoji) is
//!   never split across parts.
//!
//! Persian letters are not in GSM-7, so Persian text is always UCS-2; the zero-width
//! non-joiner (U+200C) is one UCS-2 unit like any other BMP character.

use serde::Serialize;

/// Septets in a single-part GSM-7 message.
const GSM7_SINGLE: usize = 160;
/// Septets per part of a multi-part GSM-7 message.
const GSM7_MULTI: usize = 153;
/// UTF-16 code units in a single-part UCS-2 message.
const UCS2_SINGLE: usize = 70;
/// UTF-16 code units per part of a multi-part UCS-2 message.
const UCS2_MULTI: usize = 67;

/// How a text is encoded on the air.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Encoding {
    /// GSM 03.38 default alphabet with its extension table, 7 bits per septet.
    Gsm7,
    /// UCS-2 (UTF-16 code units), 16 bits per unit.
    Ucs2,
}

/// What a text costs to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segments {
    /// The encoding the whole text is sent in.
    pub encoding: Encoding,
    /// Septets (GSM-7) or UTF-16 code units (UCS-2).
    pub units: usize,
    /// Number of parts (0 for empty text).
    pub parts: usize,
    /// Units still free in the last part (0 for empty text, which has no part).
    pub remaining: usize,
}

/// Whether `c` is in the GSM 03.38 default alphabet (one septet).
fn is_gsm7_basic(c: char) -> bool {
    matches!(
        c,
        '@' | '£' | '$' | '¥' | 'è' | 'é' | 'ù' | 'ì' | 'ò' | 'Ç' | '\n' | 'Ø' | 'ø' | '\r' | 'Å' | 'å'
            | 'Δ' | '_' | 'Φ' | 'Γ' | 'Λ' | 'Ω' | 'Π' | 'Ψ' | 'Σ' | 'Θ' | 'Ξ' | 'Æ' | 'æ' | 'ß' | 'É'
            | ' ' | '!' | '"' | '#' | '¤' | '%' | '&' | '\'' | '(' | ')' | '*' | '+' | ',' | '-' | '.' | '/'
            | '0'..='9' | ':' | ';' | '<' | '=' | '>' | '?'
            | '¡' | 'A'..='Z' | 'Ä' | 'Ö' | 'Ñ' | 'Ü' | '§'
            | '¿' | 'a'..='z' | 'ä' | 'ö' | 'ñ' | 'ü' | 'à'
    )
}

/// Whether `c` is in the GSM 03.38 extension table (escape + code, two septets).
fn is_gsm7_extension(c: char) -> bool {
    matches!(
        c,
        '\u{000C}' | '^' | '{' | '}' | '\\' | '[' | '~' | ']' | '|' | '€'
    )
}

/// Packs units into parts: one part of `single` if everything fits, else parts of `multi`
/// where no unit group (an escape pair or a surrogate pair) is split across parts.
/// Returns `(total units, parts, units free in the last part)`.
fn pack(
    widths: impl Iterator<Item = usize> + Clone,
    single: usize,
    multi: usize,
) -> (usize, usize, usize) {
    let units: usize = widths.clone().sum();
    if units == 0 {
        return (0, 0, 0);
    }
    if units <= single {
        return (units, 1, single - units);
    }
    let mut parts = 1;
    let mut used = 0;
    for w in widths {
        if used + w > multi {
            parts += 1;
            used = 0;
        }
        used += w;
    }
    (units, parts, multi.saturating_sub(used))
}

/// Counts the parts `text` is sent in, choosing GSM-7 when every character allows it and UCS-2
/// otherwise.
pub fn segments(text: &str) -> Segments {
    let gsm7 = text
        .chars()
        .all(|c| is_gsm7_basic(c) || is_gsm7_extension(c));
    let (encoding, (units, parts, remaining)) = if gsm7 {
        let widths = text
            .chars()
            .map(|c| if is_gsm7_extension(c) { 2 } else { 1 });
        (Encoding::Gsm7, pack(widths, GSM7_SINGLE, GSM7_MULTI))
    } else {
        (
            Encoding::Ucs2,
            pack(text.chars().map(char::len_utf16), UCS2_SINGLE, UCS2_MULTI),
        )
    };
    Segments {
        encoding,
        units,
        parts,
        remaining,
    }
}

/// Cost estimate in rials: parts × price per part for the encoding (providers price Persian
/// (UCS-2) and Latin (GSM-7) parts differently). Saturating arithmetic.
pub fn cost_rials(s: &Segments, per_part_gsm7: u64, per_part_ucs2: u64) -> u64 {
    let price = match s.encoding {
        Encoding::Gsm7 => per_part_gsm7,
        Encoding::Ucs2 => per_part_ucs2,
    };
    u64::try_from(s.parts)
        .unwrap_or(u64::MAX)
        .saturating_mul(price)
}

/// Persian one-line summary for the template editor, with Persian digits, e.g.
/// «۲ پیامک (فارسی، ۱۰۵ نویسه؛ ۲۹ نویسه تا پیامک بعدی)»; GSM-7 text says «لاتین» instead of
/// «فارسی». Empty text reads «۰ پیامک (متن خالی)».
pub fn summary_fa(s: &Segments) -> String {
    if s.parts == 0 {
        return crate::text::persian_digits("0 پیامک (متن خالی)");
    }
    let script = match s.encoding {
        Encoding::Gsm7 => "لاتین",
        Encoding::Ucs2 => "فارسی",
    };
    crate::text::persian_digits(&format!(
        "{} پیامک ({script}، {} نویسه؛ {} نویسه تا پیامک بعدی)",
        s.parts, s.units, s.remaining
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(encoding: Encoding, units: usize, parts: usize, remaining: usize) -> Segments {
        Segments {
            encoding,
            units,
            parts,
            remaining,
        }
    }

    #[test]
    fn empty_text_has_no_parts() {
        assert_eq!(segments(""), seg(Encoding::Gsm7, 0, 0, 0));
        assert_eq!(cost_rials(&segments(""), 100, 200), 0);
    }

    #[test]
    fn latin_160_is_one_part_161_is_two() {
        assert_eq!(segments(&"a".repeat(160)), seg(Encoding::Gsm7, 160, 1, 0));
        assert_eq!(segments(&"a".repeat(161)), seg(Encoding::Gsm7, 161, 2, 145));
        assert_eq!(segments(&"a".repeat(306)), seg(Encoding::Gsm7, 306, 2, 0));
        assert_eq!(segments(&"a".repeat(307)), seg(Encoding::Gsm7, 307, 3, 152));
    }

    #[test]
    fn gsm7_basic_characters_are_one_septet() {
        let basic = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./09:;<=>?¡AZÄÖÑÜ§¿azäöñüà";
        let count = basic.chars().count();
        assert_eq!(segments(basic), seg(Encoding::Gsm7, count, 1, 160 - count));
    }

    #[test]
    fn extension_characters_are_two_septets() {
        let s = segments("^{}\\[~]|€\u{000C}");
        assert_eq!(s, seg(Encoding::Gsm7, 20, 1, 140));
        // 80 euro signs fill exactly one part.
        assert_eq!(segments(&"€".repeat(80)), seg(Encoding::Gsm7, 160, 1, 0));
        assert_eq!(
            segments(&"€".repeat(81)),
            seg(Encoding::Gsm7, 162, 2, 153 - 10)
        );
    }

    #[test]
    fn extension_character_at_153_boundary_moves_to_next_part() {
        // 152 septets then `€`: the escape pair would straddle septets 153/154, so it moves.
        let text = format!("{}€{}", "a".repeat(152), "a".repeat(10));
        let s = segments(&text);
        assert_eq!(s.encoding, Encoding::Gsm7);
        assert_eq!(s.units, 164);
        assert_eq!(s.parts, 2);
        // Part 2 holds `€` (2) + 10 = 12 septets.
        assert_eq!(s.remaining, 153 - 12);

        // 151 septets then `€` fills part 1 exactly; the rest starts part 2.
        let s = segments(&format!("{}€{}", "a".repeat(151), "a".repeat(10)));
        assert_eq!(s, seg(Encoding::Gsm7, 163, 2, 153 - 10));

        // A straddle that forces a third part: 152 + € + 152 = 306 septets, which would fit in
        // two parts without the rule.
        let s = segments(&format!("{}€{}", "a".repeat(152), "a".repeat(152)));
        assert_eq!(s.units, 306);
        assert_eq!(s.parts, 3);
        assert_eq!(s.remaining, 153 - 1);
    }

    #[test]
    fn persian_70_is_one_part_71_is_two() {
        assert_eq!(segments(&"س".repeat(70)), seg(Encoding::Ucs2, 70, 1, 0));
        assert_eq!(segments(&"س".repeat(71)), seg(Encoding::Ucs2, 71, 2, 63));
    }

    #[test]
    fn persian_134_is_two_parts_135_is_three() {
        assert_eq!(segments(&"س".repeat(134)), seg(Encoding::Ucs2, 134, 2, 0));
        assert_eq!(segments(&"س".repeat(135)), seg(Encoding::Ucs2, 135, 3, 66));
    }

    #[test]
    fn persian_text_with_digits_and_zwnj_is_ucs2() {
        // «می‌خواهم» has a ZWNJ: 8 characters, 8 units.
        let s = segments("می\u{200C}خواهم ۱۲");
        assert_eq!(s, seg(Encoding::Ucs2, 11, 1, 59));
        assert_eq!(segments("\u{200C}"), seg(Encoding::Ucs2, 1, 1, 69));
    }

    #[test]
    fn one_persian_letter_turns_latin_into_ucs2() {
        let latin = "a".repeat(100);
        assert_eq!(segments(&latin), seg(Encoding::Gsm7, 100, 1, 60));
        let mixed = format!("{latin}ب");
        assert_eq!(segments(&mixed), seg(Encoding::Ucs2, 101, 2, 33));
        // Extension characters cost one unit in UCS-2.
        assert_eq!(segments("€ب"), seg(Encoding::Ucs2, 2, 1, 68));
    }

    #[test]
    fn emoji_is_a_surrogate_pair() {
        assert_eq!(segments("😀"), seg(Encoding::Ucs2, 2, 1, 68));
        assert_eq!(
            segments(&format!("{}😀", "a".repeat(68))),
            seg(Encoding::Ucs2, 70, 1, 0)
        );
        assert_eq!(
            segments(&format!("{}😀", "a".repeat(69))),
            seg(Encoding::Ucs2, 71, 2, 63)
        );
    }

    #[test]
    fn emoji_at_67_boundary_moves_to_next_part() {
        // 66 units then an emoji: the pair would straddle units 67/68, so it moves.
        let s = segments(&format!("{}😀{}", "س".repeat(66), "س".repeat(10)));
        assert_eq!(s.units, 78);
        assert_eq!(s.parts, 2);
        assert_eq!(s.remaining, 67 - 12);

        // 65 units then an emoji fills part 1 exactly.
        let s = segments(&format!("{}😀{}", "س".repeat(65), "س".repeat(10)));
        assert_eq!(s, seg(Encoding::Ucs2, 77, 2, 67 - 10));

        // 66 + emoji + 66 = 134 units, two parts without the rule, three with it.
        let s = segments(&format!("{}😀{}", "س".repeat(66), "س".repeat(66)));
        assert_eq!(s, seg(Encoding::Ucs2, 134, 3, 66));
    }

    #[test]
    fn ascii_lookalikes_outside_gsm7_are_ucs2() {
        assert_eq!(segments("`").encoding, Encoding::Ucs2);
        assert_eq!(segments("ç").encoding, Encoding::Ucs2);
        assert_eq!(segments("\t").encoding, Encoding::Ucs2);
    }

    #[test]
    fn cost_uses_the_price_of_the_encoding() {
        let latin = segments(&"a".repeat(161));
        assert_eq!(cost_rials(&latin, 1_000, 2_500), 2_000);
        let persian = segments(&"س".repeat(135));
        assert_eq!(cost_rials(&persian, 1_000, 2_500), 7_500);
    }

    #[test]
    fn cost_saturates() {
        let s = seg(Encoding::Ucs2, 200, 3, 0);
        assert_eq!(cost_rials(&s, 0, u64::MAX), u64::MAX);
        let s = seg(Encoding::Gsm7, usize::MAX, usize::MAX, 0);
        assert_eq!(cost_rials(&s, 2, 0), u64::MAX);
    }

    #[test]
    fn summary_in_persian() {
        let s = segments(&"س".repeat(105));
        assert_eq!(s, seg(Encoding::Ucs2, 105, 2, 29));
        assert_eq!(
            summary_fa(&s),
            "۲ پیامک (فارسی، ۱۰۵ نویسه؛ ۲۹ نویسه تا پیامک بعدی)"
        );

        let s = segments("Salam");
        assert_eq!(
            summary_fa(&s),
            "۱ پیامک (لاتین، ۵ نویسه؛ ۱۵۵ نویسه تا پیامک بعدی)"
        );

        assert_eq!(summary_fa(&segments("")), "۰ پیامک (متن خالی)");
    }
}
