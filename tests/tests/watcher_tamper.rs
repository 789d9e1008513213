//! Issue 10 through the compiled grant-watcher, with the environment the
//! template resolves in moto (`OWN_RESOURCES` included): a call that blinds
//! grantwatch is a critical alert on both channels, the same call on
//! someone else's resource is skipped, a key lifecycle call names the
//! function whose grant breaks, and the heartbeat is counted.

use grantwatch_e2e::watcher_world::{attribute, fixture, World, FUNCTION_ARN, KEY_ARN};
use serde_json::{json, Value};

fn tamper_record(name: &str) -> Value {
    let path = format!("{}/fixtures/tamper/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// A CloudTrail record as EventBridge hands it to the watcher.
fn envelope(source: &str, detail: Value) -> Value {
    json!({
        "version": "0",
        "id": format!("eb-{}", detail["eventID"].as_str().unwrap()),
        "detail-type": "AWS API Call via CloudTrail",
        "source": source,
        "account": "123456789012",
        "time": "2026-11-05T03:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_grantwatchs_own_alert_topic_is_critical_and_anothers_is_skipped() {
    let world = World::new(&[]).await;
    let function = world.function().await;
    let own_topic = world.env["ALERT_TOPIC_ARN"].clone();

    let mut someone_elses = tamper_record("sns-delete-topic");
    someone_elses["requestParameters"]["topicArn"] =
        "arn:aws:sns:us-east-1:123456789012:billing".into();
    let skipped = function
        .invoke(envelope("aws.sns", someone_elses))
        .await
        .unwrap();
    assert_eq!(skipped["outcome"], "skipped", "{skipped}");

    let mut own = tamper_record("sns-delete-topic");
    own["requestParameters"]["topicArn"] = own_topic.clone().into();
    own["eventID"] = "deletetopic-own-0001".into();
    let outcome = function.invoke(envelope("aws.sns", own)).await.unwrap();
    assert_eq!(outcome["severity"], "critical", "{outcome}");
    assert_eq!(outcome["alert"], true);

    let messages = world.inbox.receive().await;
    assert_eq!(messages.len(), 1, "one alert, for the own topic only");
    assert_eq!(attribute(&messages[0], "severity"), "critical");
    assert!(
        attribute(&messages[0], "finding_codes").contains("pipeline-tampered"),
        "{:?}",
        messages[0].attributes
    );
    assert!(
        messages[0].message.contains("DeleteTopic"),
        "{}",
        messages[0].message
    );
    assert_eq!(world.slack.accepted().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_key_that_holds_a_lambda_grant_alerts_naming_the_function() {
    let world = World::new(&[]).await;
    let function = world.function().await;
    // Lambda's own grant for function `test`: ledgered, no alert.
    let created = function
        .invoke(fixture("lambda-create-grant"))
        .await
        .unwrap();
    assert_eq!(created["alert"], false, "{created}");

    let mut disable = tamper_record("kms-disable-key");
    disable["requestParameters"]["keyId"] = KEY_ARN.into();
    disable["responseElements"]["keyId"] = KEY_ARN.into();
    disable["resources"] = json!([{"ARN": KEY_ARN, "type": "AWS::KMS::Key"}]);
    let outcome = function.invoke(envelope("aws.kms", disable)).await.unwrap();
    assert_eq!(outcome["severity"], "high", "{outcome}");

    let messages = world.inbox.receive().await;
    assert_eq!(messages.len(), 1);
    assert!(
        attribute(&messages[0], "finding_codes").contains("key-disabled"),
        "{:?}",
        messages[0].attributes
    );
    assert!(
        messages[0].message.contains(FUNCTION_ARN),
        "the alert names the function that breaks: {}",
        messages[0].message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_heartbeat_is_recorded_and_counted() {
    let world = World::new(&[]).await;
    let function = world.function().await;
    // As the template's schedule puts it on the bus (Input: {"stack": ...}).
    let heartbeat = json!({
        "version": "0",
        "id": "heartbeat-e2e-0001",
        "detail-type": "grantwatch heartbeat",
        "source": "grantwatch.heartbeat",
        "account": "123456789012",
        "time": "2026-11-05T03:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"stack": "grantwatch"},
    });
    let outcome = function.invoke(heartbeat).await.unwrap();
    assert_eq!(outcome["outcome"], "heartbeat", "{outcome}");
    // The EMF line comes before this log line on stdout, which the harness
    // reads in the background: wait for the log line, then read metrics.
    assert!(function.wait_for_stdout("heartbeat recorded").await);
    assert_eq!(function.metric_sum("Heartbeats"), 1.0);
    assert!(world
        .item("EVENT#heartbeat:heartbeat-e2e-0001", "EVENT")
        .await
        .is_some());
    assert!(
        world.inbox.receive().await.is_empty(),
        "a heartbeat never alerts"
    );
}
