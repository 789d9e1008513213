//! `grantwatch`: see the KMS grants that no policy shows.
//!
//! Each subcommand lives in its own module; `main` only parses arguments
//! and dispatches.

mod args;
mod backfill;
mod canary;
mod classify;
mod doctor;
mod explain;
mod reconcile;
mod redrive;
mod replay;
mod report;
mod rules_check;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "grantwatch",
    version,
    about = "See the KMS grants that no policy shows."
)]
struct Cli {
    /// More log output on stderr (-v info, -vv debug, -vvv trace; default: warnings).
    #[arg(short, long, action = clap::ArgAction::Count, global = true, conflicts_with = "quiet")]
    verbose: u8,
    /// Errors only on stderr.
    #[arg(short, long, global = true)]
    quiet: bool,
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
    /// Replay the grant events in CloudTrail log files (local or s3://) that the watcher never saw.
    Reconcile(reconcile::Args),
    /// Send the events kept on a failure queue (DLQ or on-failure destination) through the watcher again.
    Redrive(redrive::Args),
    /// Check a rules file: validity, expiry, and which verdicts of INPUTs each rule matches.
    Rules(rules_check::Args),
    /// Check a deployed stack: trail, rules, subscriptions, failure queues, errors, heartbeat, report.
    Doctor(doctor::Args),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The log level `-v`/`-q` ask for; `RUST_LOG`, when set, wins.
fn log_level(verbose: u8, quiet: bool) -> &'static str {
    match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, 2) => "debug",
        (false, _) => "trace",
    }
}

/// Colour only on a terminal, and never with `NO_COLOR` set (no-color.org).
fn use_color() -> bool {
    use std::io::IsTerminal;
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

fn init_logging(verbose: u8, quiet: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(log_level(verbose, quiet)));
    // A second initialisation (never here) would only be refused: ignore it.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(use_color())
        .try_init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    match cli.command {
        Command::Classify(args) => classify::run(args),
        Command::Explain(args) => explain::run(args),
        Command::Report(args) => report::run(args),
        Command::Backfill(args) => backfill::run(args),
        Command::Reconcile(args) => reconcile::run(args),
        Command::Redrive(args) => redrive::run(args),
        Command::Rules(args) => rules_check::run(args),
        Command::Doctor(args) => doctor::run(args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "grantwatch", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
    }
}
