//! Findings and severity.
//!
//! Severity policy (documented in `docs/classify.md`):
//! * a grant a service made the way that service makes it is `info` and
//!   does not alert (re-delegation, empty constraints... are that
//!   service's habits);
//! * every grant a person makes is at least `medium` (`manual-grant`): it
//!   opens access no policy shows;
//! * a person's unconstrained, cross-account, re-delegating or
//!   account-root grant is `high`; unconstrained + cross-account +
//!   re-delegating together is `critical`;
//! * a call that failed or was a dry run granted nothing: its grant
//!   findings are capped at `low`, and the failure is its own finding;
//! * removing a service's grant by hand is `high` (a workload will break).
//!
//! An event's severity is its worst finding's.

use crate::event::{GrantAction, GrantEvent};
use crate::grant::StandingGrant;
use crate::grant::{Constraints, GrantFacts, Operation};
use crate::origin::is_profiled;
use crate::origin::{service_by_name, OriginVerdict};
use crate::principal::{is_account_id, principal_account, Principal};
use crate::record::GrantRecord;
use crate::trust::{Membership, TrustZone};
use crate::verdict::{quote, Finding, FindingCode, Origin, RemovedGrant, Severity};
use std::collections::{BTreeMap, HashMap};

/// Where a grant sits: the key's account and spec, the caller's account.
#[derive(Debug, Clone, Copy, Default)]
pub struct GrantContext<'a> {
    /// The account that owns the key.
    pub key_account: Option<&'a str>,
    /// The account of whoever created the grant (caller, or IssuingAccount).
    pub caller_account: Option<&'a str>,
    /// `SYMMETRIC_DEFAULT`, `RSA_2048`, `HMAC_256`... when known.
    pub key_spec: Option<&'a str>,
    /// A standing grant without provenance (report): an unknown origin is
    /// expected there and rated `low` instead of `medium`.
    pub standing: bool,
    /// The trust zone (`TRUSTED_ACCOUNTS`): cross-account inside it rates
    /// lower, outside it higher.
    pub zone: Option<&'a TrustZone>,
}

/// A person's cross-account finding: `high`, `medium` inside the trust
/// zone. A service's: `low`.
fn cross_account_severity(o: Origin, other: &str, zone: Option<&TrustZone>) -> Severity {
    if o == Origin::Service {
        return Severity::Low;
    }
    match zone.map(|z| z.membership(other)) {
        Some(Membership::Inside) => Severity::Medium,
        _ => Severity::High,
    }
}

/// Only a 12-digit id is an account: documentation placeholders and junk
/// (`xx`, `123SAMPLE012`, an ARN) name none.
fn real_account(a: Option<&str>) -> Option<&str> {
    a.map(str::trim).filter(|a| is_account_id(a))
}

/// `foreign-key`: the key (from its ARN) belongs to another account than
/// the one the event was recorded in. A person's: `high`, `critical`
/// outside the trust zone, `medium` inside. A service's (cross-account
/// snapshot copies, shared keys): `low`, `medium` outside the zone.
pub fn foreign_key_finding(
    key_owner: Option<&str>,
    event_account: Option<&str>,
    o: Origin,
    zone: Option<&TrustZone>,
) -> Option<Finding> {
    let (owner, here) = (real_account(key_owner)?, real_account(event_account)?);
    if owner == here {
        return None;
    }
    let membership = zone.map_or(Membership::Unknown, |z| z.membership(owner));
    let severity = match (o == Origin::Service, membership) {
        (true, Membership::Outside) => Severity::Medium,
        (true, _) => Severity::Low,
        (false, Membership::Inside) => Severity::Medium,
        (false, Membership::Outside) => Severity::Critical,
        (false, Membership::Unknown) => Severity::High,
    };
    let zone_note = match membership {
        Membership::Inside => " (inside the trust zone)",
        Membership::Outside => " (outside the trust zone)",
        Membership::Unknown => "",
    };
    Some(finding(
        FindingCode::ForeignKey,
        severity,
        format!(
            "the key belongs to account {}{zone_note}, not to account {} where the grant was made: data here can be re-encrypted under a key its owner controls",
            quote(owner),
            quote(here)
        ),
    ))
}

fn finding(code: FindingCode, severity: Severity, message: impl Into<String>) -> Finding {
    Finding {
        code,
        severity,
        message: message.into(),
    }
}

/// The worst severity among the findings (`info` when there are none).
pub fn worst_severity(findings: &[Finding]) -> Severity {
    findings
        .iter()
        .map(|f| f.severity)
        .max()
        .unwrap_or(Severity::Info)
}

/// Severity by who made the grant: a service's habit, or a person's act.
fn by_origin(origin: Origin, service: Severity, person: Severity) -> Severity {
    if origin == Origin::Service {
        service
    } else {
        person
    }
}

fn ops_list(ops: &[Operation]) -> String {
    ops.iter()
        .map(Operation::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Encryption-context constraints do not apply to asymmetric or HMAC keys.
fn key_spec_ignores_context(spec: &str) -> bool {
    !spec.eq_ignore_ascii_case("SYMMETRIC_DEFAULT")
}

fn has_context_constraint(c: &Constraints) -> bool {
    c.context_pairs().next().is_some()
}

/// Findings about what a grant allows and who made it (CreateGrant events
/// and standing grants alike).
pub fn assess_grant(
    facts: &GrantFacts,
    origin: &OriginVerdict,
    ctx: &GrantContext<'_>,
) -> Vec<Finding> {
    let o = origin.origin;
    let service_habit = origin
        .service
        .as_deref()
        .map(|s| format!(" (usual for {s})"))
        .unwrap_or_default();
    let mut out = Vec::new();

    match o {
        Origin::Manual => out.push(finding(
            FindingCode::ManualGrant,
            Severity::Medium,
            "created directly by a person or workload, not by an AWS service: access that no key or IAM policy shows",
        )),
        Origin::Unknown => out.push(finding(
            FindingCode::UnknownOrigin,
            if ctx.standing { Severity::Low } else { Severity::Medium },
            "not enough signals to tell whether an AWS service or a person created this grant",
        )),
        Origin::Service => {}
    }

    let grantee = facts.effective_grantee();
    let parsed_grantee = grantee.map(Principal::parse);
    let grantee_account = parsed_grantee.as_ref().and_then(Principal::account);

    if o == Origin::Service {
        let name = origin.service.as_deref().filter(|s| is_profiled(s));
        if name.is_none() {
            out.push(finding(
                FindingCode::UnprofiledService,
                Severity::Low,
                format!(
                    "made by {}, which grantwatch has no profile for: recorded, not alerted",
                    origin
                        .service
                        .as_deref()
                        .map(|s| format!("the AWS service {}", quote(s)))
                        .unwrap_or_else(|| "an AWS service".to_string())
                ),
            ));
        }
    }

    let key_account = real_account(ctx.key_account);
    if let (Some(ga), Some(ka)) = (grantee_account, key_account) {
        if ga != ka {
            out.push(finding(
                FindingCode::CrossAccountGrantee,
                cross_account_severity(o, ga, ctx.zone),
                format!(
                    "grantee is in account {}, not the key's account {}",
                    quote(ga),
                    quote(ka)
                ),
            ));
        }
    }
    if let (Some(ca), Some(ka)) = (real_account(ctx.caller_account), key_account) {
        if ca != ka {
            out.push(finding(
                FindingCode::CrossAccountCaller,
                cross_account_severity(o, ca, ctx.zone),
                format!(
                    "created from account {} on a key of account {}",
                    quote(ca),
                    quote(ka)
                ),
            ));
        }
    }
    match &parsed_grantee {
        Some(Principal::AccountRoot { account }) => out.push(finding(
            FindingCode::AccountRootGrantee,
            by_origin(o, Severity::Low, Severity::High),
            format!("grantee is the whole account {}: any principal there that IAM allows can use the key", quote(account)),
        )),
        Some(Principal::UniqueId { id, .. }) => out.push(finding(
            FindingCode::UniqueIdGrantee,
            by_origin(o, Severity::Info, Severity::Medium),
            format!("grantee is the unique id {id}, not an ARN: the principal may have been deleted, or the name is hidden"),
        )),
        _ => {}
    }

    if facts.has_operation(&Operation::CreateGrant) {
        out.push(finding(
            FindingCode::ReDelegation,
            by_origin(o, Severity::Info, Severity::High),
            format!("includes CreateGrant: the grantee can create further grants{service_habit}"),
        ));
    }

    let data_ops: Vec<Operation> = facts
        .operations
        .iter()
        .filter(|op| op.is_data_operation())
        .cloned()
        .collect();
    let context_ignored = ctx.key_spec.filter(|spec| key_spec_ignores_context(spec));
    let constraints = facts.constraints.as_ref();
    match constraints {
        Some(c) if c.is_empty() => out.push(finding(
            FindingCode::EmptyConstraint,
            by_origin(o, Severity::Info, Severity::Medium),
            format!("an empty constraint map: it restricts nothing{service_habit}"),
        )),
        _ => {}
    }
    let unconstrained = constraints.is_none_or(Constraints::is_empty);
    if unconstrained && !data_ops.is_empty() {
        out.push(finding(
            FindingCode::Unconstrained,
            by_origin(o, Severity::Info, Severity::High),
            format!("allows {} with no constraint", quote(&ops_list(&data_ops))),
        ));
    }
    if constraints.is_some_and(has_context_constraint) {
        if let Some(spec) = context_ignored {
            let severity = if data_ops.is_empty() {
                Severity::Low
            } else {
                Severity::High
            };
            out.push(finding(
                FindingCode::ConstraintNotApplicable,
                by_origin(o, Severity::Info, severity),
                format!("encryption-context constraints do not apply to a {} key: the grant is effectively unconstrained", quote(spec)),
            ));
        } else if !facts.operations.is_empty()
            && facts
                .operations
                .iter()
                .all(|op| matches!(op, Operation::DescribeKey | Operation::RetireGrant))
        {
            out.push(finding(
                FindingCode::ConstraintNotApplicable,
                by_origin(o, Severity::Info, Severity::Low),
                "encryption-context constraints do not apply to DescribeKey and RetireGrant, the only operations granted",
            ));
        }
    }

    if facts.effective_retiring_principal().is_none() {
        out.push(finding(
            FindingCode::NoRetiringPrincipal,
            by_origin(o, Severity::Info, Severity::Low),
            "no retiring principal: only the key's administrators (RevokeGrant) or the grantee can remove it",
        ));
    }

    let unknown_ops: Vec<&str> = facts
        .operations
        .iter()
        .filter(|op| op.is_unknown())
        .map(Operation::as_str)
        .collect();
    if !unknown_ops.is_empty() {
        out.push(finding(
            FindingCode::UnknownOperation,
            by_origin(o, Severity::Low, Severity::Medium),
            format!(
                "operations grantwatch does not know: {}",
                quote(&unknown_ops.join(", "))
            ),
        ));
    }

    if o == Origin::Manual && !origin.shape_services.is_empty() {
        out.push(finding(
            FindingCode::ServiceContextByPerson,
            Severity::High,
            format!(
                "a person created a grant shaped like a {} service grant (service context keys or retiring principal typed by hand)",
                origin.shape_services.join("/")
            ),
        ));
    }

    escalate_combination(&mut out);
    // A grant to a service principal or to AWS Internal whose maker is
    // unknown: at worst medium (a service acting through the customer's
    // role looks like this).
    if o == Origin::Unknown
        && matches!(
            parsed_grantee,
            Some(Principal::Service(_)) | Some(Principal::AwsInternal)
        )
    {
        for f in out.iter_mut() {
            f.severity = f.severity.min(Severity::Medium);
        }
    }
    out
}

/// A person's unconstrained, cross-account, re-delegating grant: each is
/// high; all three together are critical.
fn escalate_combination(findings: &mut [Finding]) {
    const COMBINED: [FindingCode; 3] = [
        FindingCode::Unconstrained,
        FindingCode::CrossAccountGrantee,
        FindingCode::ReDelegation,
    ];
    let all_high = COMBINED.iter().all(|code| {
        findings
            .iter()
            .any(|f| f.code == *code && f.severity >= Severity::High)
    });
    if all_high {
        for f in findings.iter_mut().filter(|f| COMBINED.contains(&f.code)) {
            f.severity = Severity::Critical;
        }
    }
}

/// Nothing was granted or removed: cap the other findings at `low`.
fn cap_at_low(findings: &mut [Finding]) {
    for f in findings.iter_mut() {
        f.severity = f.severity.min(Severity::Low);
    }
}

/// A probe (dry run, denied call) keeps the risk of the grant it tried:
/// one step lower, never below `low` (findings already at `info` or `low`
/// stay as they are).
fn one_step_lower(findings: &mut [Finding]) {
    for f in findings.iter_mut() {
        f.severity = match f.severity {
            Severity::Critical => Severity::High,
            Severity::High => Severity::Medium,
            Severity::Medium | Severity::Low => Severity::Low,
            Severity::Info => Severity::Info,
        };
    }
}

/// Findings about how the call went: dry run, access denied, other error.
pub fn assess_outcome(event: &GrantEvent, origin: Origin) -> Vec<Finding> {
    let mut out = Vec::new();
    let error = event.error_code.as_deref();
    if event.dry_run || error == Some("DryRunOperationException") {
        out.push(finding(
            FindingCode::DryRun,
            by_origin(origin, Severity::Info, Severity::Low),
            format!(
                "a dry run: nothing was {}; someone checked whether they could",
                done_word(event.action)
            ),
        ));
    } else if let Some(code) = error {
        let message = event
            .error_message
            .as_deref()
            .map(|m| format!(": {}", quote(m)))
            .unwrap_or_default();
        if code.starts_with("AccessDenied") {
            out.push(finding(
                FindingCode::AccessDenied,
                by_origin(origin, Severity::Low, Severity::Medium),
                format!(
                    "{} was denied ({}){message}",
                    event.action.as_str(),
                    quote(code)
                ),
            ));
        } else {
            out.push(finding(
                FindingCode::FailedCall,
                by_origin(origin, Severity::Info, Severity::Low),
                format!(
                    "{} failed ({}){message}",
                    event.action.as_str(),
                    quote(code)
                ),
            ));
        }
    }
    out
}

fn done_word(action: GrantAction) -> &'static str {
    match action {
        GrantAction::CreateGrant => "granted",
        GrantAction::RetireGrant => "retired",
        GrantAction::RevokeGrant => "revoked",
    }
}

/// All findings for a CreateGrant event: the grant's, then the call's.
/// No trust zone: see [`assess_create_in`].
pub fn assess_create(
    event: &GrantEvent,
    facts: &GrantFacts,
    origin: &OriginVerdict,
) -> Vec<Finding> {
    assess_create_in(event, facts, origin, None)
}

/// The account that owns the event's key: from the key ARN (the real
/// owner), else the account the event was recorded in.
pub fn key_owner(event: &GrantEvent) -> Option<&str> {
    event
        .key_arn
        .as_deref()
        .and_then(crate::principal::Arn::parse)
        .map(|arn| arn.account)
        .filter(|a| is_account_id(a))
        .or(event.account.as_deref())
}

/// All findings for a CreateGrant event, with the trust zone: the grant's
/// (cross-account judged against the key's real owner), `foreign-key`,
/// then the call's. A dry run or denied call keeps the findings of the
/// grant it tried one step lower (never below `low`); a service's stay
/// at most `low`.
pub fn assess_create_in(
    event: &GrantEvent,
    facts: &GrantFacts,
    origin: &OriginVerdict,
    zone: Option<&TrustZone>,
) -> Vec<Finding> {
    let ctx = GrantContext {
        key_account: key_owner(event),
        caller_account: event.caller.account.as_deref(),
        key_spec: None,
        standing: false,
        zone,
    };
    let mut out = assess_grant(facts, origin, &ctx);
    out.extend(foreign_key_finding(
        key_owner(event),
        event.account.as_deref(),
        origin.origin,
        zone,
    ));
    let outcome = assess_outcome(event, origin.origin);
    if !outcome.is_empty() {
        if origin.origin == Origin::Service {
            cap_at_low(&mut out);
        } else {
            one_step_lower(&mut out);
        }
    }
    out.extend(outcome);
    out
}

/// What a removed grant was, from the ledger's record: its origin, the
/// resource that depends on it and what breaks.
pub fn removed_grant(record: &GrantRecord) -> RemovedGrant {
    let info = record.service.as_deref().and_then(service_by_name);
    let dependent_resource = info
        .and_then(|info| {
            let constraints = record.grant.constraints.as_ref()?;
            info.resource_keys
                .iter()
                .find_map(|k| constraints.context_value(k))
        })
        .map(str::to_string)
        .or_else(|| {
            record
                .grant
                .constraints
                .as_ref()
                .and_then(|c| c.source_arn.clone())
        });
    let impact = match (record.origin, info) {
        (Origin::Service, Some(info)) => Some(info.impact.to_string()),
        (Origin::Service, None) => Some(format!(
            "the {} resource that uses this grant can no longer use the key; restore access through that service",
            record.service.as_deref().unwrap_or("service's")
        )),
        _ => None,
    };
    RemovedGrant {
        origin: record.origin,
        service: record.service.clone(),
        created_by: record.created_by.arn.clone(),
        created_at: record.created_at.clone(),
        created_event_id: Some(record.created_event_id.clone()),
        dependent_resource,
        impact,
    }
}

/// Findings for a RetireGrant / RevokeGrant: who removed what. `remover` is
/// the origin of the removal call; `record` the ledger's record of the
/// grant, when it knew it.
pub fn assess_removal(
    event: &GrantEvent,
    remover: &OriginVerdict,
    record: Option<&GrantRecord>,
) -> (Vec<Finding>, Option<RemovedGrant>) {
    let removed = record.map(removed_grant);
    let mut out = assess_outcome(event, remover.origin);
    if !out.is_empty() {
        return (out, removed);
    }
    let verb = done_word(event.action);
    let by_service = remover.origin == Origin::Service;
    let remover_name = remover
        .service
        .as_deref()
        .map(quote)
        .unwrap_or_else(|| "a service".to_string());
    match (record, &removed) {
        (Some(record), Some(removed)) if record.origin == Origin::Service => {
            let creator = record.service.as_deref().map(quote).unwrap_or_else(|| "a service".to_string());
            if by_service {
                out.push(finding(
                    FindingCode::GrantRemoved,
                    Severity::Info,
                    format!("{remover_name} {verb} a grant {creator} created: routine clean-up"),
                ));
            } else {
                let resource = removed
                    .dependent_resource
                    .as_deref()
                    .map(|r| format!(" for {}", quote(r)))
                    .unwrap_or_default();
                let impact = removed.impact.as_deref().unwrap_or("a workload may break");
                out.push(finding(
                    FindingCode::ServiceGrantRemoved,
                    Severity::High,
                    format!("a grant {creator} created{resource} was {verb} by hand: {impact}"),
                ));
            }
        }
        (Some(record), _) => out.push(finding(
            FindingCode::GrantRemoved,
            by_origin(remover.origin, Severity::Info, Severity::Low),
            format!(
                "a grant created by {} was {verb}",
                record.created_by.arn.as_deref().map(quote).unwrap_or_else(|| "a person or workload".to_string())
            ),
        )),
        (None, _) if by_service => out.push(finding(
            FindingCode::UnknownGrantRemoved,
            Severity::Info,
            format!("{remover_name} {verb} a grant grantwatch never saw created: routine for a service"),
        )),
        (None, _) => out.push(finding(
            FindingCode::UnknownGrantRemoved,
            Severity::Medium,
            format!("a grant grantwatch never saw created was {verb} by hand: if a service depended on it, its resource will fail"),
        )),
    }
    (out, removed)
}

/// Findings for a standing grant (report, explain).
pub fn assess_standing(
    grant: &StandingGrant,
    origin: &OriginVerdict,
    provenance: Option<&GrantRecord>,
    zone: Option<&TrustZone>,
) -> Vec<Finding> {
    let caller_account = provenance
        .and_then(|p| p.created_by.account.as_deref())
        .or_else(|| grant.issuing_account.as_deref().and_then(principal_account));
    let ctx = GrantContext {
        key_account: Some(grant.account.as_str()),
        caller_account,
        key_spec: grant.key_spec.as_deref(),
        standing: provenance.is_none(),
        zone,
    };
    assess_grant(&grant.facts, origin, &ctx)
}

/// Default threshold for `grant-count-high`: 80% of the 50,000 grants a
/// key may hold.
pub const DEFAULT_GRANT_COUNT_THRESHOLD: usize = 40_000;

/// Report-wide findings, one list per grant (same order as `grants`):
/// `duplicate-grant` on every grant after the first with the same key,
/// grantee, operations and constraints; `grant-count-high` on the first
/// grant of a key holding at least `count_threshold` grants.
pub fn assess_key_grants(grants: &[StandingGrant], count_threshold: usize) -> Vec<Vec<Finding>> {
    let mut out: Vec<Vec<Finding>> = vec![Vec::new(); grants.len()];
    let mut first_of_shape: HashMap<(String, Option<String>, Vec<String>, String), usize> =
        HashMap::new();
    let mut per_key: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    for (i, grant) in grants.iter().enumerate() {
        let entry = per_key.entry(grant.key_arn.as_str()).or_insert((i, 0));
        entry.1 += 1;
        let shape = duplicate_key(grant);
        match first_of_shape.get(&shape) {
            Some(&first) => out[i].push(finding(
                FindingCode::DuplicateGrant,
                Severity::Low,
                format!(
                    "same grantee, operations and constraints as grant {} on this key",
                    quote(&grants[first].grant_id)
                ),
            )),
            None => {
                first_of_shape.insert(shape, i);
            }
        }
    }
    for (key, (first, count)) in per_key {
        if count >= count_threshold {
            out[first].push(finding(
                FindingCode::GrantCountHigh,
                Severity::Medium,
                format!(
                    "key {} holds {count} grants, near the quota of 50,000 per key",
                    quote(key)
                ),
            ));
        }
    }
    out
}

/// Grants are duplicates when key, grantee, operations and constraints
/// (keys compared case-insensitively, as KMS does) are the same.
fn duplicate_key(grant: &StandingGrant) -> (String, Option<String>, Vec<String>, String) {
    let mut ops: Vec<String> = grant
        .facts
        .operations
        .iter()
        .map(|o| o.as_str().to_string())
        .collect();
    ops.sort();
    ops.dedup();
    let constraints = grant
        .facts
        .constraints
        .as_ref()
        .filter(|c| !c.is_empty())
        .map(|c| {
            let norm = |m: &Option<BTreeMap<String, String>>| -> Vec<(String, String)> {
                m.iter()
                    .flatten()
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                    .collect::<BTreeMap<_, _>>()
                    .into_iter()
                    .collect()
            };
            format!(
                "{:?}|{:?}|{:?}",
                norm(&c.encryption_context_equals),
                norm(&c.encryption_context_subset),
                c.source_arn
            )
        })
        .unwrap_or_default();
    (
        grant.key_arn.clone(),
        grant.facts.effective_grantee().map(str::to_string),
        ops,
        constraints,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Caller;

    const KEY_ACCOUNT: &str = "111122223333";

    fn manual() -> OriginVerdict {
        OriginVerdict {
            origin: Origin::Manual,
            ..OriginVerdict::unknown()
        }
    }

    fn service(name: &str) -> OriginVerdict {
        OriginVerdict {
            origin: Origin::Service,
            service: Some(name.to_string()),
            ..OriginVerdict::unknown()
        }
    }

    fn ctx() -> GrantContext<'static> {
        GrantContext {
            key_account: Some(KEY_ACCOUNT),
            caller_account: Some(KEY_ACCOUNT),
            ..GrantContext::default()
        }
    }

    fn facts(grantee: &str, ops: &[Operation], constraints: Option<Constraints>) -> GrantFacts {
        GrantFacts {
            grantee: Some(grantee.to_string()),
            retiring_principal: Some(format!("arn:aws:iam::{KEY_ACCOUNT}:role/admin")),
            operations: ops.to_vec(),
            constraints,
            ..GrantFacts::default()
        }
    }

    fn context(k: &str, v: &str) -> Option<Constraints> {
        Some(Constraints {
            encryption_context_subset: Some(BTreeMap::from([(k.to_string(), v.to_string())])),
            ..Constraints::default()
        })
    }

    fn codes(findings: &[Finding]) -> Vec<FindingCode> {
        let mut c: Vec<_> = findings.iter().map(|f| f.code).collect();
        c.sort();
        c
    }

    fn severity_of(findings: &[Finding], code: FindingCode) -> Option<Severity> {
        findings.iter().find(|f| f.code == code).map(|f| f.severity)
    }

    #[test]
    fn a_constrained_manual_grant_is_medium() {
        let f = assess_grant(
            &facts(
                "arn:aws:iam::111122223333:role/app",
                &[Operation::Decrypt],
                context("app", "x"),
            ),
            &manual(),
            &ctx(),
        );
        assert_eq!(codes(&f), vec![FindingCode::ManualGrant]);
        assert_eq!(worst_severity(&f), Severity::Medium);
    }

    #[test]
    fn unconstrained_manual_grant_is_high() {
        let f = assess_grant(
            &facts(
                "arn:aws:iam::111122223333:role/app",
                &[Operation::Decrypt],
                None,
            ),
            &manual(),
            &ctx(),
        );
        assert_eq!(
            severity_of(&f, FindingCode::Unconstrained),
            Some(Severity::High)
        );
    }

    #[test]
    fn unconstrained_cross_account_redelegating_is_critical() {
        let f = assess_grant(
            &facts(
                "arn:aws:iam::444455556666:role/x",
                &[Operation::Decrypt, Operation::CreateGrant],
                None,
            ),
            &manual(),
            &ctx(),
        );
        assert_eq!(worst_severity(&f), Severity::Critical);
        assert_eq!(
            severity_of(&f, FindingCode::CrossAccountGrantee),
            Some(Severity::Critical)
        );
    }

    #[test]
    fn service_habits_stay_info() {
        // DynamoDB's grants include CreateGrant; some services send an empty constraint map.
        let f = assess_grant(
            &facts(
                "dynamodb.us-east-1.amazonaws.com",
                &[Operation::Decrypt, Operation::CreateGrant],
                Some(Constraints::default()),
            ),
            &service("dynamodb"),
            &ctx(),
        );
        assert!(f.iter().any(|x| x.code == FindingCode::ReDelegation));
        assert!(f.iter().any(|x| x.code == FindingCode::EmptyConstraint));
        assert_eq!(worst_severity(&f), Severity::Info);
    }

    #[test]
    fn account_root_and_unique_id_grantees() {
        let f = assess_grant(
            &facts("444455556666", &[Operation::Encrypt], context("a", "b")),
            &manual(),
            &ctx(),
        );
        assert!(codes(&f).contains(&FindingCode::AccountRootGrantee));
        assert!(codes(&f).contains(&FindingCode::CrossAccountGrantee));
        let f = assess_grant(
            &facts(
                "AROAEXAMPLEROLEID0001",
                &[Operation::Encrypt],
                context("a", "b"),
            ),
            &manual(),
            &ctx(),
        );
        assert_eq!(
            severity_of(&f, FindingCode::UniqueIdGrantee),
            Some(Severity::Medium)
        );
    }

    #[test]
    fn constraints_that_cannot_apply() {
        let asym = GrantContext {
            key_spec: Some("RSA_2048"),
            ..ctx()
        };
        let f = assess_grant(
            &facts(
                "arn:aws:iam::111122223333:role/app",
                &[Operation::Sign],
                context("a", "b"),
            ),
            &manual(),
            &asym,
        );
        assert_eq!(
            severity_of(&f, FindingCode::ConstraintNotApplicable),
            Some(Severity::High)
        );
        let f = assess_grant(
            &facts(
                "arn:aws:iam::111122223333:role/app",
                &[Operation::DescribeKey, Operation::RetireGrant],
                context("a", "b"),
            ),
            &manual(),
            &ctx(),
        );
        assert_eq!(
            severity_of(&f, FindingCode::ConstraintNotApplicable),
            Some(Severity::Low)
        );
        let sym = GrantContext {
            key_spec: Some("SYMMETRIC_DEFAULT"),
            ..ctx()
        };
        let f = assess_grant(
            &facts(
                "arn:aws:iam::111122223333:role/app",
                &[Operation::Decrypt],
                context("a", "b"),
            ),
            &manual(),
            &sym,
        );
        assert!(!codes(&f).contains(&FindingCode::ConstraintNotApplicable));
    }

    #[test]
    fn unknown_operations_and_missing_retiring_principal() {
        let mut g = facts(
            "arn:aws:iam::111122223333:role/app",
            &[Operation::Unknown("QuantumDecrypt".into())],
            context("a", "b"),
        );
        g.retiring_principal = None;
        let f = assess_grant(&g, &manual(), &ctx());
        assert!(codes(&f).contains(&FindingCode::UnknownOperation));
        assert!(codes(&f).contains(&FindingCode::NoRetiringPrincipal));
    }

    #[test]
    fn service_context_by_person_is_high() {
        let origin = OriginVerdict {
            shape_services: vec!["lambda".into()],
            ..manual()
        };
        let f = assess_grant(
            &facts(
                "arn:aws:iam::111122223333:role/app",
                &[Operation::Decrypt],
                context("aws:lambda:FunctionArn", "x"),
            ),
            &origin,
            &ctx(),
        );
        assert_eq!(
            severity_of(&f, FindingCode::ServiceContextByPerson),
            Some(Severity::High)
        );
    }

    fn event(action: GrantAction, error: Option<&str>, dry_run: bool) -> GrantEvent {
        GrantEvent {
            event_id: "e".into(),
            action,
            event_time: None,
            account: Some(KEY_ACCOUNT.into()),
            region: Some("us-east-1".into()),
            event_version: None,
            caller: Caller::default(),
            key: None,
            key_arn: None,
            grant_id: None,
            grant: None,
            dry_run,
            error_code: error.map(str::to_string),
            error_message: None,
            used_grant_token: false,
            shared_event_id: None,
        }
    }

    #[test]
    fn failed_calls_cap_grant_findings() {
        let g = facts(
            "arn:aws:iam::444455556666:role/x",
            &[Operation::Decrypt],
            None,
        );
        let f = assess_create(
            &event(GrantAction::CreateGrant, Some("AccessDenied"), false),
            &g,
            &manual(),
        );
        assert_eq!(
            severity_of(&f, FindingCode::AccessDenied),
            Some(Severity::Medium)
        );
        // A denied or dry-run grant keeps the risk it tested, one step lower.
        assert_eq!(
            severity_of(&f, FindingCode::Unconstrained),
            Some(Severity::Medium)
        );
        let f = assess_create(
            &event(
                GrantAction::CreateGrant,
                Some("DryRunOperationException"),
                true,
            ),
            &g,
            &manual(),
        );
        assert_eq!(worst_severity(&f), Severity::Medium);
        assert_eq!(severity_of(&f, FindingCode::DryRun), Some(Severity::Low));
        // A routine service dry run stays info.
        let f = assess_create(
            &event(
                GrantAction::CreateGrant,
                Some("DryRunOperationException"),
                true,
            ),
            &facts(
                "dynamodb.us-east-1.amazonaws.com",
                &[Operation::Decrypt],
                context("aws:dynamodb:tableName", "t"),
            ),
            &service("dynamodb"),
        );
        assert_eq!(worst_severity(&f), Severity::Info);
        assert!(codes(&f).contains(&FindingCode::DryRun));
        let f = assess_create(
            &event(GrantAction::CreateGrant, Some("NotFoundException"), false),
            &g,
            &manual(),
        );
        assert!(codes(&f).contains(&FindingCode::FailedCall));
    }

    #[test]
    fn foreign_keys_and_the_trust_zone() {
        let owner = Some("444455556666");
        let here = Some(KEY_ACCOUNT);
        let unset = foreign_key_finding(owner, here, Origin::Manual, None).unwrap();
        assert_eq!(unset.code, FindingCode::ForeignKey);
        assert_eq!(unset.severity, Severity::High);
        let zone = TrustZone::from_accounts([KEY_ACCOUNT]);
        assert_eq!(
            foreign_key_finding(owner, here, Origin::Manual, Some(&zone))
                .unwrap()
                .severity,
            Severity::Critical
        );
        let org = TrustZone::from_accounts([KEY_ACCOUNT, "444455556666"]);
        assert_eq!(
            foreign_key_finding(owner, here, Origin::Manual, Some(&org))
                .unwrap()
                .severity,
            Severity::Medium
        );
        assert_eq!(
            foreign_key_finding(owner, here, Origin::Service, None)
                .unwrap()
                .severity,
            Severity::Low
        );
        // Same account, or junk account fields: nothing.
        assert!(foreign_key_finding(here, here, Origin::Manual, None).is_none());
        assert!(foreign_key_finding(Some("5555555555555"), here, Origin::Manual, None).is_none());
        assert!(foreign_key_finding(owner, Some("123SAMPLE012"), Origin::Manual, None).is_none());
        // Cross-account inside the zone rates lower.
        let inside = GrantContext {
            zone: Some(&org),
            ..ctx()
        };
        let g = facts(
            "arn:aws:iam::444455556666:role/x",
            &[Operation::Decrypt],
            context("a", "b"),
        );
        assert_eq!(
            severity_of(
                &assess_grant(&g, &manual(), &ctx()),
                FindingCode::CrossAccountGrantee
            ),
            Some(Severity::High)
        );
        assert_eq!(
            severity_of(
                &assess_grant(&g, &manual(), &inside),
                FindingCode::CrossAccountGrantee
            ),
            Some(Severity::Medium)
        );
    }

    #[test]
    fn unprofiled_services_are_low_and_profiled_ones_info() {
        let g = facts(
            "bedrock.amazonaws.com",
            &[Operation::Decrypt, Operation::CreateGrant],
            None,
        );
        let f = assess_grant(&g, &service("bedrock"), &ctx());
        assert_eq!(
            severity_of(&f, FindingCode::UnprofiledService),
            Some(Severity::Low)
        );
        assert_eq!(worst_severity(&f), Severity::Low);
        let f = assess_grant(&g, &service("dynamodb"), &ctx());
        assert_eq!(worst_severity(&f), Severity::Info);
    }

    #[test]
    fn an_unknown_maker_of_a_grant_to_a_service_principal_is_at_worst_medium() {
        let unknown = OriginVerdict::unknown();
        let g = facts(
            "m2.us-west-2.amazonaws.com",
            &[Operation::Decrypt, Operation::CreateGrant],
            None,
        );
        assert_eq!(
            worst_severity(&assess_grant(&g, &unknown, &ctx())),
            Severity::Medium
        );
    }

    fn lambda_record() -> GrantRecord {
        GrantRecord {
            key_arn: "arn:aws:kms:ap-northeast-1:111122223333:key/k".into(),
            grant_id: "g".into(),
            account: Some(KEY_ACCOUNT.into()),
            region: Some("ap-northeast-1".into()),
            created_event_id: "c".into(),
            created_at: None,
            created_by: Caller::default(),
            origin: Origin::Service,
            service: Some("lambda".into()),
            grant: facts(
                "arn:aws:sts::111122223333:assumed-role/r/test",
                &[Operation::Decrypt, Operation::RetireGrant],
                Some(Constraints {
                    encryption_context_equals: Some(BTreeMap::from([(
                        "aws:lambda:functionarn".to_string(),
                        "arn:aws:lambda:ap-northeast-1:111122223333:function:test".to_string(),
                    )])),
                    ..Constraints::default()
                }),
            ),
            removal: None,
        }
    }

    #[test]
    fn removing_a_service_grant_by_hand_is_high_with_impact() {
        let record = lambda_record();
        let (f, removed) = assess_removal(
            &event(GrantAction::RetireGrant, None, false),
            &manual(),
            Some(&record),
        );
        assert_eq!(codes(&f), vec![FindingCode::ServiceGrantRemoved]);
        assert_eq!(worst_severity(&f), Severity::High);
        let removed = removed.unwrap();
        assert_eq!(
            removed.dependent_resource.as_deref(),
            Some("arn:aws:lambda:ap-northeast-1:111122223333:function:test")
        );
        assert!(removed.impact.unwrap().contains("environment variables"));
    }

    #[test]
    fn a_service_retiring_its_own_grant_is_info() {
        let (f, _) = assess_removal(
            &event(GrantAction::RetireGrant, None, false),
            &service("lambda"),
            Some(&lambda_record()),
        );
        assert_eq!(codes(&f), vec![FindingCode::GrantRemoved]);
        assert_eq!(worst_severity(&f), Severity::Info);
    }

    #[test]
    fn removing_an_unknown_grant() {
        let (f, removed) = assess_removal(
            &event(GrantAction::RevokeGrant, None, false),
            &manual(),
            None,
        );
        assert_eq!(codes(&f), vec![FindingCode::UnknownGrantRemoved]);
        assert_eq!(worst_severity(&f), Severity::Medium);
        assert!(removed.is_none());
        let (f, _) = assess_removal(
            &event(GrantAction::RetireGrant, None, false),
            &service("ebs"),
            None,
        );
        assert_eq!(worst_severity(&f), Severity::Info);
    }

    fn standing(
        id: &str,
        grantee: &str,
        ops: &[Operation],
        constraints: Option<Constraints>,
    ) -> StandingGrant {
        StandingGrant {
            account: KEY_ACCOUNT.into(),
            region: "us-east-1".into(),
            key_arn: "arn:aws:kms:us-east-1:111122223333:key/k".into(),
            key_spec: None,
            grant_id: id.into(),
            created: None,
            issuing_account: None,
            facts: facts(grantee, ops, constraints),
        }
    }

    #[test]
    fn duplicates_and_grant_count() {
        let grants = vec![
            standing(
                "a",
                "arn:aws:iam::111122223333:role/x",
                &[Operation::Decrypt, Operation::Encrypt],
                context("K", "v"),
            ),
            standing(
                "b",
                "arn:aws:iam::111122223333:role/x",
                &[Operation::Encrypt, Operation::Decrypt],
                context("k", "v"),
            ),
            standing(
                "c",
                "arn:aws:iam::111122223333:role/x",
                &[Operation::Decrypt],
                context("k", "v"),
            ),
        ];
        let f = assess_key_grants(&grants, 3);
        assert!(f[0].iter().any(|x| x.code == FindingCode::GrantCountHigh));
        assert!(!f[0].iter().any(|x| x.code == FindingCode::DuplicateGrant));
        assert!(f[1]
            .iter()
            .any(|x| x.code == FindingCode::DuplicateGrant && x.message.contains("grant a")));
        assert!(f[2].is_empty());
        let f = assess_key_grants(&grants, DEFAULT_GRANT_COUNT_THRESHOLD);
        assert!(!f[0].iter().any(|x| x.code == FindingCode::GrantCountHigh));
    }
}
