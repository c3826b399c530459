//! Identity of a municipality (tenant): id, slug, schema name and lifecycle status.

use crate::error::FieldErrors;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Stable identifier of a tenant, carried by jobs, cache keys and object-store keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TenantId(pub uuid::Uuid);

impl TenantId {
    /// A fresh random id.
    pub fn new() -> Self {
        Self(uuid::Uuid::new_v4())
    }
}

impl Default for TenantId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Longest slug accepted: the schema `t_<slug>` must match `^t_[a-z0-9_]{1,40}$`.
pub const SLUG_MAX_LEN: usize = 40;

/// Slugs that would collide with platform hosts or common infrastructure names.
const RESERVED_SLUGS: &[&str] = &[
    "admin", "api", "www", "static", "assets", "platform", "public", "mail", "ftp", "status",
    "graphql", "app", "desk", "help", "docs",
];

/// The fixed, URL- and DNS-safe name of a municipality (`najafabad`, `shahr-e-kord`).
///
/// Lowercase ASCII letters, digits and single inner hyphens, starting with a letter, 2 to 40
/// characters. It names the default host (`<slug>.<base-domain>`) and, with hyphens turned
/// into underscores, the schema. Because underscores are not allowed in a slug, that mapping
/// is one-to-one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantSlug(String);

impl TenantSlug {
    /// Validates a slug; the error is a Persian message for the `slug` field.
    pub fn parse(raw: &str) -> Result<Self, FieldErrors> {
        let err = |code, msg: &str| Err(FieldErrors::single("slug", code, msg));
        if raw.len() < 2 || raw.len() > SLUG_MAX_LEN {
            return err("slug_length", "شناسه باید بین ۲ تا ۴۰ نویسه باشد.");
        }
        let bytes = raw.as_bytes();
        if !bytes[0].is_ascii_lowercase() {
            return err("slug_start", "شناسه باید با یک حرف کوچک لاتین شروع شود.");
        }
        let allowed = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-';
        if !bytes.iter().all(allowed) {
            return err(
                "slug_chars",
                "شناسه فقط می‌تواند حروف کوچک لاتین، رقم و خط تیره داشته باشد.",
            );
        }
        if raw.ends_with('-') || raw.contains("--") {
            return err(
                "slug_hyphen",
                "خط تیره نباید در پایان شناسه یا پشت سر هم بیاید.",
            );
        }
        if RESERVED_SLUGS.contains(&raw) {
            return err("slug_reserved", "این شناسه رزرو شده است.");
        }
        Ok(Self(raw.to_owned()))
    }

    /// The slug as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The schema that holds this tenant's data.
    pub fn schema(&self) -> SchemaName {
        SchemaName(format!("t_{}", self.0.replace('-', "_")))
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for TenantSlug {
    type Error = FieldErrors;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantSlug> for String {
    fn from(value: TenantSlug) -> Self {
        value.0
    }
}

/// A tenant schema name, always `^t_[a-z0-9_]{1,40}$`.
///
/// Built from a [`TenantSlug`] or re-validated from the registry row, never from request input.
/// Because of its alphabet it is safe to splice into SQL as an identifier or a literal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SchemaName(String);

impl SchemaName {
    /// Validates a stored schema name.
    pub fn parse(raw: &str) -> Result<Self, FieldErrors> {
        let body = raw.strip_prefix("t_").unwrap_or("");
        let ok = !body.is_empty()
            && body.len() <= SLUG_MAX_LEN
            && body
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(FieldErrors::single(
                "schema",
                "schema_name",
                "نام طرحواره معتبر نیست.",
            ))
        }
    }

    /// The schema name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SchemaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lifecycle of a municipality on the platform.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    /// Serving citizens and staff.
    Active,
    /// Data kept; the portal shows a notice, the API and new jobs refuse.
    Suspended,
    /// Soft-deleted: hidden everywhere, kept and restorable.
    Archived,
}

impl TenantStatus {
    /// The value stored in `platform.tenants.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Suspended => "suspended",
            Self::Archived => "archived",
        }
    }
}

impl FromStr for TenantStatus {
    type Err = FieldErrors;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "active" => Ok(Self::Active),
            "suspended" => Ok(Self::Suspended),
            "archived" => Ok(Self::Archived),
            _ => Err(FieldErrors::single(
                "status",
                "tenant_status",
                "وضعیت شهرداری معتبر نیست.",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn good_slugs_map_to_schemas() {
        for (slug, schema) in [
            ("isfahan", "t_isfahan"),
            ("shahr-e-kord", "t_shahr_e_kord"),
            ("a1", "t_a1"),
        ] {
            let parsed = TenantSlug::parse(slug).unwrap();
            assert_eq!(parsed.schema().as_str(), schema);
            assert!(SchemaName::parse(schema).is_ok());
        }
    }

    #[test]
    fn bad_slugs_are_rejected_with_a_code() {
        let long = "a".repeat(41);
        let cases = [
            ("", "slug_length"),
            ("a", "slug_length"),
            (long.as_str(), "slug_length"),
            ("1abc", "slug_start"),
            ("Isfahan", "slug_start"),
            ("isf_ahan", "slug_chars"),
            ("isf ahan", "slug_chars"),
            ("x'; drop schema platform; --", "slug_chars"),
            ("اصفهان", "slug_start"),
            ("isfahan-", "slug_hyphen"),
            ("is--fahan", "slug_hyphen"),
            ("admin", "slug_reserved"),
        ];
        for (raw, code) in cases {
            let err = TenantSlug::parse(raw).unwrap_err();
            assert_eq!(err.0[0].code, code, "slug {raw:?}");
        }
    }

    #[test]
    fn bad_schema_names_are_rejected() {
        let long = format!("t_{}", "a".repeat(41));
        for raw in [
            "",
            "t_",
            "platform",
            "public",
            "T_isfahan",
            "t_isfahan;drop",
            "t_a\"b",
            "t_isfahan, public",
            long.as_str(),
        ] {
            assert!(SchemaName::parse(raw).is_err(), "{raw:?} accepted");
        }
    }

    #[test]
    fn status_round_trips() {
        for s in [
            TenantStatus::Active,
            TenantStatus::Suspended,
            TenantStatus::Archived,
        ] {
            assert_eq!(s.as_str().parse::<TenantStatus>().unwrap(), s);
        }
        assert!("deleted".parse::<TenantStatus>().is_err());
    }
}
