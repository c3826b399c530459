//! Domain types and rules of Miz, with no IO.
//!
//! Owns the values that carry rules (`TenantSlug`, `SchemaName`, `Hostname`, ...), the one
//! domain error type, and the payloads of background jobs (so that web and GraphQL can enqueue
//! without depending on the jobs crate). Must not touch the database, the network or the clock
//! beyond what a caller passes in.

pub mod appointments;
pub mod calendar;
pub mod catalog;
pub mod content_type;
pub mod design;
pub mod error;
pub mod form;
pub mod host;
pub mod jalali;
pub mod jobs;
pub mod limiter;
pub mod mobile;
pub mod national_code;
pub mod overrides;
pub mod password;
pub mod report;
pub mod secret;
pub mod session;
pub mod sms_templates;
pub mod sms_text;
pub mod survey;
pub mod template;
pub mod tenant;
pub mod text;
pub mod totp;
pub mod tracking;
pub mod webhook;
pub mod workflow;

pub use error::{DomainError, FieldError, FieldErrors};
pub use host::{Hostname, PublicUrls};
pub use mobile::MobileNumber;
pub use tenant::{SchemaName, TenantId, TenantSlug, TenantStatus};
