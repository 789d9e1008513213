//! The fallback for a real KMS grant event the parser cannot read (a
//! renamed or missing field): it still alerts, `high`, with finding
//! `unparseable-event` and what is known. Only input that is not JSON or
//! not CloudTrail at all stays a `MalformedEvent` error.

use crate::event::{self, GrantAction, ParseError};
use crate::verdict::{quote, ActorView, Finding, FindingCode, Origin, Severity, Verdict};
use serde_json::Value;

/// The alert for `payload` when it is recognisably a KMS grant event
/// (`eventSource` kms.amazonaws.com, `eventName` Create/Retire/RevokeGrant)
/// that failed to parse with `error`; `None` for anything else.
pub fn verdict(payload: &Value, error: &ParseError) -> Option<Verdict> {
    let record = cloudtrail_record(payload)?;
    let text = |name: &str| record.get(name).and_then(Value::as_str);
    if text("eventSource") != Some("kms.amazonaws.com") {
        return None;
    }
    let event_name = text("eventName")?;
    GrantAction::from_event_name(event_name)?;
    let event_id = match text("eventID").filter(|id| !id.trim().is_empty()) {
        Some(id) => id.to_string(),
        // The parser's own stable id for a record without one.
        None => event::record_hash(&Value::Object(record.clone())),
    };
    let identity = record.get("userIdentity");
    let identity_text = |name: &str| {
        identity
            .and_then(|i| i.get(name))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let params = record.get("requestParameters");
    let key = params
        .and_then(|p| p.get("keyId"))
        .and_then(Value::as_str)
        .map(str::to_string)
        .or_else(|| {
            record
                .get("resources")
                .and_then(Value::as_array)
                .and_then(|r| r.first())
                .and_then(|r| r.get("ARN"))
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    let raw_params = params
        .map(|p| p.to_string())
        .unwrap_or_else(|| "none".to_string());
    let message = format!(
        "{event_name} event {} could not be read ({}): check it by hand. Request parameters: {}",
        quote(&event_id),
        quote(&error.to_string()),
        quote(&raw_params)
    );
    Some(Verdict {
        event_id,
        event_name: event_name.to_string(),
        event_time: text("eventTime").map(str::to_string),
        account: text("recipientAccountId")
            .or_else(|| payload.get("account").and_then(Value::as_str))
            .map(str::to_string),
        region: text("awsRegion").map(str::to_string),
        key_arn: key.clone().filter(|k| k.starts_with("arn:")),
        key,
        key_alias: None,
        grant_id: None,
        grant_name: None,
        actor: ActorView {
            arn: identity_text("arn"),
            identity_type: identity_text("type"),
            account: identity_text("accountId"),
            invoked_by: identity_text("invokedBy"),
        },
        source_ip: text("sourceIPAddress").map(str::to_string),
        user_agent: text("userAgent").map(str::to_string),
        grantee: None,
        retiring_principal: None,
        operations: Vec::new(),
        constraints: None,
        origin: Origin::Unknown,
        service: None,
        evidence: vec![format!("request parameters: {}", quote(&raw_params))],
        severity: Severity::High,
        alert: true,
        findings: vec![Finding {
            code: FindingCode::UnparseableEvent,
            severity: Severity::High,
            message,
        }],
        suppressed_by: None,
        rule_notes: Vec::new(),
        error_code: text("errorCode").map(str::to_string),
        dry_run: false,
        removed_grant: None,
    })
}

/// The CloudTrail record in an EventBridge event, or a bare record.
fn cloudtrail_record(payload: &Value) -> Option<&serde_json::Map<String, Value>> {
    let object = payload.as_object()?;
    match object.get("detail") {
        Some(detail) => detail.as_object(),
        None => Some(object),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn grant_event(detail: Value) -> Value {
        json!({
            "version": "0",
            "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
            "detail-type": "AWS API Call via CloudTrail",
            "source": "aws.kms",
            "account": "111122223333",
            "region": "us-east-1",
            "detail": detail,
        })
    }

    #[test]
    fn a_kms_grant_event_that_cannot_be_parsed_becomes_a_high_alert_naming_it() {
        let payload = grant_event(json!({
            "eventVersion": "1.08",
            "eventSource": "kms.amazonaws.com",
            "eventName": "CreateGrant",
            "eventID": "e-unparseable-1",
            "eventTime": "2026-11-29T18:00:00Z",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/mallory"},
            "requestParameters": {"keyId": "arn:aws:kms:us-east-1:111122223333:key/k1", "granteePrincipalRenamed": "*\n<!here>"},
        }));
        let error = ParseError::BadGrantEvent {
            event_name: "CreateGrant".into(),
            event_id: "e-unparseable-1".into(),
            problem: "no granteePrincipal".into(),
        };
        let verdict = verdict(&payload, &error).unwrap();
        assert_eq!(verdict.event_id, "e-unparseable-1");
        assert_eq!(verdict.severity, Severity::High);
        assert!(verdict.alert);
        assert_eq!(verdict.findings[0].code, FindingCode::UnparseableEvent);
        assert_eq!(
            verdict.actor.arn.as_deref(),
            Some("arn:aws:iam::111122223333:user/mallory")
        );
        assert_eq!(
            verdict.key_arn.as_deref(),
            Some("arn:aws:kms:us-east-1:111122223333:key/k1")
        );
        let message = &verdict.findings[0].message;
        assert!(message.contains("granteePrincipalRenamed"), "{message}");
        assert!(!message.contains('\n'), "quoted on one line: {message}");
        assert_eq!(verdict.account.as_deref(), Some("111122223333"));
    }

    #[test]
    fn without_an_event_id_the_alert_is_keyed_by_the_stable_record_hash() {
        let detail = json!({
            "eventSource": "kms.amazonaws.com",
            "eventName": "RevokeGrant",
            "requestParameters": {"b": 1, "a": 2},
        });
        let reordered = json!({
            "requestParameters": {"a": 2, "b": 1},
            "eventName": "RevokeGrant",
            "eventSource": "kms.amazonaws.com",
        });
        let error = ParseError::UnrecognisedShape("x".into());
        let one = verdict(&grant_event(detail), &error).unwrap();
        let two = verdict(&grant_event(reordered), &error).unwrap();
        assert!(one.event_id.starts_with("sha256:"), "{}", one.event_id);
        assert_eq!(one.event_id, two.event_id);
        let other = verdict(
            &grant_event(json!({"eventSource": "kms.amazonaws.com", "eventName": "RevokeGrant"})),
            &error,
        )
        .unwrap();
        assert_ne!(one.event_id, other.event_id);
    }

    #[test]
    fn anything_not_recognisably_a_kms_grant_event_stays_an_error() {
        let error = ParseError::UnrecognisedShape("x".into());
        for payload in [
            json!("hello"),
            json!([1, 2]),
            grant_event(json!({"eventSource": "kms.amazonaws.com", "eventName": "Decrypt"})),
            grant_event(json!({"eventSource": "s3.amazonaws.com", "eventName": "CreateGrant"})),
            grant_event(json!({"eventName": "CreateGrant"})),
        ] {
            assert_eq!(verdict(&payload, &error), None, "{payload}");
        }
    }
}
