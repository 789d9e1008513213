//! Redacting encryption-context values for chat and e-mail
//! (`REDACT_ENCRYPTION_CONTEXT`): they can carry tenant or customer
//! identifiers. The keys stay (they say what the constraint is about); each
//! value becomes [`REDACTED`], in the constraints and wherever a finding's
//! message, the evidence or a rule note quotes it. The ledger and the
//! report keep the values: call this only on the way to a person.
//!
//! Values the service itself defines as resource ARNs (`aws:<service>:...`
//! keys, e.g. `aws:lambda:FunctionArn`) are kept: they name the resource
//! that depends on the grant, and responders need it.

use crate::verdict::Verdict;
use std::collections::BTreeMap;

/// What a redacted value shows.
pub const REDACTED: &str = "‹redacted›";

fn is_service_key(key: &str) -> bool {
    key.starts_with("aws:")
}

/// `v` with its encryption-context values redacted.
pub fn encryption_context(v: &Verdict) -> Verdict {
    let mut out = v.clone();
    let mut secrets: Vec<String> = Vec::new();
    if let Some(c) = out.constraints.as_mut() {
        for map in [
            c.encryption_context_equals.as_mut(),
            c.encryption_context_subset.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            redact_map(map, &mut secrets);
        }
    }
    // Longest first, so a value containing another is replaced whole.
    secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
    secrets.dedup();
    let scrub = |text: &mut String| {
        for secret in &secrets {
            if text.contains(secret.as_str()) {
                *text = text.replace(secret.as_str(), REDACTED);
            }
        }
    };
    out.findings.iter_mut().for_each(|f| scrub(&mut f.message));
    out.evidence.iter_mut().for_each(scrub);
    out.rule_notes.iter_mut().for_each(scrub);
    if let Some(name) = out.grant_name.as_mut() {
        scrub(name);
    }
    out
}

fn redact_map(map: &mut BTreeMap<String, String>, secrets: &mut Vec<String>) {
    for (key, value) in map.iter_mut() {
        // Very short values ("1", "a") would scrub unrelated words: they are
        // redacted in the constraint, not searched for elsewhere.
        if is_service_key(key) || value.is_empty() {
            continue;
        }
        if value.chars().count() >= 3 {
            secrets.push(value.clone());
        }
        *value = REDACTED.to_string();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grant::Constraints;
    use crate::render::testkit::*;
    use crate::render::{slack, sns};
    use crate::verdict::{Finding, FindingCode, Severity};

    fn tenant_grant() -> Verdict {
        let mut v = manual_grant();
        v.constraints = Some(Constraints {
            encryption_context_subset: Some(BTreeMap::from([
                ("tenant".to_string(), "acme-corp-4471".to_string()),
                (
                    "aws:lambda:FunctionArn".to_string(),
                    FUNCTION_ARN.to_string(),
                ),
            ])),
            ..Constraints::default()
        });
        v.findings.push(Finding {
            code: FindingCode::ServiceContextByPerson,
            severity: Severity::Medium,
            message: "constraint tenant = acme-corp-4471 looks hand-made".into(),
        });
        v
    }

    #[test]
    fn values_leave_chat_and_email_but_keys_and_service_arns_stay() {
        let v = tenant_grant();
        let redacted = encryption_context(&v);
        let slack = slack::alert(&redacted).to_string();
        let email = sns::alert(&redacted).message;
        for shown in [&slack, &email] {
            assert!(!shown.contains("acme-corp-4471"), "{shown}");
            assert!(shown.contains("tenant"), "the key stays");
            assert!(shown.contains(REDACTED));
        }
        assert!(email.contains(FUNCTION_ARN), "the dependent resource stays");
        assert!(
            sns::alert(&v).message.contains("acme-corp-4471"),
            "without the option the value is shown"
        );
        // Everything else is unchanged.
        assert_eq!(redacted.grantee, v.grantee);
        assert_eq!(redacted.event_id, v.event_id);
    }
}
