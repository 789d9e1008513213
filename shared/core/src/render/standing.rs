//! A standing grant of the weekly report as a verdict, so the machine
//! formats render report and watcher findings alike: the same ASFF `Id` /
//! OCSF `finding_info.uid` (`grantwatch/<account>/<region>/<key id>/<grant
//! id>`), so Security Hub updates the finding the watcher created, and the
//! report's `ocsf.jsonl`.

use super::asff;
use super::links::LinkSettings;
use super::ocsf;
use crate::report::model::{GrantReport, KeyReport, Report};
use crate::verdict::{ActorView, Verdict};
use serde_json::Value;

/// The verdict a standing grant stands for: its creation (`CreateGrant`),
/// with the creator the ledger knew, judged as the report judged it.
/// `event_id` is `report/<generated_at>/<grant id>` (the creating event's
/// id when the ledger knew it).
pub fn verdict_of(key: &KeyReport, g: &GrantReport, generated_at: &str) -> Verdict {
    let created_by = g.created_by.as_ref();
    Verdict {
        event_id: created_by
            .and_then(|c| c.event_id.clone())
            .unwrap_or_else(|| format!("report/{generated_at}/{}", g.grant_id)),
        event_name: "CreateGrant".to_string(),
        event_time: g.created.clone(),
        account: Some(key.account.clone()),
        region: Some(key.region.clone()),
        key: Some(key.key_id.clone()),
        key_arn: Some(key.key_arn.clone()),
        key_alias: key.aliases.first().cloned(),
        grant_id: Some(g.grant_id.clone()),
        grant_name: g.name.clone(),
        actor: ActorView {
            arn: created_by.and_then(|c| c.arn.clone()),
            identity_type: created_by.and_then(|c| c.identity_type.clone()),
            account: None,
            invoked_by: created_by.and_then(|c| c.invoked_by.clone()),
        },
        source_ip: created_by.and_then(|c| c.source_ip.clone()),
        user_agent: created_by.and_then(|c| c.user_agent.clone()),
        grantee: g.grantee.clone(),
        retiring_principal: g.retiring_principal.clone(),
        operations: g.operations.clone(),
        constraints: g.constraints.clone(),
        origin: g.origin,
        service: g.service.clone(),
        evidence: g.evidence.clone(),
        severity: g.severity,
        alert: false,
        findings: g.findings.clone(),
        suppressed_by: g.suppressed_by.clone(),
        rule_notes: Vec::new(),
        error_code: None,
        dry_run: false,
        removed_grant: None,
    }
}

fn verdicts(report: &Report) -> impl Iterator<Item = Verdict> + '_ {
    report.keys.iter().flat_map(move |key| {
        key.grants
            .iter()
            .map(move |g| verdict_of(key, g, &report.generated_at))
    })
}

/// `ocsf.jsonl`: one OCSF Detection Finding per standing grant, one per line.
pub fn ocsf_jsonl(report: &Report, now_ms: i64, product_version: &str) -> String {
    let mut out = String::new();
    for v in verdicts(report) {
        out.push_str(&ocsf::detection_finding(&v, now_ms, product_version).to_string());
        out.push('\n');
    }
    out
}

/// ASFF findings of the standing grants at or above `min` (the
/// `SECURITY_HUB_MIN_SEVERITY` setting), `UpdatedAt` = the report's time;
/// a grant that cannot be expressed (no account id) is returned as an error
/// next to the others, never dropped silently.
pub fn asff_findings(
    report: &Report,
    min: crate::verdict::Severity,
    links: &LinkSettings,
) -> Vec<Result<Value, asff::AsffError>> {
    verdicts(report)
        .filter(|v| v.severity >= min)
        .map(|v| asff::finding(&v, &report.generated_at, links))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::test_support::{grant, key, report};
    use crate::verdict::Severity;

    #[test]
    fn standing_grants_get_the_watchers_ids_and_valid_documents() {
        let mut r = report(vec![key(
            "k1",
            vec![grant("g1", Severity::High), grant("g2", Severity::Low)],
        )]);
        r.generated_at = "2026-11-30T07:00:00Z".into();
        let lines: Vec<Value> = ocsf_jsonl(&r, 0, "0.1.0")
            .lines()
            .map(|l| serde_json::from_str(l).expect("a JSON line"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(
            lines[0]["finding_info"]["uid"],
            "grantwatch/111111111111/eu-west-1/k1/g1"
        );
        assert_eq!(lines[0]["class_uid"], 2004);

        let findings = asff_findings(&r, Severity::Medium, &LinkSettings::default());
        assert_eq!(findings.len(), 1, "only at or above the threshold");
        let f = findings[0].as_ref().expect("a finding");
        asff::validate(f).expect("valid ASFF");
        assert_eq!(f["Id"], "grantwatch/111111111111/eu-west-1/k1/g1");
        assert_eq!(f["UpdatedAt"], "2026-11-30T07:00:00Z");
        assert_eq!(f["RecordState"], "ACTIVE");
    }
}
