//! Counts over many verdicts, for digests (Slack and SNS count the same
//! way).

use super::describe;
use crate::verdict::{Severity, Verdict};
use std::collections::{BTreeMap, BTreeSet};

/// What a digest says about a batch of verdicts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tally {
    pub total: usize,
    /// The most severe verdict's severity (`None` for no verdicts).
    pub worst: Option<Severity>,
    /// Every severity, least severe first, with its count (zeros kept).
    pub by_severity: Vec<(Severity, usize)>,
    /// The most frequent event names, most frequent first.
    pub by_event: Vec<(String, usize)>,
    /// How many other event names there were.
    pub other_events: usize,
    /// The most frequent actors (short names), most frequent first.
    pub by_actor: Vec<(String, usize)>,
    pub other_actors: usize,
    /// The most frequent keys (alias or key id), most frequent first.
    pub by_key: Vec<(String, usize)>,
    pub other_keys: usize,
    /// Every finding code seen (kebab-case), sorted.
    pub finding_codes: BTreeSet<String>,
    /// Every origin seen (`service`, `manual`, `unknown`), sorted.
    pub origins: BTreeSet<String>,
    /// Every service seen, sorted.
    pub services: BTreeSet<String>,
    pub accounts: BTreeSet<String>,
    pub regions: BTreeSet<String>,
}

/// Count `verdicts`, naming at most `top` event names, actors and keys.
pub fn tally(verdicts: &[Verdict], top: usize) -> Tally {
    let mut by_severity: BTreeMap<Severity, usize> =
        Severity::ALL.iter().map(|s| (*s, 0)).collect();
    let mut events = BTreeMap::<String, usize>::new();
    let mut actors = BTreeMap::<String, usize>::new();
    let mut keys = BTreeMap::<String, usize>::new();
    let mut t = Tally {
        total: verdicts.len(),
        worst: verdicts.iter().map(|v| v.severity).max(),
        by_severity: Vec::new(),
        by_event: Vec::new(),
        other_events: 0,
        by_actor: Vec::new(),
        other_actors: 0,
        by_key: Vec::new(),
        other_keys: 0,
        finding_codes: BTreeSet::new(),
        origins: BTreeSet::new(),
        services: BTreeSet::new(),
        accounts: BTreeSet::new(),
        regions: BTreeSet::new(),
    };
    for v in verdicts {
        *by_severity.entry(v.severity).or_default() += 1;
        *events.entry(v.event_name.clone()).or_default() += 1;
        *actors.entry(describe::actor_name(v)).or_default() += 1;
        *keys.entry(describe::key_label(v)).or_default() += 1;
        t.finding_codes
            .extend(v.findings.iter().map(|f| f.code.as_str().to_string()));
        t.origins.insert(v.origin.as_str().to_string());
        t.services.extend(v.service.iter().cloned());
        t.accounts.extend(v.account.iter().cloned());
        t.regions.extend(v.region.iter().cloned());
    }
    t.by_severity = by_severity.into_iter().collect();
    (t.by_event, t.other_events) = most_frequent(events, top);
    (t.by_actor, t.other_actors) = most_frequent(actors, top);
    (t.by_key, t.other_keys) = most_frequent(keys, top);
    t
}

/// A storm window's digest: the carried verdicts (the most severe, at most
/// `ledger::DIGEST_WORST`) counted as [`tally`] does, then the total and
/// the counts by severity taken from the ledger's running tallies, which
/// cover every alert of the window. The counts by event, actor and key
/// stay those of the carried verdicts.
pub fn tally_of_digest(digest: &crate::ports::notify::Digest, top: usize) -> Tally {
    let mut t = tally(&digest.alerts, top);
    let total = usize::try_from(digest.tally.total).unwrap_or(usize::MAX);
    if total > t.total {
        t.total = total;
        t.by_severity = Severity::ALL
            .iter()
            .map(|s| {
                let n = digest.tally.by_severity.get(s).copied().unwrap_or(0);
                (*s, usize::try_from(n).unwrap_or(usize::MAX))
            })
            .collect();
        t.worst = t
            .by_severity
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(s, _)| *s)
            .max()
            .or(t.worst);
    }
    t
}

/// The `top` most frequent names (ties by name), and how many were left.
fn most_frequent(counts: BTreeMap<String, usize>, top: usize) -> (Vec<(String, usize)>, usize) {
    let mut all: Vec<(String, usize)> = counts.into_iter().collect();
    all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let others = all.len().saturating_sub(top);
    all.truncate(top);
    (all, others)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testkit::{lambda_service_grant, manual_grant, removal_of_lambda_grant};

    #[test]
    fn counts_by_severity_event_actor_and_key() {
        let mut bob = manual_grant();
        bob.actor.arn = Some("arn:aws:iam::111122223333:user/bob".into());
        let verdicts = vec![
            manual_grant(),
            manual_grant(),
            bob,
            lambda_service_grant(),
            removal_of_lambda_grant(),
        ];
        let t = tally(&verdicts, 1);
        assert_eq!(t.total, 5);
        assert_eq!(t.worst, Some(Severity::High));
        assert_eq!(
            t.by_severity,
            vec![
                (Severity::Info, 1),
                (Severity::Low, 0),
                (Severity::Medium, 0),
                (Severity::High, 4),
                (Severity::Critical, 0)
            ]
        );
        assert_eq!(t.by_event, vec![("CreateGrant".to_string(), 4)]);
        assert_eq!(t.other_events, 1);
        assert_eq!(t.by_actor, vec![("alice".to_string(), 4)]);
        assert_eq!(t.other_actors, 1);
        assert_eq!(t.by_key, vec![("alias/payments".to_string(), 4)]);
        assert_eq!(t.other_keys, 1);
        assert!(t.finding_codes.contains("service-grant-removed"));
        assert_eq!(
            t.origins.iter().map(String::as_str).collect::<Vec<_>>(),
            vec!["manual", "service"]
        );
        assert_eq!(t.services.iter().collect::<Vec<_>>(), vec!["lambda"]);
    }

    #[test]
    fn a_digest_counts_every_alert_of_its_window_not_only_those_it_carries() {
        use crate::ports::ledger::DigestTally;
        use crate::ports::notify::Digest;
        let carried = vec![manual_grant(), manual_grant()];
        let mut ledger_tally = DigestTally::default();
        for _ in 0..4_000 {
            ledger_tally.add(&lambda_service_grant());
        }
        for v in &carried {
            ledger_tally.add(v);
        }
        let digest = Digest {
            window_start: 0,
            window_seconds: 60,
            alerts: carried,
            tally: ledger_tally,
        };
        let t = tally_of_digest(&digest, 5);
        assert_eq!(t.total, 4_002);
        assert!(t.by_severity.contains(&(Severity::Info, 4_000)));
        assert!(t.by_severity.contains(&(Severity::High, 2)));
        assert_eq!(t.worst, Some(Severity::High));
        // A digest whose tally is not larger keeps the carried counts.
        let small = Digest {
            tally: DigestTally::default(),
            ..digest
        };
        assert_eq!(tally_of_digest(&small, 5).total, 2);
    }

    #[test]
    fn nothing_counts_to_nothing() {
        let t = tally(&[], 5);
        assert_eq!(t.total, 0);
        assert_eq!(t.worst, None);
        assert!(t.by_actor.is_empty());
    }
}
