//! What the alert topic's subscribers get, through the compiled watcher
//! with the template's environment in moto (docs/alerts.md,
//! "`MessageStructure=json`"): SQS subscribers the verdict as JSON,
//! `finding_codes` a `String.Array` that a filter policy matches one code
//! of (moto applies SNS filter policies).

use grantwatch_e2e::watcher_world::*;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machines_get_the_verdict_and_a_filter_policy_matches_one_finding_code() {
    let world = World::new(&[]).await;
    let topic = world.env["ALERT_TOPIC_ARN"].clone();
    let cross_account = world
        .moto
        .subscribe_queue_filtered(
            &topic,
            "cross-account-only",
            Some(&json!({"finding_codes": ["cross-account-grantee"]})),
        )
        .await;
    let tampering = world
        .moto
        .subscribe_queue_filtered(
            &topic,
            "tampering-only",
            Some(&json!({"finding_codes": ["pipeline-tampered"]})),
        )
        .await;
    let function = world.function().await;
    let outcome = function
        .invoke(fixture("manual-cross-account-grant"))
        .await
        .unwrap();
    assert_eq!(outcome["alert"], true);

    let messages = world.inbox.receive().await;
    assert_eq!(messages.len(), 1);
    let alert = &messages[0];
    let machine = alert.machine.as_ref().expect("the SQS body is JSON");
    assert_eq!(machine["kind"], "alert");
    assert_eq!(machine["subject"].as_str(), alert.subject.as_deref());
    let verdict = alert.verdict().expect("a verdict");
    assert_eq!(verdict["severity"], outcome["severity"]);
    assert_eq!(verdict["event_name"], "CreateGrant");
    assert!(
        machine["commands"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["purpose"] == "Revoke"),
        "{machine}"
    );
    assert_eq!(alert.attribute_types["finding_codes"], "String.Array");
    let codes: Vec<String> =
        serde_json::from_str(&alert.attributes["finding_codes"]).expect("a JSON array");
    assert!(
        codes.contains(&"cross-account-grantee".to_string()),
        "{codes:?}"
    );
    assert_eq!(alert.attribute_types["severity"], "String");

    let matched = cross_account.receive().await;
    assert_eq!(matched.len(), 1, "one code of the array matches");
    assert_eq!(matched[0].verdict(), Some(verdict));
    assert!(
        tampering.receive().await.is_empty(),
        "a code the alert does not have filters it out"
    );
}
