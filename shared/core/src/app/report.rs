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

use crate::assess::{assess_key_grants, DEFAULT_GRANT_COUNT_THRESHOLD};
use crate::event::epoch_ms;
use crate::judge::{judge_standing, judge_standing_with, Judgement, Policy, StandingGrant};
use crate::ports::inventory::{
    AccountDirectory, AccountRegion, AccountSelection, Inventory, KeyDescription, ListedKey,
    Provenance, ReadError, ReportStore,
};
use crate::ports::PortError;
use crate::record::GrantRecord;
use crate::report::model::{
    summarise, AccountRegionCoverage, Coverage, CoverageGap, CoverageStatus, CreatedBy, GapReason,
    GrantReport, Integrity, KeyReport, Reconciliation, Report, ReportScope, SilentAccountRegion,
    TrendPoint, SCHEMA_VERSION,
};
use crate::report::{diff, render_file, FILE_NAMES, REPORT_HTML};
use crate::verdict::{Finding, FindingCode, Severity};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap};
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
    fn name(&self) -> &'static str;
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

/// Resolve the request's accounts × regions.
pub async fn resolve_scope<D: AccountDirectory>(
    request: &ReportRequest,
    directory: &D,
) -> Result<ReportScope, ReportError> {
    let accounts = resolve_accounts(&request.accounts, directory).await?;
    let organization = request.accounts == AccountSelection::Organization;
    let mut regions: Vec<String> = request
        .regions
        .iter()
        .map(|r| r.trim().to_string())
        .collect();
    regions.retain(|r| !r.is_empty());
    regions.sort();
    regions.dedup();
    if accounts.is_empty() {
        return Err(ReportError::Scope("no accounts in scope".into()));
    }
    if regions.is_empty() {
        return Err(ReportError::Scope("no regions in scope".into()));
    }
    Ok(ReportScope {
        accounts,
        regions,
        organization,
    })
}

/// The accounts a selection names (trimmed, sorted, unique).
async fn resolve_accounts<D: AccountDirectory>(
    selection: &AccountSelection,
    directory: &D,
) -> Result<Vec<String>, ReportError> {
    let accounts = match selection {
        AccountSelection::This => vec![directory
            .this_account()
            .await
            .map_err(|e| ReportError::Scope(e.to_string()))?],
        AccountSelection::List(list) => list.clone(),
        AccountSelection::Organization => directory
            .organization_accounts()
            .await
            .map_err(|e| ReportError::Scope(e.to_string()))?,
    };
    let mut accounts: Vec<String> = accounts.into_iter().map(|a| a.trim().to_string()).collect();
    accounts.retain(|a| !a.is_empty());
    accounts.sort();
    accounts.dedup();
    Ok(accounts)
}

/// Inventory the scope and build the report (diff and trend included),
/// without storing it.
pub async fn build_report<I, P, S, D>(
    request: &ReportRequest,
    deps: &ReportDeps<'_, I, P, S, D>,
    generated_at: &str,
) -> Result<Report, ReportError>
where
    I: Inventory,
    P: Provenance,
    S: ReportStore,
    D: AccountDirectory,
{
    refuse_out_of_scope(
        request,
        deps.options.configured_accounts.as_ref(),
        deps.directory,
    )
    .await?;
    let scope = resolve_scope(request, deps.directory).await?;
    // Only the newest verified previous report is used (the diff's base): it
    // carries the trend of the runs before it, so past reports are never
    // reloaded.
    let (previous, integrity) = verified_previous(deps.store, deps.provenance, generated_at).await;
    let history: Vec<Report> = previous.into_iter().collect();
    let now_ms = epoch_ms(generated_at).unwrap_or(0);
    let (watch, reconcile_problem) = match deps.provenance.deployed_at(now_ms).await {
        Ok(deployed) => (
            deployed.map(|deployed_ms| WatchWindow::new(deployed_ms, history.first(), now_ms)),
            None,
        ),
        Err(e) => (None, Some(format!("the ledger could not be read: {e}"))),
    };
    let watch = watch.as_ref();
    let mut targets: Vec<AccountRegion> = scope
        .accounts
        .iter()
        .flat_map(|a| {
            scope
                .regions
                .iter()
                .map(move |r| AccountRegion::new(a.clone(), r.clone()))
        })
        .collect();
    start_where_last_run_was_cut(&mut targets, history.first());

    let mut results: Vec<RegionInventory> = stream::iter(targets)
        .map(|at| async move {
            deps.progress.started(&at);
            let result = inventory_account_region(&at, deps, watch).await;
            deps.progress.finished(&result.coverage);
            result
        })
        .buffer_unordered(deps.options.account_region_concurrency.max(1))
        .collect()
        .await;
    results.sort_by(|a, b| {
        (&a.coverage.account, &a.coverage.region).cmp(&(&b.coverage.account, &b.coverage.region))
    });

    let mut coverage = Coverage::default();
    let mut keys = Vec::new();
    let mut silent = Vec::new();
    for r in results {
        if r.grants_created_in_period > 0 && r.ledger_events_in_period == 0 {
            silent.push(SilentAccountRegion {
                account: r.coverage.account.clone(),
                region: r.coverage.region.clone(),
                grants_created: r.grants_created_in_period,
            });
        }
        coverage.account_regions.push(r.coverage);
        coverage.gaps.extend(r.gaps);
        keys.extend(r.keys);
    }
    let partial = !coverage.gaps.is_empty()
        || coverage
            .account_regions
            .iter()
            .any(|c| c.status != CoverageStatus::Complete)
        || reconcile_problem.is_some()
        || integrity.as_ref().is_some_and(|i| i.unverified.is_some());
    let mut summary = summarise(&keys, &coverage);
    let reconciliation = match (watch, reconcile_problem) {
        (Some(w), _) => Some(Reconciliation {
            deployed_at: rfc3339(w.deployed_ms),
            period_start: rfc3339(w.period_start_ms),
            period_end: rfc3339(w.cutoff_ms),
            unseen_by_watcher: summary
                .by_finding
                .get(FindingCode::UnseenByWatcher.as_str())
                .copied()
                .unwrap_or(0),
            silent_account_regions: silent,
            unchecked: None,
        }),
        (None, Some(problem)) => Some(Reconciliation {
            unchecked: Some(problem),
            ..Reconciliation::default()
        }),
        (None, None) => None,
    };
    summary.silent_account_regions = reconciliation
        .as_ref()
        .map_or(0, |r| r.silent_account_regions.len());
    summary.pipeline_tampered = integrity.as_ref().map_or(0, |i| i.findings.len());
    let mut report = Report {
        schema_version: SCHEMA_VERSION,
        generated_at: generated_at.to_string(),
        partial,
        scope,
        coverage,
        summary,
        keys,
        diff: None,
        trend: Vec::new(),
        reconciliation,
        integrity,
    };

    diff::apply(&mut report, history.first());
    report.trend = trend_after(history.first(), &report, deps.options.trend_reports);
    Ok(report)
}

/// The trend: the previous report's own trend (its point last; just its
/// point if it has none), at most `past` points of it, then this report's.
pub fn trend_after(previous: Option<&Report>, report: &Report, past: usize) -> Vec<TrendPoint> {
    let mut trend: Vec<TrendPoint> = match previous {
        None => Vec::new(),
        Some(p) if p.trend.is_empty() => vec![p.trend_point()],
        Some(p) => p.trend.clone(),
    };
    if trend.len() > past {
        trend.drain(..trend.len() - past);
    }
    trend.push(report.trend_point());
    trend
}

/// Rotate the account-regions so this run starts with the first one the
/// previous run was cut at by its deadline (where its cut block begins,
/// wrapping around): a scope too large for one run is then covered in
/// turns, and no account-region is cut every week. The cut ones are named
/// in the report's coverage (`deadline` gaps).
pub fn start_where_last_run_was_cut(targets: &mut [AccountRegion], previous: Option<&Report>) {
    let Some(previous) = previous else {
        return;
    };
    let cut = |at: &AccountRegion| {
        previous.coverage.gaps.iter().any(|g| {
            g.reason == GapReason::Deadline && g.account == at.account && g.region == at.region
        })
    };
    let n = targets.len();
    let block_start = (0..n).find(|&i| cut(&targets[i]) && !cut(&targets[(i + n - 1) % n]));
    if let Some(start) = block_start {
        targets.rotate_left(start);
    }
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
    let mut locations = Vec::new();
    let mut html_location = None;
    // One file rendered and handed to the store at a time.
    let mut unrecorded = Vec::new();
    for name in FILE_NAMES {
        let file = render_file(&report, name).map_err(|e| ReportError::Render(e.to_string()))?;
        let sha = sha256_hex(&file.body);
        let location = deps
            .store
            .put(report.date(), file.name, file.body, file.content_type)
            .await
            .map_err(ReportError::Store)?;
        // Next week's diff trusts this file only through this record.
        if let Err(e) = deps.provenance.record_report_file(&location, &sha).await {
            unrecorded.push(format!("{location}: {e}"));
        }
        if file.name == REPORT_HTML {
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

/// Stored reports the diff may fall back to when newer ones fail their
/// hash check (each is read whole: the bound keeps memory flat).
pub const PREVIOUS_REPORTS_CHECKED: usize = 4;

/// A grant created this recently may still be on its way to the watcher
/// (CloudTrail delivers within about 5 minutes, EventBridge retries): not
/// yet `unseen-by-watcher`.
pub const UNSEEN_GRACE: Duration = Duration::from_secs(15 * 60);

/// Without a previous report, the period checked for silent
/// account-regions is the week before the report.
const DEFAULT_PERIOD: Duration = Duration::from_secs(7 * 86_400);

/// The SHA-256 of a stored file, lower-case hex (as the ledger keeps it).
pub fn sha256_hex(body: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The newest stored report older than this run whose SHA-256 matches the
/// ledger's record of it, and the check's findings: a report whose hash
/// differs, or that the ledger never recorded (while it holds records), is
/// `pipeline-tampered` and skipped. Without a ledger, or before the ledger
/// holds any hash (the first run of a version that records them), the
/// newest readable report is used unverified. Unreadable reports are
/// skipped (the trend has a hole, the diff uses the next one).
async fn verified_previous<S: ReportStore, P: Provenance>(
    store: &S,
    provenance: &P,
    now: &str,
) -> (Option<Report>, Option<Integrity>) {
    let known = match provenance.report_files().await {
        Ok(known) => known,
        Err(e) => {
            let integrity = Integrity {
                unverified: Some(format!(
                    "the stored reports' hashes could not be read from the ledger ({e}): \
                     no previous report used"
                )),
                ..Integrity::default()
            };
            return (None, Some(integrity));
        }
    };
    let stored = store
        .recent_reports(PREVIOUS_REPORTS_CHECKED)
        .await
        .unwrap_or_default();
    let mut integrity = known.as_ref().map(|_| Integrity::default());
    let mut chosen = None;
    for candidate in stored {
        let sha = sha256_hex(&candidate.body);
        let problem = match known.as_ref() {
            Some(known) => match known.get(&candidate.location) {
                Some(recorded) if *recorded == sha => None,
                Some(recorded) => Some(format!(
                    "stored report {} does not match the SHA-256 recorded when grantwatch \
                     stored it (recorded {recorded}, now {sha}): it was changed after it was \
                     written; not used for the diff",
                    candidate.location
                )),
                None if known.is_empty() => None,
                None => Some(format!(
                    "stored report {} (SHA-256 {sha}) was never recorded by grantwatch's \
                     report: it was planted; not used for the diff",
                    candidate.location
                )),
            },
            None => None,
        };
        if let Some(message) = problem {
            if let Some(integrity) = integrity.as_mut() {
                integrity.findings.push(Finding {
                    code: FindingCode::PipelineTampered,
                    severity: Severity::Critical,
                    message,
                });
            }
            continue;
        }
        let Ok(report) = Report::from_json(&candidate.body) else {
            continue;
        };
        if report.generated_at.as_str() < now {
            if let Some(integrity) = integrity.as_mut() {
                integrity.previous = Some(candidate.location.clone());
            }
            chosen = Some(report);
            break;
        }
    }
    (chosen, integrity)
}

/// Refuse a request naming accounts outside the configured ones (the
/// directory answers for "this account" and the organization; KMS is not
/// called).
pub async fn refuse_out_of_scope<D: AccountDirectory>(
    request: &ReportRequest,
    configured: Option<&AccountSelection>,
    directory: &D,
) -> Result<(), ReportError> {
    let Some(configured) = configured else {
        return Ok(());
    };
    if request.accounts == *configured {
        return Ok(());
    }
    let allowed: BTreeSet<String> = resolve_accounts(configured, directory)
        .await?
        .into_iter()
        .collect();
    let outside: Vec<String> = resolve_accounts(&request.accounts, directory)
        .await?
        .into_iter()
        .filter(|a| !allowed.contains(a))
        .collect();
    if outside.is_empty() {
        Ok(())
    } else {
        Err(ReportError::ScopeRefused(outside))
    }
}

/// The times the reconciliation checks against (epoch ms).
#[derive(Debug, Clone, Copy)]
struct WatchWindow {
    deployed_ms: i64,
    /// Silent account-regions: grants created from here ...
    period_start_ms: i64,
    /// ... to here; and `unseen-by-watcher` only for grants created before it.
    cutoff_ms: i64,
}

impl WatchWindow {
    fn new(deployed_ms: i64, previous: Option<&Report>, now_ms: i64) -> Self {
        let since = previous
            .and_then(|p| epoch_ms(&p.generated_at))
            .unwrap_or(now_ms - DEFAULT_PERIOD.as_millis() as i64);
        WatchWindow {
            deployed_ms,
            period_start_ms: since.max(deployed_ms),
            cutoff_ms: now_ms - UNSEEN_GRACE.as_millis() as i64,
        }
    }

    /// Created after the deployment, and long enough ago that the watcher
    /// must have seen it.
    fn should_have_seen(&self, created_ms: i64) -> bool {
        created_ms >= self.deployed_ms && created_ms <= self.cutoff_ms
    }

    fn in_period(&self, at_ms: i64) -> bool {
        at_ms >= self.period_start_ms && at_ms <= self.cutoff_ms
    }
}

/// The `unseen-by-watcher` finding of a grant the ledger has no record of.
fn unseen_finding(created: &str, window: &WatchWindow) -> Finding {
    Finding {
        code: FindingCode::UnseenByWatcher,
        severity: Severity::High,
        message: format!(
            "created {created}, after grantwatch was deployed ({}), but the ledger has no \
             record of it: the watcher never saw its CreateGrant",
            rfc3339(window.deployed_ms)
        ),
    }
}

/// RFC 3339 (UTC, seconds) of epoch milliseconds.
fn rfc3339(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// One account-region's part of the report.
struct RegionInventory {
    coverage: AccountRegionCoverage,
    gaps: Vec<CoverageGap>,
    keys: Vec<KeyReport>,
    /// Grants ListGrants dates inside the reconciliation period.
    grants_created_in_period: usize,
    /// Grant creations and removals the ledger recorded in the period.
    ledger_events_in_period: usize,
}

/// One key's part of the report.
struct KeyInventory {
    report: KeyReport,
    gap: Option<CoverageGap>,
    /// The ledger's records of the key could not be read.
    ledger_gap: Option<CoverageGap>,
    grants_created_in_period: usize,
    ledger_events_in_period: usize,
}

fn gap(
    at: &AccountRegion,
    key_arn: Option<&str>,
    reason: GapReason,
    detail: String,
) -> CoverageGap {
    CoverageGap {
        account: at.account.clone(),
        region: at.region.clone(),
        key_arn: key_arn.map(str::to_string),
        reason,
        detail,
    }
}

fn reason_of(error: &ReadError, key: Option<&KeyDescription>) -> GapReason {
    match error {
        ReadError::AccessDenied(_) => GapReason::AccessDenied,
        ReadError::Throttled(_) => GapReason::Throttled,
        ReadError::NotFound(_) => GapReason::NotFound,
        ReadError::InvalidState(_) if key.is_some_and(KeyDescription::is_pending_deletion) => {
            GapReason::PendingDeletion
        }
        ReadError::InvalidState(_) => GapReason::InvalidState,
        ReadError::Failed(_) => GapReason::Error,
    }
}

fn out_of_time(deps_deadline: &dyn Deadline, reserve: Duration) -> bool {
    deps_deadline
        .remaining()
        .is_some_and(|left| left <= reserve)
}

async fn inventory_account_region<I, P, S, D>(
    at: &AccountRegion,
    deps: &ReportDeps<'_, I, P, S, D>,
    watch: Option<&WatchWindow>,
) -> RegionInventory
where
    I: Inventory,
    P: Provenance,
    S: ReportStore,
    D: AccountDirectory,
{
    let mut out = RegionInventory {
        coverage: AccountRegionCoverage {
            account: at.account.clone(),
            region: at.region.clone(),
            status: CoverageStatus::Complete,
            keys_listed: 0,
            keys_complete: 0,
            grants: 0,
        },
        gaps: Vec::new(),
        keys: Vec::new(),
        grants_created_in_period: 0,
        ledger_events_in_period: 0,
    };
    let reserve = deps.options.reserve;

    // Keys, every page.
    let mut listed: Vec<ListedKey> = Vec::new();
    let mut marker = None;
    loop {
        if out_of_time(deps.deadline, reserve) {
            out.gaps.push(gap(
                at,
                None,
                GapReason::Deadline,
                format!("ListKeys stopped after {} keys: deadline", listed.len()),
            ));
            break;
        }
        match deps.inventory.list_keys(at, marker.take()).await {
            Ok(page) => {
                listed.extend(page.items);
                match page.next_marker {
                    Some(m) => marker = Some(m),
                    None => break,
                }
            }
            Err(e) => {
                let reason = reason_of(&e, None);
                out.gaps
                    .push(gap(at, None, reason, format!("ListKeys: {e}")));
                break;
            }
        }
    }
    out.coverage.keys_listed = listed.len();
    if listed.is_empty() && !out.gaps.is_empty() {
        out.coverage.status = CoverageStatus::Unread;
        return out;
    }

    // Aliases, every page (a failure costs the aliases, not the grants).
    let mut aliases: HashMap<String, Vec<String>> = HashMap::new();
    let mut marker = None;
    loop {
        if out_of_time(deps.deadline, reserve) {
            out.gaps.push(gap(
                at,
                None,
                GapReason::Deadline,
                "ListAliases not finished: deadline".into(),
            ));
            break;
        }
        match deps.inventory.list_aliases(at, marker.take()).await {
            Ok(page) => {
                for alias in page.items {
                    if let Some(target) = alias.target_key_id {
                        aliases.entry(target).or_default().push(alias.alias_name);
                    }
                }
                match page.next_marker {
                    Some(m) => marker = Some(m),
                    None => break,
                }
            }
            Err(e) => {
                let reason = reason_of(&e, None);
                out.gaps
                    .push(gap(at, None, reason, format!("ListAliases: {e}")));
                break;
            }
        }
    }

    let aliases = &aliases;
    let results: Vec<KeyInventory> = stream::iter(listed)
        .map(|key| async move { inventory_key(at, key, aliases, deps, watch).await })
        .buffer_unordered(deps.options.key_concurrency.max(1))
        .collect()
        .await;
    for key in results {
        out.coverage.grants += key.report.grants.len();
        match key.gap {
            Some(g) => out.gaps.push(g),
            None => out.coverage.keys_complete += 1,
        }
        out.gaps.extend(key.ledger_gap);
        out.grants_created_in_period += key.grants_created_in_period;
        out.ledger_events_in_period += key.ledger_events_in_period;
        out.keys.push(key.report);
    }
    out.keys.sort_by(|a, b| a.key_arn.cmp(&b.key_arn));
    if !out.gaps.is_empty() {
        out.coverage.status = CoverageStatus::Partial;
    }
    out
}

async fn inventory_key<I, P, S, D>(
    at: &AccountRegion,
    listed: ListedKey,
    aliases: &HashMap<String, Vec<String>>,
    deps: &ReportDeps<'_, I, P, S, D>,
    watch: Option<&WatchWindow>,
) -> KeyInventory
where
    I: Inventory,
    P: Provenance,
    S: ReportStore,
    D: AccountDirectory,
{
    let reserve = deps.options.reserve;
    let mut key_aliases = aliases.get(&listed.key_id).cloned().unwrap_or_default();
    key_aliases.sort();
    let mut report = KeyReport {
        account: at.account.clone(),
        region: at.region.clone(),
        key_id: listed.key_id.clone(),
        key_arn: listed.key_arn.clone(),
        aliases: key_aliases,
        manager: None,
        state: None,
        key_spec: None,
        key_usage: None,
        multi_region: None,
        complete: false,
        grants: Vec::new(),
    };
    let arn = listed.key_arn.clone();
    let unread = |report: KeyReport, gap: CoverageGap| KeyInventory {
        report,
        gap: Some(gap),
        ledger_gap: None,
        grants_created_in_period: 0,
        ledger_events_in_period: 0,
    };
    if out_of_time(deps.deadline, reserve) {
        let cut = gap(
            at,
            Some(&arn),
            GapReason::Deadline,
            "not read: deadline".into(),
        );
        return unread(report, cut);
    }
    let description = match deps.inventory.describe_key(at, &listed.key_id).await {
        Ok(d) => d,
        Err(e) => {
            let reason = reason_of(&e, None);
            let failed = gap(at, Some(&arn), reason, format!("DescribeKey: {e}"));
            return unread(report, failed);
        }
    };
    report.manager = description.manager;
    report.state = description.state.clone();
    report.key_spec = description.key_spec.clone();
    report.key_usage = description.key_usage.clone();
    report.multi_region = description.multi_region;

    let mut listed_grants = Vec::new();
    let mut marker = None;
    let mut key_gap = None;
    loop {
        if out_of_time(deps.deadline, reserve) {
            key_gap = Some(gap(
                at,
                Some(&arn),
                GapReason::Deadline,
                format!(
                    "ListGrants stopped after {} grants: deadline",
                    listed_grants.len()
                ),
            ));
            break;
        }
        match deps
            .inventory
            .list_grants(at, &listed.key_id, marker.take())
            .await
        {
            Ok(page) => {
                listed_grants.extend(page.items);
                match page.next_marker {
                    Some(m) => marker = Some(m),
                    None => break,
                }
            }
            Err(e) => {
                let reason = reason_of(&e, Some(&description));
                key_gap = Some(gap(at, Some(&arn), reason, format!("ListGrants: {e}")));
                break;
            }
        }
    }

    // Without the ledger's records the grants are still judged, from
    // ListGrants alone; a ledger that cannot be read is a coverage gap, and
    // then no grant of the key is called unseen.
    let (records, ledger_gap) = if listed_grants.is_empty() {
        (Vec::new(), None)
    } else {
        match deps.provenance.grant_records(&arn).await {
            Ok(records) => (records, None),
            Err(e) => (
                Vec::new(),
                Some(gap(
                    at,
                    None,
                    GapReason::Error,
                    format!("ledger records of {arn}: {e} (unseen-by-watcher not checked)"),
                )),
            ),
        }
    };
    let ledger_events_in_period = watch.map_or(0, |w| {
        records
            .iter()
            .flat_map(|r| {
                [
                    r.created_at.as_deref(),
                    r.removal.as_ref().and_then(|x| x.at.as_deref()),
                ]
            })
            .flatten()
            .filter_map(epoch_ms)
            .filter(|at| w.in_period(*at))
            .count()
    });
    let provenance: BTreeMap<String, GrantRecord> = records
        .into_iter()
        .map(|r| (r.grant_id.clone(), r))
        .collect();
    let standing: Vec<StandingGrant> = listed_grants
        .into_iter()
        .map(|g| StandingGrant {
            account: at.account.clone(),
            region: at.region.clone(),
            key_arn: arn.clone(),
            key_spec: description.key_spec.clone(),
            grant_id: g.grant_id,
            created: g.created,
            issuing_account: g.issuing_account,
            facts: g.facts,
        })
        .collect();
    let created_ms = |g: &StandingGrant| g.created.as_deref().and_then(epoch_ms);
    let grants_created_in_period = watch.map_or(0, |w| {
        standing
            .iter()
            .filter_map(created_ms)
            .filter(|at| w.in_period(*at))
            .count()
    });
    // The key-wide findings and `unseen-by-watcher` count before the rules,
    // as in `judge_key`: one judgement for the report, alerts and rules.
    let key_findings = assess_key_grants(&standing, deps.options.grant_count_threshold);
    report.grants = standing
        .iter()
        .zip(key_findings)
        .map(|(g, mut extra)| {
            let record = provenance.get(&g.grant_id);
            if let (Some(w), None, None, Some(at)) = (watch, &ledger_gap, record, created_ms(g)) {
                if w.should_have_seen(at) {
                    extra.push(unseen_finding(g.created.as_deref().unwrap_or_default(), w));
                }
            }
            let judgement = judge_standing_with(g, record, extra, deps.policy);
            report_of(g, record, judgement)
        })
        .collect();
    report.grants.sort_by(|a, b| a.grant_id.cmp(&b.grant_id));
    report.complete = key_gap.is_none();
    KeyInventory {
        report,
        gap: key_gap,
        ledger_gap,
        grants_created_in_period,
        ledger_events_in_period,
    }
}

/// Judge one standing grant and shape it for the report.
pub fn grant_report(
    grant: &StandingGrant,
    record: Option<&GrantRecord>,
    policy: &Policy,
) -> GrantReport {
    report_of(grant, record, judge_standing(grant, record, policy))
}

/// A judged standing grant, shaped for the report.
fn report_of(
    grant: &StandingGrant,
    record: Option<&GrantRecord>,
    judgement: Judgement,
) -> GrantReport {
    let facts = &grant.facts;
    GrantReport {
        grant_id: grant.grant_id.clone(),
        name: facts.name.clone(),
        grantee: facts.effective_grantee().map(str::to_string),
        retiring_principal: facts.effective_retiring_principal().map(str::to_string),
        operations: facts.operations.clone(),
        constraints: facts.constraints.clone(),
        created: grant
            .created
            .clone()
            .or_else(|| record.and_then(|r| r.created_at.clone())),
        issuing_account: grant.issuing_account.clone(),
        origin: judgement.origin.origin,
        service: judgement.origin.service,
        evidence: judgement.origin.evidence,
        severity: judgement.severity,
        findings: judgement.findings,
        suppressed_by: judgement.suppressed_by,
        created_by: record.map(|r| CreatedBy {
            arn: r.created_by.arn.clone(),
            identity_type: r.created_by.identity_type.clone(),
            invoked_by: r.created_by.invoked_by.clone(),
            source_ip: r.created_by.source_ip.clone(),
            user_agent: r.created_by.user_agent.clone(),
            at: r.created_at.clone(),
            event_id: Some(r.created_event_id.clone()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Caller;
    use crate::grant::{GrantFacts, Operation};
    use crate::ports::inventory::fake::{
        FakeDirectory, FakeInventory, FakeProvenance, FakeRegion, MemoryStore,
    };
    use crate::ports::inventory::{AliasEntry, KeyManager, ListedGrant, NoProvenance};
    use crate::verdict::{Origin, Severity};
    use futures::executor::block_on;

    const ACCOUNT: &str = "111111111111";
    const REGION: &str = "eu-west-1";

    fn policy() -> Policy {
        Policy::new(time::macros::date!(2026 - 11 - 28))
    }

    fn key(id: &str) -> KeyDescription {
        KeyDescription {
            key_id: id.into(),
            key_arn: format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/{id}"),
            manager: Some(KeyManager::Customer),
            state: Some("Enabled".into()),
            key_spec: Some("SYMMETRIC_DEFAULT".into()),
            key_usage: Some("ENCRYPT_DECRYPT".into()),
            multi_region: Some(false),
            description: None,
        }
    }

    fn grants(n: usize, prefix: &str) -> Vec<ListedGrant> {
        (0..n)
            .map(|i| ListedGrant {
                grant_id: format!("{prefix}{i:05}"),
                created: None,
                issuing_account: None,
                facts: GrantFacts {
                    grantee: Some(format!("arn:aws:iam::{ACCOUNT}:role/app")),
                    operations: vec![Operation::Decrypt],
                    ..GrantFacts::default()
                },
            })
            .collect()
    }

    fn inventory(keys: usize, grants_per_key: usize, page_size: usize) -> FakeInventory {
        let mut region = FakeRegion::default();
        for k in 0..keys {
            let id = format!("key-{k:03}");
            region
                .grants
                .insert(id.clone(), grants(grants_per_key, &format!("{id}-g")));
            region.aliases.push(AliasEntry {
                alias_name: format!("alias/{id}"),
                target_key_id: Some(id.clone()),
            });
            region.keys.push(key(&id));
        }
        let mut inv = FakeInventory::new(page_size);
        inv.regions
            .insert(AccountRegion::new(ACCOUNT, REGION), region);
        inv
    }

    fn request() -> ReportRequest {
        ReportRequest {
            accounts: AccountSelection::This,
            regions: vec![REGION.into()],
        }
    }

    fn directory() -> FakeDirectory {
        FakeDirectory {
            this_account: ACCOUNT.into(),
            organization: vec![ACCOUNT.into(), "222222222222".into()],
        }
    }

    fn build<P: Provenance>(
        inv: &FakeInventory,
        provenance: &P,
        store: &MemoryStore,
        deadline: &dyn Deadline,
        req: &ReportRequest,
        at: &str,
    ) -> Report {
        let policy = policy();
        let options = ReportOptions::default();
        let dir = directory();
        let deps = ReportDeps {
            inventory: inv,
            provenance,
            store,
            directory: &dir,
            policy: &policy,
            options: &options,
            deadline,
            progress: &Quiet,
        };
        block_on(build_report(req, &deps, at)).unwrap()
    }

    #[test]
    fn the_trend_comes_from_the_previous_report_not_from_reloading_old_ones() {
        let store = MemoryStore::default();
        let inv = inventory(2, 3, 10);
        let weeks = [
            "2026-11-07T06:00:00Z",
            "2026-11-14T06:00:00Z",
            "2026-11-21T06:00:00Z",
            "2026-11-28T06:00:00Z",
        ];
        for (i, at) in weeks.iter().enumerate() {
            let report = build(&inv, &NoProvenance, &store, &NoDeadline, &request(), at);
            let put = block_on(store.put(
                &at[..10],
                "report.json",
                crate::report::to_json(&report).unwrap(),
                "application/json",
            ));
            put.unwrap();
            if i == 1 {
                // The first report is gone: its point lives on in the trend.
                store
                    .files
                    .lock()
                    .unwrap()
                    .remove("reports/2026-11-07/report.json");
            }
            let dates: Vec<String> = report
                .trend
                .iter()
                .map(|p| p.generated_at.clone())
                .collect();
            assert_eq!(dates, weeks[..=i], "week {i}");
        }
        // At most `past` points of the previous trend, then this report's.
        let last =
            Report::from_json(&store.get("reports/2026-11-28/report.json").unwrap()).unwrap();
        let next = build(
            &inv,
            &NoProvenance,
            &MemoryStore::default(),
            &NoDeadline,
            &request(),
            "2026-12-05T06:00:00Z",
        );
        let trend = trend_after(Some(&last), &next, 2);
        let dates: Vec<&str> = trend.iter().map(|p| p.generated_at.as_str()).collect();
        assert_eq!(
            dates,
            [
                "2026-11-21T06:00:00Z",
                "2026-11-28T06:00:00Z",
                "2026-12-05T06:00:00Z"
            ]
        );
    }

    #[test]
    fn a_run_starts_where_the_last_one_was_cut_so_no_account_is_cut_every_week() {
        let mut previous = build(
            &inventory(1, 1, 10),
            &NoProvenance,
            &MemoryStore::default(),
            &NoDeadline,
            &request(),
            "2026-11-21T06:00:00Z",
        );
        let targets = || -> Vec<AccountRegion> {
            (0..10)
                .map(|i| AccountRegion::new(format!("1000000000{i:02}"), "eu-west-1"))
                .collect()
        };
        let cut_at = |previous: &mut Report, cut: &[usize]| {
            previous.coverage.gaps = cut
                .iter()
                .map(|&i| gap(&targets()[i], None, GapReason::Deadline, "deadline".into()))
                .collect();
        };
        let first = |order: &[AccountRegion]| order[0].account.clone();

        // Last week started at 4, covered 4..8 and was cut at 9, 0, 1, 2, 3
        // (wrapping): this week starts at 9, not at 0.
        cut_at(&mut previous, &[9, 0, 1, 2, 3]);
        let mut order = targets();
        start_where_last_run_was_cut(&mut order, Some(&previous));
        assert_eq!(first(&order), "100000000009");
        assert_eq!(order.len(), 10, "every account-region still in the run");

        // Cut in the middle: start there.
        cut_at(&mut previous, &[6, 7]);
        let mut order = targets();
        start_where_last_run_was_cut(&mut order, Some(&previous));
        assert_eq!(first(&order), "100000000006");

        // Nothing cut by the deadline (other gaps don't count), or no
        // previous report: the usual order.
        previous.coverage.gaps = vec![gap(
            &targets()[5],
            None,
            GapReason::AccessDenied,
            "denied".into(),
        )];
        let mut order = targets();
        start_where_last_run_was_cut(&mut order, Some(&previous));
        assert_eq!(order, targets());
        start_where_last_run_was_cut(&mut order, None);
        assert_eq!(order, targets());
    }

    #[test]
    fn every_page_of_keys_aliases_and_grants_is_read() {
        // 25 keys in pages of 3, 250 grants per key in pages of 3.
        let inv = inventory(25, 250, 3);
        let r = build(
            &inv,
            &NoProvenance,
            &MemoryStore::default(),
            &NoDeadline,
            &request(),
            "2026-11-28T06:00:00Z",
        );
        assert!(!r.partial, "{:?}", r.coverage.gaps);
        assert_eq!(r.summary.keys, 25);
        assert_eq!(r.summary.grants, 25 * 250);
        assert_eq!(inv.call_count("ListKeys"), 9);
        assert_eq!(inv.call_count("ListGrants"), 25 * 84);
        assert_eq!(r.keys[0].aliases, vec!["alias/key-000".to_string()]);
        // Every key's grants share grantee, operations and constraints.
        assert_eq!(
            r.summary.by_finding.get("duplicate-grant"),
            Some(&(25 * 249))
        );
        assert_eq!(
            r.coverage.account_regions[0].status,
            CoverageStatus::Complete
        );
        assert_eq!(r.coverage.account_regions[0].keys_complete, 25);
    }

    #[test]
    fn keys_that_cannot_be_read_stay_in_the_report_with_the_reason() {
        let mut inv = inventory(4, 2, 100);
        let region = inv.regions.values_mut().next().unwrap();
        region.key_errors.insert(
            "key-001".into(),
            ReadError::AccessDenied("not authorized".into()),
        );
        region.key_errors.insert(
            "key-002".into(),
            ReadError::Throttled("rate exceeded".into()),
        );
        let r = build(
            &inv,
            &NoProvenance,
            &MemoryStore::default(),
            &NoDeadline,
            &request(),
            "2026-11-28T06:00:00Z",
        );
        assert!(r.partial);
        assert_eq!(r.keys.len(), 4, "no key is dropped");
        let reasons: Vec<(String, GapReason)> = r
            .coverage
            .gaps
            .iter()
            .map(|g| (g.key_arn.clone().unwrap_or_default(), g.reason))
            .collect();
        assert!(reasons.contains(&(key("key-001").key_arn, GapReason::AccessDenied)));
        assert!(reasons.contains(&(key("key-002").key_arn, GapReason::Throttled)));
        assert_eq!(
            r.coverage.account_regions[0].status,
            CoverageStatus::Partial
        );
        assert_eq!(r.coverage.account_regions[0].keys_complete, 2);
        assert_eq!(r.summary.grants, 4);
    }

    #[test]
    fn a_pending_deletion_key_whose_grants_cannot_be_listed_is_reported_as_such() {
        struct PendingDeletion(FakeInventory);
        impl Inventory for PendingDeletion {
            async fn list_keys(
                &self,
                at: &AccountRegion,
                m: Option<String>,
            ) -> Result<crate::ports::inventory::Page<ListedKey>, ReadError> {
                self.0.list_keys(at, m).await
            }
            async fn describe_key(
                &self,
                at: &AccountRegion,
                id: &str,
            ) -> Result<KeyDescription, ReadError> {
                let mut d = self.0.describe_key(at, id).await?;
                d.state = Some("PendingDeletion".into());
                Ok(d)
            }
            async fn list_aliases(
                &self,
                at: &AccountRegion,
                m: Option<String>,
            ) -> Result<crate::ports::inventory::Page<AliasEntry>, ReadError> {
                self.0.list_aliases(at, m).await
            }
            async fn list_grants(
                &self,
                _: &AccountRegion,
                id: &str,
                _: Option<String>,
            ) -> Result<crate::ports::inventory::Page<ListedGrant>, ReadError> {
                Err(ReadError::InvalidState(format!("{id} is pending deletion")))
            }
        }
        let inv = PendingDeletion(inventory(1, 1, 10));
        let policy = policy();
        let options = ReportOptions::default();
        let dir = directory();
        let store = MemoryStore::default();
        let deps = ReportDeps {
            inventory: &inv,
            provenance: &NoProvenance,
            store: &store,
            directory: &dir,
            policy: &policy,
            options: &options,
            deadline: &NoDeadline,
            progress: &Quiet,
        };
        let r = block_on(build_report(&request(), &deps, "2026-11-28T06:00:00Z")).unwrap();
        assert_eq!(r.coverage.gaps[0].reason, GapReason::PendingDeletion);
        assert_eq!(r.keys[0].state.as_deref(), Some("PendingDeletion"));
    }

    #[test]
    fn a_region_that_cannot_be_listed_is_unread_and_others_still_report() {
        let mut inv = inventory(2, 1, 100);
        let other = AccountRegion::new("222222222222", REGION);
        inv.regions.insert(
            other.clone(),
            FakeRegion {
                region_error: Some(ReadError::AccessDenied(
                    "cannot assume grantwatch-report-reader".into(),
                )),
                ..FakeRegion::default()
            },
        );
        let req = ReportRequest {
            accounts: AccountSelection::Organization,
            regions: vec![REGION.into()],
        };
        let r = build(
            &inv,
            &NoProvenance,
            &MemoryStore::default(),
            &NoDeadline,
            &req,
            "2026-11-28T06:00:00Z",
        );
        assert!(r.scope.organization);
        assert_eq!(
            r.scope.accounts,
            vec![ACCOUNT.to_string(), "222222222222".to_string()]
        );
        assert!(r.partial);
        assert_eq!(r.summary.grants, 2);
        let unread = r
            .coverage
            .account_regions
            .iter()
            .find(|c| c.account == "222222222222")
            .unwrap();
        assert_eq!(unread.status, CoverageStatus::Unread);
        assert!(r.coverage.gaps.iter().any(|g| g.account == "222222222222"
            && g.key_arn.is_none()
            && g.reason == GapReason::AccessDenied));
    }

    #[test]
    fn when_the_deadline_runs_out_the_report_says_exactly_what_was_covered() {
        let inv = inventory(10, 5, 2);
        // Enough checks for ListKeys (5 pages), ListAliases (5 pages) and a few keys.
        let deadline = DeadlineAfterChecks::new(20);
        let options = ReportOptions {
            key_concurrency: 1,
            ..ReportOptions::default()
        };
        let policy = policy();
        let dir = directory();
        let store = MemoryStore::default();
        let deps = ReportDeps {
            inventory: &inv,
            provenance: &NoProvenance,
            store: &store,
            directory: &dir,
            policy: &policy,
            options: &options,
            deadline: &deadline,
            progress: &Quiet,
        };
        let r = block_on(build_report(&request(), &deps, "2026-11-28T06:00:00Z")).unwrap();
        assert!(r.partial);
        assert_eq!(r.keys.len(), 10, "every listed key is named");
        let complete: Vec<&KeyReport> = r.keys.iter().filter(|k| k.complete).collect();
        let cut: Vec<&CoverageGap> = r
            .coverage
            .gaps
            .iter()
            .filter(|g| g.reason == GapReason::Deadline)
            .collect();
        assert!(!complete.is_empty() && !cut.is_empty());
        assert_eq!(complete.len() + cut.len(), 10);
        assert!(complete.iter().all(|k| k.grants.len() == 5));
        assert_eq!(
            r.summary.grants,
            r.keys.iter().map(|k| k.grants.len()).sum::<usize>()
        );
        for g in cut {
            assert!(!r.coverage.key_complete(g.key_arn.as_deref().unwrap()));
        }
    }

    #[test]
    fn provenance_from_the_ledger_names_the_creator() {
        let inv = inventory(1, 2, 100);
        let arn = key("key-000").key_arn;
        let mut prov = FakeProvenance::default();
        prov.records.insert(
            arn.clone(),
            vec![GrantRecord {
                key_arn: arn.clone(),
                grant_id: "key-000-g00001".into(),
                account: Some(ACCOUNT.into()),
                region: Some(REGION.into()),
                created_event_id: "ev-1".into(),
                created_at: Some("2026-11-01T10:00:00Z".into()),
                created_by: Caller {
                    arn: Some(format!("arn:aws:iam::{ACCOUNT}:user/alice")),
                    ..Caller::default()
                },
                origin: Origin::Manual,
                service: None,
                grant: GrantFacts::default(),
                removal: None,
            }],
        );
        let r = build(
            &inv,
            &prov,
            &MemoryStore::default(),
            &NoDeadline,
            &request(),
            "2026-11-28T06:00:00Z",
        );
        let g = r
            .grants()
            .find(|(_, g)| g.grant_id == "key-000-g00001")
            .unwrap()
            .1;
        assert_eq!(
            g.created_by.as_ref().and_then(|c| c.arn.as_deref()),
            Some("arn:aws:iam::111111111111:user/alice")
        );
        assert_eq!(g.created.as_deref(), Some("2026-11-01T10:00:00Z"));
        let other = r
            .grants()
            .find(|(_, g)| g.grant_id == "key-000-g00000")
            .unwrap()
            .1;
        assert!(other.created_by.is_none());
    }

    struct Recorder(std::sync::Mutex<Vec<String>>, bool);
    impl SummaryChannel for Recorder {
        fn name(&self) -> &'static str {
            "recorder"
        }
        async fn deliver(&self, report: &Report, link: &str) -> Result<(), PortError> {
            if self.1 {
                return Err(PortError::Transient("down".into()));
            }
            self.0
                .lock()
                .unwrap()
                .push(format!("{} {}", report.summary.grants, link));
            Ok(())
        }
    }

    #[test]
    fn run_stores_every_file_diffs_with_the_previous_report_and_delivers_the_link() {
        let store = MemoryStore::default();
        let policy = policy();
        let options = ReportOptions::default();
        let dir = directory();
        let channel = Recorder(Default::default(), false);
        let run = |inv: &FakeInventory, at: &str| {
            let deps = ReportDeps {
                inventory: inv,
                provenance: &NoProvenance,
                store: &store,
                directory: &dir,
                policy: &policy,
                options: &options,
                deadline: &NoDeadline,
                progress: &Quiet,
            };
            block_on(run_report(&request(), &deps, &[&channel], at))
        };
        let first = run(&inventory(2, 3, 100), "2026-11-21T06:00:00Z").unwrap();
        assert_eq!(first.locations.len(), 4);
        assert_eq!(first.link, "memory://reports/2026-11-21/report.html");
        let week1 =
            Report::from_json(&store.get("reports/2026-11-21/report.json").unwrap()).unwrap();
        assert!(week1.diff.is_none());

        // Next week: key-000 lost a grant and key-001 gained one.
        let mut inv = inventory(2, 3, 100);
        let region = inv.regions.values_mut().next().unwrap();
        region.grants.get_mut("key-000").unwrap().pop();
        region
            .grants
            .get_mut("key-001")
            .unwrap()
            .extend(grants(1, "key-001-new"));
        let second = run(&inv, "2026-11-28T06:00:00Z").unwrap();
        assert_eq!(second.delivered, vec!["recorder".to_string()]);
        let week2 =
            Report::from_json(&store.get("reports/2026-11-28/report.json").unwrap()).unwrap();
        let d = week2.diff.as_ref().unwrap();
        assert_eq!(d.previous_generated_at, "2026-11-21T06:00:00Z");
        assert_eq!(
            d.new_grants
                .iter()
                .map(|g| g.grant_id.as_str())
                .collect::<Vec<_>>(),
            vec!["key-001-new00000"]
        );
        assert_eq!(
            d.removed_grants
                .iter()
                .map(|g| g.grant_id.as_str())
                .collect::<Vec<_>>(),
            vec!["key-000-g00002"]
        );
        assert_eq!(week2.trend.len(), 2);
        assert_eq!(week2.trend[0].generated_at, "2026-11-21T06:00:00Z");
        let sent = channel.0.lock().unwrap().clone();
        assert_eq!(
            sent,
            vec![
                "6 memory://reports/2026-11-21/report.html".to_string(),
                "6 memory://reports/2026-11-28/report.html".to_string()
            ]
        );
        assert!(store.get("reports/2026-11-28/grants.csv").is_some());
        assert!(store.get("reports/2026-11-28/summary.md").is_some());
    }

    #[test]
    fn a_failed_channel_is_an_error_after_the_report_is_stored() {
        let store = MemoryStore::default();
        let policy = policy();
        let options = ReportOptions::default();
        let dir = directory();
        let inv = inventory(1, 1, 10);
        let deps = ReportDeps {
            inventory: &inv,
            provenance: &NoProvenance,
            store: &store,
            directory: &dir,
            policy: &policy,
            options: &options,
            deadline: &NoDeadline,
            progress: &Quiet,
        };
        let down = Recorder(Default::default(), true);
        let err = block_on(run_report(
            &request(),
            &deps,
            &[&down],
            "2026-11-28T06:00:00Z",
        ))
        .unwrap_err();
        assert_eq!(err.error_type(), "DeliveryError");
        assert!(store.get("reports/2026-11-28/report.html").is_some());
    }

    #[test]
    fn an_empty_scope_is_a_clear_error() {
        let req = ReportRequest {
            accounts: AccountSelection::List(vec![" ".into()]),
            regions: vec![REGION.into()],
        };
        let err = block_on(resolve_scope(&req, &directory())).unwrap_err();
        assert_eq!(err, ReportError::Scope("no accounts in scope".into()));
        let req = ReportRequest {
            accounts: AccountSelection::This,
            regions: vec![],
        };
        assert!(block_on(resolve_scope(&req, &directory())).is_err());
    }

    // ---- reconciliation, report hashes and scope (issue 10) ----

    use crate::ports::inventory::StackProvenance;
    use crate::ports::ledger::{GrantLedger, MemoryLedger, StackLedger};

    /// 2026-11-01T00:00:00Z: grants created before it are not the
    /// watcher's to have seen.
    const DEPLOYED_MS: i64 = 1_793_491_200_000;

    fn dated(id: &str, created: &str) -> ListedGrant {
        let mut g = grants(1, id).remove(0);
        g.grant_id = id.into();
        g.created = Some(created.into());
        g
    }

    fn record_of(key_id: &str, grant_id: &str, at: &str) -> GrantRecord {
        let key = key(key_id);
        GrantRecord {
            key_arn: key.key_arn,
            grant_id: grant_id.into(),
            account: Some(ACCOUNT.into()),
            region: Some(REGION.into()),
            created_event_id: format!("ev-{grant_id}"),
            created_at: Some(at.into()),
            created_by: Caller::default(),
            origin: Origin::Manual,
            service: None,
            grant: GrantFacts::default(),
            removal: None,
        }
    }

    fn unseen(g: &GrantReport) -> bool {
        g.findings
            .iter()
            .any(|f| f.code == FindingCode::UnseenByWatcher && f.severity == Severity::High)
    }

    #[test]
    fn standing_grants_the_watcher_never_saw_are_unseen_by_watcher() {
        let mut inv = inventory(1, 0, 100);
        let region = inv.regions.values_mut().next().unwrap();
        region.grants.insert(
            "key-000".into(),
            vec![
                dated("before-deploy", "2026-10-30T12:00:00Z"),
                dated("missed", "2026-11-20T09:30:00Z"),
                dated("seen", "2026-11-20T09:31:00Z"),
                dated("just-now", "2026-11-28T05:50:00Z"),
            ],
        );
        let ledger = MemoryLedger::new();
        block_on(ledger.record_deployed(DEPLOYED_MS)).unwrap();
        block_on(ledger.record_grant(&record_of("key-000", "seen", "2026-11-20T09:31:00Z")))
            .unwrap();
        let r = build(
            &inv,
            &StackProvenance(&ledger),
            &MemoryStore::default(),
            &NoDeadline,
            &request(),
            "2026-11-28T06:00:00Z",
        );
        let flagged: Vec<&str> = r
            .grants()
            .filter(|(_, g)| unseen(g))
            .map(|(_, g)| g.grant_id.as_str())
            .collect();
        assert_eq!(
            flagged,
            ["missed"],
            "not before the deployment, not seen, not the last 15 minutes"
        );
        let missed = r.grants().find(|(_, g)| g.grant_id == "missed").unwrap().1;
        assert!(missed.severity >= Severity::High && missed.is_risky());
        assert_eq!(r.summary.by_finding.get("unseen-by-watcher"), Some(&1));
        let reconciliation = r.reconciliation.as_ref().unwrap();
        assert_eq!(reconciliation.unseen_by_watcher, 1);
        assert_eq!(reconciliation.deployed_at, "2026-11-01T00:00:00Z");
        assert_eq!(reconciliation.period_end, "2026-11-28T05:45:00Z");
        // It reaches the people who read the summary.
        let mail = crate::report::summary::sns(&r, "https://link");
        assert!(
            mail.message.contains("unseen-by-watcher"),
            "{}",
            mail.message
        );

        // Without a ledger nothing is known: nothing is called unseen.
        let r = build(
            &inv,
            &NoProvenance,
            &MemoryStore::default(),
            &NoDeadline,
            &request(),
            "2026-11-28T06:00:00Z",
        );
        assert!(r.grants().all(|(_, g)| !unseen(g)));
        assert!(r.reconciliation.is_none());
    }

    #[test]
    fn the_report_records_the_deployment_time_when_the_watcher_has_not() {
        let mut inv = inventory(1, 0, 100);
        let region = inv.regions.values_mut().next().unwrap();
        region
            .grants
            .insert("key-000".into(), vec![dated("old", "2026-11-20T09:30:00Z")]);
        let ledger = MemoryLedger::new();
        let r = build(
            &inv,
            &StackProvenance(&ledger),
            &MemoryStore::default(),
            &NoDeadline,
            &request(),
            "2026-11-28T06:00:00Z",
        );
        // Deployed now: nothing before it is the watcher's miss.
        assert_eq!(
            block_on(ledger.deployed_at()).unwrap(),
            Some(1_795_845_600_000)
        );
        assert!(r.grants().all(|(_, g)| !unseen(g)));
    }

    #[test]
    fn account_regions_with_new_grants_and_no_ledger_event_are_silent() {
        let other = AccountRegion::new("222222222222", REGION);
        let mut inv = inventory(1, 0, 100);
        let mut region = inv.regions.values().next().unwrap().clone();
        for k in &mut region.keys {
            k.key_arn = k.key_arn.replace(ACCOUNT, "222222222222");
        }
        inv.regions.values_mut().next().unwrap().grants.insert(
            "key-000".into(),
            vec![dated("heard", "2026-11-25T10:00:00Z")],
        );
        region.grants.insert(
            "key-000".into(),
            vec![
                dated("quiet-1", "2026-11-25T10:00:00Z"),
                dated("quiet-2", "2026-11-26T10:00:00Z"),
                // Before the period (the previous report): not counted.
                dated("older", "2026-11-02T10:00:00Z"),
            ],
        );
        inv.regions.insert(other, region);
        let ledger = MemoryLedger::new();
        block_on(ledger.record_deployed(DEPLOYED_MS)).unwrap();
        block_on(ledger.record_grant(&record_of("key-000", "heard", "2026-11-25T10:00:00Z")))
            .unwrap();
        let store = MemoryStore::default();
        let req = ReportRequest {
            accounts: AccountSelection::Organization,
            regions: vec![REGION.into()],
        };
        let policy = policy();
        let options = ReportOptions::default();
        let dir = directory();
        let provenance = StackProvenance(&ledger);
        let deps = ReportDeps {
            inventory: &inv,
            provenance: &provenance,
            store: &store,
            directory: &dir,
            policy: &policy,
            options: &options,
            deadline: &NoDeadline,
            progress: &Quiet,
        };
        block_on(run_report(
            &req,
            &deps,
            &[&NoChannel],
            "2026-11-21T06:00:00Z",
        ))
        .unwrap();
        let r = block_on(build_report(&req, &deps, "2026-11-28T06:00:00Z")).unwrap();
        let rec = r.reconciliation.as_ref().unwrap();
        assert_eq!(
            rec.period_start, "2026-11-21T06:00:00Z",
            "since the previous report"
        );
        assert_eq!(
            rec.silent_account_regions,
            vec![SilentAccountRegion {
                account: "222222222222".into(),
                region: REGION.into(),
                grants_created: 2,
            }]
        );
        assert_eq!(r.summary.silent_account_regions, 1);
        let md = crate::report::markdown::write(&r);
        assert!(md.contains("Silent account-regions"), "{md}");
    }

    /// Two weekly runs with a ledger; `between` tampers with the store
    /// after the first.
    fn weeks_with_ledger(between: impl Fn(&MemoryStore)) -> (Report, MemoryLedger) {
        let store = MemoryStore::default();
        let ledger = MemoryLedger::new();
        let provenance = StackProvenance(&ledger);
        let policy = policy();
        let options = ReportOptions::default();
        let dir = directory();
        let inv = inventory(1, 2, 100);
        let deps = ReportDeps {
            inventory: &inv,
            provenance: &provenance,
            store: &store,
            directory: &dir,
            policy: &policy,
            options: &options,
            deadline: &NoDeadline,
            progress: &Quiet,
        };
        block_on(run_report(
            &request(),
            &deps,
            &[&NoChannel],
            "2026-11-14T06:00:00Z",
        ))
        .unwrap();
        block_on(run_report(
            &request(),
            &deps,
            &[&NoChannel],
            "2026-11-21T06:00:00Z",
        ))
        .unwrap();
        between(&store);
        block_on(run_report(
            &request(),
            &deps,
            &[&NoChannel],
            "2026-11-28T06:00:00Z",
        ))
        .unwrap();
        let report =
            Report::from_json(&store.get("reports/2026-11-28/report.json").unwrap()).unwrap();
        (report, ledger)
    }

    fn tampered(r: &Report) -> Vec<String> {
        r.integrity
            .as_ref()
            .unwrap()
            .findings
            .iter()
            .filter(|f| f.code == FindingCode::PipelineTampered && f.severity == Severity::Critical)
            .map(|f| f.message.clone())
            .collect()
    }

    #[test]
    fn every_stored_file_is_recorded_and_an_untouched_previous_report_is_the_base() {
        let (r, ledger) = weeks_with_ledger(|_| {});
        let files = block_on(ledger.report_files()).unwrap();
        assert_eq!(files.len(), 12, "4 files x 3 runs");
        assert!(tampered(&r).is_empty());
        let integrity = r.integrity.as_ref().unwrap();
        assert_eq!(
            integrity.previous.as_deref(),
            Some("reports/2026-11-21/report.json")
        );
        assert_eq!(
            r.diff.as_ref().unwrap().previous_generated_at,
            "2026-11-21T06:00:00Z"
        );
    }

    #[test]
    fn a_changed_previous_report_is_tampering_and_the_diff_falls_back_to_a_verified_one() {
        let (r, _) = weeks_with_ledger(|store| {
            // Someone hides a grant from the diff by editing last week's report.
            let location = "reports/2026-11-21/report.json";
            let mut body = Report::from_json(&store.get(location).unwrap()).unwrap();
            body.keys[0].grants.pop();
            store
                .files
                .lock()
                .unwrap()
                .insert(location.into(), crate::report::to_json(&body).unwrap());
        });
        let found = tampered(&r);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("reports/2026-11-21/report.json"));
        assert_eq!(
            r.diff.as_ref().unwrap().previous_generated_at,
            "2026-11-14T06:00:00Z",
            "the newest report whose hash matches"
        );
        assert_eq!(r.summary.pipeline_tampered, 1);
        // Alerted: the summary leads with it.
        let mail = crate::report::summary::sns(&r, "https://link");
        assert!(mail.subject.contains("TAMPERED"), "{}", mail.subject);
        assert!(mail.message.contains("pipeline-tampered"));
    }

    #[test]
    fn a_planted_previous_report_that_grantwatch_never_stored_is_tampering() {
        let (r, _) = weeks_with_ledger(|store| {
            let mut planted =
                Report::from_json(&store.get("reports/2026-11-21/report.json").unwrap()).unwrap();
            planted.generated_at = "2026-11-27T06:00:00Z".into();
            store.files.lock().unwrap().insert(
                "reports/2026-11-27/report.json".into(),
                crate::report::to_json(&planted).unwrap(),
            );
        });
        let found = tampered(&r);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("reports/2026-11-27/report.json")
                && found[0].contains("never recorded")
        );
        assert_eq!(
            r.integrity.as_ref().unwrap().previous.as_deref(),
            Some("reports/2026-11-21/report.json")
        );
    }

    #[test]
    fn accounts_outside_the_configured_scope_are_refused_before_anything_is_read() {
        let inv = inventory(1, 1, 10);
        let policy = policy();
        let dir = directory();
        let store = MemoryStore::default();
        let ledger = MemoryLedger::new();
        let provenance = StackProvenance(&ledger);
        let run = |configured: AccountSelection, asked: AccountSelection| {
            let options = ReportOptions {
                configured_accounts: Some(configured),
                ..ReportOptions::default()
            };
            let deps = ReportDeps {
                inventory: &inv,
                provenance: &provenance,
                store: &store,
                directory: &dir,
                policy: &policy,
                options: &options,
                deadline: &NoDeadline,
                progress: &Quiet,
            };
            let req = ReportRequest {
                accounts: asked,
                regions: vec![REGION.into()],
            };
            block_on(run_report(
                &req,
                &deps,
                &[&NoChannel],
                "2026-11-28T06:00:00Z",
            ))
        };
        for (configured, asked, outside) in [
            (
                AccountSelection::This,
                AccountSelection::List(vec![ACCOUNT.into(), "333333333333".into()]),
                vec!["333333333333"],
            ),
            (
                AccountSelection::List(vec![ACCOUNT.into()]),
                AccountSelection::Organization,
                vec!["222222222222"],
            ),
            (
                AccountSelection::Organization,
                AccountSelection::List(vec!["444444444444".into()]),
                vec!["444444444444"],
            ),
        ] {
            let err = run(configured, asked).unwrap_err();
            assert_eq!(err.error_type(), "ScopeRefused");
            assert_eq!(
                err,
                ReportError::ScopeRefused(outside.iter().map(|a| a.to_string()).collect())
            );
        }
        assert!(inv.calls.lock().unwrap().is_empty(), "no KMS call");
        assert!(store.files.lock().unwrap().is_empty(), "nothing stored");
        assert_eq!(
            block_on(ledger.deployed_at()).unwrap(),
            None,
            "nothing written"
        );

        // Inside the scope: the report runs.
        let inside = run(
            AccountSelection::Organization,
            AccountSelection::List(vec!["222222222222".into()]),
        )
        .unwrap();
        assert!(
            inside.partial,
            "222222222222 has no fake region: read, and unread"
        );
        assert!(inv.call_count("ListKeys") > 0);
        run(
            AccountSelection::This,
            AccountSelection::List(vec![ACCOUNT.into()]),
        )
        .unwrap();
    }
}
