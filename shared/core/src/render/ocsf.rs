//! OCSF Detection Finding (class 2004, category 2 Findings, OCSF 1.1): one
//! object per verdict, for SIEMs and data lakes (`grantwatch classify
//! --output ocsf`, the report's `ocsf.jsonl`). One JSON object per line.
//!
//! `finding_info.uid` is the same id as ASFF's `Id`
//! (`grantwatch/<account>/<region>/<key id>/<grant id>`, or
//! `.../event/<event id>`), so both views of a grant correlate;
//! `activity_id` is 1 (Create) for a new or standing grant and 3 (Close)
//! for its removal. ATT&CK techniques go in `finding_info.attacks`.

use super::attack::techniques;
use super::describe::{self, is_removal};
use super::links;
use crate::event::epoch_ms;
use crate::verdict::{Severity, Verdict};
use serde_json::{json, Value};

pub const CLASS_UID: u32 = 2004;
pub const CATEGORY_UID: u32 = 2;
pub const OCSF_VERSION: &str = "1.1.0";

/// OCSF `severity_id`: 1 Informational … 5 Critical.
pub fn severity_id(s: Severity) -> u8 {
    match s {
        Severity::Info => 1,
        Severity::Low => 2,
        Severity::Medium => 3,
        Severity::High => 4,
        Severity::Critical => 5,
    }
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Info => "Informational",
        Severity::Low => "Low",
        Severity::Medium => "Medium",
        Severity::High => "High",
        Severity::Critical => "Critical",
    }
}

/// The Detection Finding for `v`; `now_ms` is the time when the event has
/// none (and the finding's `modified_time`).
pub fn detection_finding(v: &Verdict, now_ms: i64, product_version: &str) -> Value {
    let (activity_id, activity) = if is_removal(v) {
        (3, "Close")
    } else {
        (1, "Create")
    };
    let time = v.event_time.as_deref().and_then(epoch_ms).unwrap_or(now_ms);
    let uid =
        super::asff::finding_id(v).unwrap_or_else(|_| format!("grantwatch/event/{}", v.event_id));
    let mut findings: Vec<_> = v.findings.iter().collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    let attacks: Vec<Value> = findings
        .iter()
        .flat_map(|f| techniques(f.code))
        .map(|t| {
            json!({
                "technique": {"uid": t.id, "name": t.name},
                "tactic": {"name": t.tactic},
                "version": "v15",
            })
        })
        .collect();
    let mut resources = Vec::new();
    if let Some(key) = describe::key_for_command(v) {
        let mut r = json!({"uid": key, "type": "AWS::KMS::Key"});
        if let Some(alias) = &v.key_alias {
            r["name"] = json!(alias);
        }
        if let Some(region) = describe::region(v) {
            r["region"] = json!(region);
        }
        resources.push(r);
    }
    if let Some(grantee) = &v.grantee {
        resources.push(json!({"uid": grantee, "type": "Grantee principal"}));
    }
    let mut out = json!({
        "class_uid": CLASS_UID,
        "class_name": "Detection Finding",
        "category_uid": CATEGORY_UID,
        "category_name": "Findings",
        "activity_id": activity_id,
        "activity_name": activity,
        "type_uid": CLASS_UID * 100 + activity_id,
        "severity_id": severity_id(v.severity),
        "severity": severity_name(v.severity),
        "status_id": 1,
        "status": "New",
        "time": time,
        "message": describe::summary(v),
        "metadata": {
            "version": OCSF_VERSION,
            "product": {"name": "grantwatch", "vendor_name": "grantwatch", "version": product_version},
            "uid": v.event_id,
        },
        "finding_info": {
            "uid": uid,
            "title": describe::headline(v),
            "desc": describe::summary(v),
            "types": findings.iter().map(|f| f.code.as_str()).collect::<Vec<_>>(),
            "attacks": attacks,
            "modified_time": now_ms,
            "src_url": links::cloudtrail_event(v),
        },
        "cloud": {"provider": "AWS", "region": describe::region(v), "account": {"uid": v.account}},
        "resources": resources,
        "evidences": [{
            "actor": {"user": {"uid": v.actor.arn, "type": v.actor.identity_type, "account": {"uid": v.actor.account}}, "invoked_by": v.actor.invoked_by},
            "src_endpoint": {"ip": v.source_ip},
            "api": {"operation": v.event_name, "service": {"name": "kms.amazonaws.com"}},
        }],
        "unmapped": {
            "grantwatch": {
                "origin": v.origin.as_str(),
                "service": v.service,
                "grant_id": v.grant_id,
                "operations": v.operations.iter().map(|o| o.as_str()).collect::<Vec<_>>(),
                "findings": findings.iter().map(|f| json!({"code": f.code.as_str(), "severity": f.severity.as_str(), "message": f.message})).collect::<Vec<_>>(),
                "suppressed_by": v.suppressed_by,
                "user_agent": v.user_agent,
                "error_code": v.error_code,
            }
        },
    });
    strip_nulls(&mut out);
    out
}

/// OCSF leaves unknown attributes out rather than null.
fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(map) => {
            map.retain(|_, val| !val.is_null());
            map.values_mut().for_each(strip_nulls);
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testkit::*;

    const NOW_MS: i64 = 1_796_032_800_000;

    #[test]
    fn detection_finding_has_the_required_attributes() {
        let f = detection_finding(&manual_grant(), NOW_MS, "0.1.0");
        for (k, expected) in [
            ("class_uid", json!(2004)),
            ("category_uid", json!(2)),
            ("activity_id", json!(1)),
            ("type_uid", json!(200401)),
            ("severity_id", json!(4)),
        ] {
            assert_eq!(f[k], expected, "{k}");
        }
        assert_eq!(
            f["time"],
            json!(epoch_ms("2026-11-28T18:40:12Z").expect("time"))
        );
        assert_eq!(f["metadata"]["version"], OCSF_VERSION);
        assert_eq!(f["metadata"]["product"]["name"], "grantwatch");
        assert_eq!(
            f["finding_info"]["uid"],
            format!(
                "grantwatch/111122223333/eu-west-1/1234abcd-12ab-34cd-56ef-1234567890ab/{GRANT_ID}"
            )
        );
        assert_eq!(f["finding_info"]["title"], "Manual KMS grant");
        let attacks = f["finding_info"]["attacks"].as_array().expect("attacks");
        assert!(attacks.iter().any(|a| a["technique"]["uid"] == "T1537"));
        assert_eq!(f["resources"][0]["type"], "AWS::KMS::Key");
        assert_eq!(f["cloud"]["account"]["uid"], "111122223333");
        assert!(!f.to_string().contains("null"), "no nulls: {f}");
    }

    #[test]
    fn a_removal_closes_and_info_is_informational() {
        let f = detection_finding(&removal_of_lambda_grant(), NOW_MS, "0.1.0");
        assert_eq!(f["activity_id"], 3);
        assert_eq!(f["type_uid"], 200403);
        let mut v = lambda_service_grant();
        v.severity = Severity::Info;
        v.event_time = Some("not a time".into());
        let f = detection_finding(&v, NOW_MS, "0.1.0");
        assert_eq!(f["severity_id"], 1);
        assert_eq!(
            f["time"], NOW_MS,
            "an unreadable event time falls back to now"
        );
    }
}
