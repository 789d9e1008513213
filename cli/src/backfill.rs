//! `grantwatch backfill PATH... | s3://bucket/prefix [--since DATE]
//! [--until DATE] [--ledger-table TABLE]`: every grant event in CloudTrail
//! log files, classified, on stdout as the same JSON Lines as `classify`.
//! With `--ledger-table` the events are also recorded in the ledger, so the
//! report knows who created grants made before grantwatch was deployed
//! (records only: no alert is sent, no event is marked delivered). Without
//! it nothing is written anywhere.
//!
//! PATHs are files, directories (walked for `.json` and `.json.gz`, digests
//! skipped, symlink loops not followed) or `s3://bucket/prefix`. The reader
//! is [`grantwatch_core::logs`]: all cores, files handed back in order
//! (CloudTrail's layout sorts each account-region oldest first), events in
//! a file oldest first. A duplicate event (same `eventID`) is reported once.
//! Idempotent: replaying the same files again writes the same records.
//!
//! Exit codes: 0 every file was read; 1 some file or record was bad (the
//! good ones were still printed and recorded); 2 usage error, or the ledger
//! failed (rerun is safe).

use grantwatch_aws::ledger::{DynamoLedger, DEFAULT_RETENTION_DAYS};
use grantwatch_aws::sdk;
use grantwatch_aws::trail::S3Logs;
use grantwatch_core::app::watch::{grant_record, record_event};
use grantwatch_core::event::{GrantAction, GrantEvent};
use grantwatch_core::judge::{judge_event, Policy};
use grantwatch_core::logs::{self, FileResult, LocalFiles, LogSource, Options};
use grantwatch_core::record::GrantRecord;
use grantwatch_core::trust::TrustSetting;
use grantwatch_core::verdict::Verdict;
use std::collections::{HashMap, HashSet};
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// Also record the events in this ledger table (the stack's
    /// `LedgerTableName` output). Without it nothing is written.
    #[arg(long, alias = "table", env = "LEDGER_TABLE")]
    ledger_table: Option<String>,
    /// TTL of removed grants, in days (as the watcher's LEDGER_RETENTION_DAYS).
    #[arg(long, default_value_t = DEFAULT_RETENTION_DAYS)]
    retention_days: u32,
    /// Keep events from this day on (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "DATE", value_parser = crate::args::date)]
    since: Option<time::Date>,
    /// Keep events up to and including this day (YYYY-MM-DD, UTC).
    #[arg(long, value_name = "DATE", value_parser = crate::args::date)]
    until: Option<time::Date>,
    /// Rules, alert threshold, trust zone, grant-count threshold.
    #[command(flatten)]
    policy: crate::args::PolicyArgs,
    /// Files read at once (default: one per core).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// CloudTrail log files, directories of them, or `s3://bucket/prefix`.
    #[arg(value_name = "PATH", required = true)]
    paths: Vec<String>,
}

const NAME: &str = "grantwatch backfill";

pub fn run(args: Args) -> ExitCode {
    let rules = match args.policy.rules() {
        Ok(rules) => rules,
        Err(e) => {
            eprintln!("{NAME}: {e}");
            return ExitCode::from(2);
        }
    };
    if let (Some(since), Some(until)) = (args.since, args.until) {
        if since > until {
            eprintln!("{NAME}: --since {since} is after --until {until}");
            return ExitCode::from(2);
        }
    }
    let options = Options {
        threads: args.threads.unwrap_or(Options::default().threads).max(1),
        since: args.since,
        until: args.until,
    };
    // The SDK (S3 input, the ledger) runs here; the readers are std threads.
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
    let (s3_uris, local): (Vec<&String>, Vec<&String>) =
        args.paths.iter().partition(|p| p.starts_with("s3://"));
    // AWS only when something needs it: S3 logs, the ledger, or ORG.
    let needs_aws = !s3_uris.is_empty()
        || args.ledger_table.is_some()
        || args.policy.trusted_accounts == TrustSetting::Org;
    let config = if !needs_aws {
        None
    } else {
        Some(runtime.block_on(sdk::load_config()))
    };
    let mut problems = 0usize;
    let mut sources: Vec<Box<dyn LogSource>> = Vec::new();
    if !local.is_empty() {
        let paths: Vec<PathBuf> = local.iter().map(PathBuf::from).collect();
        let (files, walk_problems) = LocalFiles::discover(&paths, &options);
        for problem in &walk_problems {
            eprintln!("{NAME}: {problem}");
        }
        problems += walk_problems.len();
        sources.push(Box::new(files));
    }
    if let Some(config) = &config {
        for uri in s3_uris {
            let listed = S3Logs::list(
                sdk::s3_client(config),
                uri,
                &options,
                runtime.handle().clone(),
            );
            match runtime.block_on(listed) {
                Ok(objects) => sources.push(Box::new(objects)),
                Err(e) => {
                    eprintln!("{NAME}: {uri}: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    }
    let ledger = match (&config, &args.ledger_table) {
        (Some(config), Some(table)) => Some(DynamoLedger::new(
            aws_sdk_dynamodb::Client::new(config),
            table,
            args.retention_days,
        )),
        _ => None,
    };
    let today = time::OffsetDateTime::now_utc().date();
    let trust_zone = match &config {
        Some(config) => runtime.block_on(args.policy.aws_trust_zone(NAME, config)),
        None => args.policy.offline_trust_zone(NAME),
    };
    let policy = Policy {
        rules,
        min_alert_severity: args.policy.min_severity,
        today,
        trust_zone,
    };
    let mut replay = Replay {
        policy,
        ledger: ledger.as_ref(),
        runtime: &runtime,
        out: BufWriter::new(io::stdout().lock()),
        seen_events: HashSet::new(),
        seen_grants: SeenGrants::default(),
        progress: Progress::new(sources.iter().map(|s| s.len()).sum()),
        totals: Totals::default(),
        stopped: None,
    };
    for source in &sources {
        logs::scan(source.as_ref(), &options, |file| replay.file(file));
        if replay.stopped.is_some() {
            break;
        }
    }
    replay.progress.finish();
    let flushed = replay.out.flush();
    let totals = &replay.totals;
    problems += totals.problems;
    eprintln!(
        "{NAME}: {} files ({:.1} MB), {} records: {} grant events{}, {} other records, {} outside the dates, {} duplicates, {} problems",
        totals.files,
        totals.bytes as f64 / 1e6,
        totals.records,
        totals.events,
        if ledger.is_some() {
            format!(" ({} creations and {} removals recorded)", totals.created, totals.removed)
        } else {
            String::new()
        },
        totals.other,
        totals.out_of_range,
        totals.duplicates,
        problems,
    );
    match replay.stopped {
        Some(Stop::Ledger(e)) => {
            eprintln!("{NAME}: the ledger failed: {e}");
            eprintln!(
                "{NAME}: stopped after {} grant events (rerun is safe)",
                totals.events
            );
            return ExitCode::from(2);
        }
        Some(Stop::Output(e)) => return output_failed(e),
        None => {}
    }
    if let Err(e) = flushed {
        return output_failed(e);
    }
    if problems == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// A closed pipe (`| head`) is the reader's choice, not an error.
fn output_failed(e: io::Error) -> ExitCode {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("{NAME}: cannot write output: {e}");
    ExitCode::from(1)
}

#[derive(Default)]
struct Totals {
    files: usize,
    bytes: u64,
    records: u64,
    events: usize,
    other: u64,
    out_of_range: u64,
    duplicates: usize,
    created: usize,
    removed: usize,
    problems: usize,
}

enum Stop {
    Ledger(String),
    Output(io::Error),
}

/// Judges and prints (and, with a ledger, records) each file's events, in
/// the order the reader hands them over.
struct Replay<'a, W: Write> {
    policy: Policy,
    ledger: Option<&'a DynamoLedger>,
    runtime: &'a tokio::runtime::Runtime,
    out: W,
    /// Event ids seen, as 64-bit hashes (16 bytes each in the set, not the
    /// id): memory grows with grant events only, slowly.
    seen_events: HashSet<u64>,
    seen_grants: SeenGrants,
    progress: Progress,
    totals: Totals,
    stopped: Option<Stop>,
}

impl<W: Write> Replay<'_, W> {
    /// One file's result; `false` stops the scan.
    fn file(&mut self, file: FileResult) -> bool {
        let totals = &mut self.totals;
        totals.files += 1;
        totals.bytes += file.bytes;
        totals.records += file.records;
        totals.other += file.other_records();
        totals.out_of_range += file.out_of_range;
        if let Some(reason) = &file.failed {
            self.progress.clear();
            eprintln!("{NAME}: {}: {reason}", file.name);
            totals.problems += 1;
        }
        for problem in &file.problems {
            self.progress.clear();
            eprintln!("{NAME}: {}: {problem}", file.name);
            totals.problems += 1;
        }
        for event in file.events {
            if !self.seen_events.insert(id_hash(&event.event_id)) {
                self.totals.duplicates += 1;
                continue;
            }
            self.totals.events += 1;
            if let Err(stop) = self.event(&event) {
                self.stopped = Some(stop);
                return false;
            }
        }
        self.progress.update(&self.totals);
        true
    }

    fn event(&mut self, event: &GrantEvent) -> Result<(), Stop> {
        let verdict = match self.ledger {
            Some(ledger) => {
                let verdict = self
                    .runtime
                    .block_on(record_event(ledger, event, &self.policy))
                    .map_err(|e| Stop::Ledger(e.to_string()))?;
                if event.succeeded() && !event.dry_run && event.grant_id.is_some() {
                    if event.action.is_removal() {
                        self.totals.removed += 1;
                    } else {
                        self.totals.created += 1;
                    }
                }
                verdict
            }
            None => {
                let verdict = judge_event(event, self.seen_grants.get(event), &self.policy);
                self.seen_grants.remember(event, &verdict);
                self.seen_grants.forget_removed(event);
                verdict
            }
        };
        let line =
            serde_json::to_string(&verdict).map_err(|e| Stop::Output(io::Error::other(e)))?;
        writeln!(self.out, "{line}").map_err(Stop::Output)
    }
}

/// A stable 64-bit hash of an event id (FNV-1a: the same in every run).
fn id_hash(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Grants created earlier in this run and not yet removed, by grant id: a
/// RetireGrant later in the logs is judged against what it removed, as
/// `classify` does. A removed grant is forgotten, so memory follows the
/// grants alive, not the length of the logs.
#[derive(Default)]
pub(crate) struct SeenGrants(HashMap<String, GrantRecord>);

impl SeenGrants {
    pub(crate) fn get(&self, event: &GrantEvent) -> Option<&GrantRecord> {
        if !event.action.is_removal() {
            return None;
        }
        event.grant_id.as_deref().and_then(|id| self.0.get(id))
    }

    pub(crate) fn forget_removed(&mut self, event: &GrantEvent) {
        if event.action.is_removal() && event.succeeded() && !event.dry_run {
            if let Some(id) = event.grant_id.as_deref() {
                self.0.remove(id);
            }
        }
    }

    pub(crate) fn remember(&mut self, event: &GrantEvent, verdict: &Verdict) {
        if event.action != GrantAction::CreateGrant || !event.succeeded() || event.dry_run {
            return;
        }
        if let (Some(key_arn), Some(grant_id)) =
            (verdict.key_arn.as_deref(), event.grant_id.as_deref())
        {
            self.0.insert(
                grant_id.to_string(),
                grant_record(event, verdict, key_arn, grant_id),
            );
        }
    }
}

/// Progress on stderr, only when stderr is a terminal, at most 5 times a
/// second.
struct Progress {
    on: bool,
    total_files: usize,
    started: Instant,
    last: Option<Instant>,
    shown: bool,
}

impl Progress {
    fn new(total_files: usize) -> Progress {
        Progress {
            on: io::stderr().is_terminal(),
            total_files,
            started: Instant::now(),
            last: None,
            shown: false,
        }
    }

    fn update(&mut self, totals: &Totals) {
        if !self.on
            || self
                .last
                .is_some_and(|t| t.elapsed() < Duration::from_millis(200))
        {
            return;
        }
        self.last = Some(Instant::now());
        let seconds = self.started.elapsed().as_secs_f64().max(0.001);
        eprint!(
            "\r{NAME}: {}/{} files, {:.1} MB ({:.0} MB/s), {} grant events\x1b[K",
            totals.files,
            self.total_files,
            totals.bytes as f64 / 1e6,
            totals.bytes as f64 / 1e6 / seconds,
            totals.events
        );
        self.shown = true;
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }

    fn finish(&mut self) {
        self.clear();
    }
}
