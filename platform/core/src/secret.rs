//! Secrets of a municipality (SMS provider credentials, keys) sealed with AES-256-GCM.
//!
//! The associated data binds each ciphertext to its tenant and purpose, so a ciphertext copied
//! into another municipality's row (or another field) does not open.

use crate::error::DomainError;
use crate::tenant::TenantId;
use aes_gcm::aead::{Aead, Generate, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use std::fmt;

/// A fresh unguessable token (244 random bits from the OS), as 64 hex characters: session ids,
/// one-time sign-in links, CSRF tokens.
pub fn new_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// SHA-256 of `bytes` (what the database's `sha256(convert_to(token, 'UTF8'))` stores for a
/// token).
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(bytes).into()
}

/// The deployment's master key (32 bytes), from config; never printed.
#[derive(Clone)]
pub struct MasterKey(Key<Aes256Gcm>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

/// A sealed secret as stored: nonce and ciphertext (with its tag).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealed {
    /// 12-byte nonce, fresh for every seal.
    pub nonce: Vec<u8>,
    /// Ciphertext followed by the 16-byte tag.
    pub ciphertext: Vec<u8>,
}

fn crypto_error(what: &str) -> DomainError {
    DomainError::Internal(anyhow::anyhow!("secret {what} failed"))
}

impl MasterKey {
    /// Parses 64 hex characters.
    pub fn from_hex(hex: &str) -> Result<Self, String> {
        let hex = hex.trim();
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err("the master key must be 64 hex characters (32 bytes)".to_owned());
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).map_err(|e| e.to_string())?;
        }
        Ok(Self(Key::<Aes256Gcm>::from(bytes)))
    }

    /// A fresh random key as hex (for `desk demo` and key rotation).
    pub fn generate_hex() -> String {
        let key = Key::<Aes256Gcm>::generate();
        key.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn aad(tenant: TenantId, purpose: &str) -> String {
        format!("miz:{tenant}:{purpose}")
    }

    /// Seals `plaintext` for `tenant` and `purpose`.
    pub fn seal(
        &self,
        tenant: TenantId,
        purpose: &str,
        plaintext: &[u8],
    ) -> Result<Sealed, DomainError> {
        let nonce = Nonce::generate();
        let aad = Self::aad(tenant, purpose);
        let ciphertext = Aes256Gcm::new(&self.0)
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| crypto_error("sealing"))?;
        Ok(Sealed {
            nonce: nonce.to_vec(),
            ciphertext,
        })
    }

    /// Opens a secret sealed for the same tenant and purpose.
    pub fn open(
        &self,
        tenant: TenantId,
        purpose: &str,
        sealed: &Sealed,
    ) -> Result<Vec<u8>, DomainError> {
        let nonce = Nonce::try_from(&sealed.nonce[..]).map_err(|_| crypto_error("opening"))?;
        let aad = Self::aad(tenant, purpose);
        Aes256Gcm::new(&self.0)
            .decrypt(
                &nonce,
                Payload {
                    msg: &sealed.ciphertext,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| crypto_error("opening"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_only_for_the_same_tenant_and_purpose() {
        let key = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
        let (a, b) = (TenantId::new(), TenantId::new());
        let sealed = key.seal(a, "sms:1", b"kavenegar-api-key").unwrap();
        assert!(!sealed.ciphertext.windows(9).any(|w| w == b"kavenegar"));
        assert_eq!(key.open(a, "sms:1", &sealed).unwrap(), b"kavenegar-api-key");
        assert!(key.open(b, "sms:1", &sealed).is_err(), "another tenant");
        assert!(key.open(a, "sms:2", &sealed).is_err(), "another purpose");
        let other = MasterKey::from_hex(&MasterKey::generate_hex()).unwrap();
        assert!(other.open(a, "sms:1", &sealed).is_err(), "another key");
        assert_ne!(
            key.seal(a, "sms:1", b"x").unwrap().nonce,
            key.seal(a, "sms:1", b"x").unwrap().nonce
        );
        assert_eq!(format!("{key:?}"), "MasterKey(<redacted>)");
        assert!(MasterKey::from_hex("abcd").is_err());
    }
}
