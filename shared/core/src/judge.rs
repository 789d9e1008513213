//! The one judgement of a grant: origin + assessment + rules, used by the
//! watcher, `classify`, `backfill`, the report and `explain` alike.

use crate::event::{GrantAction, GrantEvent};
use crate::grant::GrantFacts;
use crate::origin::{self, OriginVerdict};
use crate::record::GrantRecord;
use crate::rules::{RuleAction, RuleSet, RuleSubject};
use crate::verdict::{Finding, Severity, Verdict};
use crate::{assess, principal};
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
    let (origin, findings, facts, removed_grant) = match (event.action, event.grant.as_ref()) {
        (GrantAction::CreateGrant, grant) => {
            let facts = grant.cloned().unwrap_or_default();
            let origin = origin::classify_grant(&facts, Some(&event.caller));
            let findings = assess::assess_create(event, &facts, &origin);
            (origin, findings, facts, None)
        }
        (_, _) => {
            let origin = origin::classify_call(&event.caller);
            let (findings, removed) = assess::assess_removal(event, &origin, known);
            let facts = known.map(|r| r.grant.clone()).unwrap_or_default();
            (origin, findings, facts, removed)
        }
    };
    let key_alias = event
        .key
        .as_deref()
        .and_then(principal::alias_name_of)
        .map(str::to_string);
    let key_arn = event
        .key_arn
        .clone()
        .or_else(|| known.map(|r| r.key_arn.clone()));
    // Rules match the grant: for a removal, the removed grant's service.
    let rule_service = match removed_grant.as_ref() {
        Some(removed) => removed.service.as_deref(),
        None => origin.service.as_deref(),
    };
    let subject = RuleSubject {
        grantee: facts.effective_grantee(),
        key: event.key.as_deref(),
        key_arn: key_arn.as_deref(),
        key_alias: key_alias.as_deref(),
        account: event.account.as_deref(),
        region: event.region.as_deref(),
        origin: origin.origin,
        service: rule_service,
        operations: &facts.operations,
        constraints: facts.constraints.as_ref(),
    };
    let outcome = apply_rules(&findings, &subject, policy);
    let mut findings = findings;
    sort_findings(&mut findings);
    Verdict {
        event_id: event.event_id.clone(),
        event_name: event.action.as_str().to_string(),
        event_time: event.event_time.clone(),
        account: event.account.clone(),
        region: event.region.clone(),
        key: event.key.clone(),
        key_arn,
        key_alias,
        grant_id: if event.action == GrantAction::CreateGrant && !event.succeeded() {
            None
        } else {
            event.grant_id.clone()
        },
        grant_name: facts.name.clone(),
        actor: (&event.caller).into(),
        source_ip: event.caller.source_ip.clone(),
        user_agent: event.caller.user_agent.clone(),
        grantee: facts.effective_grantee().map(str::to_string),
        retiring_principal: facts.effective_retiring_principal().map(str::to_string),
        operations: facts.operations.clone(),
        constraints: facts.constraints.clone(),
        origin: origin.origin,
        service: origin.service.clone(),
        evidence: origin.evidence.clone(),
        severity: outcome.severity,
        alert: outcome.alert,
        findings,
        suppressed_by: outcome.suppressed_by,
        rule_notes: outcome.notes,
        error_code: event.error_code.clone(),
        dry_run: event.dry_run,
        removed_grant,
    }
}

/// Judge a grant that exists now; `provenance` is the ledger's record of
/// its creation when known.
pub fn judge_standing(
    grant: &StandingGrant,
    provenance: Option<&GrantRecord>,
    policy: &Policy,
) -> Judgement {
    let origin = origin::classify_grant(&grant.facts, provenance.map(|p| &p.created_by));
    let mut findings = assess::assess_standing(grant, &origin, provenance);
    let subject = RuleSubject {
        grantee: grant.facts.effective_grantee(),
        key: Some(grant.key_arn.as_str()),
        key_arn: Some(grant.key_arn.as_str()),
        key_alias: None,
        account: Some(grant.account.as_str()),
        region: Some(grant.region.as_str()),
        origin: origin.origin,
        service: origin.service.as_deref(),
        operations: &grant.facts.operations,
        constraints: grant.facts.constraints.as_ref(),
    };
    let outcome = apply_rules(&findings, &subject, policy);
    sort_findings(&mut findings);
    Judgement {
        origin,
        findings,
        severity: outcome.severity,
        suppressed_by: outcome.suppressed_by,
        rule_notes: outcome.notes,
    }
}

/// Severity, alert and suppression after the rules.
struct RuleOutcome {
    severity: Severity,
    alert: bool,
    suppressed_by: Option<String>,
    notes: Vec<String>,
}

fn apply_rules(findings: &[Finding], subject: &RuleSubject<'_>, policy: &Policy) -> RuleOutcome {
    let severity = assess::worst_severity(findings);
    let matched = policy.rules.evaluate(subject, policy.today);
    let mut notes = matched.notes;
    let (severity, suppressed_by) = match matched.rule {
        None => (severity, None),
        Some(rule) => match rule.action {
            RuleAction::Suppress => {
                notes.push(format!("suppressed by rule {}: {}", rule.id, rule.reason));
                (severity, Some(rule.id.clone()))
            }
            RuleAction::Rerate(to) => {
                notes.push(format!(
                    "rule {} re-rated severity from {severity} to {to}: {}",
                    rule.id, rule.reason
                ));
                (to, None)
            }
        },
    };
    RuleOutcome {
        severity,
        alert: suppressed_by.is_none() && severity >= policy.min_alert_severity,
        suppressed_by,
        notes,
    }
}

/// Worst first, then by code: stable output for people and tests.
fn sort_findings(findings: &mut [Finding]) {
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.code.cmp(&b.code)));
}

impl Policy {
    /// No rules, alert from `medium`.
    pub fn new(today: time::Date) -> Policy {
        Policy {
            rules: RuleSet::default(),
            min_alert_severity: Severity::Medium,
            today,
        }
    }
}
