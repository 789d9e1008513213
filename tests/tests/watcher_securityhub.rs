//! The Security Hub channel through the compiled watcher (docs/alerts.md,
//! "Security Hub"): `SECURITY_HUB_ENABLED=true` imports each alert at or
//! above `SECURITY_HUB_MIN_SEVERITY` into moto's Security Hub as an ASFF
//! finding (checked with our own validator: moto accepts almost anything),
//! a grant's removal archives the same finding, and findings Security Hub
//! refuses inside an HTTP 200 answer are counted as a rejected delivery.

use grantwatch_core::render::asff;
use grantwatch_e2e::moto::ACCOUNT;
use grantwatch_e2e::runtime_api::{function_binary, Function, FunctionConfig};
use grantwatch_e2e::slack_stub::{Reply, SlackStub};
use grantwatch_e2e::watcher_world::*;
use serde_json::{json, Value};

/// The fixtures' key and region.
const REGION: &str = "us-east-1";
const KEY_ID: &str = "1234abcd-12ab-34cd-56ef-1234567890ab";

async fn watcher(config: FunctionConfig) -> Function {
    Function::start(&function_binary("grant-watcher"), config)
        .await
        .expect("start grant-watcher")
}

fn with_security_hub(world: &World, min_severity: &str) -> FunctionConfig {
    world
        .config
        .clone()
        .env("SECURITY_HUB_ENABLED", "true")
        .env("SECURITY_HUB_MIN_SEVERITY", min_severity)
}

/// moto's findings in `region` (GetFindings).
async fn findings(world: &World, region: &str) -> Vec<Value> {
    grantwatch_e2e::securityhub::findings(world.moto.endpoint(), region).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_becomes_a_valid_finding_and_the_grants_removal_archives_it() {
    let world = World::new(&[]).await;
    let function = watcher(with_security_hub(&world, "low").env("MIN_ALERT_SEVERITY", "low")).await;
    let created = fixture("manual-cross-account-grant");
    let grant_id = created["detail"]["responseElements"]["grantId"]
        .as_str()
        .expect("grant id")
        .to_string();
    let outcome = function.invoke(created).await.unwrap();
    assert_eq!(outcome["alert"], true);

    let imported = findings(&world, REGION).await;
    assert_eq!(imported.len(), 1, "{imported:?}");
    let finding = &imported[0];
    asff::validate(finding).expect("valid ASFF");
    assert_eq!(
        finding["Id"],
        format!("grantwatch/{ACCOUNT}/{REGION}/{KEY_ID}/{grant_id}")
    );
    assert_eq!(
        finding["ProductArn"],
        format!("arn:aws:securityhub:{REGION}:{ACCOUNT}:product/{ACCOUNT}/default")
    );
    assert_eq!(finding["RecordState"], "ACTIVE");
    assert_eq!(
        finding["Severity"]["Label"],
        outcome["severity"]
            .as_str()
            .unwrap_or_default()
            .to_uppercase()
    );
    assert_eq!(finding["Resources"][0]["Type"], "AwsKmsKey");
    assert!(
        finding["Resources"][1]["Id"].as_str().is_some(),
        "the grantee is a resource: {finding}"
    );

    // The same grant retired: the same finding, archived.
    let mut retired = fixture("manual-retire-grant");
    retired["detail"]["requestParameters"]["grantId"] = json!(grant_id);
    let outcome = function.invoke(retired).await.unwrap();
    assert_eq!(outcome["alert"], true, "{outcome}");
    let imported = findings(&world, REGION).await;
    assert_eq!(imported.len(), 1, "updated, not added: {imported:?}");
    assert_eq!(imported[0]["RecordState"], "ARCHIVED");
    assert_eq!(function.metric_sum("DeliveriesRejected"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn off_by_default_and_below_the_threshold_nothing_is_imported() {
    let world = World::new(&[]).await;
    let function = world.function().await;
    let outcome = function
        .invoke(fixture("manual-cross-account-grant"))
        .await
        .unwrap();
    assert_eq!(outcome["alert"], true);
    assert!(findings(&world, REGION).await.is_empty(), "not enabled");
    assert_eq!(world.inbox.receive().await.len(), 1, "the alert went out");

    // A same-account manual grant: an alert, below critical.
    let strict =
        watcher(with_security_hub(&world, "critical").env("MIN_ALERT_SEVERITY", "low")).await;
    let mut same_account = manual_grant(1);
    same_account["detail"]["requestParameters"]["granteePrincipal"] =
        json!(format!("arn:aws:iam::{ACCOUNT}:role/app"));
    let outcome = strict.invoke(same_account).await.unwrap();
    assert_eq!(outcome["alert"], true, "{outcome}");
    assert_ne!(outcome["severity"], "critical");
    assert!(findings(&world, REGION).await.is_empty(), "below critical");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn findings_refused_inside_a_200_answer_are_counted_and_the_alert_still_goes_out() {
    let world = World::new(&[]).await;
    let hub = SlackStub::start().await;
    hub.set_fallback(Reply::Status(
        200,
        json!({
            "FailedCount": 1,
            "SuccessCount": 0,
            "FailedFindings": [{"Id": "x", "ErrorCode": "InvalidInput", "ErrorMessage": "Finding is invalid"}]
        })
        .to_string(),
    ));
    let base = hub.url();
    let base = base
        .split("/services/")
        .next()
        .expect("the stand-in's base URL");
    let function =
        watcher(with_security_hub(&world, "info").env("AWS_ENDPOINT_URL_SECURITYHUB", base)).await;
    let outcome = function
        .invoke(fixture("manual-cross-account-grant"))
        .await
        .expect("best effort: the invocation succeeds");
    assert_eq!(outcome["alert"], true);
    let requests = hub.requests();
    assert_eq!(requests.len(), 1, "a refusal is not retried");
    assert_eq!(requests[0].path, "/findings/import");
    assert_eq!(
        requests[0].body["Findings"].as_array().map(Vec::len),
        Some(1)
    );
    let rejected: Vec<Value> = function
        .emf_lines()
        .into_iter()
        .filter(|line| line["Channel"] == "securityhub")
        .collect();
    assert_eq!(rejected.len(), 1, "{:?}", function.emf_lines());
    assert_eq!(rejected[0]["DeliveriesRejected"], 1);
    assert!(
        function
            .all_output()
            .contains("1 of 1 findings refused (InvalidInput"),
        "logged with the reason"
    );
    assert_eq!(
        world.inbox.receive().await.len(),
        1,
        "the alert topic got it"
    );
    assert_eq!(world.slack.accepted().len(), 1, "Slack got it");
}
