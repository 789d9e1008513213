//! `grantwatch`: see the KMS grants that no policy shows.
//!
//! Each subcommand lives in its own module; `main` only parses arguments
//! and dispatches.

mod backfill;
mod classify;
mod explain;
mod report;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "grantwatch",
    version,
    about = "See the KMS grants that no policy shows."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Classify CloudTrail grant events (files, log files, or stdin) and print one verdict per event.
    Classify(classify::Args),
    /// Why can this principal use this key? Lists the grants that allow it.
    Explain(explain::Args),
    /// Inventory every grant on every key and write the weekly report.
    Report(report::Args),
    /// Every grant event in CloudTrail log files (local or s3://), classified; --ledger-table also seeds the ledger.
    Backfill(backfill::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Classify(args) => classify::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Report(args) => report::run(args),
        Command::Backfill(args) => backfill::run(args),
    }
}
