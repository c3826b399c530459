//! The use cases every door shares (the citizens' site, the in-person desk, the staff portal,
//! GraphQL, Open311, the jobs): filing a request, moving it through its workflow, recording an
//! agency's answer. Each runs in one tenant transaction; what follows from it (SMS to the
//! citizen, webhooks, the survey invitation, dashboard indicators) is decided in one place,
//! [`effects`], and queued in the same transaction, so nothing is sent for a change that did
//! not commit and nothing committed goes unsent.
//!
//! `desk-db` below holds the SQL and the tenancy; the doors above call these functions.

pub mod effects;
pub mod inquiries;
pub mod intake;
pub mod surveys;
