//! `grantwatch redrive` end to end: the compiled CLI, with the watcher's
//! environment as the template resolves it in moto, drains a failure
//! queue holding an EventBridge dead-letter message (the raw event), a
//! Lambda on-failure destination record (the event in `requestPayload`)
//! and a message that is neither. Alerts reach SNS (read back through an
//! SQS subscription) and Slack once; only handled messages are deleted.

mod replay_support;

use grantwatch_e2e::watcher_world::*;
use replay_support::{grantwatch, grantwatch_without, Run};
use serde_json::{json, Value};

/// A Lambda asynchronous-invocation record as the on-failure destination
/// receives it (AWS Lambda Developer Guide, "Capturing records of Lambda
/// asynchronous invocations").
fn on_failure_record(event: &Value) -> Value {
    json!({
        "version": "1.0",
        "timestamp": "2026-11-05T01:10:00.000Z",
        "requestContext": {
            "requestId": "e4b46cbf-b738-4a1c-8880-a18cdf61200e",
            "functionArn": "arn:aws:lambda:us-east-1:123456789012:function:grantwatch-watcher:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 3
        },
        "requestPayload": event,
        "responseContext": {
            "statusCode": 200,
            "executedVersion": "$LATEST",
            "functionError": "Unhandled"
        },
        "responsePayload": {
            "errorType": "DeliveryFailed",
            "errorMessage": "delivery failed on sns: throttled"
        }
    })
}

const GARBAGE: &str = "this is not an event";
/// The grant ids of the alerts that reached the alert topic since the
/// last read, sorted ("?" for a message without one), read from the
/// machine JSON: an alert's text also names the earlier grant it
/// duplicates (correlation), so the text cannot tell them apart.
async fn grants_alerted(world: &World) -> Vec<String> {
    let mut ids: Vec<String> = world
        .inbox
        .receive()
        .await
        .iter()
        .map(|m| {
            m.verdict()
                .and_then(|v| v["grant_id"].as_str())
                .unwrap_or("?")
                .to_string()
        })
        .collect();
    ids.sort();
    ids
}

struct Queue {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

impl Queue {
    async fn new(world: &World) -> Queue {
        let sqs = world.moto.sqs().await;
        let url = sqs
            .create_queue()
            .queue_name("grantwatch-watcher-failures")
            .send()
            .await
            .unwrap()
            .queue_url
            .unwrap();
        Queue { sqs, url }
    }

    async fn send(&self, body: &str) {
        self.sqs
            .send_message()
            .queue_url(&self.url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    /// The bodies on the queue now, visible or not (read with a zero
    /// visibility timeout: left as they were).
    async fn bodies(&self) -> Vec<String> {
        let attributes = self
            .sqs
            .get_queue_attributes()
            .queue_url(&self.url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .unwrap();
        let hidden = attributes
            .attributes()
            .and_then(|a| {
                a.get(
                    &aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible,
                )
            })
            .cloned()
            .unwrap_or_default();
        assert_eq!(hidden, "0", "no message is left hidden by a run");
        let received = self
            .sqs
            .receive_message()
            .queue_url(&self.url)
            .max_number_of_messages(10)
            .visibility_timeout(0)
            .send()
            .await
            .unwrap();
        let mut bodies: Vec<String> = received
            .messages()
            .iter()
            .filter_map(|m| m.body().map(str::to_string))
            .collect();
        bodies.sort();
        bodies
    }
}

async fn redrive(world: &World, queue: &Queue, extra: &[&str]) -> Run {
    let mut args = vec!["redrive", "--queue", queue.url.as_str()];
    args.extend_from_slice(extra);
    grantwatch(world, &args).await
}

fn sorted(ids: &[&str]) -> Vec<String> {
    let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_sends_each_kept_alert_once_deletes_only_what_it_handled_and_a_second_run_sends_nothing(
) {
    let world = World::new(&[]).await;
    let queue = Queue::new(&world).await;
    let dead_letter = manual_grant(1);
    let destination = manual_grant(2);
    let dead_letter_body = dead_letter.to_string();
    let destination_body = on_failure_record(&destination).to_string();
    queue.send(&dead_letter_body).await;
    queue.send(&destination_body).await;
    queue.send(GARBAGE).await;
    let alerting = sorted(&["grant-0001", "grant-0002"]);

    // A dry run judges, sends nothing and deletes nothing.
    let dry = redrive(&world, &queue, &["--dry-run"]).await;
    assert_eq!(dry.code, Some(1), "the garbage would be kept: {dry}");
    assert_eq!(dry.lines_starting("").len(), 3, "{dry}");
    assert_eq!(
        dry.stdout
            .matches("would redrive: CreateGrant burst-000")
            .count(),
        2,
        "{dry}"
    );
    assert!(grants_alerted(&world).await.is_empty());
    assert!(world.slack.requests().is_empty());
    assert_eq!(queue.bodies().await.len(), 3);

    // --max bounds the run: one message handled, the others untouched.
    let one = redrive(&world, &queue, &["--max", "1"]).await;
    assert_eq!(one.lines_starting("").len(), 1, "{one}");
    let first_handled = one.stdout.contains(" redriven: ");
    let sent_first = grants_alerted(&world).await;
    assert_eq!(sent_first.len(), usize::from(first_handled), "{one}");
    assert_eq!(
        queue.bodies().await.len(),
        3 - usize::from(first_handled),
        "{one}"
    );

    // The rest: every alert once on each channel, the garbage kept.
    let rest = redrive(&world, &queue, &[]).await;
    assert_eq!(rest.code, Some(1), "the garbage is kept: {rest}");
    let mut sent = sent_first;
    sent.extend(grants_alerted(&world).await);
    sent.sort();
    assert_eq!(sent, alerting, "{rest}");
    let slack: Vec<String> = world.slack.accepted().iter().map(slack_text).collect();
    assert_eq!(slack.len(), 2, "{slack:?}");
    // By event id: an alert's text also names the grant it duplicates.
    for id in ["burst-0001", "burst-0002"] {
        assert_eq!(
            slack.iter().filter(|t| t.contains(id)).count(),
            1,
            "{id} once on Slack: {slack:?}"
        );
    }
    assert_eq!(queue.bodies().await, vec![GARBAGE.to_string()]);
    assert!(
        rest.stdout.contains("kept: the message is not JSON"),
        "{rest}"
    );

    // The same failures delivered to the queue again: redriven (deleted),
    // nothing sent twice.
    queue.send(&dead_letter_body).await;
    queue.send(&destination_body).await;
    let again = redrive(&world, &queue, &[]).await;
    assert_eq!(again.code, Some(1), "{again}");
    assert_eq!(again.lines_starting("").len(), 3, "{again}");
    assert_eq!(
        again.stdout.matches("already-delivered").count(),
        4,
        "{again}"
    );
    assert!(grants_alerted(&world).await.is_empty(), "{again}");
    assert_eq!(world.slack.accepted().len(), 2);
    assert_eq!(queue.bodies().await, vec![GARBAGE.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_of_handled_messages_only_exits_zero_and_empties_the_queue() {
    let world = World::new(&[]).await;
    let queue = Queue::new(&world).await;
    // A Lambda grant (no alert) and the risky grant: both handled.
    queue
        .send(&fixture("lambda-create-grant").to_string())
        .await;
    queue
        .send(&on_failure_record(&manual_grant(7)).to_string())
        .await;
    let run = redrive(&world, &queue, &[]).await;
    assert_eq!(run.code, Some(0), "{run}");
    assert!(run.stderr.contains("2 redriven, 0 kept"), "{run}");
    assert_eq!(grants_alerted(&world).await, sorted(&["grant-0007"]));
    assert!(queue.bodies().await.is_empty());

    // Without the alert topic it cannot deliver: a settings error (exit
    // 2), nothing read.
    queue.send(&manual_grant(8).to_string()).await;
    let args = ["redrive", "--queue", queue.url.as_str()];
    let refused = grantwatch_without(&world, &args, &["ALERT_TOPIC_ARN"]).await;
    assert_eq!(refused.code, Some(2), "{refused}");
    assert!(refused.stderr.contains("--alert-topic-arn"), "{refused}");
    assert_eq!(queue.bodies().await.len(), 1);
}

/// The replay builds its channels as the watcher does (one builder): with
/// the watcher's opt-in channels configured, a redriven alert reaches
/// EventBridge and Security Hub too, and the alert topic and Slack get it
/// with encryption-context values redacted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redriven_alert_reaches_every_configured_channel_redacted_as_the_watcher_would() {
    let mut world = World::new(&[]).await;
    for (name, value) in [
        ("EVENT_BUS_NAME", "default"),
        ("SECURITY_HUB_ENABLED", "true"),
        ("REDACT_ENCRYPTION_CONTEXT", "true"),
    ] {
        world.env.insert(name.to_string(), value.to_string());
    }
    let queue = Queue::new(&world).await;
    let mut event = manual_grant(3);
    event["detail"]["requestParameters"]["constraints"] =
        json!({"encryptionContextSubset": {"tenant": "acme-corp-4471"}});
    queue.send(&event.to_string()).await;
    let run = redrive(&world, &queue, &[]).await;
    assert_eq!(run.code, Some(0), "{run}");
    for channel in [
        "sns=sent",
        "slack=sent",
        "eventbridge=sent",
        "securityhub=sent",
    ] {
        assert!(run.stdout.contains(channel), "{channel}: {run}");
    }
    let alerts = world.inbox.receive().await;
    assert_eq!(alerts.len(), 1);
    assert!(
        !alerts[0].message.contains("acme-corp-4471"),
        "{}",
        alerts[0].message
    );
    assert!(
        alerts[0].message.contains("‹redacted›"),
        "{}",
        alerts[0].message
    );
    let slack = world.slack.accepted();
    assert_eq!(slack.len(), 1);
    assert!(!slack[0].to_string().contains("acme-corp-4471"));
}
