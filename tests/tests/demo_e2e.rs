//! `make demo` stays true: the scripted week, played through the real
//! binaries against the template deployed in moto, raises exactly the
//! alerts the README promises and writes the report files.

use grantwatch_e2e::demo::{self, DemoOptions};
use serde_json::Value;

fn step<'a>(outcome: &'a demo::DemoOutcome, fixture: &str) -> &'a demo::StepOutcome {
    outcome
        .steps
        .iter()
        .find(|s| s.fixture == fixture)
        .unwrap_or_else(|| panic!("no step {fixture}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_week_alerts_on_people_not_services_and_writes_the_report() {
    let out = std::env::temp_dir().join(format!("grantwatch-demo-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let outcome = demo::run(&DemoOptions {
        out_dir: out.clone(),
        screenshots: false,
    })
    .await
    .expect("the demo runs");

    for step in &outcome.steps {
        assert!(step.result.is_ok(), "{}: {:?}", step.fixture, step.result);
    }
    // Services doing what they always do: ledgered, silent.
    for quiet in [
        "01-lambda-creates-grant",
        "03-ebs-creates-grant",
        "04-ebs-retires-grant",
        "05-rds-creates-grant",
        "06-dynamodb-creates-grant",
    ] {
        let s = step(&outcome, quiet);
        assert_eq!((s.sns, s.slack), (0, 0), "{quiet} should not alert");
    }
    // People: one alert per channel each. A dry run of an unconstrained
    // grant is reconnaissance: it keeps the risk it tested, one step lower.
    for loud in [
        "02-person-retires-lambda-grant",
        "07-person-grants-other-account",
        "08-dry-run-probe",
        "09-denied-create-grant",
    ] {
        let s = step(&outcome, loud);
        assert_eq!(
            (s.sns, s.slack),
            (1, 1),
            "{loud} should alert once per channel"
        );
    }

    let subject = |needle: &str| {
        outcome
            .sns
            .iter()
            .filter_map(|m| m.subject.clone())
            .find(|s| s.contains(needle))
            .unwrap_or_else(|| panic!("no SNS subject with {needle:?}"))
    };
    assert!(subject("[HIGH]").contains("removed"));
    assert!(subject("[CRITICAL]").contains("444455556666"));
    let retire_alert = outcome
        .sns
        .iter()
        .find(|m| m.attributes.get("event_name").map(String::as_str) == Some("RetireGrant"))
        .expect("the retire alert");
    assert_eq!(retire_alert.attributes["severity"], "high");
    assert!(
        retire_alert.message.contains("function:orders-api"),
        "the alert names the function that will break"
    );

    // The report: files in the bucket, the standing grants in it, and its
    // summary delivered on both channels.
    for file in [
        "report.json",
        "report.html",
        "grants.csv",
        "summary.md",
        "sns.jsonl",
        "slack.jsonl",
    ] {
        assert!(out.join(file).is_file(), "{file} was not written");
    }
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).expect("read"))
            .expect("report.json is JSON");
    let grants: Vec<&Value> = report["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .flat_map(|k| k["grants"].as_array().into_iter().flatten())
        .collect();
    // RDS, DynamoDB, the partner grant and the pre-existing one; the
    // retired Lambda and EBS grants are gone.
    assert_eq!(grants.len(), 4, "{grants:#?}");
    let partner = grants
        .iter()
        .find(|g| g["grantee"] == "arn:aws:iam::444455556666:root")
        .expect("the partner grant is in the report");
    assert_eq!(partner["severity"], "critical");
    assert_eq!(partner["origin"], "manual");
    assert!(
        partner["created_by"].to_string().contains("bob"),
        "the ledger's provenance reaches the report: {partner}"
    );
    let sns_lines = std::fs::read_to_string(out.join("sns.jsonl")).expect("read");
    assert_eq!(sns_lines.lines().count(), outcome.sns.len());
    assert_eq!(outcome.sns.len(), 5, "four alerts and the report summary");
    assert_eq!(outcome.slack.len(), 5, "four alerts and the report summary");
    let _ = std::fs::remove_dir_all(&out);
}
