//! Time-based one-time passwords (RFC 6238 over RFC 4226 HOTP): HMAC-SHA1, 30-second steps,
//! six digits, the format every authenticator app reads (`otpauth://totp/...`). A code is
//! accepted one step either side of now (clock drift), and never twice (the caller keeps the
//! last step used).

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// Seconds a code lives.
pub const STEP_SECS: i64 = 30;

/// A fresh 160-bit secret (the size RFC 4226 recommends), from the OS's randomness.
pub fn new_secret() -> Vec<u8> {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(uuid::Uuid::new_v4().as_bytes());
    h.update(uuid::Uuid::new_v4().as_bytes());
    h.finalize()[..20].to_vec()
}

/// The secret as people type it into an app (base32, no padding).
pub fn base32(secret: &[u8]) -> String {
    data_encoding::BASE32_NOPAD.encode(secret)
}

/// The secret from its base32 form (spaces and case ignored), as an app holds it.
pub fn from_base32(text: &str) -> Option<Vec<u8>> {
    let clean: String = text
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase();
    data_encoding::BASE32_NOPAD.decode(clean.as_bytes()).ok()
}

/// The key grouped in fours, as people copy it (`GEZD GNBV ...`).
pub fn grouped(key: &str) -> String {
    key.as_bytes()
        .chunks(4)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `otpauth://` URI an app imports (issuer and account shown in the app).
pub fn otpauth_uri(issuer: &str, account: &str, secret: &[u8]) -> String {
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits=6&period=30",
        enc(issuer),
        enc(account),
        base32(secret),
        enc(issuer)
    )
}

/// The HOTP value of `counter` (RFC 4226 §5.3), as `digits` decimal digits.
fn hotp(secret: &[u8], counter: u64, digits: u32) -> Option<String> {
    let mut mac = <Hmac<Sha1> as KeyInit>::new_from_slice(secret).ok()?;
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    let offset = usize::from(hash[hash.len() - 1] & 0x0f);
    let bin = u32::from_be_bytes([
        hash[offset] & 0x7f,
        hash[offset + 1],
        hash[offset + 2],
        hash[offset + 3],
    ]);
    let code = bin % 10u32.pow(digits);
    Some(format!("{code:0width$}", width = digits as usize))
}

/// The six-digit code of the step holding `unix_secs`.
pub fn code_at(secret: &[u8], unix_secs: i64) -> Option<String> {
    hotp(
        secret,
        u64::try_from(unix_secs.div_euclid(STEP_SECS)).ok()?,
        6,
    )
}

/// The step a six-digit `code` belongs to, if it is the code of now or one step either side
/// and later than `last_step` (a code is used once).
pub fn verify(secret: &[u8], code: &str, unix_secs: i64, last_step: Option<i64>) -> Option<i64> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = unix_secs.div_euclid(STEP_SECS);
    (now - 1..=now + 1)
        .filter(|step| last_step.is_none_or(|last| *step > last))
        .find(|step| {
            u64::try_from(*step)
                .ok()
                .and_then(|s| hotp(secret, s, 6))
                .is_some_and(|c| bool::from(c.as_bytes().ct_eq(code.as_bytes())))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;

    #[test]
    fn rfc_6238_sha1_vectors() {
        // RFC 6238 appendix B (SHA1 seed), 8 digits.
        let seed = b"12345678901234567890";
        for (t, want) in [
            (59u64, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ] {
            assert_eq!(hotp(seed, t / 30, 8).unwrap(), want, "t={t}");
        }
        assert_eq!(code_at(seed, 59).unwrap(), "287082");
    }

    #[test]
    fn codes_are_accepted_once_within_a_step_of_now() {
        let secret = new_secret();
        let now = 1_800_000_000;
        let code = code_at(&secret, now).unwrap();
        let step = verify(&secret, &code, now, None).unwrap();
        assert_eq!(verify(&secret, &code, now, Some(step)), None, "replay");
        let previous = code_at(&secret, now - 30).unwrap();
        assert!(verify(&secret, &previous, now, None).is_some(), "drift");
        let old = code_at(&secret, now - 90).unwrap();
        assert_eq!(verify(&secret, &old, now, None), None);
        assert_eq!(verify(&secret, "12345", now, None), None);
        assert!(otpauth_uri("میز خدمت", "clerk.a", &secret).starts_with("otpauth://totp/"));
        assert_eq!(
            base32(b"12345678901234567890"),
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
        );
    }
}
