//! `grantwatch backfill --table T PATH...`: replay CloudTrail log files into
//! the grant ledger, so grants created before grantwatch was deployed have
//! provenance (who created them, and whether a service did). Records only:
//! no alert is sent, no event is marked delivered.
//!
//! PATHs are files or directories (walked recursively for `.json` and
//! `.json.gz`: CloudTrail log files, EventBridge events or bare records).
//! Events are replayed oldest first, so a removal finds its creation.
//! Idempotent: replaying the same files again writes the same records.
//!
//! Exit codes: 0 every file was read; 1 some file or record was bad (the
//! good ones were still recorded); 2 the ledger failed.

use grantwatch_aws::ledger::{DynamoLedger, DEFAULT_RETENTION_DAYS};
use grantwatch_aws::sdk;
use grantwatch_core::app::watch::{policy, record_event, WatchConfig};
use grantwatch_core::event::{parse_document, GrantEvent, Parsed};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The ledger table (the stack's `LedgerTableName` output).
    #[arg(long, env = "LEDGER_TABLE")]
    table: String,
    /// TTL of removed grants, in days (as the watcher's LEDGER_RETENTION_DAYS).
    #[arg(long, default_value_t = DEFAULT_RETENTION_DAYS)]
    retention_days: u32,
    /// CloudTrail log files or directories of them (`.json`, `.json.gz`).
    #[arg(value_name = "PATH", required = true)]
    paths: Vec<PathBuf>,
}

pub fn run(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("grantwatch backfill: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(backfill(args))
}

/// Files to read: the paths given, directories walked (sorted, so runs are
/// reproducible).
fn log_files(paths: &[PathBuf], problems: &mut Vec<String>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for path in paths {
        walk(path, &mut files, problems, true);
    }
    files
}

fn walk(path: &Path, files: &mut Vec<PathBuf>, problems: &mut Vec<String>, given: bool) {
    if path.is_dir() {
        match std::fs::read_dir(path) {
            Ok(entries) => {
                let mut children: Vec<PathBuf> =
                    entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
                children.sort();
                for child in children {
                    walk(&child, files, problems, false);
                }
            }
            Err(e) => problems.push(format!("{}: {e}", path.display())),
        }
    } else if given || is_log_file(path) {
        files.push(path.to_path_buf());
    }
}

fn is_log_file(path: &Path) -> bool {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
    name.ends_with(".json") || name.ends_with(".json.gz")
}

async fn backfill(args: Args) -> ExitCode {
    let mut problems = Vec::new();
    let mut events: Vec<GrantEvent> = Vec::new();
    let mut skipped = 0usize;
    let files = log_files(&args.paths, &mut problems);
    for file in &files {
        let bytes = match std::fs::read(file) {
            Ok(bytes) => bytes,
            Err(e) => {
                problems.push(format!("{}: {e}", file.display()));
                continue;
            }
        };
        match parse_document(&bytes) {
            Err(e) => problems.push(format!("{}: {e}", file.display())),
            Ok(records) => {
                for record in records {
                    match record {
                        Ok(Parsed::Grant(event)) => events.push(*event),
                        Ok(Parsed::NotAGrantEvent { .. }) => skipped += 1,
                        Err(e) => problems.push(format!("{}: {e}", file.display())),
                    }
                }
            }
        }
    }
    // Oldest first (RFC 3339 UTC times sort as text); unknown times last.
    events.sort_by(|a, b| {
        (a.event_time.is_none(), &a.event_time, &a.event_id).cmp(&(
            b.event_time.is_none(),
            &b.event_time,
            &b.event_id,
        ))
    });
    events.dedup_by(|a, b| a.event_id == b.event_id);

    let config = sdk::load_config().await;
    let ledger = DynamoLedger::new(
        aws_sdk_dynamodb::Client::new(&config),
        &args.table,
        args.retention_days,
    );
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let policy = policy(&WatchConfig::default(), now_ms);
    let (mut created, mut removed) = (0usize, 0usize);
    for event in &events {
        if let Err(error) = record_event(&ledger, event, &policy).await {
            eprintln!("grantwatch backfill: event {}: {error}", event.event_id);
            eprintln!(
                "grantwatch backfill: stopped after {} of {} grant events (rerun is safe)",
                created + removed,
                events.len()
            );
            return ExitCode::from(2);
        }
        let recorded = event.succeeded() && !event.dry_run && event.grant_id.is_some();
        match (recorded, event.action.is_removal()) {
            (false, _) => {}
            (true, true) => removed += 1,
            (true, false) => created += 1,
        }
    }
    for problem in &problems {
        eprintln!("grantwatch backfill: {problem}");
    }
    println!(
        "{}",
        serde_json::json!({
            "table": args.table,
            "files": files.len(),
            "grant_events": events.len(),
            "creations": created,
            "removals": removed,
            "other_records": skipped,
            "problems": problems.len(),
        })
    );
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
