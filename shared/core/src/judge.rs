//! The one judgement of a grant: origin + assessment + rules, used by the
//! watcher, `classify`, `backfill`, the report and `explain` alike.

use crate::correlate::{self, CorrelationSettings};
use crate::event::{GrantAction, GrantEvent};
use crate::origin::{self, OriginVerdict};
use crate::record::GrantRecord;
use crate::rules::{RuleAction, RuleSet, RuleSubject};
use crate::trust::TrustZone;
use crate::verdict::{Finding, FindingCode, Severity, Verdict};
use crate::{assess, principal};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How to judge: suppression rules, the alert threshold, today's date
/// (for rule expiry) and the trust zone. Every entry point (watcher,
/// report, `classify`, `explain`, `report`, `backfill`, `redrive`) builds
/// it from the same settings (`MIN_ALERT_SEVERITY`, `RULES_S3_URI` or
/// `--rules`, `TRUSTED_ACCOUNTS`), so they agree on one grant.
#[derive(Debug, Clone)]
pub struct Policy {
    pub rules: RuleSet,
    pub min_alert_severity: Severity,
    pub today: time::Date,
    /// `TRUSTED_ACCOUNTS`, resolved (`ORG` listed once per process):
    /// cross-account inside the zone rates lower, outside it higher.
    pub trust_zone: TrustZone,
}

pub use crate::grant::StandingGrant;

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
/// Retire/Revoke (what was removed). Cross-account findings are judged
/// against the key's real owner (its ARN) and the policy's trust zone.
pub fn judge_event(event: &GrantEvent, known: Option<&GrantRecord>, policy: &Policy) -> Verdict {
    judge_event_with(event, known, &[], policy, &CorrelationSettings::default())
}

/// Judge one grant event with the ledger's records of
/// the key's grants (`live`: live and recently removed), for correlation
/// (`duplicate-grant`, `grant-burst`, `grant-persistence`, `self-grant`,
/// `over-broad`; see [`crate::correlate`]). The correlation findings count
/// before the rules.
pub fn judge_event_with(
    event: &GrantEvent,
    known: Option<&GrantRecord>,
    live: &[GrantRecord],
    policy: &Policy,
    correlation: &CorrelationSettings,
) -> Verdict {
    let (origin, findings, facts, removed_grant) = match (event.action, event.grant.as_ref()) {
        (GrantAction::CreateGrant, grant) => {
            let facts = grant.cloned().unwrap_or_default();
            let origin = origin::classify_grant(&facts, Some(&event.caller));
            let mut findings =
                assess::assess_create_in(event, &facts, &origin, Some(&policy.trust_zone));
            if event.succeeded() && !event.dry_run {
                findings.extend(correlate::correlate(
                    event,
                    &facts,
                    origin.origin,
                    live,
                    correlation,
                ));
            }
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
    let codes: Vec<FindingCode> = findings.iter().map(|f| f.code).collect();
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
        origin: Some(origin.origin),
        service: rule_service,
        operations: &facts.operations,
        constraints: facts.constraints.as_ref(),
        event_name: Some(event.action.as_str()),
        caller: event.caller.arn.as_deref(),
        caller_role: event.caller.session_issuer_arn.as_deref(),
        findings: &codes,
        // The watcher reads no key tags: `key_tags` rules never match here.
        key_tags: None,
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
    judge_standing_with(
        grant,
        provenance,
        Vec::new(),
        &KeyContext::default(),
        policy,
    )
}

/// What the report knows of a key besides its grants.
#[derive(Debug, Clone, Default)]
pub struct KeyContext {
    /// The key, its account and region (for `key`, `account`, `region`
    /// rules on its own findings).
    pub key_arn: Option<String>,
    pub account: Option<String>,
    pub region: Option<String>,
    /// Its tags (`ListResourceTags`), for `key_tags` rules; `None` when
    /// not read.
    pub tags: Option<BTreeMap<String, String>>,
    /// Findings about the key itself (its policy: `create-grant-open`).
    pub findings: Vec<Finding>,
}

/// The judgement of a key's own findings (its posture), after the rules.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyJudgement {
    pub findings: Vec<Finding>,
    /// The worst finding's (or the rule's) severity; `info` without findings.
    pub severity: Severity,
    pub suppressed_by: Option<String>,
    pub rule_notes: Vec<String>,
}

impl Default for KeyJudgement {
    fn default() -> Self {
        KeyJudgement {
            findings: Vec::new(),
            severity: Severity::Info,
            suppressed_by: None,
            rule_notes: Vec::new(),
        }
    }
}

/// A key judged: its own findings, and each grant's judgement in the order
/// given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyJudged {
    pub key: KeyJudgement,
    pub grants: Vec<Judgement>,
}

/// Judge every grant of one key as the report does: per-grant facts, the
/// key-wide findings (`duplicate-grant`, `grant-count-high`) added BEFORE
/// the rules, findings sorted once. `provenance` looks a grant's ledger
/// record up by grant id. One judgement per grant, in the order given.
/// `grantwatch classify` (list-grants input), the report and `explain`
/// share it.
pub fn judge_key<'a>(
    grants: &[StandingGrant],
    provenance: impl Fn(&str) -> Option<&'a GrantRecord>,
    policy: &Policy,
    grant_count_threshold: usize,
) -> Vec<Judgement> {
    judge_key_with(
        grants,
        provenance,
        |_, _| None,
        &KeyContext::default(),
        policy,
        grant_count_threshold,
    )
    .grants
}

/// [`judge_key`] with what the report knows of the key (`key`: its tags
/// for `key_tags` rules, its posture findings, judged once for the key)
/// and a finding of its own per grant (`more`: the report's
/// `unseen-by-watcher`), which counts before the rules like the key-wide
/// ones. The key's posture is judged with the key's account, region and
/// tags and no grantee, so a rule naming the key, its tags or the code
/// `create-grant-open` can suppress it.
pub fn judge_key_with<'a>(
    grants: &[StandingGrant],
    provenance: impl Fn(&str) -> Option<&'a GrantRecord>,
    more: impl Fn(&StandingGrant, Option<&GrantRecord>) -> Option<Finding>,
    key: &KeyContext,
    policy: &Policy,
    grant_count_threshold: usize,
) -> KeyJudged {
    let key_findings = assess::assess_key_grants(grants, grant_count_threshold);
    let judged = grants
        .iter()
        .zip(key_findings)
        .map(|(grant, mut extra)| {
            let record = provenance(&grant.grant_id);
            extra.extend(more(grant, record));
            judge_standing_with(grant, record, extra, key, policy)
        })
        .collect();
    KeyJudged {
        key: judge_key_posture(key, policy),
        grants: judged,
    }
}

/// The key's own findings after the rules.
fn judge_key_posture(key: &KeyContext, policy: &Policy) -> KeyJudgement {
    if key.findings.is_empty() {
        return KeyJudgement::default();
    }
    let codes: Vec<FindingCode> = key.findings.iter().map(|f| f.code).collect();
    let subject = key_subject(key, &codes);
    let outcome = apply_rules(&key.findings, &subject, policy);
    let mut findings = key.findings.clone();
    sort_findings(&mut findings);
    KeyJudgement {
        findings,
        severity: outcome.severity,
        suppressed_by: outcome.suppressed_by,
        rule_notes: outcome.notes,
    }
}

/// A key as a rule sees it: no grantee, origin or operations, so only
/// rules on the key, its account, region, tags or finding codes match.
fn key_subject<'a>(key: &'a KeyContext, codes: &'a [FindingCode]) -> RuleSubject<'a> {
    RuleSubject {
        grantee: None,
        key: key.key_arn.as_deref(),
        key_arn: key.key_arn.as_deref(),
        key_alias: None,
        account: key.account.as_deref(),
        region: key.region.as_deref(),
        origin: None,
        service: None,
        operations: &[],
        constraints: None,
        event_name: None,
        caller: None,
        caller_role: None,
        findings: codes,
        key_tags: key.tags.as_ref(),
    }
}

/// Judge a standing grant with findings that come from the rest of its
/// key (duplicates, grant count): they count before the rules do.
pub fn judge_standing_with(
    grant: &StandingGrant,
    provenance: Option<&GrantRecord>,
    key_findings: Vec<Finding>,
    key: &KeyContext,
    policy: &Policy,
) -> Judgement {
    let origin = origin::classify_grant(&grant.facts, provenance.map(|p| &p.created_by));
    let mut findings =
        assess::assess_standing(grant, &origin, provenance, Some(&policy.trust_zone));
    findings.extend(key_findings);
    let codes: Vec<FindingCode> = findings.iter().map(|f| f.code).collect();
    let subject = RuleSubject {
        grantee: grant.facts.effective_grantee(),
        key: Some(grant.key_arn.as_str()),
        key_arn: Some(grant.key_arn.as_str()),
        key_alias: None,
        account: Some(grant.account.as_str()),
        region: Some(grant.region.as_str()),
        origin: Some(origin.origin),
        service: origin.service.as_deref(),
        operations: &grant.facts.operations,
        constraints: grant.facts.constraints.as_ref(),
        event_name: None,
        caller: provenance.and_then(|p| p.created_by.arn.as_deref()),
        caller_role: provenance.and_then(|p| p.created_by.session_issuer_arn.as_deref()),
        findings: &codes,
        key_tags: key.tags.as_ref(),
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
    // The headline cannot be silenced by accident: a critical finding, or a
    // grantee outside the trust zone (cross-account-grantee at high or
    // above), stays at least high unless the rule says allow_critical.
    let protected = findings.iter().any(|f| {
        f.severity >= Severity::Critical
            || (f.code == FindingCode::CrossAccountGrantee && f.severity >= Severity::High)
    });
    let (severity, suppressed_by) = match matched.rule {
        None => (severity, None),
        Some(rule) if protected && !rule.allow_critical => match rule.action {
            RuleAction::Rerate(to) if to >= Severity::High => {
                notes.push(format!(
                    "rule {} re-rated severity from {severity} to {to}: {}",
                    rule.id, rule.reason
                ));
                (to, None)
            }
            _ => {
                let kept = severity.max(Severity::High);
                notes.push(format!(
                    "rule {} matched but was not applied: a critical finding or a grantee outside the trust zone is not suppressed or re-rated below high without allow_critical = true",
                    rule.id
                ));
                (kept.max(severity), None)
            }
        },
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
            trust_zone: TrustZone::Unset,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{parse_document, Caller, Parsed};
    use crate::grant::{Constraints, GrantFacts, Operation};
    use crate::verdict::{FindingCode, Origin};
    use std::collections::BTreeMap;
    use time::macros::date;

    fn event(json: serde_json::Value) -> GrantEvent {
        match parse_document(json.to_string().as_bytes())
            .unwrap()
            .remove(0)
        {
            Ok(Parsed::Grant(e)) => *e,
            other => panic!("{other:?}"),
        }
    }

    fn manual_create(key: &str) -> GrantEvent {
        event(serde_json::json!({
            "eventName": "CreateGrant", "eventSource": "kms.amazonaws.com", "eventID": "e1",
            "awsRegion": "us-east-1", "recipientAccountId": "111122223333",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333"},
            "sourceIPAddress": "198.51.100.7", "userAgent": "aws-cli/2.22.0",
            "requestParameters": {"keyId": key, "granteePrincipal": "arn:aws:iam::111122223333:role/app",
                                  "retiringPrincipal": "arn:aws:iam::111122223333:role/admin",
                                  "operations": ["Decrypt"], "constraints": {"encryptionContextSubset": {"app": "x"}}},
            "responseElements": {"grantId": "g1"}
        }))
    }

    fn policy(rules: &str) -> Policy {
        Policy {
            rules: RuleSet::parse_toml(rules).unwrap(),
            ..Policy::new(date!(2026 - 11 - 28))
        }
    }

    #[test]
    fn a_manual_grant_alerts_at_the_default_threshold() {
        let v = judge_event(&manual_create("alias/payments"), None, &policy(""));
        assert_eq!(v.origin, Origin::Manual);
        assert_eq!(v.severity, Severity::Medium);
        assert!(v.alert);
        assert_eq!(v.key_alias.as_deref(), Some("alias/payments"));
        assert_eq!(v.key_arn, None);
        assert_eq!(v.grant_id.as_deref(), Some("g1"));
    }

    #[test]
    fn suppression_keeps_the_verdict_but_not_the_alert() {
        let p = policy("[[rule]]\nid = \"payments\"\nreason = \"known\"\nkey = \"alias/pay*\"\n");
        let v = judge_event(&manual_create("alias/payments"), None, &p);
        assert_eq!(v.suppressed_by.as_deref(), Some("payments"));
        assert!(!v.alert);
        assert_eq!(v.severity, Severity::Medium);
        assert!(v.rule_notes[0].contains("payments"));
    }

    #[test]
    fn rerating_changes_severity_and_alert() {
        let p = policy("[[rule]]\nid = \"crit\"\nreason = \"crown jewels\"\nkey = \"alias/payments\"\nseverity = \"critical\"\n");
        let v = judge_event(&manual_create("alias/payments"), None, &p);
        assert_eq!(v.severity, Severity::Critical);
        assert!(v.alert);
        assert_eq!(v.suppressed_by, None);
    }

    #[test]
    fn the_headline_is_not_silenced_without_allow_critical() {
        // A person's unconstrained, cross-account, re-delegating grant: critical.
        let e = event(serde_json::json!({
            "eventName": "CreateGrant", "eventSource": "kms.amazonaws.com", "eventID": "c1",
            "awsRegion": "us-east-1", "recipientAccountId": "111122223333",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333"},
            "sourceIPAddress": "198.51.100.7", "userAgent": "aws-cli/2.22.0",
            "requestParameters": {"keyId": "alias/payments", "granteePrincipal": "arn:aws:iam::444455556666:role/x",
                                  "operations": ["Decrypt", "CreateGrant"]},
            "responseElements": {"grantId": "g1"}
        }));
        assert_eq!(
            judge_event(&e, None, &policy("")).severity,
            Severity::Critical
        );
        let suppress = policy("[[rule]]\nid = \"all\"\nreason = \"r\"\ngrantee = \"*\"\n");
        let v = judge_event(&e, None, &suppress);
        assert_eq!(v.suppressed_by, None);
        assert_eq!(v.severity, Severity::Critical);
        assert!(v.alert && v.rule_notes.iter().any(|n| n.contains("allow_critical")));
        let low =
            policy("[[rule]]\nid = \"low\"\nreason = \"r\"\ngrantee = \"*\"\nseverity = \"low\"\n");
        assert_eq!(judge_event(&e, None, &low).severity, Severity::Critical);
        let high = policy(
            "[[rule]]\nid = \"high\"\nreason = \"r\"\ngrantee = \"*\"\nseverity = \"high\"\n",
        );
        assert_eq!(judge_event(&e, None, &high).severity, Severity::High);
        let allowed = policy(
            "[[rule]]\nid = \"ok\"\nreason = \"r\"\ngrantee = \"*\"\nallow_critical = true\n",
        );
        assert_eq!(
            judge_event(&e, None, &allowed).suppressed_by.as_deref(),
            Some("ok")
        );
    }

    fn lambda_record() -> GrantRecord {
        GrantRecord {
            key_arn: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                .into(),
            grant_id: "g1".into(),
            account: Some("111122223333".into()),
            region: Some("us-east-1".into()),
            created_event_id: "c1".into(),
            created_at: Some("2026-11-20T09:15:02Z".into()),
            created_by: Caller {
                arn: Some("arn:aws:sts::111122223333:assumed-role/Admin/alice".into()),
                invoked_by: Some("lambda.amazonaws.com".into()),
                source_ip: Some("lambda.amazonaws.com".into()),
                ..Caller::default()
            },
            origin: Origin::Service,
            service: Some("lambda".into()),
            grant: GrantFacts {
                grantee: Some("arn:aws:sts::111122223333:assumed-role/fn-role/fn".into()),
                retiring_principal: Some("lambda.us-east-1.amazonaws.com".into()),
                operations: vec![Operation::Decrypt, Operation::RetireGrant],
                constraints: Some(Constraints {
                    encryption_context_equals: Some(BTreeMap::from([(
                        "aws:lambda:FunctionArn".to_string(),
                        "arn:aws:lambda:us-east-1:111122223333:function:fn".to_string(),
                    )])),
                    ..Constraints::default()
                }),
                ..GrantFacts::default()
            },
            removal: None,
        }
    }

    #[test]
    fn a_removal_is_described_by_the_removed_grant() {
        let retire = event(serde_json::json!({
            "eventName": "RevokeGrant", "eventSource": "kms.amazonaws.com", "eventID": "r1",
            "awsRegion": "us-east-1", "recipientAccountId": "111122223333",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/bob", "accountId": "111122223333"},
            "sourceIPAddress": "198.51.100.8", "userAgent": "aws-cli/2.22.0",
            "requestParameters": {"keyId": "1234abcd-12ab-34cd-56ef-1234567890ab", "grantId": "g1"}
        }));
        let record = lambda_record();
        let v = judge_event(&retire, Some(&record), &policy(""));
        assert_eq!(v.grantee, record.grant.grantee);
        assert_eq!(v.operations, record.grant.operations);
        assert_eq!(v.findings[0].code, FindingCode::ServiceGrantRemoved);
        assert!(v.alert);
        let removed = v.removed_grant.unwrap();
        assert_eq!(
            removed.dependent_resource.as_deref(),
            Some("arn:aws:lambda:us-east-1:111122223333:function:fn")
        );
        // A rule written for Lambda's grants does not silence "a person
        // removed Lambda's grant" (issue 11: the old behaviour was wrong)...
        let p = policy("[[rule]]\nid = \"lambda-ok\"\nreason = \"r\"\nservice = \"lambda\"\n");
        assert_eq!(judge_event(&retire, Some(&record), &p).suppressed_by, None);
        // ...a rule that names the removal does.
        let p = policy("[[rule]]\nid = \"lambda-ok\"\nreason = \"r\"\nservice = \"lambda\"\nevents = [\"RevokeGrant\"]\n");
        assert_eq!(
            judge_event(&retire, Some(&record), &p)
                .suppressed_by
                .as_deref(),
            Some("lambda-ok")
        );
    }

    #[test]
    fn standing_grants_use_provenance_when_known() {
        let record = lambda_record();
        let grant = StandingGrant {
            account: "111122223333".into(),
            region: "us-east-1".into(),
            key_arn: record.key_arn.clone(),
            key_spec: Some("SYMMETRIC_DEFAULT".into()),
            grant_id: "g1".into(),
            created: None,
            issuing_account: Some("arn:aws:iam::111122223333:root".into()),
            facts: record.grant.clone(),
        };
        let with = judge_standing(&grant, Some(&record), &policy(""));
        assert_eq!(with.origin.origin, Origin::Service);
        assert_eq!(with.severity, Severity::Info);
        // Without provenance, the grant's shape (retiring principal + context) still says lambda.
        let without = judge_standing(&grant, None, &policy(""));
        assert_eq!(without.origin.service.as_deref(), Some("lambda"));
        // A manual, unconstrained standing grant from another account is high.
        let mut manual = grant.clone();
        manual.facts = GrantFacts {
            grantee: Some("arn:aws:iam::444455556666:role/x".into()),
            operations: vec![Operation::Decrypt],
            ..GrantFacts::default()
        };
        let j = judge_standing(&manual, None, &policy(""));
        assert_eq!(j.origin.origin, Origin::Unknown);
        assert_eq!(j.severity, Severity::High);
    }

    #[test]
    fn the_trust_zone_comes_with_the_policy_for_events_and_standing_grants() {
        // A person's constrained grant to a role of another account.
        let cross = event(serde_json::json!({
            "eventName": "CreateGrant", "eventSource": "kms.amazonaws.com", "eventID": "z1",
            "awsRegion": "us-east-1", "recipientAccountId": "111122223333",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/alice", "accountId": "111122223333"},
            "sourceIPAddress": "198.51.100.7", "userAgent": "aws-cli/2.22.0",
            "requestParameters": {"keyId": "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                                  "granteePrincipal": "arn:aws:iam::444455556666:role/app",
                                  "retiringPrincipal": "arn:aws:iam::111122223333:role/admin",
                                  "operations": ["Decrypt"], "constraints": {"encryptionContextSubset": {"app": "x"}}},
            "responseElements": {"grantId": "g1"}
        }));
        let zone = |accounts: &[&str]| Policy {
            trust_zone: TrustZone::from_accounts(accounts.iter().copied()),
            ..policy("[[rule]]\nid = \"partner\"\nreason = \"r\"\ngrantee = \"*444455556666*\"\n")
        };
        let cross_account = |v: &Verdict| {
            v.findings
                .iter()
                .find(|f| f.code == FindingCode::CrossAccountGrantee)
                .map(|f| f.severity)
        };
        let inside = zone(&["111122223333", "444455556666"]);
        let outside = zone(&["111122223333"]);
        let v = judge_event(&cross, None, &policy(""));
        assert_eq!(cross_account(&v), Some(Severity::High), "no zone: default");
        let v = judge_event(&cross, None, &inside);
        assert_eq!(cross_account(&v), Some(Severity::Medium));
        assert_eq!(
            v.suppressed_by.as_deref(),
            Some("partner"),
            "inside: a rule may suppress it"
        );
        let v = judge_event(&cross, None, &outside);
        assert_eq!(cross_account(&v), Some(Severity::High));
        assert_eq!(
            v.suppressed_by, None,
            "outside: not below high without allow_critical"
        );
        assert!(v.alert && v.severity >= Severity::High);
        // The same grant standing (report, explain): the same zone applies.
        let standing = StandingGrant {
            account: "111122223333".into(),
            region: "us-east-1".into(),
            key_arn: "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
                .into(),
            key_spec: Some("SYMMETRIC_DEFAULT".into()),
            grant_id: "g1".into(),
            created: None,
            issuing_account: Some("arn:aws:iam::111122223333:root".into()),
            facts: cross.grant.clone().unwrap_or_default(),
        };
        let of = |p: &Policy| {
            judge_standing(&standing, None, p)
                .findings
                .iter()
                .find(|f| f.code == FindingCode::CrossAccountGrantee)
                .map(|f| f.severity)
        };
        assert_eq!(of(&inside), Some(Severity::Medium));
        assert_eq!(of(&outside), Some(Severity::High));
        assert_eq!(
            judge_standing(&standing, None, &outside).suppressed_by,
            None
        );
    }
}
