//! Read one account-region, and one key of it, through the [`Inventory`]
//! port: keys, aliases, grants, key policies and tags, the ledger's
//! records, deadline-aware.

use super::build::report_of;
use super::history::{unseen_finding, WatchWindow};
use super::{Deadline, ReportDeps};
use crate::event::epoch_ms;
use crate::judge::{judge_key_with, KeyContext, StandingGrant};
use crate::ports::inventory::{
    AccountDirectory, AccountRegion, Inventory, KeyDescription, KeyManager, ListedKey, Provenance,
    ReadError, ReportStore,
};
use crate::posture::create_grant_open;
use crate::record::GrantRecord;
use crate::report::model::{
    AccountRegionCoverage, CoverageGap, CoverageStatus, GapReason, KeyReport, UnreadPart,
};
use futures::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// One account-region's part of the report (serde: a fan-out shard's
/// result, app::fanout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionInventory {
    pub coverage: AccountRegionCoverage,
    pub gaps: Vec<CoverageGap>,
    pub keys: Vec<KeyReport>,
    /// Grants ListGrants dates inside the reconciliation period.
    pub grants_created_in_period: usize,
    /// Grant creations and removals the ledger recorded in the period.
    pub ledger_events_in_period: usize,
}

/// One key's part of the report.
struct KeyInventory {
    report: KeyReport,
    gap: Option<CoverageGap>,
    /// The ledger's records of the key could not be read.
    ledger_gap: Option<CoverageGap>,
    /// Its policy or tags could not be read (the key still counts as
    /// complete: its grants were read).
    detail_gaps: Vec<CoverageGap>,
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
        unread: crate::report::UnreadPart::Grants,
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

pub async fn inventory_account_region<I, P, S, D>(
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
        out.gaps.extend(key.detail_gaps);
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
        description: None,
        tags: BTreeMap::new(),
        findings: Vec::new(),
        severity: crate::verdict::Severity::Info,
        suppressed_by: None,
    };
    let arn = listed.key_arn.clone();
    let unread = |report: KeyReport, gap: CoverageGap| KeyInventory {
        report,
        gap: Some(gap),
        ledger_gap: None,
        detail_gaps: Vec::new(),
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
    report.description = description.description.clone();

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

    // After the grants (they matter more when the deadline is near).
    let (key_context, detail_gaps) =
        read_key_context(deps.inventory, at, &arn, &description, || {
            out_of_time(deps.deadline, reserve)
        })
        .await;
    report.tags = key_context.tags.clone().unwrap_or_default();

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
    // One judgement (`judge_key_with`) for the report, `explain` and
    // `classify`: the key-wide findings and `unseen-by-watcher` count before
    // the rules, and the key's posture is judged with its tags.
    let unseen = |g: &StandingGrant, record: Option<&GrantRecord>| match (
        watch,
        &ledger_gap,
        record,
        created_ms(g),
    ) {
        (Some(w), None, None, Some(at)) if w.should_have_seen(at) => {
            Some(unseen_finding(g.created.as_deref().unwrap_or_default(), w))
        }
        _ => None,
    };
    let judged = judge_key_with(
        &standing,
        |id| provenance.get(id),
        unseen,
        &key_context,
        deps.policy,
        deps.options.grant_count_threshold,
    );
    report.grants = standing
        .iter()
        .zip(judged.grants)
        .map(|(g, judgement)| report_of(g, provenance.get(&g.grant_id), judgement))
        .collect();
    report.findings = judged.key.findings;
    report.severity = judged.key.severity;
    report.suppressed_by = judged.key.suppressed_by;
    report.grants.sort_by(|a, b| a.grant_id.cmp(&b.grant_id));
    report.complete = key_gap.is_none();
    KeyInventory {
        report,
        gap: key_gap,
        ledger_gap,
        detail_gaps,
        grants_created_in_period,
        ledger_events_in_period,
    }
}

/// What the report reads of a customer managed key besides its grants:
/// its policy (`GetKeyPolicy`: the `create-grant-open` posture) and its
/// tags (`ListResourceTags`, every page). AWS managed keys are skipped:
/// AWS sets their policies and they carry no tags. What cannot be read is
/// a coverage gap naming the part (`key-policy`, `tags`); the key and its
/// grants stay in the report, and tags that could not be read match no
/// `key_tags` rule. `out_of_time` is asked before every call. The report
/// and `explain` share it.
pub async fn read_key_context<I: Inventory>(
    inventory: &I,
    at: &AccountRegion,
    arn: &str,
    description: &KeyDescription,
    out_of_time: impl Fn() -> bool,
) -> (KeyContext, Vec<CoverageGap>) {
    let mut context = KeyContext {
        key_arn: Some(arn.to_string()),
        account: Some(at.account.clone()),
        region: Some(at.region.clone()),
        tags: None,
        findings: Vec::new(),
    };
    if description.manager == Some(KeyManager::Aws) {
        context.tags = Some(BTreeMap::new());
        return (context, Vec::new());
    }
    let key_id = description.key_id.as_str();
    let part_gap = |unread: UnreadPart, reason: GapReason, detail: String| CoverageGap {
        unread,
        ..gap(at, Some(arn), reason, detail)
    };
    let mut gaps = Vec::new();
    if out_of_time() {
        gaps.push(part_gap(
            UnreadPart::KeyPolicy,
            GapReason::Deadline,
            "GetKeyPolicy not called: deadline".into(),
        ));
        return (context, gaps);
    }
    match inventory.key_policy(at, key_id).await {
        Ok(policy) => match create_grant_open(&policy) {
            Ok(open) => context.findings.extend(open),
            Err(e) => gaps.push(part_gap(
                UnreadPart::KeyPolicy,
                GapReason::Error,
                format!("key policy not understood: {e}"),
            )),
        },
        Err(e) => gaps.push(part_gap(
            UnreadPart::KeyPolicy,
            reason_of(&e, Some(description)),
            format!("GetKeyPolicy: {e}"),
        )),
    }
    let mut tags = BTreeMap::new();
    let mut marker = None;
    loop {
        if out_of_time() {
            gaps.push(part_gap(
                UnreadPart::Tags,
                GapReason::Deadline,
                "ListResourceTags not finished: deadline".into(),
            ));
            return (context, gaps);
        }
        match inventory
            .list_resource_tags(at, key_id, marker.take())
            .await
        {
            Ok(page) => {
                tags.extend(page.items.into_iter().map(|t| (t.key, t.value)));
                match page.next_marker {
                    Some(m) => marker = Some(m),
                    None => break,
                }
            }
            Err(e) => {
                gaps.push(part_gap(
                    UnreadPart::Tags,
                    reason_of(&e, Some(description)),
                    format!("ListResourceTags: {e}"),
                ));
                return (context, gaps);
            }
        }
    }
    context.tags = Some(tags);
    (context, gaps)
}
