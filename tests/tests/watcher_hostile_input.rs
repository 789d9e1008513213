//! Hostile input never kills grant-watcher: malformed, deeply nested and
//! huge events get an answer (an error response, or an alert for a
//! recognisable grant event), and the next event is served. Run against
//! the debug binary and, since Lambda runs the release build with
//! `panic = "abort"` (a panic there is a process exit, not an error
//! response), against the release binary too when it is built
//! (`cargo build --release -p grant-watcher`, or `GRANTWATCH_RELEASE_BIN`).
//! `make test` builds it and sets `GRANTWATCH_REQUIRE_RELEASE=1`, so in CI
//! a missing release binary fails the test instead of skipping that half.

use grantwatch_e2e::runtime_api::{function_binary, target_dir, Function, EXITED, TIMED_OUT};
use grantwatch_e2e::watcher_world::*;
use serde_json::Value;
use std::path::PathBuf;

/// The release binary, when there is one this machine can run.
fn release_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("GRANTWATCH_RELEASE_BIN") {
        return Some(PathBuf::from(path));
    }
    let path = target_dir().join("release").join("grant-watcher");
    path.exists().then_some(path)
}

/// Whether the release half must run (`make test` sets it).
fn release_required() -> bool {
    std::env::var("GRANTWATCH_REQUIRE_RELEASE").is_ok_and(|v| v == "1")
}

/// An event whose request parameters nest `depth` arrays deep.
fn deeply_nested(depth: usize) -> Value {
    let mut event = fixture("manual-cross-account-grant");
    let mut nested = Value::Array(Vec::new());
    for _ in 0..depth {
        nested = Value::Array(vec![nested]);
    }
    event["detail"]["requestParameters"]["constraints"] = nested;
    event["detail"]["eventID"] = format!("deep-{depth}").into();
    event
}

/// A grant whose name and user agent are each `size` bytes of mrkdwn and
/// markup (EventBridge events are at most 256 KB).
fn huge_values(size: usize) -> Value {
    let mut event = manual_grant(900);
    let filler: String = "<b>&*_~`".chars().cycle().take(size).collect();
    event["detail"]["requestParameters"]["name"] = filler.clone().into();
    event["detail"]["userAgent"] = filler.into();
    event
}

async fn survives_hostile_input(world: &World, binary: PathBuf, label: &str) {
    let function = Function::start(&binary, world.config.clone())
        .await
        .expect("start grant-watcher");
    let not_cloudtrail = function
        .invoke(serde_json::json!({ "version": "0", "detail": "not an object" }))
        .await
        .unwrap_err();
    assert_eq!(not_cloudtrail.error_type, "MalformedEvent", "{label}");

    let unreadable_grant = function.invoke(fixture("malformed-create-grant")).await;
    assert!(unreadable_grant.is_ok(), "{label}: {unreadable_grant:?}");

    // Past serde_json's recursion limit (128): refused by the runtime's
    // deserializer or the parser, as an error response or an alert.
    for depth in [200, 1_000] {
        let deep = function.invoke(deeply_nested(depth)).await;
        match &deep {
            // Today: the runtime's deserializer refuses it (a visible,
            // retried failure that ends in the on-failure destination).
            Err(error) => {
                assert_ne!(error.error_type, EXITED, "{label}, depth {depth}: {error}");
                assert_ne!(
                    error.error_type, TIMED_OUT,
                    "{label}, depth {depth}: {error}"
                );
                assert!(
                    error.error_message.len() < 64 * 1024,
                    "{label}: a bounded message"
                );
            }
            // Or, read leniently, a grant event that alerts.
            Ok(outcome) => assert_eq!(outcome["alert"], true, "{label}, depth {depth}"),
        }
        assert!(function.is_running(), "{label}, depth {depth}");
    }

    let huge = function.invoke(huge_values(120_000)).await;
    let outcome = huge.unwrap_or_else(|e| panic!("{label}: huge values: {e}"));
    assert_eq!(outcome["alert"], true, "{label}");
    let last_slack = world.slack.requests().pop().expect("a Slack post");
    assert_eq!(last_slack.status, 200, "{label}");
    assert!(
        last_slack.raw_body.len() < 40_000,
        "{label}: Slack message of {} bytes",
        last_slack.raw_body.len()
    );
    let messages = world.inbox.receive().await;
    let last_sns = messages.last().expect("an SNS message");
    assert!(last_sns.message.len() < 256 * 1024, "{label}");

    let after = function
        .invoke(fixture("manual-cross-account-grant"))
        .await
        .unwrap_or_else(|e| panic!("{label}: the next event: {e}"));
    assert_eq!(after["outcome"], "watched", "{label}");
    assert!(function.is_running(), "{label}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_answers_never_a_process_exit() {
    let world = World::new(&[]).await;
    survives_hostile_input(&world, function_binary("grant-watcher"), "debug").await;
    match release_binary() {
        Some(release) => {
            let world = World::new(&[]).await;
            survives_hostile_input(&world, release, "release").await;
        }
        None if release_required() => panic!(
            "GRANTWATCH_REQUIRE_RELEASE is set but there is no release grant-watcher \
             (cargo build --release -p grant-watcher, or GRANTWATCH_RELEASE_BIN)"
        ),
        None => eprintln!(
            "no release grant-watcher (cargo build --release -p grant-watcher): debug binary only"
        ),
    }
}
