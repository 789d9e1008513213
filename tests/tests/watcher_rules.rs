//! The rules file through the compiled watcher, from moto's S3 as the
//! template configures it (`RulesS3Uri` → `RULES_S3_URI`): a good file
//! suppresses what it says; a file that cannot be loaded never stops the
//! watcher (it alerts with no suppression) and is counted
//! (`RulesLoadFailed`, alarmed by the template).

use grantwatch_e2e::watcher_world::*;

const BUCKET: &str = "gw-rules";
const URI: &str = "s3://gw-rules/grantwatch/rules.toml";

/// A World whose rules file holds `rules`.
async fn world_with_rules(rules: &str) -> World {
    let world = World::new(&[("RulesS3Uri", URI)]).await;
    assert_eq!(world.env["RULES_S3_URI"], URI);
    let s3 = world.moto.s3().await;
    s3.create_bucket().bucket(BUCKET).send().await.unwrap();
    s3.put_object()
        .bucket(BUCKET)
        .key("grantwatch/rules.toml")
        .body(rules.as_bytes().to_vec().into())
        .send()
        .await
        .unwrap();
    world
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rules_file_in_s3_suppresses_what_it_names() {
    let world = world_with_rules(
        r#"
[[rule]]
id = "partner-account"
reason = "The partner account's grants are reviewed in SEC-42"
grantee = "arn:aws:iam::444455556666:*"
allow_critical = true
"#,
    )
    .await;
    let function = world.function().await;
    let outcome = function.invoke(manual_grant(1)).await.unwrap();
    assert_eq!(outcome["alert"], false, "{outcome}");
    assert!(
        outcome["suppressed_by"]
            .to_string()
            .contains("partner-account"),
        "{outcome}"
    );
    assert!(world.inbox.receive().await.is_empty());
    assert!(function.wait_for_stdout("grant-watcher configured").await);
    assert_eq!(function.metric_sum("RulesLoadFailed"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_rules_file_never_stops_the_watcher_and_is_counted() {
    let world = world_with_rules("[[rule]\nid = ").await;
    let function = world.function().await;
    let outcome = function
        .invoke(manual_grant(2))
        .await
        .expect("the watcher runs without rules");
    assert_eq!(outcome["alert"], true, "{outcome}");
    assert_eq!(world.inbox.receive().await.len(), 1);
    assert!(
        function
            .wait_for_stdout("rules file not loaded: keeping the last good rules")
            .await
    );
    assert!(function.is_running());
    // Every invocation judged while the file cannot be loaded is counted,
    // also when the file is not due for another look yet.
    function.invoke(manual_grant(3)).await.unwrap();
    assert!(function.wait_for_stdout("burst-0003").await);
    assert!(function.wait_for_stdout("RulesLoadFailed").await);
    assert_eq!(function.metric_sum("RulesLoadFailed"), 2.0);
}
