//! The report beyond one invocation: the scope split into shards of a few
//! account-regions each (run by a Step Functions Distributed Map, one
//! Lambda invocation per shard), and the shards' results merged back into
//! the account-regions of one report. See docs/fanout.md.
//!
//! Pure and deterministic: [`split`] and [`merge`] know nothing of AWS.
//! The rule that matters: a shard that failed, or wrote no result, never
//! makes the report smaller. Each of its account-regions is merged as an
//! unread part naming the shard ([`ShardPart::missing`]), so the report is
//! partial and says where.

use crate::app::report::{
    assemble_report, inventory_account_region, prepare_report, store_and_announce, RegionInventory,
    ReportDeps, ReportError, ReportOutcome, ReportRequest, SummaryChannel, WatchWindow,
};
use crate::ports::inventory::{
    AccountDirectory, AccountRegion, Inventory, Provenance, ReportStore,
};
use crate::ports::PortError;
use crate::report::model::{
    AccountRegionCoverage, CoverageGap, CoverageStatus, GapReason, ReportScope, UnreadPart,
};
use futures::stream::{self, StreamExt};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;

/// Account-regions per shard unless the plan is told otherwise: small
/// enough that a shard of ordinary account-regions finishes well inside
/// one 15-minute invocation, large enough that 2,000 accounts x 17 regions
/// are 680 shards.
pub const DEFAULT_SHARD_SIZE: usize = 50;

/// The largest shard size the plan accepts (one shard must still fit one
/// invocation).
pub const MAX_SHARD_SIZE: usize = 1000;

/// One shard: the account-regions one invocation inventories.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    /// Stable within a run and across runs of the same scope: the shard's
    /// first account-region in sorted order (`<account>-<region>`), unique
    /// because shards never overlap. Safe in an S3 key.
    pub id: String,
    /// In the order the shard reads them (rotated: see [`split`]).
    pub targets: Vec<AccountRegion>,
}

/// Split the account-regions into shards of at most `shard_size`.
///
/// - Deterministic: the shards are cut from the sorted, de-duplicated
///   account-regions, so the same scope gives the same shards every week
///   (a shard's rotation then means something).
/// - An account's regions stay together where they fit (one AssumeRole per
///   account per shard), since sorted order groups them.
/// - Rotation-aware: `rotate` is applied to each shard's targets (the
///   single-invocation rule: start where the previous run was cut by its
///   deadline), and the shards are listed in the order `rotated` (the whole
///   scope, rotated the same way) first reaches them, so the Map starts the
///   shard that was cut last week first.
pub fn split(
    rotated: &[AccountRegion],
    shard_size: usize,
    rotate: impl Fn(&mut [AccountRegion]),
) -> Vec<Shard> {
    let sorted: Vec<AccountRegion> = rotated
        .iter()
        .cloned()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut shards: Vec<Shard> = sorted
        .chunks(shard_size.clamp(1, MAX_SHARD_SIZE))
        .map(|chunk| {
            let mut targets = chunk.to_vec();
            let id = shard_id(&targets[0]);
            rotate(&mut targets);
            Shard { id, targets }
        })
        .collect();
    let first_seen: BTreeMap<&AccountRegion, usize> = rotated
        .iter()
        .enumerate()
        .rev()
        .map(|(i, at)| (at, i))
        .collect();
    let entry = |shard: &Shard| {
        shard
            .targets
            .iter()
            .filter_map(|at| first_seen.get(at).copied())
            .min()
            .unwrap_or(usize::MAX)
    };
    shards.sort_by_cached_key(entry);
    shards
}

/// `<account>-<region>`, restricted to characters safe in an S3 key and a
/// Step Functions item (anything else becomes `_`).
fn shard_id(first: &AccountRegion) -> String {
    format!("{}-{}", first.account, first.region)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One account-region's result, as a shard writes it and the merge reads
/// it.
pub trait ShardPart: Sized {
    /// The account-region this part covers.
    fn account_region(&self) -> AccountRegion;
    /// The part for an account-region nobody read: unread, with a coverage
    /// gap carrying `detail`.
    fn missing(at: &AccountRegion, detail: String) -> Self;
}

/// What the merge found for one shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardOutcome<T> {
    /// The shard's result file: its parts.
    Done(Vec<T>),
    /// No result: the shard failed (the Map's error, when known) or never
    /// wrote one.
    Failed(String),
}

/// The merged parts, in the order of the plan's shards, and what did not
/// fit the plan (to be logged: it is never silently used).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merged<T> {
    /// Exactly one part per planned account-region.
    pub parts: Vec<T>,
    /// Account-regions merged as missing, with the shard they belonged to.
    pub missing: Vec<(String, AccountRegion)>,
    /// Parts not in their shard's plan (or repeated), and results of
    /// shards the plan does not name: dropped, described.
    pub unexpected: Vec<String>,
}

/// Merge the shards' outcomes into one part per planned account-region.
///
/// A planned account-region without a part (a failed shard, a result that
/// lacks it) becomes [`ShardPart::missing`] naming the shard and why; so
/// `merge(split(x))` always covers exactly `x`, whatever the shards did.
pub fn merge<T: ShardPart>(
    shards: &[Shard],
    mut outcomes: BTreeMap<String, ShardOutcome<T>>,
) -> Merged<T> {
    let mut merged = Merged {
        parts: Vec::new(),
        missing: Vec::new(),
        unexpected: Vec::new(),
    };
    for shard in shards {
        let planned: BTreeSet<&AccountRegion> = shard.targets.iter().collect();
        let (mut found, why_missing) = match outcomes.remove(&shard.id) {
            Some(ShardOutcome::Done(parts)) => {
                let mut found: BTreeMap<AccountRegion, T> = BTreeMap::new();
                for part in parts {
                    let at = part.account_region();
                    if !planned.contains(&at) {
                        merged
                            .unexpected
                            .push(format!("shard {} returned {at}, not in its plan", shard.id));
                        continue;
                    }
                    match found.entry(at) {
                        Entry::Vacant(slot) => {
                            slot.insert(part);
                        }
                        Entry::Occupied(slot) => merged.unexpected.push(format!(
                            "shard {} returned {} twice",
                            shard.id,
                            slot.key()
                        )),
                    }
                }
                (
                    found,
                    format!("fan-out shard {} wrote no result for it", shard.id),
                )
            }
            Some(ShardOutcome::Failed(why)) => (
                BTreeMap::new(),
                format!("fan-out shard {} failed: {why}", shard.id),
            ),
            None => (
                BTreeMap::new(),
                format!("fan-out shard {} wrote no result", shard.id),
            ),
        };
        for at in &shard.targets {
            match found.remove(at) {
                Some(part) => merged.parts.push(part),
                None => {
                    merged.parts.push(T::missing(at, why_missing.clone()));
                    merged.missing.push((shard.id.clone(), at.clone()));
                }
            }
        }
    }
    for id in outcomes.keys() {
        merged.unexpected.push(format!(
            "a result for shard {id}, which the plan does not name"
        ));
    }
    merged
}

// ---------------------------------------------------------------- the run

/// Where a run keeps its files in the report bucket, and how it reads them:
/// `runs/<run-id>/run.json` (the plan), `items.json` (the Map's items),
/// `shards/<shard>.json` (one shard's task), `results/<shard>.json` (its
/// result).
pub trait RunStore: Send + Sync {
    fn put_run_file(
        &self,
        key: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<(), PortError>> + Send;
    /// `None`: no such file.
    fn get_run_file(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, PortError>> + Send;
}

/// The keys of one run's files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFiles {
    run_id: String,
}

impl RunFiles {
    /// A run id names S3 keys: letters, digits, `-`, `_` and `.` (not
    /// starting with `.`), at most 80 (a Step Functions execution name).
    pub fn new(run_id: &str) -> Result<Self, FanOutError> {
        let ok = !run_id.is_empty()
            && run_id.len() <= 80
            && !run_id.starts_with('.')
            && run_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if ok {
            Ok(RunFiles {
                run_id: run_id.to_string(),
            })
        } else {
            Err(FanOutError::InvalidInput(format!(
                "run_id {run_id:?}: 1 to 80 letters, digits, '-', '_' or '.'"
            )))
        }
    }
    pub fn run_id(&self) -> &str {
        &self.run_id
    }
    pub fn plan(&self) -> String {
        format!("runs/{}/run.json", self.run_id)
    }
    pub fn items(&self) -> String {
        format!("runs/{}/items.json", self.run_id)
    }
    pub fn task(&self, shard: &str) -> String {
        format!("runs/{}/shards/{shard}.json", self.run_id)
    }
    pub fn result(&self, shard: &str) -> String {
        format!("runs/{}/results/{shard}.json", self.run_id)
    }
}

/// The plan of a run (`run.json`): what the merge builds the report from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPlan {
    pub run_id: String,
    /// The report's time, the same in every shard and the merge.
    pub generated_at: String,
    pub request: ReportRequest,
    pub scope: ReportScope,
    pub watch: Option<WatchWindow>,
    pub shards: Vec<Shard>,
}

/// One shard's task (`shards/<shard>.json`): all a shard invocation reads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardTask {
    pub run_id: String,
    pub generated_at: String,
    pub watch: Option<WatchWindow>,
    pub shard: Shard,
}

/// One item of `items.json` (the Map's ItemReader input).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardItem {
    pub shard: String,
}

/// One shard's result (`results/<shard>.json`): what the inventory stage
/// produced for each of its account-regions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardResult {
    pub run_id: String,
    pub shard: String,
    pub parts: Vec<RegionInventory>,
}

impl ShardPart for RegionInventory {
    fn account_region(&self) -> AccountRegion {
        AccountRegion::new(&self.coverage.account, &self.coverage.region)
    }

    fn missing(at: &AccountRegion, detail: String) -> Self {
        RegionInventory {
            coverage: AccountRegionCoverage {
                account: at.account.clone(),
                region: at.region.clone(),
                status: CoverageStatus::Unread,
                keys_listed: 0,
                keys_complete: 0,
                grants: 0,
            },
            gaps: vec![CoverageGap {
                account: at.account.clone(),
                region: at.region.clone(),
                key_arn: None,
                unread: UnreadPart::Grants,
                reason: GapReason::Error,
                detail,
            }],
            keys: Vec::new(),
            grants_created_in_period: 0,
            ledger_events_in_period: 0,
        }
    }
}

/// What the plan step hands the state machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanOutcome {
    pub run_id: String,
    /// `items.json`, for the Map's ItemReader.
    pub items_key: String,
    pub shards: usize,
    pub account_regions: usize,
}

/// What one shard did (small: it passes through Step Functions).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ShardSummary {
    pub shard: String,
    pub account_regions: usize,
    pub keys: usize,
    pub grants: usize,
    pub gaps: usize,
}

/// What the merge did: the report's outcome, and what it could not use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergeOutcome {
    pub report: ReportOutcome,
    pub shards: usize,
    /// Account-regions no shard covered (coverage gaps in the report).
    pub missing_account_regions: usize,
    /// Results that did not fit the plan: dropped (log them).
    pub unexpected: Vec<String>,
}

/// Why a fan-out step failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FanOutError {
    #[error("invalid fan-out input: {0}")]
    InvalidInput(String),
    #[error(transparent)]
    Report(#[from] ReportError),
    #[error("cannot store or read the run's files: {0}")]
    Store(PortError),
    #[error("run file {key}: {problem}")]
    RunFile { key: String, problem: String },
}

impl FanOutError {
    /// Stable Lambda error type (the state machine retries `StoreError`).
    pub fn error_type(&self) -> &'static str {
        match self {
            FanOutError::InvalidInput(_) => "InvalidInput",
            FanOutError::Report(e) => e.error_type(),
            FanOutError::Store(_) => "StoreError",
            FanOutError::RunFile { .. } => "RunFileError",
        }
    }
}

/// Run files written or read at once.
const RUN_FILE_CONCURRENCY: usize = 16;

async fn put_json<R: RunStore, T: Serialize>(
    runs: &R,
    key: &str,
    value: &T,
) -> Result<(), FanOutError> {
    let body = serde_json::to_vec(value).map_err(|e| FanOutError::RunFile {
        key: key.to_string(),
        problem: e.to_string(),
    })?;
    runs.put_run_file(key, body)
        .await
        .map_err(FanOutError::Store)
}

async fn get_json<R: RunStore, T: DeserializeOwned>(
    runs: &R,
    key: &str,
) -> Result<Option<T>, FanOutError> {
    let Some(body) = runs.get_run_file(key).await.map_err(FanOutError::Store)? else {
        return Ok(None);
    };
    serde_json::from_slice(&body)
        .map(Some)
        .map_err(|e| FanOutError::RunFile {
            key: key.to_string(),
            problem: e.to_string(),
        })
}

async fn require_json<R: RunStore, T: DeserializeOwned>(
    runs: &R,
    key: &str,
) -> Result<T, FanOutError> {
    get_json(runs, key)
        .await?
        .ok_or_else(|| FanOutError::RunFile {
            key: key.to_string(),
            problem: "missing".into(),
        })
}

/// Plan: check and resolve the scope as a single run does (refusal,
/// rotation, the reconciliation window), split it, and write the run's
/// files: each shard's task, the Map's items, then the plan.
pub async fn plan_run<I, P, S, D, R>(
    request: &ReportRequest,
    deps: &ReportDeps<'_, I, P, S, D>,
    runs: &R,
    run_id: &str,
    generated_at: &str,
    shard_size: usize,
) -> Result<PlanOutcome, FanOutError>
where
    I: Inventory,
    P: Provenance,
    S: ReportStore,
    D: AccountDirectory,
    R: RunStore,
{
    let files = RunFiles::new(run_id)?;
    let prepared = prepare_report(request, deps, generated_at).await?;
    let shards = split(&prepared.targets, shard_size, |t| prepared.rotate(t));
    let plan = RunPlan {
        run_id: run_id.to_string(),
        generated_at: generated_at.to_string(),
        request: request.clone(),
        scope: prepared.scope.clone(),
        watch: prepared.watch,
        shards,
    };
    let written: Vec<Result<(), FanOutError>> = stream::iter(&plan.shards)
        .map(|shard| {
            let task = ShardTask {
                run_id: plan.run_id.clone(),
                generated_at: plan.generated_at.clone(),
                watch: plan.watch,
                shard: shard.clone(),
            };
            let key = files.task(&shard.id);
            async move { put_json(runs, &key, &task).await }
        })
        .buffer_unordered(RUN_FILE_CONCURRENCY)
        .collect()
        .await;
    written.into_iter().collect::<Result<(), _>>()?;
    let items: Vec<ShardItem> = plan
        .shards
        .iter()
        .map(|s| ShardItem {
            shard: s.id.clone(),
        })
        .collect();
    put_json(runs, &files.items(), &items).await?;
    put_json(runs, &files.plan(), &plan).await?;
    Ok(PlanOutcome {
        run_id: plan.run_id.clone(),
        items_key: files.items(),
        shards: plan.shards.len(),
        account_regions: plan.shards.iter().map(|s| s.targets.len()).sum(),
    })
}

/// One shard: read its task (only what the plan wrote: an invocation
/// cannot name account-regions of its own), inventory its account-regions
/// under this invocation's deadline, write the result.
pub async fn run_shard<I, P, S, D, R>(
    run_id: &str,
    shard_id: &str,
    deps: &ReportDeps<'_, I, P, S, D>,
    runs: &R,
) -> Result<ShardSummary, FanOutError>
where
    I: Inventory,
    P: Provenance,
    S: ReportStore,
    D: AccountDirectory,
    R: RunStore,
{
    let files = RunFiles::new(run_id)?;
    let key = files.task(&shard_id_checked(shard_id)?);
    let task: ShardTask = require_json(runs, &key).await?;
    if task.run_id != run_id || task.shard.id != shard_id {
        return Err(FanOutError::RunFile {
            key,
            problem: format!(
                "names run {} shard {}, not run {run_id} shard {shard_id}",
                task.run_id, task.shard.id
            ),
        });
    }
    let watch = task.watch.as_ref();
    let parts: Vec<RegionInventory> = stream::iter(&task.shard.targets)
        .map(|at| async move {
            deps.progress.started(at);
            let part = inventory_account_region(at, deps, watch).await;
            deps.progress.finished(&part.coverage);
            part
        })
        .buffered(deps.options.account_region_concurrency.max(1))
        .collect()
        .await;
    let summary = ShardSummary {
        shard: shard_id.to_string(),
        account_regions: parts.len(),
        keys: parts.iter().map(|p| p.keys.len()).sum(),
        grants: parts.iter().map(|p| p.coverage.grants).sum(),
        gaps: parts.iter().map(|p| p.gaps.len()).sum(),
    };
    let result = ShardResult {
        run_id: run_id.to_string(),
        shard: shard_id.to_string(),
        parts,
    };
    put_json(runs, &files.result(shard_id), &result).await?;
    Ok(summary)
}

/// A shard id from the input: the characters [`split`] makes.
fn shard_id_checked(shard_id: &str) -> Result<String, FanOutError> {
    let ok = !shard_id.is_empty()
        && shard_id.len() <= 200
        && shard_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if ok {
        Ok(shard_id.to_string())
    } else {
        Err(FanOutError::InvalidInput(format!(
            "shard {shard_id:?}: letters, digits, '-' or '_'"
        )))
    }
}

/// Merge: read the plan and every shard's result, merge them (a shard
/// without a usable result becomes coverage gaps naming it and
/// `shards_failed`, the Map's error), and build, store and deliver the
/// report as a single run does: same judgement, diff, history, hashes and
/// channels, under the plan's time and scope.
pub async fn merge_run<I, P, S, D, R, C>(
    run_id: &str,
    shards_failed: Option<&str>,
    deps: &ReportDeps<'_, I, P, S, D>,
    runs: &R,
    channels: &[&C],
) -> Result<MergeOutcome, FanOutError>
where
    I: Inventory,
    P: Provenance,
    S: ReportStore,
    D: AccountDirectory,
    R: RunStore,
    C: SummaryChannel + ?Sized,
{
    let files = RunFiles::new(run_id)?;
    let plan: RunPlan = require_json(runs, &files.plan()).await?;
    let no_result = match shards_failed {
        Some(error) => format!("no result; the shards stopped: {error}"),
        None => "no result".to_string(),
    };
    let outcomes: BTreeMap<String, ShardOutcome<RegionInventory>> = stream::iter(&plan.shards)
        .map(|shard| {
            let key = files.result(&shard.id);
            let no_result = no_result.clone();
            async move {
                let outcome = match get_json::<R, ShardResult>(runs, &key).await {
                    Ok(Some(result)) if result.run_id == run_id && result.shard == shard.id => {
                        ShardOutcome::Done(result.parts)
                    }
                    Ok(Some(result)) => ShardOutcome::Failed(format!(
                        "its result names run {} shard {}",
                        result.run_id, result.shard
                    )),
                    Ok(None) => ShardOutcome::Failed(no_result),
                    Err(e) => ShardOutcome::Failed(format!("its result could not be read: {e}")),
                };
                (shard.id.clone(), outcome)
            }
        })
        .buffer_unordered(RUN_FILE_CONCURRENCY)
        .collect()
        .await;
    let merged = merge(&plan.shards, outcomes);
    let mut prepared = prepare_report(&plan.request, deps, &plan.generated_at).await?;
    // The shards read the plan's scope: the report names that one, even if
    // the organization changed since.
    prepared.scope = plan.scope.clone();
    let report = assemble_report(prepared, merged.parts, &plan.generated_at, deps);
    let report = store_and_announce(report, deps, channels).await?;
    Ok(MergeOutcome {
        report,
        shards: plan.shards.len(),
        missing_account_regions: merged.missing.len(),
        unexpected: merged.unexpected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A part that remembers whether it was read.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Part {
        at: AccountRegion,
        read: bool,
        detail: Option<String>,
    }

    impl ShardPart for Part {
        fn account_region(&self) -> AccountRegion {
            self.at.clone()
        }
        fn missing(at: &AccountRegion, detail: String) -> Self {
            Part {
                at: at.clone(),
                read: false,
                detail: Some(detail),
            }
        }
    }

    fn read(at: &AccountRegion) -> Part {
        Part {
            at: at.clone(),
            read: true,
            detail: None,
        }
    }

    /// `accounts` x `regions`, account ids 12 digits.
    fn organization(accounts: usize, regions: &[&str]) -> Vec<AccountRegion> {
        (0..accounts)
            .flat_map(|a| {
                regions
                    .iter()
                    .map(move |r| AccountRegion::new(format!("{:012}", 100_000_000_000 + a), *r))
            })
            .collect()
    }

    const REGIONS: [&str; 5] = [
        "eu-west-1",
        "us-east-1",
        "us-east-2",
        "ap-south-1",
        "sa-east-1",
    ];

    fn no_rotation(_: &mut [AccountRegion]) {}

    fn all_done(shards: &[Shard]) -> BTreeMap<String, ShardOutcome<Part>> {
        shards
            .iter()
            .map(|s| {
                (
                    s.id.clone(),
                    ShardOutcome::Done(s.targets.iter().map(read).collect()),
                )
            })
            .collect()
    }

    fn covered(parts: &[Part]) -> Vec<AccountRegion> {
        let mut at: Vec<AccountRegion> = parts.iter().map(|p| p.at.clone()).collect();
        at.sort();
        at
    }

    #[test]
    fn merge_of_split_covers_exactly_the_scope_200_accounts_by_5_regions() {
        let scope = organization(200, &REGIONS);
        let shards = split(&scope, 7, no_rotation);
        assert_eq!(shards.len(), 1000usize.div_ceil(7));
        assert!(shards
            .iter()
            .all(|s| !s.targets.is_empty() && s.targets.len() <= 7));
        let ids: BTreeSet<&str> = shards.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids.len(), shards.len(), "shard ids are unique");

        let merged = merge(&shards, all_done(&shards));
        let mut expected = scope.clone();
        expected.sort();
        assert_eq!(covered(&merged.parts), expected, "each once, none extra");
        assert!(merged.parts.iter().all(|p| p.read));
        assert!(merged.missing.is_empty() && merged.unexpected.is_empty());
    }

    #[test]
    fn the_split_is_deterministic_and_keeps_an_accounts_regions_together() {
        let scope = organization(30, &REGIONS);
        let mut shuffled = scope.clone();
        shuffled.reverse();
        shuffled.extend(scope.iter().take(3).cloned());
        let a = split(&scope, 10, no_rotation);
        let b = split(&shuffled, 10, no_rotation);
        let ids = |s: &[Shard]| s.iter().map(|s| s.id.clone()).collect::<BTreeSet<_>>();
        assert_eq!(
            ids(&a),
            ids(&b),
            "same scope, same shards, duplicates dropped"
        );
        assert_eq!(a.iter().map(|s| s.targets.len()).sum::<usize>(), 150);
        // 10 per shard, 5 regions per account: every account in one shard.
        for shard in &a {
            let accounts: BTreeSet<&str> =
                shard.targets.iter().map(|t| t.account.as_str()).collect();
            assert_eq!(accounts.len(), 2, "{shard:?}");
        }
        assert_eq!(a[0].id, "100000000000-ap-south-1");
    }

    #[test]
    fn the_shard_cut_last_week_goes_first_and_starts_where_it_was_cut() {
        let scope = organization(10, &REGIONS);
        let mut sorted = scope.clone();
        sorted.sort();
        // Last week's run was cut at the 23rd account-region (in the third
        // shard of ten): the whole scope is rotated to start there.
        let cut_at = sorted[23].clone();
        let mut rotated = sorted.clone();
        rotated.rotate_left(23);
        let rotate = |targets: &mut [AccountRegion]| {
            if let Some(i) = targets.iter().position(|t| *t == cut_at) {
                targets.rotate_left(i);
            }
        };
        let shards = split(&rotated, 10, rotate);
        assert_eq!(
            shards[0].targets[0], cut_at,
            "the cut shard first, from the cut"
        );
        assert_eq!(
            shards[0].id,
            shard_id(&sorted[20]),
            "its id does not rotate"
        );
        assert_eq!(shards[1].id, shard_id(&sorted[30]));
        assert_eq!(shards[3].id, shard_id(&sorted[0]), "wrapping around");
        assert_eq!(shards[4].id, shard_id(&sorted[10]));
        let merged = merge(&shards, all_done(&shards));
        assert_eq!(covered(&merged.parts), sorted);
    }

    #[test]
    fn a_failed_shard_becomes_named_gaps_never_a_smaller_report() {
        let scope = organization(20, &REGIONS);
        let shards = split(&scope, 10, no_rotation);
        let mut outcomes = all_done(&shards);
        // One shard failed (the Map's Catch), one never wrote its result,
        // one wrote a result lacking an account-region and naming one
        // outside its plan, twice.
        outcomes.insert(
            shards[1].id.clone(),
            ShardOutcome::Failed("States.Timeout".into()),
        );
        outcomes.remove(&shards[2].id);
        let stranger = AccountRegion::new("999999999999", "eu-west-1");
        let lacking = shards[3].targets[4].clone();
        let mut parts: Vec<Part> = shards[3]
            .targets
            .iter()
            .filter(|t| **t != lacking)
            .map(read)
            .collect();
        parts.push(read(&stranger));
        parts.push(read(&shards[3].targets[0]));
        outcomes.insert(shards[3].id.clone(), ShardOutcome::Done(parts));
        outcomes.insert("not-planned".into(), ShardOutcome::Done(vec![]));

        let merged = merge(&shards, outcomes);
        let mut expected = scope.clone();
        expected.sort();
        assert_eq!(
            covered(&merged.parts),
            expected,
            "the report is not smaller"
        );
        assert_eq!(merged.missing.len(), 10 + 10 + 1);
        let detail = |at: &AccountRegion| {
            merged
                .parts
                .iter()
                .find(|p| p.at == *at)
                .and_then(|p| p.detail.clone())
                .unwrap_or_default()
        };
        assert_eq!(
            detail(&shards[1].targets[3]),
            format!("fan-out shard {} failed: States.Timeout", shards[1].id)
        );
        assert_eq!(
            detail(&shards[2].targets[0]),
            format!("fan-out shard {} wrote no result", shards[2].id)
        );
        assert_eq!(
            detail(&lacking),
            format!("fan-out shard {} wrote no result for it", shards[3].id)
        );
        assert!(merged.parts.iter().filter(|p| p.read).count() == 100 - 21);
        assert_eq!(merged.unexpected.len(), 3, "{:?}", merged.unexpected);
        assert!(merged.unexpected.iter().any(|u| u.contains("999999999999")));
        assert!(merged.unexpected.iter().any(|u| u.contains("twice")));
        assert!(merged.unexpected.iter().any(|u| u.contains("not-planned")));
    }

    #[test]
    fn shard_ids_are_safe_in_an_s3_key_and_sizes_are_bounded() {
        let odd = [AccountRegion::new("1/../2", "eu west 1")];
        let shards = split(&odd, 0, no_rotation);
        assert_eq!(shards.len(), 1);
        assert_eq!(shards[0].id, "1____2-eu_west_1");
        let big = organization(300, &REGIONS);
        assert_eq!(
            split(&big, usize::MAX, no_rotation).len(),
            2,
            "at most 1,000 a shard"
        );
        assert!(split(&[], 10, no_rotation).is_empty());
    }

    // ---- the run, in-process: plan → every shard → merge ----

    use crate::app::report::{
        run_report, NoChannel, NoDeadline, Quiet, ReportDeps, ReportOptions, ReportRequest,
    };
    use crate::grant::{GrantFacts, Operation};
    use crate::judge::Policy;
    use crate::ports::inventory::fake::{FakeDirectory, FakeInventory, FakeRegion, MemoryStore};
    use crate::ports::inventory::{
        AccountSelection, KeyDescription, KeyManager, ListedGrant, NoProvenance,
    };
    use crate::ports::PortError;
    use crate::report::model::{CoverageStatus, Report};
    use futures::executor::block_on;
    use std::sync::Mutex;

    /// Run files in memory.
    #[derive(Debug, Default)]
    struct MemoryRuns {
        files: Mutex<BTreeMap<String, Vec<u8>>>,
    }

    impl RunStore for MemoryRuns {
        async fn put_run_file(&self, key: &str, body: Vec<u8>) -> Result<(), PortError> {
            self.files
                .lock()
                .map_err(|_| PortError::Permanent("poisoned".into()))?
                .insert(key.to_string(), body);
            Ok(())
        }
        async fn get_run_file(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
            Ok(self
                .files
                .lock()
                .map_err(|_| PortError::Permanent("poisoned".into()))?
                .get(key)
                .cloned())
        }
    }

    const NOW: &str = "2026-11-30T07:00:00Z";
    const REGIONS_2: [&str; 2] = ["eu-west-1", "us-east-1"];

    /// `accounts` x `regions`, each with 2 keys of 3 grants.
    fn org_inventory(accounts: &[String], regions: &[&str]) -> FakeInventory {
        let mut inv = FakeInventory::new(100);
        for account in accounts {
            for &region in regions {
                let mut fake = FakeRegion::default();
                for k in 0..2 {
                    let id = format!("key-{k}");
                    let key_arn = format!("arn:aws:kms:{region}:{account}:key/{id}");
                    fake.keys.push(KeyDescription {
                        key_id: id.clone(),
                        key_arn,
                        manager: Some(KeyManager::Customer),
                        state: Some("Enabled".into()),
                        ..KeyDescription::default()
                    });
                    let grants = (0..3)
                        .map(|g| ListedGrant {
                            grant_id: format!("{account}-{region}-{id}-g{g}"),
                            facts: GrantFacts {
                                grantee: Some(format!("arn:aws:iam::{account}:role/app")),
                                operations: vec![Operation::Decrypt],
                                ..GrantFacts::default()
                            },
                            ..ListedGrant::default()
                        })
                        .collect();
                    fake.grants.insert(id, grants);
                }
                inv.regions
                    .insert(AccountRegion::new(account.as_str(), region), fake);
            }
        }
        inv
    }

    fn accounts(n: usize) -> Vec<String> {
        (0..n)
            .map(|a| format!("{:012}", 200_000_000_000u64 + a as u64))
            .collect()
    }

    fn org_request(regions: &[&str]) -> ReportRequest {
        ReportRequest {
            accounts: AccountSelection::Organization,
            regions: regions.iter().map(|r| r.to_string()).collect(),
        }
    }

    /// Plan, run the shards `run` lets through, merge; the stored report.
    #[allow(clippy::too_many_arguments)]
    fn fan_out(
        request: &ReportRequest,
        shard_size: usize,
        inv: &FakeInventory,
        dir: &FakeDirectory,
        store: &MemoryStore,
        runs: &MemoryRuns,
        run: impl Fn(&str) -> bool,
        shards_failed: Option<&str>,
    ) -> (PlanOutcome, MergeOutcome, Report) {
        let policy = Policy::new(time::macros::date!(2026 - 11 - 30));
        let options = ReportOptions::default();
        let deps = ReportDeps {
            inventory: inv,
            provenance: &NoProvenance,
            store,
            directory: dir,
            policy: &policy,
            options: &options,
            deadline: &NoDeadline,
            progress: &Quiet,
        };
        let planned = block_on(plan_run(request, &deps, runs, "run-1", NOW, shard_size)).unwrap();
        let items: Vec<ShardItem> = serde_json::from_slice(
            &block_on(runs.get_run_file(&planned.items_key))
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(items.len(), planned.shards);
        for item in items.iter().filter(|i| run(&i.shard)) {
            let summary = block_on(run_shard("run-1", &item.shard, &deps, runs)).unwrap();
            assert_eq!(summary.gaps, 0);
        }
        let merged = block_on(merge_run(
            "run-1",
            shards_failed,
            &deps,
            runs,
            &[&NoChannel],
        ))
        .unwrap();
        let report =
            Report::from_json(&store.get("reports/2026-11-30/report.json").unwrap()).unwrap();
        (planned, merged, report)
    }

    fn org(n: usize) -> (FakeInventory, FakeDirectory) {
        org_in(n, &REGIONS_2)
    }

    fn org_in(n: usize, regions: &[&str]) -> (FakeInventory, FakeDirectory) {
        let accounts = accounts(n);
        let dir = FakeDirectory {
            this_account: accounts[0].clone(),
            organization: accounts.clone(),
        };
        (org_inventory(&accounts, regions), dir)
    }

    #[test]
    fn a_fanned_out_report_is_the_single_run_report() {
        let (inv, dir) = org(6);
        let single = MemoryStore::default();
        let policy = Policy::new(time::macros::date!(2026 - 11 - 30));
        let options = ReportOptions::default();
        let deps = ReportDeps {
            inventory: &inv,
            provenance: &NoProvenance,
            store: &single,
            directory: &dir,
            policy: &policy,
            options: &options,
            deadline: &NoDeadline,
            progress: &Quiet,
        };
        block_on(run_report(
            &org_request(&REGIONS_2),
            &deps,
            &[&NoChannel],
            NOW,
        ))
        .unwrap();
        let calls_single = inv.calls.lock().unwrap().len();
        inv.calls.lock().unwrap().clear();

        let store = MemoryStore::default();
        let runs = MemoryRuns::default();
        let (planned, merged, report) = fan_out(
            &org_request(&REGIONS_2),
            5,
            &inv,
            &dir,
            &store,
            &runs,
            |_| true,
            None,
        );
        assert_eq!((planned.shards, planned.account_regions), (3, 12));
        assert_eq!(merged.missing_account_regions, 0);
        assert!(merged.unexpected.is_empty());
        let expected =
            Report::from_json(&single.get("reports/2026-11-30/report.json").unwrap()).unwrap();
        assert_eq!(report, expected, "the same report, built in pieces");
        assert!(!report.partial);
        assert_eq!(report.summary.grants, 6 * 2 * 2 * 3);
        assert_eq!(
            inv.calls.lock().unwrap().len(),
            calls_single,
            "no account-region read twice"
        );
    }

    #[test]
    fn a_shard_that_never_ran_is_named_in_the_merged_report() {
        let (inv, dir) = org(6);
        let store = MemoryStore::default();
        let runs = MemoryRuns::default();
        let plan_shards = |runs: &MemoryRuns| -> RunPlan {
            serde_json::from_slice(
                &block_on(runs.get_run_file("runs/run-1/run.json"))
                    .unwrap()
                    .unwrap(),
            )
            .unwrap()
        };
        // The first shard (in the plan's order) fails.
        let skipped = std::sync::OnceLock::new();
        let (_, merged, report) = fan_out(
            &org_request(&REGIONS_2),
            5,
            &inv,
            &dir,
            &store,
            &runs,
            |id| skipped.get_or_init(|| id.to_string()) != id,
            Some("States.ExceededToleratedFailureThreshold: shard failed"),
        );
        let skipped = skipped.get().unwrap();
        let lost = plan_shards(&runs)
            .shards
            .into_iter()
            .find(|s| s.id == *skipped)
            .unwrap();
        assert_eq!(merged.missing_account_regions, lost.targets.len());
        assert!(report.partial);
        assert_eq!(report.coverage.account_regions.len(), 12, "nothing dropped");
        for at in &lost.targets {
            let row = report
                .coverage
                .account_regions
                .iter()
                .find(|c| c.account == at.account && c.region == at.region)
                .unwrap();
            assert_eq!(row.status, CoverageStatus::Unread);
            let gap = report
                .coverage
                .gaps
                .iter()
                .find(|g| g.account == at.account && g.region == at.region)
                .unwrap();
            assert_eq!(
                gap.detail,
                format!(
                    "fan-out shard {skipped} failed: no result; the shards stopped: \
                     States.ExceededToleratedFailureThreshold: shard failed"
                )
            );
        }
        let read = 12 - lost.targets.len();
        assert_eq!(report.summary.grants, read * 2 * 3);
    }

    #[test]
    fn a_shard_reads_only_what_the_plan_wrote() {
        let (inv, dir) = org(2);
        let store = MemoryStore::default();
        let runs = MemoryRuns::default();
        let policy = Policy::new(time::macros::date!(2026 - 11 - 30));
        let options = ReportOptions {
            configured_accounts: Some(AccountSelection::List(vec![accounts(1)[0].clone()])),
            ..ReportOptions::default()
        };
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
        // The plan refuses a scope wider than the configuration, as a single
        // run does, before anything is read or written.
        let refused = block_on(plan_run(
            &org_request(&REGIONS_2),
            &deps,
            &runs,
            "run-1",
            NOW,
            5,
        ))
        .unwrap_err();
        assert_eq!(refused.error_type(), "ScopeRefused");
        assert!(runs.files.lock().unwrap().is_empty());
        assert!(inv.calls.lock().unwrap().is_empty());
        // A shard the plan never wrote, or a run id that is not one.
        let unknown =
            block_on(run_shard("run-1", "222222222222-eu-west-1", &deps, &runs)).unwrap_err();
        assert_eq!(unknown.error_type(), "RunFileError");
        for bad in ["../reports", "", "a/b"] {
            let err = block_on(run_shard(bad, "x", &deps, &runs)).unwrap_err();
            assert_eq!(err.error_type(), "InvalidInput", "{bad:?}");
        }
        let err = block_on(run_shard("run-1", "../../reports/x", &deps, &runs)).unwrap_err();
        assert_eq!(err.error_type(), "InvalidInput");
        assert!(inv.calls.lock().unwrap().is_empty(), "no KMS call");
        // A merge without a plan delivers nothing and says so.
        let err = block_on(merge_run("run-1", None, &deps, &runs, &[&NoChannel])).unwrap_err();
        assert_eq!(err.error_type(), "RunFileError");
        assert!(store.files.lock().unwrap().is_empty());
    }

    #[test]
    fn a_scaled_organization_fans_out_into_one_complete_report_200_accounts_by_5_regions() {
        let (inv, dir) = org_in(200, &REGIONS);
        let store = MemoryStore::default();
        let runs = MemoryRuns::default();
        let (planned, merged, report) = fan_out(
            &org_request(&REGIONS),
            DEFAULT_SHARD_SIZE,
            &inv,
            &dir,
            &store,
            &runs,
            |_| true,
            None,
        );
        assert_eq!((planned.shards, planned.account_regions), (20, 1000));
        assert_eq!(merged.missing_account_regions, 0);
        assert!(!report.partial, "{:?}", report.coverage.gaps.first());
        assert_eq!(report.coverage.account_regions.len(), 1000);
        assert_eq!(report.summary.grants, 1000 * 2 * 3, "no grant lost");
        assert_eq!(
            inv.call_count("ListKeys"),
            1000,
            "each account-region read once"
        );
    }
}
