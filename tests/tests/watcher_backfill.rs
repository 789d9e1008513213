//! `grantwatch backfill`: CloudTrail log files (plain and gzip) replayed into
//! a ledger table in moto; records only, idempotent.

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use grantwatch_e2e::moto::Moto;
use grantwatch_e2e::runtime_api::function_binary;
use serde_json::Value;
use std::io::Write;
use std::process::Command;

const KEY_ARN: &str = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";

fn record(name: &str) -> Value {
    let path = format!(
        "{}/fixtures/watcher/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let event: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    event["detail"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_records_creations_and_removals_from_log_files_idempotently() {
    let moto = Moto::start().await;
    let dynamodb = moto.dynamodb().await;
    dynamodb
        .create_table()
        .table_name("ledger")
        .billing_mode(BillingMode::PayPerRequest)
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("pk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name("sk")
                .attribute_type(ScalarAttributeType::S)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("pk")
                .key_type(KeyType::Hash)
                .build()
                .unwrap(),
        )
        .key_schema(
            KeySchemaElement::builder()
                .attribute_name("sk")
                .key_type(KeyType::Range)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();

    // A log directory: the retirement in a plain file listed first, the
    // creation (and a Decrypt) in a gzip file: replay sorts by time.
    let dir = std::env::temp_dir().join(format!("grantwatch-backfill-{}", std::process::id()));
    let logs = dir.join("AWSLogs/123456789012/CloudTrail/us-east-1");
    std::fs::create_dir_all(&logs).unwrap();
    let retire = serde_json::json!({ "Records": [record("manual-retire-grant")] });
    std::fs::write(logs.join("a_retire.json"), retire.to_string()).unwrap();
    let create = serde_json::json!({ "Records": [record("lambda-create-grant"), record("decrypt-not-a-grant")] });
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(create.to_string().as_bytes()).unwrap();
    std::fs::write(logs.join("b_create.json.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(logs.join("notes.txt"), "not a log file").unwrap();

    let binary = function_binary("grantwatch");
    for _ in 0..2 {
        let output = Command::new(&binary)
            .args(["backfill", "--table", "ledger"])
            .arg(&dir)
            .envs(moto.lambda_env())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let summary: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(summary["files"], 2);
        assert_eq!(summary["creations"], 1);
        assert_eq!(summary["removals"], 1);
        assert_eq!(summary["other_records"], 1);
    }

    let items = dynamodb.scan().table_name("ledger").send().await.unwrap();
    assert_eq!(
        items.count(),
        1,
        "one grant item, no event items: {:?}",
        items.items()
    );
    let item = &items.items()[0];
    assert_eq!(item["pk"].as_s().unwrap(), &format!("GRANT#{KEY_ARN}"));
    assert_eq!(item["origin"].as_s().unwrap(), "service");
    assert_eq!(item["removal_action"].as_s().unwrap(), "RetireGrant");
    let _ = std::fs::remove_dir_all(&dir);
}
