//! The renderers on real verdicts: every event of the fixture corpus,
//! parsed and judged by the real classifier, renders within every Slack
//! and SNS rule. `cargo test -p grantwatch-core fixture_alerts -- --nocapture`
//! prints the alerts as a person sees them (the examples in docs/alerts.md).

use super::tests_support::{assert_alert_limits, assert_slack_limits, assert_sns_rules};
use super::{slack, sns, text};
use crate::app::watch::grant_record;
use crate::event::{parse_document, GrantEvent, Parsed};
use crate::judge::{judge_event, Policy};
use crate::verdict::{FindingCode, Verdict};

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/events");

fn policy() -> Policy {
    Policy::new(time::macros::date!(2026 - 11 - 28))
}

/// The grant events of a fixture file. A file that does not parse, or a
/// record that fails, fails the test (a loader that swallowed them would
/// let the corpus shrink unnoticed), except in the `malformed-*` files,
/// which exist to fail (the parser's tests check how) and must.
fn events(file: &str) -> Vec<GrantEvent> {
    let bytes = std::fs::read(format!("{FIXTURES}/{file}")).expect("fixture");
    let malformed = file.starts_with("malformed-");
    let records = match parse_document(&bytes) {
        Ok(records) => records,
        Err(_) if malformed => return Vec::new(),
        Err(e) => panic!("{file}: the fixture does not parse: {e}"),
    };
    let mut failed = 0;
    let events = records
        .into_iter()
        .filter_map(|r| match r {
            Ok(Parsed::Grant(event)) => Some(*event),
            Ok(_) => None,
            Err(e) => {
                assert!(malformed, "{file}: a record does not parse: {e}");
                failed += 1;
                None
            }
        })
        .collect();
    assert!(
        !malformed || failed > 0,
        "{file} is meant to be malformed but parses"
    );
    events
}

fn verdicts_of_corpus() -> Vec<(String, Verdict)> {
    let mut names: Vec<String> = std::fs::read_dir(FIXTURES)
        .expect("fixture directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json") && !n.ends_with(".expected.json"))
        .collect();
    names.sort();
    names
        .into_iter()
        .flat_map(|name| {
            events(&name)
                .into_iter()
                .map(move |e| (name.clone(), judge_event(&e, None, &policy())))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn fixture_alerts_render_within_every_rule() {
    let verdicts = verdicts_of_corpus();
    assert!(
        verdicts.len() >= 20,
        "only {} grant events in the corpus",
        verdicts.len()
    );
    for (name, v) in &verdicts {
        let payload = slack::alert(v);
        assert_alert_limits(&payload);
        let msg = sns::alert(v);
        assert_sns_rules(&msg);
        let shown = text::slack_payload_as_text(&payload);
        assert!(shown.contains(&v.event_id), "{name}: event id missing");
    }
    let all: Vec<Verdict> = verdicts.into_iter().map(|(_, v)| v).collect();
    assert_slack_limits(&slack::digest(&all, "in the last 60 s"));
    assert_sns_rules(&sns::digest(&all, "in the last 60 s"));
}

#[test]
fn fixture_alerts_examples() {
    let risky = events("manual-sdk-cross-account-critical.json");
    let v = judge_event(&risky[0], None, &policy());
    let shown = text::slack_payload_as_text(&slack::alert(&v));
    assert!(shown.contains("aws kms revoke-grant --key-id"), "{shown}");
    println!("{shown}\n\n{}", text::sns_as_text(&sns::alert(&v)));

    // The article's story: Lambda created the grant, a person retires it.
    let created = events("lambda-create-grant.json");
    let created_verdict = judge_event(&created[0], None, &policy());
    let retire = events("retire-null-params.json");
    let (Some(key), Some(grant)) = (&retire[0].key_arn, &retire[0].grant_id) else {
        panic!("the retire fixture names its key and grant");
    };
    let known = grant_record(&created[0], &created_verdict, key, grant);
    let removal = judge_event(&retire[0], Some(&known), &policy());
    let msg = sns::alert(&removal);
    let payload = slack::alert(&removal);
    assert!(
        removal
            .findings
            .iter()
            .any(|f| f.code == FindingCode::ServiceGrantRemoved),
        "{:?}",
        removal.findings
    );
    assert!(
        msg.subject.contains("Service grant removed by a person"),
        "{}",
        msg.subject
    );
    assert!(
        text::slack_payload_as_text(&payload).contains("docs/findings/service-grant-removed.md"),
        "the alert names its runbook"
    );
    println!(
        "\n{}\n\n{}",
        text::slack_payload_as_text(&payload),
        text::sns_as_text(&msg)
    );
}
