//! The Iranian national code (کد ملی): ten digits, the last a check digit.

use crate::error::FieldErrors;
use crate::mobile::ascii_digits;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A national code stored as exactly ten ASCII digits with a valid check digit.
///
/// Accepts Persian (۰-۹) and Arabic-Indic (٠-٩) digits, spaces and dashes. Codes of 8 or 9
/// digits are left-padded with zeros, because people (and spreadsheets) drop leading zeros.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NationalCode(String);

impl NationalCode {
    /// Parses what a person typed; the error is a Persian message for the `national_code` field.
    pub fn parse(raw: &str) -> Result<Self, FieldErrors> {
        let invalid = || {
            FieldErrors::single(
                "national_code",
                "national_code_invalid",
                "کد ملی معتبر نیست؛ ده رقم آن را بدون خط تیره وارد کنید.",
            )
        };
        let cleaned: String = ascii_digits(raw)
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '\u{200c}'))
            .collect();
        if !(8..=10).contains(&cleaned.len()) || !cleaned.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let code = format!("{cleaned:0>10}");
        let digits: Vec<u32> = code.bytes().map(|b| u32::from(b - b'0')).collect();
        // "1111111111" and friends pass the check digit but are never issued.
        if digits.iter().all(|d| *d == digits[0]) {
            return Err(invalid());
        }
        if check_digit(&digits[..9]) != digits[9] {
            return Err(invalid());
        }
        Ok(Self(code))
    }

    /// The ten ASCII digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The official check digit of the first nine digits: weights 10 down to 2, modulo 11.
fn check_digit(first_nine: &[u32]) -> u32 {
    let sum: u32 = first_nine
        .iter()
        .zip((2..=10).rev())
        .map(|(d, weight)| d * weight)
        .sum();
    let r = sum % 11;
    if r < 2 { r } else { 11 - r }
}

impl fmt::Display for NationalCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for NationalCode {
    type Error = FieldErrors;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<NationalCode> for String {
    fn from(value: NationalCode) -> Self {
        value.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds a valid code from nine digits with the rule, independently of `check_digit`.
    fn with_check(first_nine: &str) -> String {
        let sum: u32 = first_nine
            .chars()
            .enumerate()
            .map(|(i, c)| c.to_digit(10).unwrap() * (10 - i as u32))
            .sum();
        let r = sum % 11;
        let check = if r < 2 { r } else { 11 - r };
        format!("{first_nine}{check}")
    }

    #[test]
    fn accepts_valid_codes() {
        for code in ["0499370899", "0790419904"] {
            assert_eq!(NationalCode::parse(code).unwrap().as_str(), code);
        }
        for first_nine in [
            "123456789",
            "001234567",
            "987654321",
            "444555666",
            "000000001",
        ] {
            let code = with_check(first_nine);
            assert_eq!(NationalCode::parse(&code).unwrap().as_str(), code);
        }
    }

    #[test]
    fn accepts_persian_digits_separators_and_missing_zeros() {
        let expected = "0499370899";
        for raw in [
            "۰۴۹۹۳۷۰۸۹۹",
            "٠٤٩٩٣٧٠٨٩٩",
            "049-937089-9",
            " 049 937 0899 ",
            "499370899",
        ] {
            assert_eq!(
                NationalCode::parse(raw).unwrap().as_str(),
                expected,
                "{raw}"
            );
        }
        // Eight digits: two zeros were dropped.
        let code = with_check("001234567");
        assert_eq!(NationalCode::parse(&code[2..]).unwrap().as_str(), code);
    }

    #[test]
    fn rejects_invalid_codes() {
        for raw in [
            "",
            "0499370898",
            "0499370890",
            "1111111111",
            "0000000000",
            "1234567",
            "04993708991",
            "04993708a9",
            "+499370899",
        ] {
            let err = NationalCode::parse(raw).unwrap_err();
            assert_eq!(err.0[0].field, "national_code", "{raw}");
            assert_eq!(err.0[0].code, "national_code_invalid", "{raw}");
        }
    }

    #[test]
    fn serializes_as_a_string() {
        let code = NationalCode::parse("۰۷۹۰۴۱۹۹۰۴").unwrap();
        let json = serde_json::to_string(&code).unwrap();
        assert_eq!(json, "\"0790419904\"");
        let back: NationalCode = serde_json::from_str(&json).unwrap();
        assert_eq!(back, code);
        assert!(serde_json::from_str::<NationalCode>("\"0790419905\"").is_err());
        assert_eq!(code.to_string(), "0790419904");
    }
}
