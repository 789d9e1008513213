//! Read one account-region, and one key of it, through the [`Inventory`]
//! port: keys, aliases, grants, the ledger's records, deadline-aware.

use super::build::report_of;
use super::history::{unseen_finding, WatchWindow};
use super::{Deadline, ReportDeps};
use crate::assess::assess_key_grants;
use crate::event::epoch_ms;
use crate::judge::{judge_standing_with, StandingGrant};
use crate::ports::inventory::{
    AccountDirectory, AccountRegion, Inventory, KeyDescription, ListedKey, Provenance, ReadError,
    ReportStore,
};
use crate::record::GrantRecord;
use crate::report::model::{
    AccountRegionCoverage, CoverageGap, CoverageStatus, GapReason, KeyReport,
};
use futures::stream::{self, StreamExt};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// One account-region's part of the report.
pub(super) struct RegionInventory {
    pub(super) coverage: AccountRegionCoverage,
    pub(super) gaps: Vec<CoverageGap>,
    pub(super) keys: Vec<KeyReport>,
    /// Grants ListGrants dates inside the reconciliation period.
    pub(super) grants_created_in_period: usize,
    /// Grant creations and removals the ledger recorded in the period.
    pub(super) ledger_events_in_period: usize,
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

pub(super) fn gap(
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

pub(super) async fn inventory_account_region<I, P, S, D>(
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
