//! Passwords of people who sign in (staff and platform users): argon2id hashes in PHC strings,
//! and the rules a new password must meet (a minimum length, not a well-known password, not
//! the username or mobile number), with Persian messages.

use crate::{DomainError, FieldErrors};
use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};

/// The shortest password accepted.
pub const MIN_LENGTH: usize = 10;
/// The longest password accepted (hashing is deliberately slow; bound the work).
pub const MAX_LENGTH: usize = 128;

/// Hashes a password with argon2id (PHC string with its own random salt).
pub fn hash(password: &str) -> Result<String, DomainError> {
    let hash: PasswordHash = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| DomainError::Internal(anyhow::anyhow!("hashing a password: {e}")))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the stored PHC hash.
pub fn verify(password: &str, stored: &str) -> bool {
    password.len() <= MAX_LENGTH * 4
        && PasswordHash::new(stored).is_ok_and(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
}

/// Passwords people pick most often (from the public lists of leaked passwords), plus the
/// local habits: Persian keyboard runs and Latin words typed on a Persian layout.
const COMMON: &[&str] = &[
    "123456",
    "password",
    "12345678",
    "qwerty",
    "123456789",
    "12345",
    "1234",
    "111111",
    "1234567",
    "dragon",
    "123123",
    "baseball",
    "abc123",
    "football",
    "monkey",
    "letmein",
    "696969",
    "shadow",
    "master",
    "666666",
    "qwertyuiop",
    "123321",
    "mustang",
    "1234567890",
    "michael",
    "654321",
    "superman",
    "1qaz2wsx",
    "7777777",
    "121212",
    "000000",
    "qazwsx",
    "123qwe",
    "killer",
    "trustno1",
    "jordan",
    "jennifer",
    "zxcvbnm",
    "asdfgh",
    "hunter",
    "buster",
    "soccer",
    "harley",
    "batman",
    "andrew",
    "tigger",
    "sunshine",
    "iloveyou",
    "2000",
    "charlie",
    "robert",
    "thomas",
    "hockey",
    "ranger",
    "daniel",
    "starwars",
    "klaster",
    "112233",
    "george",
    "computer",
    "michelle",
    "jessica",
    "pepper",
    "1111",
    "zxcvbn",
    "555555",
    "11111111",
    "131313",
    "freedom",
    "777777",
    "pass",
    "maggie",
    "159753",
    "aaaaaa",
    "ginger",
    "princess",
    "joshua",
    "cheese",
    "amanda",
    "summer",
    "love",
    "ashley",
    "nicole",
    "chelsea",
    "biteme",
    "matthew",
    "access",
    "yankees",
    "987654321",
    "dallas",
    "austin",
    "thunder",
    "taylor",
    "matrix",
    "password1",
    "password123",
    "passw0rd",
    "p@ssw0rd",
    "p@ssword",
    "admin",
    "admin123",
    "administrator",
    "welcome",
    "welcome1",
    "welcome123",
    "qwerty123",
    "qwe123",
    "1q2w3e4r",
    "1q2w3e4r5t",
    "1q2w3e",
    "zaq12wsx",
    "q1w2e3r4",
    "q1w2e3r4t5",
    "abcd1234",
    "abcdef",
    "abcdefg",
    "abcdefgh",
    "iloveyou1",
    "loveyou",
    "secret",
    "changeme",
    "default",
    "guest",
    "root",
    "toor",
    "test",
    "test123",
    "testtest",
    "user",
    "login",
    "0123456789",
    "9876543210",
    "1234512345",
    "1122334455",
    "1234554321",
    "a123456",
    "a123456789",
    "aa123456",
    "asd123",
    "asdasd",
    "asdfghjkl",
    "qwertyui",
    "qazwsxedc",
    "iran",
    "iran1234",
    "iran123456",
    "tehran",
    "tehran123",
    "isfahan",
    "esfahan",
    "shiraz",
    "mashhad",
    "tabriz",
    "persia",
    "persian",
    "ali123",
    "ali12345",
    "mohammad",
    "mohammad123",
    "hossein",
    "reza123",
    "amir123",
    "sara123",
    "maryam",
    "zahra",
    "fatemeh",
    "shahrdari",
    "shahrdari123",
    "mizkhedmat",
    "miz123456",
    "khedmat",
    "ضصثقفغعهخح",
    "شسیبلاتنمک",
    "ظطزرذدپو",
    "۱۲۳۴۵۶۷۸۹۰",
    "۱۲۳۴۵۶",
    "۱۲۳۴۵۶۷۸",
    "۱۲۳۴۵۶۷۸۹",
    "گذرواژه",
    "رمزعبور",
    "سلام",
    "ایران",
    "تهران",
    "اصفهان",
    "شهرداری",
    "میزخدمت",
];

fn normalized(s: &str) -> String {
    crate::mobile::ascii_digits(s).to_lowercase()
}

/// Whether `password` is on the list of well-known passwords (also with digits or one
/// character repeated, e.g. `aaaaaaaaaa`, `1111111111`, and with a trailing run of digits).
pub fn is_common(password: &str) -> bool {
    let p = normalized(password);
    let mut chars = p.chars();
    let first = chars.next();
    if first.is_some_and(|c| chars.all(|x| x == c)) {
        return true;
    }
    let stem = p.trim_end_matches(|c: char| c.is_ascii_digit() || "!@#$.".contains(c));
    COMMON.iter().any(|c| {
        let c = normalized(c);
        p == c || (!stem.is_empty() && stem == c)
    }) || ascending_run(&p)
}

/// `0123456789`, `abcdefghij` and the like.
fn ascending_run(p: &str) -> bool {
    let chars: Vec<char> = p.chars().collect();
    chars.len() >= 4 && chars.windows(2).all(|w| (w[1] as u32) == (w[0] as u32) + 1)
}

/// Checks a new password against the rules; `avoid` are the member's own names (username,
/// mobile) that must not be the password.
pub fn check_new(password: &str, confirm: &str, avoid: &[&str]) -> Result<(), DomainError> {
    let mut errors = FieldErrors::default();
    let length = password.chars().count();
    if length < MIN_LENGTH {
        errors.push(
            "password",
            "password_too_short",
            &format!(
                "گذرواژه دست‌کم {} نویسه باشد.",
                crate::text::persian_digits(&MIN_LENGTH.to_string())
            ),
        );
    } else if length > MAX_LENGTH {
        errors.push(
            "password",
            "password_too_long",
            "گذرواژه بیش از اندازه بلند است (بیشینه ۱۲۸ نویسه).",
        );
    } else if is_common(password) {
        errors.push(
            "password",
            "password_common",
            "این گذرواژه از پرکاربردترین گذرواژه‌هاست و به‌آسانی حدس زده می‌شود؛ گذرواژه دیگری برگزینید.",
        );
    } else if avoid.iter().any(|a| {
        let a = normalized(a);
        !a.is_empty() && normalized(password).contains(a.trim_start_matches('+'))
    }) {
        errors.push(
            "password",
            "password_personal",
            "گذرواژه نباید نام کاربری یا شماره همراه شما را داشته باشد.",
        );
    }
    if password != confirm {
        errors.push(
            "password_confirm",
            "password_mismatch",
            "تکرار گذرواژه با خود گذرواژه یکی نیست.",
        );
    }
    if errors.0.is_empty() {
        Ok(())
    } else {
        Err(DomainError::Validation(errors))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;

    #[test]
    fn hashes_are_argon2id_salted_and_verify() {
        let h = hash("درست-است-1234").unwrap();
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify("درست-است-1234", &h));
        assert!(!verify("wrong", &h));
        assert!(!verify("x", "not a hash"));
        assert_ne!(h, hash("درست-است-1234").unwrap(), "salted");
    }

    #[test]
    fn weak_passwords_are_refused_with_a_reason() {
        let code = |p: &str, c: &str, avoid: &[&str]| match check_new(p, c, avoid) {
            Ok(()) => "ok".to_owned(),
            Err(DomainError::Validation(f)) => f.0[0].code.to_owned(),
            Err(e) => format!("{e:?}"),
        };
        assert_eq!(code("short", "short", &[]), "password_too_short");
        assert_eq!(code("password123", "password123", &[]), "password_common");
        assert_eq!(code("Qwertyuiop", "Qwertyuiop", &[]), "password_common");
        assert_eq!(code("۱۲۳۴۵۶۷۸۹۰", "۱۲۳۴۵۶۷۸۹۰", &[]), "password_common");
        assert_eq!(code("aaaaaaaaaaaa", "aaaaaaaaaaaa", &[]), "password_common");
        assert_eq!(code("abcdefghijk", "abcdefghijk", &[]), "password_common");
        assert_eq!(code("tehran2024!!", "tehran2024!!", &[]), "password_common");
        assert_eq!(
            code("zahra.clerk-x9", "zahra.clerk-x9", &["zahra.clerk"]),
            "password_personal"
        );
        assert_eq!(
            code("fine-horse-battery-7", "fine-horse-battery-8", &[]),
            "password_mismatch"
        );
        assert_eq!(
            code("fine-horse-battery-7", "fine-horse-battery-7", &["clerk"]),
            "ok"
        );
        assert_eq!(code("باغ‌گل‌سرخ‌۱۴۰۵", "باغ‌گل‌سرخ‌۱۴۰۵", &[]), "ok");
    }
}
