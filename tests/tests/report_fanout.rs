//! The report fan-out's steps (docs/fanout.md) through the compiled
//! `grant-report` behind the Runtime API harness, with the environment the
//! template gives it, against moto: Plan writes the run's files, each
//! InventoryShard reads only its own task and writes its result, Merge
//! builds, stores and announces one report in which the shard that never
//! ran is named. moto cannot run Lambda tasks inside Step Functions, so
//! this test plays the state machine's part (the definition is checked in
//! infra_stack.rs and by cfn-lint).

mod report_support;

use aws_sdk_kms::config::Region;
use aws_sdk_kms::types::GrantOperation;
use grantwatch_e2e::moto::Moto;
use grantwatch_e2e::runtime_api::{function_binary, Function, FunctionConfig};
use grantwatch_e2e::stack;
use serde_json::{json, Value};
use std::time::Duration;

const REGIONS: [&str; 3] = ["eu-west-1", "us-east-1", "us-west-2"];

async fn kms_in(moto: &Moto, region: &str) -> aws_sdk_kms::Client {
    let config = aws_sdk_kms::config::Builder::from(&moto.sdk_config().await)
        .region(Region::new(region.to_string()))
        .build();
    aws_sdk_kms::Client::from_conf(config)
}

/// A key with `grants` grants in `region`; its ARN.
async fn key_with_grants(moto: &Moto, region: &str, grants: usize) -> String {
    let kms = kms_in(moto, region).await;
    let key = kms.create_key().send().await.unwrap();
    let meta = key.key_metadata().unwrap();
    for g in 0..grants {
        kms.create_grant()
            .key_id(meta.key_id())
            .name(format!("app-{g}"))
            .grantee_principal("arn:aws:iam::999988887777:root")
            .operations(GrantOperation::Decrypt)
            .send()
            .await
            .unwrap();
    }
    meta.arn().unwrap().to_string()
}

async fn object(moto: &Moto, bucket: &str, key: &str) -> Option<Vec<u8>> {
    let out = moto
        .s3()
        .await
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .ok()?;
    Some(out.body.collect().await.unwrap().into_bytes().to_vec())
}

async fn invoke(function: &Function, payload: Value) -> Value {
    function
        .invoke(payload.clone())
        .await
        .unwrap_or_else(|e| panic!("{payload}: {e:?}\n{}", function.all_output()))
}

#[tokio::test]
async fn plan_shards_and_merge_give_one_report_naming_the_shard_that_never_ran() {
    let moto = Moto::start().await;
    let endpoint = moto.endpoint().to_string();
    let deployed = tokio::task::spawn_blocking(move || stack::deploy_template(&endpoint, &[]))
        .await
        .unwrap()
        .unwrap_or_else(|e| panic!("deploying the template into moto failed: {e}"));
    let env = deployed.function_env(stack::REPORT);
    let bucket = env["REPORT_BUCKET"].clone();
    let inbox = moto.subscribe_queue(&env["ALERT_TOPIC_ARN"]).await;
    let mut keys = Vec::new();
    for (i, region) in REGIONS.iter().enumerate() {
        keys.push((region, key_with_grants(&moto, region, i + 1).await));
    }
    let config = FunctionConfig::new("grant-report")
        .envs(env)
        .envs(moto.lambda_env())
        .env("AWS_LAMBDA_LOG_LEVEL", "INFO")
        .timeout(Duration::from_secs(120));
    let function = Function::start(&function_binary("grant-report"), config)
        .await
        .expect("start grant-report");

    // Plan: one shard per account-region (this account x 3 regions).
    let plan = invoke(
        &function,
        json!({"mode": "plan", "run_id": "exec-1", "shard_size": 1,
               "request": {"regions": REGIONS}}),
    )
    .await;
    assert_eq!(plan["shards"], 3, "{plan}");
    assert_eq!(plan["account_regions"], 3);
    assert_eq!(plan["bucket"], bucket.as_str());
    let items: Vec<Value> = serde_json::from_slice(
        &object(&moto, &bucket, plan["items_key"].as_str().unwrap())
            .await
            .expect("items.json"),
    )
    .unwrap();
    let shard_ids: Vec<String> = items
        .iter()
        .map(|i| i["shard"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(shard_ids.len(), 3);
    for region in REGIONS {
        assert_eq!(
            shard_ids.iter().filter(|s| s.ends_with(region)).count(),
            1,
            "{shard_ids:?}"
        );
    }

    // A shard the plan did not write, and a task naming its own
    // account-regions, are refused: nothing read.
    let unknown = function
        .invoke(json!({"mode": "inventory-shard", "run_id": "exec-1", "shard": "999999999999-eu-west-1"}))
        .await
        .unwrap_err();
    assert_eq!(unknown.error_type, "RunFileError", "{unknown:?}");
    let widened = function
        .invoke(
            json!({"mode": "inventory-shard", "run_id": "exec-1", "shard": shard_ids[0],
                       "targets": [{"account": "999999999999", "region": "eu-west-1"}]}),
        )
        .await
        .unwrap_err();
    assert_eq!(widened.error_type, "InvalidInput");

    // The Map: two shards run; the one of us-west-2 never does.
    let lost = shard_ids
        .iter()
        .find(|s| s.ends_with("us-west-2"))
        .unwrap()
        .clone();
    for shard in shard_ids.iter().filter(|s| **s != lost) {
        let summary = invoke(
            &function,
            json!({"mode": "inventory-shard", "run_id": "exec-1", "shard": shard}),
        )
        .await;
        assert_eq!(summary["account_regions"], 1, "{summary}");
        assert_eq!(summary["gaps"], 0, "{summary}");
        assert!(
            object(&moto, &bucket, &format!("runs/exec-1/results/{shard}.json"))
                .await
                .is_some()
        );
    }

    // Merge, told why the Map stopped (its Catch).
    let merged = invoke(
        &function,
        json!({"mode": "merge", "run_id": "exec-1", "shards_failed": {
            "Error": "States.ExceededToleratedFailureThreshold",
            "Cause": "<b>1</b> item failed"}}),
    )
    .await;
    assert_eq!(merged["missing_account_regions"], 1, "{merged}");
    let outcome = &merged["report"];
    assert_eq!(outcome["partial"], true);
    let date = outcome["generated_at"].as_str().unwrap()[..10].to_string();
    let report: Value = serde_json::from_slice(
        &object(&moto, &bucket, &format!("reports/{date}/report.json"))
            .await
            .expect("report.json"),
    )
    .unwrap();
    assert_eq!(report_support::validate(&report), Vec::<String>::new());
    let listed = |arn: &str| {
        report["keys"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["key_arn"] == arn)
            .map(|k| k["grants"].as_array().unwrap().len())
    };
    assert_eq!(listed(&keys[0].1), Some(1), "eu-west-1 from its shard");
    assert_eq!(listed(&keys[1].1), Some(2), "us-east-1 from its shard");
    assert_eq!(listed(&keys[2].1), None, "us-west-2 was never read");
    let rows = report["coverage"]["account_regions"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "nothing dropped: {rows:?}");
    let row = rows.iter().find(|r| r["region"] == "us-west-2").unwrap();
    assert_eq!(row["status"], "unread");
    let gap = report["coverage"]["gaps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["region"] == "us-west-2")
        .expect("the lost shard is a gap");
    assert_eq!(gap["reason"], "error");
    assert_eq!(
        gap["detail"],
        format!(
            "fan-out shard {lost} failed: no result; the shards stopped: \
             States.ExceededToleratedFailureThreshold: <b>1</b> item failed"
        )
    );
    // Announced like a single run's report.
    let mail = inbox.receive().await;
    assert_eq!(mail.len(), 1, "{mail:?}");
    assert_eq!(
        mail[0].attributes.get("kind").map(String::as_str),
        Some("report")
    );
    assert_eq!(outcome["delivered"], json!(["sns"]));
}
