//! The Slack and SNS renderers, fed any verdict (a verdict's JSON: the
//! fuzzer reaches every field, escaped or not).

use grantwatch_core::render::links::LinkSettings;
use grantwatch_core::render::tests_support::{
    assert_alert_limits, assert_escaped, assert_slack_limits, assert_sns_rules,
};
use grantwatch_core::render::{chatbot, slack, sns};
use grantwatch_core::verdict::Verdict;
use serde_json::Value;

const WINDOW: &str = "in the last 60 s";

/// A verdict renders within every Block Kit limit, escaped, and within the
/// SNS rules, alone and in a digest; the SNS machine form is JSON carrying
/// the verdict.
pub fn renderers(data: &[u8]) {
    let Ok(v) = serde_json::from_slice::<Verdict>(data) else {
        return;
    };
    assert_alert_limits(&slack::alert(&v));
    assert_sns_rules(&sns::alert(&v));

    let digest = vec![v.clone(); 3];
    assert_slack_limits(&slack::digest(&digest, WINDOW));
    assert_sns_rules(&sns::digest(&digest, WINDOW));

    let structured = sns::structured_alert(&v);
    let bodies: Value = serde_json::from_str(&structured.message)
        .unwrap_or_else(|e| panic!("the structured message is not JSON: {e}"));
    let default = bodies["default"]
        .as_str()
        .unwrap_or_else(|| panic!("no default body: {bodies}"));
    let machine: Value = serde_json::from_str(default)
        .unwrap_or_else(|e| panic!("the default body is not JSON: {e}"));
    assert_eq!(machine["kind"], "alert");
    assert_eq!(machine["verdict"]["event_id"], v.event_id.as_str());

    let chat = chatbot::custom_notification(&v, &LinkSettings::default());
    let size = serde_json::to_vec(&chat).map_or(usize::MAX, |b| b.len());
    assert!(size <= chatbot::MAX_NOTIFICATION_BYTES, "{size} bytes");
    for field in ["title", "description"] {
        if let Some(text) = chat["content"][field].as_str() {
            assert_escaped(text);
        }
    }
}
