//! grant-watcher never goes quiet by itself (issue 9), end to end: the
//! compiled binary behind the Runtime API harness, with the template's
//! environment, against moto and the Slack stand-in. Every alerting event
//! ends as a delivered alert or a visible failure (an error response).

use grantwatch_e2e::runtime_api::{Function, LambdaError, EXITED, TIMED_OUT};
use grantwatch_e2e::slack_stub::{Reply, SlackStub};
use grantwatch_e2e::watcher_world::*;
use serde_json::Value;
use std::time::Duration;

/// The alert topic is mandatory: when it is gone, the invocation fails
/// (Lambda retries it, then the on-failure destination keeps it), and
/// keeps failing on retry: never an `Ok` with the alert lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alert_topic_deleted_fails_the_invocation_every_time() {
    let world = World::new(&[]).await;
    world
        .moto
        .sns()
        .await
        .delete_topic()
        .topic_arn(&world.env["ALERT_TOPIC_ARN"])
        .send()
        .await
        .unwrap();
    let function = world.function().await;
    let event = fixture("manual-cross-account-grant");
    for attempt in ["first", "retry"] {
        let error = function.invoke(event.clone()).await.unwrap_err();
        assert_eq!(error.error_type, "ChannelRejected", "{attempt}: {error}");
        assert!(error.error_message.contains("sns"), "{attempt}: {error}");
        assert!(
            error.error_message.contains("NotFound"),
            "{attempt}: {error}"
        );
    }
    // Slack (best effort) still carried the alert, once.
    assert_eq!(world.slack.accepted().len(), 1);
    // The adapter says what to fix, at error level.
    let logged = function.stdout_lines().join("\n");
    assert!(
        logged.contains("SNS refused the alert") && logged.contains("ALERT_TOPIC_ARN"),
        "{logged}"
    );
    assert!(!function.all_output().contains(WEBHOOK_TOKEN));
}

/// The webhook is rotated while the function runs (its secret cached):
/// the old webhook answers 404, the function reads the secret again and
/// the next alert reaches the new URL, without a cold start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_rotated_mid_run_gets_the_next_alert() {
    let world = World::new(&[]).await;
    let function = world.function().await;
    let first = function.invoke(manual_grant(1)).await.unwrap();
    assert_eq!(first["alert"], true);
    assert_eq!(world.slack.accepted().len(), 1);

    let rotated = SlackStub::start().await;
    world
        .moto
        .secrets()
        .await
        .put_secret_value()
        .secret_id(&world.secret_arn)
        .secret_string(serde_json::json!({ "url": rotated.url() }).to_string())
        .send()
        .await
        .unwrap();
    world.slack.set_fallback(Reply::NotFound);

    let second = function.invoke(manual_grant(2)).await.unwrap();
    assert_eq!(second["alert"], true);
    let statuses: Vec<u16> = world.slack.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 404], "the old webhook, then refused");
    assert_eq!(rotated.accepted().len(), 1, "the new webhook got the alert");
    assert!(
        rotated.requests()[0].raw_body.contains("alice"),
        "{}",
        rotated.requests()[0].raw_body
    );
    assert_eq!(function.metric_sum("DeliveriesRejected"), 0.0);
    assert_eq!(world.inbox.receive().await.len(), 2);
    assert!(function.is_running(), "no cold start");
    assert!(!function.all_output().contains(WEBHOOK_TOKEN));
}

/// A real CreateGrant whose grantee field is renamed cannot be read as a
/// grant, but it is recognisably one: it alerts, naming the event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_grant_with_its_grantee_field_renamed_alerts_naming_the_event() {
    let world = World::new(&[]).await;
    let function = world.function().await;
    let mut event = fixture("manual-cross-account-grant");
    let parameters = event["detail"]["requestParameters"]
        .as_object_mut()
        .expect("requestParameters");
    let grantee = parameters.remove("granteePrincipal").expect("grantee");
    parameters.insert("granteePrincipalArn".to_string(), grantee);
    event["detail"]["eventID"] = "renamed-grantee-0001".into();

    let outcome = function.invoke(event).await.unwrap();
    assert_eq!(outcome["alert"], true, "{outcome}");
    assert!(
        matches!(outcome["severity"].as_str(), Some("high" | "critical")),
        "{outcome}"
    );
    let messages = world.inbox.receive().await;
    assert_eq!(messages.len(), 1);
    assert!(
        messages[0].message.contains("renamed-grantee-0001"),
        "{}",
        messages[0].message
    );
    assert_eq!(world.slack.accepted().len(), 1);

    // A grant event whose parameters cannot be read at all: still an
    // alert, `unparseable-event`, naming the event.
    let mut event = fixture("manual-cross-account-grant");
    event["detail"]["requestParameters"] = serde_json::json!(["not", "an", "object"]);
    event["detail"]["eventID"] = "unreadable-grant-0002".into();
    let outcome = function.invoke(event).await.unwrap();
    assert_eq!(outcome["alert"], true, "{outcome}");
    let messages = world.inbox.receive().await;
    assert_eq!(messages.len(), 1);
    assert!(
        attribute(&messages[0], "finding_codes").contains("unparseable-event"),
        "{:?}",
        messages[0].attributes
    );
    assert!(
        messages[0].message.contains("unreadable-grant-0002"),
        "{}",
        messages[0].message
    );
}

/// Two execution environments given the same events at the same time:
/// each alert reaches each channel exactly once. An invocation may fail
/// (a lease held by the other): Lambda retries it, and so does this test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_given_the_same_events_at_once_deliver_each_alert_once_per_channel() {
    const EVENTS: usize = 6;
    let world = World::new(&[]).await;
    let (one, two) = (world.function().await, world.function().await);
    let (failed_one, failed_two) =
        tokio::join!(invoke_each(&one, EVENTS), invoke_each(&two, EVENTS));
    let mut retries = failed_one
        .into_iter()
        .map(|(n, e)| (n, e, &one))
        .chain(failed_two.into_iter().map(|(n, e)| (n, e, &two)))
        .collect::<Vec<_>>();
    for (_, error, _) in &retries {
        assert_ne!(error.error_type, TIMED_OUT, "{error}");
        assert_ne!(error.error_type, EXITED, "{error}");
    }
    // Lambda's retries of what failed, until each succeeds.
    for _round in 0..3 {
        let mut still = Vec::new();
        for (n, _, function) in retries {
            if let Err(error) = function.invoke(manual_grant(n)).await {
                still.push((n, error, function));
            }
        }
        retries = still;
    }
    assert!(retries.is_empty(), "still failing after retries");

    // Each alert exactly once per channel, alone or inside one digest (two
    // processes counting the same events may tip a window into storm mode;
    // a digest names its events by event id).
    let messages = world.inbox.receive().await;
    let posted = world.slack.accepted();
    for n in 0..EVENTS {
        let (event, grant) = (format!("burst-{n:04}"), format!("grant-{n:04}"));
        let on_sns = messages
            .iter()
            .filter(|m| m.message.contains(&event))
            .count();
        assert_eq!(on_sns, 1, "{event} once on SNS");
        let on_slack = posted
            .iter()
            .filter(|body| {
                let text = body.to_string();
                text.contains(&event) || text.contains(&grant)
            })
            .count();
        assert_eq!(on_slack, 1, "{event} once on Slack");
    }
    assert!(messages.len() <= EVENTS && posted.len() <= EVENTS);
}

/// Invoke events 0..n in order; the ones that failed.
async fn invoke_each(function: &Function, n: usize) -> Vec<(usize, LambdaError)> {
    let mut failed = Vec::new();
    for n in 0..n {
        if let Err(error) = function.invoke(manual_grant(n)).await {
            failed.push((n, error));
        }
    }
    failed
}

/// What an invocation came to when a dependency stalls.
fn ended_by_the_function(outcome: &Result<Value, LambdaError>) -> bool {
    match outcome {
        Ok(_) => true,
        Err(error) => error.error_type != TIMED_OUT && error.error_type != EXITED,
    }
}

/// A stalled service (accepts the connection, never answers) behind
/// `variable`: the invocation ends before its 8 s deadline with the
/// function's own answer, never Lambda's timeout.
async fn stalled(
    world: &World,
    variable: &str,
    service: &str,
    n: usize,
    deadline: Duration,
) -> Result<Value, LambdaError> {
    let silent = SilentEndpoint::start().await;
    let config = world.config.clone().env(variable, &silent.url);
    let function = Function::start(
        &grantwatch_e2e::runtime_api::function_binary("grant-watcher"),
        config,
    )
    .await
    .expect("start grant-watcher");
    let outcome = function
        .invoke_with_timeout(manual_grant(n), deadline)
        .await;
    assert!(
        ended_by_the_function(&outcome),
        "{service}: {outcome:?}\n{}",
        function.all_output()
    );
    assert!(silent.accepted() >= 1, "{service} was called");
    if let Err(error) = &outcome {
        assert!(!error.error_message.is_empty(), "{service}: {error}");
    }
    assert!(function.is_running(), "{service}");
    assert!(!function.all_output().contains(WEBHOOK_TOKEN));
    outcome
}

/// SNS, then Secrets Manager (the webhook's secret) stall: each
/// invocation ends before its deadline with a transient error (the alert
/// was not delivered on that channel, so the invocation fails and Lambda
/// retries it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_sns_or_secrets_manager_fails_the_invocation_before_its_deadline() {
    let world = World::new(&[]).await;
    for (n, (variable, service)) in [
        ("AWS_ENDPOINT_URL_SNS", "SNS"),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", "Secrets Manager"),
    ]
    .into_iter()
    .enumerate()
    {
        let outcome = stalled(&world, variable, service, 70 + n, Duration::from_secs(8)).await;
        let error = outcome.expect_err("an undelivered alert fails the invocation");
        assert_eq!(error.error_type, "DeliveryFailed", "{service}: {error}");
    }
}

/// DynamoDB (the ledger) stalls: each call ends within the watcher's
/// operation timeout (10 s), so the invocation answers before a 30 s
/// deadline (the deployed timeout is 90 s), never Lambda's timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_ledger_ends_the_invocation_before_its_deadline() {
    let world = World::new(&[]).await;
    let outcome = stalled(
        &world,
        "AWS_ENDPOINT_URL_DYNAMODB",
        "DynamoDB",
        72,
        Duration::from_secs(30),
    )
    .await;
    // The ledger outage design: the alert goes out undeduplicated, and the
    // invocation fails so Lambda retries it.
    let error = outcome.expect_err("a ledger outage is visible");
    assert_eq!(error.error_type, "LedgerUnavailable", "{error}");
    let messages = world.inbox.receive().await;
    assert_eq!(messages.len(), 1, "the alert reached SNS during the outage");
}
