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

use crate::assess::{assess_key_grants, worst_severity, DEFAULT_GRANT_COUNT_THRESHOLD};
use crate::judge::{judge_standing, Policy, StandingGrant};
use crate::ports::inventory::{
    AccountDirectory, AccountRegion, AccountSelection, Inventory, KeyDescription, ListedKey,
    Provenance, ReadError, ReportStore,
};
use crate::ports::PortError;
use crate::record::GrantRecord;
use crate::report::model::{
    summarise, AccountRegionCoverage, Coverage, CoverageGap, CoverageStatus, CreatedBy, GapReason,
    GrantReport, KeyReport, Report, ReportScope, TrendPoint, SCHEMA_VERSION,
};
use crate::report::{diff, render_file, FILE_NAMES, REPORT_HTML};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
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
}

impl Default for ReportOptions {
    fn default() -> Self {
        ReportOptions {
            account_region_concurrency: 16,
            key_concurrency: 4,
            trend_reports: 12,
            reserve: Duration::from_secs(60),
            grant_count_threshold: DEFAULT_GRANT_COUNT_THRESHOLD,
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
    let (accounts, organization) = match &request.accounts {
        AccountSelection::This => (
            vec![directory
                .this_account()
                .await
                .map_err(|e| ReportError::Scope(e.to_string()))?],
            false,
        ),
        AccountSelection::List(list) => (list.clone(), false),
        AccountSelection::Organization => (
            directory
                .organization_accounts()
                .await
                .map_err(|e| ReportError::Scope(e.to_string()))?,
            true,
        ),
    };
    let mut accounts: Vec<String> = accounts.into_iter().map(|a| a.trim().to_string()).collect();
    accounts.retain(|a| !a.is_empty());
    accounts.sort();
    accounts.dedup();
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
    let scope = resolve_scope(request, deps.directory).await?;
    // Only the newest previous report is read (the diff's base): it carries
    // the trend of the runs before it, so past reports are never reloaded.
    let history = previous_reports(deps.store, 1, generated_at).await;
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
            let result = inventory_account_region(&at, deps).await;
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
    for r in results {
        coverage.account_regions.push(r.coverage);
        coverage.gaps.extend(r.gaps);
        keys.extend(r.keys);
    }
    let partial = !coverage.gaps.is_empty()
        || coverage
            .account_regions
            .iter()
            .any(|c| c.status != CoverageStatus::Complete);
    let summary = summarise(&keys, &coverage);
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
    for name in FILE_NAMES {
        let file = render_file(&report, name).map_err(|e| ReportError::Render(e.to_string()))?;
        let location = deps
            .store
            .put(report.date(), file.name, file.body, file.content_type)
            .await
            .map_err(ReportError::Store)?;
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
    Ok(ReportOutcome {
        generated_at: report.generated_at.clone(),
        partial: report.partial,
        keys: report.summary.keys,
        grants: report.summary.grants,
        risky: report.summary.risky,
        coverage_gaps: report.summary.coverage_gaps,
        locations,
        link,
        delivered,
    })
}

/// Stored reports older than this run, newest first; unreadable ones are
/// skipped (the trend has a hole, the diff uses the next one).
async fn previous_reports<S: ReportStore>(store: &S, limit: usize, now: &str) -> Vec<Report> {
    let Ok(stored) = store.recent_reports(limit.saturating_add(1)).await else {
        return Vec::new();
    };
    let mut reports: Vec<Report> = stored
        .iter()
        .filter_map(|s| Report::from_json(&s.body).ok())
        .filter(|r| r.generated_at.as_str() < now)
        .collect();
    reports.sort_by(|a, b| b.generated_at.cmp(&a.generated_at));
    reports.truncate(limit);
    reports
}

/// One account-region's part of the report.
struct RegionInventory {
    coverage: AccountRegionCoverage,
    gaps: Vec<CoverageGap>,
    keys: Vec<KeyReport>,
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
    let results: Vec<(KeyReport, Option<CoverageGap>)> = stream::iter(listed)
        .map(|key| async move { inventory_key(at, key, aliases, deps).await })
        .buffer_unordered(deps.options.key_concurrency.max(1))
        .collect()
        .await;
    for (key, key_gap) in results {
        out.coverage.grants += key.grants.len();
        match key_gap {
            Some(g) => out.gaps.push(g),
            None => out.coverage.keys_complete += 1,
        }
        out.keys.push(key);
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
) -> (KeyReport, Option<CoverageGap>)
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
    if out_of_time(deps.deadline, reserve) {
        return (
            report,
            Some(gap(
                at,
                Some(&arn),
                GapReason::Deadline,
                "not read: deadline".into(),
            )),
        );
    }
    let description = match deps.inventory.describe_key(at, &listed.key_id).await {
        Ok(d) => d,
        Err(e) => {
            let reason = reason_of(&e, None);
            return (
                report,
                Some(gap(at, Some(&arn), reason, format!("DescribeKey: {e}"))),
            );
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

    let provenance: BTreeMap<String, GrantRecord> = if listed_grants.is_empty() {
        BTreeMap::new()
    } else {
        // Without the ledger the grants are still judged, from ListGrants alone.
        deps.provenance
            .grant_records(&arn)
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.grant_id.clone(), r))
            .collect()
    };
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
    let key_findings = assess_key_grants(&standing, deps.options.grant_count_threshold);
    report.grants = standing
        .iter()
        .zip(key_findings)
        .map(|(g, extra)| {
            let mut grant = grant_report(g, provenance.get(&g.grant_id), deps.policy);
            add_key_findings(&mut grant, extra);
            grant
        })
        .collect();
    report.grants.sort_by(|a, b| a.grant_id.cmp(&b.grant_id));
    report.complete = key_gap.is_none();
    (report, key_gap)
}

/// Add the key-wide findings (`duplicate-grant`, `grant-count-high`) to a
/// judged grant: they raise its severity unless a rule suppressed it.
fn add_key_findings(grant: &mut GrantReport, extra: Vec<crate::verdict::Finding>) {
    if extra.is_empty() {
        return;
    }
    if grant.suppressed_by.is_none() {
        grant.severity = grant.severity.max(worst_severity(&extra));
    }
    grant.findings.extend(extra);
    grant
        .findings
        .sort_by(|a, b| b.severity.cmp(&a.severity).then(a.code.cmp(&b.code)));
}

/// Judge one standing grant and shape it for the report.
pub fn grant_report(
    grant: &StandingGrant,
    record: Option<&GrantRecord>,
    policy: &Policy,
) -> GrantReport {
    let judgement = judge_standing(grant, record, policy);
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
    use crate::rules::RuleSet;
    use crate::verdict::{Origin, Severity};
    use futures::executor::block_on;

    const ACCOUNT: &str = "111111111111";
    const REGION: &str = "eu-west-1";

    fn policy() -> Policy {
        Policy {
            rules: RuleSet::default(),
            min_alert_severity: Severity::Medium,
            today: time::macros::date!(2026 - 11 - 28),
        }
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
}
