//! Host names that route requests to a municipality.

use crate::error::FieldErrors;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A lowercase DNS host name without port (`isfahan.miz.ir`, `khedmat.isfahan.ir`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Hostname(String);

impl Hostname {
    /// Validates a host name as an operator types it (case is folded, a trailing dot dropped).
    pub fn parse(raw: &str) -> Result<Self, FieldErrors> {
        let host = raw.trim().trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
            return Err(FieldErrors::single(
                "domain",
                "hostname",
                "نام دامنه معتبر نیست.",
            ));
        }
        Ok(Self(host))
    }

    /// Normalizes the `Host` header of a request: drops the port, folds case.
    /// Returns `None` for anything that is not a valid host name.
    pub fn from_header(raw: &str) -> Option<Self> {
        let without_port = match raw.rsplit_once(':') {
            Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
            _ => raw,
        };
        Self::parse(without_port).ok()
    }

    /// The host name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Hostname {
    type Error = FieldErrors;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Hostname> for String {
    fn from(value: Hostname) -> Self {
        value.0
    }
}

/// How links to the deployment look from outside (scheme and port in front of the host).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicUrls {
    /// `https` in production, `http` in the demo.
    pub scheme: String,
    /// A non-default port, if any (the demo's 8080).
    pub port: Option<u16>,
}

impl PublicUrls {
    /// `scheme://host[:port]path`.
    pub fn url(&self, host: &Hostname, path: &str) -> String {
        match self.port {
            Some(port) => format!("{}://{}:{port}{path}", self.scheme, host),
            None => format!("{}://{}{path}", self.scheme, host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_forms_normalize() {
        assert_eq!(
            Hostname::from_header("Isfahan.LocalHost:8080")
                .unwrap()
                .as_str(),
            "isfahan.localhost"
        );
        assert_eq!(
            Hostname::from_header("khedmat.isfahan.ir.")
                .unwrap()
                .as_str(),
            "khedmat.isfahan.ir"
        );
        for bad in [
            "", ":80", "a..b", "-a.b", "a_b.ir", "a b", "[::1]:80", "x/../y",
        ] {
            assert!(Hostname::from_header(bad).is_none(), "{bad:?}");
        }
    }
}
