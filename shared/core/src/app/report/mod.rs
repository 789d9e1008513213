//! Build the weekly report.
//!
//! scope → per account-region, concurrently: keys, aliases, grants (the
//! [`Inventory`] port) → [`StandingGrant`] → [`judge_standing`] (with the
//! ledger's provenance) → report model → diff with the previous report →
//! writers → [`ReportStore`] → summary through the [`SummaryChannel`]s.
//!
//! Deadline-aware: before each call the use case checks the
//! [`Deadline`]; what could not be read by then is listed in the report's
//! coverage with reason `deadline`, and the report is delivered marked
//! partial. A key or account-region that cannot be read is never dropped:
//! it appears in coverage with the reason.
//!
//! With a ledger, the report also checks grantwatch itself:
//! - the previous report is used for the diff only if its SHA-256 matches
//!   the one recorded when it was stored; any other is `pipeline-tampered`
//!   ([`Integrity`]);
//! - a standing grant created after the deployment and more than
//!   [`UNSEEN_GRACE`] before the report, that the ledger has no record of,
//!   is `unseen-by-watcher`; account-regions with grants created in the
//!   period and no ledger event at all are listed as silent
//!   ([`Reconciliation`]);
//! - a request naming accounts outside the configured scope is refused
//!   before anything is read ([`ReportError::ScopeRefused`]).

mod build;
mod history;
mod inventory;
mod scope;
#[cfg(test)]
mod tests;

pub use build::{assemble_report, build_report, judged_key_grants, prepare_report, Prepared};
pub use history::{sha256_hex, trend_after, WatchWindow, PREVIOUS_REPORTS_CHECKED, UNSEEN_GRACE};
pub use inventory::read_key_context;
pub use inventory::{inventory_account_region, RegionInventory};
pub use scope::{refuse_out_of_scope, resolve_scope, start_where_last_run_was_cut};

use crate::assess::DEFAULT_GRANT_COUNT_THRESHOLD;
use crate::judge::Policy;
use crate::ports::inventory::{
    AccountDirectory, AccountRegion, AccountSelection, Inventory, Provenance, ReportStore,
};
use crate::ports::PortError;
use crate::report::model::{AccountRegionCoverage, Report};
use crate::report::{render_chunks, JsonShell, FILE_NAMES, REPORT_HTML};
use history::FileHash;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// What to report on. The scheduler's `Input` and the CLI's flags fill it;
/// empty fields fall back to the configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReportRequest {
    pub accounts: AccountSelection,
    pub regions: Vec<String>,
}

/// Tuning knobs with defaults that suit one Lambda invocation.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// Account-regions inventoried at once.
    pub account_region_concurrency: usize,
    /// Keys of one account-region read at once (the adapter's rate limit
    /// still holds).
    pub key_concurrency: usize,
    /// Past reports read for the trend chart (the newest is also the diff's
    /// base).
    pub trend_reports: usize,
    /// Time kept back from the deadline for judging, writing, storing and
    /// delivering.
    pub reserve: Duration,
    /// Grants on one key from which `grant-count-high` is raised.
    pub grant_count_threshold: usize,
    /// The accounts this deployment may report on (its configuration). A
    /// request naming any other account is refused before anything is
    /// read. `None`: no limit (the CLI, run with the caller's own rights).
    pub configured_accounts: Option<AccountSelection>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            account_region_concurrency: 16,
            key_concurrency: 4,
            trend_reports: 12,
            reserve: Duration::from_secs(60),
            grant_count_threshold: DEFAULT_GRANT_COUNT_THRESHOLD,
            configured_accounts: None,
        }
    }
}

/// How much time is left (the Lambda deadline, or none for the CLI).
pub trait Deadline: Send + Sync {
    /// `None`: no deadline.
    fn remaining(&self) -> Option<Duration>;
}

/// No deadline (the CLI).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDeadline;

impl Deadline for NoDeadline {
    fn remaining(&self) -> Option<Duration> {
        None
    }
}

/// A deadline at an instant (the Lambda context's deadline).
#[derive(Debug, Clone, Copy)]
pub struct DeadlineAt(pub Instant);

impl Deadline for DeadlineAt {
    fn remaining(&self) -> Option<Duration> {
        Some(self.0.saturating_duration_since(Instant::now()))
    }
}

/// A deadline that runs out after a number of checks (tests: "the
/// deadline comes after N calls").
#[derive(Debug)]
pub struct DeadlineAfterChecks {
    left: AtomicUsize,
}

impl DeadlineAfterChecks {
    pub fn new(checks: usize) -> Self {
        DeadlineAfterChecks {
            left: AtomicUsize::new(checks),
        }
    }
}

impl Deadline for DeadlineAfterChecks {
    fn remaining(&self) -> Option<Duration> {
        let before = self
            .left
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
        Some(match before {
            Ok(_) => Duration::from_secs(3600),
            Err(_) => Duration::ZERO,
        })
    }
}

/// Progress of the inventory, per account-region (the CLI prints it).
pub trait Progress: Send + Sync {
    fn started(&self, _at: &AccountRegion) {}
    fn finished(&self, _coverage: &AccountRegionCoverage) {}
}

/// No progress output (the Lambda: the logs say enough).
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;
impl Progress for Quiet {}

/// A way to tell people the report is ready (SNS e-mail, Slack).
pub trait SummaryChannel: Send + Sync {
    /// A stable name for logs (`sns`, `slack`).
    fn name(&self) -> &str;
    fn deliver(
        &self,
        report: &Report,
        link: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
}

/// No summary channel configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoChannel;

impl SummaryChannel for NoChannel {
    fn name(&self) -> &'static str {
        "none"
    }
    async fn deliver(&self, _report: &Report, _link: &str) -> Result<(), PortError> {
        Ok(())
    }
}

/// Why the report could not be produced or delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("cannot resolve the report's scope: {0}")]
    Scope(String),
    /// The request named accounts outside the configured scope: nothing
    /// was read.
    #[error("refused: account(s) {} are outside the configured scope", .0.join(", "))]
    ScopeRefused(Vec<String>),
    /// The report is stored, but the ledger did not take the hash of a
    /// file: next week's report could not tell it from a planted one.
    #[error("report stored, but its hashes could not be recorded in the ledger: {}", .0.join("; "))]
    Record(Vec<String>),
    #[error("cannot render the report: {0}")]
    Render(String),
    #[error("cannot store the report: {0}")]
    Store(PortError),
    /// The report is stored; some summary channels failed.
    #[error("report stored at {location}, but delivery failed: {}", failures.join("; "))]
    Delivery {
        location: String,
        failures: Vec<String>,
    },
}

impl ReportError {
    /// Stable Lambda error type.
    pub fn error_type(&self) -> &'static str {
        match self {
            ReportError::Scope(_) => "ScopeError",
            ReportError::ScopeRefused(_) => "ScopeRefused",
            ReportError::Record(_) => "RecordError",
            ReportError::Render(_) => "RenderError",
            ReportError::Store(_) => "StoreError",
            ReportError::Delivery { .. } => "DeliveryError",
        }
    }
}

/// What one run produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReportOutcome {
    pub generated_at: String,
    pub partial: bool,
    pub keys: usize,
    pub grants: usize,
    pub risky: usize,
    pub coverage_gaps: usize,
    /// `pipeline-tampered` findings: stored reports changed or planted.
    pub pipeline_tampered: usize,
    /// Grants carrying `unseen-by-watcher`.
    pub unseen_by_watcher: usize,
    pub silent_account_regions: usize,
    /// Where each file went.
    pub locations: Vec<String>,
    /// The reviewer's link to report.html.
    pub link: String,
    /// Channels the summary reached.
    pub delivered: Vec<String>,
}

/// The ports one report run needs.
pub struct ReportDeps<'a, I, P, S, D> {
    pub inventory: &'a I,
    pub provenance: &'a P,
    pub store: &'a S,
    pub directory: &'a D,
    pub policy: &'a Policy,
    pub options: &'a ReportOptions,
    pub deadline: &'a dyn Deadline,
    pub progress: &'a dyn Progress,
}

/// Build, store and announce the report.
pub async fn run_report<I, P, S, D, C>(
    request: &ReportRequest,
    deps: &ReportDeps<'_, I, P, S, D>,
    channels: &[&C],
    generated_at: &str,
) -> Result<ReportOutcome, ReportError>
where
    I: Inventory,
    P: Provenance,
    S: ReportStore,
    D: AccountDirectory,
    C: SummaryChannel + ?Sized,
{
    let report = build_report(request, deps, generated_at).await?;
    store_and_announce(report, deps, channels).await
}

/// Store the built report (each file's hash recorded in the ledger), link
/// it and deliver the summary through every channel.
pub async fn store_and_announce<I, P, S, D, C>(
    report: Report,
    deps: &ReportDeps<'_, I, P, S, D>,
    channels: &[&C],
) -> Result<ReportOutcome, ReportError>
where
    P: Provenance,
    S: ReportStore,
    C: SummaryChannel + ?Sized,
{
    let mut report = report;
    let shell = JsonShell::of(&mut report).map_err(|e| ReportError::Render(e.to_string()))?;
    let mut locations = Vec::new();
    let mut html_location = None;
    // One file at a time, rendered in pieces straight into the store (S3:
    // a multipart upload), hashed on the way: no whole body is held.
    let mut unrecorded = Vec::new();
    for name in FILE_NAMES {
        let file = render_chunks(&report, name, &shell);
        let file_name = file.name;
        let mut hash = FileHash::default();
        let mut render_error = None;
        let chunks = file.chunks.map(|chunk| match chunk {
            Ok(bytes) => {
                hash.update(&bytes);
                Ok(bytes)
            }
            // The store aborts the file; the run fails as a render error.
            Err(e) => {
                let message = format!("{file_name}: {e}");
                render_error = Some(message.clone());
                Err(PortError::Permanent(format!("cannot render {message}")))
            }
        });
        let stored = deps
            .store
            .put_chunks(report.date(), file_name, chunks, file.content_type)
            .await;
        let location = match (stored, render_error) {
            (Ok(location), None) => location,
            (_, Some(message)) => return Err(ReportError::Render(message)),
            (Err(e), None) => return Err(ReportError::Store(e)),
        };
        let sha = hash.hex();
        // Next week's diff trusts this file only through this record.
        if let Err(e) = deps.provenance.record_report_file(&location, &sha).await {
            unrecorded.push(format!("{location}: {e}"));
        }
        if file_name == REPORT_HTML {
            html_location = Some(location.clone());
        }
        locations.push(location);
    }
    let html_location = html_location.unwrap_or_default();
    let link = deps
        .store
        .link(&html_location)
        .await
        .map_err(ReportError::Store)?;

    let mut delivered = Vec::new();
    let mut failures = Vec::new();
    for channel in channels {
        match channel.deliver(&report, &link).await {
            Ok(()) => delivered.push(channel.name().to_string()),
            Err(e) => failures.push(format!("{}: {e}", channel.name())),
        }
    }
    if !failures.is_empty() {
        return Err(ReportError::Delivery {
            location: html_location,
            failures,
        });
    }
    if !unrecorded.is_empty() {
        return Err(ReportError::Record(unrecorded));
    }
    Ok(ReportOutcome {
        generated_at: report.generated_at.clone(),
        partial: report.partial,
        keys: report.summary.keys,
        grants: report.summary.grants,
        risky: report.summary.risky,
        coverage_gaps: report.summary.coverage_gaps,
        pipeline_tampered: report.summary.pipeline_tampered,
        unseen_by_watcher: report
            .reconciliation
            .as_ref()
            .map_or(0, |r| r.unseen_by_watcher),
        silent_account_regions: report.summary.silent_account_regions,
        locations,
        link,
        delivered,
    })
}
