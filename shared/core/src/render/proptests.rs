//! Property tests: for arbitrary strings in every event field, Slack
//! payloads stay escaped and within every Block Kit limit (alerts within
//! 12 blocks and 8 KB), terminal text carries no control characters, SNS messages follow the SNS rules, and commands quote
//! their values so a shell reads them back unchanged.

use super::commands::shell_quote;
use super::mrkdwn::{escape, slack_len, truncate_mrkdwn};
use super::tests_support::{
    assert_alert_limits, assert_escaped, assert_slack_limits, assert_sns_rules,
};
use super::{slack, sns, text};
use crate::grant::{Constraints, Operation};
use crate::verdict::{ActorView, Finding, FindingCode, Origin, RemovedGrant, Severity, Verdict};
use proptest::collection::{btree_map, vec};
use proptest::option;
use proptest::prelude::*;

/// Strings an attacker would try: markup, entities, backticks, line
/// breaks, escape sequences, wide characters; sometimes anything at all,
/// sometimes very long.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[<>&`'\"*_~|!@#:;/\\\\ \n\r\t\u{1b}\u{0}a-zé日😀]{0,40}",
        2 => any::<String>(),
        1 => "(&amp;|&lt;|<!channel>|```|`|&){0,30}",
        1 => "[<&>`a😀]{2900,3100}",
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    option::of(text())
}

fn severity() -> impl Strategy<Value = Severity> {
    prop::sample::select(Severity::ALL.to_vec())
}

fn origin() -> impl Strategy<Value = Origin> {
    prop::sample::select(vec![Origin::Service, Origin::Manual, Origin::Unknown])
}

fn finding() -> impl Strategy<Value = Finding> {
    let codes = vec![
        FindingCode::ManualGrant,
        FindingCode::CrossAccountGrantee,
        FindingCode::ReDelegation,
        FindingCode::DryRun,
        FindingCode::AccessDenied,
        FindingCode::ServiceGrantRemoved,
        FindingCode::UnknownGrantRemoved,
        FindingCode::UnknownOperation,
    ];
    (prop::sample::select(codes), severity(), text()).prop_map(|(code, severity, message)| {
        Finding {
            code,
            severity,
            message,
        }
    })
}

fn operation() -> impl Strategy<Value = Operation> {
    prop_oneof![
        3 => prop::sample::select(Operation::KNOWN.to_vec()),
        1 => text().prop_map(Operation::Unknown),
    ]
}

fn constraints() -> impl Strategy<Value = Option<Constraints>> {
    option::of(
        (
            option::of(btree_map(text(), text(), 0..4)),
            option::of(btree_map(text(), text(), 0..4)),
            opt_text(),
        )
            .prop_map(|(equals, subset, source_arn)| Constraints {
                encryption_context_equals: equals,
                encryption_context_subset: subset,
                source_arn,
            }),
    )
}

fn removed_grant() -> impl Strategy<Value = Option<RemovedGrant>> {
    option::of(
        (
            origin(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
        )
            .prop_map(
                |(
                    origin,
                    service,
                    created_by,
                    created_at,
                    created_event_id,
                    dependent_resource,
                    impact,
                )| {
                    RemovedGrant {
                        origin,
                        service,
                        created_by,
                        created_at,
                        created_event_id,
                        dependent_resource,
                        impact,
                    }
                },
            ),
    )
}

fn event_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["CreateGrant", "RetireGrant", "RevokeGrant"]).prop_map(String::from),
        1 => text(),
    ]
}

prop_compose! {
    fn verdict()(
        ids in (text(), event_name(), opt_text(), opt_text(), opt_text()),
        key in (opt_text(), opt_text(), opt_text(), opt_text(), opt_text()),
        actor in (opt_text(), opt_text(), opt_text(), opt_text(), opt_text(), opt_text()),
        grant in (opt_text(), opt_text(), vec(operation(), 0..6), constraints()),
        judged in (origin(), opt_text(), vec(text(), 0..4), severity(), vec(finding(), 0..8)),
        extra in (opt_text(), vec(text(), 0..3), opt_text(), any::<bool>(), removed_grant()),
    ) -> Verdict {
        let (event_id, event_name, event_time, account, region) = ids;
        let (key, key_arn, key_alias, grant_id, grant_name) = key;
        let (arn, identity_type, actor_account, invoked_by, source_ip, user_agent) = actor;
        let (grantee, retiring_principal, operations, constraints) = grant;
        let (origin, service, evidence, severity, findings) = judged;
        let (suppressed_by, rule_notes, error_code, dry_run, removed_grant) = extra;
        Verdict {
            event_id, event_name, event_time, account, region,
            key, key_arn, key_alias, grant_id, grant_name,
            actor: ActorView { arn, identity_type, account: actor_account, invoked_by },
            source_ip, user_agent, grantee, retiring_principal, operations, constraints,
            origin, service, evidence, severity, alert: true, findings,
            suppressed_by, rule_notes, error_code, dry_run, removed_grant,
        }
    }
}

/// No control character but line breaks and tabs.
fn terminal_safe(s: &str) -> bool {
    !s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

/// Read a word the way a POSIX shell does, for quoting as
/// [`shell_quote`] produces it: plain characters, `'...'`, and `\'`.
fn shell_read(word: &str) -> Option<String> {
    let mut out = String::new();
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => loop {
                match chars.next()? {
                    '\'' => break,
                    c => out.push(c),
                }
            },
            '\\' => out.push(chars.next()?),
            c if c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c) => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn slack_alert_is_escaped_and_within_limits(v in verdict()) {
        let payload = slack::alert(&v);
        assert_alert_limits(&payload);
        let shown = text::slack_payload_as_text(&payload);
        prop_assert!(shown.contains(slack::severity_label(v.severity)), "{}", shown);
        prop_assert!(terminal_safe(&shown), "control character reached the terminal");
    }

    #[test]
    fn shell_reads_quoted_values_back_unchanged(s in any::<String>()) {
        prop_assert_eq!(shell_read(&shell_quote(&s)), Some(s));
    }

    #[test]
    fn truncated_mrkdwn_stays_escaped_and_short(s in text(), max in 0usize..200) {
        let cut = truncate_mrkdwn(&escape(&s), max);
        prop_assert!(slack_len(&cut) <= max);
        assert_escaped(&cut);
    }

    #[test]
    fn malformed_payloads_show_their_words_and_nothing_unsafe(
        value in any::<String>(),
        word in "[A-Za-z0-9]{1,20}",
    ) {
        let shown = text::slack_payload_as_text(&serde_json::json!({"text": value, "blocks": [
            {"type": "header"}, {"type": "section", "fields": [1, {"text": value}]},
            {"type": "context", "elements": "x"},
            {"type": "actions", "elements": [{"url": value}, 7]},
            {"type": "section", "text": {"type": "mrkdwn", "text": word}}
        ]}));
        prop_assert!(terminal_safe(&shown), "control character reached the terminal");
        prop_assert!(shown.contains(&word), "{:?} missing from {:?}", word, shown);
    }
}

proptest! {
    // Digests render many verdicts per case: fewer cases.
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn slack_digest_is_escaped_and_within_limits(vs in vec(verdict(), 0..6), window in text()) {
        let payload = slack::digest(&vs, &window);
        assert_slack_limits(&payload);
        let shown = text::slack_payload_as_text(&payload);
        prop_assert!(shown.contains(&format!("{} KMS grant", vs.len())), "{}", shown);
        prop_assert!(terminal_safe(&shown), "control character reached the terminal");
    }

    #[test]
    fn sns_alert_follows_sns_rules(v in verdict()) {
        let msg = sns::alert(&v);
        assert_sns_rules(&msg);
        let shown = text::sns_as_text(&msg);
        prop_assert!(!shown.contains('\x1b'), "escape character reached the terminal");
    }

    #[test]
    fn sns_digest_follows_sns_rules(vs in vec(verdict(), 0..6), window in text()) {
        assert_sns_rules(&sns::digest(&vs, &window));
    }
}
