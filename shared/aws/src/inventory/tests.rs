//! The inventory against aws-smithy-mocks stand-ins of KMS.

use super::*;
use aws_sdk_kms::operation::describe_key::{DescribeKeyError, DescribeKeyOutput};
use aws_sdk_kms::operation::list_aliases::ListAliasesOutput;
use aws_sdk_kms::operation::list_grants::{ListGrantsError, ListGrantsOutput};
use aws_sdk_kms::operation::list_keys::ListKeysOutput;
use aws_sdk_kms::types::{AliasListEntry, KeyListEntry, KeyManagerType, KeyMetadata, KeyState};
use aws_smithy_mocks::{mock, mock_client, MockResponse, RuleMode};
use aws_smithy_types::error::ErrorMetadata;
use grantwatch_core::app::report::{
    build_report, DeadlineAfterChecks, NoDeadline, Quiet, ReportDeps, ReportOptions, ReportRequest,
};
use grantwatch_core::judge::Policy;
use grantwatch_core::ports::inventory::fake::{FakeDirectory, MemoryStore};
use grantwatch_core::ports::inventory::{AccountSelection, NoProvenance};
use grantwatch_core::report::{CoverageStatus, GapReason, Report};
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::stand_in::{
    grant_entry, key_policy_rule, page_of, tags_rule, OrganizationKms, ACCOUNT, REGION,
};
use grantwatch_core::report::UnreadPart;
use grantwatch_core::verdict::{FindingCode, Severity};

fn key_arn(i: usize) -> String {
    format!("arn:aws:kms:{REGION}:{ACCOUNT}:key/k{i:04}")
}

fn fast() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 4,
        first_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
    }
}

fn at() -> AccountRegion {
    AccountRegion::new(ACCOUNT, REGION)
}

fn list_keys_rule(total: usize) -> aws_smithy_mocks::Rule {
    mock!(aws_sdk_kms::Client::list_keys).then_compute_output(move |req| {
        assert_eq!(req.limit(), Some(LIST_KEYS_LIMIT));
        let (range, next) = page_of(req.marker(), total, LIST_KEYS_LIMIT as usize);
        ListKeysOutput::builder()
            .set_keys(Some(
                range
                    .map(|i| {
                        KeyListEntry::builder()
                            .key_id(format!("k{i:04}"))
                            .key_arn(key_arn(i))
                            .build()
                    })
                    .collect(),
            ))
            .truncated(next.is_some())
            .set_next_marker(next)
            .build()
    })
}

fn describe_rule(denied: &'static [&'static str]) -> aws_smithy_mocks::Rule {
    mock!(aws_sdk_kms::Client::describe_key).then_compute_response(move |req| {
        let id = req.key_id().unwrap_or_default().to_string();
        if denied.contains(&id.as_str()) {
            return MockResponse::Error(DescribeKeyError::generic(
                ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message(format!(
                        "User is not authorized to perform kms:DescribeKey on {id}"
                    ))
                    .build(),
            ));
        }
        let i: usize = id.trim_start_matches('k').parse().unwrap_or(0);
        MockResponse::Output(
            DescribeKeyOutput::builder()
                .key_metadata(
                    KeyMetadata::builder()
                        .key_id(&id)
                        .arn(key_arn(i))
                        .key_manager(if i == 0 {
                            KeyManagerType::Aws
                        } else {
                            KeyManagerType::Customer
                        })
                        .key_state(KeyState::Enabled)
                        .build()
                        .unwrap(),
                )
                .build(),
        )
    })
}

fn aliases_rule() -> aws_smithy_mocks::Rule {
    mock!(aws_sdk_kms::Client::list_aliases).then_compute_output(|req| {
        // 250 aliases over 3 pages, one per key k0000..k0249.
        let (range, next) = page_of(req.marker(), 250, LIST_ALIASES_LIMIT as usize);
        ListAliasesOutput::builder()
            .set_aliases(Some(
                range
                    .map(|i| {
                        AliasListEntry::builder()
                            .alias_name(format!("alias/app-{i}"))
                            .target_key_id(format!("k{i:04}"))
                            .build()
                    })
                    .collect(),
            ))
            .truncated(next.is_some())
            .set_next_marker(next)
            .build()
    })
}

/// `grants_per_key` grants on every key, 100 per page.
fn grants_rule(grants_per_key: usize) -> aws_smithy_mocks::Rule {
    mock!(aws_sdk_kms::Client::list_grants).then_compute_output(move |req| {
        assert_eq!(req.limit(), Some(LIST_GRANTS_LIMIT));
        let key = req.key_id().unwrap_or_default().to_string();
        let (range, next) = page_of(req.marker(), grants_per_key, LIST_GRANTS_LIMIT as usize);
        ListGrantsOutput::builder()
            .set_grants(Some(range.map(|i| grant_entry(&key, i)).collect()))
            .truncated(next.is_some())
            .set_next_marker(next)
            .build()
    })
}

/// A stand-in KMS answering `rules` and, after them, a default policy and
/// one tag for every key.
fn client(rules: &[&aws_smithy_mocks::Rule]) -> aws_sdk_kms::Client {
    let (policy, tags) = (key_policy_rule(&[], &[]), tags_rule(0, &[]));
    let mut all = rules.to_vec();
    all.extend([&policy, &tags]);
    // Retries are ours (counted, classified): the SDK's are off, as in production.
    mock_client!(aws_sdk_kms, RuleMode::MatchAny, &all, |c| c
        .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled()))
}

fn inventory(rules: &[&aws_smithy_mocks::Rule]) -> KmsInventory<SingleClient> {
    KmsInventory::new(SingleClient(client(rules)), 10_000.0, fast())
}

async fn report(
    inv: &KmsInventory<SingleClient>,
    deadline: &dyn grantwatch_core::app::report::Deadline,
) -> Report {
    let policy = Policy::new(time::macros::date!(2026 - 11 - 28));
    let options = ReportOptions::default();
    let dir = FakeDirectory {
        this_account: ACCOUNT.into(),
        organization: vec![],
    };
    let store = MemoryStore::default();
    let deps = ReportDeps {
        inventory: inv,
        provenance: &NoProvenance,
        store: &store,
        directory: &dir,
        policy: &policy,
        options: &options,
        deadline,
        progress: &Quiet,
    };
    let request = ReportRequest {
        accounts: AccountSelection::This,
        regions: vec![REGION.into()],
    };
    build_report(&request, &deps, "2026-11-28T06:00:00Z")
        .await
        .unwrap()
}

#[tokio::test]
async fn many_pages_of_keys_aliases_and_grants_are_all_read() {
    // 1,001 keys: 2 ListKeys pages; 150 grants per key: 2 ListGrants pages each.
    let keys = list_keys_rule(1_001);
    let describe = describe_rule(&[]);
    let aliases = aliases_rule();
    let grants = grants_rule(150);
    let inv = inventory(&[&keys, &describe, &aliases, &grants]);
    let r = report(&inv, &NoDeadline).await;
    assert!(!r.partial, "{:?}", r.coverage.gaps.first());
    assert_eq!(keys.num_calls(), 2);
    assert_eq!(aliases.num_calls(), 3);
    assert_eq!(r.summary.keys, 1_001);
    assert_eq!(grants.num_calls(), 1_001 * 2);
    assert_eq!(r.summary.grants, 1_001 * 150);
    assert_eq!(r.summary.keys_aws_managed, 1);
    let k = r.keys.iter().find(|k| k.key_id == "k0007").unwrap();
    assert_eq!(k.aliases, vec!["alias/app-7".to_string()]);
    let g = &k.grants[0];
    assert_eq!(
        g.retiring_principal.as_deref(),
        Some("lambda.eu-west-1.amazonaws.com")
    );
    assert_eq!(
        g.constraints
            .as_ref()
            .and_then(|c| c.context_value("aws:lambda:functionarn")),
        Some("arn:aws:lambda:eu-west-1:111122223333:function:f0")
    );
}

#[tokio::test]
async fn one_key_with_many_grant_pages() {
    let keys = list_keys_rule(1);
    let describe = describe_rule(&[]);
    let aliases = aliases_rule();
    let grants = grants_rule(1_234);
    let inv = inventory(&[&keys, &describe, &aliases, &grants]);
    let r = report(&inv, &NoDeadline).await;
    assert_eq!(grants.num_calls(), 13);
    assert_eq!(r.summary.grants, 1_234);
    let ids: std::collections::BTreeSet<&str> = r.keys[0]
        .grants
        .iter()
        .map(|g| g.grant_id.as_str())
        .collect();
    assert_eq!(ids.len(), 1_234, "no grant twice, none lost");
}

#[tokio::test]
async fn throttling_is_retried_until_it_succeeds() {
    let calls = Arc::new(AtomicUsize::new(0));
    let seen = calls.clone();
    let grants = mock!(aws_sdk_kms::Client::list_grants).then_compute_response(move |req| {
        if seen.fetch_add(1, Ordering::SeqCst) < 2 {
            return MockResponse::Error(ListGrantsError::generic(
                ErrorMetadata::builder()
                    .code("ThrottlingException")
                    .message("Rate exceeded")
                    .build(),
            ));
        }
        MockResponse::Output(
            ListGrantsOutput::builder()
                .grants(grant_entry(req.key_id().unwrap_or_default(), 0))
                .truncated(false)
                .build(),
        )
    });
    let inv = inventory(&[&grants]);
    let page = inv.list_grants(&at(), "k0001", None).await.unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn throttling_that_never_ends_is_reported_as_throttled() {
    let grants = mock!(aws_sdk_kms::Client::list_grants).then_compute_response(|_| {
        MockResponse::Error(ListGrantsError::generic(
            ErrorMetadata::builder()
                .code("ThrottlingException")
                .message("Rate exceeded")
                .build(),
        ))
    });
    let keys = list_keys_rule(3);
    let describe = describe_rule(&[]);
    let aliases = aliases_rule();
    let inv = inventory(&[&keys, &describe, &aliases, &grants]);
    let r = report(&inv, &NoDeadline).await;
    assert_eq!(grants.num_calls(), 3 * 4, "max_attempts per key");
    assert_eq!(r.keys.len(), 3);
    assert!(r
        .coverage
        .gaps
        .iter()
        .all(|g| g.reason == GapReason::Throttled));
    assert_eq!(r.coverage.gaps.len(), 3);
}

#[tokio::test]
async fn access_denied_on_some_keys_is_in_coverage_not_dropped() {
    let keys = list_keys_rule(5);
    let describe = describe_rule(&["k0001", "k0003"]);
    let aliases = aliases_rule();
    let grants = mock!(aws_sdk_kms::Client::list_grants).then_compute_response(|req| {
        let key = req.key_id().unwrap_or_default().to_string();
        if key == "k0004" {
            return MockResponse::Error(ListGrantsError::generic(
                ErrorMetadata::builder()
                    .code("AccessDeniedException")
                    .message("not authorized")
                    .build(),
            ));
        }
        MockResponse::Output(
            ListGrantsOutput::builder()
                .grants(grant_entry(&key, 0))
                .truncated(false)
                .build(),
        )
    });
    let inv = inventory(&[&keys, &describe, &aliases, &grants]);
    let r = report(&inv, &NoDeadline).await;
    assert!(r.partial);
    assert_eq!(r.keys.len(), 5);
    let mut denied: Vec<&str> = r
        .coverage
        .gaps
        .iter()
        .filter(|g| g.reason == GapReason::AccessDenied)
        .filter_map(|g| g.key_arn.as_deref())
        .collect();
    denied.sort();
    assert_eq!(
        denied,
        vec![
            key_arn(1).as_str(),
            key_arn(3).as_str(),
            key_arn(4).as_str()
        ]
    );
    assert_eq!(r.summary.grants, 2);
    assert_eq!(
        r.coverage.account_regions[0].status,
        CoverageStatus::Partial
    );
    // Access denied is not retried.
    assert_eq!(describe.num_calls(), 5);
}

#[tokio::test]
async fn a_deadline_that_runs_out_gives_a_partial_report() {
    let keys = list_keys_rule(40);
    let describe = describe_rule(&[]);
    let aliases = aliases_rule();
    let grants = grants_rule(250);
    let inv = inventory(&[&keys, &describe, &aliases, &grants]);
    let r = report(&inv, &DeadlineAfterChecks::new(60)).await;
    assert!(r.partial);
    assert_eq!(r.keys.len(), 40);
    let cut = r
        .coverage
        .gaps
        .iter()
        .filter(|g| g.reason == GapReason::Deadline && g.unread == UnreadPart::Grants)
        .count();
    let complete = r.keys.iter().filter(|k| k.complete).count();
    assert!(cut > 0 && complete > 0, "cut {cut}, complete {complete}");
    assert_eq!(cut + complete, 40);
    assert_eq!(
        r.summary.grants,
        r.keys.iter().map(|k| k.grants.len()).sum::<usize>()
    );
}

/// Virtual time: a sleep moves the clock to its end at once.
struct VirtualClock {
    base: Instant,
    offset: Mutex<Duration>,
}

impl VirtualClock {
    fn new() -> Arc<VirtualClock> {
        Arc::new(VirtualClock {
            base: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        })
    }

    fn elapsed(&self) -> Duration {
        *self.offset.lock().unwrap()
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> Instant {
        self.base + self.elapsed()
    }

    fn sleep_until(&self, at: Instant) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        let mut offset = self.offset.lock().unwrap();
        *offset = (*offset).max(at.saturating_duration_since(self.base));
        Box::pin(std::future::ready(()))
    }
}

/// A KMS stand-in for ListGrants: pages of 100, and a quota of `quota`
/// calls in any second (of the virtual clock) beyond which it answers
/// ThrottlingException, as KMS does.
struct QuotaKms {
    rule: aws_smithy_mocks::Rule,
    throttled: Arc<AtomicUsize>,
}

fn quota_kms(clock: Arc<VirtualClock>, quota: usize, grants_of: fn(&str) -> usize) -> QuotaKms {
    let calls: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let throttled = Arc::new(AtomicUsize::new(0));
    let counter = throttled.clone();
    let rule = mock!(aws_sdk_kms::Client::list_grants).then_compute_response(move |req| {
        let now = clock.now();
        let mut calls = calls.lock().unwrap();
        let in_last_second = calls
            .iter()
            .filter(|t| now.duration_since(**t) < Duration::from_secs(1))
            .count();
        if in_last_second >= quota {
            counter.fetch_add(1, Ordering::SeqCst);
            return MockResponse::Error(ListGrantsError::generic(
                ErrorMetadata::builder()
                    .code("ThrottlingException")
                    .message("Rate exceeded")
                    .build(),
            ));
        }
        calls.push(now);
        let key = req.key_id().unwrap_or_default().to_string();
        let (range, next) = page_of(req.marker(), grants_of(&key), LIST_GRANTS_LIMIT as usize);
        MockResponse::Output(
            ListGrantsOutput::builder()
                .set_grants(Some(range.map(|i| grant_entry(&key, i)).collect()))
                .truncated(next.is_some())
                .set_next_marker(next)
                .build(),
        )
    });
    QuotaKms { rule, throttled }
}

/// 40 keys: every fourth has no grant, the others 250 (3 pages).
fn grants_of(key: &str) -> usize {
    let i: usize = key.trim_start_matches('k').parse().unwrap_or(0);
    if i.is_multiple_of(4) {
        0
    } else {
        250
    }
}

const QUOTA_KEYS: usize = 40;

/// The fewest ListGrants calls that read every grant: one per page, and
/// one for a key without grants.
fn minimum_calls() -> usize {
    (0..QUOTA_KEYS)
        .map(|i| grants_of(&format!("k{i:04}")).div_ceil(100).max(1))
        .sum()
}

async fn quota_run(rate: f64, quota: usize) -> (Report, usize, usize, Duration) {
    let clock = VirtualClock::new();
    let kms = quota_kms(clock.clone(), quota, grants_of);
    let keys = list_keys_rule(QUOTA_KEYS);
    let describe = describe_rule(&[]);
    let aliases = aliases_rule();
    let client = client(&[&keys, &describe, &aliases, &kms.rule]);
    let inv = KmsInventory::new(SingleClient(client), rate, RetryPolicy::default())
        .with_clock(clock.clone());
    let policy = Policy::new(time::macros::date!(2026 - 11 - 28));
    // One key at a time: on a virtual clock concurrent callers would
    // see each other's sleeps; the limiter, not concurrency, sets the pace.
    let options = ReportOptions {
        key_concurrency: 1,
        ..ReportOptions::default()
    };
    let dir = FakeDirectory {
        this_account: ACCOUNT.into(),
        organization: vec![],
    };
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
    let request = ReportRequest {
        accounts: AccountSelection::This,
        regions: vec![REGION.into()],
    };
    let report = build_report(&request, &deps, "2026-11-28T06:00:00Z")
        .await
        .unwrap();
    let calls = kms.rule.num_calls();
    (
        report,
        calls,
        kms.throttled.load(Ordering::SeqCst),
        clock.elapsed(),
    )
}

#[tokio::test]
async fn the_inventory_keeps_to_the_listgrants_quota_with_the_fewest_calls() {
    for rate in [20.0, 100.0] {
        let (r, calls, throttled, elapsed) = quota_run(rate, rate as usize).await;
        assert_eq!(throttled, 0, "at {rate}/s the stand-in never throttled");
        assert_eq!(calls, minimum_calls(), "at {rate}/s: one call per page");
        assert!(!r.partial, "{:?}", r.coverage.gaps);
        assert_eq!(r.keys.len(), QUOTA_KEYS, "no key lost");
        assert_eq!(r.summary.grants, 30 * 250);
        // Virtual time: ListGrants calls / rate is the lower bound.
        let bound = Duration::from_secs_f64(calls as f64 / rate);
        assert!(
            elapsed <= bound.mul_f64(1.15),
            "{elapsed:?} against a bound of {bound:?} at {rate}/s"
        );
    }
}

#[tokio::test]
async fn the_quota_stand_in_throttles_a_client_that_goes_faster() {
    // The control: a limiter set at twice the quota is throttled, and
    // pays in extra calls (the retries), so the test above can fail.
    let (_, calls, throttled, _) = quota_run(100.0, 50).await;
    assert!(throttled > 0);
    assert_eq!(calls, minimum_calls() + throttled);
}

/// One account-region's KMS behind a socket that accepts connections
/// and never answers; the others served by the mock.
struct OneRegionHangs {
    answering: aws_sdk_kms::Client,
    silent: aws_sdk_kms::Client,
    silent_region: &'static str,
}

impl KmsClients for OneRegionHangs {
    async fn kms(&self, at: &AccountRegion) -> Result<aws_sdk_kms::Client, ReadError> {
        Ok(if at.region == self.silent_region {
            self.silent.clone()
        } else {
            self.answering.clone()
        })
    }
}

/// Accepts every connection and keeps it open, silent, for the test's
/// life (the listener is never closed and its port never reused).
fn silent_endpoint() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for stream in listener.incoming() {
            open.push(stream);
        }
    });
    format!("http://{address}")
}

#[tokio::test]
async fn a_kms_endpoint_that_never_answers_still_gives_a_stored_partial_report_naming_it() {
    let keys = list_keys_rule(3);
    let describe = describe_rule(&[]);
    let aliases = aliases_rule();
    let grants = grants_rule(2);
    let answering = client(&[&keys, &describe, &aliases, &grants]);
    let silent = aws_sdk_kms::Client::from_conf(
        aws_sdk_kms::Config::builder()
            .behavior_version_latest()
            .region(aws_sdk_kms::config::Region::new("us-east-2"))
            .credentials_provider(aws_sdk_kms::config::Credentials::new(
                "AKID", "secret", None, None, "test",
            ))
            .endpoint_url(silent_endpoint())
            .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
            .build(),
    );
    let inv = KmsInventory::new(
        OneRegionHangs {
            answering,
            silent,
            silent_region: "us-east-2",
        },
        10_000.0,
        fast(),
    );
    // Two seconds to go, one kept back for writing the report.
    let reserve = Duration::from_secs(1);
    let deadline = Instant::now() + Duration::from_secs(2);
    inv.set_deadline(Some(deadline), reserve);
    let policy = Policy::new(time::macros::date!(2026 - 11 - 28));
    let options = ReportOptions {
        reserve,
        ..ReportOptions::default()
    };
    let dir = FakeDirectory {
        this_account: ACCOUNT.into(),
        organization: vec![],
    };
    let store = MemoryStore::default();
    let deps = ReportDeps {
        inventory: &inv,
        provenance: &NoProvenance,
        store: &store,
        directory: &dir,
        policy: &policy,
        options: &options,
        deadline: &grantwatch_core::app::report::DeadlineAt(deadline),
        progress: &Quiet,
    };
    let request = ReportRequest {
        accounts: AccountSelection::This,
        regions: vec![REGION.into(), "us-east-2".into()],
    };
    let outcome = grantwatch_core::app::report::run_report(
        &request,
        &deps,
        &[&grantwatch_core::app::report::NoChannel],
        "2026-11-28T06:00:00Z",
    )
    .await
    .expect("a partial report is still a report");
    assert!(outcome.partial);
    let stored = store.get("reports/2026-11-28/report.json").expect("stored");
    let r = Report::from_json(&stored).unwrap();
    assert!(r.partial);
    let coverage = |region: &str| {
        r.coverage
            .account_regions
            .iter()
            .find(|c| c.region == region)
            .unwrap_or_else(|| panic!("{region} not in coverage"))
            .clone()
    };
    assert_eq!(coverage(REGION).status, CoverageStatus::Complete);
    assert_eq!(coverage("us-east-2").status, CoverageStatus::Unread);
    let gap = r
        .coverage
        .gaps
        .iter()
        .find(|g| g.region == "us-east-2")
        .expect("the silent region is named in the gaps");
    // Stopped by the deadline, not by running out of attempts.
    assert!(gap.detail.contains("ListKeys"), "{gap:?}");
    assert!(
        gap.detail.contains("no time left before the deadline"),
        "{gap:?}"
    );
    assert_eq!(r.keys.len(), 3, "the answering region's keys are all there");
}

#[test]
fn the_rate_limiter_spaces_calls_evenly() {
    let limiter = RateLimiter::per_second(20.0);
    let t0 = Instant::now();
    let slots: Vec<Duration> = (0..5).map(|_| limiter.reserve(t0) - t0).collect();
    assert_eq!(
        slots,
        (0..5)
            .map(|i| Duration::from_millis(50 * i))
            .collect::<Vec<_>>()
    );
    // After a pause, no burst is saved up.
    let later = t0 + Duration::from_secs(10);
    assert_eq!(limiter.reserve(later), later);
    assert_eq!(limiter.reserve(later) - later, Duration::from_millis(50));
}

#[tokio::test]
async fn a_scaled_organization_is_covered_in_every_account_region_with_the_fewest_calls() {
    const KEYS_PER_REGION: usize = 3;
    const GRANTS_ON_ODD_KEYS: usize = 150;
    const ACCOUNTS: usize = 200;
    const REGIONS: [&str; 5] = [
        "us-east-1",
        "us-west-2",
        "eu-west-1",
        "eu-central-1",
        "ap-southeast-2",
    ];
    let org = Arc::new(OrganizationKms::new(KEYS_PER_REGION, GRANTS_ON_ODD_KEYS));
    let r = super::stand_in::organization_report(org.clone(), ACCOUNTS, &REGIONS, fast())
        .await
        .unwrap();
    let account_regions = ACCOUNTS * REGIONS.len();
    assert!(!r.partial, "{:?}", r.coverage.gaps.first());
    // Every account-region covered, each read once.
    assert_eq!(r.coverage.account_regions.len(), account_regions);
    assert!(r
        .coverage
        .account_regions
        .iter()
        .all(|c| c.status == CoverageStatus::Complete));
    let mut listed = org.list_keys_calls().clone();
    listed.sort_by(|a, b| (&a.account, &a.region).cmp(&(&b.account, &b.region)));
    listed.dedup();
    assert_eq!(listed.len(), account_regions, "every account-region listed");
    assert_eq!(org.list_keys_calls().len(), account_regions, "once");
    // Every key and grant, with the fewest calls: one page of keys and of
    // aliases per account-region, one DescribeKey per key, one ListGrants
    // per page of grants (one for a key without grants), and per customer
    // managed key (all of them here) one GetKeyPolicy and one
    // ListResourceTags (a key has at most 50 tags: one page).
    let keys = account_regions * KEYS_PER_REGION;
    assert_eq!(r.keys.len(), keys);
    let grants_per_region: usize = (0..KEYS_PER_REGION).map(|k| org.grants_of(k)).sum();
    assert_eq!(r.summary.grants, account_regions * grants_per_region);
    let grant_pages_per_region: usize = (0..KEYS_PER_REGION)
        .map(|k| org.grants_of(k).div_ceil(LIST_GRANTS_LIMIT as usize).max(1))
        .sum();
    assert_eq!(org.list_aliases.load(Ordering::SeqCst), account_regions);
    assert_eq!(org.describe_key.load(Ordering::SeqCst), keys);
    assert_eq!(org.get_key_policy.load(Ordering::SeqCst), keys);
    assert_eq!(org.list_resource_tags.load(Ordering::SeqCst), keys);
    assert!(r
        .keys
        .iter()
        .all(|k| k.tags.get("env").map(String::as_str) == Some("prod")));
    assert_eq!(
        org.list_grants.load(Ordering::SeqCst),
        account_regions * grant_pages_per_region
    );
    // Each key filed under its own account-region.
    assert!(r
        .keys
        .iter()
        .all(|k| k.key_arn.contains(&format!(":{}:{}:", k.region, k.account))));
}

#[tokio::test]
async fn key_policies_and_tags_are_read_per_customer_managed_key_and_gaps_are_listed() {
    // k0000 is AWS managed: no GetKeyPolicy, no ListResourceTags.
    let keys = list_keys_rule(5);
    let describe = describe_rule(&[]);
    let aliases = aliases_rule();
    let grants = grants_rule(1);
    let policy = key_policy_rule(&["k0001"], &["k0002"]);
    // 60 tags besides `env`: two pages per key.
    let tags = tags_rule(60, &["k0003"]);
    let inv = inventory(&[&keys, &describe, &aliases, &grants, &policy, &tags]);
    let r = report(&inv, &NoDeadline).await;
    assert_eq!(policy.num_calls(), 4, "customer managed keys only");
    assert_eq!(
        tags.num_calls(),
        2 * 3 + 1,
        "two pages each; k0003 denied at once"
    );
    let key = |i: usize| r.keys.iter().find(|k| k.key_arn == key_arn(i)).unwrap();
    // Every key stays in the report with its grants.
    assert_eq!(r.keys.len(), 5);
    assert!(r.keys.iter().all(|k| k.complete && k.grants.len() == 1));
    // The open policy is the key's own finding, medium, counted.
    assert_eq!(key(1).findings[0].code, FindingCode::CreateGrantOpen);
    assert_eq!(key(1).severity, Severity::Medium);
    assert!(key(1).findings[0].message.contains("ci-deployer"));
    assert!(key(4).findings.is_empty());
    assert_eq!(r.summary.risky_keys, 1);
    // Tags from both pages.
    assert_eq!(key(4).tags.len(), 61);
    assert_eq!(key(4).tags["env"], "prod-k0004");
    assert_eq!(key(4).tags["t60"], "v60");
    assert!(key(0).tags.is_empty());
    // What could not be read is in coverage, naming the part; the keys
    // still count as complete (their grants were read).
    let gaps: Vec<(String, UnreadPart, GapReason)> = r
        .coverage
        .gaps
        .iter()
        .map(|g| (g.key_arn.clone().unwrap_or_default(), g.unread, g.reason))
        .collect();
    assert_eq!(
        gaps,
        vec![
            (key_arn(2), UnreadPart::KeyPolicy, GapReason::AccessDenied),
            (key_arn(3), UnreadPart::Tags, GapReason::AccessDenied),
        ]
    );
    assert!(r.partial);
    assert!(r.coverage.key_complete(&key_arn(2)));
    assert_eq!(r.coverage.account_regions[0].keys_complete, 5);
}
