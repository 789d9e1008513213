//! The diff against the previous report: new grants, removed grants,
//! grants whose severity changed.
//!
//! A grant is identified by (key ARN, grant id). A grant missing now counts
//! as removed only when its key was read completely this time and its
//! account-region was in this report's scope: a coverage gap is not a
//! removal.

use super::model::{Diff, GrantRef, Report, SeverityChange};
use std::collections::{BTreeMap, BTreeSet};

/// Compare `current` with `previous`.
pub fn diff(previous: &Report, current: &Report) -> Diff {
    let before: BTreeMap<(&str, &str), GrantRef> = previous
        .grants()
        .map(|(k, g)| {
            (
                (k.key_arn.as_str(), g.grant_id.as_str()),
                GrantRef::of(k, g),
            )
        })
        .collect();
    let now: BTreeMap<(&str, &str), GrantRef> = current
        .grants()
        .map(|(k, g)| {
            (
                (k.key_arn.as_str(), g.grant_id.as_str()),
                GrantRef::of(k, g),
            )
        })
        .collect();
    let keys_read_now: BTreeSet<&str> = current
        .keys
        .iter()
        .filter(|k| k.complete && current.coverage.key_complete(&k.key_arn))
        .map(|k| k.key_arn.as_str())
        .collect();
    let keys_known_now: BTreeSet<&str> = current.keys.iter().map(|k| k.key_arn.as_str()).collect();

    let mut out = Diff {
        previous_generated_at: previous.generated_at.clone(),
        previous_partial: previous.partial,
        ..Diff::default()
    };
    for (id, grant) in &now {
        match before.get(id) {
            None => out.new_grants.push(grant.clone()),
            Some(old) if old.severity != grant.severity => {
                out.severity_changes.push(SeverityChange {
                    grant: grant.clone(),
                    from: old.severity,
                    to: grant.severity,
                })
            }
            Some(_) => {}
        }
    }
    for (id, grant) in &before {
        if now.contains_key(id) {
            continue;
        }
        let key = id.0;
        // The key was read completely and the grant is gone; or the whole
        // key is gone from an account-region read completely (deleted key).
        let key_gone_from_complete_region = !keys_known_now.contains(key)
            && current
                .coverage
                .account_region_complete(&grant.account, &grant.region);
        if keys_read_now.contains(key) || key_gone_from_complete_region {
            out.removed_grants.push(grant.clone());
        }
    }
    out
}

/// Attach the diff to `current` and fill the summary's diff counts.
pub fn apply(current: &mut Report, previous: Option<&Report>) {
    match previous {
        Some(previous) => {
            let d = diff(previous, current);
            current.summary.new_grants = Some(d.new_grants.len());
            current.summary.removed_grants = Some(d.removed_grants.len());
            current.summary.severity_changes = Some(d.severity_changes.len());
            current.diff = Some(d);
        }
        None => {
            current.summary.new_grants = None;
            current.summary.removed_grants = None;
            current.summary.severity_changes = None;
            current.diff = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::model::{CoverageGap, GapReason};
    use crate::report::test_support::{grant, key, report};
    use crate::verdict::Severity;

    #[test]
    fn new_removed_and_changed_grants_are_found() {
        let previous = report(vec![key(
            "k1",
            vec![
                grant("g-kept", Severity::Low),
                grant("g-gone", Severity::Info),
                grant("g-up", Severity::Low),
            ],
        )]);
        let current = report(vec![key(
            "k1",
            vec![
                grant("g-kept", Severity::Low),
                grant("g-up", Severity::High),
                grant("g-new", Severity::Medium),
            ],
        )]);
        let d = diff(&previous, &current);
        let ids = |v: &[GrantRef]| v.iter().map(|g| g.grant_id.clone()).collect::<Vec<_>>();
        assert_eq!(ids(&d.new_grants), vec!["g-new"]);
        assert_eq!(ids(&d.removed_grants), vec!["g-gone"]);
        assert_eq!(d.severity_changes.len(), 1);
        assert_eq!(d.severity_changes[0].grant.grant_id, "g-up");
        assert_eq!(
            (d.severity_changes[0].from, d.severity_changes[0].to),
            (Severity::Low, Severity::High)
        );
    }

    #[test]
    fn a_key_not_read_this_time_is_not_a_removal() {
        let previous = report(vec![key("k1", vec![grant("g1", Severity::Low)])]);
        let mut current = report(vec![key("k1", vec![])]);
        current.coverage.gaps.push(CoverageGap {
            account: "111111111111".into(),
            region: "eu-west-1".into(),
            key_arn: Some(current.keys[0].key_arn.clone()),
            reason: GapReason::Throttled,
            detail: "still throttled".into(),
        });
        assert!(diff(&previous, &current).removed_grants.is_empty());
    }

    #[test]
    fn a_deleted_key_in_a_complete_region_removes_its_grants_but_an_unread_region_does_not() {
        let previous = report(vec![key("k1", vec![grant("g1", Severity::Low)])]);
        let current = report(vec![]);
        assert_eq!(diff(&previous, &current).removed_grants.len(), 1);

        let mut unread = report(vec![]);
        unread.coverage.account_regions[0].status = crate::report::model::CoverageStatus::Unread;
        assert!(diff(&previous, &unread).removed_grants.is_empty());
    }

    #[test]
    fn apply_fills_summary_counts() {
        let previous = report(vec![key("k1", vec![grant("g1", Severity::Low)])]);
        let mut current = report(vec![key("k1", vec![grant("g2", Severity::Low)])]);
        apply(&mut current, Some(&previous));
        assert_eq!(current.summary.new_grants, Some(1));
        assert_eq!(current.summary.removed_grants, Some(1));
        assert_eq!(current.summary.severity_changes, Some(0));
        apply(&mut current, None);
        assert!(current.diff.is_none());
        assert_eq!(current.summary.new_grants, None);
    }
}
