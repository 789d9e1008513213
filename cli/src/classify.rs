//! `grantwatch classify`: CloudTrail grant events in, one verdict per
//! event out (JSON Lines), or the exact alert payloads with `--render`.
//!
//! Exit codes: 0 every input was read; 1 some input (or record) was bad,
//! the good ones were still printed; 2 usage error (bad rules file, bad
//! option).

use grantwatch_core::app::watch::{grant_record, removal};
use grantwatch_core::correlate::CorrelationSettings;
use grantwatch_core::event::{parse_document, GrantEvent, Parsed};
use grantwatch_core::grant::{parse_list_grants, ListGrantsError, StandingGrant};
use grantwatch_core::judge::{judge_event_with, judge_key, Policy};
use grantwatch_core::ports::ledger::{GrantLedger, MemoryLedger};
use grantwatch_core::record::GrantRecord;
use grantwatch_core::render;
use grantwatch_core::verdict::Verdict;
use std::io::{self, BufWriter, Read, Write};
use std::process::ExitCode;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RenderTarget {
    /// The Slack incoming-webhook payload (Block Kit).
    Slack,
    /// `{subject, message, attributes}` as published to SNS.
    Sns,
}

/// `--output`: the verdict contract, or a security tool's format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One verdict per line (JSON Lines): the CLI contract.
    #[default]
    Json,
    /// AWS Security Finding Format, one finding per line, as the watcher
    /// imports them into Security Hub (`BatchImportFindings`).
    Asff,
    /// OCSF Detection Finding (class 2004), one per line.
    Ocsf,
}

#[derive(clap::Args)]
pub struct Args {
    /// Output format: json (verdicts, default), asff (Security Hub), ocsf (SIEM).
    #[arg(
        long,
        value_enum,
        value_name = "FORMAT",
        default_value = "json",
        conflicts_with = "render"
    )]
    output: Output,
    /// Where alert and finding links point for runbooks (`<base>/<code>.md`).
    #[arg(long, env = "RUNBOOK_BASE_URL", value_name = "URL", default_value = render::links::DEFAULT_RUNBOOK_BASE_URL)]
    runbook_base_url: String,
    /// Rules, alert threshold, trust zone, grant-count threshold.
    #[command(flatten)]
    policy: crate::args::PolicyArgs,
    /// Print, for each event that would alert, the payload the watcher sends.
    #[arg(long, value_enum, value_name = "TARGET")]
    render: Option<RenderTarget>,
    /// The date rules expire against (YYYY-MM-DD); default today (UTC).
    #[arg(long, value_name = "DATE", value_parser = crate::args::date)]
    today: Option<time::Date>,
    /// Also print a count of events, skipped records and bad inputs on stderr.
    #[arg(long)]
    stats: bool,
    /// CloudTrail records, EventBridge events or CloudTrail log files (plain
    /// or gzip); stdin when none is given or for `-`.
    #[arg(value_name = "PATH")]
    paths: Vec<String>,
}

const STDIN: &str = "-";

#[derive(Default)]
struct Counts {
    events: usize,
    skipped: usize,
    bad: usize,
}

/// The run's ledger: the watcher's in-memory ledger ([`MemoryLedger`]),
/// holding the grants created earlier in this input and their removals. A
/// RetireGrant later in the same input is judged against what it removed,
/// and a CreateGrant is correlated with the key's other grants
/// (duplicates, bursts, re-creation), as the watcher does with its ledger.
struct RunLedger {
    ledger: MemoryLedger,
    /// Its calls complete at once; a current-thread runtime drives them.
    runtime: tokio::runtime::Runtime,
}

/// The most records of one key correlation looks at, newest first (a
/// bound on the work per event in a huge log file).
const MAX_PER_KEY: usize = 1000;

impl RunLedger {
    fn new() -> io::Result<RunLedger> {
        Ok(RunLedger {
            ledger: MemoryLedger::new(),
            runtime: tokio::runtime::Builder::new_current_thread().build()?,
        })
    }

    /// The grant a removal removed, when this input created it.
    fn known(&self, event: &GrantEvent) -> Option<GrantRecord> {
        match (event.action.is_removal(), grant_ref(event)) {
            (true, Some((key_arn, grant_id))) => self
                .runtime
                .block_on(self.ledger.get_grant(key_arn, grant_id))
                .ok()
                .flatten(),
            _ => None,
        }
    }

    /// The key's grants seen so far (live and removed), oldest first.
    fn of_key(&self, event: &GrantEvent) -> Vec<GrantRecord> {
        let Some(key_arn) = event.key_arn.as_deref() else {
            return Vec::new();
        };
        let mut records = self
            .runtime
            .block_on(self.ledger.grants_of_key(key_arn))
            .unwrap_or_default();
        records.sort_by(|a, b| a.created_at.cmp(&b.created_at));
        let newest = records.len().saturating_sub(MAX_PER_KEY);
        records.split_off(newest)
    }

    /// Record what a successful call changed, as the watcher does: the
    /// grant created, or the first removal of a grant this input created.
    fn remember(&self, event: &GrantEvent, verdict: &Verdict) {
        if !event.succeeded() || event.dry_run {
            return;
        }
        let Some((key_arn, grant_id)) = verdict.key_arn.as_deref().zip(event.grant_id.as_deref())
        else {
            return;
        };
        let ledger = &self.ledger;
        let recorded = self.runtime.block_on(async {
            if !event.action.is_removal() {
                return ledger
                    .record_grant(&grant_record(event, verdict, key_arn, grant_id))
                    .await;
            }
            match ledger.get_grant(key_arn, grant_id).await? {
                Some(known) if known.removal.is_none() => ledger
                    .record_removal(key_arn, grant_id, &removal(event, verdict))
                    .await
                    .map(|_| ()),
                _ => Ok(()),
            }
        });
        // A memory ledger fails only when told to (`fail_with`, tests).
        if let Err(e) = recorded {
            eprintln!("grantwatch classify: the run's ledger: {e}");
        }
    }
}

/// The grant a call names: its key's ARN and the grant id.
fn grant_ref(event: &GrantEvent) -> Option<(&str, &str)> {
    event.key_arn.as_deref().zip(event.grant_id.as_deref())
}

pub fn run(args: Args) -> ExitCode {
    let rules = match args.policy.rules() {
        Ok(rules) => rules,
        Err(e) => {
            eprintln!("grantwatch classify: {e}");
            return ExitCode::from(2);
        }
    };
    let policy = Policy {
        rules,
        min_alert_severity: args.policy.min_severity,
        today: args
            .today
            .unwrap_or_else(|| time::OffsetDateTime::now_utc().date()),
        trust_zone: args.policy.offline_trust_zone("grantwatch classify"),
    };
    let paths = if args.paths.is_empty() {
        vec![STDIN.to_string()]
    } else {
        args.paths.clone()
    };

    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut counts = Counts::default();
    let seen = match RunLedger::new() {
        Ok(ledger) => ledger,
        Err(e) => {
            eprintln!("grantwatch classify: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    for path in &paths {
        let name = if path == STDIN {
            "<stdin>"
        } else {
            path.as_str()
        };
        let format = Format {
            render: args.render,
            output: args.output,
            links: render::links::LinkSettings::with_runbook_base(&args.runbook_base_url),
            now: now_rfc3339(),
        };
        let judging = Judging {
            policy: &policy,
            grant_count_threshold: args.policy.grant_count_threshold,
        };
        match classify_input(path, &judging, &format, &mut out, &mut counts, &seen) {
            Ok(()) => {}
            Err(InputError::Bad(problems)) => {
                counts.bad += 1;
                for problem in problems {
                    eprintln!("grantwatch classify: {name}: {problem}");
                }
            }
            Err(InputError::Output(e)) => return output_failed(e),
        }
    }
    if let Err(e) = out.flush() {
        return output_failed(e);
    }
    if args.stats {
        eprintln!(
            "grantwatch classify: {} grant events, {} other records skipped, {} bad inputs",
            counts.events, counts.skipped, counts.bad
        );
    }
    if counts.bad > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// A closed pipe (`| head`) is the reader's choice, not an error.
fn output_failed(e: io::Error) -> ExitCode {
    if e.kind() == io::ErrorKind::BrokenPipe {
        return ExitCode::SUCCESS;
    }
    eprintln!("grantwatch classify: cannot write output: {e}");
    ExitCode::from(1)
}

enum InputError {
    /// What is wrong with the input, one line each (a log file may have
    /// several bad records).
    Bad(Vec<String>),
    Output(io::Error),
}

fn read_input(path: &str) -> Result<Vec<u8>, String> {
    // Read one byte past the parser's limit so it can say "too large".
    let limit = grantwatch_core::event::MAX_INPUT_BYTES as u64 + 1;
    let mut bytes = Vec::new();
    let result = if path == STDIN {
        io::stdin().lock().take(limit).read_to_end(&mut bytes)
    } else {
        std::fs::File::open(path).and_then(|f| f.take(limit).read_to_end(&mut bytes))
    };
    result.map_err(|e| format!("cannot read: {e}"))?;
    Ok(bytes)
}

/// What every event is judged with.
struct Judging<'a> {
    policy: &'a Policy,
    grant_count_threshold: usize,
}

fn classify_input(
    path: &str,
    judging: &Judging<'_>,
    format: &Format,
    out: &mut impl Write,
    counts: &mut Counts,
    seen: &RunLedger,
) -> Result<(), InputError> {
    let policy = judging.policy;
    let bytes = read_input(path).map_err(|e| InputError::Bad(vec![e]))?;
    if let Some(grants) = list_grants(&bytes) {
        let grants = grants.map_err(|e| InputError::Bad(vec![e.to_string()]))?;
        counts.events += grants.len();
        return print_standing(&grants, policy, judging.grant_count_threshold, out)
            .map_err(InputError::Output);
    }
    let records = parse_document(&bytes).map_err(|e| InputError::Bad(vec![e.to_string()]))?;
    let mut problems = Vec::new();
    for record in records {
        match record {
            Ok(Parsed::Grant(event)) => {
                counts.events += 1;
                let live = seen.of_key(&event);
                let known = seen.known(&event);
                let verdict = judge_event_with(
                    &event,
                    known.as_ref(),
                    &live,
                    policy,
                    &CorrelationSettings::default(),
                );
                seen.remember(&event, &verdict);
                match print_verdict(&verdict, format, out) {
                    Ok(()) => {}
                    Err(PrintError::Output(e)) => return Err(InputError::Output(e)),
                    Err(PrintError::Format(problem)) => problems.push(problem),
                }
            }
            Ok(Parsed::NotAGrantEvent { .. }) => counts.skipped += 1,
            Err(e) => problems.push(e.to_string()),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(InputError::Bad(problems))
    }
}

/// `aws kms list-grants` output (`{"Grants": [...]}`), when the input is
/// that: the grants that stand now, judged as the report judges them.
fn list_grants(bytes: &[u8]) -> Option<Result<Vec<StandingGrant>, ListGrantsError>> {
    let text = std::str::from_utf8(bytes).ok()?;
    if !text.trim_start().starts_with('{') || !text.contains("\"Grants\"") {
        return None;
    }
    let document: serde_json::Value = serde_json::from_str(text).ok()?;
    parse_list_grants(&document)
}

/// One JSON line per standing grant, judged per key as the report does
/// (duplicates and grant count before the rules).
fn print_standing(
    grants: &[StandingGrant],
    policy: &Policy,
    grant_count_threshold: usize,
    out: &mut impl Write,
) -> io::Result<()> {
    let mut keys: Vec<&str> = Vec::new();
    for g in grants {
        if !keys.contains(&g.key_arn.as_str()) {
            keys.push(&g.key_arn);
        }
    }
    for key in keys {
        let of_key: Vec<StandingGrant> = grants
            .iter()
            .filter(|g| g.key_arn == key)
            .cloned()
            .collect();
        let judgements = judge_key(&of_key, |_| None, policy, grant_count_threshold);
        for (g, j) in of_key.iter().zip(judgements) {
            let line = serde_json::json!({
                "kind": "standing-grant",
                "grant_id": g.grant_id,
                "key_arn": g.key_arn,
                "account": g.account,
                "region": g.region,
                "name": g.facts.name,
                "grantee": g.facts.effective_grantee(),
                "retiring_principal": g.facts.effective_retiring_principal(),
                "operations": g.facts.operations,
                "constraints": g.facts.constraints,
                "created": g.created,
                "issuing_account": g.issuing_account,
                "origin": j.origin.origin,
                "service": j.origin.service,
                "evidence": j.origin.evidence,
                "severity": j.severity,
                "alert": j.suppressed_by.is_none() && j.severity >= policy.min_alert_severity,
                "findings": j.findings,
                "suppressed_by": j.suppressed_by,
                "rule_notes": j.rule_notes,
            });
            writeln!(out, "{line}")?;
        }
    }
    Ok(())
}

/// How verdicts are printed.
struct Format {
    render: Option<RenderTarget>,
    output: Output,
    links: render::links::LinkSettings,
    /// `UpdatedAt` of ASFF findings.
    now: String,
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

enum PrintError {
    Output(io::Error),
    /// This verdict cannot be written in the chosen format (e.g. ASFF needs
    /// an account id): reported like a bad record.
    Format(String),
}

fn print_verdict(
    verdict: &Verdict,
    format: &Format,
    out: &mut impl Write,
) -> Result<(), PrintError> {
    let line = match (format.render, format.output) {
        (Some(_), _) if !verdict.alert => return Ok(()),
        (Some(RenderTarget::Slack), _) => {
            serde_json::to_string(&render::slack::alert_with(verdict, &format.links))
        }
        (Some(RenderTarget::Sns), _) => {
            serde_json::to_string(&render::sns::alert_with(verdict, &format.links))
        }
        (None, Output::Json) => serde_json::to_string(verdict),
        (None, Output::Asff) => {
            let finding = render::asff::finding(verdict, &format.now, &format.links)
                .map_err(|e| PrintError::Format(format!("no ASFF finding: {e}")))?;
            serde_json::to_string(&finding)
        }
        (None, Output::Ocsf) => {
            let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
            serde_json::to_string(&render::ocsf::detection_finding(
                verdict,
                now_ms,
                env!("CARGO_PKG_VERSION"),
            ))
        }
    }
    .map_err(|e| PrintError::Output(io::Error::other(e)))?;
    writeln!(out, "{line}").map_err(PrintError::Output)
}
