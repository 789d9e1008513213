//! grant-watcher end to end: the compiled binary behind the Runtime API
//! harness, with the environment the SAM template gives it (deployed into
//! moto), against moto (SNS → SQS read-back, DynamoDB, Secrets Manager) and
//! the Slack stand-in.

use grantwatch_e2e::moto::SnsDelivery;
use grantwatch_e2e::runtime_api::{function_binary, Function};
use grantwatch_e2e::slack_stub::Reply;
use grantwatch_e2e::watcher_world::*;
use std::collections::BTreeSet;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_articles_story_a_person_retiring_a_lambda_grant_is_a_high_alert_naming_the_function() {
    let world = World::new(&[]).await;
    let function = world.function().await;

    let created = function
        .invoke(fixture("lambda-create-grant"))
        .await
        .unwrap();
    assert_eq!(created["outcome"], "watched");
    assert_eq!(
        created["alert"], false,
        "Lambda's own grant is normal: {created}"
    );
    assert!(world.inbox.receive().await.is_empty());
    assert!(world.slack.requests().is_empty());
    let item = world
        .item(&format!("GRANT#{KEY_ARN}"), LAMBDA_GRANT_ID)
        .await
        .expect("the grant is in the ledger");
    assert_eq!(item["origin"].as_s().unwrap(), "service");
    assert_eq!(item["service"].as_s().unwrap(), "lambda");
    assert!(
        !item.contains_key("expires_at"),
        "a live grant does not expire"
    );

    let retired = function
        .invoke(fixture("manual-retire-grant"))
        .await
        .unwrap();
    assert_eq!(retired["alert"], true);
    assert_eq!(retired["severity"], "high");
    let messages = world.inbox.receive().await;
    assert_eq!(messages.len(), 1);
    let alert = &messages[0];
    assert_eq!(attribute(alert, "severity"), "high");
    assert!(attribute(alert, "finding_codes").contains("service-grant-removed"));
    assert!(alert.message.contains(FUNCTION_ARN), "{}", alert.message);
    let posted = world.slack.accepted();
    assert_eq!(posted.len(), 1);
    assert!(slack_text(&posted[0]).contains(FUNCTION_ARN));

    let item = world
        .item(&format!("GRANT#{KEY_ARN}"), LAMBDA_GRANT_ID)
        .await
        .unwrap();
    assert_eq!(item["removal_action"].as_s().unwrap(), "RetireGrant");
    assert_eq!(
        item["removed_by"].as_s().unwrap(),
        "arn:aws:sts::123456789012:assumed-role/Admin/bob"
    );
    assert!(
        item.contains_key("expires_at"),
        "a removed grant expires (TTL)"
    );
    assert!(!function.all_output().contains(WEBHOOK_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_risky_manual_grant_alerts_on_both_channels_with_filterable_attributes() {
    let world = World::new(&[]).await;
    let function = world.function().await;
    let outcome = function
        .invoke(fixture("manual-cross-account-grant"))
        .await
        .unwrap();
    assert_eq!(outcome["alert"], true);

    let messages = world.inbox.receive().await;
    assert_eq!(messages.len(), 1);
    let alert = &messages[0];
    let subject = alert.subject.as_deref().unwrap();
    assert!(subject.len() < 100 && subject.is_ascii(), "{subject}");
    assert!(subject.contains("alice"), "{subject}");
    // The fixture's verdict (`grantwatch classify` on it): a cross-account,
    // re-delegating, unconstrained grant is critical.
    assert_eq!(outcome["severity"], "critical");
    assert_eq!(attribute(alert, "severity"), "critical");
    assert_eq!(attribute(alert, "origin"), "manual");
    assert_eq!(attribute(alert, "event_name"), "CreateGrant");
    assert_eq!(attribute(alert, "account"), "123456789012");
    assert_eq!(attribute(alert, "region"), "us-east-1");
    let codes = attribute(alert, "finding_codes");
    assert!(
        codes.contains("manual-grant") && codes.contains("cross-account-grantee"),
        "{codes}"
    );
    assert!(
        alert.message.contains("aws kms revoke-grant"),
        "{}",
        alert.message
    );

    let posted = world.slack.accepted();
    assert_eq!(posted.len(), 1);
    let raw = &world.slack.requests()[0].raw_body;
    assert!(posted[0]["blocks"]
        .as_array()
        .is_some_and(|b| !b.is_empty()));
    assert!(
        !raw.contains("<script>"),
        "event strings are escaped: {raw}"
    );

    let emf = function.emf_lines();
    assert_eq!(emf.len(), 1);
    assert_eq!(function.metric_sum("Alerts"), 1.0);
    assert_eq!(function.metric_sum("EventsSeen"), 1.0);
    assert!(!function.all_output().contains(WEBHOOK_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_delivered_twice_alerts_once() {
    let world = World::new(&[]).await;
    let function = world.function().await;
    let event = fixture("manual-cross-account-grant");
    let first = function.invoke(event.clone()).await.unwrap();
    // A second execution environment, as a duplicate delivery may land on one.
    let other = world.function().await;
    let second = other.invoke(event).await.unwrap();
    assert_eq!(first["first_seen"], true);
    assert_eq!(second["first_seen"], false);
    assert_eq!(world.inbox.receive().await.len(), 1);
    assert_eq!(world.slack.requests().len(), 1);
    assert_eq!(other.metric_sum("DuplicateEvents"), 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_answering_429_is_retried_after_retry_after() {
    let world = World::new(&[]).await;
    world.slack.script([
        Reply::TooManyRequests {
            retry_after_secs: 1,
        },
        Reply::Ok,
    ]);
    let function = world.function().await;
    function
        .invoke(fixture("manual-cross-account-grant"))
        .await
        .unwrap();
    let requests = world.slack.requests();
    let statuses: Vec<u16> = requests.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 200]);
    assert!(requests[1].at.duration_since(requests[0].at) >= Duration::from_secs(1));
    assert_eq!(
        requests[0].body, requests[1].body,
        "the same message is retried"
    );
    assert_eq!(world.inbox.receive().await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_down_still_delivers_sns_fails_the_invocation_and_the_retry_does_not_resend_sns() {
    let world = World::new(&[]).await;
    world.slack.set_fallback(Reply::ServerError);
    let function = world.function().await;
    let event = fixture("manual-cross-account-grant");
    let error = function.invoke(event.clone()).await.unwrap_err();
    assert_eq!(error.error_type, "DeliveryFailed");
    assert!(error.error_message.contains("slack"), "{error}");
    assert!(!error.error_message.contains(WEBHOOK_TOKEN));
    assert_eq!(world.inbox.receive().await.len(), 1, "SNS delivered anyway");
    assert!(world.slack.requests().len() > 1, "5xx is retried");
    assert_eq!(function.metric_sum("DeliveriesFailed"), 1.0);

    // Slack is back; Lambda retries the event.
    world.slack.set_fallback(Reply::Ok);
    let retried = function.invoke(event).await.unwrap();
    assert_eq!(retried["channels"][0]["status"], "already-delivered");
    assert_eq!(retried["channels"][1]["status"], "sent");
    assert!(world.inbox.receive().await.is_empty(), "SNS is not resent");
    assert_eq!(world.slack.accepted().len(), 1);
    assert!(!function.all_output().contains(WEBHOOK_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_webhook_is_a_configuration_error_counted_not_retried() {
    let world = World::new(&[]).await;
    world.slack.set_fallback(Reply::NotFound);
    let function = world.function().await;
    let outcome = function
        .invoke(fixture("manual-cross-account-grant"))
        .await
        .unwrap();
    assert_eq!(outcome["channels"][1]["status"], "rejected");
    assert_eq!(world.slack.requests().len(), 1);
    assert_eq!(world.inbox.receive().await.len(), 1);
    assert_eq!(function.metric_sum("DeliveriesFailed"), 1.0);
}

/// Only input that is not CloudTrail at all is an error; a recognisable
/// grant event the parser cannot read alerts (`unparseable-event`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_event_fails_clearly_an_unreadable_grant_event_alerts_and_the_next_events_are_served(
) {
    let world = World::new(&[]).await;
    let function = world.function().await;
    let error = function
        .invoke(serde_json::json!({ "version": "0", "detail": "not an object" }))
        .await
        .unwrap_err();
    assert_eq!(error.error_type, "MalformedEvent", "{error}");

    let unreadable = function
        .invoke(fixture("malformed-create-grant"))
        .await
        .unwrap();
    assert_eq!(unreadable["alert"], true, "{unreadable}");
    let messages = world.inbox.receive().await;
    assert_eq!(messages.len(), 1);
    assert!(attribute(&messages[0], "finding_codes").contains("unparseable-event"));
    assert!(messages[0]
        .message
        .contains("e0000000-0000-4000-8000-00000000x001"));

    let skipped = function
        .invoke(fixture("decrypt-not-a-grant"))
        .await
        .unwrap();
    assert_eq!(skipped["outcome"], "skipped");
    assert_eq!(skipped["event_name"], "Decrypt");
    assert!(function.wait_for_stdout("not a grant event").await);

    let alerted = function
        .invoke(fixture("manual-cross-account-grant"))
        .await
        .unwrap();
    assert_eq!(alerted["alert"], true);
    assert!(function.is_running());
    assert_eq!(world.inbox.receive().await.len(), 1);
    assert_eq!(function.metric_sum("MalformedEvents"), 1.0);
    assert_eq!(function.metric_sum("NotGrantEvents"), 1.0);
    let keys = world.partition_keys().await;
    assert!(!keys.iter().any(|k| k.contains("d001")), "{keys:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_setting_is_an_init_error_naming_it() {
    let world = World::new(&[]).await;
    let mut config = world.config.clone();
    config.env.remove("LEDGER_TABLE");
    let function = Function::start(&function_binary("grant-watcher"), config)
        .await
        .unwrap();
    let error = function
        .invoke(fixture("manual-cross-account-grant"))
        .await
        .unwrap_err();
    assert_eq!(error.error_type, "InvalidConfiguration");
    assert!(error.error_message.contains("LEDGER_TABLE"), "{error}");
    assert!(world.inbox.receive().await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_500_alerting_events_becomes_digests_and_every_event_is_ledgered() {
    const EVENTS: usize = 500;
    const THRESHOLD: usize = 10;
    const WINDOW_SECONDS: u64 = 30;
    let window = WINDOW_SECONDS.to_string();
    let world = World::new(&[
        ("StormThreshold", "10"),
        ("StormWindowSeconds", window.as_str()),
    ])
    .await;
    // Two invocations at a time: concurrent joins of one digest, without
    // queueing moto's (serialised) DynamoDB past the watcher's 3 s attempt
    // timeout on a loaded 2-core machine.
    let workers = 2;
    let mut functions = Vec::new();
    for _ in 0..workers {
        functions.push(world.function().await);
    }
    let started = std::time::Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let results = futures_join(functions.iter().map(|function| {
        let next = next.clone();
        async move {
            let mut failures = Vec::new();
            loop {
                let n = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if n >= EVENTS {
                    return failures;
                }
                if let Err(error) = function.invoke(manual_grant(n)).await {
                    failures.push(error);
                }
            }
        }
    }))
    .await;
    let failures: Vec<_> = results.into_iter().flatten().collect();
    assert!(failures.is_empty(), "{failures:?}");

    let messages = world.inbox.receive().await;
    let (digests, alone): (Vec<&SnsDelivery>, Vec<&SnsDelivery>) = messages
        .iter()
        .partition(|m| attribute(m, "kind") == "digest");
    assert!(!digests.is_empty(), "a storm makes digests");
    // Windows are aligned to the epoch: the burst touched at most this many.
    let windows = (started.elapsed().as_secs() / WINDOW_SECONDS + 2) as usize;
    // At most THRESHOLD alone and one digest per storm window, however
    // slow the machine: never one message per event.
    assert!(
        alone.len() <= THRESHOLD * windows && digests.len() <= windows,
        "{} alone and {} digests over at most {windows} windows",
        alone.len(),
        digests.len()
    );
    assert!(
        messages.len() < EVENTS / 2,
        "{} SNS messages",
        messages.len()
    );
    let in_digests: usize = digests
        .iter()
        .map(|d| attribute(d, "count").parse::<usize>().unwrap())
        .sum();
    assert_eq!(
        alone.len() + in_digests,
        EVENTS,
        "every alert is in the SNS record once"
    );
    assert!(alone.len() >= THRESHOLD);
    assert_eq!(
        world.slack.accepted().len(),
        messages.len(),
        "Slack gets the same digests"
    );

    let keys: BTreeSet<String> = world.partition_keys().await.into_iter().collect();
    for n in 0..EVENTS {
        assert!(
            keys.contains(&format!("EVENT#burst-{n:04}")),
            "event {n} is in the ledger"
        );
        assert!(keys.contains(&format!("GRANT#{KEY_ARN}")));
    }
    let digested: f64 = functions.iter().map(|f| f.metric_sum("Digested")).sum();
    assert_eq!(digested as usize, in_digests);
}
