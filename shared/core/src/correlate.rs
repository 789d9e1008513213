//! Correlation in real time: findings about a new grant that only the
//! key's other grants reveal. Pure functions over the ledger's records of
//! the key (live and recently removed); the watcher fetches them, the
//! report and `classify` pass what they hold.
//!
//! * `duplicate-grant`: same key, grantee, operations and constraints as a
//!   live grant;
//! * `grant-burst`: more than [`CorrelationSettings::burst_count`] grants to
//!   one grantee on one key within [`CorrelationSettings::burst_window_secs`];
//! * `grant-persistence`: re-created within
//!   [`CorrelationSettings::persistence_window_secs`] of its removal (same
//!   key, grantee and operations);
//! * `self-grant`: the caller (its ARN or its role, `sessionIssuer`) is the
//!   grantee (its role or session);
//! * `over-broad`: every symmetric-key operation.
//!
//! None fires for a service's routine pattern: a grant a service made
//! (origin `service`) gets none of them (Lambda and EBS re-create the same
//! grant on every update and attach, by design).

use crate::event::{Caller, GrantEvent};
use crate::grant::{Constraints, GrantFacts, Operation};
use crate::principal::Principal;
use crate::record::GrantRecord;
use crate::verdict::{quote, Finding, FindingCode, Origin, Severity};
use std::collections::BTreeMap;

/// The defaults of issue 11, each configurable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorrelationSettings {
    /// A burst is MORE than this many grants to one grantee on one key...
    pub burst_count: usize,
    /// ...within this many seconds.
    pub burst_window_secs: i64,
    /// A grant re-created within this many seconds of its removal persists.
    pub persistence_window_secs: i64,
}

impl Default for CorrelationSettings {
    fn default() -> Self {
        CorrelationSettings {
            burst_count: 5,
            burst_window_secs: 10 * 60,
            persistence_window_secs: 24 * 60 * 60,
        }
    }
}

/// At most this many of the key's records for one grantee are read per
/// grant (the newest): enough for a burst of any configured size up to
/// it, for duplicates and for persistence, and bounded (an EBS key can
/// hold thousands of grants).
pub const CORRELATION_RECORDS: usize = 50;

/// The symmetric-key operations: a grant holding every one is over-broad.
pub const SYMMETRIC_OPERATIONS: [Operation; 9] = [
    Operation::Decrypt,
    Operation::Encrypt,
    Operation::GenerateDataKey,
    Operation::GenerateDataKeyWithoutPlaintext,
    Operation::ReEncryptFrom,
    Operation::ReEncryptTo,
    Operation::CreateGrant,
    Operation::RetireGrant,
    Operation::DescribeKey,
];

fn finding(code: FindingCode, severity: Severity, message: String) -> Finding {
    Finding {
        code,
        severity,
        message,
    }
}

/// Seconds since the epoch of an RFC 3339 time.
fn epoch(t: Option<&str>) -> Option<i64> {
    Some(crate::event::epoch_ms(t?)?.div_euclid(1000))
}

fn sorted_ops(ops: &[Operation]) -> Vec<&str> {
    let mut v: Vec<&str> = ops.iter().map(Operation::as_str).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// Constraints compared as KMS does (context keys case-insensitive).
type NormalConstraints = (Vec<(String, String)>, Vec<(String, String)>, Option<String>);

fn normalised(c: Option<&Constraints>) -> Option<NormalConstraints> {
    let c = c.filter(|c| !c.is_empty())?;
    let norm = |m: &Option<BTreeMap<String, String>>| {
        m.iter()
            .flatten()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect::<Vec<_>>()
    };
    Some((
        norm(&c.encryption_context_equals),
        norm(&c.encryption_context_subset),
        c.source_arn.clone(),
    ))
}

/// The grantee correlation compares (and the ledger indexes records by):
/// the effective grantee, trimmed.
pub fn correlation_grantee(facts: &GrantFacts) -> Option<&str> {
    facts
        .effective_grantee()
        .map(str::trim)
        .filter(|g| !g.is_empty())
}

fn same_grantee(a: &GrantFacts, b: &GrantFacts) -> bool {
    match (correlation_grantee(a), correlation_grantee(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// The role ARN-ish identity of a principal: `account/role` for roles and
/// their sessions, the ARN otherwise.
fn identity(p: &str) -> Option<String> {
    match Principal::parse(p) {
        Principal::Role { account, name } => Some(format!("{account}/role/{name}")),
        Principal::AssumedRole { account, role, .. } => Some(format!("{account}/role/{role}")),
        Principal::User { account, name } => Some(format!("{account}/user/{name}")),
        Principal::AccountRoot { account } => Some(format!("{account}/root")),
        _ => None,
    }
}

/// `self-grant`: the caller (or its role) is the grantee (or its role).
pub fn self_grant(caller: &Caller, facts: &GrantFacts) -> Option<Finding> {
    let grantee = facts.effective_grantee()?;
    let target = identity(grantee)?;
    let mine = [caller.arn.as_deref(), caller.session_issuer_arn.as_deref()]
        .into_iter()
        .flatten()
        .filter_map(identity)
        .any(|id| id == target);
    mine.then(|| {
        finding(
            FindingCode::SelfGrant,
            Severity::High,
            format!(
                "the caller granted itself: {} is the caller's own identity or role",
                quote(grantee)
            ),
        )
    })
}

/// `over-broad`: every symmetric-key operation.
pub fn over_broad(facts: &GrantFacts) -> Option<Finding> {
    SYMMETRIC_OPERATIONS
        .iter()
        .all(|op| facts.has_operation(op))
        .then(|| {
            finding(
                FindingCode::OverBroad,
                Severity::Medium,
                "allows every symmetric-key operation, including CreateGrant".to_string(),
            )
        })
}

/// Correlate a CreateGrant with the key's other grants in the ledger
/// (`records`: live grants and removed ones, any order; the event's own
/// record, if already written, is ignored). A service's grants get none.
pub fn correlate(
    event: &GrantEvent,
    facts: &GrantFacts,
    origin: Origin,
    records: &[GrantRecord],
    settings: &CorrelationSettings,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if origin == Origin::Service {
        return out;
    }
    let key = event.key_arn.as_deref();
    let now = epoch(event.event_time.as_deref());
    let others: Vec<&GrantRecord> = records
        .iter()
        .filter(|r| key.is_none_or(|k| r.key_arn == k))
        .filter(|r| r.created_event_id != event.event_id)
        .filter(|r| event.grant_id.as_deref() != Some(r.grant_id.as_str()))
        .collect();
    let ops = sorted_ops(&facts.operations);
    let constraints = normalised(facts.constraints.as_ref());

    if let Some(dup) = others.iter().find(|r| {
        r.removal.is_none()
            && same_grantee(&r.grant, facts)
            && sorted_ops(&r.grant.operations) == ops
            && normalised(r.grant.constraints.as_ref()) == constraints
    }) {
        out.push(finding(
            FindingCode::DuplicateGrant,
            Severity::Low,
            format!(
                "same grantee, operations and constraints as live grant {} on this key",
                quote(&dup.grant_id)
            ),
        ));
    }

    if let Some(now) = now {
        let recent = others
            .iter()
            .filter(|r| same_grantee(&r.grant, facts))
            .filter_map(|r| epoch(r.created_at.as_deref()))
            .filter(|t| *t <= now && now - t <= settings.burst_window_secs)
            .count();
        // This grant plus the recent ones.
        if recent + 1 > settings.burst_count {
            out.push(finding(
                FindingCode::GrantBurst,
                Severity::High,
                format!(
                    "{} grants to this grantee on this key within {} minutes",
                    recent + 1,
                    settings.burst_window_secs / 60
                ),
            ));
        }
        if let Some(gone) = others.iter().find(|r| {
            same_grantee(&r.grant, facts)
                && sorted_ops(&r.grant.operations) == ops
                && r.removal
                    .as_ref()
                    .and_then(|removal| epoch(removal.at.as_deref()))
                    .is_some_and(|t| t <= now && now - t <= settings.persistence_window_secs)
        }) {
            out.push(finding(
                FindingCode::GrantPersistence,
                Severity::High,
                format!(
                    "re-created within {} hours of the removal of grant {} (same grantee and operations)",
                    settings.persistence_window_secs / 3600,
                    quote(&gone.grant_id)
                ),
            ));
        }
    }
    out.extend(self_grant(&event.caller, facts));
    out.extend(over_broad(facts));
    out
}

/// What to do with a copy of a cross-account call (same `sharedEventID`)
/// when the other copy was already judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyAction {
    /// The first copy to arrive: alert as usual.
    Alert,
    /// The other copy alerted (or was judged) at this severity or higher:
    /// only enrich the ledger record, send nothing.
    EnrichOnly,
    /// This copy raises the severity (e.g. the key owner's copy shows a
    /// foreign key): send one follow-up.
    FollowUp,
}

/// CloudTrail writes a cross-account call into both accounts with the same
/// `sharedEventID`. The first copy alerts; the second only enriches the
/// ledger record unless it raises the severity, then it sends one
/// follow-up. `earlier`: the severity recorded for the first copy, if any.
pub fn second_copy(earlier: Option<Severity>, now: Severity) -> CopyAction {
    match earlier {
        None => CopyAction::Alert,
        Some(before) if now > before => CopyAction::FollowUp,
        Some(_) => CopyAction::EnrichOnly,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::GrantAction;
    use crate::record::Removal;

    const KEY: &str = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab";

    fn facts(grantee: &str, ops: &[Operation]) -> GrantFacts {
        GrantFacts {
            grantee: Some(grantee.into()),
            operations: ops.to_vec(),
            ..GrantFacts::default()
        }
    }

    fn event(time: &str, facts: GrantFacts) -> GrantEvent {
        GrantEvent {
            event_id: format!("e-{time}"),
            action: GrantAction::CreateGrant,
            event_time: Some(time.into()),
            account: Some("111122223333".into()),
            region: Some("us-east-1".into()),
            event_version: None,
            caller: Caller {
                arn: Some("arn:aws:sts::111122223333:assumed-role/Admin/alice".into()),
                session_issuer_arn: Some("arn:aws:iam::111122223333:role/Admin".into()),
                ..Caller::default()
            },
            key: Some(KEY.into()),
            key_arn: Some(KEY.into()),
            grant_id: Some(format!("g-{time}")),
            grant: Some(facts),
            dry_run: false,
            error_code: None,
            error_message: None,
            used_grant_token: false,
            shared_event_id: None,
        }
    }

    fn record(id: &str, at: &str, facts: GrantFacts, removed_at: Option<&str>) -> GrantRecord {
        GrantRecord {
            key_arn: KEY.into(),
            grant_id: id.into(),
            account: Some("111122223333".into()),
            region: Some("us-east-1".into()),
            created_event_id: format!("c-{id}"),
            created_at: Some(at.into()),
            created_by: Caller::default(),
            origin: Origin::Manual,
            service: None,
            grant: facts,
            removal: removed_at.map(|t| Removal {
                action: GrantAction::RevokeGrant,
                event_id: format!("r-{id}"),
                at: Some(t.into()),
                by: Caller::default(),
                origin: Origin::Manual,
            }),
        }
    }

    fn codes(f: &[Finding]) -> Vec<FindingCode> {
        f.iter().map(|f| f.code).collect()
    }

    const APP: &str = "arn:aws:iam::111122223333:role/app";

    #[test]
    fn copies_of_a_cross_account_call() {
        assert_eq!(second_copy(None, Severity::Low), CopyAction::Alert);
        assert_eq!(
            second_copy(Some(Severity::High), Severity::High),
            CopyAction::EnrichOnly
        );
        assert_eq!(
            second_copy(Some(Severity::High), Severity::Medium),
            CopyAction::EnrichOnly
        );
        assert_eq!(
            second_copy(Some(Severity::Medium), Severity::Critical),
            CopyAction::FollowUp
        );
    }

    #[test]
    fn duplicates_of_live_grants_only() {
        let f = facts(APP, &[Operation::Decrypt, Operation::Encrypt]);
        let same = facts(APP, &[Operation::Encrypt, Operation::Decrypt]);
        let e = event("2026-11-28T10:00:00Z", f.clone());
        let live = [record("a", "2026-11-01T10:00:00Z", same.clone(), None)];
        let got = correlate(
            &e,
            &f,
            Origin::Manual,
            &live,
            &CorrelationSettings::default(),
        );
        assert_eq!(codes(&got), vec![FindingCode::DuplicateGrant]);
        let removed = [record(
            "a",
            "2026-11-01T10:00:00Z",
            same,
            Some("2026-11-02T10:00:00Z"),
        )];
        assert!(correlate(
            &e,
            &f,
            Origin::Manual,
            &removed,
            &CorrelationSettings::default()
        )
        .is_empty());
    }

    #[test]
    fn bursts_need_more_than_five_in_ten_minutes() {
        let f = facts(APP, &[Operation::Decrypt]);
        let e = event("2026-11-28T10:09:00Z", f.clone());
        let five: Vec<GrantRecord> = (0..5)
            .map(|i| {
                let mut g = f.clone();
                g.name = Some(format!("n{i}"));
                g.constraints = Some(Constraints {
                    encryption_context_subset: Some(BTreeMap::from([(
                        "n".to_string(),
                        i.to_string(),
                    )])),
                    ..Constraints::default()
                });
                record(
                    &format!("b{i}"),
                    &format!("2026-11-28T10:0{i}:00Z"),
                    g,
                    None,
                )
            })
            .collect();
        let got = correlate(
            &e,
            &f,
            Origin::Manual,
            &five,
            &CorrelationSettings::default(),
        );
        assert!(codes(&got).contains(&FindingCode::GrantBurst), "{got:?}");
        let four = &five[1..];
        assert!(!codes(&correlate(
            &e,
            &f,
            Origin::Manual,
            four,
            &CorrelationSettings::default()
        ))
        .contains(&FindingCode::GrantBurst));
        // Outside the window they do not count; the setting moves it.
        let late = event("2026-11-28T10:30:00Z", f.clone());
        assert!(!codes(&correlate(
            &late,
            &f,
            Origin::Manual,
            &five,
            &CorrelationSettings::default()
        ))
        .contains(&FindingCode::GrantBurst));
        let wide = CorrelationSettings {
            burst_window_secs: 3600,
            ..CorrelationSettings::default()
        };
        assert!(codes(&correlate(&late, &f, Origin::Manual, &five, &wide))
            .contains(&FindingCode::GrantBurst));
    }

    #[test]
    fn persistence_within_a_day_of_removal() {
        let f = facts(APP, &[Operation::Decrypt]);
        let gone = [record(
            "p",
            "2026-11-27T09:00:00Z",
            f.clone(),
            Some("2026-11-27T12:00:00Z"),
        )];
        let e = event("2026-11-28T10:00:00Z", f.clone());
        assert!(codes(&correlate(
            &e,
            &f,
            Origin::Manual,
            &gone,
            &CorrelationSettings::default()
        ))
        .contains(&FindingCode::GrantPersistence));
        let later = event("2026-11-29T13:00:00Z", f.clone());
        assert!(!codes(&correlate(
            &later,
            &f,
            Origin::Manual,
            &gone,
            &CorrelationSettings::default()
        ))
        .contains(&FindingCode::GrantPersistence));
    }

    #[test]
    fn self_grants_compare_roles_and_sessions() {
        let caller = Caller {
            arn: Some("arn:aws:sts::111122223333:assumed-role/Admin/alice".into()),
            session_issuer_arn: Some("arn:aws:iam::111122223333:role/Admin".into()),
            ..Caller::default()
        };
        for grantee in [
            "arn:aws:iam::111122223333:role/Admin",
            "arn:aws:sts::111122223333:assumed-role/Admin/other-session",
        ] {
            assert!(
                self_grant(&caller, &facts(grantee, &[Operation::Decrypt])).is_some(),
                "{grantee}"
            );
        }
        assert!(self_grant(&caller, &facts(APP, &[Operation::Decrypt])).is_none());
        assert!(self_grant(&caller, &facts("arn:aws:iam::444455556666:role/Admin", &[])).is_none());
    }

    #[test]
    fn over_broad_and_service_patterns() {
        let all = facts(APP, &SYMMETRIC_OPERATIONS);
        assert!(over_broad(&all).is_some());
        assert!(over_broad(&facts(APP, &[Operation::Decrypt])).is_none());
        // A service re-creating the same grant (Lambda on every update): nothing.
        let e = event("2026-11-28T10:00:00Z", all.clone());
        let live: Vec<GrantRecord> = (0..8)
            .map(|i| record(&format!("s{i}"), "2026-11-28T09:59:00Z", all.clone(), None))
            .collect();
        assert!(correlate(
            &e,
            &all,
            Origin::Service,
            &live,
            &CorrelationSettings::default()
        )
        .is_empty());
        let person = correlate(
            &e,
            &all,
            Origin::Manual,
            &live,
            &CorrelationSettings::default(),
        );
        for code in [
            FindingCode::DuplicateGrant,
            FindingCode::GrantBurst,
            FindingCode::OverBroad,
        ] {
            assert!(codes(&person).contains(&code), "{code}");
        }
    }
}
