//! Composition of Miz: configuration, the application router, and the commands of the `desk`
//! binary (which stays a thin `main.rs` over this library, so tests can build the real app).

pub mod app;
pub mod bench;
mod bench_sms;
mod bench_soak;
pub mod bench_submit;
pub mod commands;
pub mod config;
pub mod demo;
