use super::build::*;
use super::history::*;
use super::inventory::*;
use super::scope::*;
use super::*;
use crate::event::Caller;
use crate::grant::{GrantFacts, Operation};
use crate::judge::Policy;
use crate::ports::inventory::fake::{
    FakeDirectory, FakeInventory, FakeProvenance, FakeRegion, MemoryStore,
};
use crate::ports::inventory::{
    AccountDirectory, AccountRegion, AccountSelection, Inventory, KeyDescription, ListedKey,
    Provenance, ReadError, ReportStore,
};
use crate::ports::inventory::{AliasEntry, KeyManager, ListedGrant, NoProvenance};
use crate::ports::PortError;
use crate::record::GrantRecord;
use crate::report::diff::PreviousReport;
use crate::report::model::{
    CoverageGap, CoverageStatus, GapReason, GrantReport, KeyReport, Report, SilentAccountRegion,
};
use crate::verdict::FindingCode;
use crate::verdict::{Origin, Severity};
use futures::executor::block_on;
use std::collections::BTreeMap;

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
        PreviousReport::from_json(&store.get("reports/2026-11-28/report.json").unwrap()).unwrap();
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
    start_where_last_run_was_cut(&mut order, Some(&PreviousReport::from(&previous)));
    assert_eq!(first(&order), "100000000009");
    assert_eq!(order.len(), 10, "every account-region still in the run");

    // Cut in the middle: start there.
    cut_at(&mut previous, &[6, 7]);
    let mut order = targets();
    start_where_last_run_was_cut(&mut order, Some(&PreviousReport::from(&previous)));
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
    start_where_last_run_was_cut(&mut order, Some(&PreviousReport::from(&previous)));
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
        // A key whose grants were read may still miss its policy or tags
        // (their own gaps, `unread` naming the part).
        .filter(|g| {
            g.reason == GapReason::Deadline && g.unread == crate::report::UnreadPart::Grants
        })
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
    let week1 = Report::from_json(&store.get("reports/2026-11-21/report.json").unwrap()).unwrap();
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
    let week2 = Report::from_json(&store.get("reports/2026-11-28/report.json").unwrap()).unwrap();
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
    block_on(ledger.record_grant(&record_of("key-000", "seen", "2026-11-20T09:31:00Z"))).unwrap();
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
    block_on(ledger.record_grant(&record_of("key-000", "heard", "2026-11-25T10:00:00Z"))).unwrap();
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
    let report = Report::from_json(&store.get("reports/2026-11-28/report.json").unwrap()).unwrap();
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
        found[0].contains("reports/2026-11-27/report.json") && found[0].contains("never recorded")
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

/// A directory that learnt names while listing the organization (as
/// `AwsDirectory` does), one of them outside the scope.
struct NamedDirectory(FakeDirectory);

impl AccountDirectory for NamedDirectory {
    async fn this_account(&self) -> Result<String, PortError> {
        self.0.this_account().await
    }
    async fn organization_accounts(&self) -> Result<Vec<String>, PortError> {
        self.0.organization_accounts().await
    }
    fn account_names(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (ACCOUNT.to_string(), "payments-prod".to_string()),
            ("999999999999".to_string(), "not in scope".to_string()),
        ])
    }
}

#[test]
fn the_scope_names_the_accounts_the_directory_knows_and_only_those_in_scope() {
    let named = NamedDirectory(directory());
    let req = ReportRequest {
        accounts: AccountSelection::Organization,
        regions: vec![REGION.into()],
    };
    let scope = block_on(resolve_scope(&req, &named)).unwrap();
    assert_eq!(scope.account_name(ACCOUNT), Some("payments-prod"));
    assert_eq!(scope.account_name("222222222222"), None, "no name listed");
    assert_eq!(scope.account_names.len(), 1, "{:?}", scope.account_names);
    // Without names (a directory that never listed the organization) the
    // report.json stays as it was: no field at all.
    let plain = block_on(resolve_scope(&req, &directory())).unwrap();
    assert!(plain.account_names.is_empty());
    let json = serde_json::to_value(&plain).unwrap();
    assert!(json.get("account_names").is_none(), "{json}");
}
