//! EventBridge: each verdict as one event, `source: grantwatch`,
//! `detail-type: KMS grant verdict`, its detail the machine form of the
//! alert ([`super::sns::machine_alert`], the same JSON SNS's SQS and
//! Lambda subscribers get), so rules match on `detail.verdict.severity`,
//! `detail.verdict.findings[].code` and the rest.

use super::links::LinkSettings;
use super::sns::machine_alert;
use crate::verdict::Verdict;

pub const SOURCE: &str = "grantwatch";
pub const DETAIL_TYPE: &str = "KMS grant verdict";
/// PutEvents takes 256 KB per call, every entry counted: one detail stays
/// well under, so a batch of several fits.
pub const MAX_DETAIL_BYTES: usize = 64 * 1024;

/// The event's detail (JSON text): the machine alert, or, when a hostile
/// or huge verdict would not fit, a stand-in naming the event and saying
/// so (`"truncated": true`; the full record is in the ledger).
pub fn detail(v: &Verdict, links: &LinkSettings) -> String {
    let full = machine_alert(v, links);
    let text = full.to_string();
    if text.len() <= MAX_DETAIL_BYTES {
        return text;
    }
    let short = |s: &Option<String>| {
        s.as_deref()
            .map(|s| super::plain::one_line(s, 2048))
            .unwrap_or_default()
    };
    serde_json::json!({
        "kind": "alert",
        "truncated": true,
        "subject": full["subject"],
        "event_id": super::plain::one_line(&v.event_id, 2048),
        "event_name": super::plain::one_line(&v.event_name, 200),
        "severity": v.severity,
        "key_arn": short(&v.key_arn),
        "grant_id": short(&v.grant_id),
        "finding_codes": v.findings.iter().map(|f| f.code.as_str()).collect::<Vec<_>>(),
        "note": "too large for EventBridge: the full record is in the grant ledger",
    })
    .to_string()
}

/// The ARNs the event is about (the key), for rules matching `resources`.
pub fn resources(v: &Verdict) -> Vec<String> {
    v.key_arn
        .iter()
        .filter(|arn| {
            arn.starts_with("arn:") && arn.len() <= 1600 && !arn.chars().any(char::is_whitespace)
        })
        .cloned()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testkit::manual_grant;

    #[test]
    fn the_detail_is_the_machine_alert() {
        let v = manual_grant();
        let d: serde_json::Value =
            serde_json::from_str(&detail(&v, &LinkSettings::default())).expect("JSON");
        assert_eq!(d["kind"], "alert");
        assert_eq!(d["verdict"]["severity"], "high");
        assert_eq!(d["verdict"]["event_id"], v.event_id.as_str());
        assert!(d["summary"]
            .as_str()
            .is_some_and(|s| s.contains("Manual KMS grant")));
        assert_eq!(resources(&v), vec![v.key_arn.clone().expect("key arn")]);
    }

    #[test]
    fn a_huge_verdict_becomes_a_stand_in_that_names_the_event() {
        let mut v = manual_grant();
        v.evidence = vec!["x".repeat(10_000); 20];
        let text = detail(&v, &LinkSettings::default());
        assert!(text.len() <= MAX_DETAIL_BYTES, "{}", text.len());
        let d: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(d["truncated"], true);
        assert_eq!(d["event_id"], v.event_id.as_str());
        assert_eq!(d["severity"], "high");
    }

    #[test]
    fn only_arns_are_resources() {
        let mut v = manual_grant();
        v.key_arn = Some("not an arn".into());
        assert!(resources(&v).is_empty());
    }
}
