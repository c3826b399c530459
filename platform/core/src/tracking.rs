//! The tracking code (کد رهگیری) a citizen receives for a request.
//!
//! Twelve digits: eleven random ones and a Verhoeff check digit, so that every single mistyped
//! digit and every swap of two neighbouring digits is caught before a lookup.

use crate::error::FieldErrors;
use crate::mobile::ascii_digits;
use crate::text::persian_digits;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A tracking code stored as twelve ASCII digits whose last digit is a valid Verhoeff check.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrackingCode(String);

/// Number of random digits before the check digit.
const RANDOM_DIGITS: usize = 11;

impl TrackingCode {
    /// A fresh random code (about 36 bits of randomness from a v4 UUID).
    pub fn generate() -> Self {
        let random = uuid::Uuid::new_v4().as_u128() % 100_000_000_000;
        let body = format!("{random:0>width$}", width = RANDOM_DIGITS);
        let digits: Vec<u8> = body.bytes().map(|b| b - b'0').collect();
        let check = verhoeff_check_digit(&digits);
        Self(format!("{body}{check}"))
    }

    /// Parses what a person typed; the error is a Persian message for the `tracking_code` field.
    ///
    /// Accepts Persian and Arabic-Indic digits, spaces and dashes.
    pub fn parse(raw: &str) -> Result<Self, FieldErrors> {
        let cleaned: String = ascii_digits(raw)
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '\u{200c}'))
            .collect();
        if cleaned.len() == RANDOM_DIGITS + 1 && cleaned.bytes().all(|b| b.is_ascii_digit()) {
            let digits: Vec<u8> = cleaned.bytes().map(|b| b - b'0').collect();
            if verhoeff_is_valid(&digits) {
                return Ok(Self(cleaned));
            }
        }
        Err(FieldErrors::single(
            "tracking_code",
            "tracking_code_invalid",
            "کد رهگیری معتبر نیست؛ دوازده رقم آن را بررسی کنید.",
        ))
    }

    /// The twelve ASCII digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The code in Persian digits, in groups of four separated by a space (for print and SMS).
    pub fn grouped_fa(&self) -> String {
        let groups: Vec<String> = self
            .0
            .as_bytes()
            .chunks(4)
            .map(|chunk| persian_digits(&String::from_utf8_lossy(chunk)))
            .collect();
        groups.join(" ")
    }
}

impl fmt::Display for TrackingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TrackingCode {
    type Error = FieldErrors;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TrackingCode> for String {
    fn from(value: TrackingCode) -> Self {
        value.0
    }
}

/// Multiplication table of the dihedral group D5.
const VERHOEFF_D: [[u8; 10]; 10] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6],
    [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8],
    [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2],
    [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4],
    [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
];

/// Position-dependent permutations: row `i` is row 1 applied `i` times.
const VERHOEFF_P: [[u8; 10]; 8] = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2],
    [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0],
    [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5],
    [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
];

/// Inverses in D5.
const VERHOEFF_INV: [u8; 10] = [0, 4, 3, 2, 1, 5, 6, 7, 8, 9];

/// The running Verhoeff checksum of `digits` (each 0..=9), the rightmost at position `offset`.
fn verhoeff_checksum(digits: &[u8], offset: usize) -> u8 {
    digits.iter().rev().enumerate().fold(0, |c, (i, &digit)| {
        let permuted = VERHOEFF_P[(i + offset) % 8][usize::from(digit)];
        VERHOEFF_D[usize::from(c)][usize::from(permuted)]
    })
}

/// The check digit to append to `digits`.
fn verhoeff_check_digit(digits: &[u8]) -> u8 {
    // The digits move one position to the left once the check digit is appended.
    VERHOEFF_INV[usize::from(verhoeff_checksum(digits, 1))]
}

/// Whether `digits` ends with a valid check digit.
fn verhoeff_is_valid(digits: &[u8]) -> bool {
    verhoeff_checksum(digits, 0) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verhoeff_matches_the_published_example() {
        // The textbook example: the check digit of 236 is 3.
        assert_eq!(verhoeff_check_digit(&[2, 3, 6]), 3);
        assert!(verhoeff_is_valid(&[2, 3, 6, 3]));
        assert!(!verhoeff_is_valid(&[2, 3, 6, 4]));
    }

    #[test]
    fn the_tables_are_consistent() {
        for i in 1..8 {
            for digit in 0..10 {
                let once_more = VERHOEFF_P[1][usize::from(VERHOEFF_P[i - 1][digit])];
                assert_eq!(VERHOEFF_P[i][digit], once_more, "row {i}, digit {digit}");
            }
        }
        for a in 0..10 {
            assert_eq!(
                VERHOEFF_D[a][usize::from(VERHOEFF_INV[a])],
                0,
                "inverse of {a}"
            );
        }
        // Every adjacent transposition at every position changes the checksum, not only those
        // the random codes below happen to contain.
        for i in 0..8 {
            for a in 0..10 {
                for b in 0..10 {
                    if a == b {
                        continue;
                    }
                    let step = |x: usize, y: usize| {
                        let first = VERHOEFF_P[i][x];
                        let second = VERHOEFF_P[(i + 1) % 8][y];
                        VERHOEFF_D[usize::from(first)][usize::from(second)]
                    };
                    assert_ne!(step(a, b), step(b, a), "position {i}, digits {a} {b}");
                }
            }
        }
    }

    #[test]
    fn generated_codes_parse() {
        for _ in 0..200 {
            let code = TrackingCode::generate();
            assert_eq!(code.as_str().len(), 12);
            assert_eq!(TrackingCode::parse(code.as_str()).unwrap(), code);
            assert_eq!(TrackingCode::parse(&code.grouped_fa()).unwrap(), code);
        }
    }

    #[test]
    fn every_single_substitution_is_rejected() {
        for _ in 0..20 {
            let code = TrackingCode::generate();
            let digits: Vec<u8> = code.as_str().bytes().collect();
            for i in 0..digits.len() {
                for replacement in b'0'..=b'9' {
                    if replacement == digits[i] {
                        continue;
                    }
                    let mut typo = digits.clone();
                    typo[i] = replacement;
                    let typo = String::from_utf8(typo).unwrap();
                    assert!(TrackingCode::parse(&typo).is_err(), "{code} -> {typo}");
                }
            }
        }
    }

    #[test]
    fn every_adjacent_transposition_is_rejected() {
        for _ in 0..20 {
            let code = TrackingCode::generate();
            let digits: Vec<u8> = code.as_str().bytes().collect();
            for i in 0..digits.len() - 1 {
                // Swapping two equal digits changes nothing, so there is nothing to catch.
                if digits[i] == digits[i + 1] {
                    continue;
                }
                let mut typo = digits.clone();
                typo.swap(i, i + 1);
                let typo = String::from_utf8(typo).unwrap();
                assert!(TrackingCode::parse(&typo).is_err(), "{code} -> {typo}");
            }
        }
    }

    #[test]
    fn generated_codes_are_distinct() {
        let codes: std::collections::HashSet<TrackingCode> =
            (0..1000).map(|_| TrackingCode::generate()).collect();
        assert_eq!(codes.len(), 1000);
    }

    #[test]
    fn parsing_and_printing() {
        let body = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0];
        let check = verhoeff_check_digit(&body);
        let ascii = format!("01234567890{check}");
        let typed = persian_digits(&format!("0123-4567 890{check}"));
        let code = TrackingCode::parse(&typed).unwrap();
        assert_eq!(code.as_str(), ascii);
        assert_eq!(code.to_string(), ascii);
        assert_eq!(
            code.grouped_fa(),
            format!("۰۱۲۳ ۴۵۶۷ ۸۹۰{}", persian_digits(&check.to_string()))
        );
        assert_eq!(
            serde_json::to_string(&code).unwrap(),
            format!("\"{ascii}\"")
        );
        for bad in [
            "",
            "12345678901",
            "1234567890123",
            "01234567890a",
            "abcdefghijkl",
        ] {
            let err = TrackingCode::parse(bad).unwrap_err();
            assert_eq!(err.0[0].code, "tracking_code_invalid", "{bad}");
            assert_eq!(err.0[0].field, "tracking_code");
        }
    }
}
