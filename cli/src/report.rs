//! `grantwatch report`: the weekly report from a terminal, with the
//! caller's credentials, written into a directory (the same four files the
//! Lambda stores in S3). Progress per account-region goes to stderr.
//!
//! A `report.json` already in the directory (last run's) is the diff's
//! base. Exit status: 0 complete, 1 written but partial (see its
//! coverage), 2 error.

use grantwatch_aws::directory::AwsDirectory;
use grantwatch_aws::inventory::{KmsInventory, RetryPolicy, DEFAULT_LISTGRANTS_RATE};
use grantwatch_aws::ledger::{DynamoLedger, DEFAULT_RETENTION_DAYS};
use grantwatch_aws::scope::{MemberKmsClients, DEFAULT_MEMBER_ROLE};
use grantwatch_aws::sdk;
use grantwatch_core::app::report::{
    run_report, NoChannel, NoDeadline, Progress, ReportDeps, ReportOptions, ReportRequest,
};
use grantwatch_core::judge::Policy;
use grantwatch_core::ports::inventory::{
    AccountDirectory, AccountRegion, AccountSelection, LedgerProvenance, ReportStore, StoredReport,
};
use grantwatch_core::ports::PortError;
use grantwatch_core::report::{AccountRegionCoverage, CoverageStatus, REPORT_JSON};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

#[derive(clap::Args)]
pub struct Args {
    /// Directory to write report.json, grants.csv, report.html and summary.md into.
    #[arg(long)]
    out: PathBuf,
    /// Regions (comma-separated); default: the configured region.
    #[arg(long, value_delimiter = ',', env = "REPORT_REGIONS")]
    regions: Vec<String>,
    /// Accounts (comma-separated 12-digit ids); default: the caller's account.
    #[arg(long, value_delimiter = ',', conflicts_with = "org")]
    accounts: Vec<String>,
    /// Every active account of the AWS Organization.
    #[arg(long)]
    org: bool,
    /// Read-only role to assume in other accounts.
    #[arg(long, default_value = DEFAULT_MEMBER_ROLE)]
    role: String,
    /// ExternalId for the member role.
    #[arg(long)]
    external_id: Option<String>,
    /// The grant ledger (DynamoDB table): who created each grant.
    #[arg(long, env = "LEDGER_TABLE")]
    ledger_table: Option<String>,
    /// files (default: the written files' paths on stdout) or json (the
    /// summary as one JSON object on stdout; the files are written either way).
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "files")]
    output: ReportOutput,
    /// ListGrants calls per second per account-region (KMS allows 100).
    #[arg(long, default_value_t = DEFAULT_LISTGRANTS_RATE)]
    rate: f64,
    /// Rules, alert threshold, trust zone, grant-count threshold: as the
    /// report Lambda's settings of the same names.
    #[command(flatten)]
    policy: crate::args::PolicyArgs,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportOutput {
    Files,
    Json,
}

/// The report files in a local directory.
struct DirStore {
    dir: PathBuf,
}

impl ReportStore for DirStore {
    async fn put(
        &self,
        _date: &str,
        file_name: &str,
        body: Vec<u8>,
        _content_type: &str,
    ) -> Result<String, PortError> {
        let path = self.dir.join(file_name);
        std::fs::write(&path, body)
            .map_err(|e| PortError::Permanent(format!("{}: {e}", path.display())))?;
        Ok(path.display().to_string())
    }

    async fn recent_reports(&self, _limit: usize) -> Result<Vec<StoredReport>, PortError> {
        let path = self.dir.join(REPORT_JSON);
        match std::fs::read(&path) {
            Ok(body) => Ok(vec![StoredReport {
                location: path.display().to_string(),
                body,
            }]),
            Err(_) => Ok(Vec::new()),
        }
    }

    async fn link(&self, location: &str) -> Result<String, PortError> {
        let absolute = std::fs::canonicalize(location).unwrap_or_else(|_| PathBuf::from(location));
        Ok(format!("file://{}", absolute.display()))
    }
}

/// One stderr line per account-region.
struct TerminalProgress {
    started: AtomicUsize,
    finished: AtomicUsize,
}

impl Progress for TerminalProgress {
    fn started(&self, at: &AccountRegion) {
        let n = self.started.fetch_add(1, Ordering::SeqCst) + 1;
        eprintln!("  reading {at} ({n} started)");
    }

    fn finished(&self, c: &AccountRegionCoverage) {
        let n = self.finished.fetch_add(1, Ordering::SeqCst) + 1;
        let status = match c.status {
            CoverageStatus::Complete => "complete",
            CoverageStatus::Partial => "PARTIAL",
            CoverageStatus::Unread => "NOT READ",
        };
        eprintln!(
            "  [{n} done] {}/{}: {} keys ({} complete), {} grants, {status}",
            c.account, c.region, c.keys_listed, c.keys_complete, c.grants
        );
    }
}

pub fn run(args: Args) -> ExitCode {
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("grantwatch report: cannot start: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(report(args)) {
        Ok(code) => code,
        Err(problem) => {
            eprintln!("grantwatch report: {problem}");
            ExitCode::from(2)
        }
    }
}

async fn report(args: Args) -> Result<ExitCode, String> {
    if !(args.rate > 0.0 && args.rate <= 100.0) {
        return Err(format!(
            "--rate {}: must be above 0 and at most 100",
            args.rate
        ));
    }
    let rules = args.policy.rules()?;
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let config = sdk::load_config().await;
    let regions = if args.regions.is_empty() {
        config
            .region()
            .map(|r| vec![r.to_string()])
            .ok_or("no region: pass --regions or set AWS_REGION")?
    } else {
        args.regions.clone()
    };
    let accounts = if args.org {
        AccountSelection::Organization
    } else if args.accounts.is_empty() {
        AccountSelection::This
    } else {
        AccountSelection::List(args.accounts.clone())
    };
    let directory = AwsDirectory::new(
        aws_sdk_sts::Client::new(&config),
        aws_sdk_organizations::Client::new(&config),
    );
    let home = directory
        .this_account()
        .await
        .map_err(|e| format!("cannot tell which account the credentials are for: {e}"))?;
    let clients = MemberKmsClients::assuming(
        config.clone(),
        home,
        args.role.clone(),
        args.external_id.clone(),
    );
    let inventory = KmsInventory::new(clients, args.rate, RetryPolicy::default());
    let ledger = args.ledger_table.as_ref().map(|t| {
        DynamoLedger::new(
            aws_sdk_dynamodb::Client::new(&config),
            t,
            DEFAULT_RETENTION_DAYS,
        )
    });
    let provenance = ledger.as_ref().map(LedgerProvenance);
    let store = DirStore {
        dir: args.out.clone(),
    };
    let now = time::OffsetDateTime::now_utc();
    let generated_at = now
        .replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .map_err(|e| e.to_string())?;
    let policy = Policy {
        rules,
        min_alert_severity: args.policy.min_severity,
        trust_zone: args
            .policy
            .trust_zone("grantwatch report", &directory)
            .await,
        ..Policy::new(now.date())
    };
    let options = ReportOptions {
        grant_count_threshold: args.policy.grant_count_threshold,
        ..ReportOptions::default()
    };
    let progress = TerminalProgress {
        started: AtomicUsize::new(0),
        finished: AtomicUsize::new(0),
    };
    let deps = ReportDeps {
        inventory: &inventory,
        provenance: &provenance,
        store: &store,
        directory: &directory,
        policy: &policy,
        options: &options,
        deadline: &NoDeadline,
        progress: &progress,
    };
    eprintln!(
        "grantwatch report: {} region(s), accounts: {accounts:?}",
        regions.len()
    );
    let request = ReportRequest { accounts, regions };
    let outcome = run_report(&request, &deps, &[&NoChannel], &generated_at)
        .await
        .map_err(|e| e.to_string())?;
    eprintln!(
        "grantwatch report: {} keys, {} grants, {} risky{}; open {}",
        outcome.keys,
        outcome.grants,
        outcome.risky,
        if outcome.partial {
            format!(", PARTIAL ({} coverage gaps)", outcome.coverage_gaps)
        } else {
            String::new()
        },
        outcome.link
    );
    match args.output {
        ReportOutput::Files => {
            for location in &outcome.locations {
                println!("{location}");
            }
        }
        ReportOutput::Json => println!(
            "{}",
            serde_json::json!({
                "generated_at": outcome.generated_at,
                "partial": outcome.partial,
                "keys": outcome.keys,
                "grants": outcome.grants,
                "risky": outcome.risky,
                "coverage_gaps": outcome.coverage_gaps,
                "link": outcome.link,
                "files": outcome.locations,
            })
        ),
    }
    Ok(if outcome.partial {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
