//! The one judgement of a grant: origin + assessment + rules, used by the
//! watcher, `classify`, `backfill`, the report and `explain` alike.

use crate::event::GrantEvent;
use crate::grant::GrantFacts;
use crate::origin::OriginVerdict;
use crate::record::GrantRecord;
use crate::rules::RuleSet;
use crate::verdict::{Finding, Severity, Verdict};
use serde::{Deserialize, Serialize};

/// How to judge: suppression rules, the alert threshold, and today's date
/// (for rule expiry).
#[derive(Debug, Clone)]
pub struct Policy {
    pub rules: RuleSet,
    pub min_alert_severity: Severity,
    pub today: time::Date,
}

/// A grant that exists now, as `ListGrants` shows it, with its key's
/// context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StandingGrant {
    pub account: String,
    pub region: String,
    pub key_arn: String,
    /// `SYMMETRIC_DEFAULT`, `RSA_2048`, `HMAC_256`, ... when known.
    pub key_spec: Option<String>,
    pub grant_id: String,
    /// `CreationDate` (moto leaves it out).
    pub created: Option<String>,
    /// `IssuingAccount` (moto leaves it out).
    pub issuing_account: Option<String>,
    pub facts: GrantFacts,
}

/// The judgement of a standing grant (report, explain).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Judgement {
    pub origin: OriginVerdict,
    pub findings: Vec<Finding>,
    pub severity: Severity,
    pub suppressed_by: Option<String>,
    pub rule_notes: Vec<String>,
}

/// Judge one grant event. `known` is the ledger's record of the grant, for
/// Retire/Revoke (what was removed).
pub fn judge_event(event: &GrantEvent, known: Option<&GrantRecord>, policy: &Policy) -> Verdict {
    let _ = (event, known, policy);
    unimplemented_verdict(event)
}

/// Judge a grant that exists now; `provenance` is the ledger's record of
/// its creation when known.
pub fn judge_standing(
    grant: &StandingGrant,
    provenance: Option<&GrantRecord>,
    policy: &Policy,
) -> Judgement {
    let _ = (grant, provenance, policy);
    Judgement {
        origin: OriginVerdict::unknown(),
        findings: Vec::new(),
        severity: Severity::Info,
        suppressed_by: None,
        rule_notes: Vec::new(),
    }
}

// Placeholder until the classifier lands (issue 2).
fn unimplemented_verdict(event: &GrantEvent) -> Verdict {
    let grant = event.grant.clone().unwrap_or_default();
    Verdict {
        event_id: event.event_id.clone(),
        event_name: event.action.as_str().to_string(),
        event_time: event.event_time.clone(),
        account: event.account.clone(),
        region: event.region.clone(),
        key: event.key.clone(),
        key_arn: event.key_arn.clone(),
        key_alias: None,
        grant_id: event.grant_id.clone(),
        grant_name: grant.name.clone(),
        actor: (&event.caller).into(),
        source_ip: event.caller.source_ip.clone(),
        user_agent: event.caller.user_agent.clone(),
        grantee: grant.effective_grantee().map(str::to_string),
        retiring_principal: grant.effective_retiring_principal().map(str::to_string),
        operations: grant.operations.clone(),
        constraints: grant.constraints.clone(),
        origin: crate::verdict::Origin::Unknown,
        service: None,
        evidence: Vec::new(),
        severity: Severity::Info,
        alert: false,
        findings: Vec::new(),
        suppressed_by: None,
        rule_notes: Vec::new(),
        error_code: event.error_code.clone(),
        dry_run: event.dry_run,
        removed_grant: None,
    }
}
