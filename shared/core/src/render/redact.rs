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

use crate::ports::notify::{ChannelClass, Digest, Notice, Notifier};
use crate::ports::PortError;
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

/// A storm digest with every alert it carries redacted (its tallies name
/// actors, keys and events, never context values).
pub fn digest(d: &Digest) -> Digest {
    Digest {
        alerts: d.alerts.iter().map(encryption_context).collect(),
        ..d.clone()
    }
}

/// A channel to people (chat, e-mail) that gets every notice with its
/// encryption-context values redacted (`REDACT_ENCRYPTION_CONTEXT`); its
/// name and class are the wrapped channel's.
pub struct ForPeople<N>(pub N);

impl<N: Notifier> Notifier for ForPeople<N> {
    fn channel(&self) -> &str {
        self.0.channel()
    }

    fn class(&self) -> ChannelClass {
        self.0.class()
    }

    async fn send(&self, notice: Notice<'_>, deadline_ms: i64) -> Result<(), PortError> {
        match notice {
            Notice::Alert(v) => {
                let redacted = encryption_context(v);
                self.0.send(Notice::Alert(&redacted), deadline_ms).await
            }
            Notice::Digest(d) => {
                let redacted = digest(d);
                self.0.send(Notice::Digest(&redacted), deadline_ms).await
            }
            // The report's summary shows no encryption context.
            Notice::Report(r) => self.0.send(Notice::Report(r), deadline_ms).await,
        }
    }
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

    /// What a wrapped channel is handed.
    struct Recorder(std::sync::Mutex<Vec<String>>);

    impl Notifier for Recorder {
        fn channel(&self) -> &str {
            "recorder"
        }
        async fn send(&self, notice: Notice<'_>, _deadline_ms: i64) -> Result<(), PortError> {
            let text = match notice {
                Notice::Alert(v) => serde_json::to_string(v),
                Notice::Digest(d) => serde_json::to_string(&d.alerts),
                Notice::Report(r) => serde_json::to_string(&r.report.summary),
            }
            .unwrap_or_default();
            self.0.lock().map(|mut seen| seen.push(text)).ok();
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_channel_for_people_gets_alerts_and_digests_redacted() {
        let v = tenant_grant();
        let notifier = ForPeople(Recorder(std::sync::Mutex::new(Vec::new())));
        assert_eq!(notifier.channel(), "recorder");
        assert_eq!(notifier.class(), ChannelClass::BestEffort);
        notifier.send(Notice::Alert(&v), 0).await.unwrap();
        let d = Digest {
            window_start: 1_795_000_000,
            window_seconds: 60,
            alerts: vec![v.clone(), v.clone()],
            tally: Default::default(),
        };
        notifier.send(Notice::Digest(&d), 0).await.unwrap();
        let seen = notifier.0 .0.lock().unwrap().clone();
        assert_eq!(seen.len(), 2);
        for text in seen {
            assert!(!text.contains("acme-corp-4471"), "{text}");
            assert!(text.contains(REDACTED), "{text}");
        }
    }
}
