//! `desk bench ...`: placeholder until the benchmarks land.

use crate::config::Config;
use clap::Subcommand;
use std::process::ExitCode;

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {}

/// Runs a benchmark.
pub async fn run(_config: &Config, cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
