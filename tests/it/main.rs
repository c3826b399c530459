//! Integration tests of Miz against a real PostgreSQL (one binary, for link time).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod api;
mod appointments;
mod attacks;
mod authz;
mod catalog;
mod developers;
mod fuzz;
mod hardening;
mod hosts;
mod inquiries;
mod jobs;
mod lifecycle;
mod migrations;
mod portal;
mod provisioning;
mod requests;
mod sla;
mod sms;
mod sms_templates;
mod sql;
mod sso;
mod staff;
mod surveys;
mod team;
mod tenancy;
mod webhooks;
