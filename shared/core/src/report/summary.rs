//! What the report's summary leads with: the grants that need a look
//! ([`attention`]). The summary itself is a notice rendered in
//! [`crate::render::report`] (e-mail, Slack, Q Developer), like alerts and
//! digests.

use super::model::{GrantRef, GrantReport, KeyReport, Report};
use crate::render::report::ReportNotice;
use crate::render::SnsMessage;
use crate::verdict::Origin;
use std::collections::HashSet;

/// A grant worth a reviewer's look, and why it is listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attention {
    pub grant: GrantRef,
    /// New since the previous report.
    pub is_new: bool,
    pub aliases: Vec<String>,
    pub operations: Vec<String>,
    pub finding_codes: Vec<String>,
}

/// New grants that are risky or manual first (worst first), then other
/// risky grants (worst first), then other new grants.
pub fn attention(report: &Report) -> Vec<Attention> {
    let new: HashSet<(&str, &str)> = report
        .diff
        .iter()
        .flat_map(|d| d.new_grants.iter())
        .map(|g| (g.key_arn.as_str(), g.grant_id.as_str()))
        .collect();
    let mut items: Vec<(u8, Attention)> = report
        .grants()
        .filter_map(|(key, grant)| {
            let is_new = new.contains(&(key.key_arn.as_str(), grant.grant_id.as_str()));
            let notable = grant.is_risky()
                || (grant.origin == Origin::Manual && grant.suppressed_by.is_none());
            let rank = match (is_new, notable, grant.is_risky()) {
                (true, true, _) => 0,
                (false, _, true) => 1,
                (true, false, _) => 2,
                _ => return None,
            };
            Some((rank, item(key, grant, is_new)))
        })
        .collect();
    items.sort_by(|a, b| {
        a.0.cmp(&b.0)
            .then(b.1.grant.severity.cmp(&a.1.grant.severity))
            .then(a.1.grant.key_arn.cmp(&b.1.grant.key_arn))
            .then(a.1.grant.grant_id.cmp(&b.1.grant.grant_id))
    });
    items.into_iter().map(|(_, a)| a).collect()
}

fn item(key: &KeyReport, grant: &GrantReport, is_new: bool) -> Attention {
    Attention {
        grant: GrantRef::of(key, grant),
        is_new,
        aliases: key.aliases.clone(),
        operations: grant
            .operations
            .iter()
            .map(|o| o.as_str().to_string())
            .collect(),
        finding_codes: grant
            .findings
            .iter()
            .map(|f| f.code.as_str().to_string())
            .collect(),
    }
}

/// The e-mail of the report at `link` ([`crate::render::report::sns`]).
pub fn sns(report: &Report, link: &str) -> SnsMessage {
    crate::render::report::sns(&ReportNotice { report, link })
}

/// The Slack message of the report at `link`
/// ([`crate::render::report::slack`]).
pub fn slack(report: &Report, link: &str) -> serde_json::Value {
    crate::render::report::slack(&ReportNotice { report, link })
}
