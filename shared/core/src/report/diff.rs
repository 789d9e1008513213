//! The diff against the previous report: new grants, removed grants,
//! grants whose severity changed.
//!
//! A grant is identified by (key ARN, grant id). A grant missing now counts
//! as removed only when its key was read completely this time and its
//! account-region was in this report's scope: a coverage gap is not a
//! removal.

use super::model::{
    Coverage, Diff, GrantRef, GrantReport, KeyReport, Report, SeverityChange, TrendPoint,
};
use crate::verdict::{Origin, Severity};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};

/// What the next run reads of a stored `report.json`: the grants' diff
/// fields, the trend, the coverage (where a deadline cut the run) and the
/// headline counts. Everything else in the file is skipped while parsing,
/// so the previous report costs a fraction of a full [`Report`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct PreviousReport {
    pub generated_at: String,
    #[serde(default)]
    pub partial: bool,
    #[serde(default)]
    pub coverage: Coverage,
    #[serde(default)]
    pub summary: PreviousSummary,
    #[serde(default)]
    pub keys: Vec<PreviousKey>,
    #[serde(default)]
    pub trend: Vec<TrendPoint>,
}

/// The counts of a previous report its trend point needs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
pub struct PreviousSummary {
    #[serde(default)]
    pub grants: usize,
    #[serde(default)]
    pub risky: usize,
    #[serde(default)]
    pub by_severity: BTreeMap<String, usize>,
    #[serde(default)]
    pub by_origin: BTreeMap<String, usize>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PreviousKey {
    pub account: String,
    pub region: String,
    pub key_arn: String,
    #[serde(default)]
    pub grants: Vec<PreviousGrant>,
}

/// A previous grant: its [`GrantRef`] fields.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct PreviousGrant {
    pub grant_id: String,
    pub name: Option<String>,
    pub grantee: Option<String>,
    pub origin: Origin,
    pub service: Option<String>,
    pub severity: Severity,
}

impl PreviousReport {
    /// Parse a stored report.json, reading only what the next run needs.
    pub fn from_json(body: &[u8]) -> Result<PreviousReport, serde_json::Error> {
        serde_json::from_slice(body)
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
}

impl From<&Report> for PreviousReport {
    fn from(report: &Report) -> Self {
        PreviousReport {
            generated_at: report.generated_at.clone(),
            partial: report.partial,
            coverage: report.coverage.clone(),
            summary: PreviousSummary {
                grants: report.summary.grants,
                risky: report.summary.risky,
                by_severity: report.summary.by_severity.clone(),
                by_origin: report.summary.by_origin.clone(),
            },
            keys: report
                .keys
                .iter()
                .map(|k| PreviousKey {
                    account: k.account.clone(),
                    region: k.region.clone(),
                    key_arn: k.key_arn.clone(),
                    grants: k
                        .grants
                        .iter()
                        .map(|g| PreviousGrant {
                            grant_id: g.grant_id.clone(),
                            name: g.name.clone(),
                            grantee: g.grantee.clone(),
                            origin: g.origin,
                            service: g.service.clone(),
                            severity: g.severity,
                        })
                        .collect(),
                })
                .collect(),
            trend: report.trend.clone(),
        }
    }
}

impl PreviousGrant {
    fn grant_ref(&self, key: &PreviousKey) -> GrantRef {
        GrantRef {
            account: key.account.clone(),
            region: key.region.clone(),
            key_arn: key.key_arn.clone(),
            grant_id: self.grant_id.clone(),
            name: self.name.clone(),
            grantee: self.grantee.clone(),
            origin: self.origin,
            service: self.service.clone(),
            severity: self.severity,
        }
    }
}

/// Compare `current` with `previous` (a whole report: tests, the demo).
pub fn diff(previous: &Report, current: &Report) -> Diff {
    diff_previous(&PreviousReport::from(previous), current)
}

/// Compare `current` with what was read of the previous report. Only the
/// grants that differ become [`GrantRef`]s; the rest are compared by
/// reference.
pub fn diff_previous(previous: &PreviousReport, current: &Report) -> Diff {
    let before: BTreeMap<(&str, &str), (&PreviousKey, &PreviousGrant)> = previous
        .keys
        .iter()
        .flat_map(|k| k.grants.iter().map(move |g| (k, g)))
        .map(|(k, g)| ((k.key_arn.as_str(), g.grant_id.as_str()), (k, g)))
        .collect();
    let now: BTreeMap<(&str, &str), (&KeyReport, &GrantReport)> = current
        .grants()
        .map(|(k, g)| ((k.key_arn.as_str(), g.grant_id.as_str()), (k, g)))
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
    for (id, (key, grant)) in &now {
        match before.get(id) {
            None => out.new_grants.push(GrantRef::of(key, grant)),
            Some((_, old)) if old.severity != grant.severity => {
                out.severity_changes.push(SeverityChange {
                    grant: GrantRef::of(key, grant),
                    from: old.severity,
                    to: grant.severity,
                })
            }
            Some(_) => {}
        }
    }
    for (id, (key, grant)) in &before {
        if now.contains_key(id) {
            continue;
        }
        // The key was read completely and the grant is gone; or the whole
        // key is gone from an account-region read completely (deleted key).
        let key_gone_from_complete_region = !keys_known_now.contains(id.0)
            && current
                .coverage
                .account_region_complete(&key.account, &key.region);
        if keys_read_now.contains(id.0) || key_gone_from_complete_region {
            out.removed_grants.push(grant.grant_ref(key));
        }
    }
    out
}

/// Attach the diff to `current` and fill the summary's diff counts
/// (`previous` a whole report: tests, the demo).
pub fn apply(current: &mut Report, previous: Option<&Report>) {
    apply_previous(current, previous.map(PreviousReport::from).as_ref());
}

/// Attach the diff against what was read of the previous report to
/// `current` and fill the summary's diff counts.
pub fn apply_previous(current: &mut Report, previous: Option<&PreviousReport>) {
    match previous {
        Some(previous) => {
            let d = diff_previous(previous, current);
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
            unread: Default::default(),
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

    #[test]
    fn the_previous_report_read_from_json_diffs_as_the_whole_one() {
        let mut previous = report(vec![key(
            "k1",
            vec![
                grant("g-gone", Severity::Info),
                grant("g-up", Severity::Low),
            ],
        )]);
        previous.trend = vec![previous.trend_point()];
        let current = report(vec![key(
            "k1",
            vec![grant("g-up", Severity::High), grant("g-new", Severity::Low)],
        )]);
        let json = crate::report::to_json(&previous).unwrap();
        let slim = PreviousReport::from_json(&json).unwrap();
        assert_eq!(slim, PreviousReport::from(&previous));
        assert_eq!(diff_previous(&slim, &current), diff(&previous, &current));
        assert_eq!(slim.trend_point(), previous.trend_point());
        assert_eq!(
            diff(&previous, &current).removed_grants[0].grant_id,
            "g-gone"
        );
    }

    #[test]
    fn a_previous_report_without_its_grants_fields_is_an_error_not_an_empty_diff() {
        let broken = br#"{"generated_at": "2026-11-21T06:00:00Z", "keys": [{"account": "1", "region": "r", "key_arn": "k", "grants": [{"grant_id": "g"}]}]}"#;
        assert!(PreviousReport::from_json(broken).is_err());
    }
}
