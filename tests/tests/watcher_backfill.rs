//! `grantwatch backfill`: CloudTrail log files (plain and gzip, local or in
//! S3) read by the one log reader, every grant event printed as `classify`
//! prints it, and with `--ledger-table` replayed into a ledger table in
//! moto; records only, idempotent.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use grantwatch_e2e::moto::Moto;
use grantwatch_e2e::runtime_api::function_binary;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const KEY_ARN: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn record(name: &str) -> Value {
    let path = format!(
        "{}/fixtures/watcher/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["detail"].clone()
}

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("grantwatch-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A CloudTrail layout: the retirement in a plain file listed first, the
/// creation (and a Decrypt) in a gzip file, a text file beside them.
fn write_logs(dir: &Path) {
    let logs = dir.join("AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/05");
    std::fs::create_dir_all(&logs).unwrap();
    let retire = serde_json::json!({ "Records": [record("manual-retire-grant")] });
    std::fs::write(logs.join("a_retire.json"), retire.to_string()).unwrap();
    let create = serde_json::json!({ "Records": [record("lambda-create-grant"), record("decrypt-not-a-grant")] });
    std::fs::write(logs.join("b_create.json.gz"), gzip(&create.to_string())).unwrap();
    std::fs::write(logs.join("notes.txt"), "not a log file").unwrap();
}

fn grantwatch(args: &[&str], paths: &[&Path], env: &[(String, String)]) -> Output {
    Command::new(function_binary("grantwatch"))
        .args(args)
        .args(paths)
        .envs(env.iter().cloned())
        .output()
        .unwrap()
}

fn lines(output: &Output) -> Vec<Value> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn names(verdicts: &[Value]) -> Vec<&str> {
    verdicts
        .iter()
        .map(|v| v["event_name"].as_str().unwrap())
        .collect()
}

async fn create_ledger(moto: &Moto) -> aws_sdk_dynamodb::Client {
    let dynamodb = moto.dynamodb().await;
    let attribute = |name: &str| {
        AttributeDefinition::builder()
            .attribute_name(name)
            .attribute_type(ScalarAttributeType::S)
            .build()
            .unwrap()
    };
    let key = |name: &str, kind| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(kind)
            .build()
            .unwrap()
    };
    dynamodb
        .create_table()
        .table_name("ledger")
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(attribute("pk"))
        .attribute_definitions(attribute("sk"))
        .key_schema(key("pk", KeyType::Hash))
        .key_schema(key("sk", KeyType::Range))
        .send()
        .await
        .unwrap();
    dynamodb
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_prints_every_grant_event_and_seeds_the_ledger_only_when_asked() {
    let moto = Moto::start().await;
    let dynamodb = create_ledger(&moto).await;
    let env: Vec<(String, String)> = moto.lambda_env().into_iter().collect();
    let dir = temp_dir("backfill");
    write_logs(&dir);

    // Without --ledger-table: the events on stdout, nothing written.
    let output = grantwatch(&["backfill"], &[&dir], &env);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = lines(&output);
    assert_eq!(
        names(&printed),
        ["RetireGrant", "CreateGrant"],
        "file order"
    );
    let items = dynamodb.scan().table_name("ledger").send().await.unwrap();
    assert_eq!(items.count(), 0, "nothing written without --ledger-table");

    // The same lines as `classify` on the same files in the same order.
    let files = [
        dir.join("AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/05/a_retire.json"),
        dir.join("AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/05/b_create.json.gz"),
    ];
    let classify = grantwatch(
        &["classify"],
        &[files[0].as_path(), files[1].as_path()],
        &env,
    );
    assert_eq!(lines(&classify), printed);

    // With it (and with the old --table spelling): the ledger is seeded,
    // idempotently; a removal read before its creation is kept.
    for flag in ["--ledger-table", "--table"] {
        let output = grantwatch(&["backfill", flag, "ledger"], &[&dir], &env);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{stderr}");
        assert_eq!(names(&lines(&output)), ["RetireGrant", "CreateGrant"]);
        assert!(
            stderr.contains("1 creations and 1 removals recorded"),
            "{stderr}"
        );
        assert!(stderr.contains("1 other records"), "{stderr}");
    }
    let items = dynamodb.scan().table_name("ledger").send().await.unwrap();
    // The grant item and its correlation index item (docs/watcher.md, "The
    // ledger table"), both with the removal; no event items.
    let mut kinds: Vec<&str> = items
        .items()
        .iter()
        .map(|i| i["kind"].as_s().unwrap().as_str())
        .collect();
    kinds.sort();
    assert_eq!(kinds, ["grant", "grant-index"], "{:?}", items.items());
    let item = items
        .items()
        .iter()
        .find(|i| i["kind"].as_s().unwrap() == "grant")
        .unwrap();
    assert_eq!(item["pk"].as_s().unwrap(), &format!("GRANT#{KEY_ARN}"));
    assert_eq!(item["origin"].as_s().unwrap(), "service");
    assert_eq!(item["removal_action"].as_s().unwrap(), "RetireGrant");
    let index = items
        .items()
        .iter()
        .find(|i| i["kind"].as_s().unwrap() == "grant-index")
        .unwrap();
    assert!(index["pk"]
        .as_s()
        .unwrap()
        .starts_with(&format!("KEYGRANTEE#{KEY_ARN}#")));
    assert!(index["removal"].as_s().unwrap().contains("RetireGrant"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_corrupt_or_truncated_file_is_named_and_the_others_are_read() {
    let dir = temp_dir("backfill-corrupt");
    write_logs(&dir);
    let day = dir.join("AWSLogs/123456789012/CloudTrail/us-east-1/2026/11/05");
    let whole =
        gzip(&serde_json::json!({ "Records": [record("manual-cross-account-grant")] }).to_string());
    std::fs::write(day.join("c_truncated.json.gz"), &whole[..whole.len() - 12]).unwrap();
    std::fs::write(day.join("d_garbage.json"), "{\"Records\": [{").unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&dir, day.join("loop")).unwrap();

    let output = grantwatch(&["backfill", "--threads", "2"], &[&dir], &[]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("c_truncated.json.gz: cannot read gzip input"),
        "{stderr}"
    );
    assert!(
        stderr.contains("d_garbage.json: not valid JSON"),
        "{stderr}"
    );
    assert!(
        stderr.contains("4 files"),
        "the loop is not walked: {stderr}"
    );
    assert_eq!(names(&lines(&output)), ["RetireGrant", "CreateGrant"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn since_and_until_keep_the_days_asked_for() {
    let dir = temp_dir("backfill-dates");
    write_logs(&dir);
    // The retirement is at 2026-11-05T01:02:03Z, the creation at 00:43:25Z.
    let run = |args: &[&str]| {
        let mut all = vec!["backfill"];
        all.extend_from_slice(args);
        let output = grantwatch(&all, &[&dir], &[]);
        assert!(output.status.success());
        lines(&output).len()
    };
    assert_eq!(run(&["--since", "2026-11-05", "--until", "2026-11-05"]), 2);
    assert_eq!(run(&["--since", "2026-11-06"]), 0);
    assert_eq!(run(&["--until", "2026-11-04"]), 0);
    let bad = grantwatch(&["backfill", "--since", "5 Nov"], &[&dir], &[]);
    assert_eq!(bad.status.code(), Some(2));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_reads_a_cloudtrail_bucket_prefix() {
    let moto = Moto::start().await;
    let s3 = moto.s3().await;
    s3.create_bucket().bucket("trail").send().await.unwrap();
    let put = |key: &str, body: Vec<u8>| {
        s3.put_object()
            .bucket("trail")
            .key(key)
            .body(body.into())
            .send()
    };
    let base = "AWSLogs/123456789012/CloudTrail/us-east-1/2026/11";
    put(
        &format!("{base}/05/123456789012_CloudTrail_us-east-1_20261105T0045Z_a.json.gz"),
        gzip(&serde_json::json!({ "Records": [record("lambda-create-grant"), record("decrypt-not-a-grant")] }).to_string()),
    )
    .await
    .unwrap();
    put(
        &format!("{base}/05/123456789012_CloudTrail_us-east-1_20261105T0105Z_b.json.gz"),
        gzip(&serde_json::json!({ "Records": [record("manual-retire-grant")] }).to_string()),
    )
    .await
    .unwrap();
    // A digest file (not records) and a day outside --since.
    put(
        "AWSLogs/123456789012/CloudTrail-Digest/us-east-1/2026/11/05/digest.json.gz",
        gzip("{\"awsAccountId\": \"123456789012\"}"),
    )
    .await
    .unwrap();
    put(
        &format!("{base}/01/123456789012_CloudTrail_us-east-1_20261101T0000Z_c.json.gz"),
        gzip(&serde_json::json!({ "Records": [record("manual-cross-account-grant")] }).to_string()),
    )
    .await
    .unwrap();

    let env: Vec<(String, String)> = moto.lambda_env().into_iter().collect();
    let output = grantwatch(
        &["backfill", "s3://trail/AWSLogs/", "--since", "2026-11-02"],
        &[],
        &env,
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(names(&lines(&output)), ["CreateGrant", "RetireGrant"]);
    assert!(stderr.contains("2 files"), "{stderr}");
}
