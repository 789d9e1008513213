//! `grantwatch reconcile` end to end (issue 10): the compiled watcher saw
//! Lambda's CreateGrant and a risky manual grant, but EventBridge never
//! delivered a person's RetireGrant of Lambda's grant. The trail's log
//! file (gzip, CloudTrail's S3 layout) holds all three; the compiled CLI,
//! with the watcher's environment as the template resolves it in moto,
//! finds the one the watcher missed and replays it: the
//! `service-grant-removed` alert naming the function reaches SNS (read
//! back through an SQS subscription) and Slack once. The events the
//! watcher saw are not replayed, and a second run (from S3) sends nothing.

mod replay_support;

use grantwatch_e2e::runtime_api::{function_binary, Function, FunctionConfig};
use grantwatch_e2e::watcher_world::*;
use replay_support::grantwatch;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

const RETIRE_EVENT_ID: &str = "e0000000-0000-4000-8000-00000000r001";
const LOG_KEY: &str = "AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/05/123456789012_CloudTrail_us-east-1_20261105T0110Z_reconcile.json.gz";

/// A CloudTrail log file holding these EventBridge events' records.
fn log_file(events: &[Value]) -> Vec<u8> {
    let records: Vec<&Value> = events.iter().map(|e| &e["detail"]).collect();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json!({ "Records": records }).to_string().as_bytes())
        .unwrap();
    gz.finish().unwrap()
}

fn write_trail(dir: &Path, bytes: &[u8]) -> PathBuf {
    let path = dir.join(LOG_KEY);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, bytes).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_replays_the_retire_grant_the_watcher_missed_once_and_nothing_it_saw() {
    let world = World::new(&[]).await;
    let function = world.function().await;
    let created = fixture("lambda-create-grant");
    let risky = manual_grant(1);
    let retired = fixture("manual-retire-grant");
    assert_eq!(retired["detail"]["eventID"], RETIRE_EVENT_ID);
    // What the watcher saw: the CreateGrant (no alert) and the risky grant
    // (alerted once).
    for event in [&created, &risky] {
        function.invoke(event.clone()).await.unwrap();
    }
    assert_eq!(world.inbox.receive().await.len(), 1);
    assert_eq!(world.slack.accepted().len(), 1);
    world.slack.clear();

    let bytes = log_file(&[created.clone(), risky.clone(), retired.clone()]);
    let dir = std::env::temp_dir().join(format!("gw-reconcile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write_trail(&dir, &bytes);
    let local = dir.to_string_lossy().into_owned();

    // A dry run lists the missed RetireGrant only; nothing sent, nothing
    // written (the real run below still finds it missed).
    let dry = grantwatch(&world, &["reconcile", "--dry-run", &local]).await;
    assert_eq!(dry.code, Some(0), "{dry}");
    assert_eq!(dry.lines_starting("missed: ").len(), 1, "{dry}");
    assert!(
        dry.stdout
            .contains(&format!("missed: {RETIRE_EVENT_ID} RetireGrant")),
        "{dry}"
    );
    assert!(
        dry.stderr
            .contains("3 grant events: 2 seen by the watcher, 1 missed, 0 replayed, 0 failed"),
        "{dry}"
    );
    assert!(world.inbox.receive().await.is_empty());
    assert!(world.slack.requests().is_empty());

    let run = grantwatch(&world, &["reconcile", &local]).await;
    assert_eq!(run.code, Some(0), "{run}");
    let replayed = run.lines_starting("replayed: ");
    assert_eq!(replayed.len(), 1, "only the missed event: {run}");
    assert!(
        replayed[0].contains(RETIRE_EVENT_ID) && replayed[0].contains("high alert"),
        "{run}"
    );
    assert!(
        run.stderr.contains("1 missed, 1 replayed, 0 failed"),
        "{run}"
    );
    let messages = world.inbox.receive().await;
    assert_eq!(messages.len(), 1, "one alert: {messages:?}");
    assert_eq!(attribute(&messages[0], "severity"), "high");
    assert!(attribute(&messages[0], "finding_codes").contains("service-grant-removed"));
    assert!(
        messages[0].message.contains(FUNCTION_ARN),
        "{}",
        messages[0].message
    );
    let posted = world.slack.accepted();
    assert_eq!(posted.len(), 1);
    assert!(slack_text(&posted[0]).contains(FUNCTION_ARN));
    // Judged against the ledger's record of Lambda's grant, and recorded.
    let grant = world
        .item(&format!("GRANT#{KEY_ARN}"), LAMBDA_GRANT_ID)
        .await
        .unwrap();
    assert_eq!(grant["removal_action"].as_s().unwrap(), "RetireGrant");

    // The same logs from the trail bucket: every event is seen now.
    let s3 = world.moto.s3().await;
    s3.create_bucket().bucket("org-trail").send().await.unwrap();
    s3.put_object()
        .bucket("org-trail")
        .key(LOG_KEY)
        .body(bytes.into())
        .send()
        .await
        .unwrap();
    let again = grantwatch(
        &world,
        &[
            "reconcile",
            "--since",
            "2026-11-05",
            "--until",
            "2026-11-05",
            "s3://org-trail/AWSLogs/",
        ],
    )
    .await;
    assert_eq!(again.code, Some(0), "{again}");
    assert!(
        again
            .stderr
            .contains("1 files, 3 grant events: 3 seen by the watcher, 0 missed"),
        "{again}"
    );
    assert!(again.lines_starting("replayed: ").is_empty(), "{again}");
    assert!(world.inbox.receive().await.is_empty());
    assert_eq!(world.slack.accepted().len(), 1);

    // Another day's logs are not read.
    let other_day = grantwatch(
        &world,
        &[
            "reconcile",
            "--since",
            "2026-11-06",
            "s3://org-trail/AWSLogs/",
        ],
    )
    .await;
    assert!(
        other_day.stderr.contains("0 files, 0 grant events"),
        "{other_day}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_log_file_is_reported_and_the_good_ones_still_reconciled() {
    let world = World::new(&[]).await;
    let dir = std::env::temp_dir().join(format!("gw-reconcile-bad-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    write_trail(&dir, &log_file(&[manual_grant(3)]));
    let bad = dir.join("AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/05/truncated.json.gz");
    std::fs::write(&bad, [0x1f, 0x8b, 8, 0, 0]).unwrap();
    let run = grantwatch(&world, &["reconcile", &dir.to_string_lossy()]).await;
    assert_eq!(run.code, Some(1), "a bad file is exit 1: {run}");
    assert!(run.stderr.contains("truncated.json.gz"), "{run}");
    assert!(
        run.stderr
            .contains("1 missed, 1 replayed, 0 failed, 1 problems"),
        "{run}"
    );
    assert_eq!(world.inbox.receive().await.len(), 1);

    // Without the ledger table reconcile cannot tell what was missed: exit 2.
    let no_table = replay_support::grantwatch_without(
        &world,
        &["reconcile", &dir.to_string_lossy()],
        &["LEDGER_TABLE"],
    )
    .await;
    assert_eq!(no_table.code, Some(2), "{no_table}");
    assert!(no_table.stderr.contains("--ledger-table"), "{no_table}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The report function's environment for the daily reconcile: the
/// watcher's settings it shares (as the template passes them), a report
/// bucket, and `extra`.
async fn report_config(world: &World, extra: &[(&str, &str)]) -> FunctionConfig {
    let s3 = world.moto.s3().await;
    s3.create_bucket()
        .bucket("h3-reports")
        .send()
        .await
        .unwrap();
    let mut config = FunctionConfig::new("grant-report")
        .envs(world.moto.lambda_env())
        .env("REPORT_BUCKET", "h3-reports")
        .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
        .timeout(Duration::from_secs(120));
    for name in [
        "LEDGER_TABLE",
        "ALERT_TOPIC_ARN",
        "SLACK_WEBHOOK_SECRET_ARN",
    ] {
        config = config.env(name, world.env[name].clone());
    }
    for (name, value) in extra {
        config = config.env(name, *value);
    }
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_functions_daily_reconcile_replays_the_missed_retire_grant_once() {
    let world = World::new(&[]).await;
    let watcher = world.function().await;
    let created = fixture("lambda-create-grant");
    watcher.invoke(created.clone()).await.unwrap();
    // Today's log file: the daily mode reads the last N hours.
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .replace_nanosecond(0)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let mut retired = fixture("manual-retire-grant");
    retired["detail"]["eventTime"] = stamp.clone().into();
    retired["time"] = stamp.into();
    let key = format!(
        "o-h3/AWSLogs/123456789012/CloudTrail/us-east-1/{:04}/{:02}/{:02}/123456789012_CloudTrail_us-east-1_reconcile.json.gz",
        now.year(),
        u8::from(now.month()),
        now.day()
    );
    let s3 = world.moto.s3().await;
    s3.create_bucket().bucket("org-trail").send().await.unwrap();
    s3.put_object()
        .bucket("org-trail")
        .key(&key)
        .body(log_file(&[retired]).into())
        .send()
        .await
        .unwrap();

    let report = Function::start(
        &function_binary("grant-report"),
        report_config(
            &world,
            &[
                ("TRAIL_BUCKET", "org-trail"),
                ("TRAIL_PREFIX", "o-h3/AWSLogs/"),
            ],
        )
        .await,
    )
    .await
    .unwrap();
    let input = json!({"mode": "reconcile", "hours": 2});
    let first = report.invoke(input.clone()).await.unwrap();
    assert_eq!(first["missed"], 1, "{first}");
    assert_eq!(first["replayed"], 1, "{first}");
    assert_eq!(first["failed"], 0, "{first}");
    let messages = world.inbox.receive().await;
    assert_eq!(messages.len(), 1);
    assert!(attribute(&messages[0], "finding_codes").contains("service-grant-removed"));
    assert!(messages[0].message.contains(FUNCTION_ARN));
    assert_eq!(world.slack.accepted().len(), 1);

    let second = report.invoke(input).await.unwrap();
    assert_eq!(second["events"], 1, "{second}");
    assert_eq!(second["seen"], 1, "{second}");
    assert_eq!(second["missed"], 0, "{second}");
    assert!(world.inbox.receive().await.is_empty());
    assert_eq!(world.slack.accepted().len(), 1);

    // Without TRAIL_BUCKET the reconcile mode is a failed invocation.
    let unconfigured = Function::start(
        &function_binary("grant-report"),
        report_config(&world, &[]).await,
    )
    .await
    .unwrap();
    let failed = unconfigured
        .invoke(json!({"mode": "reconcile"}))
        .await
        .unwrap_err();
    assert_eq!(failed.error_type, "InvalidConfiguration", "{failed}");
    assert!(failed.error_message.contains("TRAIL_BUCKET"), "{failed}");
    let wrong = unconfigured
        .invoke(json!({"mode": "reconcil"}))
        .await
        .unwrap_err();
    assert_eq!(wrong.error_type, "InvalidInput", "{wrong}");
}
