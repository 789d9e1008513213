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

/// `REDACT_ENCRYPTION_CONTEXT=true`: the alert topic and Slack show the
/// context's keys with `‹redacted›` values; the ledger keeps the values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redaction_hides_context_values_from_people_and_the_ledger_keeps_them() {
    let world = World::new(&[]).await;
    let function = grantwatch_e2e::runtime_api::Function::start(
        &grantwatch_e2e::runtime_api::function_binary("grant-watcher"),
        world
            .config
            .clone()
            .env("REDACT_ENCRYPTION_CONTEXT", "true"),
    )
    .await
    .expect("start grant-watcher");
    let mut event = fixture("manual-cross-account-grant");
    event["detail"]["requestParameters"]["constraints"] =
        json!({"encryptionContextSubset": {"tenant": "acme-corp-4471"}});
    let outcome = function.invoke(event).await.unwrap();
    assert_eq!(outcome["alert"], true);

    let messages = world.inbox.receive().await;
    assert_eq!(messages.len(), 1);
    let sns = &messages[0].message;
    assert!(!sns.contains("acme-corp-4471"), "{sns}");
    assert!(
        sns.contains("tenant") && sns.contains("‹redacted›"),
        "{sns}"
    );
    let posted = world.slack.accepted();
    assert_eq!(posted.len(), 1);
    let slack = posted[0].to_string();
    assert!(!slack.contains("acme-corp-4471"), "{slack}");

    let items = world
        .moto
        .dynamodb()
        .await
        .scan()
        .table_name(&world.table)
        .send()
        .await
        .unwrap();
    assert!(
        format!("{:?}", items.items()).contains("acme-corp-4471"),
        "the ledger keeps the value"
    );
}
