//! The report model: what `report.json` holds (schema in
//! `docs/report.schema.json`, fields in `docs/report.md`).
//!
//! Every struct reads back old reports leniently (`serde(default)`), so the
//! diff and the trend work across schema versions.

use crate::grant::{Constraints, Operation};
use crate::ports::inventory::KeyManager;
use crate::verdict::{Finding, Origin, Severity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Bump on an incompatible change to `report.json`; adding optional fields
/// does not need a bump.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub schema_version: u32,
    /// RFC 3339, UTC.
    pub generated_at: String,
    /// Some account-region or key could not be read completely: see
    /// `coverage`.
    pub partial: bool,
    pub scope: ReportScope,
    pub coverage: Coverage,
    pub summary: Summary,
    pub keys: Vec<KeyReport>,
    /// Against the previous report in the store; `None` for the first one.
    #[serde(default)]
    pub diff: Option<Diff>,
    /// Past reports' headline counts, oldest first, this report last.
    #[serde(default)]
    pub trend: Vec<TrendPoint>,
    /// What the watcher missed, from the ledger; `None` without a ledger.
    #[serde(default)]
    pub reconciliation: Option<Reconciliation>,
    /// Whether the stored previous reports are the ones grantwatch wrote;
    /// `None` without a ledger (nothing to verify against).
    #[serde(default)]
    pub integrity: Option<Integrity>,
    /// Rules that expire within 14 days of the report, soonest first.
    #[serde(default)]
    pub expiring_rules: Vec<ExpiringRule>,
}

/// A rule that stops matching soon (`rules check` warns about it too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpiringRule {
    pub id: String,
    /// `YYYY-MM-DD`: the last day it applies.
    pub expires: String,
    pub reason: String,
}

impl ExpiringRule {
    /// The rules of `rules` that expire within 14 days of `today`, soonest
    /// first.
    pub fn of(rules: &crate::rules::RuleSet, today: time::Date) -> Vec<ExpiringRule> {
        let mut soon: Vec<&crate::rules::Rule> = rules.expiring_soon(today).collect();
        soon.sort_by_key(|r| r.expires);
        soon.into_iter()
            .map(|r| ExpiringRule {
                id: r.id.clone(),
                expires: r.expires.map(crate::rules::format_date).unwrap_or_default(),
                reason: r.reason.clone(),
            })
            .collect()
    }
}

/// The report against the ledger: grants and account-regions the watcher
/// never heard of.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Reconciliation {
    /// When the stack was deployed (RFC 3339): grants created before it are
    /// never `unseen-by-watcher`.
    pub deployed_at: String,
    /// The period checked for silent account-regions: from the previous
    /// report (or deployment, or 7 days back) ...
    pub period_start: String,
    /// ... to 15 minutes before this report (an event's delivery time).
    pub period_end: String,
    /// Grants carrying `unseen-by-watcher`.
    pub unseen_by_watcher: usize,
    /// In-scope account-regions where ListGrants shows grants created in
    /// the period but the ledger holds no event from them.
    pub silent_account_regions: Vec<SilentAccountRegion>,
    /// The ledger could not be read: nothing was reconciled (the report is
    /// partial).
    #[serde(default)]
    pub unchecked: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SilentAccountRegion {
    pub account: String,
    pub region: String,
    /// Grants ListGrants dates inside the period.
    pub grants_created: usize,
}

/// The check of the stored previous reports against the SHA-256 the
/// ledger recorded when each was stored.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Integrity {
    /// The previous report the diff and the trend used (its hash matched,
    /// or the ledger held no hashes yet); `None`: no usable one.
    pub previous: Option<String>,
    /// `pipeline-tampered` (critical): a stored report that does not match
    /// its hash or that grantwatch never recorded.
    pub findings: Vec<Finding>,
    /// The hashes could not be read: nothing was verified and no previous
    /// report was used.
    #[serde(default)]
    pub unverified: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ReportScope {
    pub accounts: Vec<String>,
    pub regions: Vec<String>,
    /// The accounts came from the AWS Organization.
    #[serde(default)]
    pub organization: bool,
    /// Account names by id, where known (from the organization's listing);
    /// set by AWS account owners, so escaped and cut wherever shown.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub account_names: BTreeMap<String, String>,
}

impl ReportScope {
    /// The account's name, if known.
    pub fn account_name(&self, account: &str) -> Option<&str> {
        self.account_names.get(account).map(String::as_str)
    }
}

/// Why something is missing from the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum GapReason {
    AccessDenied,
    Throttled,
    PendingDeletion,
    InvalidState,
    NotFound,
    /// The invocation's deadline came first.
    Deadline,
    Error,
}

impl GapReason {
    pub fn as_str(self) -> &'static str {
        match self {
            GapReason::AccessDenied => "access-denied",
            GapReason::Throttled => "throttled",
            GapReason::PendingDeletion => "pending-deletion",
            GapReason::InvalidState => "invalid-state",
            GapReason::NotFound => "not-found",
            GapReason::Deadline => "deadline",
            GapReason::Error => "error",
        }
    }
}

/// How far one account-region was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CoverageStatus {
    /// Every key and every grant page was read.
    Complete,
    /// Some keys or grant pages are missing (see `gaps`).
    Partial,
    /// Nothing could be listed.
    Unread,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountRegionCoverage {
    pub account: String,
    pub region: String,
    pub status: CoverageStatus,
    /// Keys ListKeys returned (as far as it got).
    pub keys_listed: usize,
    /// Keys whose grants were read completely.
    pub keys_complete: usize,
    pub grants: usize,
}

/// What of a key could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UnreadPart {
    /// The key or its grants (the key is not complete).
    #[default]
    Grants,
    /// Its key policy: its posture (`create-grant-open`) is unknown.
    KeyPolicy,
    /// Its tags: `key_tags` rules cannot match it.
    Tags,
}

/// Something that could not be read: a whole account-region
/// (`key_arn: None`) or one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CoverageGap {
    pub account: String,
    pub region: String,
    #[serde(default)]
    pub key_arn: Option<String>,
    /// What of the key is missing (`grants` for an account-region).
    #[serde(default)]
    pub unread: UnreadPart,
    pub reason: GapReason,
    /// The error as AWS gave it (untrusted text: writers escape it).
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Coverage {
    pub account_regions: Vec<AccountRegionCoverage>,
    pub gaps: Vec<CoverageGap>,
}

impl Coverage {
    /// True when the key's grants were read completely (its policy or
    /// tags may still be missing).
    pub fn key_complete(&self, key_arn: &str) -> bool {
        !self
            .gaps
            .iter()
            .any(|g| g.key_arn.as_deref() == Some(key_arn) && g.unread == UnreadPart::Grants)
    }

    /// True when the account-region was read completely.
    pub fn account_region_complete(&self, account: &str, region: &str) -> bool {
        self.account_regions.iter().any(|c| {
            c.account == account && c.region == region && c.status == CoverageStatus::Complete
        })
    }
}

/// Headline counts.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    pub keys: usize,
    #[serde(default)]
    pub keys_aws_managed: usize,
    #[serde(default)]
    pub keys_customer_managed: usize,
    pub grants: usize,
    /// `service` / `manual` / `unknown` → grants.
    pub by_origin: BTreeMap<String, usize>,
    /// Service name (`lambda`, `ebs`, ...) or `none` → grants.
    pub by_service: BTreeMap<String, usize>,
    /// Severity → grants (every severity present, zeros included).
    pub by_severity: BTreeMap<String, usize>,
    /// Finding code → grants carrying it.
    #[serde(default)]
    pub by_finding: BTreeMap<String, usize>,
    /// Grants at medium or above and not suppressed.
    #[serde(default)]
    pub risky: usize,
    /// Keys whose own findings (`create-grant-open`) are at medium or
    /// above and not suppressed.
    #[serde(default)]
    pub risky_keys: usize,
    /// `None` without a previous report.
    #[serde(default)]
    pub new_grants: Option<usize>,
    #[serde(default)]
    pub removed_grants: Option<usize>,
    #[serde(default)]
    pub severity_changes: Option<usize>,
    pub coverage_gaps: usize,
    /// Account-regions listed in `reconciliation.silent_account_regions`.
    #[serde(default)]
    pub silent_account_regions: usize,
    /// `pipeline-tampered` findings in `integrity`.
    #[serde(default)]
    pub pipeline_tampered: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyReport {
    pub account: String,
    pub region: String,
    pub key_id: String,
    pub key_arn: String,
    pub aliases: Vec<String>,
    /// `AWS` or `CUSTOMER`; `None` if DescribeKey could not be read.
    pub manager: Option<KeyManager>,
    pub state: Option<String>,
    pub key_spec: Option<String>,
    #[serde(default)]
    pub key_usage: Option<String>,
    #[serde(default)]
    pub multi_region: Option<bool>,
    /// The key's grants were read completely.
    #[serde(default = "yes")]
    pub complete: bool,
    pub grants: Vec<GrantReport>,
    /// DescribeKey's description (untrusted text: writers escape it).
    #[serde(default)]
    pub description: Option<String>,
    /// Its tags (customer managed keys; AWS managed keys have none).
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Findings about the key itself (`create-grant-open`), after the
    /// rules: see `severity` and `suppressed_by`.
    #[serde(default)]
    pub findings: Vec<Finding>,
    /// The key's own severity (`info` without findings).
    #[serde(default = "info")]
    pub severity: Severity,
    #[serde(default)]
    pub suppressed_by: Option<String>,
}

/// At most this many characters of a key's description, and of each tag
/// key and value, in report.html and summary.md (report.json keeps them
/// whole).
pub const KEY_TEXT_MAX: usize = 60;
/// At most this many tags in a key's details line.
pub const KEY_TAGS_SHOWN: usize = 4;

impl KeyReport {
    /// The key's description and tags in one line, cut to size, for the
    /// writers (which escape it): `Payments DB · env=prod, team=pay (+2
    /// tags)`. `None` when the key has neither.
    pub fn details_line(&self) -> Option<String> {
        let cut = |s: &str| crate::render::plain::one_line(s, KEY_TEXT_MAX);
        let mut parts = Vec::new();
        if let Some(d) = self.description.as_deref().filter(|d| !d.trim().is_empty()) {
            parts.push(cut(d));
        }
        if !self.tags.is_empty() {
            let mut tags = self
                .tags
                .iter()
                .take(KEY_TAGS_SHOWN)
                .map(|(k, v)| format!("{}={}", cut(k), cut(v)))
                .collect::<Vec<_>>()
                .join(", ");
            if self.tags.len() > KEY_TAGS_SHOWN {
                tags.push_str(&format!(" (+{} tags)", self.tags.len() - KEY_TAGS_SHOWN));
            }
            parts.push(tags);
        }
        (!parts.is_empty()).then(|| parts.join(" · "))
    }

    /// The key's own findings are worth a reviewer's attention.
    pub fn is_risky(&self) -> bool {
        self.suppressed_by.is_none() && self.severity >= Severity::Medium
    }
}

fn yes() -> bool {
    true
}

fn info() -> Severity {
    Severity::Info
}

/// Who created a grant, from the ledger.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct CreatedBy {
    pub arn: Option<String>,
    #[serde(rename = "type")]
    pub identity_type: Option<String>,
    pub invoked_by: Option<String>,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    pub at: Option<String>,
    pub event_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantReport {
    pub grant_id: String,
    pub name: Option<String>,
    /// Effective grantee (the service principal when one is given).
    pub grantee: Option<String>,
    pub retiring_principal: Option<String>,
    pub operations: Vec<Operation>,
    pub constraints: Option<Constraints>,
    /// `CreationDate` from ListGrants, else the ledger's creation time.
    pub created: Option<String>,
    #[serde(default)]
    pub issuing_account: Option<String>,
    pub origin: Origin,
    pub service: Option<String>,
    #[serde(default)]
    pub evidence: Vec<String>,
    pub severity: Severity,
    pub findings: Vec<Finding>,
    pub suppressed_by: Option<String>,
    /// `None` when the ledger never saw the CreateGrant.
    pub created_by: Option<CreatedBy>,
}

impl GrantReport {
    /// Worth a reviewer's attention: medium or above, not suppressed.
    pub fn is_risky(&self) -> bool {
        self.suppressed_by.is_none() && self.severity >= Severity::Medium
    }
}

/// A grant named in the diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRef {
    pub account: String,
    pub region: String,
    pub key_arn: String,
    pub grant_id: String,
    pub name: Option<String>,
    pub grantee: Option<String>,
    pub origin: Origin,
    pub service: Option<String>,
    pub severity: Severity,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeverityChange {
    pub grant: GrantRef,
    pub from: Severity,
    pub to: Severity,
}

/// What changed since the previous report. Removals count only on keys
/// read completely this time (a gap is not a removal).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Diff {
    pub previous_generated_at: String,
    #[serde(default)]
    pub previous_partial: bool,
    pub new_grants: Vec<GrantRef>,
    pub removed_grants: Vec<GrantRef>,
    pub severity_changes: Vec<SeverityChange>,
}

/// One report's headline counts, for the trend chart.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TrendPoint {
    pub generated_at: String,
    pub grants: usize,
    #[serde(default)]
    pub risky: usize,
    #[serde(default)]
    pub by_severity: BTreeMap<String, usize>,
    #[serde(default)]
    pub by_origin: BTreeMap<String, usize>,
    #[serde(default)]
    pub partial: bool,
}

impl Report {
    /// Every grant with its key, in report order.
    pub fn grants(&self) -> impl Iterator<Item = (&KeyReport, &GrantReport)> {
        self.keys
            .iter()
            .flat_map(|k| k.grants.iter().map(move |g| (k, g)))
    }

    pub fn trend_point(&self) -> TrendPoint {
        TrendPoint {
            generated_at: self.generated_at.clone(),
            grants: self.summary.grants,
            risky: self.summary.risky,
            by_severity: self.summary.by_severity.clone(),
            by_origin: self.summary.by_origin.clone(),
            partial: self.partial,
        }
    }

    /// The `YYYY-MM-DD` the report is filed under.
    pub fn date(&self) -> &str {
        self.generated_at.get(..10).unwrap_or(&self.generated_at)
    }

    /// Parse a stored report.json (any schema version this code can read).
    pub fn from_json(body: &[u8]) -> Result<Report, serde_json::Error> {
        serde_json::from_slice(body)
    }
}

impl GrantRef {
    pub fn of(key: &KeyReport, grant: &GrantReport) -> GrantRef {
        GrantRef {
            account: key.account.clone(),
            region: key.region.clone(),
            key_arn: key.key_arn.clone(),
            grant_id: grant.grant_id.clone(),
            name: grant.name.clone(),
            grantee: grant.grantee.clone(),
            origin: grant.origin,
            service: grant.service.clone(),
            severity: grant.severity,
        }
    }
}

/// Count a report's keys and grants into its summary (diff counts are
/// filled by [`super::diff::apply`]).
pub fn summarise(keys: &[KeyReport], coverage: &Coverage) -> Summary {
    let mut summary = Summary {
        keys: keys.len(),
        coverage_gaps: coverage.gaps.len(),
        ..Summary::default()
    };
    for sev in Severity::ALL {
        summary.by_severity.insert(sev.as_str().to_string(), 0);
    }
    for key in keys {
        match key.manager {
            Some(KeyManager::Aws) => summary.keys_aws_managed += 1,
            Some(KeyManager::Customer) => summary.keys_customer_managed += 1,
            None => {}
        }
        if key.is_risky() {
            summary.risky_keys += 1;
        }
        for grant in &key.grants {
            summary.grants += 1;
            *summary
                .by_origin
                .entry(grant.origin.as_str().to_string())
                .or_default() += 1;
            *summary
                .by_service
                .entry(grant.service.clone().unwrap_or_else(|| "none".to_string()))
                .or_default() += 1;
            *summary
                .by_severity
                .entry(grant.severity.as_str().to_string())
                .or_default() += 1;
            let mut codes: Vec<&str> = grant.findings.iter().map(|f| f.code.as_str()).collect();
            codes.sort_unstable();
            codes.dedup();
            for code in codes {
                *summary.by_finding.entry(code.to_string()).or_default() += 1;
            }
            if grant.is_risky() {
                summary.risky += 1;
            }
        }
    }
    summary
}
