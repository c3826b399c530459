//! Iranian mobile numbers in one canonical form.

use crate::error::FieldErrors;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A mobile number stored as `+989xxxxxxxxx`.
///
/// Accepts Persian (۰-۹) and Arabic-Indic (٠-٩) digits, spaces and dashes, and the prefixes
/// `+98`, `0098`, `98` and `0`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct MobileNumber(String);

/// Maps Persian and Arabic-Indic digits to ASCII; other characters pass through.
pub fn ascii_digits(raw: &str) -> String {
    raw.chars()
        .map(|c| match c {
            '۰'..='۹' => char::from(b'0' + (c as u32 - '۰' as u32) as u8),
            '٠'..='٩' => char::from(b'0' + (c as u32 - '٠' as u32) as u8),
            _ => c,
        })
        .collect()
}

impl MobileNumber {
    /// Parses what a person typed.
    pub fn parse(raw: &str) -> Result<Self, FieldErrors> {
        let cleaned: String = ascii_digits(raw)
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '\u{200c}'))
            .collect();
        let national = cleaned
            .strip_prefix("+98")
            .or_else(|| cleaned.strip_prefix("0098"))
            .or_else(|| cleaned.strip_prefix("98").filter(|r| r.len() == 10))
            .or_else(|| cleaned.strip_prefix('0'))
            .unwrap_or(&cleaned);
        if national.len() == 10
            && national.starts_with('9')
            && national.bytes().all(|b| b.is_ascii_digit())
        {
            Ok(Self(format!("+98{national}")))
        } else {
            Err(FieldErrors::single(
                "mobile",
                "mobile_invalid",
                "شماره همراه معتبر نیست؛ مانند ۰۹۱۲۳۴۵۶۷۸۹ وارد کنید.",
            ))
        }
    }

    /// The canonical form.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A canonical number (`+989…`) in the local form people read and providers take (`09…`);
/// anything else unchanged.
pub fn local_form(e164: &str) -> String {
    e164.strip_prefix("+98")
        .map_or_else(|| e164.to_owned(), |n| format!("0{n}"))
}

impl fmt::Display for MobileNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for MobileNumber {
    type Error = FieldErrors;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<MobileNumber> for String {
    fn from(value: MobileNumber) -> Self {
        value.0
    }
}

/// `+989121234567` → `0912***4567`: enough to tell which phone, not a number to copy.
pub fn masked(mobile: &str) -> String {
    let local = local_form(mobile);
    let chars: Vec<char> = local.chars().collect();
    if chars.len() < 8 {
        return "***".to_owned();
    }
    let head: String = chars[..4].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}***{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mobiles_are_masked_for_display() {
        assert_eq!(masked("+989131234567"), "0913***4567");
        assert_eq!(masked("12"), "***");
    }

    #[test]
    fn accepts_the_usual_forms() {
        for raw in [
            "09123456789",
            "+989123456789",
            "00989123456789",
            "989123456789",
            "9123456789",
            "۰۹۱۲۳۴۵۶۷۸۹",
            "٠٩١٢٣٤٥٦٧٨٩",
            "0912 345 6789",
            "0912-345-6789",
        ] {
            assert_eq!(
                MobileNumber::parse(raw).unwrap().as_str(),
                "+989123456789",
                "{raw}"
            );
        }
    }

    #[test]
    fn rejects_the_rest() {
        for raw in [
            "",
            "0212345678",
            "091234567",
            "091234567890",
            "+19123456789",
            "0912abc6789",
        ] {
            assert!(MobileNumber::parse(raw).is_err(), "{raw}");
        }
    }
}
