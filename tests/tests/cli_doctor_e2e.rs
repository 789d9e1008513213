//! `grantwatch doctor` (the compiled CLI) against `infra/template.yaml`
//! deployed into moto: a healthy stack passes every check (exit 0); the same
//! stack broken in place (trail stopped, grant rule disabled, an event on
//! the failure queue, a report 10 days old) fails exactly those checks with
//! their fix (exit 1); a bare stack (no subscriber, no trail, no heartbeat)
//! fails those. What moto cannot show (an unconfirmed e-mail subscription,
//! advanced selectors, organization trails) is covered by the double in
//! cli/src/doctor/checks/tests.rs.
//!
//! The tests crate has no CloudTrail, EventBridge or CloudWatch SDK: those
//! set-up calls go through boto3 from the venv moto runs from.

use grantwatch_e2e::moto::Moto;
use grantwatch_e2e::runtime_api::function_binary;
use grantwatch_e2e::stack::{self, DeployedStack};
use serde_json::Value;
use std::process::{Command, Output};

fn deploy(moto: &Moto, parameters: &[(&str, &str)]) -> DeployedStack {
    stack::deploy_template(moto.endpoint(), parameters)
        .unwrap_or_else(|e| panic!("deploy infra/template.yaml into moto: {e}"))
}

fn output<'a>(stack: &'a DeployedStack, name: &str) -> &'a str {
    stack
        .output(name)
        .unwrap_or_else(|| panic!("no output {name}: {:?}", stack.outputs))
}

/// Run a boto3 script against moto (`ARG` is the script's argument).
fn boto3(moto: &Moto, script: &str, arg: &str) {
    let python = stack::venv_dir().join("bin/python");
    let mut command = Command::new(&python);
    command
        .args(["-c", &format!("import boto3, sys\n{script}"), arg])
        .env_clear()
        .envs(moto.lambda_env())
        .env("PATH", std::env::var_os("PATH").unwrap_or_default());
    let done = command
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", python.display()));
    assert!(
        done.status.success(),
        "boto3 set-up failed: {}",
        String::from_utf8_lossy(&done.stderr)
    );
}

/// A multi-region trail logging management events (moto returns no
/// selectors until some are put, as a trail created without them would not
/// exist in AWS).
const TRAIL: &str = r#"
boto3.client("s3").create_bucket(Bucket="trail-logs")
ct = boto3.client("cloudtrail")
ct.create_trail(Name="management-events", S3BucketName="trail-logs", IsMultiRegionTrail=True)
ct.put_event_selectors(TrailName="management-events",
    EventSelectors=[{"ReadWriteType": "All", "IncludeManagementEvents": True}])
ct.start_logging(Name="management-events")
"#;

/// One heartbeat of the watcher (sys.argv[1]) just now, as its EMF line
/// would count it.
const HEARTBEAT: &str = r#"
boto3.client("cloudwatch").put_metric_data(Namespace="grantwatch", MetricData=[{
    "MetricName": "Heartbeats", "Value": 1, "Unit": "Count",
    "Dimensions": [{"Name": "FunctionName", "Value": sys.argv[1]}]}])
"#;

const STOP_TRAIL: &str = r#"boto3.client("cloudtrail").stop_logging(Name="management-events")"#;

/// sys.argv[1] is the rule ARN (default bus).
const DISABLE_RULE: &str =
    r#"boto3.client("events").disable_rule(Name=sys.argv[1].split(":rule/")[1])"#;

async fn put_report(moto: &Moto, bucket: &str, date: time::Date) {
    moto.s3()
        .await
        .put_object()
        .bucket(bucket)
        .key(format!("reports/{date}/report.json"))
        .body(b"{}".to_vec().into())
        .send()
        .await
        .expect("put report.json");
}

fn doctor(moto: &Moto, args: &[&str]) -> Output {
    Command::new(function_binary("grantwatch"))
        .arg("doctor")
        .args(args)
        .env_clear()
        .envs(moto.lambda_env())
        .output()
        .expect("run grantwatch doctor")
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "doctor --output json printed no JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// `(check, subject) → (status, fix)` of every check.
fn statuses(doc: &Value) -> Vec<(String, String, String, Option<String>)> {
    doc["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| {
            (
                c["check"].as_str().unwrap_or_default().to_string(),
                c["subject"].as_str().unwrap_or_default().to_string(),
                c["status"].as_str().unwrap_or_default().to_string(),
                c["fix"].as_str().map(str::to_string),
            )
        })
        .collect()
}

fn failing(doc: &Value) -> Vec<(String, Option<String>)> {
    statuses(doc)
        .into_iter()
        .filter(|(_, _, status, _)| status != "pass")
        .map(|(check, _, _, fix)| (check, fix))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_stack_passes_and_the_same_stack_broken_fails_each_broken_check() {
    let moto = Moto::start().await;
    let stack = deploy(&moto, &[]);
    // The template's AlertEmail/AlarmEmail subscriptions: moto's
    // CloudFormation accepts AWS::SNS::Subscription but creates none.
    let sns = moto.sns().await;
    for (topic, address) in [
        ("AlertTopicArn", "secops@example.com"),
        ("AlarmTopicArn", "oncall@example.com"),
    ] {
        sns.subscribe()
            .topic_arn(output(&stack, topic))
            .protocol("email")
            .endpoint(address)
            .send()
            .await
            .expect("subscribe");
    }
    let watcher = output(&stack, "WatcherFunctionName").to_string();
    boto3(&moto, TRAIL, "");
    boto3(&moto, HEARTBEAT, &watcher);
    let today = time::OffsetDateTime::now_utc().date();
    put_report(
        &moto,
        output(&stack, "ReportBucketName"),
        today - time::Duration::days(10),
    )
    .await;
    put_report(
        &moto,
        output(&stack, "ReportBucketName"),
        today - time::Duration::days(2),
    )
    .await;

    let healthy = doctor(&moto, &["--stack", stack::STACK_NAME, "--output", "json"]);
    let doc = json_of(&healthy);
    assert_eq!(failing(&doc), vec![], "{doc:#}");
    assert_eq!(healthy.status.code(), Some(0));
    assert_eq!(doc["passed"], 11, "{doc:#}");
    assert_eq!(
        (doc["failed"].as_u64(), doc["errors"].as_u64()),
        (Some(0), Some(0))
    );

    // Broken in place.
    boto3(&moto, STOP_TRAIL, "");
    boto3(&moto, DISABLE_RULE, output(&stack, "GrantEventsRuleArn"));
    let failed_queue = output(&stack, "FailedInvocationQueueUrl");
    moto.sqs()
        .await
        .send_message()
        .queue_url(failed_queue)
        .message_body(r#"{"requestPayload": {"id": "lost-event"}}"#)
        .send()
        .await
        .expect("send to the failure queue");
    let s3 = moto.s3().await;
    s3.delete_object()
        .bucket(output(&stack, "ReportBucketName"))
        .key(format!(
            "reports/{}/report.json",
            today - time::Duration::days(2)
        ))
        .send()
        .await
        .expect("delete the newest report");

    let broken = doctor(&moto, &["--stack", stack::STACK_NAME, "--output", "json"]);
    let doc = json_of(&broken);
    assert_eq!(broken.status.code(), Some(1), "{doc:#}");
    let rule_name = output(&stack, "GrantEventsRuleArn")
        .split(":rule/")
        .nth(1)
        .expect("rule name");
    let report_function = output(&stack, "ReportFunctionName");
    assert_eq!(
        failing(&doc),
        vec![
            (
                "trail".to_string(),
                Some(
                    "aws cloudtrail start-logging --region us-east-1 --name \
                     arn:aws:cloudtrail:us-east-1:123456789012:trail/management-events"
                        .to_string()
                )
            ),
            (
                "grant rule".to_string(),
                Some(format!("aws events enable-rule --name {rule_name}"))
            ),
            (
                "failure queue".to_string(),
                Some(format!(
                    "grantwatch redrive --queue {failed_queue} --alert-topic-arn {} --ledger-table {}",
                    output(&stack, "AlertTopicArn"),
                    output(&stack, "LedgerTableName")
                ))
            ),
            (
                "report".to_string(),
                Some(format!(
                    "aws lambda invoke --function-name {report_function} --invocation-type Event /dev/null"
                ))
            ),
        ],
        "{doc:#}"
    );

    // The same, for people: one line per check, the fix under a failure.
    let text = doctor(&moto, &["--stack", stack::STACK_NAME]);
    assert_eq!(text.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&text.stdout);
    assert!(
        stdout.contains(&format!(
            "FAIL  grant rule ({rule_name}): the rule is disabled"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "      fix: aws events enable-rule --name {rule_name}\n"
        )),
        "{stdout}"
    );
    assert!(stdout.ends_with("7 pass, 4 fail, 0 error\n"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bare_stack_fails_trail_subscriptions_and_heartbeat_in_each_region() {
    let moto = Moto::start().await;
    let stack = deploy(&moto, &[]);
    let out = doctor(
        &moto,
        &[
            "--stack",
            stack::STACK_NAME,
            "--region",
            "us-east-1",
            "--region",
            "eu-west-1",
            "--output",
            "json",
        ],
    );
    let doc = json_of(&out);
    assert_eq!(out.status.code(), Some(1), "{doc:#}");
    let failed: Vec<(String, String)> = statuses(&doc)
        .into_iter()
        .filter(|(_, _, status, _)| status != "pass")
        .map(|(check, subject, status, _)| (format!("{check} {subject}"), status))
        .collect();
    let alert_topic = output(&stack, "AlertTopicArn")
        .rsplit(':')
        .next()
        .expect("name");
    let alarm_topic = output(&stack, "AlarmTopicArn")
        .rsplit(':')
        .next()
        .expect("name");
    let watcher = output(&stack, "WatcherFunctionName");
    let fail = |what: String| (what, "fail".to_string());
    assert_eq!(
        failed,
        vec![
            fail("trail us-east-1".into()),
            fail("trail eu-west-1".into()),
            fail(format!("alert topic {alert_topic}")),
            fail(format!("alarm topic {alarm_topic}")),
            fail(format!("heartbeat {watcher}")),
        ],
        "{doc:#}"
    );
    // A new stack owes no report yet.
    let report = statuses(&doc)
        .into_iter()
        .find(|(check, ..)| check == "report")
        .expect("report check");
    assert_eq!(report.2, "pass");
}

#[test]
fn an_unknown_stack_is_an_error_with_exit_2() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let moto = rt.block_on(Moto::start());
    let out = doctor(&moto, &["--stack", "no-such-stack"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot read stack no-such-stack"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

/// `--canary` through moto: a grant on the canary key for the caller,
/// recorded in the stack's ledger and retired; no watcher runs here, so its
/// CloudTrail events are never seen: the round trip fails with its fix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_canary_round_trip_fails_when_the_watcher_never_sees_its_events() {
    let moto = Moto::start().await;
    let stack = deploy(&moto, &[]);
    let kms = moto.kms().await;
    let key = kms.create_key().send().await.expect("canary key");
    let key_arn = key
        .key_metadata()
        .map(|m| m.arn().unwrap_or_default().to_string())
        .expect("key arn");
    let out = doctor(
        &moto,
        &[
            "--stack",
            stack.stack_name.as_str(),
            "--canary",
            "--canary-key",
            &key_arn,
            "--bound",
            "0",
            "--output",
            "json",
        ],
    );
    let doc = json_of(&out);
    assert_eq!(out.status.code(), Some(1), "{doc:#}");
    let canary = statuses(&doc)
        .into_iter()
        .find(|(check, ..)| check == "canary round trip")
        .expect("canary check");
    assert_eq!(
        (canary.1.as_str(), canary.2.as_str()),
        (key_arn.as_str(), "fail"),
        "{doc:#}"
    );
    let detail = doc["checks"]
        .as_array()
        .and_then(|c| c.last())
        .and_then(|c| c["detail"].as_str())
        .unwrap_or_default();
    assert!(
        detail.contains("the watcher did not see the CreateGrant and RetireGrant"),
        "{detail}"
    );
    assert!(canary
        .3
        .is_some_and(|fix| fix.starts_with("grantwatch doctor")));
    // The canary's grant does not outlive the round trip.
    let grants = kms
        .list_grants()
        .key_id(&key_arn)
        .send()
        .await
        .expect("grants");
    assert_eq!(grants.grants().len(), 0, "{grants:?}");
}
