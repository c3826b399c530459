//! Persian text helpers.

/// Whether `s` is written in Persian: it has Arabic-script letters and no Latin letters.
pub fn is_persian_text(s: &str) -> bool {
    let arabic_script = |c: char| matches!(c, '\u{0600}'..='\u{06FF}' | '\u{FB50}'..='\u{FDFF}' | '\u{FE70}'..='\u{FEFF}');
    s.chars().any(arabic_script) && !s.chars().any(|c| c.is_ascii_alphabetic())
}

/// Text folded for search, applied to both the index and the query: Arabic yeh and kaf become
/// Persian (ي/ى → ی, ك → ک), Persian and Arabic digits become ASCII, ZWNJ and tatweel become
/// spaces or vanish, diacritics are dropped, Latin letters are lowercased and runs of spaces
/// collapse.
pub fn normalize_for_search(s: &str) -> String {
    let mapped: String = crate::mobile::ascii_digits(s)
        .chars()
        .filter_map(|c| match c {
            'ي' | 'ى' | 'ئ' => Some('ی'),
            'ك' => Some('ک'),
            'ة' => Some('ه'),
            'أ' | 'إ' | 'ٱ' => Some('ا'),
            'ؤ' => Some('و'),
            '\u{200c}' | '\u{200d}' | '\u{00a0}' => Some(' '),
            'ـ' | '\u{064B}'..='\u{065F}' | '\u{0670}' => None,
            c => Some(c.to_ascii_lowercase()),
        })
        .collect();
    mapped.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// ASCII digits shown as Persian digits (۰-۹); other characters pass through.
pub fn persian_digits(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '0'..='9' => char::from_u32('۰' as u32 + (c as u32 - '0' as u32)).unwrap_or(c),
            _ => c,
        })
        .collect()
}

/// Suggests a slug from a name: English words, else a transliteration of Persian letters.
/// Words like "municipality" and «شهرداری» are dropped. The caller still validates the result.
pub fn suggest_slug(name_en: &str, name_fa: &str) -> Option<String> {
    const STOP: &[&str] = &["municipality", "of", "the", "city", "shahrdari"];
    let from_words = |words: Vec<String>| -> Option<String> {
        let slug = words
            .into_iter()
            .filter(|w| !w.is_empty() && !STOP.contains(&w.as_str()))
            .collect::<Vec<_>>()
            .join("-");
        let slug: String = slug.chars().take(40).collect();
        let slug = slug.trim_end_matches('-').to_owned();
        (slug.len() >= 2 && slug.starts_with(|c: char| c.is_ascii_lowercase())).then_some(slug)
    };
    let english: Vec<String> = name_en
        .split(|c: char| !c.is_ascii_alphanumeric())
        .map(str::to_ascii_lowercase)
        .collect();
    from_words(english).or_else(|| {
        let words = name_fa
            .split_whitespace()
            .filter(|w| *w != "شهرداری")
            .map(|w| w.chars().filter_map(latin_of).collect::<String>())
            .collect();
        from_words(words)
    })
}

fn latin_of(c: char) -> Option<&'static str> {
    Some(match c {
        'آ' | 'ا' => "a",
        'ب' => "b",
        'پ' => "p",
        'ت' | 'ط' => "t",
        'ث' | 'س' | 'ص' => "s",
        'ج' => "j",
        'چ' => "ch",
        'ح' | 'ه' => "h",
        'خ' => "kh",
        'د' => "d",
        'ذ' | 'ز' | 'ض' | 'ظ' => "z",
        'ر' => "r",
        'ژ' => "zh",
        'ش' => "sh",
        'ع' => "",
        'غ' | 'ق' => "gh",
        'ف' => "f",
        'ک' | 'ك' => "k",
        'گ' => "g",
        'ل' => "l",
        'م' => "m",
        'ن' => "n",
        'و' => "v",
        'ی' | 'ي' => "i",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn persian_text_is_recognized() {
        assert!(is_persian_text("شهرداری نجف‌آباد"));
        assert!(is_persian_text("شهرداری منطقه ۱۲"));
        assert!(!is_persian_text("Isfahan"));
        assert!(!is_persian_text("شهرداری Isfahan"));
        assert!(!is_persian_text("   "));
    }

    #[test]
    fn search_text_is_folded_the_same_way_on_both_sides() {
        assert_eq!(
            normalize_for_search("پروانه ساختمانى"),
            normalize_for_search("پروانه ساختمانی")
        );
        assert_eq!(normalize_for_search("كد ۱۲٣"), "کد 123");
        assert_eq!(normalize_for_search("نجف\u{200c}آباد"), "نجف آباد");
        assert_eq!(
            normalize_for_search("  Building   Permit "),
            "building permit"
        );
        assert_eq!(normalize_for_search("مُدارِک"), "مدارک");
    }

    #[test]
    fn digits_and_slugs() {
        assert_eq!(persian_digits("1404/01/05"), "۱۴۰۴/۰۱/۰۵");
        assert_eq!(
            suggest_slug("Najafabad Municipality", "").as_deref(),
            Some("najafabad")
        );
        assert_eq!(
            suggest_slug("Shahr-e Kord", "").as_deref(),
            Some("shahr-e-kord")
        );
        assert_eq!(suggest_slug("", "شهرداری کاشان").as_deref(), Some("kashan"));
        assert_eq!(suggest_slug("", "").as_deref(), None);
    }
}
