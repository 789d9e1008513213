//! `grantwatch reconcile PATH... | s3://bucket/prefix --ledger-table TABLE
//! [--since DATE] [--until DATE] [--dry-run]`: the grant events in the
//! trail's log files that the watcher never saw (no event record in the
//! ledger: EventBridge's delivery of CloudTrail events is best effort),
//! replayed through the watcher's judgement and delivery. A missed
//! RetireGrant by a person of a service's grant still gets its
//! `service-grant-removed` alert; a replayed event is in the ledger
//! afterwards, so a second run sends nothing.
//!
//! Log files are read by [`grantwatch_core::logs`] (as `backfill`). One
//! line per missed event on stdout, a summary on stderr. Exit status: 0
//! every missed event replayed (or none missed) and every file read; 1
//! some event failed (a rerun tries it again) or some file was bad; 2
//! error (settings, the ledger unreadable: a rerun is safe).

use crate::replay::{self, WatcherArgs};
use grantwatch_aws::sdk;
use grantwatch_aws::trail::{LedgerEvents, Reconcile, ReconcileLine, S3Logs};
use grantwatch_core::logs::{LocalFiles, LogSource, Options};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// List the missed events; send nothing, write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Keep events from this day on (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "DATE", value_parser = crate::args::date)]
    since: Option<time::Date>,
    /// Keep events up to and including this day (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "DATE", value_parser = crate::args::date)]
    until: Option<time::Date>,
    /// Files read at once (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    #[command(flatten)]
    watcher: WatcherArgs,
    /// CloudTrail log files, directories of them, or `s3://bucket/prefix`.
    #[arg(value_name = "PATH", required = true)]
    paths: Vec<String>,
}

const NAME: &str = "grantwatch reconcile";

pub fn run(args: Args) -> ExitCode {
    // The SDK runs here; the log readers are std threads.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{NAME}: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match reconcile(&args, &runtime) {
        Ok(totals) if totals.failed == 0 && totals.problems == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(problem) => {
            eprintln!("{NAME}: {problem}");
            ExitCode::from(2)
        }
    }
}

fn reconcile(
    args: &Args,
    runtime: &tokio::runtime::Runtime,
) -> Result<grantwatch_aws::trail::ReconcileTotals, String> {
    if let (Some(since), Some(until)) = (args.since, args.until) {
        if since > until {
            return Err(format!("--since {since} is after --until {until}"));
        }
    }
    let table = replay::ledger_table(&args.watcher)?;
    let options = Options {
        threads: args.threads.unwrap_or(Options::default().threads).max(1),
        since: args.since,
        until: args.until,
    };
    let config = runtime.block_on(sdk::load_config());
    let deps = if args.dry_run {
        None
    } else {
        Some(runtime.block_on(replay::watcher_deps(&args.watcher, &config))?)
    };
    let (s3_uris, local): (Vec<&String>, Vec<&String>) =
        args.paths.iter().partition(|p| p.starts_with("s3://"));
    let mut sources: Vec<Box<dyn LogSource>> = Vec::new();
    let mut walk_problems = 0;
    if !local.is_empty() {
        let paths: Vec<PathBuf> = local.iter().map(PathBuf::from).collect();
        let (files, problems) = LocalFiles::discover(&paths, &options);
        for problem in &problems {
            eprintln!("{NAME}: {problem}");
        }
        walk_problems = problems.len();
        sources.push(Box::new(files));
    }
    for uri in s3_uris {
        let listed = runtime.block_on(S3Logs::list(
            sdk::s3_client(&config),
            uri,
            &options,
            runtime.handle().clone(),
        ));
        sources.push(Box::new(listed.map_err(|e| format!("{uri}: {e}"))?));
    }
    let seen = LedgerEvents::new(aws_sdk_dynamodb::Client::new(&config), &table);
    // Owns the replays' leases: unique per run, so two runs at once never
    // both hold one.
    let owner = format!(
        "reconcile-{}-{}",
        std::process::id(),
        time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000
    );
    let mut run = Reconcile::new(&seen, deps.as_ref(), runtime.handle().clone(), owner);
    let mut print = |line: ReconcileLine| match line {
        ReconcileLine::Missed(what) => println!("missed: {what}"),
        ReconcileLine::Replayed(what) => println!("replayed: {what}"),
        ReconcileLine::Failed(what) => println!("failed: {what}"),
        ReconcileLine::Problem(what) => eprintln!("{NAME}: {what}"),
    };
    let mut stopped = None;
    for source in &sources {
        if let Err(error) = run.run(source.as_ref(), &options, &mut print) {
            stopped = Some(error);
            break;
        }
    }
    let mut totals = run.totals;
    totals.problems += walk_problems;
    eprintln!(
        "{NAME}: {} files, {} grant events: {} seen by the watcher, {} missed, {} replayed, {} failed, {} problems{}",
        totals.files,
        totals.events,
        totals.seen,
        totals.missed,
        totals.replayed,
        totals.failed,
        totals.problems,
        if args.dry_run { " (dry run)" } else { "" }
    );
    match stopped {
        Some(error) => Err(format!(
            "the ledger {table} could not be read: {error} (rerun is safe)"
        )),
        None => Ok(totals),
    }
}
