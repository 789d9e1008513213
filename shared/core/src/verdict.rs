//! The verdict on one grant event or standing grant: the CLI's JSON
//! contract, and what every renderer and the report read.

use crate::event::Caller;
use crate::grant::{Constraints, Operation};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 5] = [
        Severity::Info,
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|sev| sev.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown severity {s:?}: expected one of info, low, medium, high, critical")
            })
    }
}

/// Who really made a grant (or a removal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// An AWS service, on someone's behalf.
    Service,
    /// A person or workload, directly.
    Manual,
    /// The signals are insufficient.
    Unknown,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Service => "service",
            Origin::Manual => "manual",
            Origin::Unknown => "unknown",
        }
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Stable finding codes. The string form (kebab-case) is the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FindingCode {
    /// A person or workload created a grant: access no policy shows.
    ManualGrant,
    CrossAccountGrantee,
    CrossAccountCaller,
    AccountRootGrantee,
    ReDelegation,
    Unconstrained,
    EmptyConstraint,
    ConstraintNotApplicable,
    NoRetiringPrincipal,
    UniqueIdGrantee,
    DryRun,
    AccessDenied,
    /// The call failed with another error.
    FailedCall,
    UnknownOperation,
    ServiceContextByPerson,
    /// A person removed a grant a service created: a workload will break.
    ServiceGrantRemoved,
    /// A person removed a grant (not known to be a service's).
    GrantRemoved,
    /// A removed grant the ledger never saw: its origin is unknown.
    UnknownGrantRemoved,
    /// Report only: same key, grantee, operations and constraints.
    DuplicateGrant,
    /// Report only: a key near its grant quota.
    GrantCountHigh,
    /// Not enough signals to tell a service's grant from a person's.
    UnknownOrigin,
    /// A recognisable KMS grant event that could not be fully parsed: alerted with what is known.
    UnparseableEvent,
    /// A call that blinds or weakens grantwatch, on one of its own resources.
    PipelineTampered,
    /// CloudFormation changed grantwatch's own stack while deploying it.
    PipelineChangedByDeploy,
    /// A key was disabled, scheduled for deletion or lost its key material: its grants stop working.
    KeyDisabled,
    /// A key's policy was replaced.
    KeyPolicyChanged,
    /// A key was enabled again or its deletion cancelled.
    KeyRecovered,
    /// Report: a standing grant created after deployment that the watcher never saw.
    UnseenByWatcher,
    /// The key belongs to another account than the one the event came from.
    ForeignKey,
    /// Many grants to one grantee on one key in a short time.
    GrantBurst,
    /// A grant re-created soon after its removal.
    GrantPersistence,
    /// A principal granted itself.
    SelfGrant,
    /// The grant allows every operation of its kind.
    OverBroad,
    /// Report: the key policy lets others call CreateGrant without kms:GrantIsForAWSResource.
    CreateGrantOpen,
    /// Unforgeable evidence of an AWS service grantwatch has no profile for: recorded at low.
    UnprofiledService,
}

impl FindingCode {
    pub fn as_str(self) -> &'static str {
        match self {
            FindingCode::ManualGrant => "manual-grant",
            FindingCode::CrossAccountGrantee => "cross-account-grantee",
            FindingCode::CrossAccountCaller => "cross-account-caller",
            FindingCode::AccountRootGrantee => "account-root-grantee",
            FindingCode::ReDelegation => "re-delegation",
            FindingCode::Unconstrained => "unconstrained",
            FindingCode::EmptyConstraint => "empty-constraint",
            FindingCode::ConstraintNotApplicable => "constraint-not-applicable",
            FindingCode::NoRetiringPrincipal => "no-retiring-principal",
            FindingCode::UniqueIdGrantee => "unique-id-grantee",
            FindingCode::DryRun => "dry-run",
            FindingCode::AccessDenied => "access-denied",
            FindingCode::FailedCall => "failed-call",
            FindingCode::UnknownOperation => "unknown-operation",
            FindingCode::ServiceContextByPerson => "service-context-by-person",
            FindingCode::ServiceGrantRemoved => "service-grant-removed",
            FindingCode::GrantRemoved => "grant-removed",
            FindingCode::UnknownGrantRemoved => "unknown-grant-removed",
            FindingCode::DuplicateGrant => "duplicate-grant",
            FindingCode::GrantCountHigh => "grant-count-high",
            FindingCode::UnknownOrigin => "unknown-origin",
            FindingCode::UnparseableEvent => "unparseable-event",
            FindingCode::PipelineTampered => "pipeline-tampered",
            FindingCode::PipelineChangedByDeploy => "pipeline-changed-by-deploy",
            FindingCode::KeyDisabled => "key-disabled",
            FindingCode::KeyPolicyChanged => "key-policy-changed",
            FindingCode::KeyRecovered => "key-recovered",
            FindingCode::UnseenByWatcher => "unseen-by-watcher",
            FindingCode::ForeignKey => "foreign-key",
            FindingCode::GrantBurst => "grant-burst",
            FindingCode::GrantPersistence => "grant-persistence",
            FindingCode::SelfGrant => "self-grant",
            FindingCode::OverBroad => "over-broad",
            FindingCode::CreateGrantOpen => "create-grant-open",
            FindingCode::UnprofiledService => "unprofiled-service",
        }
    }
}

impl FindingCode {
    pub const ALL: [FindingCode; 35] = [
        FindingCode::ManualGrant,
        FindingCode::CrossAccountGrantee,
        FindingCode::CrossAccountCaller,
        FindingCode::AccountRootGrantee,
        FindingCode::ReDelegation,
        FindingCode::Unconstrained,
        FindingCode::EmptyConstraint,
        FindingCode::ConstraintNotApplicable,
        FindingCode::NoRetiringPrincipal,
        FindingCode::UniqueIdGrantee,
        FindingCode::DryRun,
        FindingCode::AccessDenied,
        FindingCode::FailedCall,
        FindingCode::UnknownOperation,
        FindingCode::ServiceContextByPerson,
        FindingCode::ServiceGrantRemoved,
        FindingCode::GrantRemoved,
        FindingCode::UnknownGrantRemoved,
        FindingCode::DuplicateGrant,
        FindingCode::GrantCountHigh,
        FindingCode::UnknownOrigin,
        FindingCode::UnparseableEvent,
        FindingCode::PipelineTampered,
        FindingCode::PipelineChangedByDeploy,
        FindingCode::KeyDisabled,
        FindingCode::KeyPolicyChanged,
        FindingCode::KeyRecovered,
        FindingCode::UnseenByWatcher,
        FindingCode::ForeignKey,
        FindingCode::GrantBurst,
        FindingCode::GrantPersistence,
        FindingCode::SelfGrant,
        FindingCode::OverBroad,
        FindingCode::CreateGrantOpen,
        FindingCode::UnprofiledService,
    ];
}

impl fmt::Display for FindingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Longest piece of event data quoted in a finding message or an evidence
/// line: they are one-liners; renderers escape and truncate again.
pub const MAX_QUOTED_CHARS: usize = 200;

/// Quote untrusted event data in a message: at most
/// [`MAX_QUOTED_CHARS`] characters, line breaks flattened.
pub fn quote(s: &str) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_QUOTED_CHARS + 1)
        .collect();
    if flat.chars().count() > MAX_QUOTED_CHARS {
        format!(
            "{}…",
            flat.chars().take(MAX_QUOTED_CHARS).collect::<String>()
        )
    } else {
        flat
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub code: FindingCode,
    pub severity: Severity,
    /// One line a security engineer understands. May quote event data:
    /// renderers escape it.
    pub message: String,
}

/// The actor block of the CLI contract.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActorView {
    pub arn: Option<String>,
    #[serde(rename = "type")]
    pub identity_type: Option<String>,
    pub account: Option<String>,
    pub invoked_by: Option<String>,
}

impl From<&Caller> for ActorView {
    fn from(c: &Caller) -> Self {
        ActorView {
            arn: c.arn.clone(),
            identity_type: c.identity_type.clone(),
            account: c.account.clone(),
            invoked_by: c.invoked_by.clone(),
        }
    }
}

/// For a RetireGrant/RevokeGrant: what the removed grant was, when the
/// ledger knew it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedGrant {
    /// Origin of the grant's creation (not of its removal).
    pub origin: Origin,
    pub service: Option<String>,
    /// Who created it (ARN), when, by which event.
    pub created_by: Option<String>,
    pub created_at: Option<String>,
    pub created_event_id: Option<String>,
    /// The resource that depends on the grant (e.g. a Lambda function ARN,
    /// an EBS volume), when the constraints name one.
    pub dependent_resource: Option<String>,
    /// What will break and how to repair it, for service grants.
    pub impact: Option<String>,
}

/// The verdict on one grant event. Field names are the CLI contract
/// (`grantwatch classify`); add fields, never rename them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub event_id: String,
    pub event_name: String,
    pub event_time: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    /// The key as given in the event.
    pub key: Option<String>,
    pub key_arn: Option<String>,
    /// An alias of the key (`alias/payments`), when the event named one or
    /// the watcher looked it up.
    #[serde(default)]
    pub key_alias: Option<String>,
    /// Null when the call failed.
    pub grant_id: Option<String>,
    pub grant_name: Option<String>,
    pub actor: ActorView,
    pub source_ip: Option<String>,
    pub user_agent: Option<String>,
    /// The effective grantee (service principal when given).
    pub grantee: Option<String>,
    pub retiring_principal: Option<String>,
    pub operations: Vec<Operation>,
    pub constraints: Option<Constraints>,
    /// Who made this call: for CreateGrant, who made the grant; for
    /// Retire/Revoke, who removed it.
    pub origin: Origin,
    pub service: Option<String>,
    pub evidence: Vec<String>,
    pub severity: Severity,
    pub alert: bool,
    pub findings: Vec<Finding>,
    pub suppressed_by: Option<String>,
    /// Why a matching rule did not apply (expired), if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rule_notes: Vec<String>,
    pub error_code: Option<String>,
    pub dry_run: bool,
    /// Retire/Revoke only: what the removed grant was, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removed_grant: Option<RemovedGrant>,
}
