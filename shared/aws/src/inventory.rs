//! KMS inventory: ListKeys/DescribeKey/ListAliases/ListGrants with paging, rate limit and retries.
//!
//! One [`KmsInventory`] serves every account-region of a report: it asks a
//! [`KmsClients`] for the account-region's client (assuming the member role
//! where needed, see [`crate::scope`]), keeps each account-region's
//! ListGrants calls under a client-side rate (KMS allows 100/s per
//! account-region, shared with everything else there), and retries
//! throttling and other transient failures with exponential backoff. What
//! is still failing after the retries becomes a [`ReadError`] the report
//! lists in its coverage.

use crate::sdk::classify;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::timeout::TimeoutConfig;
use grantwatch_core::grant::{Constraints, GrantFacts, Operation};
use grantwatch_core::ports::inventory::{
    AccountRegion, AliasEntry, Inventory, KeyDescription, KeyManager, ListedGrant, ListedKey, Page,
    ReadError,
};
use grantwatch_core::ports::PortError;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// ListKeys page size (the maximum).
pub const LIST_KEYS_LIMIT: i32 = 1000;
/// ListGrants and ListAliases page size (the maximum).
pub const LIST_GRANTS_LIMIT: i32 = 100;
pub const LIST_ALIASES_LIMIT: i32 = 100;
/// Default ListGrants calls per second per account-region.
pub const DEFAULT_LISTGRANTS_RATE: f64 = 20.0;
/// One attempt of a KMS call (connect included), at most; less when the
/// deadline is nearer. A KMS endpoint that never answers costs this.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// One KMS call, at most (our retries are outside it).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);

/// How throttling and transient failures are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call, the first included.
    pub max_attempts: u32,
    pub first_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            first_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

/// A KMS client for an account-region.
pub trait KmsClients: Send + Sync {
    fn kms(
        &self,
        at: &AccountRegion,
    ) -> impl Future<Output = Result<aws_sdk_kms::Client, ReadError>> + Send;
}

/// One client for every account-region (tests, a single-account CLI run).
#[derive(Clone)]
pub struct SingleClient(pub aws_sdk_kms::Client);

impl KmsClients for SingleClient {
    async fn kms(&self, _at: &AccountRegion) -> Result<aws_sdk_kms::Client, ReadError> {
        Ok(self.0.clone())
    }
}

/// The time the rate limiter and the retry backoff go by: real (tokio)
/// time in production, a virtual clock in the quota tests (no timed test).
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
    fn sleep_until(&self, at: Instant) -> Pin<Box<dyn Future<Output = ()> + Send>>;
}

/// Tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioClock;

impl Clock for TokioClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, at: Instant) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(tokio::time::sleep_until(tokio::time::Instant::from_std(at)))
    }
}

/// Spaces calls evenly: at most `rate` per second, no bursts.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    pub fn per_second(rate: f64) -> Self {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            DEFAULT_LISTGRANTS_RATE
        };
        RateLimiter {
            interval: Duration::from_secs_f64(1.0 / rate),
            next: Mutex::new(None),
        }
    }

    /// The instant the caller may go, given the time now; books the slot.
    pub fn reserve(&self, now: Instant) -> Instant {
        let Ok(mut next) = self.next.lock() else {
            return now;
        };
        let slot = next.map_or(now, |n| n.max(now));
        *next = Some(slot + self.interval);
        slot
    }

    pub async fn acquire(&self, clock: &dyn Clock) {
        let slot = self.reserve(clock.now());
        clock.sleep_until(slot).await;
    }
}

/// The Inventory port over KMS.
pub struct KmsInventory<C> {
    clients: C,
    listgrants_rate: f64,
    retry: RetryPolicy,
    limiters: Mutex<HashMap<AccountRegion, Arc<RateLimiter>>>,
    clock: Arc<dyn Clock>,
    /// The invocation's deadline and the time kept back before it.
    deadline: Mutex<Option<(Instant, Duration)>>,
}

impl<C: KmsClients> KmsInventory<C> {
    pub fn new(clients: C, listgrants_rate: f64, retry: RetryPolicy) -> Self {
        KmsInventory {
            clients,
            listgrants_rate,
            retry,
            limiters: Mutex::new(HashMap::new()),
            clock: Arc::new(TokioClock),
            deadline: Mutex::new(None),
        }
    }

    /// Every call from now on ends `reserve` before `deadline` (the
    /// invocation's): its attempt and operation timeouts shrink to the time
    /// left, and no call starts when none is left. `None`: no deadline (the
    /// CLI); the timeouts are then [`ATTEMPT_TIMEOUT`] and
    /// [`OPERATION_TIMEOUT`].
    pub fn set_deadline(&self, deadline: Option<Instant>, reserve: Duration) {
        if let Ok(mut slot) = self.deadline.lock() {
            *slot = deadline.map(|at| (at, reserve));
        }
    }

    /// The timeouts of the next attempt of `operation`.
    fn timeouts(&self, operation: &str) -> Result<TimeoutConfig, ReadError> {
        let (mut attempt, mut whole) = (ATTEMPT_TIMEOUT, OPERATION_TIMEOUT);
        let deadline = self.deadline.lock().ok().and_then(|d| *d);
        if let Some((at, reserve)) = deadline {
            let left = at
                .saturating_duration_since(self.clock.now())
                .saturating_sub(reserve);
            if left.is_zero() {
                return Err(ReadError::Failed(PortError::Transient(format!(
                    "{operation}: no time left before the deadline"
                ))));
            }
            attempt = attempt.min(left);
            whole = whole.min(left);
        }
        Ok(TimeoutConfig::builder()
            .connect_timeout(attempt)
            .operation_attempt_timeout(attempt)
            .operation_timeout(whole)
            .build())
    }

    /// Go by another clock (the quota tests' virtual time).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    fn limiter(&self, at: &AccountRegion) -> Arc<RateLimiter> {
        match self.limiters.lock() {
            Ok(mut map) => map
                .entry(at.clone())
                .or_insert_with(|| Arc::new(RateLimiter::per_second(self.listgrants_rate)))
                .clone(),
            Err(_) => Arc::new(RateLimiter::per_second(self.listgrants_rate)),
        }
    }

    /// Run `call` until it succeeds, fails for good, the attempts run out
    /// or the deadline comes; `limiter` (if any) is waited for before every
    /// attempt. `call` applies the config override it is given (the
    /// attempt's timeouts) with `.customize().config_override(..)`.
    async fn with_retries<T, E, F, Fut>(
        &self,
        operation: &str,
        limiter: Option<&RateLimiter>,
        call: F,
    ) -> Result<T, ReadError>
    where
        F: Fn(aws_sdk_kms::config::Builder) -> Fut,
        Fut: Future<Output = Result<T, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let mut backoff = self.retry.first_backoff;
        let mut attempt = 1;
        loop {
            if let Some(limiter) = limiter {
                limiter.acquire(self.clock.as_ref()).await;
            }
            let timeouts = self.timeouts(operation)?;
            let config = aws_sdk_kms::config::Builder::default().timeout_config(timeouts);
            let error = match call(config).await {
                Ok(output) => return Ok(output),
                Err(e) => read_error(operation, &e),
            };
            let retryable = matches!(&error, ReadError::Throttled(_))
                || matches!(&error, ReadError::Failed(p) if p.is_transient());
            if !retryable || attempt >= self.retry.max_attempts {
                return Err(error);
            }
            tracing::debug!(operation, attempt, problem = %error, "retrying KMS call");
            let clock = self.clock.as_ref();
            clock.sleep_until(clock.now() + jitter(backoff)).await;
            backoff = (backoff * 2).min(self.retry.max_backoff);
            attempt += 1;
        }
    }
}

/// Between half and all of `d`, varied by the clock's nanoseconds (enough
/// to keep concurrent account-regions from retrying in step).
fn jitter(d: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.subsec_nanos())
        .unwrap_or(0);
    let fraction = 0.5 + f64::from(nanos % 1000) / 2000.0;
    d.mul_f64(fraction)
}

/// Map a KMS error to the coverage reason it stands for.
pub fn read_error<E>(operation: &str, error: &SdkError<E, HttpResponse>) -> ReadError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let code = match error {
        SdkError::ServiceError(service) => service.err().code(),
        _ => None,
    };
    let text = || classify(operation, error).to_string();
    match code {
        Some("AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation") => {
            ReadError::AccessDenied(text())
        }
        Some(
            "ThrottlingException"
            | "Throttling"
            | "TooManyRequestsException"
            | "RequestLimitExceeded"
            | "LimitExceededException",
        ) => ReadError::Throttled(text()),
        Some("NotFoundException") => ReadError::NotFound(text()),
        Some("KMSInvalidStateException") => ReadError::InvalidState(text()),
        _ => ReadError::Failed(classify(operation, error)),
    }
}

fn to_rfc3339(t: &aws_smithy_types::DateTime) -> Option<String> {
    t.fmt(aws_smithy_types::date_time::Format::DateTime).ok()
}

fn sorted(map: Option<&HashMap<String, String>>) -> Option<BTreeMap<String, String>> {
    map.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
}

/// A ListGrants entry as domain facts.
pub fn listed_grant(entry: &aws_sdk_kms::types::GrantListEntry) -> ListedGrant {
    let constraints = entry.constraints().map(|c| Constraints {
        encryption_context_equals: sorted(c.encryption_context_equals()),
        encryption_context_subset: sorted(c.encryption_context_subset()),
        source_arn: c.source_arn().map(str::to_string),
    });
    ListedGrant {
        grant_id: entry.grant_id().unwrap_or_default().to_string(),
        created: entry.creation_date().and_then(to_rfc3339),
        issuing_account: entry.issuing_account().map(str::to_string),
        facts: GrantFacts {
            grantee: entry.grantee_principal().map(str::to_string),
            grantee_service_principal: entry.grantee_service_principal().map(str::to_string),
            retiring_principal: entry.retiring_principal().map(str::to_string),
            retiring_service_principal: entry.retiring_service_principal().map(str::to_string),
            operations: entry
                .operations()
                .iter()
                .map(|op| Operation::parse(op.as_str()))
                .collect(),
            constraints,
            name: entry.name().filter(|n| !n.is_empty()).map(str::to_string),
        },
    }
}

/// DescribeKey's metadata as a domain description.
pub fn key_description(m: &aws_sdk_kms::types::KeyMetadata) -> KeyDescription {
    KeyDescription {
        key_id: m.key_id().to_string(),
        key_arn: m.arn().unwrap_or_default().to_string(),
        manager: m.key_manager().and_then(|k| match k.as_str() {
            "AWS" => Some(KeyManager::Aws),
            "CUSTOMER" => Some(KeyManager::Customer),
            _ => None,
        }),
        state: m.key_state().map(|s| s.as_str().to_string()),
        key_spec: m.key_spec().map(|s| s.as_str().to_string()),
        key_usage: m.key_usage().map(|s| s.as_str().to_string()),
        multi_region: m.multi_region(),
        description: m.description().map(str::to_string),
    }
}

/// KMS sometimes answers a page with an empty marker: that is the end.
fn marker(next: Option<&str>) -> Option<String> {
    next.filter(|m| !m.is_empty()).map(str::to_string)
}

impl<C: KmsClients> Inventory for KmsInventory<C> {
    async fn list_keys(
        &self,
        at: &AccountRegion,
        marker_in: Option<String>,
    ) -> Result<Page<ListedKey>, ReadError> {
        let kms = self.clients.kms(at).await?;
        let out = self
            .with_retries("ListKeys", None, |timeouts| {
                kms.list_keys()
                    .limit(LIST_KEYS_LIMIT)
                    .set_marker(marker_in.clone())
                    .customize()
                    .config_override(timeouts)
                    .send()
            })
            .await?;
        let items = out
            .keys()
            .iter()
            .filter_map(|k| {
                let key_id = k.key_id()?.to_string();
                let key_arn = k.key_arn().map(str::to_string).unwrap_or_else(|| {
                    format!(
                        "arn:{}:kms:{}:{}:key/{key_id}",
                        grantwatch_core::principal::partition_of_region(&at.region),
                        at.region,
                        at.account
                    )
                });
                Some(ListedKey { key_id, key_arn })
            })
            .collect();
        Ok(Page {
            items,
            next_marker: if out.truncated() {
                marker(out.next_marker())
            } else {
                None
            },
        })
    }

    async fn describe_key(
        &self,
        at: &AccountRegion,
        key_id: &str,
    ) -> Result<KeyDescription, ReadError> {
        let kms = self.clients.kms(at).await?;
        let out = self
            .with_retries("DescribeKey", None, |timeouts| {
                kms.describe_key()
                    .key_id(key_id)
                    .customize()
                    .config_override(timeouts)
                    .send()
            })
            .await?;
        out.key_metadata().map(key_description).ok_or_else(|| {
            ReadError::Failed(PortError::Permanent(format!(
                "DescribeKey {key_id}: no metadata"
            )))
        })
    }

    async fn list_aliases(
        &self,
        at: &AccountRegion,
        marker_in: Option<String>,
    ) -> Result<Page<AliasEntry>, ReadError> {
        let kms = self.clients.kms(at).await?;
        let out = self
            .with_retries("ListAliases", None, |timeouts| {
                kms.list_aliases()
                    .limit(LIST_ALIASES_LIMIT)
                    .set_marker(marker_in.clone())
                    .customize()
                    .config_override(timeouts)
                    .send()
            })
            .await?;
        let items = out
            .aliases()
            .iter()
            .filter_map(|a| {
                Some(AliasEntry {
                    alias_name: a.alias_name()?.to_string(),
                    target_key_id: a.target_key_id().map(str::to_string),
                })
            })
            .collect();
        Ok(Page {
            items,
            next_marker: if out.truncated() {
                marker(out.next_marker())
            } else {
                None
            },
        })
    }

    async fn list_grants(
        &self,
        at: &AccountRegion,
        key_id: &str,
        marker_in: Option<String>,
    ) -> Result<Page<ListedGrant>, ReadError> {
        let kms = self.clients.kms(at).await?;
        let limiter = self.limiter(at);
        let out = self
            .with_retries("ListGrants", Some(&limiter), |timeouts| {
                kms.list_grants()
                    .key_id(key_id)
                    .limit(LIST_GRANTS_LIMIT)
                    .set_marker(marker_in.clone())
                    .customize()
                    .config_override(timeouts)
                    .send()
            })
            .await?;
        Ok(Page {
            items: out.grants().iter().map(listed_grant).collect(),
            next_marker: if out.truncated() {
                marker(out.next_marker())
            } else {
                None
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_kms::operation::describe_key::{DescribeKeyError, DescribeKeyOutput};
    use aws_sdk_kms::operation::list_aliases::ListAliasesOutput;
    use aws_sdk_kms::operation::list_grants::{ListGrantsError, ListGrantsOutput};
    use aws_sdk_kms::operation::list_keys::ListKeysOutput;
    use aws_sdk_kms::types::{
        AliasListEntry, GrantConstraints, GrantListEntry, GrantOperation, KeyListEntry,
        KeyManagerType, KeyMetadata, KeyState,
    };
    use aws_smithy_mocks::{mock, mock_client, MockResponse, RuleMode};
    use aws_smithy_types::error::ErrorMetadata;
    use grantwatch_core::app::report::{
        build_report, DeadlineAfterChecks, NoDeadline, Quiet, ReportDeps, ReportOptions,
        ReportRequest,
    };
    use grantwatch_core::judge::Policy;
    use grantwatch_core::ports::inventory::fake::{FakeDirectory, MemoryStore};
    use grantwatch_core::ports::inventory::{AccountSelection, NoProvenance};
    use grantwatch_core::report::{CoverageStatus, GapReason, Report};
    use std::sync::atomic::{AtomicUsize, Ordering};

    const ACCOUNT: &str = "111122223333";
    const REGION: &str = "eu-west-1";

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

    /// A page of `total` items of which this marker's page is returned.
    fn page_of(
        marker: Option<&str>,
        total: usize,
        size: usize,
    ) -> (std::ops::Range<usize>, Option<String>) {
        let start: usize = marker
            .and_then(|m| m.strip_prefix("m"))
            .and_then(|m| m.parse().ok())
            .unwrap_or(0);
        let end = (start + size).min(total);
        (start..end, (end < total).then(|| format!("m{end}")))
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

    fn grant_entry(key: &str, i: usize) -> GrantListEntry {
        GrantListEntry::builder()
            .key_id(key)
            .grant_id(format!("{key}-g{i:05}"))
            .grantee_principal(format!("arn:aws:iam::{ACCOUNT}:role/app-{i}"))
            .retiring_principal("lambda.eu-west-1.amazonaws.com")
            .operations(GrantOperation::Decrypt)
            .operations(GrantOperation::RetireGrant)
            .constraints(
                GrantConstraints::builder()
                    .encryption_context_equals(
                        "aws:lambda:FunctionArn",
                        format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:f{i}"),
                    )
                    .build(),
            )
            .build()
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

    fn inventory(rules: &[&aws_smithy_mocks::Rule]) -> KmsInventory<SingleClient> {
        // Retries are ours (counted, classified): the SDK's are off, as in production.
        let client = mock_client!(aws_sdk_kms, RuleMode::MatchAny, rules, |c| c
            .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled()));
        KmsInventory::new(SingleClient(client), 10_000.0, fast())
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
            .filter(|g| g.reason == GapReason::Deadline)
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
        let rules = [&keys, &describe, &aliases, &kms.rule];
        let client = mock_client!(aws_sdk_kms, RuleMode::MatchAny, &rules, |c| c
            .retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled()));
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
        let answering = mock_client!(
            aws_sdk_kms,
            RuleMode::MatchAny,
            &[&keys, &describe, &aliases, &grants],
            |c| c.retry_config(aws_sdk_kms::config::retry::RetryConfig::disabled())
        );
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
}
