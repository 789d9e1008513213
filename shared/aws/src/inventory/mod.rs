//! KMS inventory: ListKeys/DescribeKey/ListAliases/ListGrants, and per
//! customer managed key GetKeyPolicy/ListResourceTags, with paging, rate
//! limit and retries.
//!
//! One [`KmsInventory`] serves every account-region of a report: it asks a
//! [`KmsClients`] for the account-region's client (assuming the member role
//! where needed, see [`crate::scope`]), keeps each account-region's
//! ListGrants calls under a client-side rate (KMS allows 100/s per
//! account-region, shared with everything else there), and retries
//! throttling and other transient failures with exponential backoff. What
//! is still failing after the retries becomes a [`ReadError`] the report
//! lists in its coverage. GetKeyPolicy and ListResourceTags have their own
//! KMS request quotas (not ListGrants's), so they are not behind the
//! ListGrants limiter; the retries absorb their throttling.
//!
//! Files: [`limiter`] (clock, rate limiter), [`retry`] (retries, error
//! mapping), [`convert`] (KMS answers as domain values); here the port.

mod convert;
mod limiter;
mod retry;
#[cfg(any(test, feature = "stand-in"))]
pub mod stand_in;
#[cfg(test)]
mod tests;

pub use convert::{key_description, listed_grant};
pub use limiter::{Clock, RateLimiter, TokioClock};
pub use retry::{read_error, RetryPolicy};

use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::http::Response as HttpResponse;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use aws_smithy_types::timeout::TimeoutConfig;
use convert::IntoPage;
use grantwatch_core::ports::inventory::{
    AccountRegion, AliasEntry, Inventory, KeyDescription, KeyTag, ListedGrant, ListedKey, Page,
    ReadError, DEFAULT_POLICY_NAME,
};
use grantwatch_core::ports::PortError;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// ListKeys page size (the maximum).
pub const LIST_KEYS_LIMIT: i32 = 1000;
/// ListGrants and ListAliases page size (the maximum).
pub const LIST_GRANTS_LIMIT: i32 = 100;
pub const LIST_ALIASES_LIMIT: i32 = 100;
/// ListResourceTags page size (the maximum; a key has at most 50 tags).
pub const LIST_TAGS_LIMIT: i32 = 50;
/// Default ListGrants calls per second per account-region.
pub const DEFAULT_LISTGRANTS_RATE: f64 = 20.0;
/// One attempt of a KMS call (connect included), at most; less when the
/// deadline is nearer. A KMS endpoint that never answers costs this.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// One KMS call, at most (our retries are outside it).
pub const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);

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
}

impl<C: KmsClients> KmsInventory<C> {
    /// One page of a KMS listing, read with retries (behind `limiter` when
    /// given) under the deadline's timeouts. One page per call: the loop
    /// over pages is the report's, which checks its deadline between pages
    /// (the SDK's paginators could not stop there).
    async fn read_page<O, E, F, Fut>(
        &self,
        at: &AccountRegion,
        operation: &str,
        limiter: Option<&RateLimiter>,
        call: F,
    ) -> Result<Page<O::Item>, ReadError>
    where
        O: IntoPage,
        F: Fn(&aws_sdk_kms::Client, aws_sdk_kms::config::Builder) -> Fut,
        Fut: Future<Output = Result<O, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let kms = self.clients.kms(at).await?;
        let out = self
            .with_retries(operation, limiter, |timeouts| call(&kms, timeouts))
            .await?;
        Ok(out.into_page(at))
    }
}

impl<C: KmsClients> Inventory for KmsInventory<C> {
    async fn list_keys(
        &self,
        at: &AccountRegion,
        marker: Option<String>,
    ) -> Result<Page<ListedKey>, ReadError> {
        self.read_page(at, "ListKeys", None, |kms, timeouts| {
            kms.list_keys()
                .limit(LIST_KEYS_LIMIT)
                .set_marker(marker.clone())
                .customize()
                .config_override(timeouts)
                .send()
        })
        .await
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
        marker: Option<String>,
    ) -> Result<Page<AliasEntry>, ReadError> {
        self.read_page(at, "ListAliases", None, |kms, timeouts| {
            kms.list_aliases()
                .limit(LIST_ALIASES_LIMIT)
                .set_marker(marker.clone())
                .customize()
                .config_override(timeouts)
                .send()
        })
        .await
    }

    async fn key_policy(&self, at: &AccountRegion, key_id: &str) -> Result<String, ReadError> {
        let kms = self.clients.kms(at).await?;
        let out = self
            .with_retries("GetKeyPolicy", None, |timeouts| {
                kms.get_key_policy()
                    .key_id(key_id)
                    .policy_name(DEFAULT_POLICY_NAME)
                    .customize()
                    .config_override(timeouts)
                    .send()
            })
            .await?;
        out.policy.ok_or_else(|| {
            ReadError::Failed(PortError::Permanent(format!(
                "GetKeyPolicy {key_id}: no policy in the answer"
            )))
        })
    }

    async fn list_resource_tags(
        &self,
        at: &AccountRegion,
        key_id: &str,
        marker: Option<String>,
    ) -> Result<Page<KeyTag>, ReadError> {
        self.read_page(at, "ListResourceTags", None, |kms, timeouts| {
            kms.list_resource_tags()
                .key_id(key_id)
                .limit(LIST_TAGS_LIMIT)
                .set_marker(marker.clone())
                .customize()
                .config_override(timeouts)
                .send()
        })
        .await
    }

    async fn list_grants(
        &self,
        at: &AccountRegion,
        key_id: &str,
        marker: Option<String>,
    ) -> Result<Page<ListedGrant>, ReadError> {
        let limiter = self.limiter(at);
        self.read_page(at, "ListGrants", Some(&limiter), |kms, timeouts| {
            kms.list_grants()
                .key_id(key_id)
                .limit(LIST_GRANTS_LIMIT)
                .set_marker(marker.clone())
                .customize()
                .config_override(timeouts)
                .send()
        })
        .await
    }
}
