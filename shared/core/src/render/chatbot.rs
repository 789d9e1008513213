//! Amazon Q Developer in chat applications (formerly AWS Chatbot): the
//! custom-notification format it shows from an SNS topic (it drops any other
//! payload silently), for Slack, Microsoft Teams and Chime.
//!
//! `{"version": "1.0", "source": "custom", "content": {"textType":
//! "client-markdown", "title", "description", "nextSteps", "keywords"},
//! "metadata": {"threadId", "summary", "eventType", "relatedResources",
//! "additionalContext"}}`. The thread id is the key ARN, so every alert on
//! one key lands in one thread. Event strings are escaped and cut as for
//! Slack ([`super::mrkdwn`]); the whole message stays under
//! [`MAX_NOTIFICATION_BYTES`].

use super::commands::{commands, Purpose};
use super::describe::{self, is_removal};
use super::links::{self, LinkSettings};
use super::mrkdwn::{code, escape, prose, truncate, truncate_mrkdwn};
use super::slack::{severity_emoji, severity_label};
use crate::verdict::Verdict;
use serde_json::{json, Value};

/// Upper bound of a notification we publish (bytes of JSON).
pub const MAX_NOTIFICATION_BYTES: usize = 8 * 1024;
/// The `eventType` of grantwatch's notifications.
pub const EVENT_TYPE: &str = "KMS grant verdict";

/// The custom notification for one verdict.
pub fn custom_notification(v: &Verdict, link_settings: &LinkSettings) -> Value {
    for n in [300, 100, 40] {
        let out = build(v, link_settings, n);
        if serde_json::to_vec(&out).map_or(usize::MAX, |b| b.len()) <= MAX_NOTIFICATION_BYTES {
            return out;
        }
    }
    build(v, link_settings, 16)
}

/// The custom notification for a storm digest: one message for the
/// window (counted from the ledger's tallies), naming its five most severe
/// alerts; every alert is in the e-mail digest and the ledger.
pub fn digest_notification(d: &crate::ports::notify::Digest) -> Value {
    let email = super::sns::digest_notice(d);
    let mut lines: Vec<String> = d
        .alerts
        .iter()
        .take(5)
        .map(|v| {
            format!(
                "• *{}* {}",
                severity_label(v.severity),
                prose(&describe::summary(v), 200)
            )
        })
        .collect();
    let total = d.tally.total.max(d.alerts.len() as u64);
    if total > lines.len() as u64 {
        lines.push(format!(
            "…and {} more: see the e-mail digest or the grant ledger",
            total - lines.len() as u64
        ));
    }
    json!({
        "version": "1.0",
        "source": "custom",
        "content": {
            "textType": "client-markdown",
            "title": escape(&email.subject),
            "description": lines.join("\n"),
        },
        "metadata": {
            "threadId": "grantwatch-storm",
            "summary": escape(&email.subject),
            "eventType": EVENT_TYPE,
        }
    })
}

fn build(v: &Verdict, link_settings: &LinkSettings, n: usize) -> Value {
    let c = |s: &str| code(&truncate(s, n));
    let mut lines = vec![
        format!("*Who*: {}", prose(&describe::actor(v), n)),
        format!(
            "*Grantee*: {}",
            v.grantee
                .as_deref()
                .map(|g| prose(&describe::principal(g), n))
                .unwrap_or_else(|| "none".into())
        ),
        format!("*Key*: {}", prose(&describe::key_label(v), n)),
        format!(
            "*Operations*: {}",
            prose(&describe::operations(&v.operations), n)
        ),
        format!(
            "*Constraints*: {}",
            prose(&describe::constraints(v.constraints.as_ref()).join("; "), n)
        ),
        format!("*Origin*: {}", v.origin),
    ];
    let mut findings: Vec<_> = v.findings.iter().collect();
    findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
    for f in findings.iter().take(5) {
        lines.push(format!(
            "• *{}* {} {}",
            severity_label(f.severity),
            code(f.code.as_str()),
            prose(&f.message, n)
        ));
    }
    if findings.len() > 5 {
        lines.push(format!("…and {} more findings", findings.len() - 5));
    }
    lines.push(format!(
        "Event {} at {}",
        c(&v.event_id),
        c(v.event_time.as_deref().unwrap_or("unknown"))
    ));

    let mut next_steps = Vec::new();
    if let Some(code) = links::worst_finding(v) {
        let runbook = match link_settings.runbook_url(code) {
            Some(url) => url,
            None => format!("{} in the grantwatch source", link_settings.runbook(code)),
        };
        next_steps.push(format!("Runbook: {runbook}"));
    }
    if let Some(url) = links::cloudtrail_event(v).filter(|u| u.len() <= 1000) {
        next_steps.push(format!("CloudTrail event: {url}"));
    }
    for cmd in commands(v)
        .into_iter()
        .filter(|c| matches!(c.purpose, Purpose::Revoke | Purpose::Inspect))
    {
        if cmd.command.len() <= 600 {
            next_steps.push(format!(
                "{}: {}",
                cmd.purpose.label(),
                code(&cmd.command).replace('ˋ', "`")
            ));
        }
    }

    let mut keywords = vec![v.severity.as_str().to_string()];
    keywords.extend(findings.iter().map(|f| f.code.as_str().to_string()));
    keywords.dedup();

    let thread = describe::key_for_command(v)
        .map(|k| truncate(k, 256))
        .unwrap_or_else(|| "grantwatch".to_string());
    let mut related: Vec<String> = Vec::new();
    if let Some(arn) = v.key_arn.as_deref() {
        related.push(truncate(arn, 512));
    }
    if let Some(g) = v.grantee.as_deref().filter(|g| g.starts_with("arn:")) {
        related.push(truncate(g, 512));
    }
    json!({
        "version": "1.0",
        "source": "custom",
        "id": truncate(&v.event_id, n.min(256)),
        "content": {
            "textType": "client-markdown",
            // Escaped text: cut never inside an entity (a bare `&`).
            "title": truncate_mrkdwn(
                &format!(
                    "{} {} · {}",
                    severity_emoji(v.severity),
                    severity_label(v.severity),
                    escape(&describe::summary(v))
                ),
                250
            ),
            "description": lines.join("\n"),
            "nextSteps": next_steps,
            "keywords": keywords,
        },
        "metadata": {
            "threadId": thread,
            "summary": truncate(&describe::summary(v), n.min(250)),
            "eventType": EVENT_TYPE,
            "relatedResources": related,
            "additionalContext": {
                "event_id": truncate(&v.event_id, n),
                "severity": v.severity.as_str(),
                "removal": is_removal(v),
            },
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::testkit::*;
    use crate::render::tests_support::assert_escaped;

    #[test]
    fn custom_notification_has_the_format_q_developer_shows() {
        let n = custom_notification(&manual_grant(), &LinkSettings::default());
        assert_eq!(n["version"], "1.0");
        assert_eq!(n["source"], "custom");
        assert_eq!(n["content"]["textType"], "client-markdown");
        assert_eq!(n["metadata"]["threadId"], KEY_ARN, "one thread per key");
        assert_eq!(n["metadata"]["eventType"], EVENT_TYPE);
        let title = n["content"]["title"].as_str().expect("title");
        assert!(
            title.starts_with("🟠 HIGH · Manual KMS grant by alice"),
            "{title}"
        );
        let steps: Vec<&str> = n["content"]["nextSteps"]
            .as_array()
            .expect("steps")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            steps[0], "Runbook: docs/findings/cross-account-grantee.md in the grantwatch source",
            "no RUNBOOK_BASE_URL: the page is named, no made-up link"
        );
        assert!(
            steps.iter().any(|s| s.contains("aws kms revoke-grant")),
            "{steps:?}"
        );
        let keywords = n["content"]["keywords"].as_array().expect("keywords");
        assert!(keywords.contains(&json!("cross-account-grantee")));
    }

    #[test]
    fn hostile_and_huge_values_stay_escaped_and_small() {
        let mut v = manual_grant();
        let hostile = "<!channel> & ".repeat(3000);
        v.grantee = Some(hostile.clone());
        v.findings
            .iter_mut()
            .for_each(|f| f.message = hostile.clone());
        v.event_id = hostile;
        let n = custom_notification(&v, &LinkSettings::default());
        assert_escaped(n["content"]["description"].as_str().expect("description"));
        assert_escaped(n["content"]["title"].as_str().expect("title"));
        assert!(serde_json::to_vec(&n).expect("json").len() <= MAX_NOTIFICATION_BYTES);
    }

    #[test]
    fn a_long_title_is_never_cut_inside_an_entity() {
        // Every offset of the cut against `&gt;` (found by the fuzzer).
        for pad in 0..5 {
            let mut v = manual_grant();
            v.grantee = Some(format!("{}{}", "x".repeat(pad), ">".repeat(300)));
            let n = custom_notification(&v, &LinkSettings::default());
            let title = n["content"]["title"].as_str().expect("title");
            for (at, _) in title.match_indices('&') {
                let entity = &title[at..];
                assert!(
                    ["&amp;", "&lt;", "&gt;"]
                        .iter()
                        .any(|e| entity.starts_with(e)),
                    "pad {pad}: a bare & in {title}"
                );
            }
        }
    }

    #[test]
    fn a_digest_is_one_notification_naming_the_worst_and_counting_the_rest() {
        let mut tally = crate::ports::ledger::DigestTally::default();
        let carried = vec![crate::render::testkit::manual_grant(); 7];
        for _ in 0..40 {
            tally.add(&carried[0]);
        }
        let d = crate::ports::notify::Digest {
            window_start: 1_795_000_000,
            window_seconds: 60,
            alerts: carried,
            tally,
        };
        let n = digest_notification(&d);
        assert_eq!(n["source"], "custom");
        let text = n["content"]["description"].as_str().unwrap_or_default();
        assert_eq!(text.matches("• *HIGH*").count(), 5, "{text}");
        assert!(text.contains("and 35 more"), "{text}");
        assert!(n["content"]["title"]
            .as_str()
            .is_some_and(|t| t.contains("40")));
    }
}
