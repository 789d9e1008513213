//! `grantwatch explain` against moto shows the key as the weekly report
//! sees it: its description and tags (DescribeKey, ListResourceTags) and
//! its policy posture (GetKeyPolicy: `create-grant-open`), and a
//! `key_tags` rule that suppresses the posture in the report does so here.

use grantwatch_e2e::moto::{Moto, ACCOUNT};
use grantwatch_e2e::runtime_api::function_binary;
use std::process::Output;

async fn grantwatch(moto: &Moto, args: &[String]) -> Output {
    let args = args.to_vec();
    let env = moto.lambda_env();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(function_binary("grantwatch"))
            .args(&args)
            .env_clear()
            .envs(env)
            .output()
            .expect("run grantwatch")
    })
    .await
    .expect("grantwatch task")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_the_keys_description_tags_and_posture_and_applies_key_tags_rules() {
    let moto = Moto::start().await;
    let kms = moto.kms().await;
    let key_arn = kms
        .create_key()
        .description("Payments ledger key")
        .tags(
            aws_sdk_kms::types::Tag::builder()
                .tag_key("team")
                .tag_value("platform")
                .build()
                .expect("tag"),
        )
        .send()
        .await
        .expect("key")
        .key_metadata()
        .and_then(|m| m.arn())
        .expect("arn")
        .to_string();
    // The account's statement, and a CI role that may create grants for
    // anyone: create-grant-open.
    kms.put_key_policy()
        .key_id(&key_arn)
        .policy_name("default")
        .policy(format!(
            r#"{{"Version": "2012-10-17", "Statement": [
              {{"Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::{ACCOUNT}:root"}}, "Action": "kms:*", "Resource": "*"}},
              {{"Effect": "Allow", "Principal": {{"AWS": "arn:aws:iam::{ACCOUNT}:role/ci"}}, "Action": "kms:CreateGrant", "Resource": "*"}}]}}"#
        ))
        .send()
        .await
        .expect("key policy");
    let app = format!("arn:aws:iam::{ACCOUNT}:role/app");
    kms.create_grant()
        .key_id(&key_arn)
        .grantee_principal(&app)
        .operations(aws_sdk_kms::types::GrantOperation::Decrypt)
        .send()
        .await
        .expect("grant");

    let explain = |extra: &[&str]| {
        let mut args: Vec<String> = [
            "explain",
            "--key",
            key_arn.as_str(),
            "--principal",
            app.as_str(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    };
    let out = grantwatch(&moto, &explain(&[])).await;
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(
        stdout.contains("Description Payments ledger key"),
        "{stdout}"
    );
    assert!(stdout.contains("Tags team=platform"), "{stdout}");
    assert!(
        stdout.contains("Key posture: medium create-grant-open") && stdout.contains("role/ci"),
        "{stdout}"
    );
    assert!(!stdout.contains("suppressed by rule"), "{stdout}");

    // A key_tags rule for the platform team's keys suppresses the posture.
    let rules = std::env::temp_dir().join(format!("h3-key-tags-{}.toml", std::process::id()));
    std::fs::write(
        &rules,
        "[[rule]]\nid = \"platform-ci\"\nreason = \"CI grants on platform keys\"\nkey_tags = { team = \"platform\" }\nfindings = [\"create-grant-open\"]\n",
    )
    .expect("rules file");
    let rules_arg = rules.display().to_string();
    let out = grantwatch(
        &moto,
        &explain(&["--rules", &rules_arg, "--output", "json"]),
    )
    .await;
    let _ = std::fs::remove_file(&rules);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["key_description"], "Payments ledger key");
    assert_eq!(json["key_tags"]["team"], "platform");
    assert_eq!(
        json["key_posture"]["findings"][0]["code"],
        "create-grant-open"
    );
    assert_eq!(json["key_posture"]["suppressed_by"], "platform-ci");
    // The grant itself is not touched by a rule about the key's policy.
    assert_eq!(json["grants"][0]["suppressed_by"], serde_json::Value::Null);
}
