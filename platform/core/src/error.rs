//! The one domain error every surface renders in its own way.

use serde::Serialize;

/// A validation problem with one input field, with a message people can read (Persian).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Name of the field as the caller sent it.
    pub field: String,
    /// Stable machine-readable code (snake_case).
    pub code: &'static str,
    /// Human message in Persian.
    pub message: String,
}

/// All field errors of one input.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FieldErrors(pub Vec<FieldError>);

impl FieldErrors {
    /// One error for one field.
    pub fn single(field: &str, code: &'static str, message: impl Into<String>) -> Self {
        Self(vec![FieldError {
            field: field.to_owned(),
            code,
            message: message.into(),
        }])
    }

    /// Adds an error for a field.
    pub fn push(&mut self, field: &str, code: &'static str, message: &str) {
        self.0.push(FieldError {
            field: field.to_owned(),
            code,
            message: message.to_owned(),
        });
    }
}

impl std::fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|e| format!("{}: {} ({})", e.field, e.message, e.code))
            .collect();
        f.write_str(&parts.join("; "))
    }
}

/// The domain error of Miz: what went wrong, independent of how it is shown.
#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The thing does not exist, or the caller may not know that it exists.
    #[error("not found")]
    NotFound,
    /// The change conflicts with existing state (a duplicate slug, a stale version).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The input is invalid.
    #[error("invalid input: {0}")]
    Validation(FieldErrors),
    /// The caller is known but not allowed to do this.
    #[error("forbidden")]
    Forbidden,
    /// Too many attempts; try again after this many seconds. The message is Persian.
    #[error("rate limited: {message}")]
    RateLimited {
        /// Seconds until a retry may succeed.
        retry_after: u64,
        /// What to tell the person.
        message: String,
    },
    /// The database cannot be reached for now (restarting, failing over, out of
    /// connections): nothing was done; the same request may be sent again shortly.
    #[error("temporarily unavailable")]
    Unavailable,
    /// Anything else; its cause is logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl DomainError {
    /// The stable snake_case code of this error, used by the JSON and GraphQL renderers.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Conflict(_) => "conflict",
            Self::Validation(_) => "invalid_input",
            Self::Forbidden => "forbidden",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl DomainError {
    /// Seconds a client should wait before retrying after [`DomainError::Unavailable`].
    pub const UNAVAILABLE_RETRY_AFTER: u64 = 5;

    /// What a citizen or staff member reads when the database is unreachable.
    pub const UNAVAILABLE_FA: &'static str =
        "سامانه چند لحظه در دسترس نیست و کاری انجام نشد؛ چند ثانیه دیگر دوباره تلاش کنید.";
}

impl From<FieldErrors> for DomainError {
    fn from(value: FieldErrors) -> Self {
        Self::Validation(value)
    }
}
