//! Inventory and report store ports (the weekly report).
//!
//! [`Inventory`] reads one account-region's keys, aliases and grants page
//! by page, in domain types; the AWS adapter adds credentials per account,
//! a client-side rate limit and throttling retries. [`ReportStore`] keeps
//! the report files and hands out a link. [`AccountDirectory`] resolves
//! "this account" and "every account of the organization". [`Provenance`]
//! is the ledger's memory of who created a key's grants.
//!
//! In-memory fakes of each live in [`fake`], for the use case's tests.

use crate::grant::GrantFacts;
use crate::ports::ledger::{GrantLedger, StackLedger};
use crate::ports::PortError;
use crate::record::GrantRecord;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;

/// One account in one region: the unit of inventory, rate limiting and
/// coverage.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AccountRegion {
    pub account: String,
    pub region: String,
}

impl AccountRegion {
    pub fn new(account: impl Into<String>, region: impl Into<String>) -> Self {
        AccountRegion {
            account: account.into(),
            region: region.into(),
        }
    }
}

impl fmt::Display for AccountRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.account, self.region)
    }
}

/// One page of a listing; `next_marker` is `None` on the last page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_marker: Option<String>,
}

/// A key as `ListKeys` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedKey {
    pub key_id: String,
    pub key_arn: String,
}

/// Who manages a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum KeyManager {
    Aws,
    Customer,
}

impl KeyManager {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyManager::Aws => "AWS",
            KeyManager::Customer => "CUSTOMER",
        }
    }
}

/// What `DescribeKey` says about a key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyDescription {
    pub key_id: String,
    pub key_arn: String,
    /// `None` when AWS answered with a value this version does not know.
    pub manager: Option<KeyManager>,
    /// `Enabled`, `Disabled`, `PendingDeletion`, ... as given.
    pub state: Option<String>,
    /// `SYMMETRIC_DEFAULT`, `RSA_2048`, `HMAC_256`, ...
    pub key_spec: Option<String>,
    /// `ENCRYPT_DECRYPT`, `SIGN_VERIFY`, `GENERATE_VERIFY_MAC`, ...
    pub key_usage: Option<String>,
    pub multi_region: Option<bool>,
    pub description: Option<String>,
}

impl KeyDescription {
    pub fn is_pending_deletion(&self) -> bool {
        matches!(
            self.state.as_deref(),
            Some("PendingDeletion") | Some("PendingReplicaDeletion")
        )
    }
}

/// One of a key's tags, as `ListResourceTags` gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyTag {
    pub key: String,
    pub value: String,
}

/// The name of the only key policy KMS keeps (`GetKeyPolicy`).
pub const DEFAULT_POLICY_NAME: &str = "default";

/// An alias as `ListAliases` shows it (`alias/payments` → target key id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasEntry {
    pub alias_name: String,
    /// `None` for AWS managed aliases not yet bound to a key.
    pub target_key_id: Option<String>,
}

/// A grant as `ListGrants` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListedGrant {
    pub grant_id: String,
    /// `CreationDate`, RFC 3339 (moto leaves it out).
    pub created: Option<String>,
    /// `IssuingAccount` (moto leaves it out).
    pub issuing_account: Option<String>,
    pub facts: GrantFacts,
}

/// Why something could not be read. Each kind is a coverage reason in the
/// report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// AccessDenied / not authorised / the member role could not be assumed.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// Still throttled after the adapter's retries.
    #[error("throttled after retries: {0}")]
    Throttled(String),
    /// The key vanished between ListKeys and the next call.
    #[error("not found: {0}")]
    NotFound(String),
    /// The key's state forbids the call (e.g. pending deletion, pending
    /// import).
    #[error("invalid key state: {0}")]
    InvalidState(String),
    /// Anything else (network, 5xx after retries, unexpected answer).
    #[error("{0}")]
    Failed(PortError),
}

/// Read one account-region's keys, aliases and grants. Implementations
/// retry throttling and keep to their rate limit; callers loop the pages.
pub trait Inventory: Send + Sync {
    fn list_keys(
        &self,
        at: &AccountRegion,
        marker: Option<String>,
    ) -> impl Future<Output = Result<Page<ListedKey>, ReadError>> + Send;

    fn describe_key(
        &self,
        at: &AccountRegion,
        key_id: &str,
    ) -> impl Future<Output = Result<KeyDescription, ReadError>> + Send;

    fn list_aliases(
        &self,
        at: &AccountRegion,
        marker: Option<String>,
    ) -> impl Future<Output = Result<Page<AliasEntry>, ReadError>> + Send;

    /// The key policy (`GetKeyPolicy`, policy name `default`), JSON text.
    /// An inventory that cannot read policies says so: the report lists
    /// the key's posture as unread.
    fn key_policy(
        &self,
        _at: &AccountRegion,
        key_id: &str,
    ) -> impl Future<Output = Result<String, ReadError>> + Send {
        let unread = not_read_here("GetKeyPolicy", key_id);
        async move { Err(unread) }
    }

    /// One page of the key's tags (`ListResourceTags`). As
    /// [`Inventory::key_policy`], an inventory that cannot says so.
    fn list_resource_tags(
        &self,
        _at: &AccountRegion,
        key_id: &str,
        _marker: Option<String>,
    ) -> impl Future<Output = Result<Page<KeyTag>, ReadError>> + Send {
        let unread = not_read_here("ListResourceTags", key_id);
        async move { Err(unread) }
    }

    fn list_grants(
        &self,
        at: &AccountRegion,
        key_id: &str,
        marker: Option<String>,
    ) -> impl Future<Output = Result<Page<ListedGrant>, ReadError>> + Send;
}

fn not_read_here(operation: &str, key_id: &str) -> ReadError {
    ReadError::Failed(PortError::Permanent(format!(
        "{operation} {key_id}: this inventory does not read it"
    )))
}

/// Which accounts a report covers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountSelection {
    /// The caller's own account.
    #[default]
    This,
    /// These accounts (12-digit ids).
    List(Vec<String>),
    /// Every active account of the organization.
    Organization,
}

/// Who we are, and which accounts the organization has.
pub trait AccountDirectory: Send + Sync {
    fn this_account(&self) -> impl Future<Output = Result<String, PortError>> + Send;
    /// Every ACTIVE account of the organization.
    fn organization_accounts(&self) -> impl Future<Output = Result<Vec<String>, PortError>> + Send;
    /// Account names by id, as far as the directory has learnt them
    /// (listing the organization gives them); empty when unknown. Never a
    /// call of its own: a report of one account needs no Organizations
    /// permission for its name.
    fn account_names(&self) -> BTreeMap<String, String> {
        BTreeMap::new()
    }
}

/// What the report asks of the ledger: the records of a key's grants (who
/// created them, when, from where; the DynamoDB ledger answers with one
/// Query on `GRANT#<key ARN>`), and grantwatch's own bookkeeping (the
/// deployment time, the hashes of stored report files). Without a ledger
/// ([`NoProvenance`]) nothing is known: no grant is `unseen-by-watcher`
/// and stored reports are not verified.
pub trait Provenance: Send + Sync {
    fn grant_records(
        &self,
        key_arn: &str,
    ) -> impl Future<Output = Result<Vec<GrantRecord>, PortError>> + Send;

    /// The stack's deployment time (epoch ms): recorded by the watcher's
    /// first cold start; recorded now (`now_ms`) if absent. `None`: no ledger.
    fn deployed_at(
        &self,
        _now_ms: i64,
    ) -> impl Future<Output = Result<Option<i64>, PortError>> + Send {
        async { Ok(None) }
    }

    /// Stored report files' SHA-256 by location. `None`: no ledger, so
    /// nothing to verify against.
    fn report_files(
        &self,
    ) -> impl Future<Output = Result<Option<BTreeMap<String, String>>, PortError>> + Send {
        async { Ok(None) }
    }

    /// Record a stored report file's SHA-256 (no-op without a ledger).
    fn record_report_file(
        &self,
        _location: &str,
        _sha256: &str,
    ) -> impl Future<Output = Result<(), PortError>> + Send {
        async { Ok(()) }
    }
}

/// A previously stored report.json.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    /// Where it is (an S3 key, a file path).
    pub location: String,
    pub body: Vec<u8>,
}

/// Where report files go.
pub trait ReportStore: Send + Sync {
    /// Store one file of the report dated `date` (`YYYY-MM-DD`); returns its
    /// location (e.g. `reports/2026-11-28/report.html`).
    fn put(
        &self,
        date: &str,
        file_name: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> impl Future<Output = Result<String, PortError>> + Send;

    /// Store one file given as chunks, in order (rendered a piece at a
    /// time, so no whole body need be held); returns its location. An `Err`
    /// chunk fails the store and nothing is left under the name (S3: the
    /// multipart upload is aborted). Default: the chunks joined into one
    /// [`put`](Self::put).
    fn put_chunks<C>(
        &self,
        date: &str,
        file_name: &str,
        chunks: C,
        content_type: &str,
    ) -> impl Future<Output = Result<String, PortError>> + Send
    where
        C: Iterator<Item = Result<Vec<u8>, PortError>> + Send,
    {
        async move {
            let mut body = Vec::new();
            for chunk in chunks {
                body.extend(chunk?);
            }
            self.put(date, file_name, body, content_type).await
        }
    }

    /// Up to `limit` stored `report.json` bodies, newest first.
    fn recent_reports(
        &self,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<StoredReport>, PortError>> + Send;

    /// The `index`-th newest stored `report.json` (0: the newest), so
    /// reports can be read one at a time. Default: through
    /// [`recent_reports`](Self::recent_reports).
    fn recent_report(
        &self,
        index: usize,
    ) -> impl Future<Output = Result<Option<StoredReport>, PortError>> + Send {
        async move { Ok(self.recent_reports(index + 1).await?.into_iter().nth(index)) }
    }

    /// A link a reviewer can open (a presigned GET for S3, a file path
    /// locally).
    fn link(&self, location: &str) -> impl Future<Output = Result<String, PortError>> + Send;
}

/// No ledger configured: nothing is known about who created a grant.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProvenance;

impl Provenance for NoProvenance {
    async fn grant_records(&self, _key_arn: &str) -> Result<Vec<GrantRecord>, PortError> {
        Ok(Vec::new())
    }
}

/// An optional ledger: `None` knows nothing.
impl<P: Provenance> Provenance for Option<P> {
    async fn grant_records(&self, key_arn: &str) -> Result<Vec<GrantRecord>, PortError> {
        match self {
            Some(p) => p.grant_records(key_arn).await,
            None => Ok(Vec::new()),
        }
    }

    async fn deployed_at(&self, now_ms: i64) -> Result<Option<i64>, PortError> {
        match self {
            Some(p) => p.deployed_at(now_ms).await,
            None => Ok(None),
        }
    }

    async fn report_files(&self) -> Result<Option<BTreeMap<String, String>>, PortError> {
        match self {
            Some(p) => p.report_files().await,
            None => Ok(None),
        }
    }

    async fn record_report_file(&self, location: &str, sha256: &str) -> Result<(), PortError> {
        match self {
            Some(p) => p.record_report_file(location, sha256).await,
            None => Ok(()),
        }
    }
}

/// The watcher's ledger as the report's provenance: the records of a key's
/// grants only (one Query on `GRANT#<key ARN>`). For `grantwatch report`
/// and `explain`, which write nothing to the ledger and keep their files
/// elsewhere.
pub struct LedgerProvenance<'a, L>(pub &'a L);

impl<L: GrantLedger> Provenance for LedgerProvenance<'_, L> {
    async fn grant_records(&self, key_arn: &str) -> Result<Vec<GrantRecord>, PortError> {
        self.0.grants_of_key(key_arn).await
    }
}

/// The watcher's ledger as the deployed report sees it: the records of a
/// key's grants, and grantwatch's bookkeeping (`STACK`/`DEPLOYED`, the
/// `REPORT` hashes of the files it stores), so the report reconciles and
/// verifies previous reports.
pub struct StackProvenance<'a, L>(pub &'a L);

impl<L: GrantLedger + StackLedger> Provenance for StackProvenance<'_, L> {
    async fn grant_records(&self, key_arn: &str) -> Result<Vec<GrantRecord>, PortError> {
        self.0.grants_of_key(key_arn).await
    }

    async fn deployed_at(&self, now_ms: i64) -> Result<Option<i64>, PortError> {
        match self.0.deployed_at().await? {
            Some(at) => Ok(Some(at)),
            None => self.0.record_deployed(now_ms).await.map(Some),
        }
    }

    async fn report_files(&self) -> Result<Option<BTreeMap<String, String>>, PortError> {
        self.0.report_files().await.map(Some)
    }

    async fn record_report_file(&self, location: &str, sha256: &str) -> Result<(), PortError> {
        self.0.record_report_file(location, sha256).await
    }
}

/// In-memory implementations of the ports, for tests and the CLI's local
/// store.
pub mod fake {
    use super::*;
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    /// One account-region's contents, or the error every call there gives.
    #[derive(Debug, Clone, Default)]
    pub struct FakeRegion {
        pub keys: Vec<KeyDescription>,
        pub aliases: Vec<AliasEntry>,
        /// Grants by key id.
        pub grants: BTreeMap<String, Vec<ListedGrant>>,
        /// Every call in this account-region fails with this.
        pub region_error: Option<ReadError>,
        /// Calls on these key ids fail with the given error.
        pub key_errors: BTreeMap<String, ReadError>,
        /// Key policies by key id; a key without one has a policy with no
        /// statement that opens CreateGrant (`{"Statement": []}`).
        pub policies: BTreeMap<String, String>,
        /// Tags by key id.
        pub tags: BTreeMap<String, Vec<KeyTag>>,
        /// GetKeyPolicy and ListResourceTags (only) on these key ids fail
        /// with the given error.
        pub detail_errors: BTreeMap<String, ReadError>,
    }

    /// An inventory held in memory that pages like KMS (`page_size` items
    /// per page) and counts calls.
    #[derive(Debug, Default)]
    pub struct FakeInventory {
        pub regions: BTreeMap<AccountRegion, FakeRegion>,
        pub page_size: usize,
        pub calls: Mutex<Vec<String>>,
    }

    impl FakeInventory {
        pub fn new(page_size: usize) -> Self {
            FakeInventory {
                page_size: page_size.max(1),
                ..Default::default()
            }
        }

        pub fn call_count(&self, prefix: &str) -> usize {
            self.calls
                .lock()
                .map(|c| c.iter().filter(|n| n.starts_with(prefix)).count())
                .unwrap_or(0)
        }

        fn record(&self, call: String) {
            if let Ok(mut calls) = self.calls.lock() {
                calls.push(call);
            }
        }

        fn region(&self, at: &AccountRegion) -> Result<&FakeRegion, ReadError> {
            let region = self
                .regions
                .get(at)
                .ok_or_else(|| ReadError::AccessDenied(format!("no access to {at}")))?;
            match &region.region_error {
                Some(e) => Err(e.clone()),
                None => Ok(region),
            }
        }

        /// The region of a key whose policy and tags can be read.
        fn key_details(&self, at: &AccountRegion, key_id: &str) -> Result<&FakeRegion, ReadError> {
            let region = self.region(at)?;
            match region
                .key_errors
                .get(key_id)
                .or_else(|| region.detail_errors.get(key_id))
            {
                Some(e) => Err(e.clone()),
                None => Ok(region),
            }
        }

        fn page<T: Clone>(
            &self,
            items: &[T],
            marker: Option<String>,
        ) -> Result<Page<T>, ReadError> {
            let start = match marker {
                None => 0,
                Some(m) => m.parse::<usize>().map_err(|_| {
                    ReadError::Failed(PortError::Permanent(format!("bad marker {m}")))
                })?,
            };
            let end = (start + self.page_size).min(items.len());
            let items_page = items.get(start..end).unwrap_or_default().to_vec();
            Ok(Page {
                items: items_page,
                next_marker: (end < items.len()).then(|| end.to_string()),
            })
        }
    }

    impl Inventory for FakeInventory {
        async fn list_keys(
            &self,
            at: &AccountRegion,
            marker: Option<String>,
        ) -> Result<Page<ListedKey>, ReadError> {
            self.record(format!("ListKeys {at}"));
            let region = self.region(at)?;
            let keys: Vec<ListedKey> = region
                .keys
                .iter()
                .map(|k| ListedKey {
                    key_id: k.key_id.clone(),
                    key_arn: k.key_arn.clone(),
                })
                .collect();
            self.page(&keys, marker)
        }

        async fn describe_key(
            &self,
            at: &AccountRegion,
            key_id: &str,
        ) -> Result<KeyDescription, ReadError> {
            self.record(format!("DescribeKey {at} {key_id}"));
            let region = self.region(at)?;
            if let Some(e) = region.key_errors.get(key_id) {
                return Err(e.clone());
            }
            region
                .keys
                .iter()
                .find(|k| k.key_id == key_id)
                .cloned()
                .ok_or_else(|| ReadError::NotFound(key_id.to_string()))
        }

        async fn list_aliases(
            &self,
            at: &AccountRegion,
            marker: Option<String>,
        ) -> Result<Page<AliasEntry>, ReadError> {
            self.record(format!("ListAliases {at}"));
            let region = self.region(at)?;
            self.page(&region.aliases, marker)
        }

        async fn key_policy(&self, at: &AccountRegion, key_id: &str) -> Result<String, ReadError> {
            self.record(format!("GetKeyPolicy {at} {key_id}"));
            let region = self.key_details(at, key_id)?;
            Ok(region
                .policies
                .get(key_id)
                .cloned()
                .unwrap_or_else(|| r#"{"Statement": []}"#.to_string()))
        }

        async fn list_resource_tags(
            &self,
            at: &AccountRegion,
            key_id: &str,
            marker: Option<String>,
        ) -> Result<Page<KeyTag>, ReadError> {
            self.record(format!("ListResourceTags {at} {key_id}"));
            let region = self.key_details(at, key_id)?;
            let tags = region.tags.get(key_id).cloned().unwrap_or_default();
            self.page(&tags, marker)
        }

        async fn list_grants(
            &self,
            at: &AccountRegion,
            key_id: &str,
            marker: Option<String>,
        ) -> Result<Page<ListedGrant>, ReadError> {
            self.record(format!("ListGrants {at} {key_id}"));
            let region = self.region(at)?;
            if let Some(e) = region.key_errors.get(key_id) {
                return Err(e.clone());
            }
            let grants = region.grants.get(key_id).cloned().unwrap_or_default();
            self.page(&grants, marker)
        }
    }

    /// A fixed account directory.
    #[derive(Debug, Clone, Default)]
    pub struct FakeDirectory {
        pub this_account: String,
        pub organization: Vec<String>,
    }

    impl AccountDirectory for FakeDirectory {
        async fn this_account(&self) -> Result<String, PortError> {
            Ok(self.this_account.clone())
        }
        async fn organization_accounts(&self) -> Result<Vec<String>, PortError> {
            Ok(self.organization.clone())
        }
    }

    /// Ledger records by key ARN.
    #[derive(Debug, Clone, Default)]
    pub struct FakeProvenance {
        pub records: BTreeMap<String, Vec<GrantRecord>>,
    }

    impl Provenance for FakeProvenance {
        async fn grant_records(&self, key_arn: &str) -> Result<Vec<GrantRecord>, PortError> {
            Ok(self.records.get(key_arn).cloned().unwrap_or_default())
        }
    }

    /// A report store in memory: files by `date/file_name`.
    #[derive(Debug, Default)]
    pub struct MemoryStore {
        pub files: Mutex<BTreeMap<String, Vec<u8>>>,
    }

    impl MemoryStore {
        pub fn get(&self, location: &str) -> Option<Vec<u8>> {
            self.files.lock().ok()?.get(location).cloned()
        }
    }

    impl ReportStore for MemoryStore {
        async fn put(
            &self,
            date: &str,
            file_name: &str,
            body: Vec<u8>,
            _content_type: &str,
        ) -> Result<String, PortError> {
            let location = format!("reports/{date}/{file_name}");
            self.files
                .lock()
                .map_err(|_| PortError::Permanent("store lock poisoned".into()))?
                .insert(location.clone(), body);
            Ok(location)
        }

        async fn recent_reports(&self, limit: usize) -> Result<Vec<StoredReport>, PortError> {
            let files = self
                .files
                .lock()
                .map_err(|_| PortError::Permanent("store lock poisoned".into()))?;
            Ok(files
                .iter()
                .rev()
                .filter(|(k, _)| k.ends_with("/report.json"))
                .take(limit)
                .map(|(k, v)| StoredReport {
                    location: k.clone(),
                    body: v.clone(),
                })
                .collect())
        }

        async fn link(&self, location: &str) -> Result<String, PortError> {
            Ok(format!("memory://{location}"))
        }
    }
}
