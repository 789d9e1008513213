//! Build the report model: inventory results → coverage, summary,
//! reconciliation, diff and trend; one standing grant → its report entry.

use super::history::{rfc3339, trend_after, verified_previous, WatchWindow};
use super::inventory::{inventory_account_region, RegionInventory};
use super::scope::{refuse_out_of_scope, resolve_scope, start_where_last_run_was_cut};
use super::{ReportDeps, ReportError, ReportRequest};
use crate::event::epoch_ms;
use crate::judge::{judge_key_with, Judgement, KeyContext, KeyJudgement, Policy, StandingGrant};
use crate::ports::inventory::{
    AccountDirectory, AccountRegion, Inventory, Provenance, ReportStore,
};
use crate::record::GrantRecord;
use crate::report::diff::{self, PreviousReport};
use crate::report::model::{
    summarise, Coverage, CoverageStatus, CreatedBy, GrantReport, Integrity, Reconciliation, Report,
    ReportScope, SilentAccountRegion, SCHEMA_VERSION,
};
use crate::verdict::FindingCode;
use futures::stream::{self, StreamExt};

/// What a run knows before reading KMS: the scope, the order to read it
/// in, the verified previous report and the reconciliation window. One run
/// uses it whole; a fan-out (app::fanout) plans from it and merges into it.
pub struct Prepared {
    pub scope: ReportScope,
    /// Every account-region, rotated (start_where_last_run_was_cut).
    pub targets: Vec<AccountRegion>,
    pub watch: Option<WatchWindow>,
    previous: Option<PreviousReport>,
    integrity: Option<Integrity>,
    reconcile_problem: Option<String>,
}

impl Prepared {
    /// The same rotation, for any list of account-regions (a fan-out
    /// shard's).
    pub fn rotate(&self, targets: &mut [AccountRegion]) {
        start_where_last_run_was_cut(targets, self.previous.as_ref());
    }
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
    let prepared = prepare_report(request, deps, generated_at).await?;
    let watch = prepared.watch.as_ref();
    let results: Vec<RegionInventory> = stream::iter(prepared.targets.clone())
        .map(|at| async move {
            deps.progress.started(&at);
            let result = inventory_account_region(&at, deps, watch).await;
            deps.progress.finished(&result.coverage);
            result
        })
        .buffer_unordered(deps.options.account_region_concurrency.max(1))
        .collect()
        .await;
    Ok(assemble_report(prepared, results, generated_at, deps))
}

/// Refuse a scope wider than the configuration, resolve it, read the
/// verified previous report and the deployment time, and order the
/// account-regions (the rotation).
pub async fn prepare_report<I, P, S, D>(
    request: &ReportRequest,
    deps: &ReportDeps<'_, I, P, S, D>,
    generated_at: &str,
) -> Result<Prepared, ReportError>
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
    let now_ms = epoch_ms(generated_at).unwrap_or(0);
    let (watch, reconcile_problem) = match deps.provenance.deployed_at(now_ms).await {
        Ok(deployed) => (
            deployed.map(|deployed_ms| WatchWindow::new(deployed_ms, previous.as_ref(), now_ms)),
            None,
        ),
        Err(e) => (None, Some(format!("the ledger could not be read: {e}"))),
    };
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
    start_where_last_run_was_cut(&mut targets, previous.as_ref());
    Ok(Prepared {
        scope,
        targets,
        watch,
        previous,
        integrity,
        reconcile_problem,
    })
}

/// The report from every account-region's inventory: coverage, summary,
/// reconciliation, diff and trend.
pub fn assemble_report<I, P, S, D>(
    prepared: Prepared,
    mut results: Vec<RegionInventory>,
    generated_at: &str,
    deps: &ReportDeps<'_, I, P, S, D>,
) -> Report {
    let Prepared {
        scope,
        watch,
        previous,
        integrity,
        reconcile_problem,
        ..
    } = prepared;
    let watch = watch.as_ref();
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
        expiring_rules: crate::report::ExpiringRule::of(&deps.policy.rules, deps.policy.today),
    };

    diff::apply_previous(&mut report, previous.as_ref());
    report.trend = trend_after(previous.as_ref(), &report, deps.options.trend_reports);
    report
}

/// Judge every grant of one key as the report does (`judge_key_with`:
/// the key-wide findings and the key's posture and tags count before the
/// rules) and shape them for the report; `records` are the ledger's. For
/// `explain`, which must agree with the report on every grant.
pub fn judged_key_grants(
    grants: &[StandingGrant],
    records: &[GrantRecord],
    key: &KeyContext,
    policy: &Policy,
    grant_count_threshold: usize,
) -> (KeyJudgement, Vec<GrantReport>) {
    let by_id: std::collections::BTreeMap<&str, &GrantRecord> =
        records.iter().map(|r| (r.grant_id.as_str(), r)).collect();
    let record = |id: &str| by_id.get(id).copied();
    let judged = judge_key_with(
        grants,
        record,
        |_, _| None,
        key,
        policy,
        grant_count_threshold,
    );
    let reports = grants
        .iter()
        .zip(judged.grants)
        .map(|(g, j)| report_of(g, record(&g.grant_id), j))
        .collect();
    (judged.key, reports)
}

/// A judged standing grant, shaped for the report.
pub(super) fn report_of(
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
