//! Real-time correlation and cross-account copies through the compiled
//! watcher, against the ledger in moto: a person's duplicate grant and a
//! burst of grants raise their codes as they arrive; an EBS-like stream of
//! a service's grants to one grantee raises nothing; the second copy of a
//! cross-account call (same `sharedEventID`) does not alert again, and a
//! copy that raises the severity sends exactly one follow-up.

use grantwatch_e2e::runtime_api::{function_binary, Function};
use grantwatch_e2e::watcher_world::*;
use serde_json::Value;

/// The finding codes of each alert the topic carries now.
async fn alert_codes(world: &World) -> Vec<String> {
    world
        .inbox
        .receive()
        .await
        .iter()
        .map(|m| attribute(m, "finding_codes").to_string())
        .collect()
}

/// Lambda's routine grant on the same key as the `n`th distinct event.
fn lambda_grant(n: usize) -> Value {
    let mut event = fixture("lambda-create-grant");
    event["detail"]["eventID"] = format!("lambda-{n:04}").into();
    event["detail"]["responseElements"]["grantId"] = format!("lambda-grant-{n:04}").into();
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persons_duplicate_and_burst_raise_their_codes_and_a_service_stream_raises_nothing() {
    let world = World::new(&[]).await;
    let function = world.function().await;

    // The same person's grant (same key, grantee, operations) six times
    // within ten minutes.
    let mut codes = Vec::new();
    for n in 1..=6 {
        let outcome = function.invoke(manual_grant(n)).await.unwrap();
        assert_eq!(outcome["alert"], true, "{outcome}");
        assert!(
            outcome.get("correlation_unavailable").is_none(),
            "{outcome}"
        );
        let mut sent = alert_codes(&world).await;
        assert_eq!(sent.len(), 1, "grant {n}");
        codes.push(sent.remove(0));
    }
    assert!(!codes[0].contains("duplicate-grant"), "{}", codes[0]);
    assert!(codes[1].contains("duplicate-grant"), "{}", codes[1]);
    assert!(
        !codes[4].contains("grant-burst"),
        "five is no burst: {}",
        codes[4]
    );
    assert!(codes[5].contains("grant-burst"), "{}", codes[5]);
    let grantee_partition = format!("KEYGRANTEE#{KEY_ARN}#arn:aws:iam::444455556666:root");
    assert!(world.partition_keys().await.contains(&grantee_partition));

    // Lambda re-creating its grant to one role on the same key, again and
    // again (as EBS does on every attach): routine, nothing raised.
    for n in 1..=8 {
        let outcome = function.invoke(lambda_grant(n)).await.unwrap();
        assert_eq!(outcome["alert"], false, "{outcome}");
        assert_eq!(outcome["severity"], "info", "{outcome}");
    }
    assert!(alert_codes(&world).await.is_empty());
    assert!(function.wait_for_stdout("lambda-0008").await);
    assert_eq!(function.metric_sum("CorrelationUnavailable"), 0.0);

    // The threshold is a setting: at BURST_THRESHOLD=49 a seventh grant in
    // the window is no burst.
    let relaxed = Function::start(
        &function_binary("grant-watcher"),
        world.config.clone().env("BURST_THRESHOLD", "49"),
    )
    .await
    .unwrap();
    relaxed.invoke(manual_grant(7)).await.unwrap();
    let sent = alert_codes(&world).await;
    assert_eq!(sent.len(), 1);
    assert!(!sent[0].contains("grant-burst"), "{}", sent[0]);
    assert!(sent[0].contains("duplicate-grant"), "{}", sent[0]);
}

const FOREIGN_KEY_ARN: &str =
    "arn:aws:kms:us-east-1:444455556666:key/0000abcd-12ab-34cd-56ef-1234567890ab";

/// One copy of a cross-account CreateGrant (`sharedEventID` = `shared`): a
/// role of account 123456789012 grants a role of its own account the use
/// of a key of account 444455556666; CloudTrail writes it into `recipient`.
fn cross_account_copy(shared: &str, event_id: &str, recipient: &str) -> Value {
    let mut event = fixture("manual-cross-account-grant");
    let detail = &mut event["detail"];
    detail["eventID"] = event_id.into();
    detail["sharedEventID"] = shared.into();
    detail["recipientAccountId"] = recipient.into();
    detail["userIdentity"] = serde_json::json!({
        "type": "AssumedRole",
        "arn": "arn:aws:sts::123456789012:assumed-role/ops/mallory",
        "accountId": "123456789012",
        "sessionContext": {"sessionIssuer": {
            "type": "Role", "arn": "arn:aws:iam::123456789012:role/ops", "accountId": "123456789012"
        }}
    });
    detail["requestParameters"]["keyId"] = FOREIGN_KEY_ARN.into();
    detail["requestParameters"]["granteePrincipal"] = "arn:aws:iam::123456789012:role/app".into();
    detail["responseElements"]["keyId"] = FOREIGN_KEY_ARN.into();
    detail["responseElements"]["grantId"] = format!("grant-{shared}").into();
    detail["resources"] = serde_json::json!([{
        "accountId": "444455556666", "type": "AWS::KMS::Key", "ARN": FOREIGN_KEY_ARN
    }]);
    event["account"] = recipient.into();
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_second_copy_of_a_cross_account_call_alerts_once_or_follows_up_once() {
    // Only 123456789012 is trusted: its copy sees a key owned outside the
    // zone (foreign-key, critical); the key owner's copy does not (high).
    let world = World::new(&[("TrustedAccounts", "123456789012")]).await;
    let function = world.function().await;

    // The more severe copy first: the key owner's copy only records.
    let first = function
        .invoke(cross_account_copy("shared-1", "caller-1", "123456789012"))
        .await
        .unwrap();
    assert_eq!(
        (
            &first["alert"],
            &first["severity"],
            &first["cross_account_copy"]
        ),
        (&true.into(), &"critical".into(), &"first".into()),
        "{first}"
    );
    let second = function
        .invoke(cross_account_copy("shared-1", "owner-1", "444455556666"))
        .await
        .unwrap();
    assert_eq!(second["alert"], false, "{second}");
    assert_eq!(second["cross_account_copy"], "recorded", "{second}");
    let sent = alert_codes(&world).await;
    assert_eq!(sent.len(), 1, "one alert for one call");
    assert!(sent[0].contains("foreign-key"), "{}", sent[0]);
    let copies = world.item("SHARED#shared-1", "COPIES").await.unwrap();
    assert_eq!(copies["first_event_id"].as_s().unwrap(), "caller-1");
    assert_eq!(copies["latest_event_id"].as_s().unwrap(), "owner-1");

    // The less severe copy first: the caller's copy raises the severity
    // and sends one follow-up, also when it is delivered twice.
    let owner = function
        .invoke(cross_account_copy("shared-2", "owner-2", "444455556666"))
        .await
        .unwrap();
    assert_eq!(owner["severity"], "high", "{owner}");
    assert_eq!(owner["alert"], true, "{owner}");
    let follow_up = cross_account_copy("shared-2", "caller-2", "123456789012");
    for _ in 0..2 {
        let outcome = function.invoke(follow_up.clone()).await.unwrap();
        assert_eq!(outcome["cross_account_copy"], "follow-up", "{outcome}");
    }
    let sent = world.inbox.receive().await;
    assert_eq!(sent.len(), 2, "the first copy's alert and one follow-up");
    let follow = sent
        .iter()
        .find(|m| m.message.contains("caller-2"))
        .expect("the follow-up");
    assert_eq!(attribute(follow, "severity"), "critical");
    assert!(follow.message.contains("follow-up"), "{}", follow.message);
    assert!(function.wait_for_stdout("SecondCopyFollowUps").await);
    assert_eq!(function.metric_sum("SecondCopyFollowUps"), 2.0);
    assert_eq!(function.metric_sum("SecondCopiesRecorded"), 1.0);
    assert_eq!(function.metric_sum("SecondCopyUnchecked"), 0.0);
}
