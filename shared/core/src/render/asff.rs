//! AWS Security Finding Format (ASFF): one finding per verdict, as
//! `BatchImportFindings` takes it and `grantwatch classify --output asff`
//! prints it.
//!
//! - `Id` is `grantwatch/<account>/<region>/<key id>/<grant id>`, so the
//!   weekly report and the watcher update the same finding, and a grant's
//!   removal archives it (`RecordState: ARCHIVED`); a call without a grant
//!   id (failed, denied) gets `.../event/<event id>`.
//! - `ProductArn` is the account's default product
//!   (`arn:<partition>:securityhub:<region>:<account>:product/<account>/default`).
//! - `Severity.Label` maps `info` to `INFORMATIONAL`.
//! - `Types` are `TTPs/<tactic>/<ATT&CK id>` where a technique fits, and
//!   `Software and Configuration Checks/AWS Security Best Practices/grantwatch <code>`
//!   for every finding code.
//! - Resources: the `AwsKmsKey`, plus the grantee (`AwsIamRole`,
//!   `AwsIamUser`, else `Other`).
//!
//! Providers cannot set `Workflow.Status` with this call, so it is not set.
//! Lengths follow the ASFF limits (Title 256, Description 1024, Resource
//! ids 512, ProductFields 50 entries), cut with an ellipsis.

use super::attack::techniques;
use super::describe::{self, is_removal};
use super::links::{self, LinkSettings};
use super::plain::truncate_chars;
use crate::verdict::{Severity, Verdict};
use serde_json::{json, Map, Value};

pub const SCHEMA_VERSION: &str = "2018-10-08";
/// `BatchImportFindings` takes at most 100 findings per call.
pub const MAX_BATCH: usize = 100;
pub const MAX_TITLE: usize = 256;
pub const MAX_DESCRIPTION: usize = 1024;
pub const MAX_RESOURCE_ID: usize = 512;
pub const MAX_PRODUCT_FIELDS: usize = 50;
pub const MAX_RECOMMENDATION_TEXT: usize = 512;

/// Why a verdict cannot become an ASFF finding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AsffError {
    #[error("event {event_id}: no 12-digit AWS account id in the event or the key ARN")]
    NoAccount { event_id: String },
    #[error("event {event_id}: no region in the event or the key ARN")]
    NoRegion { event_id: String },
    #[error("event {event_id}: the event names no key")]
    NoKey { event_id: String },
}

/// `INFORMATIONAL`, `LOW`, `MEDIUM`, `HIGH`, `CRITICAL`.
pub fn severity_label(s: Severity) -> &'static str {
    match s {
        Severity::Info => "INFORMATIONAL",
        Severity::Low => "LOW",
        Severity::Medium => "MEDIUM",
        Severity::High => "HIGH",
        Severity::Critical => "CRITICAL",
    }
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `arn:<partition>:kms:<region>:<account>:key/<id>` parts.
fn key_arn_parts(v: &Verdict) -> Option<(&str, &str, &str, &str)> {
    let arn = v.key_arn.as_deref()?;
    let mut parts = arn.splitn(6, ':');
    if parts.next()? != "arn" {
        return None;
    }
    let partition = parts.next()?;
    let _service = parts.next()?;
    let region = parts.next()?;
    let account = parts.next()?;
    let id = parts.next()?.strip_prefix("key/")?;
    Some((partition, region, account, id))
}

/// The account the finding belongs to: the key's (findings are about the
/// key), else the event's.
fn account(v: &Verdict) -> Option<&str> {
    key_arn_parts(v)
        .map(|(_, _, a, _)| a)
        .filter(|a| is_account_id(a))
        .or(v.account.as_deref().filter(|a| is_account_id(a)))
}

fn region(v: &Verdict) -> Option<&str> {
    describe::region(v).filter(|r| {
        r.len() <= 25
            && r.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    })
}

fn partition(v: &Verdict) -> &str {
    key_arn_parts(v).map(|(p, ..)| p).unwrap_or("aws")
}

fn key_id(v: &Verdict) -> Option<&str> {
    key_arn_parts(v)
        .map(|(.., id)| id)
        .or(v.key.as_deref())
        .filter(|k| !k.trim().is_empty())
}

/// Cut and clean a value for an ASFF string field.
fn cut(s: &str, max: usize) -> String {
    let flat: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    truncate_chars(&flat, max, "…")
}

/// The finding's `Id`.
pub fn finding_id(v: &Verdict) -> Result<String, AsffError> {
    let event_id = || v.event_id.clone();
    let account = account(v).ok_or_else(|| AsffError::NoAccount {
        event_id: event_id(),
    })?;
    let region = region(v).ok_or_else(|| AsffError::NoRegion {
        event_id: event_id(),
    })?;
    let key = key_id(v).ok_or_else(|| AsffError::NoKey {
        event_id: event_id(),
    })?;
    let tail = match v.grant_id.as_deref().filter(|g| !g.trim().is_empty()) {
        Some(grant) => grant.to_string(),
        None => format!("event/{}", v.event_id),
    };
    Ok(cut(
        &format!("grantwatch/{account}/{region}/{key}/{tail}"),
        MAX_RESOURCE_ID,
    ))
}

/// The `Types` of a verdict: ATT&CK techniques, then one check per code.
fn types(v: &Verdict) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for f in &v.findings {
        for t in techniques(f.code) {
            let ty = format!("TTPs/{}/{}", t.tactic, t.id);
            if !out.contains(&ty) {
                out.push(ty);
            }
        }
    }
    for f in &v.findings {
        let ty = format!(
            "Software and Configuration Checks/AWS Security Best Practices/grantwatch {}",
            f.code
        );
        if !out.contains(&ty) {
            out.push(ty);
        }
    }
    if out.is_empty() {
        out.push(
            "Software and Configuration Checks/AWS Security Best Practices/grantwatch KMS grant"
                .to_string(),
        );
    }
    out.truncate(50);
    out
}

fn grantee_resource(grantee: &str, partition: &str, region: &str) -> Value {
    let kind = match grantee.split(':').nth(2).zip(grantee.split(':').nth(5)) {
        Some(("iam", res)) if res.starts_with("role/") => "AwsIamRole",
        Some(("iam", res)) if res.starts_with("user/") => "AwsIamUser",
        _ => "Other",
    };
    json!({
        "Type": kind,
        "Id": cut(grantee, MAX_RESOURCE_ID),
        "Partition": partition,
        "Region": region,
    })
}

/// One ASFF finding for `v`. `now` (RFC 3339) is `UpdatedAt`, and
/// `CreatedAt` when the event has no time.
pub fn finding(v: &Verdict, now: &str, link_settings: &LinkSettings) -> Result<Value, AsffError> {
    let id = finding_id(v)?;
    // finding_id checked these.
    let account = account(v).unwrap_or_default();
    let region = region(v).unwrap_or_default();
    let partition = partition(v);
    let key_arn = v
        .key_arn
        .clone()
        .filter(|k| k.starts_with("arn:"))
        .unwrap_or_else(|| {
            format!(
                "arn:{partition}:kms:{region}:{account}:key/{}",
                key_id(v).unwrap_or_default()
            )
        });
    let created = v
        .event_time
        .as_deref()
        .filter(|t| {
            time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok()
        })
        .unwrap_or(now);

    let mut resources = vec![json!({
        "Type": "AwsKmsKey",
        "Id": cut(&key_arn, MAX_RESOURCE_ID),
        "Partition": partition,
        "Region": region,
        "Details": {"AwsKmsKey": {"KeyId": cut(key_id(v).unwrap_or_default(), MAX_RESOURCE_ID)}},
    })];
    if let Some(grantee) = v.grantee.as_deref().filter(|g| !g.trim().is_empty()) {
        resources.push(grantee_resource(grantee, partition, region));
    }

    let mut description = describe::summary(v);
    let mut findings: Vec<_> = v.findings.iter().collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    for f in &findings {
        description.push_str(&format!(" [{}] {}", f.code, f.message));
    }

    let mut fields = Map::new();
    let mut put = |k: &str, val: &str| {
        if fields.len() < MAX_PRODUCT_FIELDS && !val.trim().is_empty() {
            fields.insert(k.to_string(), Value::String(cut(val, 2048)));
        }
    };
    put("grantwatch/EventId", &v.event_id);
    put("grantwatch/EventName", &v.event_name);
    if let Some(grant) = &v.grant_id {
        put("grantwatch/GrantId", grant);
    }
    put("grantwatch/Origin", v.origin.as_str());
    if let Some(s) = &v.service {
        put("grantwatch/Service", s);
    }
    let codes: Vec<&str> = findings.iter().map(|f| f.code.as_str()).collect();
    put("grantwatch/FindingCodes", &codes.join(","));
    let attack: Vec<&str> = findings
        .iter()
        .flat_map(|f| techniques(f.code).iter().map(|t| t.id))
        .collect();
    put("grantwatch/AttackTechniques", &attack.join(","));
    if let Some(actor) = &v.actor.arn {
        put("grantwatch/Actor", actor);
    }
    if let Some(ip) = &v.source_ip {
        put("grantwatch/SourceIp", ip);
    }
    if let Some(rule) = &v.suppressed_by {
        put("grantwatch/SuppressedBy", rule);
    }

    let worst = links::worst_finding(v);
    let recommendation = match worst {
        Some(code) => format!(
            "{} Runbook: {}",
            describe::finding_explanation(code),
            link_settings.runbook(code)
        ),
        None => "Review the grant with `grantwatch explain`.".to_string(),
    };
    let mut out = json!({
        "SchemaVersion": SCHEMA_VERSION,
        "Id": id,
        "ProductArn": format!("arn:{partition}:securityhub:{region}:{account}:product/{account}/default"),
        "GeneratorId": format!("grantwatch/{}", worst.map(|c| c.as_str()).unwrap_or("kms-grant")),
        "AwsAccountId": account,
        "Types": types(v),
        "CreatedAt": created,
        "UpdatedAt": now,
        "Severity": {"Label": severity_label(v.severity), "Original": v.severity.as_str()},
        "Title": cut(&describe::summary(v), MAX_TITLE),
        "Description": cut(&description, MAX_DESCRIPTION),
        "Resources": resources,
        "ProductFields": fields,
        "RecordState": if is_removal(v) { "ARCHIVED" } else { "ACTIVE" },
        "Remediation": {"Recommendation": {"Text": cut(&recommendation, MAX_RECOMMENDATION_TEXT)}},
    });
    // Only a published runbook is a URL (RUNBOOK_BASE_URL); without one
    // the recommendation's text names the runbook.
    if let Some(url) = worst.and_then(|code| link_settings.runbook_url(code)) {
        out["Remediation"]["Recommendation"]["Url"] = Value::String(url);
    }
    if let Some(url) = links::cloudtrail_event(v) {
        out["SourceUrl"] = Value::String(url);
    }
    if let Some(time) = v.event_time.as_deref().filter(|t| *t == created) {
        out["FirstObservedAt"] = Value::String(time.to_string());
    }
    Ok(out)
}

/// Findings in `BatchImportFindings`-sized batches (at most [`MAX_BATCH`]).
pub fn batches(findings: &[Value]) -> impl Iterator<Item = &[Value]> {
    findings.chunks(MAX_BATCH)
}

/// Checks an ASFF finding against the format's required fields, types
/// and limits, as Security Hub does (moto accepts almost anything): for
/// tests, and for an adapter to refuse a finding before sending it.
pub fn validate(f: &Value) -> Result<(), String> {
    let obj = f.as_object().ok_or("not an object")?;
    let string = |k: &str, max: usize| -> Result<&str, String> {
        let s = obj
            .get(k)
            .and_then(Value::as_str)
            .ok_or(format!("{k}: missing or not a string"))?;
        if s.is_empty() || s.chars().count() > max {
            return Err(format!("{k}: length {}", s.chars().count()));
        }
        Ok(s)
    };
    string("SchemaVersion", 20).and_then(|s| {
        (s == SCHEMA_VERSION)
            .then_some(())
            .ok_or(format!("SchemaVersion {s}"))
    })?;
    string("Id", 512)?;
    let product = string("ProductArn", 2048)?;
    string("GeneratorId", 512)?;
    let account = string("AwsAccountId", 12)?;
    if !is_account_id(account) {
        return Err(format!("AwsAccountId {account}"));
    }
    if !product.starts_with("arn:") || !product.ends_with(&format!(":product/{account}/default")) {
        return Err(format!("ProductArn {product}"));
    }
    for k in ["CreatedAt", "UpdatedAt"] {
        let t = string(k, 64)?;
        time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
            .map_err(|e| format!("{k} {t}: {e}"))?;
    }
    string("Title", MAX_TITLE)?;
    string("Description", MAX_DESCRIPTION)?;
    let types = obj
        .get("Types")
        .and_then(Value::as_array)
        .ok_or("Types: not an array")?;
    if types.is_empty() || types.len() > 50 {
        return Err(format!("Types: {} entries", types.len()));
    }
    const NAMESPACES: [&str; 5] = [
        "Software and Configuration Checks",
        "TTPs",
        "Effects",
        "Unusual Behaviors",
        "Sensitive Data Identifications",
    ];
    for t in types {
        let t = t.as_str().ok_or("Types: not a string")?;
        let parts: Vec<&str> = t.split('/').collect();
        if parts.len() < 2 || parts.len() > 3 || !NAMESPACES.contains(&parts[0]) {
            return Err(format!("Types: {t}"));
        }
    }
    let label = f["Severity"]["Label"].as_str().ok_or("Severity.Label")?;
    if !["INFORMATIONAL", "LOW", "MEDIUM", "HIGH", "CRITICAL"].contains(&label) {
        return Err(format!("Severity.Label {label}"));
    }
    let resources = obj
        .get("Resources")
        .and_then(Value::as_array)
        .ok_or("Resources: not an array")?;
    if resources.is_empty() || resources.len() > 32 {
        return Err(format!("Resources: {}", resources.len()));
    }
    for r in resources {
        for k in ["Type", "Id"] {
            let s = r[k].as_str().ok_or(format!("Resources.{k}"))?;
            if s.is_empty() || s.chars().count() > MAX_RESOURCE_ID {
                return Err(format!("Resources.{k}: {s}"));
            }
        }
    }
    if resources[0]["Type"] != "AwsKmsKey" {
        return Err("the first resource is not the key".into());
    }
    match obj.get("RecordState").and_then(Value::as_str) {
        Some("ACTIVE" | "ARCHIVED") | None => {}
        Some(other) => return Err(format!("RecordState {other}")),
    }
    if obj.contains_key("Workflow") {
        return Err("providers cannot set Workflow through BatchImportFindings".into());
    }
    if let Some(fields) = obj.get("ProductFields") {
        let fields = fields.as_object().ok_or("ProductFields: not a map")?;
        if fields.len() > MAX_PRODUCT_FIELDS || fields.values().any(|v| !v.is_string()) {
            return Err("ProductFields".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testkit::*;

    const NOW: &str = "2026-11-29T10:00:00Z";

    #[test]
    fn manual_grant_becomes_a_valid_active_finding() {
        let f = finding(&manual_grant(), NOW, &LinkSettings::default()).expect("finding");
        validate(&f).expect("valid ASFF");
        assert_eq!(
            f["Id"],
            format!(
                "grantwatch/111122223333/eu-west-1/1234abcd-12ab-34cd-56ef-1234567890ab/{GRANT_ID}"
            )
        );
        assert_eq!(
            f["ProductArn"],
            "arn:aws:securityhub:eu-west-1:111122223333:product/111122223333/default"
        );
        assert_eq!(f["AwsAccountId"], "111122223333");
        assert_eq!(f["Severity"]["Label"], "HIGH");
        assert_eq!(f["RecordState"], "ACTIVE");
        assert_eq!(f["CreatedAt"], "2026-11-28T18:40:12Z");
        assert_eq!(f["UpdatedAt"], NOW);
        assert_eq!(f["GeneratorId"], "grantwatch/cross-account-grantee");
        assert_eq!(f["Resources"][0]["Type"], "AwsKmsKey");
        assert_eq!(f["Resources"][0]["Id"], KEY_ARN);
        assert_eq!(f["Resources"][1]["Id"], "arn:aws:iam::444455556666:root");
        let types: Vec<&str> = f["Types"]
            .as_array()
            .expect("types")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(types.contains(&"TTPs/Persistence/T1098"), "{types:?}");
        assert!(types.contains(&"TTPs/Exfiltration/T1537"), "{types:?}");
        // No RUNBOOK_BASE_URL: no made-up URL, the text names the page.
        assert_eq!(f["Remediation"]["Recommendation"].get("Url"), None);
        assert!(
            f["Remediation"]["Recommendation"]["Text"]
                .as_str()
                .unwrap_or("")
                .ends_with("Runbook: docs/findings/cross-account-grantee.md"),
            "{}",
            f["Remediation"]
        );
        let published = LinkSettings::with_runbook_base("https://wiki.example.com/grantwatch/");
        let f = finding(&manual_grant(), NOW, &published).expect("finding");
        validate(&f).expect("valid ASFF");
        assert_eq!(
            f["Remediation"]["Recommendation"]["Url"],
            "https://wiki.example.com/grantwatch/cross-account-grantee.md"
        );
    }

    #[test]
    fn a_removal_archives_the_same_finding() {
        let created =
            finding(&lambda_service_grant(), NOW, &LinkSettings::default()).expect("created");
        let removal = removal_of_lambda_grant();
        let removed = finding(&removal, NOW, &LinkSettings::default()).expect("removed");
        validate(&removed).expect("valid ASFF");
        assert_eq!(removed["RecordState"], "ARCHIVED");
        assert_eq!(removed["Id"], created["Id"], "same grant, same finding");
    }

    #[test]
    fn info_is_informational_and_bad_input_is_a_clear_error() {
        let mut v = lambda_service_grant();
        v.severity = Severity::Info;
        let f = finding(&v, NOW, &LinkSettings::default()).expect("finding");
        assert_eq!(f["Severity"]["Label"], "INFORMATIONAL");
        v.key_arn = None;
        v.key = None;
        assert_eq!(
            finding(&v, NOW, &LinkSettings::default()),
            Err(AsffError::NoKey {
                event_id: v.event_id.clone()
            })
        );
        v.account = Some("not-an-account".into());
        assert!(matches!(
            finding(&v, NOW, &LinkSettings::default()),
            Err(AsffError::NoAccount { .. })
        ));
    }

    #[test]
    fn a_failed_call_is_keyed_by_its_event_and_long_values_are_cut() {
        let mut v = manual_grant();
        v.grant_id = None;
        v.error_code = Some("AccessDeniedException".into());
        v.findings
            .iter_mut()
            .for_each(|f| f.message = "x".repeat(5000));
        v.grantee = Some("g".repeat(5000));
        let f = finding(&v, NOW, &LinkSettings::default()).expect("finding");
        validate(&f).expect("valid ASFF");
        assert!(f["Id"]
            .as_str()
            .unwrap_or("")
            .ends_with(&format!("/event/{EVENT_ID}")));
    }

    #[test]
    fn the_validator_rejects_what_security_hub_rejects() {
        let good = finding(&manual_grant(), NOW, &LinkSettings::default()).expect("finding");
        for (field, bad) in [
            ("AwsAccountId", json!("12345")),
            ("Types", json!(["Made Up/Thing"])),
            ("CreatedAt", json!("yesterday")),
            ("Severity", json!({"Label": "INFO"})),
            ("Resources", json!([])),
            ("Title", json!(42)),
        ] {
            let mut f = good.clone();
            f[field] = bad;
            assert!(validate(&f).is_err(), "{field} accepted");
        }
        let mut f = good.clone();
        f["Workflow"] = json!({"Status": "NEW"});
        assert!(validate(&f).is_err());
    }

    #[test]
    fn batches_hold_at_most_100() {
        let findings = vec![json!({}); 250];
        let sizes: Vec<usize> = batches(&findings).map(<[Value]>::len).collect();
        assert_eq!(sizes, [100, 100, 50]);
    }
}
